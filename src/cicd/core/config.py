"""Configuration in one place: the ``[tool.cicd]`` table of ``pyproject.toml``.

With no table at all the embedded default applies: the target is ``.cicd/`` in the
checkout, the source is this repository, and supervisord runs the app of
``10_preprod`` on 127.0.0.1:8500 (preprod) and 127.0.0.1:8501 (prod).

Every key can be set at the top of ``[tool.cicd]`` and overridden per environment in
``[tool.cicd.env.NAME]``. Secrets never live here: ``DISCORD_WEBHOOK_URL``,
``GITHUB_TOKEN`` and ``CICD_GITHUB_TOKEN`` come from the environment only. An unknown
key or a value of the wrong type is a :class:`~cicd.core.errors.ConfigError` naming the
key.

This module finds the file (:func:`load`) and turns its table into
:class:`~cicd.core.settings.Settings` (:func:`from_table`): the keys and their rules
are in :mod:`cicd.core.config_schema`, the checks in :mod:`cicd.core.config_validation`,
the typed settings in :mod:`cicd.core.settings`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from cicd.core import record
from cicd.core.config_schema import DEFAULTS, ENV_DEFAULTS
from cicd.core.config_validation import check_shape, require_table
from cicd.core.errors import ConfigError
from cicd.core.settings import EnvSettings, Settings, build_env, merge

CONFIG_VARIABLE = "CICD_CONFIG"


def find_pyproject(start: Path) -> Path | None:
    """Return the nearest ``pyproject.toml`` at or above ``start`` that is ours.

    Ours means it has a ``[tool.cicd]`` table or is the ``cicd`` project itself.
    """
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            data = _read_toml(candidate)
            project = data.get("project", {}).get("name")
            if "cicd" in data.get("tool", {}) or project == "cicd":
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
        tool = _tool(path)
        settings = from_table(tool.get("cicd", {}), project_dir=path.parent, path=path)
        # Only the cicd project's own pyproject.toml has no table: the default.
        _LOADED[key] = dataclasses.replace(settings, explicit="cicd" in tool)
    return _LOADED[key]


def _tool(path: Path) -> dict[str, Any]:
    """The file's ``[tool]`` table (empty when it has none, or not a table)."""
    tool = _read_toml(path).get("tool", {})
    return tool if isinstance(tool, dict) else {}


def _found_config() -> tuple[Path, str]:
    """The configuration of a task run without ``CICD_CONFIG``, and its origin.

    A ``[tool.cicd]`` table above the current directory comes first; then the
    record ``setup`` wrote for this user (:mod:`cicd.host.record`), so that on a VM
    ``cicd status`` works from any directory, even inside a checkout of the cicd
    project itself; last, that project's embedded default.
    """
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
    check_shape(table, {**DEFAULTS, "host": {}}, "tool.cicd")
    top = {k: v for k, v in table.items() if k not in ("env", "host")}
    user_envs = _overrides(table, "env")
    hosts = _overrides(table, "host")
    # Precedence, lowest first: built-in defaults, built-in per-environment
    # defaults, the user's top-level keys, the user's per-environment keys.
    envs = {}
    raw = {}
    for name in [*ENV_DEFAULTS, *(n for n in user_envs if n not in ENV_DEFAULTS)]:
        data = merge(_env_shape(), ENV_DEFAULTS.get(name, {}))
        raw[name] = merge(merge(data, top), user_envs.get(name, {}))
        envs[name] = build_env(name, raw[name], f"tool.cicd.env.{name}")
        # A host's overrides are checked with each environment it runs.
        for host in envs[name].hosts:
            if host in hosts:
                build_env(name, merge(raw[name], hosts[host]), f"tool.cicd.host.{host}")
    _check_ports_across(envs)
    return Settings(project_dir, path, envs, raw, hosts)


def _overrides(table: dict[str, Any], kind: str) -> dict[str, Any]:
    """The ``[tool.cicd.KIND.NAME]`` tables (``env`` or ``host``), shapes checked."""
    overrides: dict[str, Any] = table.get(kind, {})
    for name, override in overrides.items():
        where = f"tool.cicd.{kind}.{name}"
        require_table(override, where)
        check_shape(override, _env_shape(), where)
    return overrides


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
    """The keys an environment (or a host) may set: all but ``env`` and ``host``."""
    return {k: v for k, v in DEFAULTS.items() if k not in ("env", "host")}
