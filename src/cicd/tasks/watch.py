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
from cicd.tasks import options
from cicd.tasks.boundary import lock_waiting, reported
from cicd.tasks.documents import emit_json, finish, host_row, on_github
from cicd.tasks.hosts import configured_fleet, notifier, targets

if TYPE_CHECKING:
    from cicd.host.target import Target
    from cicd.reporting.notify import Notifier


@contextmanager
def _verdict_lock(n: Notifier, env: str, sha: str, lock_wait: str) -> Iterator[None]:
    """Wait ``--lock-wait`` for the lock; tell a person when a freeze stops a verdict.

    A freeze fails the task as locked, but the verdict is not lost: its journal
    stays open, and ``lock.release`` resumes it.
    """
    from cicd.host.lock import ManualLockHeld

    try:
        with lock_waiting(lock_wait, default=None):
            yield
    except ManualLockHeld as error:
        n.send(
            f"⏸️ {env}: the CI verdict for {sha[:7]} waits — {error}; it is acted on "
            "once the lock is released"
        )
        raise


def _verdict_facts(hosts: list[Target], sha: str, verdict: str) -> dict[str, Any]:
    """What the journal says of a verdict, for the job's summary (when it has one).

    The verdict's words (``run 7 failure``), its CI run's link and the failed jobs
    were journaled by the watcher's one computation; the summary shows them.
    """
    from cicd.pipeline import watch_journal
    from cicd.reporting import summary

    if not os.environ.get(summary.SUMMARY_VARIABLE) and verdict != FAILURE:
        return {}
    journal = watch_journal.load_journal(hosts[0], sha) or {}
    facts = {k: journal[k] for k in ("detail", "url", "failed") if journal.get(k)}
    return {**on_github(hosts), **facts}


def _annotate_failure(
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


def _render_verdict(
    task_name: str,
    hosts: list[Target],
    env: str,
    sha: str,
    verdict: str,
    *,
    json: bool,
    **fields: Any,
) -> None:
    """Render a verdict: the document, the summary, a line, a CI failure's annotation.

    ``task_name`` is ``watch`` or ``watch.verdict``, ``sha`` the full sha; ``fields``
    are the task's own top-level keys (the watch's ``log``).
    """
    github = _verdict_facts(hosts, sha, verdict)
    rows = [host_row(h) for h in hosts]
    finish(
        task_name,
        rows,
        json=json,
        env=env,
        github=github,
        sha=sha,
        verdict=verdict,
        **fields,
    )
    if not json and verdict != "not-deployed":
        print(f"{env}: CI {verdict} for {sha[:7]}")
    _annotate_failure(verdict, github, env, sha, json=json)


@task(
    default=True,
    help={
        "sha": "The deployed sha to watch. Default: $GITHUB_SHA in a workflow.",
        "env": options.ENV_DEPLOYED,
        "detach": "Run in the background (log in <env>/logs) and return.",
        "resume": "Resume every interrupted watch of the environment instead.",
        "json": options.JSON,
        "lock_wait": options.LOCK_WAIT_VERDICT,
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
        from cicd.core.errors import UsageError
        from cicd.pipeline import watch as ci_watch

        hosts = targets(c, env)
        if resume:
            _resume(c, hosts, env, detach=detach, json=json)
            return
        revision = sha or os.environ.get("GITHUB_SHA", "")
        if not revision:
            raise UsageError("--sha is required (or set GITHUB_SHA, or use --resume)")
        full = hosts[0].resolve(revision)
        if detach:
            _start_detached(c, hosts, env, full, json=json)
            return
        n = notifier(hosts[0])
        with _verdict_lock(n, env, full, lock_wait):
            verdict = ci_watch.watch(hosts, full, n)
        _render_verdict("watch", hosts, env, full, verdict, json=json, log=None)


def _resume(c: Any, hosts: list[Target], env: str, *, detach: bool, json: bool) -> None:
    """``watch --resume``: pick up every interrupted watch of the environment."""
    from cicd.pipeline import watch as ci_watch

    fleet = configured_fleet(c, hosts)
    n = notifier(hosts[0])
    shas = ci_watch.resume(hosts, n, detach=detach, configured=bool(fleet))
    if json:
        emit_json("watch", [host_row(h) for h in hosts], env=env, resumed=shas)
    elif not shas:
        print(f"{env}: no interrupted watch to resume")


def _start_detached(
    c: Any, hosts: list[Target], env: str, sha: str, *, json: bool
) -> None:
    """``watch --detach``: start the watch in the background and say where it logs."""
    from cicd.pipeline import watch as ci_watch

    fleet = configured_fleet(c, hosts) is not None
    log = ci_watch.start_detached(hosts[0], sha, fleet=fleet)
    if json:
        rows = [host_row(h) for h in hosts]
        emit_json("watch", rows, env=env, sha=sha, verdict=None, log=log)
        return
    print(f"{env}: watching CI for {sha[:7]} in the background; log: {log}")


@task(
    help={
        "sha": "The sha CI ran for (the workflow_run event's head_sha).",
        "run_id": "The CI run's id (the workflow_run event's id).",
        "env": options.ENV_DEPLOYED,
        "json": options.JSON,
        "lock_wait": options.LOCK_WAIT_VERDICT,
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
        from cicd.core.errors import UsageError
        from cicd.pipeline import watch as ci_watch

        if not sha or not run_id:
            raise UsageError("--sha and --run-id are required (from the workflow_run)")
        if not run_id.isdigit():
            raise UsageError(f"--run-id must be a number, got {run_id[:40]!r}")
        hosts = targets(c, env)
        n = notifier(hosts[0])
        full = hosts[0].resolve(sha)
        with _verdict_lock(n, env, full, lock_wait):
            outcome = ci_watch.verdict(hosts, full, run_id, n)
        _render_verdict("watch.verdict", hosts, env, full, outcome, json=json)
