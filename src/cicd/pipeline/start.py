"""Starting what serves again: ``invoke start`` and ``invoke secrets.reload``.

:func:`start_env` is the recovery after a reboot or a killed supervisord: what served
starts again, and nothing else. In place that is the environment's app on the release
``current`` names. Behind haproxy it is the live slot (``<env>/live``, holding that
release) and, while its window lasts, the previous release kept warm on the other
slot; a slot holding a release CI rejected, one rolled back or one whose window ended
stays stopped, and one found running is stopped. The program files say the same to a
supervisord that starts on its own (the systemd unit at boot): only the live slot's
has ``autostart=true`` (:meth:`cicd.host.slots.Slots.boot_only`).

:func:`reload_env` starts the current release afresh so it reads
``<env>/shared/app.env`` again: behind haproxy on the idle slot, switched to once
ready, with no downtime (:func:`restart_current`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cicd.core.config_schema import SLOTS
from cicd.core.messages import short
from cicd.core.progress import Timeline
from cicd.core.decisions import other
from cicd.core.errors import CicdError, UsageError
from cicd.host import intent
from cicd.host.slots import ALIVE
from cicd.pipeline.activation import (
    DeployFailed,
    go_live,
    in_place,
    last_lines,
    wait_until_ready,
)

if TYPE_CHECKING:
    from cicd.reporting.notify import Notifier
    from cicd.core.state import EnvState
    from cicd.host.target import Target

#: The ledger's detail of a restart that re-reads the app's secrets.
RELOAD_DETAIL = "secrets reload: shared/app.env read again"


@dataclass(frozen=True)
class Started:
    """What :func:`start_env` did for one environment on one host.

    Attributes:
        env: The environment.
        sha: Its current release, or None when never deployed.
        ok: Whether it is ready (None: skipped, never deployed).
        line: One line for a person.
    """

    env: str
    sha: str | None
    ok: bool | None
    line: str


def observe(t: Target) -> dict[str, str]:
    """The state of each instance of an environment's app, before anything starts.

    ``start`` reads every environment's first: starting the first one's haproxy
    starts supervisord, which starts the others' live slots at once, and those
    must still be said to have been DOWN. Read-only.

    Returns:
        ``{"blue": ..., "green": ...}`` behind haproxy, ``{"app": ...}`` in place,
        ``{}`` for an environment never deployed.
    """
    if not t.current():
        return {}
    if t.is_proxied() and t.slots.proxy.configured():
        return {slot: t.slots.runtime(slot).status() for slot in SLOTS}
    return {"app": in_place(t).status()}


def start_env(
    t: Target,
    notifier: Notifier | None = None,
    before: dict[str, str] | None = None,
) -> Started:
    """Start what serves an environment if it is down, and wait until it is ready.

    The recovery after a reboot without the systemd unit, or after supervisord was
    killed, under the environment's lock: an unfinished switch is completed or
    undone first (:func:`cicd.pipeline.repair.repair`), then what served starts again
    (see
    the module docstring) and the environment's readiness checks are polled as a
    deploy does. A never-deployed environment is skipped. Nothing is switched; the
    ledger records each restart and the readiness outcome.

    Args:
        t: The environment on one host.
        notifier: Where a repair's progress lines go (default: the console).
        before: What :func:`observe` saw before anything was started (default:
            read now).

    Returns:
        What happened; ``ok`` is False when the app did not get ready.
    """
    from cicd.host import lock
    from cicd.reporting.notify import Notifier

    if not t.current():
        # Read-only: a never-deployed environment gets nothing, not even a lock.
        return Started(t.env, None, None, "never deployed: skipped")
    with lock.hold([t], "start"):
        return _start_locked(t, notifier or Notifier(t), before)


def _start_locked(
    t: Target, notifier: Notifier, before: dict[str, str] | None
) -> Started:
    from cicd.pipeline.repair import repair

    clock = time.monotonic()
    t.live_runtime().preflight()
    # Like every other command: a switch a killed run left unfinished first.
    repair(t, notifier)
    sha = t.current()
    if not sha:
        return Started(t.env, None, None, "never deployed: skipped")
    seen = observe(t) if before is None else before
    if t.is_proxied() and t.slots.proxy.configured():
        how, notes = _start_slots(t, sha, notifier, seen)
    else:
        how, notes = _start_in_place(t, sha, seen.get("app") or "DOWN"), []
    return _ready(t, sha, how, notes, clock)


def _start_in_place(t: Target, sha: str, before: str) -> str:
    """Start the app run in place; how, in words."""
    # In place a changed program config reaches the app here (it restarts).
    in_place(t).start()
    if before != "RUNNING":
        t.event(
            "restart",
            sha=sha,
            detail=f"start: the runtime was {before}",
            until_next_write=True,
        )
    return "already running" if before == "RUNNING" else f"started (was {before})"


def _start_slots(
    t: Target, sha: str, notifier: Notifier, seen: dict[str, str]
) -> tuple[str, list[str]]:
    """Behind haproxy: haproxy, the live slot, the warm one in its window; no other.

    Returns:
        How the live slot was started, and what else was done, in words.
    """
    slots = t.slots
    before = {slot: seen.get(slot) or "DOWN" for slot in SLOTS}
    live = slots.intended()
    if live is None or slots.release(live) != sha:
        # The last switch's slot does not hold ``current`` (a hand edit): put
        # ``current`` into service as a repair does, then go on as usual.

        go_live(
            t,
            sha,
            Timeline(notifier.say),
            label=f"wait until {short(sha)} is ready",
            running=slots.release(live) if live else None,
            op="repair",
        )
        live = slots.intended() or SLOTS[0]
    # haproxy first: starting it starts supervisord, which starts what its files
    # mark to start at boot (the live slot only).
    proxy = slots.ensure_proxy()
    runtime = slots.runtime(live)
    if runtime.status() not in ALIVE:
        # Never when it runs: a changed program config reaches the slot that
        # serves with the next deploy, never by restarting it.
        runtime.start()
    if before[live] not in ALIVE:
        t.event(
            "restart",
            sha=sha,
            detail=f"start: the {live} slot was {before[live]}",
            until_next_write=True,
        )
    idle = _settle_idle(t, other(live))
    slots.boot_only(live)
    how = (
        f"already running on the {live} slot"
        if before[live] in ALIVE
        else f"started on the {live} slot (was {before[live]})"
    )
    return how, [*([idle] if idle else []), *proxy]


def _settle_idle(t: Target, slot: str) -> str | None:
    """Start the slot that does not serve if it is warm; else keep it stopped.

    Returns:
        What was done, for the console; None for a slot that never held a release.
    """
    slots = t.slots
    sha = slots.release(slot)
    runtime = slots.runtime(slot)
    until = slots.warm_until(slot)
    if sha is None or until is None:
        ended = (slots.warm() or {}).get("sha") == sha
        stopped = slots.retire(slot)
        if sha is None:
            return None
        why = _why_stopped(t.state(), sha, ended)
        return f"the {slot} slot ({short(sha)}, {why}) " + (
            "stopped" if stopped else "left stopped"
        )
    when = datetime.fromtimestamp(until, UTC).strftime("%H:%M:%S UTC")
    if runtime.status() in ALIVE:
        return (
            f"the {slot} slot ({short(sha)}, previous release) kept warm until {when}"
        )
    runtime.start()
    t.event(
        "restart",
        sha=sha,
        detail=f"start: kept warm on the {slot} slot",
        until_next_write=True,
    )
    return (
        f"the {slot} slot ({short(sha)}, previous release) started, warm until {when}"
    )


def _why_stopped(state: EnvState, sha: str, ended: bool) -> str:
    """Why a release on the slot that does not serve is not started, in a few words.

    Args:
        state: The environment's state.
        sha: The release the slot holds.
        ended: It was kept warm, and its window has ended.
    """
    bad = state.marked_bad(sha)
    if bad is not None:
        if bad.detail.startswith("CI failed"):
            return "rejected by CI"
        if bad.detail.startswith("rolled back"):
            return "rolled back"
        return "marked bad"
    if sha == state.current:
        return "not routed"
    return "previous release, " + ("warm window ended" if ended else "not warm")


def _ready(t: Target, sha: str, how: str, notes: list[str], clock: float) -> Started:
    """Wait until the environment answers its checks; the line that says it all.

    The seconds said are counted from ``clock``: the start of this environment's
    recovery, not of the last check only.
    """
    timeline = Timeline(lambda line: None)
    tail = "".join(f"; {note}" for note in notes)
    try:
        readiness = wait_until_ready(t, timeline, "ready")
    except DeployFailed as error:
        t.event("health", sha=sha, outcome="failed", detail=f"start: {error}")
        return Started(t.env, sha, False, f"{short(sha)} NOT READY: {error}{tail}")
    t.event(
        "health",
        sha=sha,
        detail=f"start: ready after {readiness.attempts} attempt(s)",
        durations={"readiness": readiness.seconds},
    )
    seconds = time.monotonic() - clock
    line = f"{short(sha)} {how}, ready after {seconds:.1f}s{tail}"
    return Started(t.env, sha, True, line)


def reload_env(hosts: list[Target], notifier: Notifier) -> list[str]:
    """Restart the current release on every host so it reads ``app.env`` again.

    Under the environment's lock, host after host; an unfinished switch is
    completed or undone first. Behind haproxy no request is refused (see
    :func:`restart_current`); in place the app is down until
    ready. The file is never read here, let alone printed.

    Returns:
        One line per host, in the order given.

    Raises:
        UsageError: The environment was never deployed (nothing changed).
        LockHeld: Another run holds the environment.
        cicd.pipeline.activation.DeployFailed: A new instance never got ready; behind
            haproxy the old one still serves and nothing was switched.
    """
    from cicd.host import lock
    from cicd.core.messages import app_log_tail
    from cicd.pipeline.repair import repair

    for t in hosts:
        if not t.current():
            raise UsageError(
                f"{t.env} was never deployed on {t.runner.host}: nothing runs that "
                "could read app.env (the first deploy starts the app with it)"
            )
    lines = []
    with lock.hold(hosts, "secrets.reload"):
        for t in hosts:
            repair(t, notifier)
            try:
                done = restart_current(t, Timeline(notifier.say), RELOAD_DETAIL)
            except DeployFailed as error:
                # The app's own words (a line of app.env that is not KEY=VALUE...).
                tail = app_log_tail(t.env, error.log)
                if tail:
                    notifier.say(tail.lstrip("\n"))
                raise
            where = f"{t.env}@{t.runner.host}" if t.runner.remote else t.env
            lines.append(f"{where}: {done}")
    return lines


def restart_current(target: Target, timeline: Timeline, why: str) -> str:
    """Start the release ``current`` names afresh, so it reads its files again.

    Behind haproxy with no downtime, as a deploy goes live: a new instance on the
    idle slot, every readiness check there, the switch, then the old instance is
    stopped (a previous release kept warm on the idle slot gives way). In place
    the app restarts and is down until ready.

    Args:
        target: The environment on one host (the lock is held).
        timeline: Where step timings go.
        why: The ledger's detail of the restart.

    Returns:
        What was done, in words.

    Raises:
        UsageError: The environment was never deployed; nothing changed.
        DeployFailed: The new instance never got ready. Behind haproxy nothing was
            switched and the old instance still serves.
    """
    sha = target.current()
    if not sha:
        raise UsageError(f"{target.env} was never deployed: nothing to restart")
    if target.is_proxied() and target.slots.proxy.configured():
        return _restart_on_idle_slot(target, sha, timeline, why)
    return _restart_in_place(target, sha, timeline, why)


def _restart_on_idle_slot(
    target: Target, sha: str, timeline: Timeline, why: str
) -> str:
    """A new instance of ``sha`` on the idle slot, switched to once ready."""
    slots = target.slots
    live = slots.routed() or slots.intended()
    idle = other(live) if live else SLOTS[0]
    warm = slots.warm_until(idle) is not None
    gives_way = slots.release(idle) if warm else None
    intent.begin(target.context, sha, sha, "restart")
    go_live(
        target,
        sha,
        timeline,
        label=f"wait until the new {short(sha)} is ready",
        running=sha,
        op="restart",
        fresh=True,
        why=why,
    )
    intent.clear(target.context)
    new = slots.intended() or idle
    said = (
        f"{short(sha)} restarted on the {new} slot and switched to with no "
        f"downtime, ready after {timeline.durations.get('readiness', 0):.1f}s; "
        f"the {other(new)} slot stopped"
    )
    if gives_way:
        said += (
            f"; {short(gives_way)}, kept warm there, gave way (a rollback to it "
            "starts it again)"
        )
    return said


def _restart_in_place(target: Target, sha: str, timeline: Timeline, why: str) -> str:
    """Restart the app in place: down until it answers again."""
    runtime = in_place(target)
    label = f"wait until the new {short(sha)} is ready"
    try:
        with timeline.step("restart", f"restart the {target.env} app in place"):
            runtime.restart()
        target.event("restart", sha=sha, detail=why, until_next_write=True)
        readiness = wait_until_ready(target, timeline, label)
    except CicdError as error:
        # An app that exits at once (a bad app.env line) fails supervisord's own
        # start: the same outcome as one that never gets ready, said the same way.
        target.event("health", sha=sha, outcome="failed", detail=str(error))
        raise DeployFailed(
            f"{error} (restarted in place: no haproxy here, nothing serves "
            f"{target.env} now)",
            log=last_lines(runtime),
        ) from None
    target.event(
        "health",
        sha=sha,
        detail=f"ready after {readiness.attempts} attempt(s), {why}",
        durations={"readiness": readiness.seconds},
    )
    return (
        f"{short(sha)} restarted in place, ready after {readiness.seconds:.1f}s "
        "(no haproxy here: the app was down meanwhile)"
    )
