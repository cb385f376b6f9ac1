"""The typed settings: what the rest of the code reads, built from merged tables.

:class:`Settings` is the whole configuration, :class:`EnvSettings` one environment
with its sections (:class:`RuntimeSettings`, :class:`ProxySettings`, ...). Each is
filled field by field from an environment's merged table (:func:`build_env`), whose
keys are those of :data:`~cicd.core.config_schema.SCHEMA`; :func:`merge` is the rule
that lays one table over another. :mod:`cicd.core.config` finds and reads the file.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cicd.core.config_schema import CHECK_SCHEMA, SCHEMA, SLOTS
from cicd.core.config_validation import check_rules, check_slot_ports
from cicd.core.errors import ConfigError
from cicd.core.health_check import HealthCheck
from cicd.core.smoke import SmokePage
from cicd.core.window import Window, parse_window


@dataclass(frozen=True)
class RuntimeSettings:
    """How the app is run on the target: supervisord, docker compose or a swarm."""

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


@dataclass(frozen=True)
class SmokeSettings:
    """The browser smoke of every page, and what an error in the app's log is."""

    pages: tuple[SmokePage, ...]
    max_load: float
    log_errors: tuple[str, ...]
    on_deploy: bool


@dataclass(frozen=True)
class BackupSettings:
    """How fresh a tested restore of a backup must be, in days."""

    restore_check: float


#: The dataclass of each section of :data:`SCHEMA`.
SECTIONS: dict[str, type] = {
    "runtime": RuntimeSettings,
    "proxy": ProxySettings,
    "health": HealthSettings,
    "smoke": SmokeSettings,
    "backup": BackupSettings,
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
    window: str
    preflight: tuple[str, ...]
    runtime: RuntimeSettings
    proxy: ProxySettings
    health: HealthSettings
    monitor: MonitorSettings
    notify: NotifySettings
    ci: CiSettings
    smoke: SmokeSettings
    backup: BackupSettings

    def deploy_window(self) -> Window | None:
        """The deploy window (``window``), or None when any time will do."""
        return parse_window(self.window, f"tool.cicd.env.{self.name}.window")

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
            ConfigError: The environment is not configured, or the host's overrides
                break a rule.
        """
        if name not in self.envs:
            known = ", ".join(sorted(self.envs))
            raise ConfigError(f"unknown environment {name!r} (known: {known})")
        if host is None or host not in self.host_overrides:
            return self.envs[name]
        data = merge(self.raw[name], self.host_overrides[host])
        return build_env(name, data, f"tool.cicd.host.{host}")


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Lay ``override`` over ``base``: the configuration's one precedence rule.

    Tables merge key by key, ``environment`` (the app's variables) one variable at a
    time; any other value of ``override`` replaces the one of ``base``. Neither
    argument is changed.
    """
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            if key == "environment":
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def build_env(name: str, data: dict[str, Any], where: str) -> EnvSettings:
    """Check an environment's merged table against every rule and build its settings.

    Args:
        name: The environment's name.
        data: Its merged table (keys and types already checked).
        where: The table's dotted name, for messages.

    Raises:
        ConfigError: A value breaks its key's rule, or the keys disagree.
    """
    if not name.isidentifier():
        raise ConfigError(f"{where}: environment names are letters, digits and _")
    check_rules(SCHEMA, data, where)
    parse_window(data["window"], f"{where}.window")
    url = data["url"].format(port=data["port"], env=name)
    checks = tuple(_health_check(url, check) for check in data["health"]["checks"])
    pages = tuple(SmokePage.from_mapping(page) for page in data["smoke"]["pages"])
    tables = {
        "runtime": _runtime_table(name, data, where),
        "proxy": _proxy_table(data, where),
    }
    sections = {
        key: _section(
            cls,
            tables.get(key, data[key]),
            **({"checks": checks} if key == "health" else {}),
            **({"pages": pages} if key == "smoke" else {}),
        )
        for key, cls in SECTIONS.items()
    }
    result: EnvSettings = _section(EnvSettings, data, name=name, url=url, **sections)
    return result


def _runtime_table(name: str, data: dict[str, Any], where: str) -> dict[str, Any]:
    """The runtime section with ``{env}`` filled in its file and project names."""
    runtime = dict(data["runtime"])
    for key in ("compose_file", "project", "stack_file"):
        runtime[key] = runtime[key].format(env=name)
    if runtime["kind"] == "swarm" and len(data["hosts"]) > 1:
        # One ledger and one lock for the environment: on the manager.
        raise ConfigError(
            f"{where}.hosts: the swarm runtime runs from the swarm's manager: list "
            "one host (or none), its nodes come from the swarm "
            f"(got {len(data['hosts'])})"
        )
    return runtime


def _proxy_table(data: dict[str, Any], where: str) -> dict[str, Any]:
    """The proxy section with the slots' ports derived where they are 0."""
    proxy = {
        **data["proxy"],
        "blue_port": data["proxy"]["blue_port"] or _slot_port(data["port"], 10000),
        "green_port": data["proxy"]["green_port"] or _slot_port(data["port"], 20000),
    }
    if proxy["kind"] == "haproxy":
        # "auto" is checked once the host is known to have haproxy
        # (Target.is_proxied): without it, slot ports are never used.
        check_slot_ports(data["port"], proxy, where)
    return proxy


def _slot_port(port: int, offset: int) -> int:
    """A slot's derived port: above ``port``, or below it for a high ``port``."""
    return port + offset if port + 20000 <= 65535 else port - offset


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


def _health_check(url: str, check: dict[str, Any]) -> HealthCheck:
    """One table of ``health.checks``: its path joined to ``url``, times as floats."""
    values = {key: check.get(key, spec.default) for key, spec in CHECK_SCHEMA.items()}
    path = str(values.pop("path"))
    for key in ("max_response_time", "timeout"):
        if values[key] is not None:
            values[key] = float(values[key])
    return HealthCheck(url=url.rstrip("/") + "/" + path.lstrip("/"), **values)
