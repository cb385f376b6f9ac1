"""Sphinx directive ``cicd-layers``: the package's layers, generated from the code.

Each layer's purpose is the first paragraph of its package's ``__init__`` docstring;
its modules, their line counts and one-line purposes are read from the files. The
layer order, and the rule that imports only point down, are
:mod:`tools.architecture`'s, the module ``tests/unit/test_unit_architecture.py``
checks them with: the page cannot drift from the code.

Usage::

    .. cicd-layers::
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

REPO = Path(__file__).resolve().parents[3]


def _architecture() -> Any:
    """:mod:`tools.architecture`, importable from the repository's root."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tools import architecture

    return architecture


def summary(path: Path) -> str:
    """A module's purpose: its docstring's first line ("" without one)."""
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    return docstring.split("\n", 1)[0].strip()


def purpose(path: Path) -> str:
    """A package's purpose: its ``__init__`` docstring's first paragraph, joined."""
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    first, _, rest = docstring.partition("\n\n")
    detail = " ".join(rest.split("\n\n", 1)[0].split())
    return f"{first.strip()} {detail}".strip()


def layer_lines(architecture: Any) -> list[str]:
    """The reStructuredText of every layer, top first."""
    found = architecture.modules()
    lines: list[str] = []
    for layer in reversed(architecture.LAYERS):
        members = sorted(
            (m for m in found.values() if m.layer == layer), key=lambda m: m.name
        )
        if not layer:
            title, about = "cicd (the top)", "The entry points: cli, demo, __main__."
        else:
            package = next(m for m in members if m.path.name == "__init__.py")
            title, about = f"cicd.{layer}", purpose(package.path)
        total = sum(m.lines for m in members)
        lines += [f"``{title}`` — {total} lines", "", f"   {about}", ""]
        for module in members:
            if module.path.name == "__init__.py" and layer:
                continue
            said = summary(module.path) or "(no docstring)"
            lines.append(f"   - ``{module.name}`` ({module.lines}): {said}")
        lines.append("")
    return lines


class Layers(SphinxDirective):
    """Render the layers, top to bottom, with their modules."""

    def run(self) -> list[nodes.Node]:
        """Read the package and build the list."""
        self.env.note_reread()  # a new module shows up with no page changed
        container = nodes.container()
        content = StringList(layer_lines(_architecture()), source="<cicd-layers>")
        self.state.nested_parse(content, 0, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("cicd-layers", Layers)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
