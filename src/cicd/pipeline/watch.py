"""The CI watcher: deploy first, watch CI in the background, act on its verdict.

It replaces the original's ``/tmp/watch-ci-SHA.sh`` started with nohup. Its state
is journaled under ``<root>/<env>/watch/<sha>.json`` at every change, so a watcher
killed with ``kill -9`` (or by a reboot) is resumed by ``invoke watch --resume`` or
by the next deploy, without a lost verdict and without a second rollback:

- success: ``validated`` is written atomically, the ledger and a notification say so;
- failure: under the lock, the sha is marked bad and, if it still runs, the
  environment rolls back to the newest validated release;
- inconclusive: a person is notified; the deploy is kept unless
  ``ci.on_inconclusive = "rollback"``;
- superseded (its CI run was cancelled by a newer push): recorded, nothing changes.

A superseded sha (another was deployed after it) gets its verdict recorded, but the
watcher never touches what runs now.

On GitHub the verdict also arrives through the ``workflow_run`` job
(:func:`verdict`, ``invoke watch.verdict``), with that job's own fresh token. Both
go through :func:`decide`, which re-reads the journal under the lock: whichever comes
first acts, the other records "already decided".
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cicd.core import lock_details, messages
from cicd.host import lock
from cicd.reporting import github_deployments
from cicd.transport import failpoints
from cicd.ci import (
    FAILURE,
    INCONCLUSIVE,
    PENDING,
    SUCCESS,
    SUPERSEDED,
    VERDICTS,
    Poll,
    Provider,
)
from cicd.commands import files
from cicd.core.messages import short
from cicd.core.errors import CicdError, LockHeld, UsageError
from cicd.core.layout import controller_logs
from cicd.pipeline.repair import repair, report_corrupt
from cicd.core.state import release_order

if TYPE_CHECKING:
    from cicd.ci.github import GitHubProvider
    from cicd.reporting.notify import Notifier
    from cicd.core.state import EnvState
    from cicd.host.target import Target


def provider_for(target: Target) -> Provider:
    """The CI provider configured for an environment."""
    ci = target.settings.ci
    if ci.provider == "github":
        from cicd.ci.github import GitHubProvider

        return GitHubProvider.from_environment(ci.workflow, ci.repository, ci.api_url)
    from cicd.ci.local import LocalProvider

    return LocalProvider(target, ci.command, timeout=ci.deadline)


def journal_path(target: Target, sha: str) -> str:
    """Where the journal of ``sha``'s watcher lives on the host."""
    return target.paths.journal(sha)


def load_journal(target: Target, sha: str) -> dict[str, Any] | None:
    """The journal of ``sha``, or None when it was never watched."""
    text = target.runner.run(files.read(journal_path(target, sha))).stdout
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def save_journal(target: Target, journal: dict[str, Any]) -> None:
    """Write a journal atomically; a decided journal is never turned back.

    The watcher writes outside the lock while it polls; a verdict job may have
    decided meanwhile (under the lock), and its ``done`` must stand.
    """
    if journal.get("state") != "done":
        stored = load_journal(target, str(journal["sha"]))
        if (
            stored
            and stored.get("state") == "done"
            and journal.get("state") == ("watching")
        ):
            return
    target.runner.run(files.mkdirs(target.paths.watch))
    target.runner.run(
        files.write_atomic(
            journal_path(target, journal["sha"]), json.dumps(journal, sort_keys=True)
        )
    )


def interrupted(target: Target) -> list[dict[str, Any]]:
    """Journals of watches that did not finish and whose process is gone."""
    names = target.runner.output(files.list_files(target.paths.watch)).splitlines()
    found = []
    for name in sorted(names):
        if not name.endswith(".json"):
            continue
        journal = load_journal(target, name[: -len(".json")])
        if journal and journal.get("state") != "done" and not _alive(journal):
            found.append(journal)
    return found


def _alive(journal: dict[str, Any]) -> bool:
    return (
        not lock_details.is_stale(journal)
        and journal.get("host") == socket.gethostname()
    )


