"""The state replay, the rollback choice and the verdict rules, with no process.

``state.replay`` is a pure function of the ledger and of what the host's files say;
these tests build ledgers event by event, as deploys, rollbacks and verdicts write
them, and check what ``status``, ``rollback`` and the watcher would conclude.
"""

from __future__ import annotations

import pytest

from cicd.core.errors import CicdError, UsageError
from cicd.core.ledger import Event, EventName, parse
from cicd.pipeline.rollback import choose
from cicd.core.state import release_order, replay

A, B, C = "a" * 40, "b" * 40, "c" * 40


def ev(name: EventName, sha: str | None = None, **fields: object) -> Event:
    """One preprod event."""
    return Event(event=name, env="preprod", sha=sha, **fields)  # type: ignore[arg-type]


def deployed(sha: str, previous: str | None = None) -> list[Event]:
    """The events of a deploy of ``sha`` that became ready."""
    return [
        ev("deploy", sha, previous=previous, outcome="started"),
        ev("export", sha),
        ev("switch", sha, previous=previous),
        ev("restart", sha),
        ev("health", sha),
        ev("deploy", sha, previous=previous),
    ]


def test_an_empty_ledger_is_a_never_deployed_environment() -> None:
    state = replay("preprod", [])
    assert (state.current, state.previous, state.validated) == (None, None, None)
    assert state.releases == () and not state.settled and not state.deployed(A)


def test_previous_is_what_ran_before_the_current_switch() -> None:
    events = deployed(A) + deployed(B, previous=A)
    state = replay("preprod", events, current=B, releases=[A, B])
    assert state.previous == A and state.settled
    assert state.releases == (B, A)
    assert state.deployed(A) and not state.deployed(C)


def test_a_switch_without_a_passing_readiness_is_not_settled() -> None:
    # A deploy killed between its switch and its readiness check.
    events = deployed(A) + [
        ev("deploy", B, previous=A, outcome="started"),
        ev("switch", B, previous=A),
    ]
    state = replay("preprod", events, current=B, releases=[A, B])
    assert not state.settled and state.previous == A


def test_the_latest_verdict_wins_and_validated_accumulates() -> None:
    events = deployed(A) + [
        ev("validated", A),
        ev("marked_bad", A, outcome="bad"),
    ]
    state = replay("preprod", events, current=A, validated=A)
    assert A in state.bad and not state.is_good(A)
    # A re-run that passed validates it again.
    state = replay("preprod", [*events, ev("validated", A)], current=A, validated=A)
    assert A not in state.bad and state.is_good(A)


def test_a_rollback_does_not_make_a_release_newer() -> None:
    events = deployed(A) + deployed(B, previous=A) + [ev("switch", A, previous=B)]
    assert release_order(events)[B] > release_order(events)[A]
    state = replay("preprod", events, current=A, releases=[B, A])
    assert state.releases == (B, A) and state.previous == B


def test_releases_unknown_to_the_ledger_come_last_in_name_order() -> None:
    state = replay("preprod", deployed(C), current=C, releases=[B, A, C])
    assert state.releases == (C, A, B)


def test_corrupt_and_unknown_ledger_lines_are_warnings_not_events() -> None:
    text = "\n".join(
        [
            deployed(A)[0].to_json(),
            "{not json",
            '{"event": "deplyo", "sha": "x"}',
            "[1, 2]",
            deployed(A)[-1].to_json(),
        ]
    )
    events, warnings = parse(text)
    assert [e.event for e in events] == ["deploy", "deploy"]
    assert len(warnings) == 3
    assert "ledger line 3 skipped" in warnings[1] and "unknown event" in warnings[1]
    state = replay("preprod", events, warnings=warnings)
    assert state.warnings == tuple(warnings)


def test_rollback_picks_the_newest_validated_release_that_is_not_bad() -> None:
    events = (
        deployed(A)
        + [ev("validated", A)]
        + deployed(B, previous=A)
        + [ev("validated", B), ev("marked_bad", B, outcome="bad")]
        + deployed(C, previous=B)
    )
    state = replay("preprod", events, current=C, validated=A, releases=[A, B, C])
    assert choose(state, None) == A
    assert choose(state, B[:7]) == B  # a person may name a bad one on purpose


def test_rollback_choice_refuses_unknown_ambiguous_and_missing() -> None:
    events = deployed(A) + deployed(A[:6] + "f" * 34)
    other = A[:6] + "f" * 34
    state = replay("preprod", events, current=A, releases=[A, other])
    with pytest.raises(UsageError, match="is ambiguous"):
        choose(state, A[:6])
    with pytest.raises(UsageError, match="is not a kept release"):
        choose(state, "c" * 7)
    with pytest.raises(CicdError, match="no kept release is CI-validated"):
        choose(state, None)


def test_which_ci_answers_end_a_watch() -> None:
    from cicd.ci import FAILURE, INCONCLUSIVE, PENDING, SUCCESS, SUPERSEDED, Poll

    assert Poll(SUCCESS).final and Poll(FAILURE).final and Poll(SUPERSEDED).final
    assert not Poll(PENDING).final
    # Trouble that may pass (a 401, a 5xx) keeps the watch going; a completed run
    # that is neither a pass nor a failure ends it.
    assert not Poll(INCONCLUSIVE, "GitHub answered 502").final
    assert Poll(INCONCLUSIVE, "run 3 completed: skipped", settled=True).final


def test_only_a_later_passing_run_overturns_a_decided_verdict() -> None:
    from cicd.ci import FAILURE, SUCCESS, Poll
    from cicd.pipeline.verdict_decision import rerun_passed as _rerun_passed

    decided = {"verdict": FAILURE, "run": "41/1"}
    assert _rerun_passed(decided, Poll(SUCCESS, run="41/2"))
    assert not _rerun_passed(decided, Poll(SUCCESS, run="41/1"))  # the same run
    assert not _rerun_passed(decided, Poll(FAILURE, run="41/2"))
    assert not _rerun_passed(
        {"verdict": SUCCESS, "run": "1/1"}, Poll(SUCCESS, run="2/1")
    )
