"""Make what serves agree with ``current`` again, after a crash or a drift.

Called under the environment's lock by every deploy, rollback and CI verdict before
it acts, and by ``invoke status --repair``. Three cases:

- an **intent** is left (a run died between "switch" and "ready"): the switch is
  completed — the release ``current`` names is restarted and must get ready — or,
  if it cannot get ready, undone: the intent's previous release is put back;
- a **restore's** intent (``why: restore``): the restore is finished or undone
  (:func:`cicd.pipeline.restore.settle`);
- no intent, but **drift**: the app runs another release than ``current`` names
  (or none): ``current`` is restarted and must get ready.

The ledger says what was found and what was done (``repair`` events).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cicd.core import messages
from cicd.host import intent
from cicd.reporting import github_deployments
from cicd.pipeline.activation import activate, already_ready, go_live, wait_until_ready
from cicd.pipeline.restore import settle as settle_restore
from cicd.core.errors import CicdError
from cicd.core.ledger import corrupt_lines
from cicd.core.messages import short
from cicd.core.progress import Timeline

if TYPE_CHECKING:
    from cicd.reporting.notify import Notifier
    from cicd.core.state import EnvState
    from cicd.host.target import Target


def repair(target: Target, notifier: Notifier, *, thorough: bool = False) -> str | None:
    """Complete or undo an unfinished switch, or end a drift; the lock is held.

    Every switch writes an intent first, so without one the app runs what
    ``current`` names unless someone switched or restarted by hand. Deploys,
    rollbacks and verdicts therefore only look for an intent (one read); asking
    the runtime what serves (``thorough``, as ``status --repair`` does) costs a
    process on the host and is left to status, health and the monitor.

    Returns:
        What was done, in words, or None when nothing needed doing.

    Raises:
        CicdError: Neither the release ``current`` names nor the previous one got
            ready (both recorded); a person must look.
    """
    pending = intent.read(target.context)
    if pending is not None and pending.get("why") == "restore":
        # A restore's intent: its data is finished or undone, not a release.
        return settle_restore(target, pending, notifier)
    if pending is None and not thorough:
        return None
    current = target.current()
    if pending is None:
        if current is None:
            return None
        serving = target.serving()
        if serving == current:
            return None
        found = f"drift: current is {short(current)} but {short(serving)} serves"
    else:
        found = f"unfinished switch {intent.describe(pending)}"
    notifier.say(f"{target.env}: {found}; repairing")
    timeline = Timeline(notifier.say)
    if target.is_proxied():
        # haproxy first: what serves is what it routes to once it runs again.
        for line in target.slots.ensure_proxy():
            notifier.say(f"  {line}")
    if current is not None and target.serving() == current and already_ready(target):
        done = f"{short(current)} serves and is ready: nothing to redo"
        # Settled again: the state replay sees the switch followed by a pass.
        target.event("health", sha=current, detail="ready, found on repair")
        _finish(target, pending, current, notifier)
        target.event("repair", sha=current, detail=f"{found}; {done}")
        intent.clear(target.context)
        return done
    try:
        if current is None:
            raise CicdError("no current release")
        _put_back(target, current, pending, timeline)
    except CicdError as error:
        return _undo(target, pending, current, found, error, timeline)
    done = f"restarted {short(current)}: it serves and is ready"
    _finish(target, pending, current, notifier)
    target.event("repair", sha=current, detail=f"{found}; {done}")
    intent.clear(target.context)
    notifier.say(f"{target.env}: repaired: {done}")
    return done


def _put_back(
    target: Target, current: str, pending: dict[str, Any] | None, timeline: Timeline
) -> None:
    """Get the release ``current`` names serving and ready again.

    Raises:
        CicdError: It did not get ready.
    """
    label = f"wait until {short(current)} is ready"
    if target.is_proxied():
        # Start it on a slot (or find it warm or live), get it ready, route to
        # it; a deploy finished here keeps its previous release warm.
        routed = target.slots.routed()
        running = target.slots.release(routed) if routed else None
        op = "deploy" if pending and pending.get("why") == "deploy" else "repair"
        go_live(target, current, timeline, label=label, running=running, op=op)
        return
    with timeline.step("restart", f"restart the {target.env} app"):
        target.live_runtime().restart()
    readiness = wait_until_ready(target, timeline, label)
    target.event(
        "health",
        sha=current,
        detail=f"ready after {readiness.attempts} attempt(s), on repair",
        durations={"readiness": readiness.seconds},
    )


def _finish(
    target: Target,
    pending: dict[str, object] | None,
    current: str,
    notifier: Notifier,
) -> None:
    """Record and say what the killed run would have once its release was ready.

    A deploy ends with "deploy ok"; a rollback (by hand, the watcher's, or the
    recovery of a failed deploy) marks the abandoned release bad, records the
    rollback with the reason the intent kept and sends the same message as an
    uninterrupted rollback: a rollback completed by a repair is a rollback.
    """
    if not pending or pending.get("to") != current:
        return
    abandoned = str(pending.get("from") or "") or None
    op = pending.get("why")
    if op == "deploy":
        target.event(
            "deploy", sha=current, previous=abandoned, detail="completed by repair"
        )
        github_deployments.reporter(target, notifier).served(current)
    elif op in ("rollback", "recover"):
        reason = str(pending.get("reason") or "")
        said = f"{reason} (completed by repair)" if reason else "completed by repair"
        if abandoned and abandoned not in target.state().bad:
            target.event(
                "marked_bad",
                sha=abandoned,
                outcome="bad",
                detail=(
                    "deploy failed (completed by repair)"
                    if op == "recover"
                    else f"rolled back: {said}"
                ),
            )
        target.event("rollback", sha=current, previous=abandoned, detail=said)
        host = target.runner.host if target.runner.remote else None
        notifier.send(
            messages.rolled_back(
                target.env,
                current,
                abandoned,
                reason or "completed by repair",
                host,
                ci_url=str(pending.get("ci_url") or ""),
            )
        )
        github_deployments.reporter(target, notifier).rolled_back(
            current, abandoned, reason or "completed by repair"
        )


def report_corrupt(target: Target, state: EnvState, notifier: Notifier) -> None:
    """Say once which ledger lines are corrupt, and record that they were said.

    Every reader skips them; this writer acknowledges them in the ledger so no
    later ``status`` repeats the same warning forever.
    """
    if not state.warnings:
        return
    for warning in state.warnings:
        notifier.say(f"warning: {target.runner.host}: {warning}")
    numbers = corrupt_lines(state.warnings)
    if numbers:
        target.acknowledge(numbers, "skipped by every reader; reported once")


def _undo(
    target: Target,
    pending: dict[str, object] | None,
    current: str | None,
    found: str,
    error: CicdError,
    timeline: Timeline,
) -> str:
    back = str(pending.get("from") or "") if pending else ""
    if not back or back == current:
        # Nothing older to go back to: say so and clear the intent, so the
        # command that called us (a deploy, a rollback) can switch on its own.
        done = f"could not repair ({error}); nothing to go back to"
        target.event("repair", sha=current, outcome="failed", detail=f"{found}; {done}")
        intent.clear(target.context)
        return done
    target.event("marked_bad", sha=current, outcome="bad", detail=f"repair: {error}")
    try:
        activate(
            target,
            back,
            timeline,
            label=f"wait until {short(back)} is ready again",
            running=current,
            op="repair",
        )
    except CicdError as second:
        target.event("repair", sha=back, outcome="failed", detail=f"{found}; {second}")
        intent.clear(target.context)
        raise CicdError(
            f"{target.env}: repair failed: {short(current)} did not get ready "
            f"({error}), nor {short(back)} ({second}); a person must look"
        ) from None
    done = f"{short(current)} did not get ready ({error}); back on {short(back)}"
    target.event("repair", sha=back, previous=current, detail=f"{found}; {done}")
    return done
