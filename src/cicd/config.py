"""Configuration in one place: the ``[tool.cicd]`` table of ``pyproject.toml``.

With no table at all the embedded default applies: the target is ``.cicd/`` in the
checkout, the source is this repository, and supervisord runs the app of
``10_preprod`` on 127.0.0.1:8500 (preprod) and 127.0.0.1:8501 (prod).

Every key can be set at the top of ``[tool.cicd]`` and overridden per environment in
``[tool.cicd.env.NAME]``. Secrets never live here: ``DISCORD_WEBHOOK_URL``,
``GITHUB_TOKEN`` and ``CICD_GITHUB_TOKEN`` come from the environment only. An unknown
key or a value of the wrong type is a :class:`~cicd.errors.ConfigError` naming the
key.
"""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cicd.errors import ConfigError
from cicd.health import HealthCheck

CONFIG_VARIABLE = "CICD_CONFIG"

STREAMLIT_COMMAND = (
    "{venv}/bin/python -m streamlit run src/mangetamain/app.py"
    " --server.port {port} --server.address {address} --server.headless true"
    " --browser.gatherUsageStats false"
)

#: The embedded default, and the shape every key is checked against.
DEFAULTS: dict[str, Any] = {
    "root": ".cicd",
    "source": ".",
    "app_dir": "10_preprod",
    "requirements": "requirements.txt",
    "python": "",
    "installer": "auto",
    "keep": 5,
    "port": 8500,
    "url": "http://127.0.0.1:{port}",
    "persistent": [],
    "hosts": [],
    "batch": 0,
    "ssh_config": "",
    "runtime": {
        "kind": "supervisor",
        "command": STREAMLIT_COMMAND,
        "environment": {"PYTHONPATH": "src"},
        "supervisord": "",
        "supervisorctl": "",
        "compose_file": "30_docker/docker-compose-{env}.yml",
        "service": "app",
        "project": "mangetamain-{env}",
    },
    "health": {
        "deadline": 60.0,
        "interval": 0.5,
        "successes": 1,
        "checks": [
            {"path": "/_stcore/health", "body_contains": "ok"},
            # What a user sees; skipped with a note where Chromium is absent.
            {"path": "/", "rendered_contains": "Mangetamain", "timeout": 30},
        ],
    },
    "notify": {"discord": True, "username": "Mangetamain CI/CD"},
    "ci": {
        "provider": "local",
        "command": "nox --envdir {envdir} -s lint tests",
        "workflow": "ci.yml",
        "repository": "",
        "api_url": "",
        "poll_interval": 5.0,
        "deadline": 900.0,
        "on_inconclusive": "keep",
    },
    "env": {
        "preprod": {"port": 8500},
        "prod": {
            "port": 8501,
            "persistent": ["shared"],
            "health": {"successes": 2},
        },
    },
}

CHECK_KEYS: dict[str, type | tuple[type, ...]] = {
    "path": str,
    "status": int,
    "body_contains": str,
    "json_field": str,
    "max_response_time": (int, float),
    "timeout": (int, float),
    "rendered_contains": str,
}

RUNTIME_KINDS = ("supervisor", "compose")
CI_PROVIDERS = ("local", "github")
ON_INCONCLUSIVE = ("keep", "rollback")
INSTALLERS = ("auto", "pip", "uv")


@dataclass(frozen=True)
class RuntimeSettings:
    """How the app is run on the target: supervisord or docker compose."""

    kind: str
    command: str
    environment: dict[str, str]
    supervisord: str
    supervisorctl: str
    compose_file: str
    service: str
    project: str


@dataclass(frozen=True)
class HealthSettings:
    """Readiness polling: the checks, how often, how long, how many successes."""

    checks: tuple[HealthCheck, ...]
    deadline: float
    interval: float
    successes: int


@dataclass(frozen=True)
class NotifySettings:
    """Where notifications go besides the console."""

    discord: bool
    username: str


@dataclass(frozen=True)
class CiSettings:
    """How the watcher learns whether CI passed for a deployed sha."""

    provider: str
    command: str
    workflow: str
    repository: str
    api_url: str
    poll_interval: float
    deadline: float
    on_inconclusive: str


@dataclass(frozen=True)
class EnvSettings:
    """Everything about one environment (preprod, prod) after merging defaults."""

    name: str
    root: str
    source: str
    app_dir: str
    requirements: str
    python: str
    installer: str
    keep: int
    port: int
    url: str
    persistent: tuple[str, ...]
    hosts: tuple[str, ...]
    batch: int
    ssh_config: str
    runtime: RuntimeSettings
    health: HealthSettings
    notify: NotifySettings
    ci: CiSettings


