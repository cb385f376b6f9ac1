"""Deploy a commit to an environment: the heart of the pipeline, as named phases.

Preprod (deploy first, CI watched afterwards)::

    lock → read state → (already serving? done) → announce → prepare (export, backup)
    → activate (switch, restart, readiness; batch by batch) → finish (ledger, prune)

Any failure after a switch puts every switched host back on its previous release,
marks the new one bad and exits non-zero; a failure before any switch changes nothing.
Production (:mod:`cicd.pipeline.production`) adds a typed ``DEPLOY`` confirmation
and its own checks, and backs up persistent data first.

The phases are the methods of :class:`DeployRun`, read top to bottom in
:func:`run_deploy` — in the manner of Kamal's ``deploy`` command. Switching a release
into service is :mod:`cicd.pipeline.activation`; backups are :mod:`cicd.host.backup`;
the words of every message are :mod:`cicd.core.messages`. Which steps run is decided
by :mod:`cicd.core.decisions`, as ``--plan`` shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from cicd.core import messages, table
from cicd.host import lock
from cicd.reporting import github_deployments
from cicd.transport import failpoints
from cicd.pipeline.activation import DeployFailed, activate, already_ready, recover
from cicd.host.backup import back_up
from cicd.core.decisions import deployed, rollback_point
from cicd.core.messages import short
from cicd.transport.parallel import results_by_host, failures_by_host
from cicd.core.progress import Timeline
from cicd.core.table import Column
from cicd.pipeline.repair import repair, report_corrupt

if TYPE_CHECKING:
    from cicd.reporting.notify import Notifier
    from cicd.core.state import EnvState
    from cicd.host.target import Target

__all__ = ["DeployProfile", "DeployResult", "deploy_preprod", "run_deploy"]

#: A fleet's deploy: one row per host.
FLEET_COLUMNS = (
    Column("HOST", 16),
    Column("OUTCOME", 22),
    Column("SECONDS", 7, right=True),
    Column("DETAIL", gap="  "),
)


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


@dataclass(frozen=True)
class DeployProfile:
    """How a deploy differs between environments: its messages and extra steps.

    Attributes:
        started: The notification sent once the deploy begins.
        succeeded: The notification sent once every host is ready.
        batch: Hosts activated at a time (0: all at once).
        backup: Archive persistent data before the switch (production).
        detail: What ``--force`` overrode and the reason given, recorded with the
            deploy's start and end in the ledger ("" for an ordinary deploy).
        validated_by: The environment whose CI validation this sha carries over.
    """

    started: str
    succeeded: str
    batch: int = 0
    backup: bool = False
    detail: str = ""
    validated_by: str | None = None


def deploy_preprod(
    hosts: list[Target],
    revision: str,
    notifier: Notifier,
    *,
    batch: int = 0,
    watch: bool = False,
) -> DeployResult:
    """Deploy ``revision`` to preprod at once; CI is watched afterwards.

    Args:
        hosts: The environment on every host (one for a single VM).
        revision: The sha (7 to 40 hex digits).
        notifier: Where messages go.
        batch: Hosts activated at a time (0: all at once).
        watch: CI is watched next (``--watch``); only then does the success
            message say that CI verification is in progress.

    Raises:
        UsageError: The sha is invalid; nothing changed.
        LockHeld: Another run holds the environment.
        DeployFailed: Not ready; the previous release runs again everywhere.
    """
    first = hosts[0]
    sha = first.resolve(revision)  # the first host's tools are read with it
    results_by_host(lambda t: t.tools_runtime().preflight(), hosts)
    author, subject = first.describe(sha)
    profile = DeployProfile(
        started=messages.preprod_started(first.env, sha, author, subject),
        succeeded=messages.preprod_succeeded(first.env, sha, watching=watch),
        batch=batch,
    )
    return run_deploy(hosts, sha, notifier, profile)


def run_deploy(
    hosts: list[Target], sha: str, notifier: Notifier, profile: DeployProfile
) -> DeployResult:
    """Deploy ``sha`` on every host, all or nothing (see the module docstring)."""
    run = DeployRun(hosts, sha, notifier, profile)
    with lock.hold(hosts, "deploy", sha):
        for timeline in run.timelines.values():
            timeline.did("lock")
        run.read_state()
        if run.already_serving():
            return run.noop()
        run.announce()
        try:
            run.prepare()
            run.activate()
        except DeployFailed as error:
            # GitHub's Environments panel: this one failed, the previous serves.
            run.github.failed(sha, str(error), restored=run.previous[run.first])
            raise
        run.finish()
    return run.result()


class DeployRun:
    """One deploy of one sha to one environment's hosts, phase by phase.

    Args:
        hosts: The environment on every host.
        sha: The full sha.
        notifier: Where messages go.
        profile: What this environment's deploy adds or says.
    """

    def __init__(
        self, hosts: list[Target], sha: str, notifier: Notifier, profile: DeployProfile
    ) -> None:
        self.hosts = hosts
        self.first = hosts[0]
        self.sha = sha
        self.notifier = notifier
        self.profile = profile
        self.fleet = len(hosts) > 1
        self.clock = Timeline(notifier.say)
        self.timelines = {t: Timeline(self._say_for(t)) for t in hosts}
        self.states: dict[Target, EnvState] = {}
        #: The rollback point of each host.
        self.previous: dict[Target, str | None] = {}
        self.errors: dict[Target, BaseException | None] = {}
        #: GitHub's deployments and commit statuses (nothing without provider github).
        self.github = github_deployments.reporter(self.first, notifier)

    def _say_for(self, target: Target) -> Callable[[str], None]:
        prefix = f"[{target.runner.host}] " if self.fleet else ""
        return lambda line: self.notifier.say(prefix + line)

    # -- the phases, in order ---------------------------------------------------

    def read_state(self) -> None:
        """Read every host's state; note each one's rollback point."""

        def read(target: Target) -> EnvState:
            target.ensure_dirs()
            if repair(target, self.notifier):
                self.timelines[target].did("repair")
            if target.is_proxied():
                retired = target.slots.retire_expired()
                if retired:
                    self.notifier.say(f"{target.env}: {retired}: its warm window ended")
            state = target.state()
            report_corrupt(target, state, self.notifier)
            if self.sha in state.bad:
                self.notifier.say(
                    f"warning: {target.env}: {short(self.sha)} was marked bad "
                    "(CI failed or it was rolled back); deploying it again"
                )
            return state

        self.states = results_by_host(read, self.hosts)
        self.previous = {t: rollback_point(s) for t, s in self.states.items()}

    def already_serving(self) -> bool:
        """Whether every host already runs this sha, settled and healthy."""
        return all(
            s.current == self.sha and s.settled for s in self.states.values()
        ) and all(already_ready(t) for t in self.hosts)

    def noop(self) -> DeployResult:
        """Record that there was nothing to do."""
        for target in self.hosts:
            timeline = self.timelines[target]
            timeline.did("noop")
            target.event(
                "noop",
                sha=self.sha,
                detail="already running and healthy",
                actions=tuple(timeline.actions),
            )
        self.notifier.say(
            f"{self.first.env}: {short(self.sha)} is already running and healthy; "
            "nothing to do"
        )
        return DeployResult(
            self.first.env,
            self.sha,
            self.previous[self.first],
            "noop",
            self.clock.total,
        )

    def announce(self) -> None:
        """Record the start in every ledger, then notify."""
        results_by_host(
            lambda t: t.event(
                "deploy",
                sha=self.sha,
                previous=self.previous[t],
                outcome="started",
                detail=self.profile.detail,
                with_next_command=True,
            ),
            self.hosts,
        )
        self.notifier.send(self.profile.started)
        self.github.started(self.sha)

    def prepare(self) -> None:
        """Export the release (and back up, for production) on every host.

        Raises:
            DeployFailed: On any host; nothing was switched anywhere.
        """

        def prepare_one(target: Target) -> None:
            timeline = self.timelines[target]
            with timeline.step("export", f"export release {short(self.sha)}"):
                exported = target.export(
                    self.sha, present=self.sha in self.states[target].releases
                )
            target.event(
                "export",
                sha=self.sha,
                detail="exported" if exported else "reused",
                until_next_write=True,
            )
            timeline.did("export" if exported else "reuse")
            if target.settings.runtime.kind == "swarm":
                swarm = target.swarm()
                release = target.paths.release(self.sha)
                with timeline.step("image", f"image of {short(self.sha)}"):
                    for line in swarm.build(self.sha, release):
                        timeline.say(f"  {line}")
                with timeline.step("distribute", "give it to the swarm's nodes"):
                    for line in swarm.distribute(self.sha):
                        timeline.say(f"  {line}")
                timeline.did("image")
            failpoints.hit("exported")
            if self.profile.backup:
                back_up(target, self.previous[target], timeline)
                timeline.did("backup")

        self.errors = failures_by_host(prepare_one, self.hosts)
        if any(self.errors.values()):
            reason = self._first_error()
            for target in self.hosts:
                target.event("deploy", sha=self.sha, outcome="failed", detail=reason)
            self.notifier.send(
                messages.failed_before_switch(self.first.env, self.sha, reason)
            )
            raise DeployFailed(
                f"{self.first.env}: {short(self.sha)} not deployed: {reason}"
            )

    def activate(self) -> None:
        """Switch, restart and wait until ready, ``batch`` hosts at a time.

        Raises:
            DeployFailed: A host did not get ready; every switched host was put
                back on its previous release.
        """
        switched: list[Target] = []
        size = self.profile.batch or len(self.hosts)
        for index in range(0, len(self.hosts), size):
            group = self.hosts[index : index + size]
            self.errors.update(
                failures_by_host(
                    lambda t: activate(
                        t,
                        self.sha,
                        self.timelines[t],
                        label=f"wait until {short(self.sha)} is ready",
                        # The rollback point, even when a killed run had switched.
                        running=self.previous[t],
                    ),
                    group,
                )
            )
            switched += group
            if any(self.errors[t] for t in group):
                self._recover(switched)
                back = [t for t in switched if self.previous[t]]
                if not any(getattr(self.errors[t], "routed", True) for t in switched):
                    # Blue/green: it never served anywhere; nothing was undone.
                    raise DeployFailed(
                        f"{self.first.env}: {short(self.sha)} failed "
                        f"({self._first_error()})",
                        routed=False,
                        log=self._first_log(),
                    )
                raise DeployFailed(
                    f"{self.first.env}: {short(self.sha)} failed "
                    f"({self._first_error()}); "
                    + (
                        f"rolled back to {short(self.previous[back[0]])}"
                        + (" on every host" if self.fleet else "")
                        if back
                        else "app stopped"
                    ),
                    log=self._first_log(),
                )

    def finish(self) -> None:
        """Record success, carry over production's validation, prune old releases."""
        results_by_host(self._finish_one, self.hosts)
        if self.fleet:
            self.notifier.say(self._table(self.hosts))
        self.notifier.send(self.profile.succeeded + messages.took(self.clock.total))
        self.github.served(self.sha, validated=self.profile.validated_by is not None)

    def result(self) -> DeployResult:
        """What the deploy did."""
        return DeployResult(
            self.first.env,
            self.sha,
            self.previous[self.first],
            "deployed",
            self.clock.total,
            self.timelines[self.first].durations,
            hosts=[{"host": t.runner.host, "outcome": "deployed"} for t in self.hosts],
        )

    # -- helpers ----------------------------------------------------------------

    def _finish_one(self, target: Target) -> None:
        sha = self.sha
        state = self.states[target]
        timeline = self.timelines[target]
        after = deployed(state, sha, self.previous[target])
        if self.profile.validated_by:
            after = replace(after, validated=sha)
        removed = target.prune(after)
        timeline.did("record")
        if removed:
            timeline.did("prune")
        target.event(
            "deploy",
            sha=sha,
            previous=self.previous[target],
            detail=self.profile.detail,
            durations=timeline.durations,
            actions=tuple(timeline.actions),
            until_next_write=True,
        )
        if self.profile.validated_by:
            # This environment's own rollbacks pick CI-validated releases.
            target.event(
                "validated",
                sha=sha,
                detail=f"validated by CI on {self.profile.validated_by}",
                until_next_write=True,
            )
            target.set_validated(sha)
        if removed:
            target.event(
                "prune",
                detail=" ".join(short(s) for s in removed),
                until_next_write=True,
            )
        # With the lock's release: the run's last command on this host.
        target.flush_events(with_next_command=True)

    def _recover(self, switched: list[Target]) -> None:
        """Put every switched host back on its previous release (all or nothing)."""
        reason = self._first_error()
        outcomes: dict[Target, str] = {}

        def recover_one(target: Target) -> None:
            error = self.errors.get(target)
            outcomes[target] = recover(
                target,
                self.sha,
                self.previous[target],
                reason,
                self.timelines[target],
                routed=getattr(error, "routed", True),
            )

        failures_by_host(recover_one, switched)
        first = switched[0]
        if len(switched) > 1:
            self.notifier.say(self._table(switched, outcomes))
        host = first.runner.host if first.runner.remote else None
        by_hand = messages.rollback_command(first.env, self.previous[first], host)
        log = self._first_log()
        self.notifier.send(
            messages.deploy_failed(
                first.env, self.sha, reason, outcomes[first], len(switched), by_hand
            )
            + messages.app_log_tail(first.env, log)
        )

    def _first_log(self) -> str:
        """The app's last lines from the first host whose readiness failed."""
        logs = [getattr(e, "log", "") for e in self.errors.values()]
        return next((text for text in logs if text), "")

    def _first_error(self) -> str:
        for target, error in self.errors.items():
            if error is not None:
                return (
                    f"{target.runner.host}: {error}"
                    if len(self.errors) > 1
                    else str(error)
                )
        return "unknown error"

    def _table(
        self, hosts: list[Target], outcomes: dict[Target, str] | None = None
    ) -> str:
        rows = []
        for target in hosts:
            error = self.errors.get(target)
            outcome = (outcomes or {}).get(target) or (
                "failed" if error else "deployed"
            )
            seconds = sum(self.timelines[target].durations.values())
            rows.append(
                [target.runner.host, outcome, f"{seconds:.2f}", str(error or "")]
            )
        return "\n".join(table.lines(FLEET_COLUMNS, rows))
