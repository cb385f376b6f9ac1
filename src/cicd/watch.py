"""The CI watcher: deploy first, watch CI in the background, act on its verdict.

It replaces the original's ``/tmp/watch-ci-SHA.sh`` started with nohup. Its state
is journaled under ``<root>/<env>/watch/<sha>.json`` at every change, so a watcher
killed with ``kill -9`` (or by a reboot) is resumed by ``invoke watch --resume`` or
by the next deploy, without a lost verdict and without a second rollback:

- success: ``validated`` is written atomically, the ledger and a notification say so;
- failure: under the lock, the sha is marked bad and, if it still runs, the
  environment rolls back to the newest validated release;
- inconclusive: a person is notified; the deploy is kept unless
  ``ci.on_inconclusive = "rollback"``.

A superseded sha (another was deployed after it) gets its verdict recorded, but the
watcher never touches what runs now.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from posixpath import join
from typing import TYPE_CHECKING, Any

from cicd import lock
from cicd.ci import FAILURE, INCONCLUSIVE, PENDING, SUCCESS, Poll, Provider
from cicd.commands import files
from cicd.deploy import short
from cicd.errors import CicdError, LockHeld, UsageError

if TYPE_CHECKING:
    from cicd.notify import Notifier
    from cicd.target import EnvState, Target

#: Longest time a verdict waits for a deploy or rollback to release the lock.
LOCK_WAIT = 300.0


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
    return join(target.paths.watch, f"{sha}.json")


def load_journal(target: Target, sha: str) -> dict[str, Any] | None:
    """The journal of ``sha``, or None when it was never watched."""
    text = target.runner.run(files.read(journal_path(target, sha))).stdout
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def save_journal(target: Target, journal: dict[str, Any]) -> None:
    """Write a journal atomically."""
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
    return not lock.is_stale(journal) and journal.get("host") == socket.gethostname()


def watch(
    target: Target,
    sha: str,
    notifier: Notifier,
    *,
    provider: Provider | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    fleet: list[Target] | None = None,
) -> str:
    """Watch CI for a deployed sha until a verdict, then act on it.

    Args:
        target: Where the journal lives (the environment's first host).
        sha: The deployed sha.
        notifier: Where messages go.
        provider: The CI provider (default: the configured one).
        sleep: Sleep function (tests may inject one).
        clock: Wall clock (tests may inject one).
        fleet: Every host of the environment, when it has several.

    Returns:
        The verdict: ``success``, ``failure`` or ``inconclusive``.

    Raises:
        LockHeld: Another live watcher is watching this sha.
    """
    ci = target.settings.ci
    journal = load_journal(target, sha)
    if journal and journal.get("state") == "done":
        notifier.say(
            f"{target.env}: CI verdict for {short(sha)} already acted on: "
            f"{journal['verdict']}"
        )
        return str(journal["verdict"])
    if (
        journal
        and journal.get("pid") != os.getpid()
        and _alive(journal)
        and journal.get("state") == "watching"
    ):
        raise LockHeld(
            f"{short(sha)} is already watched by pid {journal.get('pid')} "
            f"on {journal.get('host')}"
        )
    if journal is None:
        journal = {
            "sha": sha,
            "env": target.env,
            "state": "watching",
            "started": clock(),
            "deadline_at": clock() + ci.deadline,
        }
        target.event(
            "ci", sha=sha, outcome="watching", detail=f"provider {ci.provider}"
        )
    else:
        notifier.say(
            f"{target.env}: resuming the watch of {short(sha)} ({journal['state']})"
        )
    journal.update(pid=os.getpid(), host=socket.gethostname())
    save_journal(target, journal)
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
        journal.update(
            state="verdict",
            verdict=poll.state,
            detail=poll.detail,
            url=poll.url,
            failed=list(poll.failed),
        )
        save_journal(target, journal)
    _act(fleet or [target], journal, notifier)
    journal["state"] = "done"
    save_journal(target, journal)
    return str(journal["verdict"])


def _poll_until_verdict(
    target: Target,
    sha: str,
    journal: dict[str, Any],
    provider: Provider,
    notifier: Notifier,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Poll:
    interval = target.settings.ci.poll_interval
    last = ""
    notifier.say(f"{target.env}: watching CI ({provider.name}) for {short(sha)}")
    while True:
        poll = provider.poll(sha)
        if poll.detail != last:
            notifier.say(f"  CI {short(sha)}: {poll.detail}")
            last = poll.detail
        if poll.state in (SUCCESS, FAILURE):
            return poll
        left = float(journal["deadline_at"]) - clock()
        if left <= 0:
            reason = "still pending" if poll.state == PENDING else poll.detail
            return Poll(
                INCONCLUSIVE, f"no verdict by the deadline ({reason})", poll.url
            )
        sleep(min(max(provider.wait_hint(), interval), left))


def _act(hosts: list[Target], journal: dict[str, Any], notifier: Notifier) -> None:
    """Act on a verdict on every host of the environment, each under its lock."""
    sha, verdict = str(journal["sha"]), str(journal["verdict"])
    detail = str(journal.get("detail", ""))
    link = f"\n{journal['url']}" if journal.get("url") else ""
    failed = journal.get("failed") or []
    env = hosts[0].env.upper()
    with ExitStack() as locks:
        for target in hosts:
            locks.enter_context(
                lock.hold(target, f"watch {verdict}", sha, wait=LOCK_WAIT)
            )
        states = {target: target.state() for target in hosts}
        for target in hosts:
            target.event("ci", sha=sha, outcome=verdict, detail=(detail + link).strip())
        if verdict == SUCCESS:
            for target in hosts:
                _validate(target, sha, states[target])
            notifier.send(f"✅ {env} - CI passed for {short(sha)}: validated{link}")
            return
        running = [t for t in hosts if states[t].current == sha]
        if verdict == FAILURE:
            for target in hosts:
                if sha not in states[target].bad:
                    target.event(
                        "marked_bad",
                        sha=sha,
                        outcome="bad",
                        detail=f"CI failed: {detail}",
                    )
            jobs = "\nFailed: " + ", ".join(failed) if failed else ""
            if not running:
                now = short(states[hosts[0]].current)
                notifier.send(
                    f"❌ {env} - CI failed for {short(sha)}{jobs}{link}\n"
                    f"{now} runs now: nothing rolled back; {short(sha)} is marked bad"
                )
                return
            _rollback(running, notifier, f"CI failed for {short(sha)}{jobs}{link}")
            return
        on = hosts[0].settings.ci.on_inconclusive
        notifier.send(
            f"⚠️ {env} - CI verdict inconclusive for {short(sha)}: {detail}{link}\n"
            + (
                "rolling back (ci.on_inconclusive = rollback)"
                if on == "rollback" and running
                else "the deploy is kept; a person should check"
            )
        )
        if on == "rollback" and running:
            _rollback(running, notifier, f"CI inconclusive for {short(sha)}")


def _validate(target: Target, sha: str, state: EnvState) -> None:
    """Record the verdict; move ``validated`` forward only, never back."""
    target.event("validated", sha=sha)
    order = {
        e.sha: i for i, e in enumerate(state.events) if e.event == "deploy" and e.sha
    }
    current = state.validated
    if current is None or order.get(sha, -1) >= order.get(current, -1):
        target.set_validated(sha)


def _rollback(hosts: list[Target], notifier: Notifier, reason: str) -> None:
    from cicd.parallel import each
    from cicd.rollback import rollback_locked

    def one(target: Target) -> None:
        try:
            rollback_locked(target, notifier, reason=reason)
        except CicdError as error:
            where = f" on {target.runner.host}" if target.runner.remote else ""
            notifier.send(
                f"❌ {target.env.upper()} - {reason}\n"
                f"Automatic rollback{where} impossible: {error}"
            )

    each(one, hosts)


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
        logs = str(settings.project_dir / ".cicd" / "logs")
        os.makedirs(logs, exist_ok=True)
        log = join(logs, f"watch-{target.env}-{sha}.log")
    elif target.runner.remote:
        raise UsageError(
            "--detach runs the watcher on this machine; over SSH, run "
            "`invoke watch --detach` on the host (for example from its CI runner)"
        )
    else:
        target.runner.run(files.mkdirs(target.paths.logs))
        log = join(target.paths.logs, f"watch-{sha}.log")
    env = {**os.environ, "RUNNER_TRACKING_ID": ""}
    if settings.path:
        env["CICD_CONFIG"] = str(settings.path)
    argv = [
        sys.executable,
        "-m",
        "cicd",
        "watch",
        "--sha",
        sha,
        "--env",
        target.env,
    ]
    with open(log, "ab") as output:
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=str(settings.project_dir),
        )
    return log


def resume(
    target: Target,
    notifier: Notifier,
    *,
    detach: bool,
    fleet: list[Target] | None = None,
) -> list[str]:
    """Resume every interrupted watch of an environment.

    Args:
        target: Where the journals live (the environment's first host).
        notifier: Where messages go.
        detach: Resume each in the background instead of here.
        fleet: Every host of the environment, when hosts are configured.

    Returns:
        The shas resumed.
    """
    shas = [str(j["sha"]) for j in interrupted(target)]
    for sha in shas:
        if detach:
            log = start_detached(target, sha, fleet=fleet is not None)
            notifier.say(
                f"{target.env}: resumed the watch of {short(sha)} in the background "
                f"({log})"
            )
        else:
            watch(target, sha, notifier, fleet=fleet)
    return shas
