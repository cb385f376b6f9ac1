"""Putting a kept release into service on one host: switch, restart, readiness.

Shared by deploys, rollbacks, the watcher's rollback and ``invoke start``: what
"running a release" means is written once. :func:`recover` is the way back when a new
release never gets ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cicd import failpoints, intent
from cicd.commands import files
from cicd.errors import CicdError
from cicd.health import CheckResult, Readiness, wait_ready
from cicd.messages import short

if TYPE_CHECKING:
    from cicd.progress import Timeline
    from cicd.target import Target


class DeployFailed(CicdError):
    """The new release did not become ready; the previous one runs again."""


def wait_until_ready(target: Target, timeline: Timeline, label: str) -> Readiness:
    """Poll the environment's health checks, printing each change of state.

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
            health.checks,
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
    with timeline.step("switch", f"switch {target.env} to {short(sha)}"):
        target.switch(sha, running)
    failpoints.hit("switched")
    with timeline.step("restart", f"restart the {target.env} app"):
        target.runtime.restart()
    target.event("restart", sha=sha, defer=True)
    failpoints.hit("restarted")
    try:
        readiness = wait_until_ready(target, timeline, label)
    except DeployFailed as error:
        target.event("health", sha=sha, outcome="failed", detail=str(error))
        raise
    target.event(
        "health",
        sha=sha,
        detail=f"ready after {readiness.attempts} attempt(s)",
        durations={"readiness": readiness.seconds},
    )
    failpoints.hit("ready")
    intent.clear(target)


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
) -> str:
    """Put the previous release back after a failed activation; never raises.

    Returns:
        What happened, in words.
    """
    try:
        target.event("marked_bad", sha=sha, outcome="bad", detail=reason)
        outcome = "app stopped: no previous release"
        if previous:
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