def watch(
    hosts: list[Target],
    sha: str,
    notifier: Notifier,
    *,
    provider: Provider | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> str:
    """Watch CI for a deployed sha until a verdict, then act on it.

    Args:
        hosts: The environment on every host; the journal lives on the first.
        sha: The deployed sha.
        notifier: Where messages go.
        provider: The CI provider (default: the configured one).
        sleep: Sleep function (tests may inject one).
        clock: Wall clock (tests may inject one).

    Returns:
        The verdict: ``success``, ``failure``, ``superseded`` or ``inconclusive``.

    Raises:
        LockHeld: Another watcher of this sha, followed, gave no verdict in time.
    """
    target = hosts[0]
    journal = load_journal(target, sha)
    if journal and journal.get("state") == "done":
        notifier.say(_already(target, journal))
        return str(journal["verdict"])
    followed = _claim_or_follow(target, sha, notifier, sleep, clock)
    if followed is not None:
        return followed
    try:
        return _watch(hosts, sha, notifier, provider, sleep, clock)
    finally:
        lock.unclaim(target, claim_path(target, sha))


def claim_path(target: Target, sha: str) -> str:
    """The directory whose ``mkdir`` makes a process the one watcher of ``sha``."""
    return posixpath.join(target.paths.watch, f"{sha}.watcher")


#: Seconds a second watcher follows the first beyond the CI deadline and lock
#: wait (the verdict's rollback, a readiness wait) before it gives up.
FOLLOW_MARGIN = 300.0


def _claim_or_follow(
    target: Target,
    sha: str,
    notifier: Notifier,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> str | None:
    """Become the one watcher of ``sha``, or follow the one there is to its verdict.

    Two watchers of one sha (``deploy --watch``'s detached one and a person's
    ``invoke watch``) would run CI twice in one scratch directory. The claim
    (:func:`cicd.host.lock.claim`) lets one watch; the other says who watches and
    waits for the verdict in the journal, taking over if that watcher dies.

    Returns:
        None when this process is the watcher now; else the verdict followed.

    Raises:
        LockHeld: The other watcher gave no verdict by the CI deadline, the lock
            wait and :data:`FOLLOW_MARGIN` (it may run on another host).
    """
    ci = target.settings.ci
    path = claim_path(target, sha)
    details = lock_details.holder("watch", sha)
    interval = min(max(ci.poll_interval, 0.2), 5.0)
    give_up = clock() + ci.deadline + ci.lock_wait + FOLLOW_MARGIN
    followed: dict[str, Any] | None = None
    while True:
        holder = lock.claim(target, path, details)
        if holder is None:
            if followed:
                notifier.say(
                    f"{target.env}: the watcher of {short(sha)} is gone "
                    f"({lock_details.describe(followed)}): watching it here"
                )
            return None
        journal = load_journal(target, sha)
        if journal and journal.get("state") == "done":
            notifier.say(_already(target, journal))
            return str(journal["verdict"])
        if followed is None:
            notifier.say(
                f"{target.env}: {short(sha)} is already watched by "
                f"{lock_details.describe(holder)}; following it to its verdict"
            )
        followed = holder
        if clock() >= give_up:
            raise LockHeld(
                f"{target.env}: {short(sha)} is watched by "
                f"{lock_details.describe(holder)} and no verdict came in time; "
                "nothing was changed"
            )
        sleep(interval)


def _watch(
    hosts: list[Target],
    sha: str,
    notifier: Notifier,
    provider: Provider | None,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> str:
    """Watch CI for ``sha`` and act on its verdict; this process is its watcher."""
    target = hosts[0]
    ci = target.settings.ci
    # Read again: a watcher followed until it died may have moved it on.
    journal = load_journal(target, sha)
    if journal and journal.get("state") == "done":
        notifier.say(_already(target, journal))
        return str(journal["verdict"])
    if journal is None:
        journal = new_journal(target, sha, clock(), ci.deadline)
        target.event(
            "ci", sha=sha, outcome="watching", detail=f"provider {ci.provider}"
        )
    else:
        notifier.say(
            f"{target.env}: resuming the watch of {short(sha)} ({journal['state']})"
        )
    journal.update(pid=os.getpid(), host=socket.gethostname())
    save_journal(target, journal)
    poll = None
    if journal["state"] == "watching":
        poll = _poll_until_verdict(
            target,
            sha,
            journal,
            provider or provider_for(target),
            notifier,
            sleep,
            clock,
        )
        if poll is None:
            # The verdict job decided while we polled: nothing left to do.
            decided = load_journal(target, sha) or journal
            notifier.say(_already(target, decided))
            return str(decided["verdict"])
    return decide(hosts, sha, poll, notifier, by="watcher")


def new_journal(
    target: Target, sha: str, started: float, deadline: float
) -> dict[str, Any]:
    """The journal of a watch that starts now."""
    return {
        "sha": sha,
        "env": target.env,
        "state": "watching",
        "started": started,
        "deadline_at": started + deadline,
    }


def _already(target: Target, journal: dict[str, Any]) -> str:
    by = f" by the {journal['by']}" if journal.get("by") else ""
    return (
        f"{target.env}: CI verdict for {short(str(journal['sha']))} already "
        f"decided{by}: {journal.get('verdict')}"
    )


def _poll_until_verdict(
    target: Target,
    sha: str,
    journal: dict[str, Any],
    provider: Provider,
    notifier: Notifier,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Poll | None:
    """Poll until a final answer or the deadline; None if another run decided."""
    interval = target.settings.ci.poll_interval
    last = ""
    notifier.say(f"{target.env}: watching CI ({provider.name}) for {short(sha)}")
    while True:
        poll = provider.poll(sha)
        if poll.detail != last:
            notifier.say(f"  CI {short(sha)}: {poll.detail}")
            last = poll.detail
        if poll.final:
            return poll
        left = float(journal["deadline_at"]) - clock()
        if left <= 0:
            reason = "still pending" if poll.state == PENDING else poll.detail
            return Poll(
                INCONCLUSIVE, f"no verdict by the deadline ({reason})", poll.url
            )
        sleep(min(max(provider.wait_hint(), interval), left))
        decided = load_journal(target, sha)
        if decided and decided.get("state") == "done":
            return None


def verdict(
    hosts: list[Target],
    sha: str,
    run_id: str,
    notifier: Notifier,
    *,
    provider: GitHubProvider | None = None,
) -> str:
    """Act on a finished CI run of ``sha`` (the ``workflow_run`` job's task).

    Reads the run once with this job's own token, then decides exactly as the
    watcher does: same journal, same lock, same messages. Whichever of the two
    comes first acts; the other says "already decided" and changes nothing.

    Returns:
        The verdict acted on, or ``not-deployed`` when ``sha`` never ran here.

    Raises:
        UsageError: The CI provider is not GitHub.
        CicdError: GitHub could not be read (the watcher keeps its chance).
    """
    target = hosts[0]
    if provider is None:
        if target.settings.ci.provider != "github":
            raise UsageError(
                "watch.verdict reads a GitHub Actions run: set "
                'tool.cicd.ci.provider = "github"'
            )
        from cicd.ci.github import GitHubProvider

        ci = target.settings.ci
        provider = GitHubProvider.from_environment(
            ci.workflow, ci.repository, ci.api_url
        )
    state = target.state()
    if not state.deployed(sha):
        notifier.say(
            f"{target.env}: {short(sha)} was never deployed here: nothing to decide"
        )
        return "not-deployed"
    poll = provider.run(sha, run_id)
    notifier.say(f"  CI {short(sha)}: {poll.detail}")
    if not poll.final:
        raise CicdError(f"no verdict for {short(sha)} from run {run_id}: {poll.detail}")
    return decide(hosts, sha, poll, notifier, by="verdict job")


def decide(
    hosts: list[Target],
    sha: str,
    poll: Poll | None,
    notifier: Notifier,
    *,
    by: str,
) -> str:
    """Record and act on a verdict once, under the environment's locks.

    The journal is read again under the lock, so of two deciders (the watcher and
    the verdict job) only the first acts. A passing re-run of a sha that an earlier
    run failed validates it, recorded in the ledger.

    Args:
        hosts: Every host of the environment; the journal lives on the first.
        sha: The watched sha.
        poll: The verdict; None to finish acting on the one already journaled.
        notifier: Where messages go.
        by: Who decides, for the journal and messages (watcher, verdict job).

    Returns:
        The verdict acted on.
    """
    home = hosts[0]
    why = f"watch {poll.state if poll else 'verdict'}"
    with lock.hold(hosts, why, sha, wait=home.settings.ci.lock_wait):
        journal = load_journal(home, sha) or new_journal(home, sha, time.time(), 0)
        if journal.get("state") == "done" and poll and _reopens(journal, poll):
            # Inconclusive (a deadline, refused tokens) decided nothing: a real
            # verdict arriving later is acted on.
            journal["state"] = "verdict"
        if journal.get("state") == "done":
            if poll and _rerun_passed(journal, poll):
                _revalidate(hosts, journal, poll, notifier)
                journal.update(verdict=SUCCESS, run=poll.run, detail=poll.detail)
                save_journal(home, journal)
                return SUCCESS
            for target in hosts:
                target.event(
                    "ci",
                    sha=sha,
                    outcome="already decided",
                    detail=f"{by}: {journal.get('verdict')} by the "
                    f"{journal.get('by', 'watcher')}",
                )
            notifier.say(_already(home, journal))
            return str(journal["verdict"])
        if journal.get("state") == ACTING:
            # A run killed while acting on a verdict: that verdict is finished,
            # never recorded again (a later passing re-run still revalidates).
            poll = None
        if poll is not None:
            journal.update(
                state="verdict",
                verdict=poll.state,
                detail=poll.detail,
                url=poll.url,
                failed=list(poll.failed),
                run=poll.run,
                by=by,
            )
            save_journal(home, journal)
        failpoints.hit("verdict")
        for target in hosts:
            repair(target, notifier)
        _act(hosts, journal, notifier)
        journal["state"] = "done"
        save_journal(home, journal)
    return str(journal["verdict"])


def _reopens(journal: dict[str, Any], poll: Poll) -> bool:
    """An inconclusive decision gives way to a conclusive verdict."""
    return journal.get("verdict") == INCONCLUSIVE and poll.state in (
        SUCCESS,
        FAILURE,
        SUPERSEDED,
    )


def _rerun_passed(journal: dict[str, Any], poll: Poll) -> bool:
    """A later run (or attempt) passed where the decided one did not."""
    return (
        poll.state == SUCCESS
        and journal.get("verdict") in (FAILURE, INCONCLUSIVE)
        and bool(poll.run)
        and poll.run != journal.get("run")
    )


def _revalidate(
    hosts: list[Target], journal: dict[str, Any], poll: Poll, notifier: Notifier
) -> None:
    sha = str(journal["sha"])
    for target in hosts:
        target.event(
            "ci",
            sha=sha,
            outcome=SUCCESS,
            detail=f"re-run passed ({poll.detail}) after {journal.get('verdict')}",
        )
        _validate(target, sha, target.state())
    notifier.send(
        messages.ci_rerun_passed(
            hosts[0].env,
            sha,
            str(journal.get("verdict")),
            str(journal.get("detail", "")),
            poll.url,
        )
    )
    # The commit's status turns: validated, though it no longer serves.
    github_deployments.reporter(hosts[0], notifier).verdict(
        sha, SUCCESS, poll.detail, poll.url, acted=False
    )


def _act(hosts: list[Target], journal: dict[str, Any], notifier: Notifier) -> None:
    """Act on a verdict on every host of the environment (their locks are held).

    First the verdict is recorded (``ci`` events, a failed sha marked bad) and the
    journal says so (``acting``); then it is acted on. A watcher killed after that
    — its rollback cut short at any point — is resumed here without recording the
    verdict twice, and a rollback that the repair before this call completed is
    the rollback, not a newer release that "runs now".
    """
    sha, verdict = str(journal["sha"]), str(journal["verdict"])
    detail = str(journal.get("detail", ""))
    url = str(journal.get("url") or "")
    failed = list(journal.get("failed") or [])
    env = hosts[0].env
    states = {target: target.state() for target in hosts}
    running = [t for t in hosts if states[t].current == sha]
    recorded = journal.get("state") == ACTING
    if not recorded:
        _record(hosts, states, journal, notifier)
        journal["state"] = ACTING
        save_journal(hosts[0], journal)
    # Rolled back by this verdict already: by this watcher before it was killed,
    # or by the repair that completed its switch (this run's, or another command's).
    rolled = [
        t
        for t in hosts
        if recorded and t not in running and _rolled_back(states[t], sha)
    ]
    if not rolled:
        # The commit's status; a failed sha that serves goes to failure first.
        github_deployments.reporter(hosts[0], notifier).verdict(
            sha, verdict, detail, url, failed=failed, acted=bool(running)
        )
    if verdict == SUCCESS:
        for target in hosts:
            _validate(target, sha, states[target])
        notifier.send(messages.ci_passed(env, sha, url))
        for target in running:
            if target.is_proxied():
                # No rollback will need the previous release warm any more.
                try:
                    stopped = target.slots.retire()
                except CicdError as error:
                    stopped = f"the warm slot was not stopped ({error})"
                if stopped:
                    notifier.say(f"{env}: {stopped}: CI passed")
        return
    if verdict == SUPERSEDED:
        notifier.send(messages.ci_superseded(env, sha, detail, url))
        return
    if verdict == FAILURE:
        if running:
            _rollback(running, notifier, messages.ci_failed_reason(sha, failed, url))
        elif not rolled:
            now = states[hosts[0]].current
            notifier.send(messages.ci_failed_not_running(env, sha, failed, url, now))
        return
    rolling = hosts[0].settings.ci.on_inconclusive == "rollback" and bool(running)
    if not rolled:
        # Sent before rolling back: a rollback found done was announced already.
        notifier.send(messages.ci_inconclusive(env, sha, detail, url, rolling))
    if rolling:
        _rollback(running, notifier, f"CI inconclusive for {short(sha)}")


#: The journal's state once the verdict is recorded, while it is acted on.
ACTING = "acting"


def _record(
    hosts: list[Target],
    states: dict[Target, EnvState],
    journal: dict[str, Any],
    notifier: Notifier,
) -> None:
    """Record a verdict in every host's ledger: its ``ci`` event, a failed sha bad."""
    sha, verdict = str(journal["sha"]), str(journal["verdict"])
    detail = str(journal.get("detail", ""))
    url = str(journal.get("url") or "")
    for target in hosts:
        report_corrupt(target, states[target], notifier)
        now = states[target].current
        if verdict == FAILURE and now and now != sha:
            # A newer deploy runs: the verdict is recorded, nothing is touched.
            outcome, said = SUPERSEDED, f"{detail}; superseded by {short(now)}"
        else:
            outcome, said = verdict, detail
        target.event("ci", sha=sha, outcome=outcome, detail=f"{said}\n{url}".strip())
        if verdict == FAILURE and sha not in states[target].bad:
            target.event(
                "marked_bad", sha=sha, outcome="bad", detail=f"CI failed: {detail}"
            )


def _rolled_back(state: EnvState, sha: str) -> bool:
    """Whether a rollback away from ``sha`` followed its recorded CI verdict."""
    for event in reversed(state.events):
        if event.event == "ci" and event.sha == sha and event.outcome in VERDICTS:
            return False
        if event.event == "rollback" and event.previous == sha:
            return event.outcome == "ok"
    return False


def _validate(target: Target, sha: str, state: EnvState) -> None:
    """Record the verdict; move ``validated`` forward only, never back."""
    target.event("validated", sha=sha)
    order = release_order(state.events)
    current = state.validated
    if current is None or order.get(sha, -1) >= order.get(current, -1):
        target.set_validated(sha)


def _rollback(hosts: list[Target], notifier: Notifier, reason: str) -> None:
    from cicd.transport.parallel import failures_by_host
    from cicd.pipeline.rollback import rollback_locked

    def one(target: Target) -> None:
        try:
            rollback_locked(target, notifier, reason=reason)
        except CicdError as error:
            host = target.runner.host if target.runner.remote else ""
            notifier.send(messages.rollback_impossible(target.env, reason, error, host))

    failures_by_host(one, hosts)


def start_detached(target: Target, sha: str, *, fleet: bool = False) -> str:
    """Start ``python -m cicd watch`` for ``sha`` detached and return its log.

    The child runs in a new session with no stdin and its output in
    ``<root>/<env>/logs/watch-<sha>.log`` (for a fleet of configured hosts, in
    ``.cicd/logs`` of this checkout), so the CI runner's job can end at once;
    ``RUNNER_TRACKING_ID`` is emptied so GitHub's runner does not reap it.

    Args:
        target: The environment (its first host for a fleet).
        sha: The deployed sha.
        fleet: The hosts come from the configuration: the watcher runs here and
            reaches them over SSH.

    Raises:
        UsageError: Asked under ``fab -H`` (run the watcher on the host instead).
    """
    settings = target.all_settings
    if fleet:
        logs = controller_logs(settings.project_dir)
        logs.mkdir(parents=True, exist_ok=True)
        log = str(logs / f"watch-{target.env}-{sha}.log")
    elif target.runner.remote:
        raise UsageError(
            "--detach runs the watcher on this machine; over SSH, run "
            "`invoke watch --detach` on the host (for example from its CI runner)"
        )
    else:
        target.runner.run(files.mkdirs(target.paths.logs))
        log = target.paths.watch_log(sha)
    from cicd.host.detach import spawn

    spawn(["watch", "--sha", sha, "--env", target.env], log, target)
    return log


def resume(
    hosts: list[Target],
    notifier: Notifier,
    *,
    detach: bool,
    configured: bool = False,
) -> list[str]:
    """Resume every interrupted watch of an environment.

    Args:
        hosts: The environment on every host; the journals live on the first.
        notifier: Where messages go.
        detach: Resume each in the background instead of here.
        configured: The hosts come from the configuration (the watcher runs here
            and reaches them over SSH).

    Returns:
        The shas resumed.
    """
    target = hosts[0]
    shas = [str(j["sha"]) for j in interrupted(target)]
    for sha in shas:
        if detach:
            log = start_detached(target, sha, fleet=configured)
            notifier.say(
                f"{target.env}: resumed the watch of {short(sha)} in the background "
                f"({log})"
            )
        else:
            watch(hosts, sha, notifier)
    return shas
