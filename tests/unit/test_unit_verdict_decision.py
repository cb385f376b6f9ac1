"""What a CI verdict calls for, decided with no lock, journal, host or process.

:mod:`cicd.pipeline.verdict_decision` is pure: these tests give it a watch's
journal, a verdict and what the hosts run now, and check what it decides for each
case the watcher and the verdict job meet.
"""

from __future__ import annotations

from cicd.ci import FAILURE, INCONCLUSIVE, SUCCESS, SUPERSEDED, Poll
from cicd.core.ledger import Event, EventName
from cicd.core.state import EnvState
from cicd.pipeline import verdict_decision as decision
from cicd.pipeline.verdict_decision import (
    ALREADY_DECIDED,
    FINISH,
    NOTHING,
    RECORD,
    REVALIDATE,
    ROLL_BACK,
    VALIDATE,
    VerdictAction,
)

OLD, SHA, NEW = "a" * 40, "b" * 40, "c" * 40


def ev(name: EventName, sha: str | None = None, **fields: object) -> Event:
    """One preprod event."""
    return Event(event=name, env="preprod", sha=sha, **fields)  # type: ignore[arg-type]


def host(current: str | None, *events: Event, validated: str | None = None) -> EnvState:
    """A host's state: what runs there, its ledger and its ``validated`` file."""
    return EnvState(
        env="preprod",
        current=current,
        previous=None,
        validated=validated,
        validated_all=frozenset(),
        bad=frozenset(),
        releases=(),
        lock=None,
        events=events,
        warnings=(),
    )


def decided(verdict: str, run: str = "41/1") -> dict[str, object]:
    """The journal of a watch whose verdict was decided and acted on."""
    return {"sha": SHA, "state": "done", "verdict": verdict, "run": run}


def action(
    verdict: Poll,
    *states: EnvState,
    recorded: bool = False,
    on_inconclusive: str = "keep",
) -> VerdictAction:
    """What ``verdict`` for SHA calls for on hosts in ``states``."""
    return decision.action_for(
        verdict,
        SHA,
        states,
        recorded=recorded,
        on_inconclusive=on_inconclusive,
    )


# on_arrival: what a verdict arriving at a watch's journal does.


def test_a_first_verdict_is_recorded_then_acted_on() -> None:
    watching = {"sha": SHA, "state": "watching"}
    assert decision.on_arrival(watching, Poll(FAILURE)) == RECORD
    assert decision.on_arrival({**watching, "state": "verdict"}, Poll(SUCCESS)) == (
        RECORD
    )


def test_a_resumed_watch_finishes_acting_on_its_journaled_verdict() -> None:
    journaled = {"sha": SHA, "state": "verdict", "verdict": FAILURE}
    assert decision.on_arrival(journaled, None) == FINISH


def test_a_watch_killed_while_acting_never_records_its_verdict_twice() -> None:
    acting = {"sha": SHA, "state": "acting", "verdict": FAILURE}
    assert decision.on_arrival(acting, None) == FINISH
    assert decision.on_arrival(acting, Poll(FAILURE, run="41/1")) == FINISH


def test_a_second_verdict_for_a_decided_watch_changes_nothing() -> None:
    assert decision.on_arrival(decided(FAILURE), Poll(FAILURE)) == ALREADY_DECIDED
    assert decision.on_arrival(decided(SUCCESS), None) == ALREADY_DECIDED
    same_run = Poll(SUCCESS, run="41/1")
    assert decision.on_arrival(decided(FAILURE), same_run) == ALREADY_DECIDED
    assert decision.on_arrival(decided(SUCCESS), Poll(SUCCESS, run="41/2")) == (
        ALREADY_DECIDED
    )


def test_a_later_passing_run_revalidates_a_failed_sha() -> None:
    assert decision.on_arrival(decided(FAILURE), Poll(SUCCESS, run="41/2")) == (
        REVALIDATE
    )


def test_an_inconclusive_decision_gives_way_to_a_conclusive_verdict() -> None:
    for state in (SUCCESS, FAILURE, SUPERSEDED):
        assert decision.on_arrival(decided(INCONCLUSIVE), Poll(state)) == RECORD
    assert decision.on_arrival(decided(INCONCLUSIVE), Poll(INCONCLUSIVE)) == (
        ALREADY_DECIDED
    )


def test_only_a_later_passing_run_overturns_a_decided_verdict() -> None:
    failed = {"verdict": FAILURE, "run": "41/1"}
    assert decision.rerun_passed(failed, Poll(SUCCESS, run="41/2"))
    assert not decision.rerun_passed(failed, Poll(SUCCESS, run="41/1"))
    assert not decision.rerun_passed(failed, Poll(SUCCESS))  # no run to compare
    assert not decision.rerun_passed(failed, Poll(FAILURE, run="41/2"))
    passed = {"verdict": SUCCESS, "run": "1/1"}
    assert not decision.rerun_passed(passed, Poll(SUCCESS, run="2/1"))


# action_for: what a recorded verdict does to the environment.


