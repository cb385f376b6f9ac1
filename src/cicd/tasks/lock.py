"""``lock.status`` and ``lock.release``."""

from __future__ import annotations

from typing import Any

from invoke.tasks import task

from cicd.tasks._common import emit_json, env_names, reported, targets


@task(help={"env": "One environment (default: all).", "json": "Print JSON."})
def status(c: Any, env: str = "", json: bool = False) -> None:
    """Show who holds each environment's lock, if anyone."""
    with reported():
        from cicd.lock import describe, read

        rows = {}
        for name in [env] if env else env_names():
            for t in targets(c, name):
                label = name if not t.runner.remote else f"{name}@{t.runner.host}"
                details = read(t)
                rows[label] = details
                if not json:
                    print(f"{label}: {describe(details) if details else 'free'}")
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

        for t in targets(c, env):
            print(lock.release(t, force=force))
