"""Acting on a CI verdict, once, under the environment's locks.

The watcher and the ``workflow_run`` verdict job both end in :func:`act_on_verdict`:
it takes the locks, reads the journal again, and does what
:mod:`cicd.pipeline.verdict_decision` decides: records the verdict in the journal
and the ledgers, validates the sha or rolls the environment back, and says so.
Whichever of the two comes first acts; the other records "already decided".
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from cicd.ci import FAILURE, SUCCESS, Poll
from cicd.core import messages
from cicd.core.errors import CicdError
from cicd.host import lock
from cicd.pipeline import verdict_decision as decision
from cicd.pipeline.repair import repair, report_corrupt
from cicd.pipeline.rollback import rollback_locked
from cicd.pipeline.watch_journal import (
    ACTING,
    DONE,
    VERDICT,
    already_decided,
    journaled_verdict,
    load_journal,
    new_journal,
    save_journal,
)
from cicd.reporting import github_deployments
from cicd.transport import failpoints
from cicd.transport.parallel import failures_by_host

if TYPE_CHECKING:
    from cicd.core.state import EnvState
    from cicd.host.target import Target
    from cicd.reporting.notify import Notifier


def act_on_verdict(
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
        arrival = decision.on_arrival(journal, poll)
        if arrival == decision.ALREADY_DECIDED:
            return _already_decided(hosts, journal, notifier, by)
        if poll is not None and arrival == decision.REVALIDATE:
            return _revalidate(hosts, journal, poll, notifier)
        if poll is not None and arrival == decision.RECORD:
            journal.update(
                state=VERDICT,
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
        journal["state"] = DONE
        save_journal(home, journal)
    return str(journal["verdict"])


def _already_decided(
    hosts: list[Target], journal: dict[str, Any], notifier: Notifier, by: str
) -> str:
    """Record in every ledger that a verdict came for a decided watch; say so."""
    for target in hosts:
        target.event(
            "ci",
            sha=str(journal["sha"]),
            outcome="already decided",
            detail=f"{by}: {journal.get('verdict')} by the "
            f"{journal.get('by', 'watcher')}",
        )
    notifier.say(already_decided(hosts[0].env, journal))
    return str(journal["verdict"])


def _revalidate(
    hosts: list[Target], journal: dict[str, Any], poll: Poll, notifier: Notifier
) -> str:
    """Validate a sha whose later run passed where the decided one did not."""
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
    journal.update(verdict=SUCCESS, run=poll.run, detail=poll.detail)
    save_journal(hosts[0], journal)
    return SUCCESS


def _act(hosts: list[Target], journal: dict[str, Any], notifier: Notifier) -> None:
    """Act on a verdict on every host of the environment (their locks are held).

    First the verdict is recorded (``ci`` events, a failed sha marked bad) and the
    journal says so (``acting``); then it is acted on. A watcher killed after that
    — its rollback cut short at any point — is resumed here without recording the
    verdict twice, and a rollback that the repair before this call completed is
    the rollback, not a newer release that "runs now".
    """
    home, sha, verdict = hosts[0], str(journal["sha"]), journaled_verdict(journal)
    states = {target: target.state() for target in hosts}
    running = [target for target in hosts if states[target].current == sha]
    recorded = journal.get("state") == ACTING
    if not recorded:
        _record(hosts, states, sha, verdict, notifier)
        journal["state"] = ACTING
        save_journal(home, journal)
    action = decision.action_for(
        verdict,
        sha,
        list(states.values()),
        recorded=recorded,
        on_inconclusive=home.settings.ci.on_inconclusive,
    )
    if action.report_status:
        # The commit's status; a failed sha that serves goes to failure first.
        github_deployments.reporter(home, notifier).verdict(
            sha,
            verdict.state,
            verdict.detail,
            verdict.url,
            failed=verdict.failed,
            acted=bool(running),
        )
    if action.step == decision.VALIDATE:
        for target in hosts:
            _validate(target, sha, states[target])
    if action.notice:
        # Sent before rolling back: a rollback found done was announced already.
        notifier.send(action.notice)
    if action.step == decision.VALIDATE:
        _retire_warm_slots(running, notifier)
    elif action.step == decision.ROLL_BACK:
        _rollback(running, notifier, action.reason)


def _record(
    hosts: list[Target],
    states: dict[Target, EnvState],
    sha: str,
    verdict: Poll,
    notifier: Notifier,
) -> None:
    """Record a verdict in every host's ledger: its ``ci`` event, a failed sha bad."""
    for target in hosts:
        report_corrupt(target, states[target], notifier)
        now = states[target].current
        outcome, said = decision.recorded_outcome(verdict, sha, now)
        target.event(
            "ci", sha=sha, outcome=outcome, detail=f"{said}\n{verdict.url}".strip()
        )
        if verdict.state == FAILURE and sha not in states[target].bad:
            target.event(
                "marked_bad",
                sha=sha,
                outcome="bad",
                detail=f"CI failed: {verdict.detail}",
            )


def _validate(target: Target, sha: str, state: EnvState) -> None:
    """Record the verdict; move ``validated`` forward only, never back."""
    target.event("validated", sha=sha)
    if decision.moves_validated(state, sha):
        target.set_validated(sha)


def _retire_warm_slots(running: list[Target], notifier: Notifier) -> None:
    """Stop the previous release's warm slot: no rollback will need it any more."""
    for target in running:
        if not target.is_proxied():
            continue
        try:
            stopped = target.slots.retire()
        except CicdError as error:
            stopped = f"the warm slot was not stopped ({error})"
        if stopped:
            notifier.say(f"{target.env}: {stopped}: CI passed")


def _rollback(hosts: list[Target], notifier: Notifier, reason: str) -> None:
    """Roll back every host that runs the sha; a host that cannot is reported."""

    def one(target: Target) -> None:
        try:
            rollback_locked(target, notifier, reason=reason)
        except CicdError as error:
            host = target.runner.host if target.runner.remote else ""
            notifier.send(messages.rollback_impossible(target.env, reason, error, host))

    failures_by_host(one, hosts)
