"""Sphinx directive ``remaining-modules``: autodoc for modules the page forgot.

Placed at the end of the API reference, it lists every module of a package that no
``automodule`` above documented, and documents each with ``automodule``, so a new
module appears in the reference on the next build without anyone editing the page.

Usage::

    .. remaining-modules:: cicd
       :exclude: cicd.tasks cicd.__main__
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def modules_of(package: str) -> list[str]:
    """Dotted names of a package and every module below it."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        names.append(info.name)
    return sorted(names)


class RemainingModules(SphinxDirective):
    """Run ``automodule`` for each undocumented module of a package."""

    required_arguments = 1
    option_spec = {"exclude": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        """Find the modules not yet documented in this document and add them."""
        # A new module must show up even when no page changed.
        self.env.note_reread()
        excluded = self.options.get("exclude", "").split()
        documented = set(self.env.domaindata["py"]["modules"])
        missing = [
            name
            for name in modules_of(self.arguments[0])
            if name not in documented
            and not any(name == e or name.startswith(e + ".") for e in excluded)
        ]
        if not missing:
            return [nodes.paragraph(text="Every module is documented above.")]
        lines: list[str] = []
        for name in missing:
            lines += [f".. rubric:: {name}", "", f".. automodule:: {name}"]
            lines += ["   :members:", ""]
        container = nodes.container()
        content = StringList(lines, source="<remaining-modules>")
        self.state.nested_parse(content, 0, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("remaining-modules", RemainingModules)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
