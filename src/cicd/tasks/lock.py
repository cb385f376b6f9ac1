"""``lock.status``, ``lock.acquire`` (a manual freeze) and ``lock.release``."""

from __future__ import annotations

from typing import Any

from invoke.tasks import task

from cicd.tasks import options
from cicd.tasks.boundary import reported
from cicd.tasks.documents import emit_json, host_row
from cicd.tasks.hosts import (
    env_targets,
    host_label,
    notifier,
    resume_watches,
    targets,
)


@task(help={"env": options.ENV_ONE_OR_ALL, "json": options.JSON})
def status(c: Any, env: str = "", json: bool = False) -> None:
    """Show who holds each environment's lock, if anyone (and why)."""
    with reported("lock.status" if json else "", env or None):
        from cicd.core.lock_details import describe, is_manual
        from cicd.host.lock import read

        rows = []
        for t in env_targets(c, env):
            details = read(t)
            rows.append(
                host_row(
                    t,
                    locked=details is not None,
                    manual=is_manual(details),
                    holder=details,
                    description=describe(details) if details else None,
                )
            )
            if not json:
                said = describe(details) if details else "free"
                print(f"{host_label(t)}: {said}")
        if json:
            emit_json("lock.status", rows, env=env or None)


@task(
    help={
        "env": "Environment to freeze (default: preprod).",
        "reason": "Why (required): shown to every deploy, rollback and verdict "
        "refused while the lock stands.",
        "json": options.JSON,
    }
)
def acquire(c: Any, env: str = "preprod", reason: str = "", json: bool = False) -> None:
    """Freeze an environment by hand: nothing deploys or rolls back until released.

    Deploys, rollbacks and the CI watcher's verdicts are refused (exit 3) while it
    stands, naming who holds it and why; --lock-wait never waits for it. A CI
    verdict refused meanwhile is acted on once `invoke lock.release` lifts it.
    """
    with reported("lock.acquire" if json else "", env):
        from cicd.core.lock_details import describe
        from cicd.host import lock

        hosts = targets(c, env)
        details = lock.freeze(hosts, reason)
        if json:
            rows = [
                host_row(t, locked=True, manual=True, holder=details) for t in hosts
            ]
            emit_json("lock.acquire", rows, env=env, description=describe(details))
            return
        for t in hosts:
            print(f"{host_label(t)}: frozen — {describe(details)}")
        print(f"lift it with: invoke lock.release --env {env}")


@task(
    help={
        "env": "Environment whose lock to release (default: preprod).",
        "force": "Release even if the holder may still be running.",
        "json": options.JSON,
    }
)
def release(
    c: Any, env: str = "preprod", force: bool = False, json: bool = False
) -> None:
    """Release an environment's lock: a manual or stale one, or any with --force.

    Lifting a manual lock resumes the CI watches it stopped, in the background.
    """
    with reported("lock.release" if json else "", env):
        from cicd.host import lock

        hosts = targets(c, env)
        rows = []
        for t in hosts:
            done = lock.release(t, force=force)
            rows.append(host_row(t, locked=False, done=done))
            if not json:
                print(done)
        # The watches a freeze refused are resumed by whoever lifts it.
        resumed = resume_watches(c, hosts, notifier(hosts[0]))
        if json:
            emit_json("lock.release", rows, env=env, resumed=resumed)
