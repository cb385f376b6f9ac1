"""Unit tests of :mod:`cicd.core.errors`: messages and exit codes a user sees."""

from __future__ import annotations

from cicd.core.errors import CicdError, CommandFailed, ConfigError, LockHeld, UsageError


def test_command_failed_names_exit_code_and_last_stderr_line() -> None:
    error = CommandFailed(
        "git -C /repo fetch", 128, "warning: old\nfatal: could not read\n"
    )

    assert str(error) == "fatal: could not read (exit 128)"
    assert (error.command, error.exited) == ("git -C /repo fetch", 128)
    assert error.stderr == "warning: old\nfatal: could not read"
    assert error.exit_code == 1


def test_command_failed_without_error_output() -> None:
    assert str(CommandFailed("false", 1, "  \n")) == (
        "false gave no error output (exit 1)"
    )


def test_command_failed_says_what_the_os_said_not_the_script() -> None:
    error = CommandFailed(
        'sh -c \'f="$1"; printf ... >> "$f"\' sh /srv/x/ledger.jsonl',
        2,
        "sh: 1: cannot create /srv/x/ledger.jsonl: Read-only file system\n",
    )
    assert str(error) == (
        "cannot create /srv/x/ledger.jsonl: Read-only file system (exit 2)"
    )
    assert str(CommandFailed("sh -c x", 1, "")) == (
        "a shell step gave no error output (exit 1)"
    )


def test_clip_keeps_messages_on_one_short_line() -> None:
    from cicd.core.errors import clip

    assert clip("a\nb") == "a\\nb"
    long = clip("x" * 10_000)
    assert len(long) == 200 and long.endswith("…")


def test_exit_codes() -> None:
    assert CicdError.exit_code == 1
    assert UsageError.exit_code == ConfigError.exit_code == 2
    assert LockHeld.exit_code == 3
    assert issubclass(CommandFailed, CicdError)


def test_tars_closing_lines_give_way_to_the_line_that_says_why() -> None:
    stderr = (
        "tar (child): /srv/m/prod/backups/x.tar.gz.tmp.7: Cannot open: Read-only "
        "file system\ntar (child): Error is not recoverable: exiting now\n"
        "tar: /srv/m/prod/backups/x.tar.gz.tmp.7: Cannot write: Broken pipe\n"
        "tar: Child returned status 2\ntar: Error is not recoverable: exiting now\n"
    )
    assert str(CommandFailed("sh -c ...", 2, stderr)) == (
        "tar (child): /srv/m/prod/backups/x.tar.gz.tmp.7: Cannot open: Read-only "
        "file system (exit 2)"
    )
