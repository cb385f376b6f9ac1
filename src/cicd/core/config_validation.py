"""Whether a ``[tool.cicd]`` table follows :data:`~cicd.core.config_schema.SCHEMA`.

Two passes, each failing with a :class:`~cicd.core.errors.ConfigError` whose one-line
message names the key to fix: :func:`check_shape` checks the user's own tables (known
keys, types) before anything is merged; :func:`check_rules` checks every key's rule
(choices, bounds, placeholders) on an environment's merged table.
"""

from __future__ import annotations

import re
from typing import Any

from cicd.core.config_schema import CHECK_KEYS, CHECK_SCHEMA, SLOTS, Key
from cicd.core.errors import ConfigError
from cicd.core.smoke import SmokePage


def require_table(value: Any, name: str, what: str = "a table") -> None:
    """Fail unless ``value`` is a table (``what`` says which, in the message)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: expected {what}")


def check_shape(table: dict[str, Any], shape: dict[str, Any], where: str) -> None:
    """Every key of ``table`` is one of ``shape``'s, with the type of its default.

    Args:
        table: A table as the user wrote it.
        shape: The defaults it may override (their types are the keys' types).
        where: The table's dotted name, for messages.

    Raises:
        ConfigError: A key is unknown or has the wrong type.
    """
    for key, value in table.items():
        name = f"{where}.{key}"
        _check_known(key, shape, name)
        expected = shape[key]
        if key in ("env", "host"):
            require_table(value, name, f"a table of {key} names")
        elif key == "environment":
            _check_string_table(value, name)
        elif key == "checks":
            _check_checks(value, name)
        elif key == "pages":
            _check_pages(value, name)
        elif isinstance(expected, dict):
            require_table(value, name)
            check_shape(value, expected, name)
        else:
            _check_type(value, expected, name)


def _check_known(key: str, known: dict[str, Any], name: str) -> None:
    if key not in known:
        listed = ", ".join(sorted(known))
        raise ConfigError(f"{name}: unknown key (known keys: {listed})")


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
        require_table(item, where)
        for key, item_value in item.items():
            _check_known(key, CHECK_KEYS, f"{where}.{key}")
            expected = CHECK_KEYS[key]
            if isinstance(item_value, bool) or not isinstance(item_value, expected):
                raise ConfigError(f"{where}.{key}: wrong type: {item_value!r}")
            _check_rule(CHECK_SCHEMA[key], item_value, f"{where}.{key}")


def _check_pages(value: Any, name: str) -> None:
    """``smoke.pages``: tables each a :class:`~cicd.core.smoke.SmokePage`."""
    if not isinstance(value, list):
        raise ConfigError(f"{name}: expected an array of tables")
    for index, item in enumerate(value):
        where = f"{name}[{index}]"
        require_table(item, where)
        for key, item_value in item.items():
            if isinstance(item_value, str) and "\n" in item_value:
                raise ConfigError(f"{where}.{key}: expected one line of text")
        try:
            SmokePage.from_mapping(item)
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None


def check_rules(schema: dict[str, Any], data: dict[str, Any], where: str) -> None:
    """Apply every key's rule to a merged table (types were checked already).

    Raises:
        ConfigError: A value breaks its key's rule.
    """
    for key, spec in schema.items():
        if isinstance(spec, dict):
            check_rules(spec, data[key], f"{where}.{key}")
        else:
            _check_rule(spec, data[key], f"{where}.{key}")


def _check_rule(spec: Key, value: Any, name: str) -> None:
    """Check one value against its key's rule (choices, bounds, placeholders)."""
    if spec.choices and isinstance(value, list):
        for item in value:
            _check_rule(Key(spec.default, spec.doc, choices=spec.choices), item, name)
    elif spec.choices and value not in spec.choices:
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
    if spec.patterns:
        for pattern in value:
            _check_pattern(pattern, name)
    if spec.placeholders is not None:
        templates = value.values() if isinstance(value, dict) else [value]
        for template in templates:
            _check_template(template, name, spec.placeholders)


def _check_pattern(pattern: str, name: str) -> None:
    """A regular expression compiles: a typo fails at load, not in a pre-flight."""
    try:
        re.compile(pattern)
    except re.error as error:
        raise ConfigError(
            f"{name}: {pattern!r} is not a regular expression ({error})"
        ) from None


def _check_template(template: str, where: str, names: tuple[str, ...]) -> None:
    """A template may only name its placeholders: a typo fails at load, not later."""
    try:
        template.format(**{n: "" for n in names})
    except (KeyError, IndexError, ValueError) as error:
        known = ", ".join("{" + n + "}" for n in names)
        raise ConfigError(
            f"{where}: unknown placeholder {error} in {template!r} (known: {known})"
        ) from None


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
