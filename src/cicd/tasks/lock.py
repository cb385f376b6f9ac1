"""``lock.status``, ``lock.acquire`` (a manual freeze) and ``lock.release``."""

from __future__ import annotations

from typing import Any

from invoke.tasks import task

from cicd.tasks._common import (
    configured_fleet,
    emit_json,
    env_names,
    host_row,
    notifier,
    reported,
    targets,
)


def _label(t: Any, name: str) -> str:
    return name if not t.runner.remote else f"{name}@{t.runner.host}"


@task(help={"env": "One environment (default: all).", "json": "Print JSON."})
def status(c: Any, env: str = "", json: bool = False) -> None:
    """Show who holds each environment's lock, if anyone (and why)."""
    with reported("lock.status" if json else "", env or None):
        from cicd.core.lock_details import describe, is_manual
        from cicd.host.lock import read

        rows = []
        for name in [env] if env else env_names():
            for t in targets(c, name):
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
                    print(f"{_label(t, name)}: {said}")
        if json:
            emit_json("lock.status", rows, env=env or None)


@task(
    help={
        "env": "Environment to freeze (default: preprod).",
        "reason": "Why (required): shown to every deploy, rollback and verdict "
        "refused while the lock stands.",
        "json": "Print the result as JSON on stdout.",
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
            print(f"{_label(t, env)}: frozen — {describe(details)}")
        print(f"lift it with: invoke lock.release --env {env}")


@task(
    help={
        "env": "Environment whose lock to release.",
        "force": "Release even if the holder may still be running.",
        "json": "Print the result as JSON on stdout.",
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
        resumed: list[str] = []
        fleet = configured_fleet(c, hosts)
        # The watches a freeze refused are resumed by whoever lifts it (under
        # fab -H, `invoke watch --resume` on the host does it).
        if fleet is not None or not hosts[0].runner.remote:
            from cicd.pipeline import watch as watcher

            resumed = watcher.resume(
                hosts, notifier(hosts[0]), detach=True, configured=fleet is not None
            )
        if json:
            emit_json("lock.release", rows, env=env, resumed=resumed)
