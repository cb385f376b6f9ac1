"""Sphinx directive ``cicd-config``: configuration tables generated from the code.

Keys, defaults and meanings all come from :data:`cicd.core.config_schema.SCHEMA` (or
:data:`~cicd.core.config_schema.CHECK_SCHEMA` for health checks,
:data:`~cicd.core.config_schema.ENV_DEFAULTS` for the built-in per-environment
values): the reference cannot fall behind ``config_schema.py``, and a key without a
meaning is a build warning (an error under ``sphinx-build -W``).

Usage::

    .. cicd-config:: defaults

    .. cicd-config:: checks

    .. cicd-config:: environments
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

#: Tables whose content is one value, not more keys.
LEAF_TABLES = {"environment"}


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


def schema_rows(schema: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key → its :class:`~cicd.core.config_schema.Key`, in schema order."""
    rows: dict[str, Any] = {}
    for key, spec in schema.items():
        if isinstance(spec, dict):
            rows.update(schema_rows(spec, f"{prefix}{key}."))
        else:
            rows[f"{prefix}{key}"] = spec
    return rows


def rows_for(kind: str) -> dict[str, tuple[str, str | None]]:
    """Key → (default as TOML or a dash, meaning) for one table kind."""
    from cicd.core import config_schema

    if kind == "defaults":
        return {
            key: (toml_value(spec.default), spec.doc)
            for key, spec in schema_rows(config_schema.SCHEMA).items()
        }
    if kind == "checks":
        return {
            key: ("—" if spec.default is None else toml_value(spec.default), spec.doc)
            for key, spec in config_schema.CHECK_SCHEMA.items()
        }
    if kind == "environments":
        return {
            f"env.{env}.{key}": (toml_value(value), None)
            for env, table in config_schema.ENV_DEFAULTS.items()
            for key, value in flatten(table).items()
        }
    raise ValueError(f"unknown table {kind!r} (defaults, checks, environments)")


class CicdConfig(SphinxDirective):
    """Render one configuration table: key, default, meaning."""

    required_arguments = 1
    has_content = True

    def run(self) -> list[nodes.Node]:
        """Build the table; warn about keys without a meaning."""
        from cicd.core import config_schema

        self.env.note_dependency(config_schema.__file__)
        kind = self.arguments[0]
        try:
            rows = rows_for(kind)
        except ValueError as error:
            logger.warning(f"cicd-config: {error}", location=self.get_location())
            return []
        if self.content:
            logger.warning(
                "cicd-config: meanings live in cicd.core.config_schema.SCHEMA, "
                "not in the page",
                location=self.get_location(),
            )
        with_meaning = kind != "environments"
        for key, (_, meaning) in rows.items():
            if with_meaning and not meaning:
                logger.warning(
                    f"cicd-config {kind}: key {key} is not documented",
                    location=self.get_location(),
                )
        columns = ["key", "default"] + (["meaning"] if with_meaning else [])
        widths = "40 60" if len(columns) == 2 else "22 28 50"
        lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
        lines += [f"   {'*' if i == 0 else ' '} - {c}" for i, c in enumerate(columns)]
        for key, (default, meaning) in rows.items():
            cells = [f"``{key}``", default if default == "—" else f"``{default}``"]
            if with_meaning:
                cells.append(meaning or "—")
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
