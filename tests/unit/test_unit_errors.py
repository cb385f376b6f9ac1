"""Unit tests of :mod:`cicd.errors`: messages and exit codes a user sees."""

from __future__ import annotations

from cicd.errors import CicdError, CommandFailed, ConfigError, LockHeld, UsageError


def test_command_failed_names_exit_code_and_last_stderr_line() -> None:
    error = CommandFailed(
        "git -C /repo fetch", 128, "warning: old\nfatal: could not read\n"
    )

    assert str(error) == (
        "command failed (exit 128): git -C /repo fetch: fatal: could not read"
    )
    assert (error.command, error.exited) == ("git -C /repo fetch", 128)
    assert error.stderr == "warning: old\nfatal: could not read"
    assert error.exit_code == 1


def test_command_failed_without_error_output() -> None:
    assert str(CommandFailed("false", 1, "  \n")) == (
        "command failed (exit 1): false: no error output"
    )


def test_exit_codes() -> None:
    assert CicdError.exit_code == 1
    assert UsageError.exit_code == ConfigError.exit_code == 2
    assert LockHeld.exit_code == 3
    assert issubclass(CommandFailed, CicdError)
