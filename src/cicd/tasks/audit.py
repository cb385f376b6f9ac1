"""``audit``: what was done to each environment, by whom, from the ledger."""

from __future__ import annotations

from typing import Any

from invoke.tasks import task

from cicd.tasks import options
from cicd.tasks.boundary import reported
from cicd.tasks.documents import emit_json, host_row
from cicd.tasks.hosts import env_targets, host_label


@task(
    help={
        "env": options.ENV_ONE_OR_ALL,
        "since": "Only events since then: an ISO date or time in UTC "
        "(2026-12-01, 2026-12-01T10:30) or a duration back from now (30m, 2h, 3d).",
        "json": options.JSON,
    }
)
def audit(c: Any, env: str = "", since: str = "", json: bool = False) -> None:
    """Show the ledger as a table: time, actor, host, event, sha, outcome, durations.

    Every deploy, switch, restart, health check, CI verdict, rollback, lock and
    repair is there, oldest first, on each host. Reads only: it takes no lock.
    """
    with reported("audit" if json else "", env or None):
        import sys

        from cicd.reporting.audit import audit_rows, format_audit, parse_since

        start = parse_since(since) if since else None
        found = []
        for t in env_targets(c, env):
            state = t.state()
            for warning in state.warnings:
                print(f"warning: {t.env}: {warning}", file=sys.stderr)
            found.append((t, audit_rows(state, start)))
        if json:
            rows = [host_row(t, events=events) for t, events in found]
            emit_json(
                "audit",
                rows,
                env=env or None,
                since=start.isoformat() if start else None,
            )
            return
        for t, events in found:
            where = host_label(t)
            if not events:
                print(f"{where}: no events" + (f" since {since}" if since else ""))
                continue
            print(f"{where}:")
            print(format_audit(events))
