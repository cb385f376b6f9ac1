"""One writer per environment: a lock directory taken with an atomic ``mkdir``.

``lock/details`` says who holds it (actor, host, pid, sha, time, why). A lock whose
holder ran on this host and whose process is gone (``kill -9``, a reboot) is stale:
it is broken, and the ledger says so, so a rerun completes. Of several runs that
find the same stale lock, exactly one breaks it (see :func:`_break_stale`).

A *manual* lock (``invoke lock.acquire --reason``) is a freeze a person puts on an
environment: its process is meant to be gone, so it is never stale; deploys,
rollbacks and the watcher's verdicts are refused while it stands, naming who holds
it and why, and ``--lock-wait`` never waits for it (as Kamal does): a freeze lasts
until a person lifts it, so waiting would only hang the run.
"""

from __future__ import annotations

import json
import os
import posixpath
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, NoReturn

from cicd.commands import files
from cicd.core.errors import (
    SHELL_PREFIX,
    CicdError,
    ConnectionLost,
    LockHeld,
    UsageError,
    clip,
)
from cicd.core.ledger import actor
from cicd.core.lock_details import (
    MANUAL,
    describe,
    holder,
    holder_text,
    is_manual,
    is_stale,
    parse_state,
)

if TYPE_CHECKING:
    from cicd.host.target import Target

#: Longest reason a manual lock keeps (it is shown in every refusal).
REASON_LIMIT = 200
#: How long this invocation waits for a deploy or rollback lock (``--lock-wait``);
#: None: what each caller asks (the watcher's ``ci.lock_wait``, else no wait).
_lock_wait: ContextVar[float | None] = ContextVar("lock_wait", default=None)


class HeldBy(LockHeld):
    """The lock is held by the run (or person) that ``summary`` names.

    Args:
        message: The whole refusal, with what to do about it.
        summary: Who holds it, in a few words (for "waiting up to ..." lines).
    """

    def __init__(self, message: str, summary: str) -> None:
        super().__init__(message)
        self.summary = summary


class ManualLockHeld(HeldBy):
    """A person froze the environment (``lock.acquire``); never waited for."""


@contextmanager
def waiting(seconds: float | None) -> Iterator[None]:
    """Make every :func:`hold` in the block wait up to ``seconds`` for a lock.

    The operator's patience is a property of the whole invocation, like Kamal's
    ``--lock-wait``: a deploy's, a rollback's or a verdict's lock, and the repair or
    rollback they run under it, all honour it without each phase passing it on.

    Raises:
        UsageError: ``seconds`` is negative; nothing was changed.
    """
    if seconds is not None and seconds < 0:
        raise UsageError(f"--lock-wait must be 0 or more seconds, got {seconds:g}")
    token = _lock_wait.set(seconds)
    try:
        yield
    finally:
        _lock_wait.reset(token)


@contextmanager
def hold(
    targets: list[Target], why: str, sha: str | None = None, *, wait: float = 0.0
) -> Iterator[dict[str, Any]]:
    """Hold the lock of every host of an environment for the duration of the block.

    Taken and released in parallel, all or nothing: if one host's lock is held, the
    ones taken are released again, and after ``wait`` seconds of retrying
    :class:`LockHeld` names that holder. A manual lock is never waited for.

    Args:
        targets: The environment on each of its hosts (one for a single VM).
        why: What the holder is doing (deploy, rollback, watch...).
        sha: The sha concerned, for the details.
        wait: Seconds to keep trying while another run holds a lock; the
            invocation's ``--lock-wait`` (:func:`waiting`) wins when given.

    Yields:
        The details written into the lock.

    Raises:
        ManualLockHeld: A person froze the environment; nothing was changed.
        LockHeld: Another live run holds it; nothing was changed.
    """
    details = holder(why, sha)
    asked = _lock_wait.get()
    patience = wait if asked is None else asked
    deadline = time.monotonic() + patience
    said = False
    while True:
        try:
            _acquire_all(targets, details)
            break
        except ManualLockHeld:
            raise
        except HeldBy as error:
            if time.monotonic() >= deadline:
                raise
            if not said:
                # Once, so a person watching knows why nothing moves.
                print(f"{error.summary}; waiting up to {patience:g} s", file=sys.stderr)
                said = True
            time.sleep(0.5)
    try:
        yield details
    finally:
        _release_all(targets)


