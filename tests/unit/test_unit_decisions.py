"""The decision core: facts in, steps out, for every situation a plan covers.

:mod:`cicd.core.decisions` is pure, so each case is a table row: the host's facts,
and the step names a deploy or rollback then takes. ``test_plan_is_run`` checks the
run records the same names; here every branch is reached without a process.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from cicd.core.decisions import (
    HostFacts,
    SlotChoice,
    SlotFacts,
    choose_slot,
    deploy_steps,
    doomed_releases,
    is_noop,
    keeps_warm,
    other,
    rollback_point,
    rollback_steps,
)
from cicd.core.state import EnvState

A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)


def state(**changed: object) -> EnvState:
    """An environment's state; settled unless said otherwise."""
    base = EnvState(
        env="preprod",
        current=None,
        previous=None,
        validated=None,
        validated_all=frozenset(),
        bad=frozenset(),
        releases=(),
        lock=None,
        events=(),
        warnings=(),
        settled=True,
    )
    return replace(base, **changed)  # type: ignore[arg-type]


def facts(**changed: object) -> HostFacts:
    """One host's facts, in place by default."""
    base = HostFacts(host="local", state=state(), checks="1 check(s)", keep=3)
    return replace(base, **changed)  # type: ignore[arg-type]


def slots(
    live: str | None = "blue",
    releases: dict[str, str | None] | None = None,
    ready: frozenset[str] = frozenset(),
    configured: bool = True,
) -> SlotFacts:
    return SlotFacts(
        configured, live, live, releases or {"blue": A, "green": None}, ready
    )


def actions(steps: list) -> list[str]:  # type: ignore[type-arg]
    return [step.action for step in steps]


@pytest.mark.parametrize(
    ("slot_facts", "fresh", "expected"),
    [
        # Nothing routed yet: the first slot (or the last switch's choice).
        (slots(live=None, configured=False), False, SlotChoice("start", "blue")),
        (
            SlotFacts(False, None, "green", {"blue": None, "green": None}),
            False,
            SlotChoice("start", "green"),
        ),
        # The idle slot runs the release, ready: switch back to it.
        (
            slots(releases={"blue": A, "green": B}, ready=frozenset({"green"})),
            False,
            SlotChoice("warm", "green"),
        ),
        # ... but not ready (a stale or dead slot): start it again there.
        (
            slots(releases={"blue": A, "green": B}),
            False,
            SlotChoice("start", "green"),
        ),
        # The live slot already serves it, ready: nothing to start.
        (slots(ready=frozenset({"blue"})), False, SlotChoice("serving", "blue")),
        # A fresh restart starts a new instance even so.
        (slots(ready=frozenset({"blue"})), True, SlotChoice("start", "green")),
    ],
)
def test_the_slot_a_release_goes_live_on(
    slot_facts: SlotFacts, fresh: bool, expected: SlotChoice
) -> None:
    sha = A if expected.how == "serving" or fresh else B
    assert choose_slot(slot_facts, sha, fresh=fresh) == expected


def test_other_slot() -> None:
    assert (other("blue"), other("green")) == ("green", "blue")


def test_first_deploy_in_place() -> None:
    assert actions(deploy_steps(facts(source="/repo"), A)) == [
        "lock",
        "export",
        "switch-current",
        "restart",
        "readiness",
        "record",
    ]


def test_an_unfinished_switch_is_settled_first_and_a_kept_release_reused() -> None:
    here = facts(
        state=state(current=A, releases=(B, A)), unfinished="a → b", exported=True
    )
    steps = deploy_steps(here, B)
    assert actions(steps)[:3] == ["lock", "repair", "reuse"]
    assert "a → b" in steps[1].text


def test_nothing_to_do_only_when_settled_and_answering() -> None:
    serving = facts(state=state(current=A, releases=(A,)), serving_ready=True)
    assert actions(deploy_steps(serving, A)) == ["lock", "noop"]
    assert is_noop(serving, A) and not is_noop(serving, B)
    unsettled = replace(serving, state=state(current=A, settled=False))
    assert not is_noop(unsettled, A)
    assert not is_noop(replace(serving, serving_ready=False), A)


def test_a_held_lock_is_named_in_the_plan() -> None:
    held = facts(state=state(lock={"actor": "ana", "why": "deploy", "host": "x"}))
    assert "HELD by ana" in deploy_steps(held, A)[0].text


def test_production_backs_up_and_the_swarm_builds_an_image_and_rolls_out() -> None:
    swarm = facts(swarm=True, persistent=("shared",))
    steps = deploy_steps(swarm, A, backup=True)
    assert actions(steps) == [
        "lock",
        "export",
        "image",
        "backup",
        "switch-current",
        "roll-out",
        "readiness",
        "record",
    ]
    assert "back up shared into backups/" in steps[3].text


