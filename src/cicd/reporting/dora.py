"""The four DORA measures and availability per day: numbers from what was recorded.

Computed, never stored (principle 3 of the design), from what each environment
already keeps on its host: the ledger (deploys, switches, rollbacks, CI verdicts), the
monitor's history (``monitor.jsonl``, one line per check) and the commit times that
git knows in the source.

- **Deployment frequency**: deploys that reached the environment, per week.
- **Lead time for changes**: from the commit (its committer time) to serving (the
  deploy's end), median over successful deploys.
- **Change failure rate**: deploys that CI failed, that were rolled back (or marked
  bad), or that failed their readiness after the switch, over all deploys that
  reached the environment. A deploy that failed before its switch changed nothing
  and is not counted.
- **Time to restore**: from a failed change serving (or the monitor's first failed
  check) to the rollback or next deploy (or the first passing check), median.
- **Availability per day**: time-weighted from the monitor's checks: each result
  holds until the next check, at most :data:`MAX_GAP` (a missed hourly run is
  unknown time, not up or down), per UTC day.

:func:`build` is a pure function of the events, checks and commit times it is given
(tested on made-up ledgers); reading them from a host is
:func:`cicd.reporting.report.gather`'s.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cicd.ci import FAILURE, SUPERSEDED
from cicd.core.ledger import Event, parse_time
from cicd.core.messages import PREFLIGHT_REFUSED

#: Longest time one monitor result stands for (the monitor runs hourly).
MAX_GAP = timedelta(hours=2)
#: The default window of the report, in days.
DAYS = 30


@dataclass(frozen=True)
class Change:
    """One deploy that reached the environment.

    Attributes:
        sha: The deployed commit.
        time: When it served (the deploy's end) or failed.
        actor: Who deployed it.
        ok: Whether the deploy itself succeeded.
        failed: Why the change failed ("" when it did not).
        lead: Seconds from the commit to serving, when the commit time is known.
        restored: Seconds from the failure to service restored (None: not yet).
    """

    sha: str
    time: datetime
    actor: str
    ok: bool
    failed: str = ""
    lead: float | None = None
    restored: float | None = None


@dataclass(frozen=True)
class Mark:
    """One point of the timeline: a deploy, rollback, CI failure, outage or recovery."""

    time: datetime
    kind: str
    label: str


@dataclass(frozen=True)
class Incident:
    """A time service was degraded: a failed change or an outage the monitor saw."""

    start: datetime
    end: datetime | None
    cause: str

    @property
    def seconds(self) -> float | None:
        """How long it lasted (None while it goes on)."""
        return (self.end - self.start).total_seconds() if self.end else None


@dataclass(frozen=True)
class Day:
    """Availability of one UTC day: up time over observed time."""

    day: date
    up: float
    observed: float

    @property
    def availability(self) -> float | None:
        """Percent of the observed time the checks passed (None: not observed)."""
        return 100 * self.up / self.observed if self.observed else None


@dataclass(frozen=True)
class EnvReport:
    """The dashboard of one environment over a window of days."""

    env: str
    start: datetime
    end: datetime
    changes: tuple[Change, ...]
    marks: tuple[Mark, ...]
    days: tuple[Day, ...]
    incidents: tuple[Incident, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)
    #: Production deploys the pre-flight refused (``refused`` events).
    refused_preflights: int = 0

    @property
    def deploys(self) -> int:
        """Successful deploys in the window."""
        return sum(1 for c in self.changes if c.ok)

    @property
    def per_week(self) -> float:
        """Successful deploys per week."""
        weeks = max((self.end - self.start).total_seconds() / (7 * 86400), 1 / 7)
        return self.deploys / weeks

    @property
    def lead_median(self) -> float | None:
        """Median lead time for changes, in seconds."""
        leads = [c.lead for c in self.changes if c.ok and c.lead is not None]
        return statistics.median(leads) if leads else None

    @property
    def failed_changes(self) -> tuple[Change, ...]:
        """The deploys that failed, were CI-failed or rolled back."""
        return tuple(c for c in self.changes if c.failed)

    @property
    def failure_rate(self) -> float | None:
        """Change failure rate, in percent (None: no deploy)."""
        if not self.changes:
            return None
        return 100 * len(self.failed_changes) / len(self.changes)

    @property
    def restore_median(self) -> float | None:
        """Median time to restore over ended incidents, in seconds."""
        ended = [i.seconds for i in self.incidents if i.seconds is not None]
        return statistics.median(ended) if ended else None

    @property
    def availability(self) -> float | None:
        """Availability over the window, in percent (None: never observed)."""
        observed = sum(d.observed for d in self.days)
        return 100 * sum(d.up for d in self.days) / observed if observed else None

    def levels(self) -> dict[str, str]:
        """The DORA performance level of each measure (State of DevOps 2021)."""
        return {
            "frequency": _level_frequency(self.per_week) if self.deploys else "",
            "lead": _level_time(self.lead_median, week=True),
            "failure": _level_failure(self.failure_rate),
            "restore": _level_time(self.restore_median, week=False),
        }

    def as_dict(self) -> dict[str, Any]:
        """The report as ``--json`` prints it (times in ISO 8601 UTC, durations s)."""
        return {
            "env": self.env,
            "since": _iso(self.start),
            "until": _iso(self.end),
            "deploys": self.deploys,
            "deploys_per_week": round(self.per_week, 2),
            "lead_time_median_seconds": _round(self.lead_median),
            "change_failure_rate_percent": _round(self.failure_rate),
            "failed_changes": len(self.failed_changes),
            "changes": len(self.changes),
            "time_to_restore_median_seconds": _round(self.restore_median),
            "incidents": [
                {
                    "start": _iso(i.start),
                    "end": _iso(i.end) if i.end else None,
                    "seconds": _round(i.seconds),
                    "cause": i.cause,
                }
                for i in self.incidents
            ],
            "availability_percent": _round(self.availability, 3),
            "availability_per_day": [
                {
                    "day": d.day.isoformat(),
                    "percent": _round(d.availability, 3),
                    "observed_hours": round(d.observed / 3600, 2),
                }
                for d in self.days
            ],
            "levels": self.levels(),
            "timeline": [
                {"time": _iso(m.time), "kind": m.kind, "label": m.label}
                for m in self.marks
            ],
            "deploy_list": [
                {
                    "sha": c.sha,
                    "time": _iso(c.time),
                    "actor": c.actor,
                    "ok": c.ok,
                    "failed": c.failed or None,
                    "lead_seconds": _round(c.lead),
                    "restored_seconds": _round(c.restored),
                }
                for c in self.changes
            ],
            "refused_preflights": self.refused_preflights,
            "warnings": list(self.warnings),
        }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _level_frequency(per_week: float) -> str:
    if per_week >= 7:
        return "elite"
    if per_week >= 1:
        return "high"
    return "medium" if per_week >= 12 / 52 else "low"  # at least monthly


def _level_time(seconds: float | None, *, week: bool) -> str:
    """Lead time: < 1 day elite, < 1 week high; restore: < 1 h elite, < 1 day high."""
    if seconds is None:
        return ""
    elite, high, medium = (
        (86400, 7 * 86400, 30 * 86400) if week else (3600, 86400, 7 * 86400)
    )
    if seconds < elite:
        return "elite"
    if seconds < high:
        return "high"
    return "medium" if seconds < medium else "low"


def _level_failure(percent: float | None) -> str:
    if percent is None:
        return ""
    if percent <= 15:
        return "elite"
    return "medium" if percent <= 30 else "low"


@dataclass(frozen=True)
class Check:
    """One line of the monitor's history."""

    time: datetime
    ok: bool
    reason: str


def parse_history(text: str) -> tuple[list[Check], list[str]]:
    """The monitor's checks, oldest first, and one warning per unreadable line."""
    checks, warnings = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            moment = parse_time(str(data["time"]))
            if moment is None:
                raise ValueError("bad time")
            checks.append(Check(moment, bool(data["ok"]), str(data.get("reason", ""))))
        except (ValueError, KeyError, TypeError):
            warnings.append(f"monitor history line {number} skipped (corrupt)")
    checks.sort(key=lambda c: c.time)
    return checks, warnings


def build(
    env: str,
    events: Sequence[Event],
    checks: Sequence[Check],
    commit_times: dict[str, float],
    *,
    end: datetime,
    days: int = DAYS,
    warnings: Iterable[str] = (),
) -> EnvReport:
    """Compute an environment's dashboard: a pure function of what it recorded.

    Args:
        env: The environment's name.
        events: Its ledger, in order.
        checks: Its monitor history, oldest first.
        commit_times: Committer time (Unix seconds) of each sha git knows.
        end: The end of the window (now).
        days: The window's length, in days.
        warnings: Problems found while reading (corrupt lines).

    Returns:
        The report.
    """
    start = end - timedelta(days=days)
    timed = [(t, e) for e in events if (t := parse_time(e.time)) is not None]
    changes, marks, incidents = _changes(timed, commit_times, start)
    outages, outage_marks = _outages(checks, start)
    return EnvReport(
        env=env,
        start=start,
        end=end,
        changes=tuple(changes),
        marks=tuple(sorted(marks + outage_marks, key=lambda m: m.time)),
        days=tuple(_days(checks, start, end)),
        incidents=tuple(sorted(incidents + outages, key=lambda i: i.start)),
        warnings=tuple(warnings),
        refused_preflights=sum(
            1
            for moment, e in timed
            if moment >= start
            and e.event == "refused"
            and e.detail.startswith(PREFLIGHT_REFUSED)
        ),
    )


def _changes(
    timed: list[tuple[datetime, Event]], commit_times: dict[str, float], start: datetime
) -> tuple[list[Change], list[Mark], list[Incident]]:
    changes: list[Change] = []
    marks: list[Mark] = []
    incidents: list[Incident] = []
    switched: dict[str, datetime] = {}
    for index, (moment, event) in enumerate(timed):
        sha = event.sha or ""
        if event.event == "deploy" and event.outcome == "started":
            switched.pop(sha, None)
        elif event.event == "switch" and sha:
            switched[sha] = moment
        if moment < start:
            continue
        if event.event == "rollback" and event.outcome == "ok":
            marks.append(Mark(moment, "rollback", _said("rollback to", event)))
        elif event.event == "ci" and event.outcome in (FAILURE, SUPERSEDED):
            marks.append(Mark(moment, "ci_failed", _said("CI failed for", event)))
        if event.event != "deploy" or event.outcome not in ("ok", "failed"):
            continue
        if event.outcome == "failed":
            began = switched.get(sha)
            if began is None:
                continue  # failed before its switch: nothing changed here
            change = Change(
                sha,
                moment,
                event.actor,
                False,
                "not ready",
                restored=(moment - began).total_seconds(),
            )
            marks.append(Mark(moment, "failed", _said("deploy failed:", event)))
            incidents.append(Incident(began, moment, f"deploy {sha[:7]} not ready"))
        else:
            why, until = _fate(timed[index + 1 :], sha)
            lead = None
            if sha in commit_times:
                lead = max(moment.timestamp() - commit_times[sha], 0.0)
            back = (until - moment).total_seconds() if why and until else None
            change = Change(sha, moment, event.actor, True, why, lead, back)
            marks.append(Mark(moment, "deploy", _said("deploy", event)))
            if why:
                incidents.append(Incident(moment, until, f"{sha[:7]} {why}"))
        changes.append(change)
    return changes, marks, incidents


def _said(what: str, event: Event) -> str:
    sha = (event.sha or "")[:7]
    by = f" by {event.actor}" if event.actor else ""
    return f"{what} {sha}{by}"


def _fate(later: list[tuple[datetime, Event]], sha: str) -> tuple[str, datetime | None]:
    """Why a successful deploy was a failed change, and when service was restored.

    Failed: CI failed for it, it was rolled back, or it was marked bad (before it
    was deployed again), the first cause said in that order. Restored: the rollback
    away from it, or the next deploy of another sha, whichever came first.
    """
    causes: set[str] = set()
    until = None
    for moment, event in later:
        if event.event == "deploy" and event.sha == sha and event.outcome == "started":
            break  # deployed again: a new change from here on
        rolled_back = (
            event.event == "rollback"
            and event.outcome == "ok"
            and event.previous == sha
        )
        replaced = event.event == "deploy" and event.outcome == "ok"
        if (rolled_back or replaced) and until is None:
            until = moment
        if rolled_back:
            causes.add("rolled back")
        elif event.sha == sha:
            if event.event == "ci" and event.outcome in (FAILURE, SUPERSEDED):
                causes.add("CI failed")
            elif event.event == "marked_bad":
                causes.add("marked bad")
    why = next(
        (c for c in ("CI failed", "rolled back", "marked bad") if c in causes), ""
    )
    return why, until


def _outages(
    checks: Sequence[Check], start: datetime
) -> tuple[list[Incident], list[Mark]]:
    """Runs of failed checks: from the first failure to the first pass after it."""
    incidents: list[Incident] = []
    marks: list[Mark] = []
    began: Check | None = None
    for check in checks:
        if not check.ok and began is None:
            began = check
        elif check.ok and began is not None:
            if check.time >= start:
                incidents.append(Incident(began.time, check.time, "outage"))
                marks.append(Mark(began.time, "down", f"down: {began.reason}"))
                marks.append(Mark(check.time, "up", "up again"))
            began = None
    if began is not None:
        incidents.append(Incident(began.time, None, "outage (goes on)"))
        marks.append(Mark(began.time, "down", f"down: {began.reason}"))
    return incidents, marks


def _days(checks: Sequence[Check], start: datetime, end: datetime) -> list[Day]:
    """Up and observed seconds per UTC day, each check standing until the next."""
    first = start.date()
    count = (end.date() - first).days + 1
    up = [0.0] * count
    observed = [0.0] * count
    for index, check in enumerate(checks):
        following = checks[index + 1].time if index + 1 < len(checks) else end
        stop = min(following, check.time + MAX_GAP, end)
        moment = max(check.time, start)
        while moment < stop:
            midnight = datetime.combine(
                moment.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC
            )
            piece_end = min(stop, midnight)
            seconds = (piece_end - moment).total_seconds()
            slot = (moment.date() - first).days
            observed[slot] += seconds
            if check.ok:
                up[slot] += seconds
            moment = piece_end
    return [Day(first + timedelta(days=n), up[n], observed[n]) for n in range(count)]