def test_a_pass_validates_and_says_so() -> None:
    done = action(Poll(SUCCESS, url="https://ci/run/8"), host(SHA))
    assert (done.step, done.reason, done.report_status) == (VALIDATE, "CI passed", True)
    assert done.notice and "https://ci/run/8" in done.notice
    # Validated though it no longer runs (a newer deploy replaced it).
    assert action(Poll(SUCCESS), host(NEW)).step == VALIDATE


def test_a_superseded_run_is_told_and_changes_nothing() -> None:
    done = action(Poll(SUPERSEDED, "run 9 cancelled"), host(SHA))
    assert done.step == NOTHING and "run 9 cancelled" in str(done.notice)


def test_a_failure_rolls_back_the_hosts_that_run_the_sha() -> None:
    failed = Poll(FAILURE, url="https://ci/run/7", failed=("tests › pytest",))
    done = action(failed, host(SHA), host(NEW))
    assert done.step == ROLL_BACK and done.report_status
    # The rollback's own messages tell it, with this reason.
    assert done.notice is None
    assert done.reason.startswith(f"CI failed for {SHA[:7]}")
    assert "tests › pytest" in done.reason and "https://ci/run/7" in done.reason


def test_a_failure_of_a_sha_that_no_longer_runs_is_only_told() -> None:
    done = action(Poll(FAILURE), host(NEW))
    assert (done.step, done.reason, done.report_status) == (
        NOTHING,
        f"{NEW[:7]} runs now",
        True,
    )
    assert f"{NEW[:7]} runs now: nothing rolled back" in str(done.notice)


def test_a_rollback_done_before_a_kill_is_neither_redone_nor_retold() -> None:
    ledger = (ev("ci", SHA, outcome=FAILURE), ev("rollback", OLD, previous=SHA))
    done = action(Poll(FAILURE), host(OLD, *ledger), recorded=True)
    assert (done.step, done.notice, done.report_status) == (NOTHING, None, False)
    # Recorded by this run (not a resumed one): the rollback was another's.
    fresh = action(Poll(FAILURE), host(OLD, *ledger))
    assert fresh.notice and fresh.report_status


def test_a_rollback_before_the_verdict_or_a_failed_one_is_not_the_verdicts() -> None:
    earlier = (ev("rollback", OLD, previous=SHA), ev("ci", SHA, outcome=FAILURE))
    assert action(Poll(FAILURE), host(OLD, *earlier), recorded=True).report_status
    broken = (
        ev("ci", SHA, outcome=FAILURE),
        ev("rollback", OLD, previous=SHA, outcome="failed"),
    )
    assert action(Poll(FAILURE), host(OLD, *broken), recorded=True).notice


def test_an_inconclusive_verdict_keeps_the_deploy_unless_configured() -> None:
    kept = action(Poll(INCONCLUSIVE, "no verdict by the deadline"), host(SHA))
    assert kept.step == NOTHING
    assert "the deploy is kept" in str(kept.notice)
    rolled = action(Poll(INCONCLUSIVE), host(SHA), on_inconclusive="rollback")
    assert rolled.step == ROLL_BACK
    assert rolled.reason == f"CI inconclusive for {SHA[:7]}"
    # Said before the rollback starts.
    assert "rolling back (ci.on_inconclusive = rollback)" in str(rolled.notice)
    # Nothing to roll back where the sha no longer runs.
    gone = action(Poll(INCONCLUSIVE), host(NEW), on_inconclusive="rollback")
    assert gone.step == NOTHING


def test_an_inconclusive_rollback_done_before_a_kill_is_not_retold() -> None:
    ledger = (ev("ci", SHA, outcome=INCONCLUSIVE), ev("rollback", OLD, previous=SHA))
    done = action(
        Poll(INCONCLUSIVE),
        host(OLD, *ledger),
        recorded=True,
        on_inconclusive="rollback",
    )
    assert (done.step, done.notice, done.report_status) == (NOTHING, None, False)


# The ledger's side: what is recorded, and ``validated`` only moving forward.


def test_a_failure_where_a_newer_deploy_runs_is_recorded_as_superseded() -> None:
    failed = Poll(FAILURE, "run 7 failure")
    assert decision.recorded_outcome(failed, SHA, NEW) == (
        SUPERSEDED,
        f"run 7 failure; superseded by {NEW[:7]}",
    )
    assert decision.recorded_outcome(failed, SHA, SHA) == (FAILURE, "run 7 failure")
    assert decision.recorded_outcome(failed, SHA, None) == (FAILURE, "run 7 failure")
    passed = Poll(SUCCESS, "run 8 success")
    assert decision.recorded_outcome(passed, SHA, NEW) == (SUCCESS, "run 8 success")


def test_validated_moves_forward_only() -> None:
    ledger = (ev("deploy", OLD), ev("deploy", SHA), ev("deploy", NEW))
    assert decision.moves_validated(host(SHA, *ledger), SHA)
    assert decision.moves_validated(host(SHA, *ledger, validated=OLD), SHA)
    assert decision.moves_validated(host(SHA, *ledger, validated=SHA), SHA)
    assert not decision.moves_validated(host(NEW, *ledger, validated=NEW), SHA)
