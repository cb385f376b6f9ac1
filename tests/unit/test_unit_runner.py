"""The runner's scripts: deferred commands and reads ahead, on a real local shell.

Each test counts the shells the runner started (every script appends a line to a
file), so "one round trip" is measured, not assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from invoke.context import Context

from cicd.commands import Command, cmd, sh
from cicd.core.errors import CommandFailed
from cicd.transport.runner import Runner, flush_all


class Counting(Runner):
    """A local runner that counts the shell lines it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    def execute(self, line: str, *, shown: Any = ()) -> Any:
        self.sent.append(line)
        return super().execute(line, shown=shown)


def write(path: Path, text: str) -> Command:
    return sh('printf "%s\\n" "$2" >> "$1"', str(path), text)


def test_deferred_commands_run_first_in_the_same_shell(tmp_path: Path) -> None:
    runner = Counting(Context())
    log = tmp_path / "log"
    seen: list[str] = []
    runner.defer(write(log, "one"))
    runner.defer(sh('echo "said $1"', "two"), then=lambda r: seen.append(r.stdout))
    assert not log.exists() and runner.pending == 2  # nothing ran yet
    result = runner.run(sh('cat -- "$1"; printf "no newline"; echo oops >&2', str(log)))
    assert len(runner.sent) == 1  # one shell for the three commands
    assert result.stdout == "one\nno newline" and result.stderr == "oops\n"
    assert result.ok and seen == ["said two\n"] and runner.pending == 0


def test_a_deferred_command_that_fails_stops_the_script_and_names_itself(
    tmp_path: Path,
) -> None:
    runner = Counting(Context())
    after = tmp_path / "after"
    runner.defer(sh('echo "cannot write" >&2; exit 3'))
    with pytest.raises(CommandFailed) as failed:
        runner.run(write(after, "never"), check=False)  # check: about this one only
    assert "cannot write" in str(failed.value) and "exit 3" in str(failed.value)
    assert "never" not in str(failed.value)
    assert not after.exists()  # nothing after the failure ran
    assert runner.run(cmd("true")).ok  # the queue is gone with it


def test_reads_ahead_are_answered_once_without_a_shell(tmp_path: Path) -> None:
    runner = Counting(Context())
    state = tmp_path / "state"
    state.write_text("A\n")
    read = cmd("cat", str(state))
    missing = cmd("cat", str(tmp_path / "missing"))
    runner.run(write(state, "B"), prefetch=[read, missing])
    assert len(runner.sent) == 1
    assert runner.run(read).stdout == "A\nB\n"
    failed = runner.run(missing, check=False)
    assert failed.exited == 1 and "No such file" in failed.stderr
    assert len(runner.sent) == 1  # both answered from the script
    assert runner.run(read).stdout == "A\nB\n" and len(runner.sent) == 2  # once


def test_another_command_forgets_what_was_read_ahead(tmp_path: Path) -> None:
    runner = Counting(Context())
    state = tmp_path / "state"
    state.write_text("old\n")
    read = cmd("cat", str(state))
    runner.run(cmd("true"), prefetch=[read])
    runner.run(sh('echo new > "$1"', str(state)))  # may change what it read
    assert runner.run(read).stdout == "new\n"
    runner.run(cmd("true"), prefetch=[read])
    runner.defer(sh('echo newer > "$1"', str(state)))  # so may a deferred one
    assert runner.run(read).stdout == "newer\n"


def test_a_script_that_exits_midway_reports_the_exit_of_that_command() -> None:
    runner = Counting(Context())
    runner.defer(cmd("true"))
    result = runner.run(Command(("exit", "4")), check=False)
    assert result.exited == 4 and len(runner.sent) == 1


def test_flush_runs_what_waits_and_nothing_otherwise(tmp_path: Path) -> None:
    runner = Counting(Context())
    runner.flush()
    assert runner.sent == []
    log = tmp_path / "log"
    runner.defer(write(log, "x"))
    flush_all()  # every runner of the process, as a task does before it ends
    assert log.read_text() == "x\n" and len(runner.sent) == 1


def test_verbose_shows_each_command_of_a_script(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runner = Runner(Context(), verbose=True)
    runner.defer(cmd("echo", "first"))
    runner.run(cmd("echo", "second"))
    assert capsys.readouterr().out == "$ echo first\n$ echo second\n"


def test_a_context_that_is_neither_local_nor_ssh_runs_each_command_alone(
    tmp_path: Path,
) -> None:
    class Recording:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def run(self, line: str, **kwargs: Any) -> Any:
            self.lines.append(line)
            return Context().run(line, **kwargs)

    context = Recording()
    runner = Runner(context)
    log = tmp_path / "log"
    runner.defer(write(log, "now"))
    assert log.read_text() == "now\n"  # ran at once, as run() would
    runner.run(cmd("true"), prefetch=[cmd("false")])
    assert len(context.lines) == 2  # no script, no read ahead


def test_reads_ahead_of_whatever_runs_next(tmp_path: Path) -> None:
    runner = Counting(Context())
    page = tmp_path / "page"
    probe = cmd("cat", str(page))
    runner.ahead([probe])
    runner.run(sh('echo "v2 ok" > "$1"', str(page)))  # a restart, say
    assert runner.run(probe).stdout == "v2 ok\n" and len(runner.sent) == 1
    runner.ahead([probe])
    runner.run(sh('echo "v3 ok" > "$1"', str(page)))
    runner.run(cmd("true"))  # ran in between: what was read is stale
    assert runner.run(probe).stdout == "v3 ok\n" and len(runner.sent) == 4
