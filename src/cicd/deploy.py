"""Deploy a commit to an environment: the heart of the pipeline.

Preprod (deploy first, CI watched afterwards):
validate → lock → note the rollback point → export the release (or reuse it) →
switch ``current`` → restart → readiness → notify "deployed, CI pending".
Any failure after the switch switches back, restarts the previous release, marks the
new one bad and exits non-zero.

Production adds a typed ``DEPLOY`` confirmation, refuses a sha CI has not validated
(unless forced, which the ledger records) and backs up persistent data first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from posixpath import join
from typing import TYPE_CHECKING

from cicd import lock
from cicd.commands import files
from cicd.errors import CicdError, UsageError
from cicd.health import CheckResult, Readiness, wait_ready
from cicd.progress import Timeline

if TYPE_CHECKING:
    from cicd.notify import Notifier
    from cicd.target import Target

CONFIRMATION = "DEPLOY"


class DeployFailed(CicdError):
    """The new release did not become ready; the previous one runs again."""


@dataclass
class DeployResult:
    """What a deploy did, for the console and ``--json``."""

    env: str
    sha: str
    previous: str | None
    outcome: str
    seconds: float
    durations: dict[str, float] = field(default_factory=dict)
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable dict."""
        return {
            "env": self.env,
            "sha": self.sha,
            "previous": self.previous,
            "outcome": self.outcome,
            "seconds": round(self.seconds, 3),
            "durations": {k: round(v, 3) for k, v in self.durations.items()},
            "detail": self.detail,
        }


def short(sha: str | None) -> str:
    """Seven characters of a sha, or ``none``."""
    return sha[:7] if sha else "none"


def rollback_command(target: Target, sha: str | None) -> str:
    """The exact command a person runs to roll back by hand."""
    to = f" --to {short(sha)}" if sha else ""
    if target.runner.remote:
        return f"fab -H {target.runner.host} rollback --env {target.env}{to}"
    return f"invoke rollback --env {target.env}{to}"


def wait_until_ready(target: Target, timeline: Timeline, label: str) -> Readiness:
    """Poll the environment's health checks, printing each change of state."""
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
        )
        if not readiness.ok:
            raise DeployFailed(
                f"not ready after {readiness.seconds:.1f}s: {readiness.reason}"
            )
    return readiness


def activate(target: Target, sha: str, timeline: Timeline, *, label: str) -> None:
    """Switch ``current`` to a kept release, restart the app and wait until ready."""
    state_before = target.current()
    with timeline.step("switch", f"switch {target.env} to {short(sha)}"):
        target.switch(sha)
    target.event("switch", sha=sha, previous=state_before)
    with timeline.step("restart", f"restart the {target.env} app"):
        target.runtime.restart()
    target.event("restart", sha=sha)
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


def deploy_preprod(target: Target, revision: str, notifier: Notifier) -> DeployResult:
    """Deploy ``revision`` to preprod at once; CI is watched afterwards.

    Raises:
        UsageError: The sha is invalid; nothing changed.
        LockHeld: Another run holds the environment.
        DeployFailed: Not ready; the previous release runs again.
    """
    target.runtime.preflight()
    sha = target.resolve(revision)
    author, subject = target.describe(sha)
    return _deploy(
        target,
        sha,
        notifier,
        started=(
            f"🚀 {target.env.upper()} - Deployment started\nSHA: {short(sha)}\n"
            f"Author: @{author or '?'}\nMessage: {subject or '?'}"
        ),
        succeeded=(
            f"✅ {target.env.upper()} - Deployed {short(sha)}\n"
            "⏳ CI verification in progress..."
        ),
    )


def deploy_prod(
    target: Target,
    preprod: Target,
    revision: str | None,
    *,
    confirm: str,
    force: bool,
    notifier: Notifier,
) -> DeployResult:
    """Deploy a CI-validated sha to production after a typed confirmation.

    Args:
        target: The production environment.
        preprod: The environment whose validated sha is the default.
        revision: The sha to deploy; defaults to preprod's last validated sha.
        confirm: Must be exactly ``DEPLOY``.
        force: Deploy a sha CI has not validated (recorded in the ledger).
        notifier: Where messages go.

    Raises:
        UsageError: Not confirmed, no sha, or not validated; nothing changed.
        DeployFailed: Not ready; the previous production release runs again.
    """
    if confirm != CONFIRMATION:
        target.ensure_dirs()
        target.event("refused", outcome="refused", detail=f"confirmation {confirm!r}")
        notifier.send(
            f"🚫 {target.env.upper()} - Deployment cancelled: confirmation was "
            f"{confirm!r}, not {CONFIRMATION}"
        )
        raise UsageError(
            f"confirmation must be exactly {CONFIRMATION} (got {confirm!r}); "
            "nothing was changed"
        )
    pre = preprod.state()
    running = target.current()
    notifier.say(
        f"PREPROD {short(pre.current)} (validated {short(pre.validated)})  →  "
        f"PROD {short(running)}"
    )
    if revision:
        sha = target.resolve(revision)
    elif pre.validated:
        sha = pre.validated
    else:
        target.ensure_dirs()
        target.event("refused", outcome="refused", detail="no validated sha on preprod")
        raise UsageError(
            "preprod has no CI-validated sha yet; pass --sha (and --force if CI "
            "has not validated it)"
        )
    forced = not pre.is_good(sha)
    if forced and not force:
        target.ensure_dirs()
        target.event(
            "refused", sha=sha, outcome="refused", detail="not validated by CI"
        )
        raise UsageError(
            f"sha {short(sha)} has not been validated by CI on preprod (or was "
            "marked bad); pass --force to deploy it anyway. Nothing was changed"
        )
    target.runtime.preflight()
    result = _deploy(
        target,
        sha,
        notifier,
        backup=True,
        forced=forced,
        validated_by=None if forced else preprod.env,
        started=(
            f"🎯 {target.env.upper()} - Deployment started\nSHA: {short(sha)}"
            + (" (FORCED: not validated by CI)" if forced else "")
        ),
        succeeded=(
            f"🎯 {target.env.upper()} - Deployment successful ✅\nSHA: {short(sha)}\n"
            f"PREPROD ✅ → PROD ✅\nURL: {target.settings.url}"
        ),
    )
    return result


