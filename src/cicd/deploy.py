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

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from posixpath import join
from typing import TYPE_CHECKING

from cicd import lock
from cicd.commands import files
from cicd.errors import CicdError, UsageError
from cicd.health import CheckResult, Readiness, wait_ready
from cicd.parallel import collect, each
from cicd.progress import Timeline

if TYPE_CHECKING:
    from cicd.notify import Notifier
    from cicd.state import EnvState
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
    hosts: list[dict[str, str]] = field(default_factory=list)

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
            "hosts": self.hosts,
        }


def short(sha: str | None) -> str:
    """Seven characters of a sha, or ``none``."""
    return sha[:7] if sha else "none"


def commit_link(sha: str) -> str:
    """A link to the commit on GitHub, from the runner's variables, or nothing."""
    server = os.environ.get("GITHUB_SERVER_URL", "").rstrip("/")
    repository = os.environ.get("GITHUB_REPOSITORY", "")
    return f"\n{server}/{repository}/commit/{sha}" if server and repository else ""


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
            fetcher=target.fetcher(),
        )
        if not readiness.ok:
            raise DeployFailed(
                f"not ready after {readiness.seconds:.1f}s: {readiness.reason}"
            )
    return readiness


def activate(
    target: Target, sha: str, timeline: Timeline, *, label: str, running: str | None
) -> None:
    """Switch ``current`` to a kept release, restart the app and wait until ready.

    Args:
        target: The environment on one host.
        sha: The kept release to run.
        timeline: Where step timings go.
        label: What the readiness step is called.
        running: What ``current`` points to now (recorded as the switch's previous).
    """
    with timeline.step("switch", f"switch {target.env} to {short(sha)}"):
        target.switch(sha, running)
    with timeline.step("restart", f"restart the {target.env} app"):
        target.runtime.restart()
    target.event("restart", sha=sha, defer=True)
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


Targets = Sequence["Target"]


def _as_list(targets: Target | Targets) -> list[Target]:
    return list(targets) if isinstance(targets, Sequence) else [targets]


def deploy_preprod(
    targets: Target | Targets, revision: str, notifier: Notifier, *, batch: int = 0
) -> DeployResult:
    """Deploy ``revision`` to preprod at once; CI is watched afterwards.

    Args:
        targets: The environment on one host, or on every host of a fleet.
        revision: The sha (7 to 40 hex digits).
        notifier: Where messages go.
        batch: Hosts activated at a time (0: all at once).

    Raises:
        UsageError: The sha is invalid; nothing changed.
        LockHeld: Another run holds the environment.
        DeployFailed: Not ready; the previous release runs again everywhere.
    """
    hosts = _as_list(targets)
    first = hosts[0]
    collect(lambda t: t.runtime.preflight(), hosts)
    sha = first.resolve(revision)
    author, subject = first.describe(sha)
    return _deploy(
        hosts,
        sha,
        notifier,
        batch=batch,
        started=(
            f"🚀 {first.env.upper()} - Deployment started\nSHA: {short(sha)}\n"
            f"Author: @{author or '?'}\nMessage: {subject or '?'}" + commit_link(sha)
        ),
        succeeded=(
            f"✅ {first.env.upper()} - Deployed {short(sha)}\n"
            "⏳ CI verification in progress..."
        ),
    )