@dataclass(frozen=True)
class Settings:
    """The whole configuration: where it came from and each environment."""

    project_dir: Path
    path: Path | None
    envs: dict[str, EnvSettings]
    #: Each environment's merged table, before per-host overrides.
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``[tool.cicd.host.NAME]`` overrides, applied on top of any environment.
    host_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def env(self, name: str, host: str | None = None) -> EnvSettings:
        """Return one environment's settings, as seen on ``host`` if given.

        Raises:
            UsageError: The environment is not configured.
        """
        if name not in self.envs:
            known = ", ".join(sorted(self.envs))
            raise ConfigError(f"unknown environment {name!r} (known: {known})")
        if host is None or host not in self.host_overrides:
            return self.envs[name]
        data = _merge(self.raw[name], self.host_overrides[host])
        return _build_env(name, data, f"tool.cicd.host.{host}")


def find_pyproject(start: Path) -> Path | None:
    """Return the nearest ``pyproject.toml`` at or above ``start`` that is ours.

    Ours means it has a ``[tool.cicd]`` table or is the ``cicd`` project itself.
    """
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            data = _read_toml(candidate)
            if "cicd" in data.get("tool", {}) or data.get("project", {}).get(
                "name"
            ) == ("cicd"):
                return candidate
    return None


def load(path: Path | str | None = None) -> Settings:
    """Load and validate the configuration.

    Args:
        path: A TOML file with a ``[tool.cicd]`` table. Defaults to ``$CICD_CONFIG``,
            then the nearest ``pyproject.toml`` of this project above the current
            directory.

    Returns:
        The validated settings.

    Raises:
        ConfigError: No configuration file was found, or a key is invalid.
    """
    origin = "configuration file"
    if path is None and os.environ.get(CONFIG_VARIABLE):
        path, origin = (
            os.environ[CONFIG_VARIABLE],
            f"{CONFIG_VARIABLE} names a file that",
        )
    if path is None:
        found = find_pyproject(Path.cwd())
        if found is None:
            raise ConfigError(
                "no configuration found: run from the project checkout or set "
                f"{CONFIG_VARIABLE} to a TOML file with a [tool.cicd] table"
            )
        path = found
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"{origin} does not exist: {path}")
    table = _read_toml(path).get("tool", {}).get("cicd", {})
    return from_table(table, project_dir=path.parent, path=path)


def from_table(
    table: dict[str, Any], *, project_dir: Path, path: Path | None = None
) -> Settings:
    """Validate a ``[tool.cicd]`` table and build the settings.

    Args:
        table: The parsed table (may be empty: the embedded default).
        project_dir: Directory that relative local paths are resolved against.
        path: The file the table came from, for messages.

    Returns:
        The validated settings.

    Raises:
        ConfigError: A key is unknown or has the wrong type or value.
    """
    _check_shape(table, {**DEFAULTS, "host": {}}, "tool.cicd")
    top = {k: v for k, v in table.items() if k not in ("env", "host")}
    user_envs: dict[str, Any] = table.get("env", {})
    for name, overrides in user_envs.items():
        if not isinstance(overrides, dict):
            raise ConfigError(f"tool.cicd.env.{name}: expected a table")
        _check_shape(overrides, _env_shape(), f"tool.cicd.env.{name}")
    # Precedence, lowest first: built-in defaults, built-in per-environment
    # defaults, the user's top-level keys, the user's per-environment keys.
    hosts: dict[str, Any] = table.get("host", {})
    for name, overrides in hosts.items():
        if not isinstance(overrides, dict):
            raise ConfigError(f"tool.cicd.host.{name}: expected a table")
        _check_shape(overrides, _env_shape(), f"tool.cicd.host.{name}")
    envs = {}
    raw = {}
    for name in [*DEFAULTS["env"], *(n for n in user_envs if n not in DEFAULTS["env"])]:
        data = _merge(_env_shape(), DEFAULTS["env"].get(name, {}))
        raw[name] = _merge(_merge(data, top), user_envs.get(name, {}))
        envs[name] = _build_env(name, raw[name], f"tool.cicd.env.{name}")
        for host in envs[name].hosts:
            if host in hosts:
                _build_env(
                    name, _merge(raw[name], hosts[host]), f"tool.cicd.host.{host}"
                )
    return Settings(project_dir, path, envs, raw, hosts)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None


