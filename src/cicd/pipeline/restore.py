"""Restore a backup: the persistent data put back, the app restarted on it and ready.

``invoke backup.restore --env prod --from STAMP``, on each host of the environment:

1. the archive is read back whole and compared with what was recorded when it was
   taken (:func:`cicd.host.backup.verify`): a missing, truncated or altered one is
   refused here, before the lock, with nothing changed;
2. under the environment's lock, an unfinished switch or restore is settled first
   (:mod:`cicd.pipeline.repair`), and the archive is checked again;
3. the intent is written (``why: restore``, phase ``extracting``) and the archive
   extracted into ``<env>/.restore-staged``; what came out is compared with the
   archive's listing — fail point ``restore-extracted``;
4. phase ``staged``: each persistent directory is swapped with its restored copy
   (two renames each; the live one kept aside in ``<env>/.restore-old``), a
   ``restore`` event recorded, phase ``swapped`` — fail point ``restore-swapped``;
5. the app restarts on the restored data (:func:`cicd.pipeline.start.restart_current`:
   behind haproxy on the idle slot with no downtime) and must get ready; if it does
   not, the data kept aside is put back and the app restarted on it;
6. phase ``ready`` — fail point ``restore-ready``; the data kept aside and the
   intent are removed.

A restore killed anywhere is settled by the next command that takes the lock (a
deploy, a rollback, ``status --repair``, another restore): killed before its data
was staged, it is undone (nothing had changed); after, it is finished from its
phase (:func:`settle`). Behind haproxy the restart writes its own intent, which a
repair completes the usual way: the data is already in place by then.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cicd.commands import backup as commands
from cicd.commands import files
from cicd.core.errors import CicdError, UsageError
from cicd.core.ledger import now
from cicd.core.progress import Timeline
from cicd.host import backup, intent, lock
from cicd.pipeline.activation import DeployFailed
from cicd.pipeline.start import restart_current
from cicd.transport import failpoints

if TYPE_CHECKING:
    from cicd.host.target import Target
    from cicd.reporting.notify import Notifier

#: The fail points of a restore, in the order it reaches them.
POINTS = ("restore-extracted", "restore-swapped", "restore-ready")


@dataclass(frozen=True)
class Restored:
    """What a restore did on one host.

    Attributes:
        stamp: The backup put back.
        files: Files restored.
        data_bytes: Their sizes added up.
        seconds: From the lock to ready.
        line: One line for a person.
    """

    stamp: str
    files: int
    data_bytes: int
    seconds: float
    line: str

    def as_dict(self) -> dict[str, object]:
        """The fields ``backup.restore --json`` prints per host."""
        return {
            "stamp": self.stamp,
            "files": self.files,
            "data_bytes": self.data_bytes,
            "seconds": round(self.seconds, 3),
            "done": self.line,
        }


def restore(hosts: list[Target], notifier: Notifier, stamp: str) -> list[Restored]:
    """Put the backup ``stamp`` back on every host of an environment, under its lock.

    Raises:
        UsageError: ``stamp`` is not a stamp, or the environment was never
            deployed; nothing changed.
        CicdError: The archive is missing or corrupt on a host (nothing changed),
            or the app did not get ready on the restored data (the previous data
            is back).
        LockHeld: Another run holds the environment; nothing changed.
    """
    stamp = backup.check_stamp(stamp)
    for target in hosts:
        # Refused here, before the lock: a bad archive changes nothing anywhere.
        backup.verify(target, stamp, record=False)
        if not target.current():
            raise UsageError(
                f"{target.env} was never deployed on {target.runner.host}: no app "
                "to restart on the restored data"
            )
    with lock.hold(hosts, "restore"):
        done = [restore_locked(target, notifier, stamp) for target in hosts]
    # Sent once the lock is free: a slow webhook never holds the environment.
    notifier.send(
        f"✅ {hosts[0].env}: backup {stamp} restored ({done[0].files} files); the "
        "app runs on the restored data and is ready"
    )
    return done


def restore_locked(target: Target, notifier: Notifier, stamp: str) -> Restored:
    """Restore ``stamp`` on one host; the caller holds the environment's lock.

    Raises:
        CicdError: As :func:`restore`.
    """
    from cicd.pipeline.repair import repair

    clock = time.monotonic()
    timeline = Timeline(notifier.say)
    repair(target, notifier)
    chosen = backup.find(target, stamp)
    # Again under the lock: the archive may have changed since it was read.
    found = backup.verify(target, stamp, record=False)
    staged, old = _scratch(target)
    details = {
        "why": "restore",
        "phase": "extracting",
        "stamp": chosen.stamp,
        "archive": chosen.archive,
        "members": list(target.settings.persistent),
        "from": target.current(),
        "to": target.current(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "time": now(),
    }
    _write_intent(target, details)
    try:
        with timeline.step("extract", f"restore {chosen.stamp} into {staged}"):
            count, data = backup.extract(target, chosen.archive, staged)
        if (count, data) != (found.files, found.data_bytes):
            raise CicdError(
                f"{chosen.stamp}: the restore wrote {count} files ({data} bytes), "
                f"the archive lists {found.files} ({found.data_bytes} bytes)"
            )
    except CicdError:
        _undo_staging(target, "extraction failed")
        raise
    failpoints.hit("restore-extracted")
    details["phase"] = "staged"
    _write_intent(target, details)
    line = finish(target, details, timeline)
    return Restored(chosen.stamp, count, data, time.monotonic() - clock, line)


def settle(target: Target, pending: dict[str, Any], notifier: Notifier) -> str:
    """Finish or undo a restore a killed run left (its intent); the lock is held.

    Returns:
        What was done, in words.

    Raises:
        CicdError: The app did not get ready on the restored data (the previous
            data is back, and the app restarted on it).
    """
    stamp = str(pending.get("stamp") or "?")
    notifier.say(f"{target.env}: unfinished restore of {stamp}; settling it")
    if pending.get("phase") == "ready":
        # Only the clean-up was left: the app already runs on the restored data.
        target.runner.defer(files.remove(*_scratch(target)))
        intent.clear(target.context)
        return f"restore of {stamp} was complete; its scratch data removed"
    if pending.get("phase") not in ("staged", "swapped"):
        done = f"restore of {stamp} killed before its data was staged: undone"
        _undo_staging(target, done)
        return done
    said = finish(target, pending, Timeline(notifier.say))
    notifier.say(said + " (completed by repair)")
    return f"restore of {stamp} completed: the app runs on the restored data"


def finish(target: Target, details: dict[str, Any], timeline: Timeline) -> str:
    """From the staged data on: swap it in, restart, get ready, clean up.

    Each step can run again after a kill: a member swapped already is skipped, a
    ``restore`` event recorded already (phase ``swapped``) is not repeated.

    Raises:
        CicdError: Not ready on the restored data; the previous data is back.
    """
    stamp = str(details.get("stamp"))
    members = [str(m) for m in details.get("members") or ()]
    staged, old = _scratch(target)
    if details.get("phase") != "swapped":
        with timeline.step("swap", f"put the restored {', '.join(members)} in place"):
            target.runner.run(commands.swap_in(target.paths.dir, staged, old, *members))
        details["phase"] = "swapped"
        _write_intent(target, details)
        target.event(
            "restore",
            sha=target.current(),
            detail=f"restored {stamp}: {', '.join(members)} put back; restarting",
        )
    failpoints.hit("restore-swapped")
    try:
        done = restart_current(target, timeline, f"restore {stamp}")
    except DeployFailed as error:
        _swap_back(target, members, stamp, error, timeline)
        raise CicdError(
            f"{target.env}: the app did not get ready on the data of {stamp} "
            f"({error}); the previous data is back and the app restarted on it"
        ) from None
    # Behind haproxy the restart's own intent replaced this one: written again,
    # so a kill from here on still leaves the clean-up to the next command.
    details["phase"] = "ready"
    _write_intent(target, details)
    failpoints.hit("restore-ready")
    # The data kept aside goes with the intent: one round trip, after ready.
    target.runner.defer(files.remove(staged, old))
    intent.clear(target.context)
    return f"{target.env}: restored {stamp}; {done}"


def _swap_back(
    target: Target, members: list[str], stamp: str, error: CicdError, tl: Timeline
) -> None:
    """Put the data kept aside back and restart on it; record the failed restore."""
    _, old = _scratch(target)
    target.runner.run(commands.swap_back(target.paths.dir, old, *members))
    target.event(
        "restore",
        sha=target.current(),
        outcome="failed",
        detail=f"restore {stamp}: not ready on the restored data ({error}); "
        "the previous data put back",
    )
    try:
        restart_current(target, tl, f"restore {stamp} undone")
    finally:
        target.runner.defer(files.remove(*_scratch(target)))
        intent.clear(target.context)


def _undo_staging(target: Target, why: str) -> None:
    """Nothing live changed yet: remove what was staged and the intent."""
    target.runner.defer(files.remove(*_scratch(target)))
    intent.clear(target.context)
    target.event("restore", outcome="failed", detail=f"restore undone: {why}")


def _scratch(target: Target) -> tuple[str, str]:
    """Where a restore stages the archive's data, and keeps the live data aside."""
    return (
        backup.scratch_dir(target, "staged"),
        backup.scratch_dir(target, "old"),
    )


def _write_intent(target: Target, details: dict[str, Any]) -> None:
    """The restore's intent, sent with the next command (before it, in order)."""
    target.runner.defer(
        files.write_atomic(target.paths.intent, json.dumps(details, sort_keys=True))
    )
