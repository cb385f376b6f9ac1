"""The errors a task can end with, each carrying the exit code a user sees.

Exit codes: 1 a deploy, rollback or check failed; 2 bad input or a refusal, with
nothing changed; 3 the environment is locked by another run.
"""

from __future__ import annotations

import re

#: Longest value shown in a message; longer ones are cut (a 10 kB --sha is bad input).
CLIP = 200
SHELL_PREFIX = re.compile(r"^(sh|bash|dash): (line )?\d+: ")
#: Lines that repeat that a tool failed without saying why (tar's closing lines,
#: and its "Broken pipe" when its compressing child died first, in either order);
#: another line names the path and the OS's reason.
TRAILERS = re.compile(
    r"Error is not recoverable|Exiting with failure status due to previous errors"
    r"|Child returned status \d+|Cannot write: Broken pipe"
)


def clip(text: str, limit: int = CLIP) -> str:
    r"""One line, at most ``limit`` characters: newlines shown as ``\n``."""
    one_line = text.replace("\r", "\\r").replace("\n", "\\n")
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


class CicdError(Exception):
    """Base class: a failure a user can read and act on, with its exit code."""

    exit_code = 1


class UsageError(CicdError):
    """Bad input, invalid configuration or a refusal; nothing was changed."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration is invalid; the message names the key."""


class LockHeld(CicdError):
    """Another run holds the environment's lock; the message names the holder."""

    exit_code = 3


class CommandFailed(CicdError):
    """A command on the target exited non-zero."""

    def __init__(self, command: str, exited: int, stderr: str) -> None:
        self.command = command
        self.exited = exited
        self.stderr = stderr.strip()
        # The OS's own words (``cannot create /srv/x/ledger.jsonl: Read-only file
        # system``), not our quoted script; the command stays in ``.command``.
        if self.stderr:
            detail = SHELL_PREFIX.sub("", _telling_line(self.stderr.splitlines()))
        else:
            program = command.split()[0] if command.split() else "?"
            shown = "a shell step" if program == "sh" else program
            detail = f"{shown} gave no error output"
        # Room for a long path with the OS's reason (the task's line clips at 400).
        super().__init__(f"{clip(detail, 300)} (exit {exited})")


def _telling_line(lines: list[str]) -> str:
    """The last line that says why, skipping the tools' generic closing lines."""
    telling = [line for line in lines if line.strip() and not TRAILERS.search(line)]
    return (telling or lines)[-1]


class ConnectionLost(CicdError):
    """The SSH connection to a host failed or dropped; the message says which."""


class UpdateRolledBack(CicdError):
    """The swarm rolled the update back (or paused it): the new image never took."""
