"""Recovery after a reboot or a killed supervisord: ``invoke start``.

:func:`start_env` starts an environment's runtime again on the release ``current``
names and waits until it is ready, as a deploy does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cicd.target import Target


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


def start_env(t: Target) -> Started:
    """Start an environment's runtime if it is down, and wait until it is ready.

    The recovery after a reboot without the systemd unit, or after supervisord was
    killed: supervisord (or the container) is started again on the release
    ``current`` names, and the environment's readiness checks are polled as a deploy
    does, under the environment's lock. A never-deployed environment is skipped.
    Nothing is switched; the ledger records the restart and the readiness outcome.

    Returns:
        What happened; ``ok`` is False when the app did not get ready.
    """
    from cicd import lock

    if not t.current():
        # Read-only: a never-deployed environment gets nothing, not even a lock.
        return Started(t.env, None, None, "never deployed: skipped")
    with lock.hold([t], "start"):
        return _start_locked(t)


def _start_locked(t: Target) -> Started:
    from cicd.activation import DeployFailed, wait_until_ready
    from cicd.messages import short
    from cicd.progress import Timeline

    sha = t.current()
    if not sha:
        return Started(t.env, None, None, "never deployed: skipped")
    t.runtime.preflight()
    # Behind haproxy: haproxy first (it routes to the slot the last switch chose),
    # then that slot's app.
    proxy = t.slots.ensure_proxy() if t.proxied else []
    before = t.runtime.status()
    timeline = Timeline(lambda line: None)
    if before != "RUNNING" or not t.proxied:
        # Behind haproxy a live slot that runs is left alone: a changed program
        # config reaches it with the next deploy, never by restarting what serves.
        t.runtime.start()
    if before != "RUNNING":
        t.event(
            "restart", sha=sha, detail=f"start: the runtime was {before}", defer=True
        )
    try:
        readiness = wait_until_ready(t, timeline, "ready")
    except DeployFailed as error:
        t.event("health", sha=sha, outcome="failed", detail=f"start: {error}")
        return Started(t.env, sha, False, f"{short(sha)} NOT READY: {error}")
    t.event(
        "health",
        sha=sha,
        detail=f"start: ready after {readiness.attempts} attempt(s)",
        durations={"readiness": readiness.seconds},
    )
    how = "already running" if before == "RUNNING" else f"started (was {before})"
    if proxy:
        how += f"; {'; '.join(proxy)}"
    return Started(
        t.env, sha, True, f"{short(sha)} {how}, ready after {readiness.seconds:.1f}s"
    )