def _env_shape() -> dict[str, Any]:
    return {k: v for k, v in DEFAULTS.items() if k not in ("env", "host")}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            if key == "environment":
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _check_shape(table: dict[str, Any], shape: dict[str, Any], where: str) -> None:
    for key, value in table.items():
        name = f"{where}.{key}"
        if key not in shape:
            known = ", ".join(sorted(shape))
            raise ConfigError(f"{name}: unknown key (known keys: {known})")
        expected = shape[key]
        if key in ("env", "host"):
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: expected a table of {key} names")
            continue
        if key == "environment":
            _check_string_table(value, name)
        elif key == "checks":
            _check_checks(value, name)
        elif isinstance(expected, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: expected a table")
            _check_shape(value, expected, name)
        else:
            _check_type(value, expected, name)


def _check_type(value: Any, expected: Any, name: str) -> None:
    if isinstance(expected, bool):
        ok = isinstance(value, bool)
    elif isinstance(expected, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(expected, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(expected, list):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, type(expected))
    if not ok:
        kind = (
            "list of strings" if isinstance(expected, list) else type(expected).__name__
        )
        raise ConfigError(f"{name}: expected {kind}, got {value!r}")


def _check_string_table(value: Any, name: str) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(v, str) for v in value.values()
    ):
        raise ConfigError(f"{name}: expected a table of strings")


def _check_checks(value: Any, name: str) -> None:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{name}: expected a non-empty array of tables")
    for index, item in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a table")
        for key, item_value in item.items():
            if key not in CHECK_KEYS:
                known = ", ".join(sorted(CHECK_KEYS))
                raise ConfigError(f"{where}.{key}: unknown key (known keys: {known})")
            expected = CHECK_KEYS[key]
            if isinstance(item_value, bool) or not isinstance(item_value, expected):
                raise ConfigError(f"{where}.{key}: wrong type: {item_value!r}")


def _build_env(name: str, data: dict[str, Any], where: str) -> EnvSettings:
    if not name.isidentifier():
        raise ConfigError(f"{where}: environment names are letters, digits and _")
    if data["runtime"]["kind"] not in RUNTIME_KINDS:
        raise ConfigError(
            f"{where}.runtime.kind: expected one of {', '.join(RUNTIME_KINDS)}, "
            f"got {data['runtime']['kind']!r}"
        )
    if data["installer"] not in INSTALLERS:
        raise ConfigError(
            f"{where}.installer: expected one of {', '.join(INSTALLERS)}, "
            f"got {data['installer']!r}"
        )
    if data["batch"] < 0:
        raise ConfigError(f"{where}.batch: must be 0 (all at once) or more")
    for key in ("keep", "port"):
        if data[key] < 1:
            raise ConfigError(f"{where}.{key}: must be at least 1")
    if not 1 <= data["port"] <= 65535:
        raise ConfigError(f"{where}.port: not a TCP port: {data['port']}")
    health = data["health"]
    for key, minimum in (("deadline", 0.0), ("interval", 0.0), ("successes", 0)):
        if health[key] <= minimum:
            raise ConfigError(f"{where}.health.{key}: must be greater than {minimum:g}")
    ci = data["ci"]
    for key, choices in (
        ("provider", CI_PROVIDERS),
        ("on_inconclusive", ON_INCONCLUSIVE),
    ):
        if ci[key] not in choices:
            raise ConfigError(
                f"{where}.ci.{key}: expected one of {', '.join(choices)}, "
                f"got {ci[key]!r}"
            )
    for key in ("poll_interval", "deadline"):
        if ci[key] <= 0:
            raise ConfigError(f"{where}.ci.{key}: must be greater than 0")
    url = _expand(data["url"], f"{where}.url", port=data["port"], env=name)
    checks = tuple(
        HealthCheck(
            url=url.rstrip("/") + "/" + check.get("path", "/").lstrip("/"),
            **_check_args(check),
        )
        for check in health["checks"]
    )
    runtime = data["runtime"]
    return EnvSettings(
        name=name,
        root=data["root"],
        source=data["source"],
        app_dir=data["app_dir"],
        requirements=data["requirements"],
        python=data["python"],
        installer=data["installer"],
        keep=data["keep"],
        port=data["port"],
        url=url,
        persistent=tuple(data["persistent"]),
        hosts=tuple(data["hosts"]),
        batch=data["batch"],
        ssh_config=data["ssh_config"],
        runtime=RuntimeSettings(
            kind=runtime["kind"],
            command=runtime["command"],
            environment=dict(runtime["environment"]),
            supervisord=runtime["supervisord"],
            supervisorctl=runtime["supervisorctl"],
            compose_file=_expand(
                runtime["compose_file"], f"{where}.runtime.compose_file", env=name
            ),
            service=runtime["service"],
            project=_expand(runtime["project"], f"{where}.runtime.project", env=name),
        ),
        health=HealthSettings(
            checks=checks,
            deadline=float(health["deadline"]),
            interval=float(health["interval"]),
            successes=int(health["successes"]),
        ),
        notify=NotifySettings(**data["notify"]),
        ci=CiSettings(
            provider=ci["provider"],
            command=ci["command"],
            workflow=ci["workflow"],
            repository=ci["repository"],
            api_url=ci["api_url"],
            poll_interval=float(ci["poll_interval"]),
            deadline=float(ci["deadline"]),
            on_inconclusive=ci["on_inconclusive"],
        ),
    )


def _check_args(check: dict[str, Any]) -> dict[str, Any]:
    args = {k: v for k, v in check.items() if k != "path"}
    if "max_response_time" in args:
        args["max_response_time"] = float(args["max_response_time"])
    if "timeout" in args:
        args["timeout"] = float(args["timeout"])
    return args


def _expand(template: str, where: str, **values: Any) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(f"{where}: unknown placeholder {error} in {template!r}")
