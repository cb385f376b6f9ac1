"""Commands as data: builders return :class:`Command` values, never shell strings.

A builder is a pure function (no I/O), so unit tests assert on the argv it returns and
the one runner (:mod:`cicd.transport.runner`) is the only place that turns a command
into a shell
line, quoting every value exactly once with :func:`shlex.quote`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Command:
    """One program invocation: argv, plus an optional working directory and env.

    Attributes:
        argv: The program and its arguments, unquoted.
        cwd: Directory to run in, on the target.
        env: Extra environment variables for this command only.
    """

    argv: tuple[str, ...]
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("a command needs at least a program name")
        for name, _ in self.env:
            if not _ENV_NAME.match(name):
                raise ValueError(f"invalid environment variable name: {name!r}")

    def render(self) -> str:
        """Return the shell line for this command, every value quoted once."""
        line = shlex.join(self.argv)
        if self.env:
            assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env)
            line = f"env {assignments} {line}"
        if self.cwd:
            line = f"cd {shlex.quote(self.cwd)} && {line}"
        return line

    def __str__(self) -> str:
        return self.render()


def cmd(
    *argv: str, cwd: str | None = None, env: dict[str, str] | None = None
) -> Command:
    """Build a :class:`Command` from positional argv words.

    Args:
        *argv: Program and arguments.
        cwd: Directory to run in.
        env: Extra environment variables.

    Returns:
        The command value.
    """
    return Command(tuple(argv), cwd=cwd, env=tuple(sorted((env or {}).items())))


def sh(script: str, *args: str) -> Command:
    """Build ``sh -c SCRIPT sh ARGS...``: a constant script with quoted arguments.

    The script text is written by us and never contains a value; values reach it
    only as positional parameters (``"$1"``...), so no value is ever parsed as shell.

    Args:
        script: A constant POSIX shell script.
        *args: Values bound to ``$1``, ``$2``...

    Returns:
        The command value.
    """
    return Command(("sh", "-c", script, "sh", *args))
