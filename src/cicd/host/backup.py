"""Backups of persistent data: taken before every production switch, read back, tried.

A backup is ``backups/<stamp>-<release>.tar.gz``: the ``persistent`` directories
as they were just before a production deploy switched away from ``<release>``.
Taking one reads it back whole at once and records its SHA-256, file count and
sizes in the ledger's ``backup`` event; :func:`verify` reads it again and compares;
:func:`restore_check` extracts it into a scratch directory on the host, counts
what came out and removes it (a ``restore`` event: :func:`last_restore_check` says
how long ago). Everything goes through built commands (:mod:`cicd.commands.backup`)
and the runner, so it works the same here and over SSH.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from posixpath import basename, join
from typing import TYPE_CHECKING

from cicd.commands import backup as commands
from cicd.commands import files
from cicd.core.errors import CicdError, UsageError, clip
from cicd.core.ledger import parse_time
from cicd.core.messages import short

if TYPE_CHECKING:
    from cicd.core.ledger import Event
    from cicd.core.progress import Timeline
    from cicd.core.state import EnvState
    from cicd.host.target import Target

#: A backup's stamp: when it was taken, UTC (``20261207T112500Z``).
STAMP = re.compile(r"^\d{8}T\d{6}Z$")
#: A backup's file name: its stamp, the release it was taken from.
ARCHIVE = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<release>[0-9a-z]+)\.tar\.gz$")
#: The detail of a ``backup`` event once the archive was read back whole.
TAKEN = re.compile(
    r"^(?P<archive>.+) sha256=(?P<sha256>[0-9a-f]{64}) files=(?P<files>\d+) "
    r"bytes=(?P<bytes>\d+) data=(?P<data>\d+)$"
)
#: The detail of a ``backup`` event of a later :func:`verify`.
VERIFIED = re.compile(r"^verified (?P<stamp>\d{8}T\d{6}Z)\b")
#: The detail of a ``restore`` event that proved a backup restores: a
#: :func:`restore_check`, or a restore put into service.
CHECKED = re.compile(r"^(check|restored) (?P<stamp>\d{8}T\d{6}Z)\b")
#: Days a restore check stays fresh unless ``backup.restore_check`` says otherwise.
RESTORE_CHECK_DAYS = 7.0


@dataclass(frozen=True)
class Verified:
    """What reading an archive back whole found.

    Attributes:
        sha256: The archive's SHA-256.
        files: Regular files in it.
        bytes: The archive's own size.
        data_bytes: The files' sizes added up (what a restore writes).
    """

    sha256: str
    files: int
    bytes: int
    data_bytes: int = 0

    def detail(self, archive: str) -> str:
        """The ``backup`` event's detail that records these figures."""
        return (
            f"{archive} sha256={self.sha256} files={self.files} "
            f"bytes={self.bytes} data={self.data_bytes}"
        )


@dataclass(frozen=True)
class Backup:
    """One archive in ``backups/`` and what the ledger says of it.

    Attributes:
        stamp: When it was taken (UTC, ``20261207T112500Z``).
        release: The short sha of the release it was taken from (``none``).
        archive: Its path on the host.
        recorded: The figures recorded when it was taken (None: taken before
            backups were read back).
        verified: When it was last read back whole and found as recorded.
        failed: Why its last verification failed, when it did.
    """

    stamp: str
    release: str
    archive: str
    recorded: Verified | None = None
    verified: str = ""
    failed: str = ""

    def as_dict(self) -> dict[str, object]:
        """The fields ``backup.list --json`` prints."""
        figures = self.recorded
        return {
            "stamp": self.stamp,
            "release": self.release,
            "archive": self.archive,
            "bytes": figures.bytes if figures else None,
            "files": figures.files if figures else None,
            "data_bytes": figures.data_bytes if figures else None,
            "sha256": figures.sha256 if figures else None,
            "verified": self.verified or None,
            "failed": self.failed or None,
        }


@dataclass(frozen=True)
class RestoreCheck:
    """A restore tried in a scratch directory: what came out, how long it took."""

    stamp: str
    files: int
    data_bytes: int
    seconds: float


def back_up(target: Target, previous: str | None, timeline: Timeline) -> None:
    """Archive the persistent directories, read the archive back, keep ``keep``.

    Raises:
        CicdError: The archive could not be written or read back whole; nothing
            was switched yet.
    """
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
        # Read back whole now: a backup nobody can read must stop the deploy.
        found = inspect(target, archive)
    target.event(
        "backup",
        sha=previous,
        detail=found.detail(archive),
        durations={"backup": timeline.durations["backup"]},
    )
    _prune(target)


