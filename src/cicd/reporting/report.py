"""The delivery report of each environment: read from its host, said in words.

The dashboard is in four parts, each in its own module:

- :mod:`cicd.reporting.dora`: the measures, a pure function of what an environment
  recorded (its ledger, its monitor's history, commit times);
- this module: :func:`gather` reads those records from an environment's host (three
  round trips) and :func:`summary` / :func:`format_text` put the measures in words,
  the text of ``invoke report``;
- :mod:`cicd.reporting.page`: the same measures as one self-contained HTML page
  (inline CSS and SVG, no script, no network);
- :mod:`cicd.reporting.publish`: that page pushed to the documentation's branch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cicd.commands import files, git
from cicd.core.ledger import parse
from cicd.reporting.dora import DAYS, EnvReport, build, parse_history

if TYPE_CHECKING:
    from cicd.host.target import Target

#: The availability the original design promised (it never measured it).
PROMISED = {"preprod": 99.5, "prod": 99.9}

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
    """The five measures as (name, value, DORA level or note) rows.

    A sixth row counts the production deploys the pre-flight refused, when any.
    """
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
        *(
            [("Refused pre-flights", str(report.refused_preflights), "")]
            if report.refused_preflights
            else []
        ),
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
