"""The delivery dashboard: the four DORA measures and availability, per environment.

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

:func:`build` is pure (tested on made-up ledgers); :func:`gather` reads one
environment's files in three round trips; :func:`render_html` makes one
self-contained page (inline CSS and SVG, no script, no network); :func:`publish`
pushes it to the documentation's branch.
"""

from __future__ import annotations

import html
import json
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cicd.ci import FAILURE, SUPERSEDED
from cicd.core.ledger import Event, parse

if TYPE_CHECKING:
    from cicd.host.target import Target

#: Longest time one monitor result stands for (the monitor runs hourly).
MAX_GAP = timedelta(hours=2)
#: The default window of the report, in days.
DAYS = 30
#: Deploys listed on the page per environment (all of them are in ``--json``).
TABLE_ROWS = 50
#: The availability the original design promised (it never measured it).
PROMISED = {"preprod": 99.5, "prod": 99.9}


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


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time from the ledger or the history, or None when unreadable."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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


# -- reading one environment ---------------------------------------------------


def gather(
    target: Target, *, days: int = DAYS, end: datetime | None = None
) -> EnvReport:
    """Read an environment's ledger, monitor history and commit times; build its report.

    Args:
        target: The environment on one host (the first host of a fleet: each host
            records the same deploys).
        days: The window's length, in days.
        end: The end of the window (default: now).
    """
    from cicd.commands import files, git

    events, warnings = parse(target.runner.run(files.read(target.paths.ledger)).stdout)
    text = target.runner.run(files.read(target.paths.monitor_history)).stdout
    checks, history_warnings = parse_history(text)
    shas = sorted({e.sha for e in events if e.event == "deploy" and e.sha})
    times: dict[str, float] = {}
    if shas:
        found = target.runner.run(git.commit_times(target.repo, *shas), check=False)
        for line in found.stdout.splitlines():
            sha, _, seconds = line.partition(" ")
            if seconds.strip().isdigit():
                times[sha] = float(seconds)
    return build(
        target.env,
        events,
        checks,
        times,
        end=end or datetime.now(UTC),
        days=days,
        warnings=[*warnings, *history_warnings],
    )


# -- text -------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    """A duration in its largest fitting unit: ``45 s``, ``12 min``, ``3.5 h``..."""
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def percent(value: float | None, digits: int = 1) -> str:
    """``99.5 %``, or a dash when there is no value."""
    return "–" if value is None else f"{value:.{digits}f} %"


def summary(report: EnvReport) -> list[tuple[str, str, str]]:
    """The five measures as (name, value, DORA level or note) rows."""
    levels = report.levels()
    failed = report.failed_changes
    counted = Counter(c.failed for c in failed)
    causes = ", ".join(f"{n} {why}" for why, n in sorted(counted.items()))
    ended = [i for i in report.incidents if i.end]
    open_ = len(report.incidents) - len(ended)
    leads = sum(1 for c in report.changes if c.ok and c.lead is not None)
    observed = sum(d.observed for d in report.days)
    lowest = min(
        (d for d in report.days if d.availability is not None),
        key=lambda d: d.availability or 0.0,
        default=None,
    )
    promised = PROMISED.get(report.env)
    availability_note = f"{duration(observed)} observed"
    if lowest is not None and lowest.availability is not None:
        availability_note += f", lowest day {lowest.day} {percent(lowest.availability)}"
    if promised is not None:
        availability_note += f", promised {promised} %"
    return [
        (
            "Deployment frequency",
            f"{report.deploys} deploys, {report.per_week:.1f} per week",
            levels["frequency"],
        ),
        (
            "Lead time for changes",
            f"median {duration(report.lead_median)} ({leads} with a commit time)",
            levels["lead"],
        ),
        (
            "Change failure rate",
            f"{percent(report.failure_rate, 0)} ({len(failed)} of "
            f"{len(report.changes)}{': ' + causes if causes else ''})",
            levels["failure"],
        ),
        (
            "Time to restore",
            f"median {duration(report.restore_median)} ({len(ended)} incidents"
            + (f", {open_} going on" if open_ else "")
            + ")",
            levels["restore"],
        ),
        ("Availability", percent(report.availability, 2), availability_note),
    ]


def format_text(reports: Sequence[EnvReport]) -> str:
    """The reports as a readable table, one block per environment."""
    lines: list[str] = []
    for report in reports:
        if lines:
            lines.append("")
        lines.append(
            f"{report.env}  (last {(report.end - report.start).days} days: "
            f"{report.start:%Y-%m-%d} → {report.end:%Y-%m-%d})"
        )
        for name, value, note in summary(report):
            lines.append(f"  {name:<23} {value}{'  · ' + note if note else ''}")
        for warning in report.warnings:
            lines.append(f"  warning: {warning}")
    return "\n".join(lines)


