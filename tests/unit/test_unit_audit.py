"""The audit's pure parts: ``--since``, the CI state of a release, lock wording."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest

from cicd.reporting.audit import (
    audit_rows,
    ci_of,
    event_time,
    format_audit,
    parse_since,
)
from cicd.core.errors import UsageError
from cicd.core.ledger import Event
from cicd.core.lock_details import describe, is_stale
from cicd.host.lock import waiting
from cicd.core.state import replay

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", datetime(2026, 12, 2, 10, 0, tzinfo=UTC)),
        ("3d", datetime(2026, 11, 29, 12, 0, tzinfo=UTC)),
        ("90m", datetime(2026, 12, 2, 10, 30, tzinfo=UTC)),
        ("1w", datetime(2026, 11, 25, 12, 0, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T10:30", datetime(2026, 12, 1, 10, 30, tzinfo=UTC)),
        ("2026-12-01T10:30:00Z", datetime(2026, 12, 1, 10, 30, tzinfo=UTC)),
        ("2026-12-01T11:30+01:00", datetime(2026, 12, 1, 10, 30, tzinfo=UTC)),
    ],
)
def test_since_is_an_iso_time_or_a_duration_back(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "2 hours", "-2h", "2y", "tomorrow", "2026-13-01"])
def test_a_bad_since_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--since"):
        parse_since(text, NOW)


def test_events_before_since_or_with_an_unreadable_time_are_left_out() -> None:
    events = [
        Event("deploy", "preprod", sha="a" * 40, time="2026-12-01T09:00:00.0Z"),
        Event("deploy", "preprod", sha="b" * 40, time="garbled"),
        Event(
            "deploy",
            "preprod",
            sha="c" * 40,
            time="2026-12-02T11:00:00.0Z",
            durations={"export": 1.25},
            detail="line one\nline two",
        ),
    ]
    state = replay("preprod", events)
    assert event_time(events[1]) is None
    assert [r["sha"] for r in audit_rows(state)] == [e.sha for e in events]
    (row,) = audit_rows(state, parse_since("2h", NOW))
    assert row["sha"] == "c" * 40
    line = format_audit([row]).splitlines()[1]
    assert line.startswith("2026-12-02 11:00:00")
    assert "export 1.2s — line one · line two" in line


def test_a_release_ci_state_comes_from_the_ledger_with_its_run_link() -> None:
    sha = "a" * 40
    run = "https://github.com/acme/app/actions/runs/7"
    events = [
        Event("deploy", "preprod", sha=sha),
        Event("ci", "preprod", sha=sha, outcome="watching"),
        Event("ci", "preprod", sha=sha, outcome="failure", detail=f"tests\n{run}"),
    ]
    assert ci_of(replay("preprod", events), sha) == ("failure", run)
    marked = events + [Event("marked_bad", "preprod", sha=sha, outcome="bad")]
    assert ci_of(replay("preprod", marked), sha) == ("bad", run)
    assert ci_of(replay("preprod", [], validated=sha), sha) == ("validated", "")
    assert ci_of(replay("preprod", []), sha) == (None, "")


def test_a_manual_lock_is_described_with_its_reason_and_never_stale() -> None:
    details = {
        "actor": "grace",
        "host": "vm",
        "pid": 999999,
        "time": "2026-12-02T10:00:00Z",
        "why": "manual",
        "reason": "db migration",
    }
    assert describe(details) == (
        "a manual lock of grace on vm since 2026-12-02T10:00:00Z: db migration"
    )
    assert not is_stale({**details, "host": socket.gethostname()})


def test_a_negative_lock_wait_is_refused() -> None:
    with pytest.raises(UsageError, match="--lock-wait"):
        with waiting(-1):
            pass


def test_a_link_in_a_detail_is_shown_whole_on_a_line_of_its_own() -> None:
    log = "/srv/mangetamain/preprod/logs/ci-" + "d" * 40 + ".log"
    events = [
        Event(
            "ci",
            "preprod",
            sha="d" * 40,
            time="2026-12-02T11:00:00.0Z",
            outcome="failure",
            detail=f"the local CI command exited 1\n{log}",
        )
    ]
    table = format_audit(audit_rows(replay("preprod", events))).splitlines()
    assert table[1].endswith("failure          the local CI command exited 1")
    assert table[2].strip() == log