def inspect(target: Target, archive: str) -> Verified:
    """Read ``archive`` on the host back whole: its SHA-256, files and sizes.

    Raises:
        CicdError: It is missing, or tar cannot read it to its end (one line,
            with tar's or gzip's words).
    """
    result = target.runner.run(commands.inspect(archive), check=False)
    words = result.stdout.split()
    if result.exited == commands.MISSING:
        raise CicdError(f"{basename(archive)}: no such archive on {target.runner.host}")
    if not result.ok or len(words) != 4 or not all(w.isdigit() for w in words[1:]):
        raise CicdError(
            f"{basename(archive)} is corrupt: it cannot be read to its end "
            f"({_why(result.stderr)})"
        )
    return Verified(words[0], int(words[2]), int(words[1]), int(words[3]))


def _why(stderr: str) -> str:
    """The reason tar or gzip gave, on one line (the last words that say why)."""
    lines = [
        line.strip()
        for line in stderr.splitlines()
        if line.strip() and "Exiting with failure" not in line
    ]
    return clip("; ".join(lines[:2]) or "tar failed", 200)


def check_stamp(stamp: str) -> str:
    """A stamp the user typed, checked.

    Raises:
        UsageError: Not a backup's stamp (``20261207T112500Z``); nothing was read.
    """
    stamp = stamp.strip()
    if not STAMP.match(stamp):
        raise UsageError(
            f"invalid backup stamp {clip(stamp, 40)!r}: expected UTC as "
            "YYYYMMDDTHHMMSSZ (see invoke backup.list)"
        )
    return stamp


def backups(target: Target, state: EnvState | None = None) -> list[Backup]:
    """The archives in ``backups/``, newest first, with what the ledger says of each."""
    names = target.runner.output(files.list_files(target.paths.backups)).split("\n")
    events = (state or target.state()).events
    found = []
    for name in sorted((n for n in names if ARCHIVE.match(n)), reverse=True):
        match = ARCHIVE.match(name)
        assert match is not None  # filtered above
        archive = join(target.paths.backups, name)
        found.append(_known(match["stamp"], match["release"], archive, events))
    return found


def _known(stamp: str, release: str, archive: str, events: tuple[Event, ...]) -> Backup:
    """One archive, with its recorded figures and its verifications from the ledger."""
    recorded, verified, failed = None, "", ""
    for event in events:
        if event.event != "backup":
            continue
        taken = TAKEN.match(event.detail)
        if taken and basename(taken["archive"]) == basename(archive):
            recorded = Verified(
                taken["sha256"],
                int(taken["files"]),
                int(taken["bytes"]),
                int(taken["data"]),
            )
            verified, failed = event.time, ""
        elif (again := VERIFIED.match(event.detail)) and again["stamp"] == stamp:
            verified, failed = event.time, ""
        elif event.outcome == "failed" and event.detail.startswith(f"verify {stamp}"):
            failed = event.detail
    return Backup(stamp, release, archive, recorded, verified, failed)


def find(target: Target, stamp: str | None, state: EnvState | None = None) -> Backup:
    """The backup of ``stamp`` (the newest when None).

    Raises:
        UsageError: ``stamp`` is not a stamp.
        CicdError: No such backup here (or none at all).
    """
    if stamp is not None:
        stamp = check_stamp(stamp)
    kept = backups(target, state)
    if not kept:
        raise CicdError(f"{target.env}: no backup on {target.runner.host}")
    if stamp is None:
        return kept[0]
    for each in kept:
        if each.stamp == stamp:
            return each
    raise CicdError(
        f"{target.env}: no backup {stamp} on {target.runner.host} "
        f"(newest: {kept[0].stamp}; see invoke backup.list)"
    )


def verify(
    target: Target, stamp: str | None = None, *, record: bool = True
) -> Verified:
    """Read a backup back whole and compare it with what was recorded when taken.

    Args:
        target: The environment on one host.
        stamp: The backup's stamp; the newest when None.
        record: Write the outcome to the ledger (a ``backup`` event).

    Raises:
        UsageError: ``stamp`` is not a stamp.
        CicdError: Missing, unreadable, or not what was recorded (one line that
            names why); recorded as a failed verification.
    """
    chosen = find(target, stamp)
    try:
        found = inspect(target, chosen.archive)
        _compare(chosen, found)
    except CicdError as error:
        if record:
            target.event(
                "backup", outcome="failed", detail=f"verify {chosen.stamp}: {error}"
            )
        raise
    if record:
        target.event(
            "backup",
            detail=(
                f"verified {chosen.stamp}: {found.files} files, sha256 "
                f"{found.sha256[:12]}"
                + ("" if chosen.recorded else " (nothing recorded to compare with)")
            ),
        )
    return found


