"""The command line's own rules: a mistyped task or flag is bad input, exit 2.

invoke (and fab) exit 1 for their parse errors; here every kind of bad input exits
2 with one line, nothing changed: an unknown task or flag, a value a typed option
cannot read, a ``fab -H`` host that is not one. :class:`CicdProgram` is the
``cicd`` / ``python -m cicd`` program; :func:`exit_2_on_parse_errors` gives the
``invoke`` and ``fab`` programs the same rule from ``tasks.py`` and ``fabfile.py``,
which they load before they parse the task names (core flags such as ``invoke
--bogus`` are parsed earlier, and keep invoke's own exit 1).
"""

from __future__ import annotations

from typing import Any

from invoke.exceptions import Exit, ParseError
from invoke.program import Program

from cicd.core.errors import UsageError, clip
from cicd.core.inputs import check_host
from cicd.core.redact import redact

#: The exit code of bad input (see :mod:`cicd.core.errors`).
USAGE = 2


def _parse_tasks_exit_2(original: Any) -> Any:
    def parse_tasks(self: Program) -> None:
        try:
            original(self)
            _check_hosts(self)
        except (ParseError, UsageError, ValueError) as error:
            # ValueError: a typed option given what its type cannot read (invoke
            # converts while parsing). The message quotes the value: clipped.
            raise Exit(f"error: {clip(redact(str(error)), 400)}", code=USAGE) from None

    parse_tasks.wrapped = True  # type: ignore[attr-defined]
    return parse_tasks


def _check_hosts(program: Program) -> None:
    """Refuse ``fab -H`` hosts that are not hosts, before fabric connects to any.

    fabric reads ``name:port`` itself when it builds the connection (a port that is
    not a number is a traceback there), so the rule applies here, at parse time.

    Raises:
        UsageError: A host with shell metacharacters, spaces, a bad port...
    """
    args = program.core[0].args if program.core else {}
    given = args["hosts"].value if "hosts" in args else None
    for name in given.split(",") if given else []:
        check_host(name)


class CicdProgram(Program):
    """invoke's Program, with exit 2 for an unknown task or flag."""

    parse_tasks = _parse_tasks_exit_2(Program.parse_tasks)


def exit_2_on_parse_errors() -> None:
    """Make the running ``invoke``/``fab`` program exit 2 on a task parse error."""
    if not getattr(Program.parse_tasks, "wrapped", False):
        wrapped = _parse_tasks_exit_2(Program.parse_tasks)
        Program.parse_tasks = wrapped  # type: ignore[method-assign]
