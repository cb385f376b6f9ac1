"""Configuration in one place: the ``[tool.cicd]`` table of ``pyproject.toml``.

With no table at all the embedded default applies: the target is ``.cicd/`` in the
checkout, the source is this repository, and supervisord runs the app of
``10_preprod`` on 127.0.0.1:8500 (preprod) and 127.0.0.1:8501 (prod).

Every key can be set at the top of ``[tool.cicd]`` and overridden per environment in
``[tool.cicd.env.NAME]``. Secrets never live here: ``DISCORD_WEBHOOK_URL``,
``GITHUB_TOKEN`` and ``CICD_GITHUB_TOKEN`` come from the environment only. An unknown
key or a value of the wrong type is a :class:`~cicd.core.errors.ConfigError` naming the
key.

:data:`SCHEMA` is the one description of every key: its default, what it means (the
configuration reference is generated from it) and its rule (choices, bounds, the
placeholders a template may use). :data:`DEFAULTS` is derived from it, and the typed
settings (:class:`EnvSettings` and its sections) are filled from it field by field;
a test checks that the two never disagree.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cicd.core.errors import ConfigError
from cicd.core.health_check import HealthCheck

CONFIG_VARIABLE = "CICD_CONFIG"

STREAMLIT_COMMAND = (
    "{venv}/bin/python -m streamlit run src/mangetamain/app.py"
    " --server.port {port} --server.address {address} --server.headless true"
    " --browser.gatherUsageStats false"
)

RUNTIME_KINDS = ("supervisor", "compose", "swarm")
PROXY_KINDS = ("auto", "haproxy", "none")
#: The two slots of a blue/green environment, in the order they are first used.
SLOTS = ("blue", "green")
CI_PROVIDERS = ("local", "github")
ON_INCONCLUSIVE = ("keep", "rollback")
INSTALLERS = ("auto", "pip", "uv")

#: What ``runtime.command`` and ``runtime.environment`` values may name.
APP_PLACEHOLDERS = ("python", "venv", "port", "address", "release", "shared", "env")


@dataclass(frozen=True)
class Key:
    """One configuration key: its default, its meaning and its rule.

    Attributes:
        default: The built-in value; its type is the key's type.
        doc: What the key means (reStructuredText, for the reference page).
        choices: The only values allowed, when a string has a fixed set.
        at_least: Smallest allowed number.
        above: The number must be greater than this.
        at_most: Largest allowed number.
        placeholders: For a template: the ``{names}`` it may use.
        relative: The value is a path inside the release (no ``/`` start, no
            ``..``, one line).
        length: For a string: the fewest and most characters it may have.
        forbidden: For a string: substrings it may not contain (in any case).
    """

    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    placeholders: tuple[str, ...] | None = None
    relative: bool = False
    length: tuple[int, int] | None = None
    forbidden: tuple[str, ...] = ()


#: Every key of ``[tool.cicd]`` (and of ``[tool.cicd.env.NAME]``), by section.
SCHEMA: dict[str, Any] = {
    "root": Key(
        ".cicd",
        "Target root on the host: one directory per environment below it, plus the "
        "shared ``venvs/`` and ``supervisor/``. Relative: to the configuration file.",
    ),
    "source": Key(
        ".",
        "Git repository releases are exported from: a local path, or a URL that is "
        "mirrored under the root (fetched only when a sha is unknown).",
    ),
    "app_dir": Key(
        "10_preprod",
        "The app's directory inside a release; the runtime command runs there.",
    ),
    "requirements": Key(
        "auto",
        "The app's dependencies, relative to ``app_dir``: a ``uv.lock`` (installed "
        "frozen with ``uv sync``, no dev or test group), a ``pylock.toml`` (PEP 751, "
        "``uv pip sync``) or a requirements file (``--require-hashes`` when it pins "
        "hashes). ``auto``: the first of ``uv.lock``, ``pylock.toml`` and "
        "``requirements.txt`` the release has. A lock's venv is keyed by the lock, "
        "the interpreter and its local packages' content; a requirements file's by "
        "its content. Built once per key at release time, shared by releases.",
        relative=True,
    ),
    "python": Key(
        "",
        "Interpreter that builds the venvs: a command or path, or a version such as "
        "``3.13`` that ``uv python find`` resolves among the interpreters uv "
        "manages or finds on the host (never downloaded). Empty: this interpreter "
        "locally, ``python3`` over SSH. The app's ``requires-python`` and "
        "``.python-version`` are checked against it before the release is made.",
    ),
    "installer": Key(
        "auto",
        "``auto`` (``uv`` when on the host's PATH, else pip), ``pip`` or ``uv``.",
        choices=INSTALLERS,
    ),
    "keep": Key(
        5,
        "Releases kept per environment (older ones pruned; the running, previous and "
        "validated ones never), and production backups kept.",
        at_least=1,
    ),
    "port": Key(
        8500,
        "Port the app listens on (8500 preprod, 8501 prod by default).",
        at_least=1,
        at_most=65535,
    ),
    "url": Key(
        "http://127.0.0.1:{port}",
        "Base URL of the environment; health check paths are appended to it. "
        "Placeholders: ``{port}``, ``{env}``.",
        placeholders=("port", "env"),
    ),
    "public_url": Key(
        "",
        "The address users open (``https://mangetamain.example``), shown and linked "
        "in notifications — the health ``url`` may be a private one. Empty: ``url``.",
    ),
    "persistent": Key(
        [],
        "Directories under ``<root>/<env>/`` that survive releases and are archived "
        "into ``backups/`` before each production deploy.",
    ),
    "hosts": Key(
        [],
        "SSH hosts (ssh_config aliases or addresses) that run the environment. Empty: "
        "the machine where the task runs (or ``fab -H HOST``'s host). With hosts, "
        "``invoke deploy.*`` deploys to all of them in parallel, all or nothing.",
    ),
    "batch": Key(
        0,
        "Hosts switched at a time (a rolling deploy); 0 switches all at once.",
        at_least=0,
    ),
    "ssh_config": Key(
        "",
        "The ssh_config file for ``hosts``. Empty: ``~/.ssh/config``. Host keys are "
        "always checked against its ``UserKnownHostsFile`` (or "
        "``~/.ssh/known_hosts``); an unknown key is refused.",
    ),
    "runtime": {
        "kind": Key(
            "supervisor",
            "``supervisor`` (the embedded default), ``compose`` (one container per "
            "host, mounting the release) or ``swarm`` (a Docker Swarm service, one "
            "image per sha, rolled out by the swarm; run from its manager).",
            choices=RUNTIME_KINDS,
        ),
        "command": Key(
            STREAMLIT_COMMAND,
            "The app's command line under supervisord. Placeholders: ``{python}``, "
            "``{venv}``, ``{port}``, ``{address}`` (the host of ``url``), "
            "``{release}``, ``{shared}``, ``{env}``.",
            placeholders=APP_PLACEHOLDERS,
        ),
        "environment": Key(
            {"PYTHONPATH": "src"},
            "Extra environment variables for the app (merged per key); values take "
            "the placeholders of ``runtime.command``. The app's secrets go in "
            "``<root>/<env>/shared/app.env`` instead.",
            placeholders=APP_PLACEHOLDERS,
        ),
        "supervisord": Key(
            "",
            "The ``supervisord`` program. Empty: the copy installed beside this "
            "interpreter locally, ``supervisord`` on PATH remotely.",
        ),
        "supervisorctl": Key("", "The ``supervisorctl`` program, found the same way."),
        "compose_file": Key(
            "30_docker/docker-compose-{env}.yml",
            'Compose file inside the release, for ``kind = "compose"``. '
            "Placeholder: ``{env}``.",
            placeholders=("env",),
        ),
        "service": Key("app", "Compose (or stack) service that runs the app."),
        "project": Key(
            "mangetamain-{env}",
            "Compose project name, and the swarm's stack name. Placeholder: ``{env}``.",
            placeholders=("env",),
        ),
        "image": Key(
            "mangetamain-app",
            "The swarm's image repository: each release is ``IMAGE:SHA``, for ``kind "
            '= "swarm"``.',
        ),
        "dockerfile": Key(
            "30_docker/Dockerfile",
            "Dockerfile inside the release that builds ``IMAGE:SHA`` (its ``release`` "
            "stage), with the release as the build context.",
        ),
        "stack_file": Key(
            "30_docker/stack.yml",
            "Stack file inside the release (compose version 3.8), deployed with "
            "``docker stack deploy``. Placeholder: ``{env}``.",
            placeholders=("env",),
        ),
        "docker_host": Key(
            "",
            "The swarm manager's Docker API (``DOCKER_HOST``: ``unix:///...``, "
            "``ssh://user@host``). Empty: docker's default on the host.",
        ),
        "registry": Key(
            "",
            "Registry the nodes pull ``IMAGE:SHA`` from (``host:port``); the image is "
            "pushed there, and pulled ahead on each of ``nodes``. Empty: it is copied "
            "to each of ``nodes`` with ``docker save | docker load``.",
        ),
        "nodes": Key(
            [],
            "Docker APIs of the swarm's other nodes (``ssh://root@vm2``, "
            "``unix:///...``): each gets ``IMAGE:SHA`` before the update (copied, or "
            "pulled from ``registry``).",
        ),
        "update_timeout": Key(
            300.0,
            "Seconds a swarm rolling update (or the swarm's own rollback of it) may "
            "take before the deploy fails.",
            above=0,
        ),
    },
    "proxy": {
        "kind": Key(
            "auto",
            "``haproxy``: zero-downtime blue/green deploys — haproxy (one per host, "
            "under the root's supervisord) listens on the environment's ``url`` and "
            "routes to one of two slots; a new release starts on the idle slot, gets "
            "ready there and only then is switched to. ``none``: the app listens on "
            "``url`` itself and is restarted in place. ``auto``: ``haproxy`` when the "
            "host has it, else ``none`` (said in one line).",
            choices=PROXY_KINDS,
        ),
        "haproxy": Key("haproxy", "The ``haproxy`` program (1.8 or newer)."),
        "blue_port": Key(
            0,
            "Private port of the blue slot. 0: ``port`` + 10000 (− 10000 when "
            "``port`` is above 45535).",
            at_least=0,
            at_most=65535,
        ),
        "green_port": Key(
            0,
            "Private port of the green slot. 0: ``port`` + 20000 (− 20000 when "
            "``port`` is above 45535).",
            at_least=0,
            at_most=65535,
        ),
        "warm": Key(
            1800.0,
            "Seconds the previous release keeps running on its slot after a switch, "
            "so a rollback is only a switch back. A CI verdict ends it sooner "
            "(passed: stopped; failed: switched back to). 0: stopped at once.",
            at_least=0,
        ),
    },
    "health": {
        "deadline": Key(
            60.0,
            "Seconds to wait for readiness after a restart before the deploy fails "
            "and is rolled back.",
            above=0,
        ),
        "interval": Key(0.5, "Seconds between readiness rounds.", above=0),
        "successes": Key(
            1, "Consecutive passing rounds needed to be ready (2 in prod).", above=0
        ),
        "checks": Key(
            [
                {"path": "/_stcore/health", "body_contains": "ok"},
                # What a user sees; skipped with a note where Chromium is absent.
                {"path": "/", "rendered_contains": "Mangetamain", "timeout": 30},
            ],
            "The checks of a round, each a table (see below). All must pass.",
        ),
    },
    "monitor": {
        "failures": Key(
            3,
            "Consecutive failed checks of the hourly monitor before an alert.",
            at_least=1,
        ),
        "successes": Key(
            2,
            "Consecutive passing checks before a down environment is recovered.",
            at_least=1,
        ),
        "reminder": Key(
            6 * 3600.0,
            "Seconds between reminders while an environment stays down.",
            above=0,
        ),
        "retries": Key(
            4,
            "Extra checks one monitor run makes while an environment is down, "
            '``retry_interval`` apart, so "recovered" is said minutes after the '
            "app is back rather than at the next hourly run (0: one check per run).",
            at_least=0,
            at_most=60,
        ),
        "retry_interval": Key(
            30.0,
            "Seconds between two checks of one monitor run (confirming a failure, "
            "re-checking while down, confirming a recovery).",
            above=0,
            at_most=600,
        ),
        "patience": Key(
            0.0,
            "While an environment is still down at the end of a monitor run, a "
            "re-checker in the background keeps checking it every "
            "``retry_interval`` for up to this many seconds, so the recovery is "
            "said within ``retry_interval`` of the app coming back; the next run "
            "takes over from it. 0 (the default): none. The VM example sets 3300, "
            "until the next hourly run.",
            at_least=0,
        ),
        "cert_days": Key(
            14,
            "Alert when the certificate of an ``https`` URL the monitor checks "
            "expires in fewer days than this (0: no certificate alert).",
            at_least=0,
        ),
        "urls": Key(
            [],
            "Public URLs the monitor also checks, as a visitor would (any status "
            "below 400; ``https`` verified, its certificate's days left compared "
            "with ``cert_days``). ``invoke health --url`` checks such URLs from "
            "outside the VM.",
        ),
    },
    "notify": {
        "discord": Key(True, "Send to Discord when ``DISCORD_WEBHOOK_URL`` is set."),
        "username": Key(
            "Mangetamain CI/CD",
            "Name the Discord messages are posted under: 1 to 80 characters, "
            "without ``clyde`` or ``discord`` in it (Discord refuses every message "
            "of a webhook whose name breaks these rules).",
            # Discord's published limits (tests/data/published_api.json).
            length=(1, 80),
            forbidden=("clyde", "discord"),
        ),
    },
    "ci": {
        "provider": Key(
            "local",
            "``local`` (run ``ci.command`` for the release) or ``github`` (ask "
            "GitHub Actions about the sha).",
            choices=CI_PROVIDERS,
        ),
        "command": Key(
            "nox --envdir {envdir} -s lint tests",
            "The local CI command, run in a scratch copy of the release (never in the "
            "release itself); exit 0 is success, not found (127) or not executable "
            "(126) inconclusive. Placeholder: ``{envdir}``.",
            placeholders=("envdir",),
        ),
        "workflow": Key(
            "ci.yml", "The GitHub workflow file whose run for the sha is the verdict."
        ),
        "repository": Key(
            "", "``OWNER/NAME`` on GitHub. Empty: ``$GITHUB_REPOSITORY``."
        ),
        "api_url": Key(
            "", "GitHub API base. Empty: ``$GITHUB_API_URL``, else the public API."
        ),
        "poll_interval": Key(
            5.0,
            "Seconds between polls of GitHub (longer when GitHub asks).",
            above=0,
        ),
        "deadline": Key(
            900.0,
            "Seconds after which a CI still pending (or a local command still "
            "running) is inconclusive.",
            above=0,
        ),
        "on_inconclusive": Key(
            "keep",
            "``keep`` the deploy and alert a person, or ``rollback``.",
            choices=ON_INCONCLUSIVE,
        ),
        "lock_wait": Key(
            300.0,
            "Seconds a CI verdict waits for a deploy or rollback to release the "
            "environment's lock.",
            at_least=0,
        ),
    },
}

#: Each health check's keys (a check is a table in ``health.checks``).
CHECK_SCHEMA: dict[str, Key] = {
    "path": Key("/", "Path appended to the environment's ``url``."),
    "status": Key(200, "Expected HTTP status.", at_least=100, at_most=599),
    "body_contains": Key(None, "Text the response body must contain."),
    "json_field": Key(
        None,
        "``name=value``: the JSON body's field must equal the value; dots reach into "
        "objects (``checks.db=ok``).",
    ),
    "max_response_time": Key(None, "Slowest acceptable answer, in seconds.", above=0),
    "timeout": Key(10.0, "Per-request timeout, in seconds.", above=0),
    "rendered_contains": Key(
        None,
        "Text the page must show once rendered by headless Chromium (Streamlit's raw "
        "HTML and ``/_stcore/health`` look the same for a broken app). Skipped with "
        "a note where Chromium is absent, or over SSH.",
    ),
}
#: The type of each check key (None defaults are strings, or numbers for times).
CHECK_KEYS: dict[str, type | tuple[type, ...]] = {
    "path": str,
    "status": int,
    "body_contains": str,
    "json_field": str,
    "max_response_time": (int, float),
    "timeout": (int, float),
    "rendered_contains": str,
}

#: Built-in per-environment values, applied before the user's own keys.
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "preprod": {"port": 8500},
    "prod": {"port": 8501, "persistent": ["shared"], "health": {"successes": 2}},
}


def _defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        name: _defaults(spec) if isinstance(spec, dict) else copy.deepcopy(spec.default)
        for name, spec in schema.items()
    }


#: The embedded default, derived from :data:`SCHEMA`.
DEFAULTS: dict[str, Any] = {**_defaults(SCHEMA), "env": ENV_DEFAULTS}


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
    image: str
    dockerfile: str
    stack_file: str
    docker_host: str
    registry: str
    nodes: tuple[str, ...]
    update_timeout: float


@dataclass(frozen=True)
class ProxySettings:
    """Blue/green behind haproxy: the slots' ports and how long the previous stays."""

    kind: str
    haproxy: str
    blue_port: int
    green_port: int
    warm: float

    def slot_port(self, slot: str) -> int:
        """The private port of ``blue`` or ``green``."""
        return self.blue_port if slot == SLOTS[0] else self.green_port