def _acquire_all(targets: list[Target], details: dict[str, Any]) -> None:
    if len(targets) == 1:
        acquire(targets[0], details)
        return
    from cicd.transport.parallel import failures_by_host

    errors = failures_by_host(lambda t: acquire(t, details), targets)
    failed = [error for error in errors.values() if error is not None]
    if failed:
        _release_all([t for t in targets if errors[t] is None])
        # A freeze on any host decides: it is never waited for.
        manual = [error for error in failed if isinstance(error, ManualLockHeld)]
        raise (manual or failed)[0]


def _release_all(targets: list[Target]) -> None:
    if not targets:
        return  # every host refused the lock: none to give back
    if len(targets) == 1:
        _release(targets[0])
        return
    from cicd.transport.parallel import failures_by_host

    failures_by_host(_release, targets)


def read(target: Target) -> dict[str, Any] | None:
    """The lock's details when it is held, else None (one round trip).

    The details say too whether the holder is ``stale`` (its process gone, on this
    host): ``lock.status --json`` shows them as read.
    """
    details = parse_state(target.runner.run(files.lock_state(target.paths.lock)).stdout)
    if details is not None:
        details["stale"] = is_stale(details)
    return details


def _release(target: Target) -> None:
    try:
        target.runner.run(
            files.remove(target.paths.lock),
            check=False,
            prefetch=target.closing_reads(),
        )
    except ConnectionLost:
        # The host is unreachable: the lock stays, and is stale for the next run
        # from here (our process will be gone), which breaks it.
        pass


def acquire(target: Target, details: dict[str, Any]) -> None:
    """Take the lock or raise :class:`LockHeld` naming the holder."""
    runner = target.runner
    text = json.dumps(details, sort_keys=True)
    paths = target.paths
    for _ in range(3):
        # The environment's directories are made in the same round trip, and
        # what the run reads first is read right after (kept by the runner).
        taken = runner.run(
            files.make_lock(paths.lock, text, *paths.dirs),
            check=False,
            prefetch=target.opening_reads(),
        )
        if taken.ok:
            target.dirs_made = True
            return
        raw = _read_raw(target)
        if raw is not None:
            break
        # Gone already: another run was breaking it (renamed away, not yet
        # taken again) or released it. Try again rather than blame the disk.
    else:
        _refused(target, taken.stderr)
    holder = parse_state(f"held\n{raw}") or {}
    if holder and is_stale(holder):
        if _break_stale(target, holder, str(raw), text):
            return
        # Another run broke it first: it holds the lock now (or already left).
        if runner.ok(files.make_lock(paths.lock, text)):
            return
        holder = read(target) or holder
    raise held_error(target, holder)


def held_error(target: Target, holder: dict[str, Any]) -> HeldBy:
    """The refusal of a run that found ``target``'s lock held by ``holder``."""
    env = target.env
    summary = f"{env} is locked by {describe(holder)}"
    if is_manual(holder):
        return ManualLockHeld(
            f"{env} is frozen by {describe(holder)}; nothing was changed "
            f"(to lift it: invoke lock.release --env {env})",
            summary,
        )
    return HeldBy(
        f"{summary}; nothing was changed "
        f"(if that run is gone: invoke lock.release --env {env} --force)",
        summary,
    )


def _read_raw(target: Target) -> str | None:
    """The lock's details file as written (empty if none yet), or None when free."""
    text = target.runner.run(files.lock_state(target.paths.lock)).stdout
    first, _, rest = text.strip("\n").partition("\n")
    return rest if first.strip() == "held" else None