def deploy_prod(
    targets: Target | Targets,
    preprod: Target,
    revision: str | None,
    *,
    confirm: str,
    force: bool,
    notifier: Notifier,
    batch: int = 0,
) -> DeployResult:
    """Deploy a CI-validated sha to production after a typed confirmation.

    Args:
        targets: Production on one host, or on every host of a fleet.
        preprod: The environment whose validated sha is the default.
        revision: The sha to deploy; defaults to preprod's last validated sha.
        confirm: Must be exactly ``DEPLOY``.
        force: Deploy a sha CI has not validated (recorded in the ledger).
        notifier: Where messages go.
        batch: Hosts activated at a time (0: all at once).

    Raises:
        UsageError: Not confirmed, no sha, or not validated; nothing changed.
        DeployFailed: Not ready; the previous production release runs again.
    """
    hosts = _as_list(targets)
    first = hosts[0]

    def refuse(detail: str, message: str, sha: str | None = None) -> UsageError:
        for target in hosts:
            target.ensure_dirs()
            target.event("refused", sha=sha, outcome="refused", detail=detail)
        return UsageError(message)

    if confirm != CONFIRMATION:
        notifier.send(
            f"🚫 {first.env.upper()} - Deployment cancelled: confirmation was "
            f"{confirm!r}, not {CONFIRMATION}"
        )
        raise refuse(
            f"confirmation {confirm!r}",
            f"confirmation must be exactly {CONFIRMATION} (got {confirm!r}); "
            "nothing was changed",
        )
    pre = preprod.state()
    notifier.say(
        f"PREPROD {short(pre.current)} (validated {short(pre.validated)})  →  "
        f"PROD {short(first.current())}"
    )
    if revision:
        sha = first.resolve(revision)
    elif pre.validated:
        sha = pre.validated
    else:
        raise refuse(
            "no validated sha on preprod",
            "preprod has no CI-validated sha yet; pass --sha (and --force if CI "
            "has not validated it)",
        )
    forced = not pre.is_good(sha)
    if forced and not force:
        raise refuse(
            "not validated by CI",
            f"sha {short(sha)} has not been validated by CI on preprod (or was "
            "marked bad); pass --force to deploy it anyway. Nothing was changed",
            sha,
        )
    collect(lambda t: t.runtime.preflight(), hosts)
    return _deploy(
        hosts,
        sha,
        notifier,
        batch=batch,
        backup=True,
        forced=forced,
        validated_by=None if forced else preprod.env,
        started=(
            f"🎯 {first.env.upper()} - Deployment started\nSHA: {short(sha)}"
            + (" (FORCED: not validated by CI)" if forced else "")
        ),
        succeeded=(
            f"🎯 {first.env.upper()} - Deployment successful ✅\nSHA: {short(sha)}\n"
            f"PREPROD ✅ → PROD ✅\nURL: {first.settings.url}"
        ),
    )


def _deploy(
    hosts: list[Target],
    sha: str,
    notifier: Notifier,
    *,
    started: str,
    succeeded: str,
    batch: int = 0,
    backup: bool = False,
    forced: bool = False,
    validated_by: str | None = None,
) -> DeployResult:
    """Deploy ``sha`` on every host, all or nothing (see the module docstring)."""
    first = hosts[0]
    fleet = len(hosts) > 1

    def prefixed(target: Target) -> Callable[[str], None]:
        prefix = f"[{target.runner.host}] " if fleet else ""
        return lambda line: notifier.say(prefix + line)

    timelines = {t: Timeline(prefixed(t)) for t in hosts}
    clock = Timeline(notifier.say)
    with lock.hold_all(hosts, "deploy", sha):
        states = collect(lambda t: _prepare_state(t, notifier), hosts)
        # A run killed mid-deploy leaves ``current`` unsettled: its rollback point
        # is then the release that ran before that run's switch.
        previous = {
            t: (s.current if s.settled else s.previous) for t, s in states.items()
        }
        if all(s.current == sha and s.settled for s in states.values()) and all(
            _already_ready(t) for t in hosts
        ):
            for target in hosts:
                target.event("noop", sha=sha, detail="already running and healthy")
            notifier.say(
                f"{first.env}: {short(sha)} is already running and healthy; "
                "nothing to do"
            )
            return DeployResult(first.env, sha, previous[first], "noop", clock.total)
        collect(
            lambda t: t.event(
                "deploy",
                sha=sha,
                previous=previous[t],
                outcome="started",
                detail="forced: not validated by CI" if forced else "",
            ),
            hosts,
        )
        notifier.send(started)

        def prepare(target: Target) -> None:
            timeline = timelines[target]
            with timeline.step("export", f"export release {short(sha)}"):
                exported = target.export(sha)
            target.event(
                "export",
                sha=sha,
                detail="exported" if exported else "reused",
                defer=True,
            )
            if backup:
                _backup(target, previous[target], timeline)

        errors = each(prepare, hosts)
        if any(errors.values()):
            reason = _first_error(errors)
            for target in hosts:
                target.event("deploy", sha=sha, outcome="failed", detail=reason)
            notifier.send(
                f"❌ {first.env.upper()} - Deployment of {short(sha)} failed before "
                f"any switch: {reason}\nNothing changed: the running release stays."
            )
            raise DeployFailed(f"{first.env}: {short(sha)} not deployed: {reason}")

        switched: list[Target] = []
        size = batch or len(hosts)
        for index in range(0, len(hosts), size):
            group = hosts[index : index + size]
            errors.update(
                each(
                    lambda t: activate(
                        t,
                        sha,
                        timelines[t],
                        label=f"wait until {short(sha)} is ready",
                        running=states[t].current,
                    ),
                    group,
                )
            )
            switched += group
            if any(errors[t] for t in group):
                _recover_all(switched, sha, previous, errors, timelines, notifier)
                back = [t for t in switched if previous[t]]
                raise DeployFailed(
                    f"{first.env}: {short(sha)} failed ({_first_error(errors)}); "
                    + (
                        f"rolled back to {short(previous[back[0]])}"
                        + (" on every host" if fleet else "")
                        if back
                        else "app stopped"
                    )
                )

        def finish(target: Target) -> None:
            target.event(
                "deploy",
                sha=sha,
                previous=previous[target],
                durations=timelines[target].durations,
                defer=True,
            )
            state = states[target]
            if validated_by:
                # This environment's own rollbacks pick CI-validated releases.
                target.event(
                    "validated",
                    sha=sha,
                    detail=f"validated by CI on {validated_by}",
                    defer=True,
                )
                target.set_validated(sha)
            after = replace(
                state,
                current=sha,
                previous=previous[target],
                validated=sha if validated_by else state.validated,
                releases=(sha, *(r for r in state.releases if r != sha)),
            )
            removed = target.prune(after)
            if removed:
                target.event(
                    "prune", detail=" ".join(short(s) for s in removed), defer=True
                )
            target.flush_events()

        collect(finish, hosts)
        if fleet:
            notifier.say(_table(hosts, timelines, errors))
        notifier.send(succeeded + f"\nIn {clock.total:.1f}s")
        return DeployResult(
            first.env,
            sha,
            previous[first],
            "deployed",
            clock.total,
            timelines[first].durations,
            hosts=[{"host": t.runner.host, "outcome": "deployed"} for t in hosts],
        )


