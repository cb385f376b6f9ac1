"""Sphinx directive ``invoke-tasks``: the task reference, generated from the code.

It imports an invoke :class:`~invoke.collection.Collection` and renders every task
as ``invoke --list`` and ``invoke --help TASK`` see it: its dotted name, aliases,
docstring, and each option with its flags, default and the help text of the task's
``help`` dict. The page therefore cannot drift from the tasks. An option without
help text is a build warning (an error under ``sphinx-build -W``).

Usage::

    .. invoke-tasks:: cicd.tasks.ns

Modelled on ``invocations.autodoc`` (pyinvoke), which documents tasks with autodoc.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)

#: Title underline characters: one for groups (collections), one for tasks. They
#: must come below the page title's character in the document's own hierarchy.
GROUP_UNDERLINE = "-"
TASK_UNDERLINE = "~"


def import_object(path: str) -> Any:
    """Import ``package.module.attribute`` (or ``package.module:attribute``)."""
    module_name, _, attribute = path.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def flags(argument: Any) -> str:
    """The option's flags as ``--help TASK`` shows them: ``-s STRING, --sha=STRING``."""
    value = "" if argument.kind is bool else f" {argument.kind.__name__.upper()}"
    if argument.kind is str:
        value = " STRING"
    parts = []
    for name in sorted(argument.names, key=len):
        dashed = name.replace("_", "-")
        if len(dashed) == 1:
            parts.append(f"-{dashed}{value}")
        else:
            parts.append(f"--{dashed}{value.replace(' ', '=')}")
    return ", ".join(parts)


def default_text(argument: Any) -> str:
    """The option's default, in words."""
    if argument.kind is bool:
        return "off" if not argument.default else "on"
    if argument.default in (None, ""):
        return "none"
    return f"``{argument.default}``"


def title(text: str, underline: str) -> list[str]:
    """An RST section title."""
    return [text, underline * len(text), ""]


def task_rst(name: str, task: Any, aliases: list[str], warn: Any) -> list[str]:
    """RST lines for one task: label, title, usage, docstring, options."""
    label = "task-" + name.replace(".", "-")
    lines = [f".. _{label}:", "", *title(f"``{name}``", TASK_UNDERLINE)]
    arguments = task.get_arguments()
    usage = f"invoke {name}" + (" [--options]" if arguments else "")
    lines += [".. code-block:: text", "", f"   {usage}", ""]
    if aliases:
        lines += ["Aliases: " + ", ".join(f"``{a}``" for a in aliases), ""]
    doc = inspect.cleandoc(task.__doc__ or "")
    if not doc:
        warn(f"task {name} has no docstring")
    lines += [*doc.splitlines(), ""]
    if arguments:
        lines += [".. list-table::", "   :header-rows: 1", "   :widths: 30 15 55", ""]
        lines += ["   * - option", "     - default", "     - meaning"]
        for argument in sorted(arguments, key=lambda a: a.name):
            help_text = " ".join((argument.help or "").split())
            if not help_text:
                warn(f"task {name}: option --{argument.name} has no help text")
                help_text = "(undocumented)"
            lines += [
                f"   * - ``{flags(argument)}``",
                f"     - {default_text(argument)}",
                f"     - {help_text}",
            ]
        lines.append("")
    return lines


def collection_rst(collection: Any, warn: Any) -> list[str]:
    """RST lines for a whole collection: its own tasks, then each subcollection."""
    aliases: dict[str, list[str]] = collection.task_names
    lines: list[str] = []
    own = sorted(collection.tasks)
    if own:
        lines += title("Tasks", GROUP_UNDERLINE)
        for name in own:
            lines += task_rst(name, collection.tasks[name], aliases[name], warn)
    for group in sorted(collection.collections):
        sub = collection.collections[group]
        lines += title(f"``{group}.*``", GROUP_UNDERLINE)
        module_doc = inspect.cleandoc(sub.__doc__ or "")
        if module_doc:
            lines += [*module_doc.splitlines()[:1], ""]
        for name in sorted(sub.tasks):
            full = f"{group}.{name}"
            lines += task_rst(full, sub.tasks[name], aliases.get(full, []), warn)
    return lines


class InvokeTasks(SphinxDirective):
    """Render every task of an invoke collection."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        """Import the collection and parse the generated RST in place."""
        path = self.arguments[0]
        # Tasks may change without the page changing: read it again every build.
        self.env.note_reread()
        try:
            collection = import_object(path)
        except (ImportError, AttributeError) as error:
            logger.warning(
                f"invoke-tasks: cannot import {path}: {error}",
                location=self.get_location(),
            )
            return []

        def warn(message: str) -> None:
            logger.warning(f"invoke-tasks: {message}", location=self.get_location())

        lines = collection_rst(collection, warn)
        container = nodes.section()
        container.document = self.state.document
        source = f"<invoke-tasks {path}>"
        content = StringList(lines, source=source)
        nested_parse_with_titles(self.state, content, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("invoke-tasks", InvokeTasks)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":  # pragma: no cover - a quick look without Sphinx
    print("\n".join(collection_rst(import_object(sys.argv[1]), print)))