@dataclass(frozen=True)
class HealthSettings:
    """Readiness polling: the checks, how often, how long, how many successes."""

    checks: tuple[HealthCheck, ...]
    deadline: float
    interval: float
    successes: int


@dataclass(frozen=True)
class MonitorSettings:
    """The hourly monitor's thresholds, in the manner of Gatus."""

    failures: int
    successes: int
    reminder: float
    retries: int
    retry_interval: float
    patience: float
    cert_days: int
    urls: tuple[str, ...]


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
    lock_wait: float


#: The dataclass of each section of :data:`SCHEMA`.
SECTIONS: dict[str, type] = {
    "runtime": RuntimeSettings,
    "proxy": ProxySettings,
    "health": HealthSettings,
    "monitor": MonitorSettings,
    "notify": NotifySettings,
    "ci": CiSettings,
}


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
    public_url: str
    persistent: tuple[str, ...]
    hosts: tuple[str, ...]
    batch: int
    ssh_config: str
    runtime: RuntimeSettings
    proxy: ProxySettings
    health: HealthSettings
    monitor: MonitorSettings
    notify: NotifySettings
    ci: CiSettings

    def port_of(self, slot: str | None) -> int:
        """Where an app instance listens: its slot's private port, or ``port``."""
        return self.proxy.slot_port(slot) if slot else self.port


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
    #: False for the embedded default (a ``pyproject.toml`` with no ``[tool.cicd]``
    #: table): over SSH a task then reads the host's own configuration instead.
    explicit: bool = True

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