def _compare(chosen: Backup, found: Verified) -> None:
    """Raise when the archive read back is not the one recorded."""
    was = chosen.recorded
    if was is None:
        return
    name = basename(chosen.archive)
    if found.sha256 != was.sha256:
        raise CicdError(
            f"{name} was altered: its sha256 is {found.sha256[:12]}, "
            f"{was.sha256[:12]} was recorded when it was taken"
        )
    if (found.files, found.data_bytes) != (was.files, was.data_bytes):
        raise CicdError(
            f"{name} holds {found.files} files ({found.data_bytes} bytes), "
            f"{was.files} ({was.data_bytes} bytes) were recorded"
        )


def scratch_dir(target: Target, purpose: str) -> str:
    """A hidden scratch directory of the environment (``.restore-<purpose>``)."""
    return join(target.paths.dir, f".restore-{purpose}")


def restore_check(target: Target, stamp: str | None = None) -> RestoreCheck:
    """Restore a backup into a scratch directory on the host, check it, remove it.

    The archive is verified first; then extracted, and the files and bytes that
    came out are compared with what was recorded when it was taken. A ``restore``
    event records the outcome with its time (:func:`last_restore_check`). Nothing
    the app uses is touched.

    Args:
        target: The environment on one host.
        stamp: The backup's stamp; the newest when None.

    Raises:
        UsageError: ``stamp`` is not a stamp.
        CicdError: Missing, corrupt, or what came out differs (recorded).
    """
    clock = time.monotonic()
    chosen = find(target, stamp)
    scratch = scratch_dir(target, "check")
    try:
        found = verify(target, chosen.stamp, record=False)
        count, data = extract(target, chosen.archive, scratch)
        if (count, data) != (found.files, found.data_bytes):
            raise CicdError(
                f"{basename(chosen.archive)}: the restore wrote {count} files "
                f"({data} bytes), the archive lists {found.files} "
                f"({found.data_bytes} bytes)"
            )
    except CicdError as error:
        target.runner.run(files.remove(scratch))
        target.event(
            "restore", outcome="failed", detail=f"check {chosen.stamp}: {error}"
        )
        raise
    seconds = time.monotonic() - clock
    # Removed with the event's own write: one round trip for both.
    target.runner.defer(files.remove(scratch))
    target.event(
        "restore",
        detail=(
            f"check {chosen.stamp}: {count} files, {data} bytes restored into a "
            "scratch directory and removed"
        ),
        durations={"restore_check": seconds},
    )
    return RestoreCheck(chosen.stamp, count, data, seconds)


def extract(target: Target, archive: str, into: str) -> tuple[int, int]:
    """Extract ``archive`` into a fresh ``into`` on the host: files and bytes written.

    Raises:
        CicdError: Missing or unreadable (one line).
    """
    result = target.runner.run(commands.extract(archive, into), check=False)
    words = result.stdout.split()
    if result.exited == commands.MISSING:
        raise CicdError(f"{basename(archive)}: no such archive on {target.runner.host}")
    if not result.ok or len(words) != 2 or not all(w.isdigit() for w in words):
        raise CicdError(
            f"{basename(archive)} could not be restored ({_why(result.stderr)})"
        )
    return int(words[0]), int(words[1])


def last_restore_check(state: EnvState, now: datetime | None = None) -> float | None:
    """Days since the last restore check that passed, from the ledger; None if never.

    The pre-flight runs :func:`restore_check` when this is None or older than
    ``backup.restore_check`` days (:data:`RESTORE_CHECK_DAYS` by default).
    """
    for event in reversed(state.events):
        if event.event == "restore" and event.outcome == "ok":
            if CHECKED.match(event.detail):
                when = parse_time(event.time)
                if when is None:
                    continue
                moment = now or datetime.now(UTC)
                return max((moment - when).total_seconds(), 0.0) / 86400
    return None


def _prune(target: Target) -> None:
    names = sorted(
        target.runner.output(files.list_files(target.paths.backups)).splitlines()
    )
    doomed = names[: max(len(names) - target.settings.keep, 0)]
    if doomed:
        target.runner.run(
            files.remove(*(join(target.paths.backups, n) for n in doomed))
        )
