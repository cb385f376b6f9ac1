"""Putting a kept release into service on one host: switch, restart, readiness.

Shared by deploys, rollbacks, the watcher's rollback and ``invoke start``: what
"running a release" means is written once. :func:`recover` is the way back when a new
release never gets ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cicd import failpoints, intent
from cicd.commands import files
from cicd.errors import CicdError, UpdateRolledBack
from cicd.health import CheckResult, HealthCheck, Readiness, wait_ready
from cicd.config import SLOTS
from cicd.messages import LOG_TAIL_LINES, short
from cicd.probe import RemoteFetcher
from cicd.slots import other

if TYPE_CHECKING:
    from cicd.progress import Timeline
    from cicd.runtime import Runtime
    from cicd.target import Target


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
    """The app's last log lines for a failure message ("" when unreadable)."""
    try:
        return runtime.logs(LOG_TAIL_LINES)
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

    Raises:
        DeployFailed: The release did not become ready (recorded in the ledger).
    """
    # The intent first: a run killed from here to "ready" is completed or undone
    # by the next command (cicd.repair).
    intent.begin(target, running, sha, op)
    if target.proxied:
        go_live(target, sha, timeline, label=label, running=running, op=op)
        intent.clear(target)
        return
    with timeline.step("switch", f"switch {target.env} to {short(sha)}"):
        target.switch(sha, running)
    failpoints.hit("switched")
    if target.fronted:
        from cicd.proxy import front_swarm

        for line in front_swarm(target):
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
            target.runtime.restart()
    except UpdateRolledBack as error:
        target.event("health", sha=sha, outcome="failed", detail=str(error))
        raise DeployFailed(str(error), log=last_lines(target.runtime)) from None
    target.event("restart", sha=sha, defer=True)
    failpoints.hit("restarted")
    try:
        readiness = wait_until_ready(target, timeline, label)
    except DeployFailed as error:
        target.event("health", sha=sha, outcome="failed", detail=str(error))
        error.log = last_lines(target.runtime)
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
) -> None:
    """Blue/green: start ``sha`` on the idle slot, get it ready there, switch to it.

    A slot that still runs ``sha`` warm and ready is switched back to with no
    restart. After a deploy the previous release stays warm on its slot
    (``proxy.warm``); after a rollback or a repair the abandoned one is stopped.

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
    slot = slots.find_warm(sha, live)
    if live and slot is None and slots.release(live) == sha and slots.ready_now(live):
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
        target.event("restart", sha=sha, detail=f"{slot} slot", defer=True)
        failpoints.hit("restarted")
        try:
            readiness = wait_until_ready(target, timeline, label, slots.checks(slot))
        except DeployFailed as error:
            log = last_lines(runtime)
            runtime.stop()
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


def already_ready(target: Target) -> bool:
    """Whether the app runs and answers its checks now (a quick look, 2 s at most)."""
    if target.runtime.status() != "RUNNING":
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
        elif target.proxied:
            for slot in SLOTS:
                target.slots.runtime(slot).stop()
            target.runner.run(files.remove(target.paths.current, target.paths.live))
            intent.clear(target)
        else:
            target.runtime.stop()
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
