"""The errors a task can end with, each carrying the exit code a user sees.

Exit codes: 1 a deploy, rollback or check failed; 2 bad input or a refusal, with
nothing changed; 3 the environment is locked by another run.
"""

from __future__ import annotations


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
        detail = self.stderr.splitlines()[-1] if self.stderr else "no error output"
        super().__init__(f"command failed (exit {exited}): {command}: {detail}")


class ConnectionLost(CicdError):
    """The SSH connection to a host failed or dropped; the message says which."""