#: Loaded configurations by (file, modification time, size): read once per task.
_LOADED: dict[tuple[Path, int, int], Settings] = {}


def load(path: Path | str | None = None) -> Settings:
    """Load and validate the configuration (once per file version per process).

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
        path, origin = _found_config()
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"{origin} does not exist: {path}")
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _LOADED:
        table = _read_toml(path).get("tool", {}).get("cicd", {})
        settings = from_table(table, project_dir=path.parent, path=path)
        # Only the cicd project's own pyproject.toml has no table: the default.
        _LOADED[key] = dataclasses.replace(settings, explicit="cicd" in _tool(path))
    return _LOADED[key]


def _tool(path: Path) -> dict[str, Any]:
    tool = _read_toml(path).get("tool", {})
    return tool if isinstance(tool, dict) else {}


def _found_config() -> tuple[Path, str]:
    """The configuration of a task run without ``CICD_CONFIG``, and its origin.

    A ``[tool.cicd]`` table above the current directory comes first; then the
    record ``setup`` wrote for this user (:mod:`cicd.host.record`), so that on a VM
    ``cicd status`` works from any directory, even inside a checkout of the cicd
    project itself; last, that project's embedded default.
    """
    from cicd.core import record

    found = find_pyproject(Path.cwd())
    if found is not None and "cicd" in _tool(found):
        return found, "configuration file"
    recorded = record.local_path()
    if recorded.is_file():
        where = str(recorded)
        return Path(record.parse(recorded.read_text(), where).config), (
            f"the configuration recorded in {where} names a file that"
        )
    if found is None:
        raise ConfigError(
            "no configuration found: run from the project checkout or set "
            f"{CONFIG_VARIABLE} to a TOML file with a [tool.cicd] table"
        )
    return found, "configuration file"


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
    for name in [*ENV_DEFAULTS, *(n for n in user_envs if n not in ENV_DEFAULTS)]:
        data = _merge(_env_shape(), ENV_DEFAULTS.get(name, {}))
        raw[name] = _merge(_merge(data, top), user_envs.get(name, {}))
        envs[name] = _build_env(name, raw[name], f"tool.cicd.env.{name}")
        for host in envs[name].hosts:
            if host in hosts:
                _build_env(
                    name, _merge(raw[name], hosts[host]), f"tool.cicd.host.{host}"
                )
    _check_ports_across(envs)
    return Settings(project_dir, path, envs, raw, hosts)


def _check_ports_across(envs: dict[str, EnvSettings]) -> None:
    """No slot's port is another environment's port or slot (one haproxy binds all)."""
    taken: dict[tuple[str, int], str] = {(e.root, e.port): n for n, e in envs.items()}
    for name, env in envs.items():
        if env.proxy.kind == "none":
            continue
        for port in (env.proxy.blue_port, env.proxy.green_port):
            other = taken.get((env.root, port))
            if other is not None and other != name:
                raise ConfigError(
                    f"tool.cicd.env.{name}: proxy port {port} is also {other}'s "
                    "(set proxy.blue_port and proxy.green_port)"
                )
            taken[(env.root, port)] = name


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
            _check_rule(CHECK_SCHEMA[key], item_value, f"{where}.{key}")


def _check_rule(spec: Key, value: Any, name: str) -> None:
    """Check one value against its key's rule (choices, bounds, placeholders)."""
    if spec.choices and value not in spec.choices:
        raise ConfigError(
            f"{name}: expected one of {', '.join(spec.choices)}, got {value!r}"
        )
    if spec.at_least is not None and value < spec.at_least:
        raise ConfigError(f"{name}: must be at least {spec.at_least:g}, got {value!r}")
    if spec.above is not None and value <= spec.above:
        raise ConfigError(f"{name}: must be greater than {spec.above:g}")
    if spec.at_most is not None and value > spec.at_most:
        raise ConfigError(f"{name}: must be at most {spec.at_most:g}, got {value!r}")
    if spec.length is not None and not (spec.length[0] <= len(value) <= spec.length[1]):
        low, high = spec.length
        raise ConfigError(
            f"{name}: must be {low} to {high} characters, got {len(value)}"
        )
    for word in spec.forbidden:
        if word in value.lower():
            raise ConfigError(f"{name}: must not contain {word!r}, got {value!r}")
    if spec.relative and (
        not value or value.startswith("/") or ".." in value.split("/") or "\n" in value
    ):
        raise ConfigError(f"{name}: a path inside the app's directory, got {value!r}")
    if spec.placeholders is not None:
        templates = value.values() if isinstance(value, dict) else [value]
        for template in templates:
            _check_template(template, name, spec.placeholders)