# -- HTML ---------------------------------------------------------------------------

COLOURS = {
    "deploy": "#1a7f37",
    "failed": "#cf222e",
    "rollback": "#bc4c00",
    "ci_failed": "#cf222e",
    "down": "#cf222e",
    "up": "#1a7f37",
}
STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;
color:#1f2328;background:#f6f8fa}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:32px 0 8px}
h3{font-size:15px;margin:18px 0 6px;color:#57606a}
.muted{color:#57606a}section{background:#fff;border:1px solid #d0d7de;
border-radius:8px;padding:16px 20px;margin:16px 0}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:10px}
.tile{border:1px solid #d0d7de;border-radius:6px;padding:10px 12px;background:#fff}
.tile b{display:block;font-size:13px;color:#57606a;font-weight:600}
.tile span{display:block;font-size:17px;margin:4px 0 2px}
.level{font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.elite,.high{color:#1a7f37}.medium{color:#9a6700}.low{color:#cf222e}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border-bottom:1px solid #d8dee4;padding:4px 6px;text-align:left}
code{font:12px ui-monospace,monospace}svg{display:block;max-width:100%}
"""


def render_html(
    reports: Sequence[EnvReport], *, title: str = "Delivery dashboard"
) -> str:
    """One self-contained page: inline CSS and SVG charts, no script, no network."""
    made = max((r.end for r in reports), default=datetime.now(UTC))
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">The four DORA measures and availability per day, from '
        f"each environment's ledger and monitor history. Made {made:%Y-%m-%d %H:%M} "
        "UTC with <code>invoke report --html</code>.</p>",
    ]
    if not reports:
        body.append("<section><p>No environment configured.</p></section>")
    for report in reports:
        body.append(_section(report))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing may load from anywhere: styles and pictures are in the page.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _section(report: EnvReport) -> str:
    tiles = "".join(
        f'<div class="tile"><b>{_e(name)}</b><span>{_e(value)}</span>'
        + (
            f'<em class="level {_e(note)}">{_e(note)}</em>'
            if note in ("elite", "high", "medium", "low")
            else f'<em class="muted">{_e(note)}</em>'
        )
        + "</div>"
        for name, value, note in summary(report)
    )
    parts = [
        f'<section id="{_e(report.env)}"><h2>{_e(report.env)}</h2>',
        f'<p class="muted">{report.start:%Y-%m-%d} → {report.end:%Y-%m-%d}</p>',
        f'<div class="tiles">{tiles}</div>',
        "<h3>Availability per day</h3>",
        _availability_svg(report),
        "<h3>Timeline of deploys, rollbacks and outages</h3>",
        _timeline_svg(report),
        _deploy_table(report),
    ]
    parts += [f'<p class="muted">warning: {_e(w)}</p>' for w in report.warnings]
    parts.append("</section>")
    return "".join(parts)


def _availability_svg(report: EnvReport) -> str:
    width, height, left, bottom = 940, 170, 44, 26
    values = [d.availability for d in report.days if d.availability is not None]
    if not values:
        return '<p class="muted">No monitor checks in this window yet.</p>'
    floor = min(95.0, 5 * int(min(values) // 5))
    plot_h = height - bottom - 10
    step = (width - left) / max(len(report.days), 1)
    items = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="availability per day of {_e(report.env)}">'
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = 10 + plot_h * (1 - fraction)
        label = floor + (100 - floor) * fraction
        items.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width}" y2="{y:.1f}" '
            'stroke="#d8dee4"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#57606a">{label:g} %</text>'
        )
    for n, day in enumerate(report.days):
        x = left + n * step + step * 0.15
        value = day.availability
        if value is None:
            items.append(
                f'<rect x="{x:.1f}" y="{height - bottom - 2}" width="{step * 0.7:.1f}" '
                f'height="2" fill="#d0d7de"><title>{day.day}: no data</title></rect>'
            )
        else:
            shown = max(value, floor)
            bar = plot_h * (shown - floor) / (100 - floor)
            colour = (
                "#1a7f37" if value >= 99.5 else "#bf8700" if value >= 99 else "#cf222e"
            )
            items.append(
                f'<rect x="{x:.1f}" y="{10 + plot_h - bar:.1f}" '
                f'width="{step * 0.7:.1f}" '
                f'height="{max(bar, 1):.1f}" fill="{colour}"><title>{day.day}: '
                f"{value:.2f} % of {day.observed / 3600:.1f} h observed</title></rect>"
            )
        if n % max(1, len(report.days) // 6) == 0 or n == len(report.days) - 1:
            items.append(
                f'<text x="{x + step * 0.35:.1f}" y="{height - 8}" font-size="11" '
                f'text-anchor="middle" fill="#57606a">{day.day:%m-%d}</text>'
            )
    items.append("</svg>")
    return "".join(items)


def _timeline_svg(report: EnvReport) -> str:
    if not report.marks:
        return '<p class="muted">Nothing happened in this window.</p>'
    width, height, left, right = 940, 112, 92, 10
    # From shortly before the first event: a quiet month must not squeeze a busy
    # afternoon into one pixel.
    first = max(min(m.time for m in report.marks), report.start)
    pad = max((report.end - first) * 0.04, timedelta(minutes=1))
    origin = max(first - pad, report.start)
    span = max((report.end - origin).total_seconds(), 1.0)

    def x(moment: datetime) -> float:
        offset = (moment - origin).total_seconds() / span
        return left + (width - left - right) * min(max(offset, 0.0), 1.0)

    items = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="timeline of {_e(report.env)}">',
    ]
    for label, y in (("deploys", 42), ("rollbacks, CI", 68), ("monitor", 94)):
        items.append(
            f'<line x1="{left}" y1="{y}" x2="{width - right}" y2="{y}" '
            'stroke="#d8dee4"/>'
            f'<text x="{left - 8}" y="{y + 4}" font-size="11" text-anchor="end" '
            f'fill="#57606a">{label}</text>'
        )
    for incident in report.incidents:
        end = incident.end or report.end
        items.append(
            f'<rect x="{x(incident.start):.1f}" y="30" '
            f'width="{max(x(end) - x(incident.start), 2):.1f}" height="76" '
            f'fill="#cf222e" fill-opacity="0.15"><title>{_e(incident.cause)}: '
            f"{incident.start:%Y-%m-%d %H:%M} → "
            f"{end:%Y-%m-%d %H:%M}</title></rect>"
        )
    rows = {
        "deploy": 42,
        "failed": 42,
        "rollback": 68,
        "ci_failed": 68,
        "down": 94,
        "up": 94,
    }
    for mark in report.marks:
        cx, cy, colour = (
            x(mark.time),
            rows.get(mark.kind, 55),
            COLOURS.get(mark.kind, "#57606a"),
        )
        tip = f"<title>{mark.time:%Y-%m-%d %H:%M} {_e(mark.label)}</title>"
        if mark.kind in ("rollback", "ci_failed"):
            shape = (
                f'<path d="M{cx - 6:.1f},{cy - 5} L{cx + 6:.1f},{cy - 5} '
                f'L{cx:.1f},{cy + 6} Z" '
                f'fill="{colour}">{tip}</path>'
            )
        elif mark.kind == "failed":
            shape = (
                f'<path d="M{cx - 5:.1f},{cy - 5} L{cx + 5:.1f},{cy + 5} '
                f'M{cx + 5:.1f},{cy - 5} L{cx - 5:.1f},{cy + 5}" '
                f'stroke="{colour}" stroke-width="3">{tip}</path>'
            )
        else:
            shape = (
                f'<circle cx="{cx:.1f}" cy="{cy}" r="5" fill="{colour}">{tip}</circle>'
            )
        items.append(shape)
    items.append(
        f'<text x="{left}" y="14" font-size="11" fill="#57606a">'
        f"{origin:%Y-%m-%d %H:%M}</text>"
        f'<text x="{width - right}" y="14" font-size="11" text-anchor="end" '
        f'fill="#57606a">{report.end:%Y-%m-%d %H:%M} UTC</text>'
        '<text x="516" y="14" font-size="11" text-anchor="middle" fill="#57606a">'
        "● deploy  ✕ not ready  ▼ rollback or CI failure  ● down / up</text>"
    )
    items.append("</svg>")
    return "".join(items)


def _deploy_table(report: EnvReport) -> str:
    if not report.changes:
        return '<p class="muted">No deploys in this window.</p>'
    rows = "".join(
        f"<tr><td>{c.time:%Y-%m-%d %H:%M}</td><td><code>{_e(c.sha[:12])}</code></td>"
        f"<td>{_e(c.actor)}</td><td>{'deployed' if c.ok else 'not ready'}</td>"
        f"<td>{_e(c.failed or '–')}</td><td>{duration(c.lead)}</td>"
        f"<td>{duration(c.restored) if c.failed else '–'}</td></tr>"
        for c in list(reversed(report.changes))[:TABLE_ROWS]
    )
    older = len(report.changes) - TABLE_ROWS
    more = f'<p class="muted">and {older} older (in --json)</p>' if older > 0 else ""
    return (
        "<h3>Deploys, newest first</h3><table><tr><th>time (UTC)</th><th>sha</th>"
        "<th>by</th><th>outcome</th><th>failed change</th><th>lead time</th>"
        f"<th>restored after</th></tr>{rows}</table>{more}"
    )


def write_html(reports: Sequence[EnvReport], path: Path) -> Path:
    """Write the page (parent directories made) and return its absolute path."""
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(reports), encoding="utf-8")
    return path


def write_report(config_path: Path, path: Path, *, days: int = DAYS) -> Path:
    """The dashboard of every environment of a configuration, written to ``path``.

    What ``nox -s demo`` calls at its end; the same page as ``invoke report --html``.
    """
    from invoke.context import Context

    from cicd.core import config
    from cicd.transport.runner import Runner
    from cicd.host.target import Target

    settings = config.load(config_path)
    reports = [
        gather(Target(Runner(Context()), settings, name), days=days)
        for name in sorted(settings.envs)
    ]
    return write_html(reports, path)


# -- publishing ---------------------------------------------------------------------

#: Where the page goes on the documentation's branch.
PAGES_BRANCH = "gh-pages"
PAGES_FOLDER = "report"


class PublishFailed(Exception):
    """The page could not be pushed to the documentation's branch."""


def publish(
    page: Path,
    *,
    repository: str,
    token: str = "",
    server: str = "https://github.com",
    branch: str = PAGES_BRANCH,
    folder: str = PAGES_FOLDER,
    attempts: int = 3,
) -> str:
    """Put the page on the documentation's branch as ``FOLDER/index.html``, and push.

    Plain git, no third-party action: the VM's job that has the ledgers publishes
    beside the documentation (``documentation.yml`` keeps the folder). The token goes
    to git in its environment (``GIT_CONFIG_*``), never on a command line. A push
    that loses a race with the documentation's own publish is retried on the new tip.

    Args:
        page: The HTML file to publish.
        repository: ``OWNER/NAME``.
        token: A token that may push (the job's ``GITHUB_TOKEN``); empty: git's own
            credentials.
        server: The git server's base URL.
        branch: The branch the site is served from.
        folder: The folder of the branch the page goes to.
        attempts: Pushes tried before giving up.

    Returns:
        What was done, in words.

    Raises:
        PublishFailed: git could not fetch, commit or push; the message says why.
    """
    import base64
    import os
    import subprocess
    import tempfile

    remote = f"{server.rstrip('/')}/{repository}.git"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="http.extraheader",
            GIT_CONFIG_VALUE_0=f"AUTHORIZATION: basic {basic}",
        )

    def git(
        work: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["git", "-C", work, *args], capture_output=True, text=True, env=env
        )
        if check and done.returncode != 0:
            said = (done.stderr.strip().splitlines() or ["no error output"])[-1]
            raise PublishFailed(f"git {args[0]} failed: {said}")
        return done

    content = page.read_bytes()
    with tempfile.TemporaryDirectory(prefix="cicd-pages-") as work:
        git(work, "init", "-q")
        for attempt in range(1, attempts + 1):
            fetched = git(
                work, "fetch", "-q", "--depth", "1", remote, branch, check=False
            )
            if fetched.returncode == 0:
                git(work, "checkout", "-q", "--force", "FETCH_HEAD")
            elif "couldn't find remote ref" in fetched.stderr:
                git(work, "checkout", "-q", "--orphan", f"new-{attempt}")
            else:
                said = (fetched.stderr.strip().splitlines() or ["?"])[-1]
                raise PublishFailed(f"cannot fetch {branch} of {repository}: {said}")
            target = Path(work) / folder / "index.html"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            git(work, "add", "--", f"{folder}/index.html")
            if git(work, "diff", "--cached", "--quiet", check=False).returncode == 0:
                return f"{branch}:{folder}/index.html already up to date"
            git(
                work,
                "-c",
                "user.name=cicd report",
                "-c",
                "user.email=cicd-report@users.noreply.github.com",
                "commit",
                "-q",
                "-m",
                "report: the delivery dashboard",
            )
            pushed = git(
                work, "push", "-q", remote, f"HEAD:refs/heads/{branch}", check=False
            )
            if pushed.returncode == 0:
                return f"published to {repository} {branch}:{folder}/index.html"
            if "rejected" not in pushed.stderr and "fetch first" not in pushed.stderr:
                said = (pushed.stderr.strip().splitlines() or ["?"])[-1]
                raise PublishFailed(f"cannot push to {branch} of {repository}: {said}")
        raise PublishFailed(
            f"cannot push to {branch} of {repository}: its tip kept moving "
            f"({attempts} attempts)"
        )
