"""Backups: list an environment's archives, verify one, restore one.

``invoke backup.list --env prod``, ``backup.verify``, ``backup.restore --from STAMP``;
the same under ``fab -H HOST``. A missing or corrupt archive is one line and exit 1
with nothing changed; a bad stamp or environment exit 2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invoke.tasks import task

from cicd.tasks import options
from cicd.tasks.boundary import lock_waiting, reported
from cicd.tasks.documents import emit_json, finish, host_row
from cicd.tasks.hosts import notifier, targets

if TYPE_CHECKING:
    from cicd.host.backup import Backup

#: ``--env`` of the backup tasks: production is the environment backed up.
ENV = "Environment (default: prod)."

#: ``--from`` of backup.verify and backup.restore.
FROM = "A backup's stamp, as backup.list shows it (YYYYMMDDTHHMMSSZ)"


@task(name="list", help={"env": ENV, "json": options.JSON})
def list_backups(c: Any, env: str = "prod", json: bool = False) -> None:
    """List the backups, newest first: stamp, release, size, files, sha256, verified.

    VERIFIED is when the archive was last read back whole and found as recorded
    when it was taken (taking one reads it back); FAILED when its last check
    failed.
    """
    with reported("backup.list" if json else "", env):
        from cicd.core.table import Column, lines
        from cicd.host.backup import backups

        by_host = [(t, backups(t)) for t in targets(c, env)]
        if json:
            rows = [
                host_row(t, backups=[b.as_dict() for b in kept]) for t, kept in by_host
            ]
            emit_json("backup.list", rows, env=env)
            return
        columns = [
            Column("STAMP", 16),
            Column("RELEASE", 7, gap="  "),
            Column("SIZE", 10, gap="  ", right=True),
            Column("FILES", 6, gap="  ", right=True),
            Column("SHA256", 12, gap="  "),
            Column("VERIFIED", gap="  "),
        ]
        for t, kept in by_host:
            if len(by_host) > 1:
                print(f"{t.env}@{t.runner.host}")
            if not kept:
                print(f"{t.env}: no backup on {t.runner.host}")
                continue
            print("\n".join(lines(columns, [_cells(b) for b in kept])))


def _cells(each: Backup) -> list[str]:
    """One backup's row of ``backup.list``."""
    figures = each.recorded
    if each.failed:
        verified = "FAILED"
    elif each.verified:
        verified = each.verified[:16].replace("T", " ")
    else:
        verified = "never"
    return [
        each.stamp,
        each.release,
        f"{figures.bytes:,}" if figures else "?",
        str(figures.files) if figures else "?",
        figures.sha256[:12] if figures else "(not recorded)",
        verified,
    ]


@task(
    help={
        "env": ENV,
        "from_": FROM + " (default: the newest).",
        "json": options.JSON,
    }
)
def verify(c: Any, env: str = "prod", from_: str = "", json: bool = False) -> None:
    """Read a backup back whole and compare it with what was recorded when taken.

    Its SHA-256, file count and sizes must be the ones recorded; a truncated or
    altered archive fails with one line saying why (exit 1). The outcome is
    recorded in the ledger.
    """
    with reported("backup.verify" if json else "", env):
        from cicd.host.backup import check_stamp, find
        from cicd.host.backup import verify as do_verify

        stamp = check_stamp(from_) if from_.strip() else None
        rows = []
        for t in targets(c, env):
            chosen = find(t, stamp)
            found = do_verify(t, chosen.stamp)
            line = (
                f"{t.env}: {chosen.stamp} verified: {found.files} files, "
                f"{found.bytes:,} bytes, sha256 {found.sha256[:12]} as recorded"
            )
            rows.append(host_row(t, stamp=chosen.stamp, **vars(found), done=line))
            if not json:
                print(line)
        if json:
            emit_json("backup.verify", rows, env=env)


@task(
    help={
        "env": ENV,
        "from_": FROM + ".",
        "json": options.JSON,
        "lock_wait": options.LOCK_WAIT,
    }
)
def restore(
    c: Any, env: str = "prod", from_: str = "", json: bool = False, lock_wait: str = ""
) -> None:
    """Put a backup's data back and restart the app on it, under the lock.

    The archive is read back whole first: missing, truncated or altered, it is
    refused with nothing changed (exit 1). Then the data is extracted beside the
    live one, swapped in, and the app restarted on it and checked ready (behind
    haproxy with no downtime); if it does not get ready the previous data is put
    back. A restore killed half-way is finished or undone by the next command.
    """
    with reported("backup.restore" if json else "", env, summary="backup.restore"):
        from cicd.core.errors import UsageError
        from cicd.pipeline.restore import restore as do_restore

        if not from_.strip():
            raise UsageError("backup.restore needs --from STAMP (see backup.list)")
        hosts = targets(c, env)
        with lock_waiting(lock_wait):
            done = do_restore(hosts, notifier(hosts[0], hosts), from_)
        rows = [host_row(t, **r.as_dict()) for t, r in zip(hosts, done)]
        if not json:
            print("\n".join(r.line for r in done))
        finish("backup.restore", rows, json=json, env=env)
