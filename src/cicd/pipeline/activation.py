"""Putting a kept release into service on one host: switch, restart, readiness.

Shared by deploys, rollbacks, the watcher's rollback and ``invoke start``: what
"running a release" means is written once. :func:`recover` is the way back when a new
release never gets ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cicd.host import intent
from cicd.transport import failpoints
from cicd.commands import files
from cicd.core.errors import CicdError, UpdateRolledBack
from cicd.checks.health import CheckResult, Readiness, wait_ready
from cicd.core.health_check import HealthCheck
from cicd.core.config_schema import SLOTS
from cicd.core.messages import LOG_TAIL_LINES, short
from cicd.checks.probe import RemoteFetcher
from cicd.runtime.supervisor import SupervisorRuntime
from cicd.host.slots import other

if TYPE_CHECKING:
    from cicd.core.progress import Timeline
    from cicd.runtime import Runtime
    from cicd.host.target import Target


class DeployFailed(CicdError):
    """The new release did not become ready; the previous one runs again.

    Attributes:
        routed: Whether the release ever served (False: behind haproxy, it was
            never switched to, and the previous release served throughout).
    """

    def __init__(self, message: str, *, routed: bool = True, log: str = "") -> None:
        super().__init__(message)
        self.routed = routed
        #: The app's last output lines, shown and sent with the failure.
        self.log = log


def last_lines(runtime: Runtime) -> str:
    """The last log lines of the release that failed ("" when unreadable).

    Only its own: the lines a previous release left in the same log are not its.
    """
    try:
        return runtime.release_logs(LOG_TAIL_LINES)
    except CicdError:
        return ""


def wait_until_ready(
    target: Target,
    timeline: Timeline,
    label: str,
    checks: tuple[HealthCheck, ...] | None = None,
) -> Readiness:
    """Poll the environment's health checks, printing each change of state.

    Args:
        target: The environment on one host.
        timeline: Where the step's timing goes.
        label: What the step is called.
        checks: The checks to run (default: the environment's, at its ``url``;
            a blue/green slot passes them aimed at the slot).

    Raises:
        DeployFailed: Not ready by ``health.deadline``.
    """
    health = target.settings.health
    last_reason = [""]
    notes: set[str] = set()

    def report(attempt: int, results: tuple[CheckResult, ...]) -> None:
        for note in {r.note for r in results if r.note} - notes:
            timeline.say(f"  note: {note}")
            notes.add(note)
        failed = [r for r in results if not r.ok]
        reason = "; ".join(r.reason for r in failed) if failed else "passing"
        if reason != last_reason[0]:
            timeline.say(f"  readiness attempt {attempt}: {reason}")
            last_reason[0] = reason

    with timeline.step("readiness", label):
        readiness = wait_ready(
            health.checks if checks is None else checks,
            deadline=health.deadline,
            interval=health.interval,
            successes=health.successes,
            on_attempt=report,
            fetcher=target.fetcher(),
        )
        if not readiness.ok:
            raise DeployFailed(
                f"not ready after {readiness.seconds:.1f}s: {readiness.reason}"
            )
    return readiness


def activate(
    target: Target,
    sha: str,
    timeline: Timeline,
    *,
    label: str,
    running: str | None,
    op: str = "deploy",
    reason: str = "",
) -> None:
    """Switch ``current`` to a kept release, restart the app and wait until ready.

    Args:
        target: The environment on one host.
        sha: The kept release to run.
        timeline: Where step timings go.
        label: What the readiness step is called.
        running: What ran before (recorded as the switch's previous).
        op: What switches (deploy, rollback, recover), for the intent: a repair
            finishing a rollback records it as one.
        reason: Why a rollback switches, kept in the intent so that a repair
            finishing it records and says it as the rollback would have.

    Raises:
        DeployFailed: The release did not become ready (recorded in the ledger).
    """
    # The intent first: a run killed from here to "ready" is completed or undone
    # by the next command (cicd.pipeline.repair).
    intent.begin(target, running, sha, op, reason)
    if target.is_proxied():
        go_live(target, sha, timeline, label=label, running=running, op=op)
        intent.clear(target)
        return
    with timeline.step("switch", f"switch {target.env} to {short(sha)}"):
        target.switch(sha, running)
    failpoints.hit("switched")
    if target.is_fronted():
        from cicd.host.proxy import front_swarm
        from cicd.runtime.swarm import SwarmRuntime

        swarm = target.live_runtime()
        assert isinstance(swarm, SwarmRuntime)
        for line in front_swarm(target.context, swarm):
            timeline.say(f"  {line}")
    fetcher = target.fetcher()
    if isinstance(fetcher, RemoteFetcher):
        # The first readiness round goes with the restart's own round trip.
        health = target.settings.health
        fetcher.read_ahead(health.checks, health.deadline)
    what = f"restart the {target.env} app"
    if target.settings.runtime.kind == "swarm":
        what = f"roll {short(sha)} out on the {target.env} swarm service"
    try:
        with timeline.step("restart", what):
            target.live_runtime().restart()
    except UpdateRolledBack as error:
        target.event("health", sha=sha, outcome="failed", detail=str(error))
        raise DeployFailed(str(error), log=last_lines(target.live_runtime())) from None
    target.event("restart", sha=sha, defer=True)
    failpoints.hit("restarted")
    try:
        readiness = wait_until_ready(target, timeline, label)
    except DeployFailed as error:
        target.event("health", sha=sha, outcome="failed", detail=str(error))
        error.log = last_lines(target.live_runtime())
        raise
    # With the intent's removal, after it in the same script: one round trip.
    target.event(
        "health",
        sha=sha,
        detail=f"ready after {readiness.attempts} attempt(s)",
        durations={"readiness": readiness.seconds},
        later=True,
    )
    failpoints.hit("ready")
    intent.clear(target)


def go_live(
    target: Target,
    sha: str,
    timeline: Timeline,
    *,
    label: str,
    running: str | None,
    op: str = "deploy",
    fresh: bool = False,
    why: str = "",
) -> None:
    """Blue/green: start ``sha`` on the idle slot, get it ready there, switch to it.

    A slot that still runs ``sha`` warm and ready is switched back to with no
    restart. After a deploy the previous release stays warm on its slot
    (``proxy.warm``); after a rollback or a repair the abandoned one is stopped.

    Args:
        target: The environment on one host.
        sha: The kept release to put into service.
        timeline: Where step timings go.
        label: What the readiness step is called.
        running: What ran before (recorded as the switch's previous).
        op: What switches (deploy, rollback, recover, repair, restart).
        fresh: Start a new instance of ``sha`` on the idle slot even though one
            already serves (a restart that re-reads ``shared/app.env``).
            ``current`` is not switched: it already names ``sha``.
        why: Added to the ledger's ``restart`` event.

    Raises:
        DeployFailed: ``sha`` did not get ready on its slot; haproxy never routed
            to it and the live slot served throughout (``routed`` is False).
    """
    slots = target.slots
    # The first switch behind haproxy here: haproxy starts only once the new slot
    # is ready, so the app that ran in place serves until then.
    first = not slots.proxy.configured()
    if not first:
        for line in slots.ensure_proxy():
            timeline.say(f"  {line}")
    if not first:
        half = slots.finish_half_switch()
        if half:
            timeline.say(f"  {half}")
    # haproxy's answer, else the last switch's choice: never start over the slot
    # that serves (or should) because haproxy was down or its check was failing.
    live = slots.routed() or (None if first else slots.intended())
    slot = None if fresh else slots.find_warm(sha, live)
    if (
        live
        and not fresh
        and slot is None
        and slots.release(live) == sha
        and slots.ready_now(live)
    ):
        # It already serves (a repair after haproxy came back): nothing to start.
        target.switch(sha, running)
        target.event("health", sha=sha, detail=f"serving on the {live} slot")
        return
    if slot is not None:
        timeline.say(f"  {short(sha)} still runs on the {slot} slot: switching back")
    else:
        slot = other(live) if live else (slots.intended() or SLOTS[0])
        if slot == live:
            slot = other(live)
        runtime = slots.runtime(slot)
        slots.point(slot, sha)
        with timeline.step("restart", f"start {short(sha)} on the {slot} slot"):
            runtime.restart()
        detail = f"{slot} slot" + (f", {why}" if why else "")
        target.event("restart", sha=sha, detail=detail, defer=True)
        failpoints.hit("restarted")
        try:
            readiness = wait_until_ready(target, timeline, label, slots.checks(slot))
        except DeployFailed as error:
            log = last_lines(runtime)
            slots.stop(slot)
            # Nothing was switched: no intent is left for status to report.
            intent.clear(target)
            target.event("health", sha=sha, outcome="failed", detail=str(error))
            served = f"; {short(running)} served throughout" if live else ""
            raise DeployFailed(
                f"{error} (on the {slot} slot, never routed to{served})",
                routed=False,
                log=log,
            ) from None
        target.event(
            "health",
            sha=sha,
            detail=f"ready after {readiness.attempts} attempt(s), {slot} slot",
            durations={"readiness": readiness.seconds},
            defer=True,
        )
    failpoints.hit("ready")
    with timeline.step("switch", f"switch {target.env} to {short(sha)} ({slot})"):
        if not fresh:
            target.switch(sha, running)
        failpoints.hit("switched")
        if first:
            for line in slots.start_proxy(slot):
                timeline.say(f"  {line}")
        else:
            slots.switch(slot, live)
    # What a user reaches through haproxy answers too: only now is it serving.
    through = wait_ready(
        tuple(c for c in target.settings.health.checks if not c.rendered_contains),
        deadline=min(5.0, target.settings.health.deadline),
        interval=0.1,
        fetcher=target.fetcher(),
    )
    if not through.ok:
        target.event("health", sha=sha, outcome="failed", detail=through.reason)
        raise DeployFailed(
            f"ready on the {slot} slot, but not through haproxy: " f"{through.reason}"
        )
    target.event("health", sha=sha, detail=f"serving on the {slot} slot")
    if live and live != slot:
        if op == "deploy":
            timeline.say(
                "  " + slots.keep_warm(live, running, target.settings.proxy.warm)
            )
        else:
            slots.retire(live)


def in_place(target: Target) -> Runtime:
    """The runtime of the environment's app run in place (not on a slot).

    With haproxy installed (``proxy.kind = "auto"``) but never switched to here,
    the app still runs in place, until the next deploy moves it behind haproxy.
    """
    if not target.is_proxied():
        return target.live_runtime()
    from cicd.runtime import runtime_for

    return runtime_for(target.runner, target.settings, target.paths)


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
    from cicd.core.errors import UsageError

    sha = target.current()
    if not sha:
        raise UsageError(f"{target.env} was never deployed: nothing to restart")
    label = f"wait until the new {short(sha)} is ready"
    if target.is_proxied() and target.slots.proxy.configured():
        slots = target.slots
        live = slots.routed() or slots.intended()
        idle = other(live) if live else SLOTS[0]
        warm = slots.warm_until(idle) is not None
        gives_way = slots.release(idle) if warm else None
        intent.begin(target, sha, sha, "restart")
        go_live(
            target,
            sha,
            timeline,
            label=label,
            running=sha,
            op="restart",
            fresh=True,
            why=why,
        )
        intent.clear(target)
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
    runtime = in_place(target)
    try:
        with timeline.step("restart", f"restart the {target.env} app in place"):
            runtime.restart()
        target.event("restart", sha=sha, detail=why, defer=True)
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


def already_ready(target: Target) -> bool:
    """Whether the app runs and answers its checks now (a quick look, 2 s at most)."""
    if target.live_runtime().status() != "RUNNING":
        return False
    checks = target.settings.health.checks
    return wait_ready(checks, deadline=2.0, interval=0.5, fetcher=target.fetcher()).ok


def recover(
    target: Target,
    sha: str,
    previous: str | None,
    reason: str,
    timeline: Timeline,
    *,
    routed: bool = True,
) -> str:
    """Put the previous release back after a failed activation; never raises.

    Args:
        target: The environment on one host.
        sha: The release that failed.
        previous: What ran before it.
        reason: Why it failed.
        timeline: Where step timings go.
        routed: Whether ``sha`` ever served. False (blue/green: it failed on its
            idle slot) leaves nothing to undo: the previous release served
            throughout.

    Returns:
        What happened, in words.
    """
    try:
        target.event("marked_bad", sha=sha, outcome="bad", detail=reason)
        outcome = "app stopped: no previous release"
        if not routed:
            outcome = (
                f"never routed to: {short(previous)} served throughout"
                if previous
                else "never routed to: nothing served before"
            )
            intent.clear(target)
        elif previous:
            try:
                activate(
                    target,
                    previous,
                    timeline,
                    label=f"wait until {short(previous)} is ready again",
                    running=sha,
                    op="recover",
                    reason="deploy failed",
                )
                outcome = f"rolled back to {short(previous)}"
                target.event(
                    "rollback", sha=previous, previous=sha, detail="deploy failed"
                )
            except CicdError as second:
                outcome = f"rollback to {short(previous)} ALSO failed: {second}"
                target.event(
                    "rollback",
                    sha=previous,
                    previous=sha,
                    outcome="failed",
                    detail=str(second),
                )
        elif target.is_proxied():
            for slot in SLOTS:
                target.slots.stop(slot)
            target.runner.run(files.remove(target.paths.current, target.paths.live))
            intent.clear(target)
        else:
            runtime = target.live_runtime()
            runtime.stop()
            if isinstance(runtime, SupervisorRuntime):
                # Nothing to start at boot: no release is current any more.
                runtime.set_autostart(False)
            target.runner.run(files.remove(target.paths.current))
            intent.clear(target)
        target.event(
            "deploy",
            sha=sha,
            previous=previous,
            outcome="failed",
            detail=reason,
            durations=timeline.durations,
        )
        return outcome
    except CicdError as error:
        # The host itself is unreachable: say so; a rerun completes the rollback.
        return f"could not roll back: {error}"