def _check_template(template: str, where: str, names: tuple[str, ...]) -> None:
    """A template may only name its placeholders: a typo fails at load, not later."""
    try:
        template.format(**{n: "" for n in names})
    except (KeyError, IndexError, ValueError) as error:
        known = ", ".join("{" + n + "}" for n in names)
        raise ConfigError(
            f"{where}: unknown placeholder {error} in {template!r} (known: {known})"
        ) from None


def _checked(schema: dict[str, Any], data: dict[str, Any], where: str) -> None:
    """Apply every key's rule to a merged table (types were checked already)."""
    for key, spec in schema.items():
        if isinstance(spec, dict):
            _checked(spec, data[key], f"{where}.{key}")
        else:
            _check_rule(spec, data[key], f"{where}.{key}")


def _section(cls: type, data: dict[str, Any], **derived: Any) -> Any:
    """Fill a settings dataclass from its merged table, field by field."""
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if item.name in derived:
            values[item.name] = derived[item.name]
            continue
        value = data[item.name]
        if isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, dict):
            value = dict(value)
        elif isinstance(value, int) and item.type in ("float", float):
            value = float(value)
        values[item.name] = value
    return cls(**values)


def _build_env(name: str, data: dict[str, Any], where: str) -> EnvSettings:
    if not name.isidentifier():
        raise ConfigError(f"{where}: environment names are letters, digits and _")
    _checked(SCHEMA, data, where)
    url = data["url"].format(port=data["port"], env=name)
    checks = tuple(_health_check(url, check) for check in data["health"]["checks"])
    runtime = {
        **data["runtime"],
        "compose_file": data["runtime"]["compose_file"].format(env=name),
        "project": data["runtime"]["project"].format(env=name),
        "stack_file": data["runtime"]["stack_file"].format(env=name),
    }
    if runtime["kind"] == "swarm" and len(data["hosts"]) > 1:
        # One ledger and one lock for the environment: on the manager.
        raise ConfigError(
            f"{where}.hosts: the swarm runtime runs from the swarm's manager: list "
            "one host (or none), its nodes come from the swarm "
            f"(got {len(data['hosts'])})"
        )
    proxy = {
        **data["proxy"],
        "blue_port": data["proxy"]["blue_port"] or _slot_port(data["port"], 10000),
        "green_port": data["proxy"]["green_port"] or _slot_port(data["port"], 20000),
    }
    if proxy["kind"] == "haproxy":
        # "auto" is checked once the host is known to have haproxy
        # (Target.is_proxied): without it, slot ports are never used.
        check_slot_ports(data["port"], proxy, where)
    tables = {"runtime": runtime, "proxy": proxy}
    sections = {
        key: _section(
            cls,
            tables.get(key, data[key]),
            **({"checks": checks} if key == "health" else {}),
        )
        for key, cls in SECTIONS.items()
    }
    result: EnvSettings = _section(EnvSettings, data, name=name, url=url, **sections)
    return result