def _prepare_state(target: Target, notifier: Notifier) -> EnvState:
    target.ensure_dirs()
    state = target.state()
    for warning in state.warnings:
        notifier.say(f"warning: {target.runner.host}: {warning}")
    return state


def _first_error(errors: dict[Target, BaseException | None]) -> str:
    for target, error in errors.items():
        if error is not None:
            return f"{target.runner.host}: {error}" if len(errors) > 1 else str(error)
    return "unknown error"


def _table(
    hosts: list[Target],
    timelines: dict[Target, Timeline],
    errors: dict[Target, BaseException | None],
    outcomes: dict[Target, str] | None = None,
) -> str:
    lines = [f"{'HOST':<16} {'OUTCOME':<22} {'SECONDS':>7}  DETAIL"]
    for target in hosts:
        error = errors.get(target)
        outcome = (outcomes or {}).get(target) or ("failed" if error else "deployed")
        seconds = sum(timelines[target].durations.values())
        lines.append(
            f"{target.runner.host:<16} {outcome:<22} {seconds:>7.2f}  {error or ''}"
        )
    return "\n".join(lines)


def _recover_all(
    switched: list[Target],
    sha: str,
    previous: dict[Target, str | None],
    errors: dict[Target, BaseException | None],
    timelines: dict[Target, Timeline],
    notifier: Notifier,
) -> None:
    """Put every switched host back on its previous release (all or nothing)."""
    reason = _first_error(errors)
    outcomes: dict[Target, str] = {}

    def recover(target: Target) -> None:
        outcomes[target] = _recover(
            target, sha, previous[target], reason, timelines[target]
        )

    each(recover, switched)
    first = switched[0]
    if len(switched) > 1:
        notifier.say(_table(switched, timelines, errors, outcomes))
    back = previous[first]
    notifier.send(
        f"❌ {first.env.upper()} - Deployment of {short(sha)} failed: {reason}\n"
        f"🔄 {outcomes[first]}"
        + (f" on {len(switched)} hosts" if len(switched) > 1 else "")
        + f"\nBy hand: {rollback_command(first, back)}"
    )


def _already_ready(target: Target) -> bool:
    if target.runtime.status() != "RUNNING":
        return False
    checks = target.settings.health.checks
    return wait_ready(checks, deadline=2.0, interval=0.5, fetcher=target.fetcher()).ok


def _recover(
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
