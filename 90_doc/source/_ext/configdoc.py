"""Sphinx directive ``cicd-config``: configuration tables checked against the code.

The keys and their defaults come from :data:`cicd.config.DEFAULTS` (or
:data:`cicd.config.CHECK_KEYS` for health checks); only the meanings are written in
the page, as a field list. A key of the code with no meaning, or a meaning for a key
the code does not have, is a build warning (an error under ``sphinx-build -W``), so
the reference cannot fall behind ``config.py``.

Usage::

    .. cicd-config:: defaults

       :root: Directory of the target root.
       :runtime.kind: ``supervisor`` or ``compose``.

    .. cicd-config:: checks

       :path: ...

    .. cicd-config:: environments
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

#: Tables whose content is one value, not more keys.
LEAF_TABLES = {"environment"}
FIELD = re.compile(r"^:([^:]+):\s*(.*)$")


def toml_value(value: Any) -> str:
    """Render a Python value as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items())
        return "{" + pairs + "}"
    return repr(value)


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys of the leaves of a nested table, in definition order."""
    leaves: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and key not in LEAF_TABLES:
            leaves.update(flatten(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def parse_meanings(lines: list[str]) -> dict[str, str]:
    """``:key: text`` fields, with indented continuation lines, as a dict."""
    meanings: dict[str, str] = {}
    key = None
    for line in lines:
        match = FIELD.match(line)
        if match:
            key = match.group(1).strip()
            meanings[key] = match.group(2).strip()
        elif key and line.strip():
            meanings[key] += " " + line.strip()
    return meanings


def rows_for(kind: str) -> dict[str, str]:
    """Key → default (as TOML, or a dash) for one table kind."""
    from cicd import config
    from cicd.health import HealthCheck

    if kind == "defaults":
        shape = {k: v for k, v in config.DEFAULTS.items() if k != "env"}
        return {key: toml_value(value) for key, value in flatten(shape).items()}
    if kind == "checks":
        defaults = {
            f.name: f.default
            for f in dataclasses.fields(HealthCheck)
            if f.default is not dataclasses.MISSING
        }
        return {
            key: toml_value(defaults[key]) if defaults.get(key) is not None else "—"
            for key in config.CHECK_KEYS
        }
    if kind == "environments":
        return {
            f"env.{env}.{key}": toml_value(value)
            for env, table in config.DEFAULTS["env"].items()
            for key, value in flatten(table).items()
        }
    raise ValueError(f"unknown table {kind!r} (defaults, checks, environments)")


class CicdConfig(SphinxDirective):
    """Render one configuration table: key, default, meaning."""

    required_arguments = 1
    has_content = True

    def run(self) -> list[nodes.Node]:
        """Build the table and warn about undocumented or unknown keys."""
        from cicd import config

        self.env.note_dependency(config.__file__)
        kind = self.arguments[0]
        try:
            rows = rows_for(kind)
        except ValueError as error:
            logger.warning(f"cicd-config: {error}", location=self.get_location())
            return []
        meanings = parse_meanings(list(self.content))
        documented = kind == "environments" or bool(self.content)
        for key in rows:
            if documented and kind != "environments" and key not in meanings:
                logger.warning(
                    f"cicd-config {kind}: key {key} is not documented",
                    location=self.get_location(),
                )
        for key in meanings:
            if key not in rows:
                logger.warning(
                    f"cicd-config {kind}: {key} is documented but is not a key of "
                    "cicd.config",
                    location=self.get_location(),
                )
        columns = ["key", "default"] + ([] if kind == "environments" else ["meaning"])
        widths = "40 60" if len(columns) == 2 else "22 28 50"
        lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
        lines += [f"   {'*' if i == 0 else ' '} - {c}" for i, c in enumerate(columns)]
        for key, default in rows.items():
            cells = [f"``{key}``", default if default == "—" else f"``{default}``"]
            if len(columns) == 3:
                cells.append(meanings.get(key) or "—")
            lines += [f"   {'*' if i == 0 else ' '} - {c}" for i, c in enumerate(cells)]
        container = nodes.container()
        self.state.nested_parse(
            StringList(lines, source=f"<cicd-config {kind}>"), 0, container
        )
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("cicd-config", CicdConfig)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
