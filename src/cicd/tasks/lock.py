"""``lock.status`` and ``lock.release``."""

from __future__ import annotations

from typing import Any

from invoke.tasks import task

from cicd.tasks._common import emit_json, env_names, reported, target


@task(help={"env": "One environment (default: all).", "json": "Print JSON."})
def status(c: Any, env: str = "", json: bool = False) -> None:
    """Show who holds each environment's lock, if anyone."""
    with reported():
        from cicd.lock import describe

        rows = {}
        for name in [env] if env else env_names():
            details = target(c, name).read_lock()
            rows[name] = details
            if not json:
                print(f"{name}: {describe(details) if details else 'free'}")
        if json:
            emit_json(rows)


@task(
    help={
        "env": "Environment whose lock to release.",
        "force": "Release even if the holder may still be running.",
    }
)
def release(c: Any, env: str = "preprod", force: bool = False) -> None:
    """Release an environment's lock: a stale one, or any with --force."""
    with reported():
        from cicd import lock

        print(lock.release(target(c, env), force=force))