def test_blue_green_deploy_keeps_the_previous_release_warm() -> None:
    here = facts(
        state=state(current=A, releases=(A,)),
        slots=slots(),
        warm=600,
        ports={"blue": 8501, "green": 8502},
    )
    steps = deploy_steps(here, B)
    assert actions(steps) == [
        "lock",
        "export",
        "start-slot",
        "readiness",
        "switch",
        "keep-warm",
        "record",
    ]
    assert "idle green slot (port 8502)" in steps[2].text
    assert "switch haproxy blue → green" == steps[4].text
    no_window = deploy_steps(replace(here, warm=0), B)
    assert actions(no_window)[5] == "stop-previous"


def test_the_first_switch_behind_haproxy_says_the_app_in_place_gives_way() -> None:
    here = facts(slots=slots(live=None, configured=False))
    steps = deploy_steps(here, A)
    switch = next(step for step in steps if step.action == "switch")
    assert "the app run in place stops" in switch.text
    assert "keep-warm" not in actions(steps)


def test_a_blue_green_rollback_to_the_warm_release_is_a_switch() -> None:
    here = facts(
        state=state(current=B, previous=A, releases=(B, A)),
        slots=slots(
            live="green", releases={"blue": A, "green": B}, ready=frozenset({"blue"})
        ),
        warm=600,
    )
    assert actions(rollback_steps(here, A)) == [
        "lock",
        "switch-back",
        "switch",
        "stop-previous",
        "mark-bad",
        "record",
    ]
    # Already bad (a CI failure marked it before rolling back): not marked again.
    bad = replace(here, state=replace(here.state, bad=frozenset({B})))
    assert "mark-bad" not in actions(rollback_steps(bad, A))


def test_a_rollback_to_what_already_serves_starts_nothing() -> None:
    here = facts(
        state=state(current=A, releases=(A,)),
        slots=slots(ready=frozenset({"blue"})),
    )
    assert actions(rollback_steps(here, A)) == ["lock", "already-serving", "record"]


def test_the_rollback_point_of_an_unsettled_switch_is_what_ran_before() -> None:
    assert rollback_point(state(current=B, previous=A)) == B
    assert rollback_point(state(current=B, previous=A, settled=False)) == A


def test_pruning_keeps_the_newest_and_those_in_use() -> None:
    after = state(current=D, previous=C, validated=A, releases=(D, C, B, A))
    assert doomed_releases(after, keep=2) == [B]
    assert doomed_releases(after, keep=4) == []
    planned = deploy_steps(facts(state=state(current=C, releases=(C, B, A)), keep=3), D)
    assert planned[-1].action == "prune" and planned[-1].text.endswith("aaaaaaa")
    kept = deploy_steps(
        facts(state=state(current=C, releases=(C, B, A)), keep=3), D, validated=True
    )
    assert kept[-1].action == "prune"


def test_only_a_deploy_with_a_window_keeps_the_previous_warm() -> None:
    assert keeps_warm("deploy", A, 60)
    assert not keeps_warm("deploy", None, 60)
    assert not keeps_warm("deploy", A, 0)
    assert not keeps_warm("rollback", A, 60)


def test_a_deploy_smokes_the_pages_before_users_get_them_a_rollback_does_not() -> None:
    in_place = facts(smoke_pages=3, max_load=10)
    steps = deploy_steps(in_place, A)
    assert actions(steps)[-3:] == ["readiness", "smoke", "record"]
    assert "3 page(s)" in steps[-2].text and "back to the previous" in steps[-2].text
    blue_green = facts(
        state=state(current=A, releases=(A,)), slots=slots(), smoke_pages=3
    )
    assert actions(deploy_steps(blue_green, B))[2:6] == [
        "start-slot",
        "readiness",
        "smoke",
        "switch",
    ]
    rolled = facts(state=state(current=B, releases=(B, A)), smoke_pages=3)
    assert "smoke" not in actions(rollback_steps(rolled, A))


def test_a_swarm_s_single_service_is_adopted_as_blue_before_green_starts() -> None:
    adopted = SlotFacts(
        configured=True,
        live="blue",
        intended=None,
        releases={"blue": A, "green": None},
        adopt=A,
    )
    assert choose_slot(adopted, B) == SlotChoice("start", "green")
    here = facts(
        state=state(current=A, releases=(A,)),
        swarm=True,
        slots=adopted,
        ports={"blue": 18500, "green": 28500},
    )
    steps = deploy_steps(here, B)
    assert actions(steps) == [
        "lock",
        "export",
        "image",
        "adopt",
        "start-slot",
        "readiness",
        "switch",
        "stop-previous",
        "record",
    ]
    assert steps[3].text.startswith(
        "the swarm's single service (aaaaaaa, on the blue slot's port) becomes "
        "the blue slot as it runs"
    )
    assert "idle green slot (port 28500)" in steps[4].text
    assert "switch haproxy blue → green" == steps[6].text
    # Nothing to adopt (a swarm already blue/green): no such step.
    assert "adopt" not in actions(deploy_steps(replace(here, slots=slots()), B))
