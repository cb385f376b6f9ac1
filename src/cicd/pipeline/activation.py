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
from cicd.core.decisions import choose_slot, keeps_warm
from cicd.pipeline.release_smoke import PageSmokeFailed, smoke_planned, smoke_release

if TYPE_CHECKING:
    from cicd.core.progress import Timeline
    from cicd.runtime import Runtime
    from cicd.host.slots import Slots
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
    intent.begin(target.context, running, sha, op, reason)
    if target.is_proxied():
        go_live(target, sha, timeline, label=label, running=running, op=op)
        intent.clear(target.context)
        return
    with timeline.step("switch", f"switch {target.env} to {short(sha)}"):
        target.switch(sha, running)
    timeline.did("switch-current")
    failpoints.hit("switched")
    _restart_in_place(target, sha, timeline)
    try:
        readiness = wait_until_ready(target, timeline, label)
        timeline.did("readiness")
        if op == "deploy" and smoke_planned(target.settings, target.runner.remote):
            _smoke(target, sha, target.settings.url, timeline)
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
        with_next_command=True,
    )
    failpoints.hit("ready")
    intent.clear(target.context)


def _restart_in_place(target: Target, sha: str, timeline: Timeline) -> None:
    """Restart the app (or roll the swarm service out) on the release just switched.

    Raises:
        DeployFailed: The swarm rolled the update back.
    """
    fetcher = target.fetcher()
    if isinstance(fetcher, RemoteFetcher):
        # The first readiness round goes with the restart's own round trip.
        health = target.settings.health
        fetcher.read_ahead(health.checks, health.deadline)
    what, action = f"restart the {target.env} app", "restart"
    if target.settings.runtime.kind == "swarm":
        what = f"roll {short(sha)} out on the {target.env} swarm service"
        action = "roll-out"
    try:
        with timeline.step("restart", what):
            target.live_runtime().restart()
        timeline.did(action)
    except UpdateRolledBack as error:
        target.event("health", sha=sha, outcome="failed", detail=str(error))
        raise DeployFailed(str(error), log=last_lines(target.live_runtime())) from None
    target.event("restart", sha=sha, until_next_write=True)
    failpoints.hit("restarted")


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

    Where it goes is :func:`~cicd.core.decisions.choose_slot`'s choice, the one
    ``--plan`` shows: a slot that still runs ``sha`` warm and ready is switched back
    to with no restart. After a deploy the previous release stays warm on its slot
    (``proxy.warm``); after a rollback or a repair the abandoned one is stopped.

    Args:
        target: As for :func:`activate`, and so are ``sha``, ``timeline``,
            ``label``, ``running`` and ``op``.
        fresh: Start a new instance of ``sha`` on the idle slot even though one
            already serves (a restart that re-reads ``shared/app.env``);
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
        _settle_proxy(slots, timeline)
    facts = slots.facts(sha, configured=not first)
    choice = choose_slot(facts, sha, fresh=fresh)
    if choice.how == "serving":
        # It already serves (a repair after haproxy came back): nothing to start.
        target.switch(sha, running)
        target.event("health", sha=sha, detail=f"serving on the {choice.slot} slot")
        timeline.did("already-serving")
        return
    if choice.how == "warm":
        timeline.say(
            f"  {short(sha)} still runs on the {choice.slot} slot: switching back"
        )
        timeline.did("switch-back")
    else:
        # The release that serves meanwhile, if haproxy routes to one.
        serving = running if facts.live else None
        smoke = op == "deploy" and smoke_planned(target.settings, target.runner.remote)
        _start_on_slot(target, sha, choice.slot, timeline, label, serving, why, smoke)
    failpoints.hit("ready")
    live = facts.live
    _switch_to(target, sha, choice.slot, timeline, first, fresh, running, live)
    if live and live != choice.slot:
        _leave_previous(target, live, op, running, timeline)


def _leave_previous(
    target: Target, live: str, op: str, running: str | None, timeline: Timeline
) -> None:
    """Keep the slot that served before warm (after a deploy), or stop it."""
    warm = target.settings.proxy.warm
    if op == "deploy":
        timeline.say("  " + target.slots.keep_warm(live, running, warm))
    else:
        target.slots.retire(live)
    timeline.did("keep-warm" if keeps_warm(op, running, warm) else "stop-previous")


def _settle_proxy(slots: Slots, timeline: Timeline) -> None:
    """Make haproxy run and know the environment; finish a switch cut short."""
    for line in slots.ensure_proxy():
        timeline.say(f"  {line}")
    if slots.adopted:
        timeline.did("adopt")
    half = slots.finish_half_switch()
    if half:
        timeline.say(f"  {half}")


