"""``watch``: follow CI for a deployed sha and act on its verdict."""

from __future__ import annotations

import os
from typing import Any

from invoke.tasks import task

from cicd.tasks._common import configured_fleet, notifier, reported, targets


@task(
    help={
        "sha": "The deployed sha to watch. Default: $GITHUB_SHA in a workflow.",
        "env": "Environment the sha was deployed to (default: preprod).",
        "detach": "Run in the background (log in <env>/logs) and return.",
        "resume": "Resume every interrupted watch of the environment instead.",
    }
)
def watch(
    c: Any,
    sha: str = "",
    env: str = "preprod",
    detach: bool = False,
    resume: bool = False,
) -> None:
    """Watch CI for a deployed sha: validate it, or roll back when CI fails.

    Prints one line per change of CI state. Success writes `validated`; failure rolls
    the environment back to the newest validated release (unless another sha was
    deployed since, which is never touched); an inconclusive verdict (GitHub
    unreachable, still pending at the deadline) notifies a person. The state is
    journaled, so `--resume` picks up a watcher killed mid-way.
    """
    with reported():
        from cicd import watch as watcher
        from cicd.errors import UsageError

        hosts = targets(c, env)
        fleet = configured_fleet(c, hosts)
        t = hosts[0]
        n = notifier(t)
        if resume:
            shas = watcher.resume(t, n, detach=detach, fleet=fleet)
            if not shas:
                print(f"{env}: no interrupted watch to resume")
            return
        revision = sha or os.environ.get("GITHUB_SHA", "")
        if not revision:
            raise UsageError("--sha is required (or set GITHUB_SHA, or use --resume)")
        full = t.resolve(revision)
        if detach:
            log = watcher.start_detached(t, full, fleet=fleet is not None)
            print(f"{env}: watching CI for {full[:7]} in the background; log: {log}")
            return
        verdict = watcher.watch(t, full, n, fleet=fleet)
        print(f"{env}: CI {verdict} for {full[:7]}")