def _break_stale(target: Target, holder: dict[str, Any], raw: str, text: str) -> bool:
    """Break the stale lock of ``holder`` and take it with ``text``; at most one wins.

    Two runs may judge the same lock stale at once. Each claims the lock directory
    it sees (``mkdir lock/.breaking``: one succeeds), re-checks that its details are
    still the stale ones it judged (not a fresh lock another run took meanwhile),
    then renames it away atomically and takes a new one: no run ever removes a lock
    someone else just took.

    Returns:
        Whether this run broke it and now holds the lock.
    """
    grave = f"{target.paths.lock}.broken.{os.getpid()}.{secrets.token_hex(4)}"
    done = target.runner.run(
        files.break_lock(target.paths.lock, raw, text, grave), check=False
    )
    if done.exited not in (0, files.BROKEN_BUT_TAKEN):
        return False
    broken = f"stale lock of {holder_text(holder)} (process gone)"
    print(f"{target.env}: broke the {broken}", file=sys.stderr)
    target.event("lock_broken", sha=holder.get("sha"), detail=broken)
    return done.exited == 0


def claim(target: Target, path: str, details: dict[str, Any]) -> dict[str, Any] | None:
    """Take a lock directory of its own (not the environment's), as :func:`acquire`.

    For a claim on one thing rather than on the environment — the CI watcher's
    claim on a sha — so two runs never do that thing at once: ``mkdir`` decides,
    and a claim whose holder is gone (on this host) is broken and taken.

    Args:
        target: The environment on its host.
        path: The lock directory; its parent is made if missing.
        details: Who claims it (:func:`holder`).

    Returns:
        None when this run holds the claim now, else the live holder's details.

    Raises:
        CicdError: The disk refused the ``mkdir`` (read-only, full).
    """
    runner = target.runner
    text = json.dumps(details, sort_keys=True)
    for _ in range(3):
        taken = runner.run(
            files.make_lock(path, text, posixpath.dirname(path)), check=False
        )
        if taken.ok:
            return None
        state = runner.run(files.lock_state(path)).stdout
        found = parse_state(state)
        if found is None:
            continue  # released between the two commands: try again
        if not is_stale(found):
            return found
        raw = state.strip("\n").partition("\n")[2]
        grave = f"{path}.broken.{os.getpid()}.{secrets.token_hex(4)}"
        broken = runner.run(files.break_lock(path, raw, text, grave), check=False)
        if broken.exited == 0:
            return None
        # Another run broke it first and may hold it now: look again.
    found = parse_state(runner.run(files.lock_state(path)).stdout)
    if found is None:
        _refused(target, taken.stderr)
    return found


def unclaim(target: Target, path: str) -> None:
    """Give a claim taken with :func:`claim` back."""
    try:
        target.runner.run(files.remove(path), check=False)
    except ConnectionLost:
        pass  # stale for the next run from here, which breaks it


def _refused(target: Target, stderr: str) -> NoReturn:
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
    """Release the lock: a manual or stale one, any other only with ``force``.

    Returns:
        What was done, in words.

    Raises:
        LockHeld: The holder is a live run (or elsewhere) and ``force`` is false.
    """
    holder = read(target)
    if holder is None:
        return f"{target.env}: not locked"
    manual = is_manual(holder)
    if not force and not manual and not is_stale(holder):
        raise LockHeld(
            f"{target.env} is locked by {describe(holder)}; "
            "pass --force to release it anyway"
        )
    target.runner.run(files.remove(target.paths.lock))
    if manual:
        target.event(
            "unlocked",
            detail=f"lifted by {actor()}: {holder.get('reason') or 'no reason given'} "
            f"(frozen by {holder.get('actor', '?')} since {holder.get('time', '?')})",
        )
        return f"{target.env}: lifted {describe(holder)}"
    target.event(
        "lock_broken",
        sha=holder.get("sha"),
        detail=f"released by hand: {describe(holder)}",
    )
    return f"{target.env}: lock of {describe(holder)} released"


def freeze(targets: list[Target], reason: str) -> dict[str, Any]:
    """Take a manual lock on every host: deploys and verdicts wait for a person.

    Args:
        targets: The environment on each of its hosts.
        reason: Why, shown in every refusal while it stands.

    Returns:
        The details written into the lock.

    Raises:
        UsageError: No reason given; nothing was changed.
        LockHeld: Another run (or freeze) holds a lock; nothing was changed.
    """
    reason = " ".join(reason.split())
    if not reason:
        raise UsageError("--reason is required: say why the environment is frozen")
    details = holder(MANUAL, None, clip(reason, REASON_LIMIT))
    _acquire_all(targets, details)
    for target in targets:
        target.event("locked", detail=f"frozen: {details['reason']}")
    return details
