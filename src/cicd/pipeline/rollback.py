"""Roll an environment back to a kept release: a switch and a restart.

No fetch, no export, no install: the release and its dependencies are already on the
host, so a rollback works with no network at all. The release abandoned is marked bad
so no later rollback picks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cicd.core import messages
from cicd.host import lock
from cicd.reporting import github_deployments
from cicd.transport.parallel import failures_by_host
from cicd.pipeline.activation import activate
from cicd.core.messages import short
from cicd.core.errors import CicdError, UsageError
from cicd.core.progress import Timeline
from cicd.pipeline.repair import repair, report_corrupt

if TYPE_CHECKING:
    from cicd.reporting.notify import Notifier
    from cicd.core.state import EnvState
    from cicd.host.target import Target

SHA_PREFIX = re.compile(r"^[0-9a-fA-F]{4,40}$")


@dataclass
class RollbackResult:
    """What a rollback did."""

    env: str
    sha: str
    abandoned: str | None
    seconds: float

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable dict."""
        return {
            "env": self.env,
            "sha": self.sha,
            "abandoned": self.abandoned,
            "seconds": round(self.seconds, 3),
        }


def choose(state: EnvState, to: str | None) -> str:
    """Pick the release to roll back to.

    Args:
        state: The environment's state.
        to: A sha or unambiguous prefix of a kept release, or None for the newest
            kept release that CI validated and that is not marked bad.

    Raises:
        UsageError: ``to`` is not a kept release, or is ambiguous.
        CicdError: No release qualifies.
    """
    if to:
        to = to.strip().lower()
        matches = [sha for sha in state.releases if sha.startswith(to)]
        if len(to) < 4 or len(matches) != 1:
            kept = ", ".join(short(s) for s in state.releases) or "none"
            problem = "is ambiguous" if len(matches) > 1 else "is not a kept release"
            raise UsageError(f"--to {to} {problem} (kept releases: {kept})")
        return matches[0]
    for sha in state.releases:
        if sha != state.current and state.is_good(sha):
            return sha
    kept = ", ".join(short(s) for s in state.releases) or "none"
    raise CicdError(
        f"{state.env}: no kept release is CI-validated and not bad (kept: {kept}); "
        "name one with --to"
    )


def _record(
    target: Target,
    sha: str,
    abandoned: str | None,
    newly_bad: bool,
    reason: str,
    timeline: Timeline,
) -> None:
    """Mark the abandoned release bad (once) and record the rollback."""
    if abandoned and newly_bad:
        # Once per verdict: a CI failure already marked it bad before rolling back.
        target.event(
            "marked_bad",
            sha=abandoned,
            outcome="bad",
            detail=f"rolled back: {reason}",
            until_next_write=True,
        )
        timeline.did("mark-bad")
    timeline.did("record")
    # With the lock's release: the rollback's last command on this host.
    target.event(
        "rollback",
        sha=sha,
        previous=abandoned,
        detail=reason,
        durations=timeline.durations,
        actions=tuple(timeline.actions),
        with_next_command=True,
    )


def check_to(to: str | None) -> None:
    """Refuse a ``--to`` that cannot name a kept release (exit 2).

    Raises:
        UsageError: Not 4 to 40 hex digits.
    """
    if to and not SHA_PREFIX.match(to.strip()):
        raise UsageError(
            f"--to {to!r} is not a kept release: expected 4 to 40 hex digits"
        )


def rollback(
    hosts: list[Target],
    notifier: Notifier,
    *,
    to: str | None = None,
    reason: str = "by hand",
) -> list[RollbackResult]:
    """Take the environment's lock on every host, then roll each back in parallel.

    Args:
        hosts: The environment on every host (one for a single VM).
        notifier: Where messages go.
        to: A kept release (sha prefix), or None for the newest validated one.
        reason: Why, for the ledger and the message.

    Returns:
        One result per host, in the order given.

    Raises:
        UsageError: ``to`` is not a sha prefix; checked before anything changes.
        CicdError: A host could not roll back (each failure named).
    """
    check_to(to)
    with lock.hold(hosts, "rollback", to):
        results: dict[Target, RollbackResult] = {}

        def one(target: Target) -> None:
            results[target] = rollback_locked(target, notifier, to=to, reason=reason)

        errors = {
            t: e for t, e in failures_by_host(one, hosts).items() if e is not None
        }
    if errors:
        if len(hosts) == 1:
            raise next(iter(errors.values()))
        lines = "; ".join(f"{t.runner.host}: {e}" for t, e in errors.items())
        raise CicdError(f"rollback failed on {lines}")
    return [results[t] for t in hosts]


def rollback_locked(
    target: Target,
    notifier: Notifier,
    *,
    to: str | None = None,
    reason: str = "by hand",
) -> RollbackResult:
    """Switch to the chosen kept release, restart, wait until ready.

    The caller holds the environment's lock.

    Raises:
        UsageError: Bad ``--to``.
        CicdError: Nothing to roll back to, or the release did not become ready.
    """
    timeline = Timeline(notifier.say)
    timeline.did("lock")
    if repair(target, notifier):
        timeline.did("repair")
    state = target.state()
    report_corrupt(target, state, notifier)
    sha = choose(state, to)
    abandoned = state.current if state.current != sha else None
    target.tools_runtime().preflight()
    github = github_deployments.reporter(target, notifier)
    github.started(sha, task="rollback")
    try:
        activate(
            target,
            sha,
            timeline,
            label=f"wait until {short(sha)} is ready",
            running=state.current,
            op="rollback",
            reason=reason,
        )
    except CicdError as error:
        target.event(
            "rollback", sha=sha, previous=abandoned, outcome="failed", detail=str(error)
        )
        notifier.send(
            messages.rollback_failed(target.env, sha, error)
            + messages.app_log_tail(target.env, getattr(error, "log", ""))
        )
        github.failed(sha, str(error))
        raise
    _record(target, sha, abandoned, abandoned not in state.bad, reason, timeline)
    host = target.runner.host if target.runner.remote else None
    notifier.send(messages.rolled_back(target.env, sha, abandoned, reason, host))
    github.rolled_back(sha, abandoned, reason)
    return RollbackResult(target.env, sha, abandoned, timeline.total)
