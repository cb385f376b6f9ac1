"""The command line's own rules: a mistyped task or flag is bad input, exit 2.

invoke (and fab) exit 1 for their parse errors; here every kind of bad input exits
2 with one line, nothing changed. :class:`CicdProgram` is the ``cicd`` / ``python -m
cicd`` program; :func:`exit_2_on_parse_errors` gives the ``invoke`` and ``fab``
programs the same rule from ``tasks.py`` and ``fabfile.py``, which they load before
they parse the task names (core flags such as ``invoke --bogus`` are parsed earlier,
and keep invoke's own exit 1).
"""

from __future__ import annotations

from typing import Any

from invoke.exceptions import Exit, ParseError
from invoke.program import Program

#: The exit code of bad input (see :mod:`cicd.errors`).
USAGE = 2


def _parse_tasks_exit_2(original: Any) -> Any:
    def parse_tasks(self: Program) -> None:
        try:
            original(self)
        except ParseError as error:
            raise Exit(f"error: {error}", code=USAGE) from None

    parse_tasks.wrapped = True  # type: ignore[attr-defined]
    return parse_tasks


class CicdProgram(Program):
    """invoke's Program, with exit 2 for an unknown task or flag."""

    parse_tasks = _parse_tasks_exit_2(Program.parse_tasks)


def exit_2_on_parse_errors() -> None:
    """Make the running ``invoke``/``fab`` program exit 2 on a task parse error."""
    if not getattr(Program.parse_tasks, "wrapped", False):
        wrapped = _parse_tasks_exit_2(Program.parse_tasks)
        Program.parse_tasks = wrapped  # type: ignore[method-assign]