def _deploy(
    target: Target,
    sha: str,
    notifier: Notifier,
    *,
    started: str,
    succeeded: str,
    backup: bool = False,
    forced: bool = False,
    validated_by: str | None = None,
) -> DeployResult:
    timeline = Timeline(notifier.say)
    with lock.hold(target, "deploy", sha):
        target.ensure_dirs()
        state = target.state()
        for warning in state.warnings:
            notifier.say(f"warning: {warning}")
        # A run killed mid-deploy leaves ``current`` unsettled: its rollback point is
        # then the release that ran before that run's switch.
        previous = state.current if state.settled else state.previous
        if state.current == sha and state.settled and _already_ready(target):
            target.event("noop", sha=sha, detail="already running and healthy")
            notifier.say(
                f"{target.env}: {short(sha)} is already running and healthy; "
                "nothing to do"
            )
            return DeployResult(target.env, sha, previous, "noop", timeline.total)
        target.event(
            "deploy",
            sha=sha,
            previous=previous,
            outcome="started",
            detail="forced: not validated by CI" if forced else "",
        )
        notifier.send(started)
        with timeline.step("export", f"export release {short(sha)}"):
            exported = target.export(sha)
        target.event("export", sha=sha, detail="exported" if exported else "reused")
        if backup:
            _backup(target, previous, timeline)
        try:
            activate(target, sha, timeline, label=f"wait until {short(sha)} is ready")
        except CicdError as error:
            _recover(target, sha, previous, error, timeline, notifier)
            raise DeployFailed(
                f"{target.env}: {short(sha)} failed ({error}); "
                + (f"rolled back to {short(previous)}" if previous else "app stopped")
            ) from None
        target.event("deploy", sha=sha, previous=previous, durations=timeline.durations)
        removed = target.prune(target.state())
        if removed:
            target.event("prune", detail=" ".join(short(s) for s in removed))
        notifier.send(succeeded + f"\nIn {timeline.total:.1f}s")
        return DeployResult(
            target.env, sha, previous, "deployed", timeline.total, timeline.durations
        )


def _already_ready(target: Target) -> bool:
    if target.runtime.status() != "RUNNING":
        return False
    health = target.settings.health
    return wait_ready(health.checks, deadline=2.0, interval=0.5).ok


def _recover(
    target: Target,
    sha: str,
    previous: str | None,
    error: CicdError,
    timeline: Timeline,
    notifier: Notifier,
) -> None:
    """Put the previous release back after a failed activation; never raises."""
    target.event("marked_bad", sha=sha, outcome="bad", detail=str(error))
    outcome = "app stopped: no previous release"
    if previous:
        try:
            activate(
                target,
                previous,
                timeline,
                label=f"wait until {short(previous)} is ready again",
            )
            outcome = f"rolled back to {short(previous)}"
            target.event("rollback", sha=previous, previous=sha, detail="deploy failed")
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
    target.event(
        "deploy",
        sha=sha,
        previous=previous,
        outcome="failed",
        detail=str(error),
        durations=timeline.durations,
    )
    notifier.send(
        f"❌ {target.env.upper()} - Deployment of {short(sha)} failed: {error}\n"
        f"🔄 {outcome}\nBy hand: {rollback_command(target, previous)}"
    )


def _backup(target: Target, previous: str | None, timeline: Timeline) -> None:
    """Archive the persistent directories before switching production."""
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
    target.event(
        "backup",
        sha=previous,
        detail=archive,
        durations={"backup": timeline.durations["backup"]},
    )
    _prune_backups(target)


def _prune_backups(target: Target) -> None:
    names = sorted(
        target.runner.output(files.list_files(target.paths.backups)).splitlines()
    )
    doomed = names[: max(len(names) - target.settings.keep, 0)]
    if doomed:
        target.runner.run(
            files.remove(*(join(target.paths.backups, n) for n in doomed))
        )
