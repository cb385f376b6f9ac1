"""The dashboard's arithmetic on made-up ledgers and monitor histories (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cicd.core.ledger import Event
from cicd.reporting.dora import Check, build, parse_history, parse_time
from cicd.reporting.page import render_html
from cicd.reporting.report import duration, format_text, percent

END = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def at(hours_before_end: float) -> str:
    """A ledger time this many hours before the end of the window."""
    moment = END - timedelta(hours=hours_before_end)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def deploy(sha: str, hours: float, outcome: str = "ok", **fields: str) -> Event:
    """A ``deploy`` event (``started`` 1 min earlier is added by :func:`story`)."""
    return Event(
        "deploy", "preprod", sha=sha, outcome=outcome, time=at(hours), **fields
    )


def story(*steps: Event) -> list[Event]:
    """Events with each deploy's ``started`` event and switch before its end."""
    events: list[Event] = []
    for step in steps:
        if step.event == "deploy":
            when = parse_time(step.time)
            assert when is not None
            begun = (when - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            events.append(
                Event("deploy", "preprod", sha=step.sha, outcome="started", time=begun)
            )
            events.append(Event("switch", "preprod", sha=step.sha, time=begun))
        events.append(step)
    return events


def test_lead_time_frequency_and_a_superseded_ci_failure() -> None:
    commits = {"a" * 40: (END - timedelta(hours=50)).timestamp()}
    events = story(
        deploy("a" * 40, 48, actor="ada"),
        deploy("b" * 40, 24),
        Event("ci", "preprod", sha="a" * 40, outcome="superseded", time=at(23)),
    )
    report = build("preprod", events, [], commits, end=END, days=7)
    assert report.deploys == 2 and report.per_week == pytest.approx(2.0)
    assert report.lead_median == pytest.approx(2 * 3600)
    first, second = report.changes
    assert first.failed == "CI failed" and first.actor == "ada"
    # Restored when the next deploy replaced it, before the verdict came.
    assert first.restored == pytest.approx(24 * 3600)
    assert not second.failed and report.failure_rate == pytest.approx(50)
    assert report.levels() == {
        "frequency": "high",
        "lead": "elite",
        "failure": "low",
        "restore": "medium",  # a full day: not under one
    }


def test_a_deploy_failed_before_its_switch_changed_nothing() -> None:
    events = [
        Event("deploy", "preprod", sha="c" * 40, outcome="started", time=at(5)),
        Event("deploy", "preprod", sha="c" * 40, outcome="failed", time=at(4.9)),
    ]
    report = build("preprod", events, [], {}, end=END)
    assert report.changes == () and report.failure_rate is None
    assert report.levels() == dict.fromkeys(
        ("frequency", "lead", "failure", "restore"), ""
    )


def test_a_redeploy_is_a_new_change_and_old_events_are_outside_the_window() -> None:
    sha = "d" * 40
    events = story(
        deploy(sha, 24 * 40),  # before the 30-day window
        Event("marked_bad", "preprod", sha=sha, outcome="bad", time=at(24 * 39)),
        deploy(sha, 2),
    )
    report = build("preprod", events, [], {}, end=END)
    (change,) = report.changes
    assert change.failed == "" and change.restored is None
    assert report.levels()["frequency"] == "medium"


def test_availability_is_time_weighted_per_day_and_gaps_are_unknown() -> None:
    midnight = datetime(2026, 3, 10, tzinfo=UTC)
    checks = [
        Check(midnight - timedelta(hours=1), True, "ok"),  # 23:00 the day before
        Check(midnight + timedelta(hours=1), False, "status 502"),
        Check(midnight + timedelta(hours=2), True, "ok"),
        Check(midnight + timedelta(hours=3), True, "ok"),  # then nothing for hours
    ]
    report = build("prod", [], checks, {}, end=END, days=2)
    by_day = {d.day.isoformat(): d for d in report.days}
    assert by_day["2026-03-09"].observed == pytest.approx(3600)
    today = by_day["2026-03-10"]
    # 00:00-01:00 up (the 23:00 check), 01:00-02:00 down, 02:00-05:00 up (the last
    # check stands for 2 h at most): 4 h up of 5 h observed.
    assert today.observed == pytest.approx(5 * 3600)
    assert today.availability == pytest.approx(80)
    assert by_day["2026-03-08"].availability is None
    (outage,) = report.incidents
    assert outage.seconds == pytest.approx(3600) and outage.cause == "outage"
    assert [m.kind for m in report.marks] == ["down", "up"]
    assert report.restore_median == pytest.approx(3600)


def test_an_outage_that_goes_on_is_shown_and_not_in_the_median() -> None:
    checks = [Check(END - timedelta(minutes=30), False, "connection refused")]
    report = build("prod", [], checks, {}, end=END)
    (incident,) = report.incidents
    assert incident.end is None and incident.seconds is None
    assert report.restore_median is None and report.availability == 0
    text = format_text([report])
    assert "(0 incidents, 1 going on)" in text
    assert "outage (goes on)" in report.as_dict()["incidents"][0]["cause"]
    page = render_html([report])
    assert "connection refused" in page and "Nothing happened" not in page


def test_history_lines_that_cannot_be_read_are_warned_about() -> None:
    text = (
        '{"time":"2026-03-10T10:00:00Z","ok":true,"reason":"ok"}\n'
        "not json\n"
        '{"time":"yesterday","ok":true}\n'
        '{"time":"2026-03-10T09:00:00","ok":false,"reason":"timed out"}\n'
    )
    checks, warnings = parse_history(text)
    assert [c.ok for c in checks] == [False, True]  # sorted by time
    assert warnings == [
        "monitor history line 2 skipped (corrupt)",
        "monitor history line 3 skipped (corrupt)",
    ]
    report = build("preprod", [], checks, {}, end=END, warnings=warnings)
    assert "warning: monitor history line 2 skipped" in format_text([report])
    assert "warning: monitor history line 2" in render_html([report])


def test_words_for_durations_percentages_and_an_empty_page() -> None:
    assert [duration(s) for s in (None, 5, 600, 7200, 3 * 86400)] == [
        "–",
        "5 s",
        "10 min",
        "2.0 h",
        "3.0 d",
    ]
    assert percent(None) == "–" and percent(99.456, 2) == "99.46 %"
    assert "No environment configured." in render_html([])
    assert parse_time("not a time") is None
    quiet = build("preprod", [], [], {}, end=END)
    page = render_html([quiet])
    assert "No deploys in this window." in page and "No monitor checks" in page


def test_the_page_lists_the_newest_deploys_and_says_how_many_more() -> None:
    events = story(*(deploy(f"{n:02x}" * 20, 60 - n) for n in range(55)))
    page = render_html([build("preprod", events, [], {}, end=END)])
    assert page.count("<tr><td>") == 50 and "and 5 older (in --json)" in page
    assert "36" * 6 in page and "00" * 6 not in page  # newest first


def test_the_demo_ends_by_writing_the_dashboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cicd import demo

    def finished(plan: demo.Plan) -> tuple[list[demo.Step], list[dict[str, Any]]]:
        # What the demo leaves behind: its configuration and target root.
        plan.root.mkdir(parents=True)
        (plan.root / "cicd.toml").write_text(f'[tool.cicd]\nroot = "{plan.root}"\n')
        return [], []

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, "run", finished)
    monkeypatch.setattr(demo, "report", lambda *args: None)
    assert demo.main([]) == 0
    page = tmp_path / "build" / "report.html"
    assert f"Dashboard:      {page}" in capsys.readouterr().out
    assert page.read_text().count("<section") == 2  # preprod and prod
