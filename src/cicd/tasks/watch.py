"""``watch``: follow CI for a deployed sha and act on its verdict.

``invoke watch`` is the watcher (polling, detached or not); ``invoke watch.verdict``
is the ``workflow_run`` job's way in, with its own fresh token.
"""

from __future__ import annotations

import os
from typing import Any

from invoke.tasks import task

from cicd.tasks._common import configured_fleet, notifier, reported, targets


@task(
    default=True,
    help={
        "sha": "The deployed sha to watch. Default: $GITHUB_SHA in a workflow.",
        "env": "Environment the sha was deployed to (default: preprod).",
        "detach": "Run in the background (log in <env>/logs) and return.",
        "resume": "Resume every interrupted watch of the environment instead.",
    },
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
            shas = watcher.resume(hosts, n, detach=detach, configured=bool(fleet))
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
        verdict = watcher.watch(hosts, full, n)
        print(f"{env}: CI {verdict} for {full[:7]}")


@task(
    help={
        "sha": "The sha CI ran for (the workflow_run event's head_sha).",
        "run_id": "The CI run's id (the workflow_run event's id).",
        "env": "Environment the sha was deployed to (default: preprod).",
    }
)
def verdict(c: Any, sha: str = "", run_id: str = "", env: str = "preprod") -> None:
    """Act on a finished GitHub Actions CI run: validate the sha, or roll back.

    For the ci-verdict workflow (on workflow_run of CI, completed): reads the run
    once with $GITHUB_TOKEN (this job's own token; $CICD_GITHUB_TOKEN wins when set)
    and acts exactly as the watcher: same journal, lock and messages. If the watcher
    already decided, it says so and changes nothing; a passing re-run of a sha an
    earlier run failed validates it. A sha never deployed here is left alone.
    """
    with reported():
        from cicd import watch as watcher
        from cicd.errors import UsageError

        if not sha or not run_id:
            raise UsageError("--sha and --run-id are required (from the workflow_run)")
        if not run_id.isdigit():
            raise UsageError(f"--run-id must be a number, got {run_id[:40]!r}")
        hosts = targets(c, env)
        t = hosts[0]
        full = t.resolve(sha)
        outcome = watcher.verdict(hosts, full, run_id, notifier(t))
        if outcome != "not-deployed":
            print(f"{env}: CI {outcome} for {full[:7]}")
