"""What a reboot starts (the ``autostart=`` lines), and the words of start and status.

The builder of the ``autostart=`` rewrite runs for real on files in a temporary
directory; the words come from pure functions.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from cicd.pipeline.start import restart_current
from cicd.commands import supervisor
from cicd.core.errors import UsageError
from cicd.core.ledger import Event
from cicd.core.progress import Timeline
from cicd.pipeline.start import _why_stopped
from cicd.core.state import replay
from cicd.pipeline.status import format_status
from tests.conftest import Project

SHA = "8a01b7c" + "0" * 33
OLD = "3f9c2e1" + "0" * 33


def run(command: Any) -> subprocess.CompletedProcess[str]:
    """Run a built command here."""
    return subprocess.run(command.argv, capture_output=True, text=True)


def program(autostart: bool) -> str:
    """A program section as cicd writes it."""
    return supervisor.program_conf(
        "app-prod-blue",
        "python server.py",
        directory="/srv/100%/prod/slots/blue/app",
        environment={"A": "1"},
        logfile="/srv/prod/logs/app-blue.log",
        autostart=autostart,
    )


def test_program_files_say_whether_a_fresh_supervisord_starts_them() -> None:
    assert "\nautostart=true\n" in program(True)
    assert "\nautostart=false\n" in program(False)
    assert program(True).replace("autostart=true", "autostart=false") == program(False)


def test_only_the_autostart_line_is_rewritten_and_only_where_it_differs(
    tmp_path: Path,
) -> None:
    live, idle, same = (tmp_path / f"{name}.conf" for name in ("live", "idle", "same"))
    live.write_text(program(False))
    idle.write_text(program(True) + "; kept as written\n")
    same.write_text(program(True))
    before = same.stat().st_ino
    done = run(
        supervisor.set_autostart(
            (str(live), True),
            (str(idle), False),
            (str(same), True),
            (str(tmp_path / "absent.conf"), True),
        )
    )
    assert done.returncode == 0, done.stderr
    assert live.read_text() == program(True)
    assert idle.read_text() == program(False) + "; kept as written\n"
    assert same.stat().st_ino == before  # untouched: no write, no rename
    assert not (tmp_path / "absent.conf").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "idle.conf",
        "live.conf",
        "same.conf",
    ]


def event(name: str, sha: str, detail: str = "", **fields: Any) -> Event:
    """One ledger event of prod."""
    fields.update(env="prod", sha=sha, detail=detail)
    return Event(event=name, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("events", "ended", "words"),
    [
        ([event("marked_bad", OLD, "CI failed: tests")], False, "rejected by CI"),
        ([event("marked_bad", OLD, "rolled back: by hand")], False, "rolled back"),
        ([event("marked_bad", OLD, "not ready after 8s")], False, "marked bad"),
        ([], True, "previous release, warm window ended"),
        ([], False, "previous release, not warm"),
    ],
)
def test_start_says_why_a_release_is_left_stopped(
    events: list[Event], ended: bool, words: str
) -> None:
    state = replay("prod", events, current=SHA, releases=[SHA, OLD])
    assert _why_stopped(state, OLD, ended) == words


def test_the_current_release_on_the_idle_slot_is_not_routed() -> None:
    state = replay("prod", [], current=SHA, releases=[SHA])
    assert _why_stopped(state, SHA, False) == "not routed"


def row(env: str, current: str | None, down: str | None) -> dict[str, Any]:
    """A status row with what the table needs."""
    return {
        "env": env,
        "current": current,
        "serving": None,
        "drift": bool(current),
        "previous": None,
        "validated": None,
        "runtime": "DOWN" if current else "NOT DEPLOYED",
        "healthy": False,
        "health": "haproxy is not running" if current else "not deployed",
        "lock": None,
        "last_events": [],
        "warnings": [],
        "down": down,
    }


def test_status_says_which_deployed_environment_nothing_serves() -> None:
    text = format_status(
        [row("preprod", SHA, "haproxy is not running"), row("prod", None, None)]
    )
    assert (
        "  preprod: DOWN — 8a01b7c is deployed but nothing serves it: haproxy is not "
        "running (`invoke start` starts it again)"
    ) in text.splitlines()
    assert "prod: DOWN" not in text.replace("preprod: DOWN", "")


def test_a_restart_of_an_environment_never_deployed_is_bad_input(
    project: Project,
) -> None:
    with pytest.raises(UsageError, match="prod was never deployed"):
        restart_current(project.target("prod"), Timeline(print), "secrets reload")
    assert not project.root.exists()
