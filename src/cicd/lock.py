"""One writer per environment: a lock directory taken with an atomic ``mkdir``.

``lock/details`` says who holds it (actor, host, pid, sha, time, why). A lock whose
holder ran on this host and whose process is gone (``kill -9``, a reboot) is stale:
it is broken, and the ledger says so, so a rerun completes.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from cicd.commands import files
from cicd.errors import SHELL_PREFIX, CicdError, ConnectionLost, LockHeld
from cicd.ledger import actor, now

if TYPE_CHECKING:
    from cicd.target import Target


def describe(details: dict[str, Any]) -> str:
    """Return a one-line description of a lock holder."""
    if "raw" in details:
        return str(details["raw"])
    return (
        f"{details.get('actor', '?')} on {details.get('host', '?')} "
        f"(pid {details.get('pid', '?')}) since {details.get('time', '?')}: "
        f"{details.get('why', '?')}"
        + (f" {details['sha'][:12]}" if details.get("sha") else "")
    )


def is_stale(details: dict[str, Any]) -> bool:
    """Whether the holder ran on this host and its process no longer exists."""
    if details.get("host") != socket.gethostname():
        return False
    try:
        pid = int(details.get("pid", 0))
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    return not process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            # The state follows the parenthesised command name: "Z" is a zombie.
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def holder(why: str, sha: str | None) -> dict[str, Any]:
    """The details a lock taken now, by this process, records about its holder."""
    return {
        "actor": actor(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "sha": sha,
        "time": now(),
        "why": why,
    }


@contextmanager
def hold(
    targets: list[Target], why: str, sha: str | None = None, *, wait: float = 0.0
) -> Iterator[dict[str, Any]]:
    """Hold the lock of every host of an environment for the duration of the block.

    Taken and released in parallel, all or nothing: if one host's lock is held, the
    ones taken are released again, and after ``wait`` seconds of retrying
    :class:`LockHeld` names that holder.

    Args:
        targets: The environment on each of its hosts (one for a single VM).
        why: What the holder is doing (deploy, rollback, watch...).
        sha: The sha concerned, for the details.
        wait: Seconds to keep trying while another run holds a lock.

    Yields:
        The details written into the lock.

    Raises:
        LockHeld: Another live run holds it; nothing was changed.
    """
    details = holder(why, sha)
    deadline = time.monotonic() + wait
    while True:
        try:
            _acquire_all(targets, details)
            break
        except LockHeld:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
    try:
        yield details
    finally:
        _release_all(targets)


def _acquire_all(targets: list[Target], details: dict[str, Any]) -> None:
    if len(targets) == 1:
        acquire(targets[0], details)
        return
    from cicd.parallel import each

    errors = each(lambda t: acquire(t, details), targets)
    failed = [error for error in errors.values() if error is not None]
    if failed:
        _release_all([t for t in targets if errors[t] is None])
        raise failed[0]


def _release_all(targets: list[Target]) -> None:
    if len(targets) == 1:
        _release(targets[0])
        return
    from cicd.parallel import each

    each(_release, targets)


def read(target: Target) -> dict[str, Any] | None:
    """The lock's details when it is held, else None (one round trip)."""
    return parse_state(target.runner.run(files.lock_state(target.paths.lock)).stdout)


def parse_state(text: str) -> dict[str, Any] | None:
    """Parse :func:`~cicd.commands.files.lock_state` output (or the snapshot's).

    Returns:
        None when the lock is free, else its details; a lock taken a moment ago
        may have none yet.
    """
    first, _, rest = text.strip("\n").partition("\n")
    if first.strip() != "held":
        return None
    try:
        details = json.loads(rest)
        return details if isinstance(details, dict) else {"raw": rest.strip()}
    except ValueError:
        return {"raw": rest.strip() or "(no details: taken a moment ago)"}


def _release(target: Target) -> None:
    try:
        target.runner.run(files.remove(target.paths.lock), check=False)
    except ConnectionLost:
        # The host is unreachable: the lock stays, and is stale for the next run
        # from here (our process will be gone), which breaks it.
        pass


def acquire(target: Target, details: dict[str, Any]) -> None:
    """Take the lock or raise :class:`LockHeld` naming the holder."""
    runner = target.runner
    text = json.dumps(details, sort_keys=True)
    paths = target.paths
    # The environment's directories are made in the same round trip.
    taken = runner.run(files.make_lock(paths.lock, text, *paths.dirs), check=False)
    if taken.ok:
        return
    holder = read(target)
    if holder is None:
        _refused(target, taken.stderr)
        holder = {}
    if holder and is_stale(holder):
        broken = f"stale lock of {describe(holder)} (process gone)"
        print(f"{target.env}: broke the {broken}", file=sys.stderr)
        target.event("lock_broken", sha=holder.get("sha"), detail=broken)
        runner.run(files.remove(target.paths.lock))
        again = runner.run(files.make_lock(paths.lock, text, *paths.dirs), check=False)
        if again.ok:
            return
        holder = read(target) or {}
    raise LockHeld(
        f"{target.env} is locked by {describe(holder)}; nothing was changed "
        f"(if that run is gone: invoke lock.release --env {target.env} --force)"
    )


def _refused(target: Target, stderr: str) -> None:
    """The lock is not held, yet could not be taken: the disk said no.

    Raises:
        CicdError: One line naming the path and the OS's error; exit 1.
    """
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    said = SHELL_PREFIX.sub("", lines[-1]) if lines else "no error output"
    raise CicdError(
        f"{target.env}: cannot write under {target.paths.dir}: {said}; "
        "nothing was changed"
    )


def release(target: Target, *, force: bool) -> str:
    """Release the lock: only a stale one unless ``force``.

    Returns:
        What was done, in words.

    Raises:
        LockHeld: The holder is alive (or elsewhere) and ``force`` is false.
    """
    holder = read(target)
    if holder is None:
        return f"{target.env}: not locked"
    if not force and not is_stale(holder):
        raise LockHeld(
            f"{target.env} is locked by {describe(holder)}; "
            "pass --force to release it anyway"
        )
    target.runner.run(files.remove(target.paths.lock))
    target.event(
        "lock_broken",
        sha=holder.get("sha"),
        detail=f"released by hand: {describe(holder)}",
    )
    return f"{target.env}: lock of {describe(holder)} released"
