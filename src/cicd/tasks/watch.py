"""``watch``: follow CI for a deployed sha and act on its verdict.

``invoke watch`` is the watcher (polling, detached or not); ``invoke watch.verdict``
is the ``workflow_run`` job's way in, with its own fresh token.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from invoke.tasks import task

from cicd.ci import FAILURE
from cicd.tasks._common import (
    configured_fleet,
    emit_json,
    finish,
    host_row,
    notifier,
    on_github,
    reported,
    seconds,
    targets,
)

if TYPE_CHECKING:
    from cicd.reporting.notify import Notifier

LOCK_WAIT_HELP = (
    "Seconds the verdict waits for a deploy's or rollback's lock (default: "
    "ci.lock_wait); a manual lock is never waited for."
)


@contextmanager
def frozen_said(n: Notifier, env: str, sha: str) -> Iterator[None]:
    """Tell a person when a manual lock stops a verdict, then fail as locked.

    The verdict is not lost: its journal stays open, and ``lock.release`` resumes it.
    """
    from cicd.host.lock import ManualLockHeld

    try:
        yield
    except ManualLockHeld as error:
        n.send(
            f"⏸️ {env}: the CI verdict for {sha[:7]} waits — {error}; it is acted on "
            "once the lock is released"
        )
        raise


def verdict_facts(hosts: list[Any], sha: str, verdict: str) -> dict[str, Any]:
    """What the journal says of a verdict, for the job's summary (when it has one).

    The verdict's words (``run 7 failure``), its CI run's link and the failed jobs
    were journaled by the watcher's one computation; the summary shows them.
    """
    from cicd.reporting import summary
    from cicd.pipeline import watch as watcher

    if not os.environ.get(summary.SUMMARY_VARIABLE) and verdict != FAILURE:
        return {}
    journal = watcher.load_journal(hosts[0], sha) or {}
    facts = {k: journal[k] for k in ("detail", "url", "failed") if journal.get(k)}
    return {**on_github(hosts), **facts}


def annotate_rollback(
    verdict: str, facts: dict[str, Any], env: str, sha: str, *, json: bool = False
) -> None:
    """A CI failure is an ``::error::`` annotation on the job (the verdict job's).

    Titled with the failure, not "rolled back": a superseded deploy's failure is
    marked bad but never rolled back over the newer one.
    """
    from cicd.reporting import summary

    if verdict != FAILURE:
        return
    failed = ", ".join(facts.get("failed") or [])
    reason = f"CI failed for {sha[:7]} ({facts.get('detail', 'failure')})"
    reason += f": {failed}" if failed else ""
    summary.annotate(
        f"{env}: CI failed for {sha[:7]}", reason, sys.stderr if json else None
    )


@task(
    default=True,
    help={
        "sha": "The deployed sha to watch. Default: $GITHUB_SHA in a workflow.",
        "env": "Environment the sha was deployed to (default: preprod).",
        "detach": "Run in the background (log in <env>/logs) and return.",
        "resume": "Resume every interrupted watch of the environment instead.",
        "json": "Print the outcome as JSON on stdout.",
        "lock_wait": LOCK_WAIT_HELP,
    },
)
def watch(
    c: Any,
    sha: str = "",
    env: str = "preprod",
    detach: bool = False,
    resume: bool = False,
    json: bool = False,
    lock_wait: str = "",
) -> None:
    """Watch CI for a deployed sha: validate it, or roll back when CI fails.

    Prints one line per change of CI state. Success writes `validated`; failure rolls
    the environment back to the newest validated release (unless another sha was
    deployed since, which is never touched); an inconclusive verdict (GitHub
    unreachable, still pending at the deadline) notifies a person. The state is
    journaled, so `--resume` picks up a watcher killed mid-way.
    """
    with reported("watch" if json else "", env, summary="watch"):
        from cicd.host import lock
        from cicd.pipeline import watch as watcher
        from cicd.core.errors import UsageError

        hosts = targets(c, env)
        fleet = configured_fleet(c, hosts)
        t = hosts[0]
        n = notifier(t)
        rows = [host_row(h) for h in hosts]
        if resume:
            shas = watcher.resume(hosts, n, detach=detach, configured=bool(fleet))
            if json:
                emit_json("watch", rows, env=env, resumed=shas)
            elif not shas:
                print(f"{env}: no interrupted watch to resume")
            return
        revision = sha or os.environ.get("GITHUB_SHA", "")
        if not revision:
            raise UsageError("--sha is required (or set GITHUB_SHA, or use --resume)")
        full = t.resolve(revision)
        if detach:
            log = watcher.start_detached(t, full, fleet=fleet is not None)
            if json:
                emit_json("watch", rows, env=env, sha=full, verdict=None, log=log)
                return
            print(f"{env}: watching CI for {full[:7]} in the background; log: {log}")
            return
        with lock.waiting(seconds(lock_wait, "--lock-wait")):
            with frozen_said(n, env, full):
                verdict = watcher.watch(hosts, full, n)
        github = verdict_facts(hosts, full, verdict)
        finish(
            "watch",
            rows,
            json=json,
            env=env,
            github=github,
            sha=full,
            verdict=verdict,
            log=None,
        )
        if not json:
            print(f"{env}: CI {verdict} for {full[:7]}")
        annotate_rollback(verdict, github, env, full, json=json)


@task(
    help={
        "sha": "The sha CI ran for (the workflow_run event's head_sha).",
        "run_id": "The CI run's id (the workflow_run event's id).",
        "env": "Environment the sha was deployed to (default: preprod).",
        "json": "Print the outcome as JSON on stdout.",
        "lock_wait": LOCK_WAIT_HELP,
    }
)
def verdict(
    c: Any,
    sha: str = "",
    run_id: str = "",
    env: str = "preprod",
    json: bool = False,
    lock_wait: str = "",
) -> None:
    """Act on a finished GitHub Actions CI run: validate the sha, or roll back.

    For the ci-verdict workflow (on workflow_run of CI, completed): reads the run
    once with $GITHUB_TOKEN (this job's own token; $CICD_GITHUB_TOKEN wins when set)
    and acts exactly as the watcher: same journal, lock and messages. If the watcher
    already decided, it says so and changes nothing; a passing re-run of a sha an
    earlier run failed validates it. A sha never deployed here is left alone.
    """
    with reported("watch.verdict" if json else "", env, summary="watch.verdict"):
        from cicd.host import lock
        from cicd.pipeline import watch as watcher
        from cicd.core.errors import UsageError

        if not sha or not run_id:
            raise UsageError("--sha and --run-id are required (from the workflow_run)")
        if not run_id.isdigit():
            raise UsageError(f"--run-id must be a number, got {run_id[:40]!r}")
        hosts = targets(c, env)
        t = hosts[0]
        n = notifier(t)
        full = t.resolve(sha)
        with lock.waiting(seconds(lock_wait, "--lock-wait")):
            with frozen_said(n, env, full):
                outcome = watcher.verdict(hosts, full, run_id, n)
        rows = [host_row(h) for h in hosts]
        github = verdict_facts(hosts, full, outcome)
        finish(
            "watch.verdict",
            rows,
            json=json,
            env=env,
            github=github,
            sha=full,
            verdict=outcome,
        )
        if not json and outcome != "not-deployed":
            print(f"{env}: CI {outcome} for {full[:7]}")
        annotate_rollback(outcome, github, env, full, json=json)