def _start_on_slot(
    target: Target,
    sha: str,
    slot: str,
    timeline: Timeline,
    label: str,
    serving: str | None,
    why: str,
    smoke: bool,
) -> None:
    """Start ``sha`` on the idle ``slot``; wait until it passes every check there.

    With ``smoke``, every page of the app is then opened on that slot.

    Raises:
        DeployFailed: Not ready (or a page failed) there; the slot is stopped,
            nothing was routed.
    """
    slots = target.slots
    runtime = slots.runtime(slot)
    slots.point(slot, sha)
    try:
        with timeline.step("restart", f"start {short(sha)} on the {slot} slot"):
            runtime.restart()
        timeline.did("start-slot")
        detail = f"{slot} slot" + (f", {why}" if why else "")
        target.event("restart", sha=sha, detail=detail, until_next_write=True)
        failpoints.hit("restarted")
        readiness = wait_until_ready(target, timeline, label, slots.checks(slot))
        timeline.did("readiness")
        for base in slots.base_urls(slot) if smoke else []:
            _smoke(target, sha, base, timeline)
    except CicdError as error:
        log = last_lines(runtime)
        slots.stop(slot)
        # Nothing was switched: no intent is left for status to report.
        intent.clear(target.context)
        target.event("health", sha=sha, outcome="failed", detail=str(error))
        served = f"; {short(serving)} served throughout" if serving else ""
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
        until_next_write=True,
    )


def _smoke(target: Target, sha: str, base_url: str, timeline: Timeline) -> None:
    """The page smoke of the new release (:mod:`.release_smoke`).

    Raises:
        DeployFailed: A page failed; the message names it and its exception.
    """
    try:
        smoke_release(target, sha, base_url, timeline)
    except PageSmokeFailed as error:
        raise DeployFailed(str(error)) from None


def _switch_to(
    target: Target,
    sha: str,
    slot: str,
    timeline: Timeline,
    first: bool,
    fresh: bool,
    running: str | None,
    live: str | None,
) -> None:
    """Route haproxy to ``slot``, then check what users reach through it answers.

    Raises:
        DeployFailed: Ready on the slot, but not through haproxy.
    """
    slots = target.slots
    with timeline.step("switch", f"switch {target.env} to {short(sha)} ({slot})"):
        if not fresh:
            target.switch(sha, running)
        failpoints.hit("switched")
        if first:
            for line in slots.start_proxy(slot):
                timeline.say(f"  {line}")
        else:
            slots.switch(slot, live)
    timeline.did("switch")
    # What a user reaches through haproxy answers too: only now is it serving.
    health = target.settings.health
    through = wait_ready(
        tuple(c for c in health.checks if not c.rendered_contains),
        deadline=min(5.0, health.deadline),
        interval=0.1,
        fetcher=target.fetcher(),
    )
    if not through.ok:
        target.event("health", sha=sha, outcome="failed", detail=through.reason)
        raise DeployFailed(
            f"ready on the {slot} slot, but not through haproxy: {through.reason}"
        )
    target.event("health", sha=sha, detail=f"serving on the {slot} slot")


def in_place(target: Target) -> Runtime:
    """The runtime of the environment's app run in place (not on a slot).

    With haproxy installed (``proxy.kind = "auto"``) but never switched to here,
    the app still runs in place, until the next deploy moves it behind haproxy.
    """
    if not target.is_proxied():
        return target.live_runtime()
    from cicd.runtime import runtime_for

    return runtime_for(target.runner, target.settings, target.paths)


def _back_to(target: Target, previous: str, sha: str, timeline: Timeline) -> str:
    """Put ``previous`` back into service after ``sha`` failed; what happened."""
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
    except CicdError as second:
        target.event(
            "rollback",
            sha=previous,
            previous=sha,
            outcome="failed",
            detail=str(second),
        )
        return f"rollback to {short(previous)} ALSO failed: {second}"
    target.event("rollback", sha=previous, previous=sha, detail="deploy failed")
    return f"rolled back to {short(previous)}"


def _stop_everything(target: Target) -> None:
    """A first release failed: stop the app; no release is current any more."""
    if target.is_proxied():
        for slot in SLOTS:
            target.slots.stop(slot)
        target.runner.run(files.remove(target.paths.current, target.paths.live))
    else:
        runtime = target.live_runtime()
        runtime.stop()
        if isinstance(runtime, SupervisorRuntime):
            # Nothing to start at boot: no release is current any more.
            runtime.set_autostart(False)
        target.runner.run(files.remove(target.paths.current))
    intent.clear(target.context)


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
            intent.clear(target.context)
        elif previous:
            outcome = _back_to(target, previous, sha, timeline)
        else:
            _stop_everything(target)
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
