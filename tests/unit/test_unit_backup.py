"""Unit tests of the backup builders (run for real with ``sh`` and GNU tar) and of
what the ledger says of backups (stamps, recorded figures, restore checks' age).
"""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cicd.commands import Command, files
from cicd.commands import backup as commands
from cicd.core.errors import UsageError
from cicd.core.ledger import Event
from cicd.core.state import replay
from cicd.host.backup import (
    TAKEN,
    Verified,
    _known,
    check_stamp,
    last_restore_check,
)

#: A member name that would be a command if it were ever parsed by the shell.
HOSTILE = "data; touch pwned $(touch pwned2)"


def run(command: Command, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command's rendered line with ``sh -c`` in ``cwd``."""
    return subprocess.run(
        ["sh", "-c", command.render()], cwd=cwd, capture_output=True, text=True
    )


@pytest.fixture
def env(tmp_path: Path) -> Path:
    """An environment directory whose persistent member holds three files."""
    data = tmp_path / "env" / HOSTILE
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("hello\n")
    (data / "sub" / "b.bin").write_bytes(bytes(range(256)) * 40)
    (data / "empty").write_text("")
    assert (
        run(
            files.archive(str(tmp_path / "x.tar.gz"), str(data.parent), HOSTILE),
            tmp_path,
        ).returncode
        == 0
    )
    return tmp_path / "env"


def test_inspect_reads_an_archive_whole_and_counts_its_files(env: Path) -> None:
    archive = env.parent / "x.tar.gz"
    done = run(commands.inspect(str(archive)), env.parent)
    digest, size, count, data = done.stdout.split()
    assert digest == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (int(size), int(count), int(data)) == (archive.stat().st_size, 3, 6 + 10240)
    assert not list(env.parent.glob("pwned*"))


@pytest.mark.parametrize(
    ("cut", "code", "words"),
    [
        (lambda b: b[: len(b) // 2], commands.UNREADABLE, "unexpected end of file"),
        (lambda b: b[:-8] + bytes(8), commands.UNREADABLE, "gzip"),
    ],
)
def test_inspect_fails_on_a_truncated_or_altered_archive(
    env: Path, cut: object, code: int, words: str
) -> None:
    archive = env.parent / "x.tar.gz"
    archive.write_bytes(cut(archive.read_bytes()))  # type: ignore[operator]
    done = run(commands.inspect(str(archive)), env.parent)
    assert done.returncode == code and words in done.stderr, done


def test_inspect_and_extract_say_when_the_archive_is_missing(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.tar.gz")
    assert run(commands.inspect(missing), tmp_path).returncode == commands.MISSING
    into = str(tmp_path / "into")
    assert run(commands.extract(missing, into), tmp_path).returncode == commands.MISSING


def test_extract_swap_in_and_swap_back_can_each_run_again(env: Path) -> None:
    archive, staged, old = env.parent / "x.tar.gz", env / ".s", env / ".o"
    (env / HOSTILE / "a.txt").write_text("damaged\n")
    done = run(commands.extract(str(archive), str(staged)), env)
    assert done.stdout.split() == ["3", str(6 + 10240)]
    swap = commands.swap_in(str(env), str(staged), str(old), HOSTILE, "absent")
    assert run(swap, env).returncode == 0
    assert (env / HOSTILE / "a.txt").read_text() == "hello\n"
    assert (old / HOSTILE / "a.txt").read_text() == "damaged\n"
    # A second run (a restore finished by the next command) changes nothing.
    assert run(swap, env).returncode == 0
    assert (env / HOSTILE / "a.txt").read_text() == "hello\n"
    back = commands.swap_back(str(env), str(old), HOSTILE)
    assert run(back, env).returncode == 0 and run(back, env).returncode == 0
    assert (env / HOSTILE / "a.txt").read_text() == "damaged\n"
    assert not list(env.glob("pwned*")) and not list(env.parent.glob("pwned*"))


def test_a_swap_killed_between_its_two_renames_is_finished_by_the_next(
    env: Path,
) -> None:
    staged, old = env / ".s", env / ".o"
    run(commands.extract(str(env.parent / "x.tar.gz"), str(staged)), env)
    old.mkdir()
    (env / HOSTILE).rename(old / HOSTILE)  # the first rename done, not the second
    assert (
        run(commands.swap_in(str(env), str(staged), str(old), HOSTILE), env).returncode
        == 0
    )
    assert (env / HOSTILE / "a.txt").read_text() == "hello\n"
    assert (old / HOSTILE).is_dir() and not (staged / HOSTILE).exists()


@pytest.mark.parametrize(
    "stamp", ["", "2026-12-07", "20261207T1125Z", "latest", "x" * 80]
)
def test_a_stamp_not_of_a_backup_is_a_usage_error(stamp: str) -> None:
    with pytest.raises(UsageError, match="invalid backup stamp"):
        check_stamp(stamp)


def test_check_stamp_strips_the_spaces_a_paste_adds() -> None:
    assert check_stamp(" 20261207T112500Z\n") == "20261207T112500Z"


def test_the_recorded_figures_are_read_back_from_the_ledger() -> None:
    figures = Verified("ab" * 32, 12, 3456, 7890)
    archive = "/srv/my root/prod/backups/20261207T112500Z-3f1c2ab.tar.gz"
    detail = figures.detail(archive)
    assert TAKEN.match(detail)
    events = (
        Event("backup", "prod", detail=detail, time="2026-12-07T11:25:00.000000Z"),
        Event(
            "backup",
            "prod",
            outcome="failed",
            detail="verify 20261207T112500Z: x.tar.gz is corrupt",
            time="2026-12-08T09:00:00.000000Z",
        ),
    )
    known = _known("20261207T112500Z", "3f1c2ab", archive, events)
    assert known.recorded == figures
    assert known.failed.startswith("verify 20261207T112500Z")
    # Verified again later: the failure is history.
    again = Event(
        "backup", "prod", detail="verified 20261207T112500Z: 12 files", time="t2"
    )
    later = _known("20261207T112500Z", "3f1c2ab", archive, (*events, again))
    assert (later.failed, later.verified) == ("", "t2")
    assert later.as_dict()["sha256"] == "ab" * 32


def test_last_restore_check_is_the_age_of_the_last_one_that_passed() -> None:
    moment = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)

    def at(
        days: float,
        outcome: str = "ok",
        detail: str = "check 20261207T112500Z: 3 files",
    ) -> Event:
        when = (moment - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return Event("restore", "prod", outcome=outcome, detail=detail, time=when)

    assert last_restore_check(replay("prod", []), moment) is None
    events = [at(9), at(3), at(1, "failed"), at(0.5, detail="restore undone: killed")]
    days = last_restore_check(replay("prod", events), moment)
    assert days == pytest.approx(3)
    restored = [*events, at(0.25, detail="restored 20261207T112500Z: shared put back")]
    assert last_restore_check(replay("prod", restored), moment) == pytest.approx(0.25)
