"""Backups of production's persistent data, taken before every production switch."""

from __future__ import annotations

from datetime import UTC, datetime
from posixpath import join
from typing import TYPE_CHECKING

from cicd.commands import files
from cicd.core.messages import short

if TYPE_CHECKING:
    from cicd.core.progress import Timeline
    from cicd.host.target import Target


def back_up(target: Target, previous: str | None, timeline: Timeline) -> None:
    """Archive the persistent directories into ``backups/``, keeping ``keep``."""
    present = [
        p
        for p in target.settings.persistent
        if target.runner.ok(files.exists(join(target.paths.dir, p)))
    ]
    if not present:
        target.event(
            "backup", outcome="skipped", detail="no persistent directory exists yet"
        )
        return
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    archive = join(target.paths.backups, f"{stamp}-{short(previous)}.tar.gz")
    with timeline.step("backup", f"back up {', '.join(present)}"):
        target.runner.run(files.archive(archive, target.paths.dir, *present))
    target.event(
        "backup",
        sha=previous,
        detail=archive,
        durations={"backup": timeline.durations["backup"]},
    )
    _prune(target)


def _prune(target: Target) -> None:
    names = sorted(
        target.runner.output(files.list_files(target.paths.backups)).splitlines()
    )
    doomed = names[: max(len(names) - target.settings.keep, 0)]
    if doomed:
        target.runner.run(
            files.remove(*(join(target.paths.backups, n) for n in doomed))
        )
