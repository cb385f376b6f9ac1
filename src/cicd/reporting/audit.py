"""The ledger read by a person: ``invoke audit`` and the facts of ``invoke releases``.

Everything here is computed from the ledger (and the source's commit subjects); it
reads, never writes, and takes no lock — like ``status``, it may run while a deploy
does (Kamal's ``audit``, Deployer's ``releases``).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cicd.core import table
from cicd.core.errors import UsageError, clip
from cicd.core.table import Column
from cicd.core.ledger import parse_time
from cicd.core.messages import short

if TYPE_CHECKING:
    from cicd.core.ledger import Event
    from cicd.core.state import EnvState
    from cicd.host.target import Target

#: A relative ``--since``: a number and a unit (s, m, h, d, w).
RELATIVE = re.compile(r"^(\d{1,6})([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: A line of a detail that is a link: a URL or an absolute path (a CI log).
LINK = re.compile(r"^(https?://|/)\S+$")
#: Longest detail a table row shows (the JSON keeps the whole ledger detail).
DETAIL_WIDTH = 60
#: ``invoke audit``'s table.
AUDIT_COLUMNS = (
    Column("TIME (UTC)", 19),
    Column("ACTOR", 12, gap="  "),
    Column("HOST", 16),
    Column("EVENT", 15),
    Column("SHA", 7),
    Column("OUTCOME", 16, gap="  "),
    Column("DURATIONS / DETAIL"),
)
#: ``invoke releases``' rows (no header: each row is followed by its links).
RELEASE_COLUMNS = (
    Column("SHA", 12),
    Column("DEPLOYED", 16, gap="  "),
    Column("ACTOR", 12, gap="  "),
    Column("CI", 12),
    Column("FLAGS", 26),
    Column("SUBJECT"),
)
#: What a ``ci`` event's outcome means for a release's CI column.
CI_STATES = ("success", "failure", "inconclusive", "superseded", "watching")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """Parse ``--since``: an ISO date or date-time, or a relative ``2h`` / ``3d``.

    A date-time without a zone is UTC, as every time in the ledger is.

    Args:
        text: What the user typed.
        now: The present (tests may fix it).

    Raises:
        UsageError: Neither form; nothing was read.
    """
    value = text.strip()
    match = RELATIVE.match(value)
    if match:
        delta = timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since {clip(value, 40)!r}: expected an ISO date or time "
            "(2026-12-01, 2026-12-01T10:30) or a duration (30m, 2h, 3d, 1w)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def event_time(event: Event) -> datetime | None:
    """When an event happened, or None when its time is unreadable."""
    return parse_time(event.time)


def audit_rows(state: EnvState, since: datetime | None = None) -> list[dict[str, Any]]:
    """The ledger's events as rows, oldest first; only those at or after ``since``."""
    rows = []
    for event in state.events:
        when = event_time(event)
        if since is not None and (when is None or when < since):
            continue
        rows.append(
            {
                "time": event.time,
                "env": event.env or state.env,
                "actor": event.actor,
                "host": event.host,
                "event": event.event,
                "sha": event.sha,
                "previous": event.previous,
                "outcome": event.outcome,
                "detail": event.detail,
                "durations": dict(event.durations),
            }
        )
    return rows


def format_durations(durations: dict[str, float]) -> str:
    """``export 1.2s · restart 0.4s``, or ``-`` when there are none."""
    if not durations:
        return "-"
    return " · ".join(f"{step} {seconds:.1f}s" for step, seconds in durations.items())


def format_audit(rows: list[dict[str, Any]]) -> str:
    """Render audit rows as a table a person reads (times in UTC)."""
    lines = table.lines(AUDIT_COLUMNS, [])
    for row in rows:
        parts = str(row["detail"]).split("\n")
        # A link (a CI run, a log file) is never cut: it goes whole on a line below.
        links = [part.strip() for part in parts if LINK.match(part.strip())]
        detail = " · ".join(p for p in parts if p.strip() not in links).strip()
        durations = format_durations(row["durations"])
        said = durations if durations != "-" else ""
        sha = short(row["sha"]) if row["sha"] else "-"
        if detail:
            said = f"{said} — {detail}" if said else detail
        cells = [
            row["time"][:19].replace("T", " "),
            clip(row["actor"], 12),
            clip(row["host"], 16),
            row["event"],
            sha,
            clip(row["outcome"], 16),
            clip(said or "-", DETAIL_WIDTH),
        ]
        lines.append(table.line(AUDIT_COLUMNS, cells))
        lines.extend(f"{'':<21}{link}" for link in links)
    return "\n".join(lines)


def repository(target: Target) -> str:
    """The source's ``owner/name`` on GitHub, or empty when unknown."""
    return target.settings.ci.repository or os.environ.get("GITHUB_REPOSITORY", "")


def commit_url(target: Target, sha: str) -> str:
    """The commit's page on GitHub when the repository is known, else empty."""
    name = repository(target)
    if not name:
        return ""
    server = os.environ.get("GITHUB_SERVER_URL", "").rstrip("/") or "https://github.com"
    return f"{server}/{name}/commit/{sha}"


def ci_of(state: EnvState, sha: str) -> tuple[str | None, str]:
    """A release's CI state (validated, failure, watching...) and its run's link.

    Read from the ledger: the last ``ci`` verdict recorded for the sha, overridden
    by a ``marked_bad`` (bad) or a ``validated`` that came after it.
    """
    verdict: str | None = None
    link = ""
    for event in state.events:
        if event.sha != sha:
            continue
        if event.event == "ci" and event.outcome in CI_STATES:
            verdict = event.outcome
            lines = event.detail.split("\n")
            if len(lines) > 1 and lines[-1].startswith(("http://", "https://")):
                link = lines[-1]
        elif event.event == "validated":
            verdict = "validated"
        elif event.event == "marked_bad":
            verdict = "bad"
    if verdict is None and sha in state.validated_all:
        verdict = "validated"
    return verdict, link


def last_deploy(state: EnvState, sha: str) -> Event | None:
    """The last ledger event that deployed ``sha`` here (deploy), else None."""
    found = None
    for event in state.events:
        if event.sha == sha and event.event == "deploy":
            found = event
    return found


def release_facts(target: Target, state: EnvState, sha: str) -> dict[str, Any]:
    """Date, actor, subject, CI state and links of one kept release."""
    deployed = last_deploy(state, sha)
    author, subject = target.describe(sha)
    ci, ci_url = ci_of(state, sha)
    return {
        "deployed_at": deployed.time if deployed else None,
        "actor": deployed.actor if deployed else None,
        "author": author or None,
        "subject": subject or None,
        "ci": ci,
        "ci_url": ci_url or None,
        "url": commit_url(target, sha) or None,
    }


def format_releases(rows: list[dict[str, Any]]) -> list[str]:
    """Render release rows: sha, date, actor, CI, flags, subject, then the links."""
    lines = []
    for row in rows:
        flags = [k for k in ("current", "previous", "validated", "bad") if row[k]]
        cells = [
            row["sha"][:12],
            (row.get("deployed_at") or "-")[:16].replace("T", " "),
            clip(row.get("actor") or "-", 12),
            row.get("ci") or "-",
            " ".join(flags) or "-",
            clip(row.get("subject") or "", 60),
        ]
        lines.append(table.line(RELEASE_COLUMNS, cells).rstrip())
        for key in ("url", "ci_url"):
            if row.get(key):
                lines.append(f"{'':14}{row[key]}")
    return lines
