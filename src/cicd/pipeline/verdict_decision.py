"""What a CI verdict calls for: pure decisions, nothing read or written.

The watcher and the ``workflow_run`` verdict job both hand their verdict to
:func:`cicd.pipeline.verdict_actions.act_on_verdict`, which takes the locks, reads
the journal and the hosts' states, and does what these functions decide:

- :func:`on_arrival`: given the watch's journal and the verdict that arrives,
  record it, finish acting on the one journaled already, revalidate (a later run
  passed), or nothing (decided already);
- :func:`action_for`: given the recorded verdict and what the hosts run now,
  validate, roll back or do nothing, why, and the message that says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cicd.ci import FAILURE, INCONCLUSIVE, SUCCESS, SUPERSEDED, VERDICTS, Poll
from cicd.core import messages
from cicd.core.messages import Message, short
from cicd.core.state import EnvState, release_order
from cicd.pipeline.watch_journal import ACTING, DONE

#: What an arriving verdict does to a watch (:func:`on_arrival`).
RECORD = "record"
FINISH = "finish"
REVALIDATE = "revalidate"
ALREADY_DECIDED = "already decided"


def on_arrival(journal: Mapping[str, Any], poll: Poll | None) -> str:
    """What a verdict arriving at a watch calls for, given the watch's journal.

    Args:
        journal: The watch's journal, read under the lock.
        poll: The verdict that arrives; None to finish acting on the journaled one.

    Returns:
        :data:`RECORD` (a new verdict: record it, then act on it), :data:`FINISH`
        (act on the verdict journaled already: a resumed watch, or one killed while
        acting, whose verdict is never recorded twice), :data:`REVALIDATE` (a later
        run passed where the decided one did not) or :data:`ALREADY_DECIDED`.
    """
    if journal.get("state") == DONE and not (poll and reopens(journal, poll)):
        if poll and rerun_passed(journal, poll):
            return REVALIDATE
        return ALREADY_DECIDED
    if poll is None or journal.get("state") == ACTING:
        return FINISH
    return RECORD


def reopens(journal: Mapping[str, Any], poll: Poll) -> bool:
    """An inconclusive decision gives way to a conclusive verdict.

    Inconclusive (a deadline, refused tokens) decided nothing: a real verdict
    arriving later is acted on.
    """
    return journal.get("verdict") == INCONCLUSIVE and poll.state in (
        SUCCESS,
        FAILURE,
        SUPERSEDED,
    )


def rerun_passed(journal: Mapping[str, Any], poll: Poll) -> bool:
    """A later run (or attempt) passed where the decided one did not."""
    return (
        poll.state == SUCCESS
        and journal.get("verdict") in (FAILURE, INCONCLUSIVE)
        and bool(poll.run)
        and poll.run != journal.get("run")
    )


#: What a recorded verdict does to the environment (:attr:`VerdictAction.step`).
VALIDATE = "validate"
ROLL_BACK = "roll back"
NOTHING = "nothing"


@dataclass(frozen=True)
class VerdictAction:
    """What a recorded CI verdict calls for on the environment's hosts.

    Attributes:
        step: :data:`VALIDATE` (every host; the warm slot of those that run the sha
            is no longer needed), :data:`ROLL_BACK` (the hosts that run the sha)
            or :data:`NOTHING`.
        reason: Why; for a rollback, its reason as the rollback's messages say it.
        notice: The message that tells the verdict; None when the rollback tells
            it, or when the rollback it caused told it already.
        report_status: Report the verdict as the commit's status; not when the
            rollback it caused is done (that rollback reported it).
    """

    step: str
    reason: str
    notice: Message | None
    report_status: bool


def action_for(
    verdict: Poll,
    sha: str,
    states: Sequence[EnvState],
    *,
    recorded: bool,
    on_inconclusive: str,
) -> VerdictAction:
    """What a recorded CI verdict calls for, given what the hosts run now.

    Args:
        verdict: The verdict (its state, detail, failed jobs and link).
        sha: The watched sha.
        states: Every host's state, the first host's first, read before the
            verdict was recorded this time.
        recorded: The verdict was recorded by an earlier run, killed while acting
            on it (its rollback may be done: it is not done twice).
        on_inconclusive: ``ci.on_inconclusive``: ``rollback`` or keep the deploy.
    """
    env, now, url = states[0].env, states[0].current, verdict.url
    runs = any(state.current == sha for state in states)
    rolled = recorded and any(
        state.current != sha and rolled_back_after_verdict(state, sha)
        for state in states
    )
    told = not rolled
    if verdict.state == SUCCESS:
        passed = messages.ci_passed(env, sha, url)
        return VerdictAction(VALIDATE, "CI passed", passed, told)
    if verdict.state == SUPERSEDED:
        superseded = messages.ci_superseded(env, sha, verdict.detail, url)
        return VerdictAction(
            NOTHING, "a newer push superseded its run", superseded, told
        )
    if verdict.state == FAILURE:
        if runs:
            failed = messages.ci_failed_reason(sha, verdict.failed, url)
            return VerdictAction(ROLL_BACK, failed, None, told)
        if rolled:
            return VerdictAction(NOTHING, "the rollback it caused is done", None, told)
        marked = messages.ci_failed_not_running(env, sha, verdict.failed, url, now)
        return VerdictAction(NOTHING, f"{short(now)} runs now", marked, told)
    rolling = on_inconclusive == "rollback" and runs
    inconclusive = messages.ci_inconclusive(env, sha, verdict.detail, url, rolling)
    notice = inconclusive if told else None
    if rolling:
        reason = f"CI inconclusive for {short(sha)}"
        return VerdictAction(ROLL_BACK, reason, notice, told)
    return VerdictAction(NOTHING, "the deploy is kept", notice, told)


def rolled_back_after_verdict(state: EnvState, sha: str) -> bool:
    """Whether a rollback away from ``sha`` followed its recorded CI verdict.

    By the watcher before it was killed, or by the repair that completed its switch
    (this run's, or another command's).
    """
    for event in reversed(state.events):
        if event.event == "ci" and event.sha == sha and event.outcome in VERDICTS:
            return False
        if event.event == "rollback" and event.previous == sha:
            return event.outcome == "ok"
    return False


def recorded_outcome(verdict: Poll, sha: str, now: str | None) -> tuple[str, str]:
    """The outcome and detail of the ``ci`` event a host's ledger records.

    A failure of a sha a newer deploy replaced is recorded as superseded: nothing
    there is touched.
    """
    if verdict.state == FAILURE and now and now != sha:
        return SUPERSEDED, f"{verdict.detail}; superseded by {short(now)}"
    return verdict.state, verdict.detail


def moves_validated(state: EnvState, sha: str) -> bool:
    """Whether validating ``sha`` moves ``validated`` forward (never back)."""
    order = release_order(state.events)
    current = state.validated
    return current is None or order.get(sha, -1) >= order.get(current, -1)