def _slot_port(port: int, offset: int) -> int:
    """A slot's derived port: above ``port``, or below it for a high ``port``."""
    return port + offset if port + 20000 <= 65535 else port - offset


def check_slot_ports(port: int, proxy: dict[str, Any], where: str) -> None:
    """The two slots' ports (derived or given) exist and differ from ``port``.

    Raises:
        ConfigError: A port past 65535, or two the same.
    """
    ports = {"port": port, **{f"proxy.{s}_port": proxy[f"{s}_port"] for s in SLOTS}}
    for key, value in ports.items():
        if value > 65535:
            raise ConfigError(
                f"{where}.{key}: {value} is past 65535 (set proxy.blue_port and "
                "proxy.green_port)"
            )
    if len(set(ports.values())) < len(ports):
        shown = ", ".join(f"{k}={v}" for k, v in ports.items())
        raise ConfigError(
            f"{where}: port, proxy.blue_port and proxy.green_port must differ "
            f"(got {shown})"
        )


def _health_check(url: str, check: dict[str, Any]) -> HealthCheck:
    values = {key: check.get(key, spec.default) for key, spec in CHECK_SCHEMA.items()}
    path = str(values.pop("path"))
    for key in ("max_response_time", "timeout"):
        if values[key] is not None:
            values[key] = float(values[key])
    return HealthCheck(url=url.rstrip("/") + "/" + path.lstrip("/"), **values)
