"""The CI watcher: deploy first, watch CI in the background, act on its verdict.

It replaces the original's ``/tmp/watch-ci-SHA.sh`` started with nohup. Its state
is journaled (:mod:`cicd.pipeline.watch_journal`) at every change, so a watcher
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
go through :func:`cicd.pipeline.verdict_actions.act_on_verdict`, which re-reads the
journal under the lock: whichever comes first acts, the other records "already
decided". What a verdict calls for is decided in
:mod:`cicd.pipeline.verdict_decision`.
"""

from __future__ import annotations

import os
import posixpath
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cicd.ci import INCONCLUSIVE, PENDING, Poll, Provider
from cicd.commands import files
from cicd.core import lock_details
from cicd.core.errors import CicdError, LockHeld, UsageError
from cicd.core.layout import controller_logs
from cicd.core.messages import short
from cicd.host import lock
from cicd.pipeline.verdict_actions import act_on_verdict
from cicd.pipeline.watch_journal import (
    WATCHING,
    already_decided,
    interrupted,
    is_done,
    load_journal,
    new_journal,
    save_journal,
)

if TYPE_CHECKING:
    from cicd.ci.github import GitHubProvider
    from cicd.host.target import Target
    from cicd.reporting.notify import Notifier


def provider_for(target: Target) -> Provider:
    """The CI provider configured for an environment."""
    ci = target.settings.ci
    if ci.provider == "github":
        return _github_provider(target)
    from cicd.ci.local import LocalProvider

    return LocalProvider(target, ci.command, timeout=ci.deadline)


def _github_provider(target: Target) -> GitHubProvider:
    """The GitHub Actions provider, with this process's token."""
    from cicd.ci.github import GitHubProvider

    ci = target.settings.ci
    return GitHubProvider.from_environment(ci.workflow, ci.repository, ci.api_url)


def _say_decided(target: Target, journal: dict[str, Any], notifier: Notifier) -> str:
    """Say that ``journal``'s verdict was decided already, and return it."""
    notifier.say(already_decided(target.env, journal))
    return str(journal["verdict"])


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
    if is_done(journal):
        return _say_decided(target, journal, notifier)
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
        if is_done(journal):
            return _say_decided(target, journal, notifier)
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
    if is_done(journal):
        return _say_decided(target, journal, notifier)
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
    if journal["state"] == WATCHING:
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
            return _say_decided(target, decided, notifier)
    return act_on_verdict(hosts, sha, poll, notifier, by="watcher")


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
        if is_done(load_journal(target, sha)):
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
        provider = _github_provider(target)
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
    return act_on_verdict(hosts, sha, poll, notifier, by="verdict job")


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
