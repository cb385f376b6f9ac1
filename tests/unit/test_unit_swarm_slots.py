"""Unit tests of the swarm's blue/green slots, on the fake docker of test_unit_swarm.

Behind haproxy each slot is a stack of its own (``PROJECT-blue``, ``PROJECT-green``)
on the slot's port; starting a slot removes its stack, waits until its containers
are gone from every engine (their port is free), and deploys it anew. A swarm run
as one service before blue/green keeps serving: the blue slot adopts that service
while it listens on blue's port. The tests assert what a user sees: which stacks
are removed and deployed in which order, on which port, what status says, and the
errors.
"""

from __future__ import annotations

from typing import Any

import pytest

from cicd.core.decisions import choose_slot
from cicd.core.errors import CicdError
from cicd.host.slots import Slots
from cicd.host.target import Target
from cicd.pipeline.status import format_swarm, swarm_status
from cicd.transport.runner import Runner
from tests.unit.test_unit_runtime import FakeContext
from tests.unit.test_unit_swarm import (
    MANAGER,
    OLD,
    PROJECT,
    SHA,
    WORKER,
    FakeDocker,
    quick_polls,
    runtime,
    settings,
)

__all__ = ["quick_polls"]  # the autouse fixture, shared with test_unit_swarm

BLUE, GREEN = f"{PROJECT}-blue", f"{PROJECT}-green"
NODE3 = "unix:///swarm/node3.sock"
NEW_IMAGE, OLD_IMAGE = f"mangetamain-app:{SHA}", f"mangetamain-app:{OLD}"


def slot_fake(**changed: Any) -> FakeDocker:
    """A fake swarm whose slots' links name SHA (``slots/blue`` → ``../releases``)."""
    fake = FakeDocker(**changed)
    fake.links.update(blue=f"../releases/{SHA}", green=f"../releases/{SHA}")
    return fake


# -- a slot's stack ---------------------------------------------------------------


def test_each_slot_is_a_stack_of_its_own_on_the_slot_s_port(tmp_path: Any) -> None:
    fake = slot_fake()
    blue = runtime(tmp_path, fake, "blue")
    green = runtime(tmp_path, fake, "green")
    assert (blue.stack, blue.service, blue.port) == (BLUE, f"{BLUE}_app", 18500)
    assert (green.stack, green.service, green.port) == (GREEN, f"{GREEN}_app", 28500)
    green.restart()
    assert list(fake.stacks) == [GREEN]
    assert fake.deploys[-1]["CICD_PORT"] == "28500"
    assert green.status() == "RUNNING" and blue.status() == "DOWN"
    assert green.describe()["slot"] == "green"
    assert green.describe()["service"] == f"{GREEN}_app"


def test_starting_a_slot_removes_its_stack_waits_for_its_containers_then_deploys(
    tmp_path: Any,
) -> None:
    fake = slot_fake(linger={MANAGER: 1, WORKER: 2})
    fake.run(BLUE, OLD_IMAGE, 18500)
    fake.run(GREEN, OLD_IMAGE, 28500)
    blue = runtime(tmp_path, fake, "blue")
    blue.restart()
    rm = fake.events.index(f"rm {BLUE}")
    deploy = fake.events.index(f"deploy {BLUE} (old containers on 0 engine(s))")
    waited = fake.events[rm + 1 : deploy]
    # Its old containers shown while they stop (the worker's for two looks):
    assert waited.count(f"ps {BLUE} {MANAGER}: one") == 1
    assert waited.count(f"ps {BLUE} {WORKER}: one") == 2
    assert waited[-4:] == [
        f"ps {BLUE} {MANAGER}: none",
        f"ps {BLUE} {WORKER}: none",
        # No single service of before: whatever is left of one removed a moment
        # ago (adopted, then retired) could still hold the port.
        f"ps {PROJECT} {MANAGER}: none",
        f"ps {PROJECT} {WORKER}: none",
    ]
    assert fake.deploys[-1]["CICD_PORT"] == "18500"
    assert fake.deploys[-1]["CICD_IMAGE"] == NEW_IMAGE
    assert set(fake.stacks[BLUE].tasks.values()) == {NEW_IMAGE}
    assert fake.stacks[BLUE].update is None  # deployed anew: no rolling update
    assert set(fake.stacks[GREEN].tasks.values()) == {OLD_IMAGE}  # left alone
    assert blue.serving() == blue.paths.release(SHA)


def test_start_on_a_slot_deploys_only_when_its_image_does_not_run(
    tmp_path: Any,
) -> None:
    fake = slot_fake()
    fake.images[MANAGER].add(NEW_IMAGE)
    fake.images[WORKER].add(NEW_IMAGE)
    fake.run(BLUE, NEW_IMAGE, 18500)
    runtime(tmp_path, fake, "blue").start()
    assert fake.deploys == [] and f"rm {BLUE}" not in fake.events
    fake.run(GREEN, OLD_IMAGE, 28500)
    runtime(tmp_path, fake, "green").start()
    assert [d["CICD_PORT"] for d in fake.deploys] == ["28500"]
    assert set(fake.stacks[GREEN].tasks.values()) == {NEW_IMAGE}


def test_stop_times_out_naming_the_engine_whose_containers_never_stop(
    tmp_path: Any,
) -> None:
    fake = slot_fake(linger={"": None, WORKER: 1})
    fake.run(BLUE, OLD_IMAGE, 18500)
    # The manager is docker's default socket here: it has no DOCKER_HOST.
    blue = runtime(tmp_path, fake, "blue", docker_host="", update_timeout=0.2)
    with pytest.raises(CicdError) as caught:
        blue.stop()
    assert str(caught.value) == (
        f"tasks still run after 0.2s (stack {BLUE} on the manager): stop them, or "
        "raise runtime.update_timeout"
    )
    fake = slot_fake(linger={MANAGER: 0, WORKER: None})
    fake.run(GREEN, OLD_IMAGE, 28500)
    green = runtime(tmp_path, fake, "green", update_timeout=0.2)
    with pytest.raises(CicdError, match=f"stack {GREEN} on {WORKER}\\)"):
        green.restart()
    assert not any(e.startswith("deploy") for e in fake.events)  # never deployed


# -- the single service of before ---------------------------------------------------


def test_the_blue_slot_adopts_the_single_service_on_its_port(tmp_path: Any) -> None:
    fake = slot_fake()
    fake.run(PROJECT, OLD_IMAGE, 18500)  # deployed before blue/green, behind haproxy
    blue = runtime(tmp_path, fake, "blue")
    green = runtime(tmp_path, fake, "green")
    assert blue.adopts() and not green.adopts()
    assert blue.in_use() == f"{PROJECT}_app" and green.in_use() == f"{GREEN}_app"
    assert blue.status() == "RUNNING" and green.status() == "DOWN"
    assert blue.serving() == blue.paths.release(OLD)
    assert blue.describe()["service"] == f"{PROJECT}_app"
    assert f"serving {PROJECT}_app" in blue.logs(5)
    assert blue.follow(5).argv[-1] == f"{PROJECT}_app"
    # Its own service, once it exists, is the instance again:
    fake.run(BLUE, NEW_IMAGE, 18500)
    assert blue.in_use() == f"{BLUE}_app"
    assert blue.serving() == blue.paths.release(SHA)


def test_a_single_service_on_another_port_is_not_adopted(tmp_path: Any) -> None:
    fake = slot_fake()
    fake.run(PROJECT, OLD_IMAGE, 8500)  # run in place, on the public port
    blue = runtime(tmp_path, fake, "blue")
    assert not blue.adopts()
    assert blue.in_use() == f"{BLUE}_app" and blue.status() == "DOWN"
    assert not runtime(tmp_path, fake).adopts()  # in place: nothing to adopt
    blue.stop()
    assert list(fake.stacks) == [PROJECT]  # not the slot's to remove


def test_stopping_an_adopting_slot_removes_both_stacks(tmp_path: Any) -> None:
    fake = slot_fake()
    fake.run(PROJECT, OLD_IMAGE, 18500)
    blue = runtime(tmp_path, fake, "blue")
    blue.stop()
    assert f"rm {BLUE}" in fake.events and f"rm {PROJECT}" in fake.events
    assert fake.stacks == {}
    # It waited for the single stack's containers too, on every engine:
    assert f"ps {PROJECT} {WORKER}: one" in fake.events
    assert all(
        f"ps {stack} {engine}: none" in fake.events
        for stack in (BLUE, PROJECT)
        for engine in (MANAGER, WORKER)
    )
    assert not blue.adopts() and blue.status() == "DOWN"


def test_restarting_an_adopting_slot_replaces_the_single_service(
    tmp_path: Any,
) -> None:
    fake = slot_fake()
    fake.run(PROJECT, OLD_IMAGE, 18500)
    blue = runtime(tmp_path, fake, "blue")
    blue.restart()
    assert list(fake.stacks) == [BLUE]
    deploy = fake.events.index(f"deploy {BLUE} (old containers on 0 engine(s))")
    assert fake.events.index(f"rm {PROJECT}") < deploy
    assert blue.in_use() == f"{BLUE}_app" and not blue.adopts()
    assert blue.serving() == blue.paths.release(SHA)


# -- images: built once, then given to the nodes ------------------------------------


def test_build_builds_on_the_manager_only_and_once(tmp_path: Any) -> None:
    fake = slot_fake()
    blue = runtime(tmp_path, fake, "blue")
    said = blue.build(SHA, blue.paths.release(SHA))
    assert len(said) == 1 and said[0].startswith(f"built {NEW_IMAGE} (")
    assert fake.images == {MANAGER: {NEW_IMAGE}, WORKER: set()}
    assert blue.build(SHA, blue.paths.release(SHA)) == []
    assert [e for e in fake.events if e.startswith("build")] == [
        f"build {NEW_IMAGE} {MANAGER}"
    ]


def test_distribute_copies_to_each_node_that_lacks_the_image(tmp_path: Any) -> None:
    fake = slot_fake()
    fake.images = {MANAGER: {NEW_IMAGE}, WORKER: set(), NODE3: {NEW_IMAGE}}
    blue = runtime(tmp_path, fake, "blue", nodes=[WORKER, NODE3])
    assert blue.distribute(SHA) == [f"copied {NEW_IMAGE} to {WORKER}"]
    assert [e for e in fake.events if e.startswith("copy")] == [
        f"copy {NEW_IMAGE} {WORKER}"
    ]
    assert blue.distribute(SHA) == []  # every node has it now


def test_distribute_pushes_then_pulls_where_it_lacks(tmp_path: Any) -> None:
    image = f"reg:5000/mangetamain-app:{SHA}"
    fake = slot_fake()
    fake.images = {MANAGER: {image}, WORKER: set(), NODE3: {image}}
    blue = runtime(tmp_path, fake, "blue", registry="reg:5000", nodes=[WORKER, NODE3])
    assert blue.distribute(SHA) == [f"pushed {image}", f"pulled {image} on {WORKER}"]
    assert [e for e in fake.events if e.startswith(("push", "pull", "copy"))] == [
        f"push {image} {MANAGER}",
        f"pull {image} {WORKER}",
    ]
    fake = slot_fake(fail={"pull": "manifest unknown"})
    fake.images = {MANAGER: {image}, WORKER: set()}
    failing = runtime(tmp_path, fake, "blue", registry="reg:5000")
    with pytest.raises(CicdError, match=f"pulling {image} on {WORKER} failed on .*: "):
        failing.distribute(SHA)


# -- status -------------------------------------------------------------------------


def test_status_shows_a_line_per_slot_service_that_exists(tmp_path: Any) -> None:
    fake = slot_fake()
    fake.run(BLUE, NEW_IMAGE, 18500)
    fake.run(GREEN, OLD_IMAGE, 28500, node1=OLD_IMAGE)
    blue = runtime(tmp_path, fake, "blue")
    green = runtime(tmp_path, fake, "green")
    assert format_swarm("preprod", [blue.describe(), green.describe()]) == (
        f"  preprod swarm blue: 2/2 tasks run {NEW_IMAGE} (node1, node2)\n"
        f"  preprod swarm green: 1/1 tasks run {OLD_IMAGE} (node1)"
    )
    fake.stack_rm(GREEN)  # stopped: its line goes
    assert format_swarm("preprod", [blue.describe(), green.describe()]) == (
        f"  preprod swarm blue: 2/2 tasks run {NEW_IMAGE} (node1, node2)"
    )
    fake.stack_rm(BLUE)
    assert format_swarm("preprod", [blue.describe(), green.describe()]) == ""


def test_status_of_a_swarm_behind_haproxy_describes_both_slots(
    tmp_path: Any,
) -> None:
    fake = slot_fake()
    fake.run(GREEN, NEW_IMAGE, 28500)
    proxied = Target(
        Runner(FakeContext(fake)), settings(tmp_path, proxy="haproxy"), "preprod"
    )
    shown = swarm_status(proxied)
    assert shown is not None
    assert [(s["slot"], s["service"], s["image"]) for s in shown] == [
        ("blue", f"{BLUE}_app", None),
        ("green", f"{GREEN}_app", NEW_IMAGE),
    ]
    assert format_swarm("preprod", shown) == (
        f"  preprod swarm green: 2/2 tasks run {NEW_IMAGE} (node1, node2)"
    )
    in_place = Target(Runner(FakeContext(fake)), settings(tmp_path), "preprod")
    assert [s["slot"] for s in swarm_status(in_place) or []] == [None]
    assert format_swarm("preprod", swarm_status(in_place) or []) == (
        "  preprod swarm: 0/0 tasks run nothing (no node)"
    )


# -- the slots of a swarm -----------------------------------------------------------


def swarm_slots(tmp_path: Any, fake: FakeDocker) -> Slots:
    target = Target(
        Runner(FakeContext(fake)), settings(tmp_path, proxy="haproxy"), "preprod"
    )
    return Slots(target.context)


def test_a_slot_is_checked_on_every_ready_active_node(tmp_path: Any) -> None:
    fake = slot_fake()
    fake.nodes = (
        "vm1 0.0.0.0 ready active 10.0.0.1:2377\n"
        "vm2 10.0.0.2 ready drain -\n"
        "vm3 10.0.0.3 down active -\n"
        "vm4 10.0.0.4 ready active -\n"
    )
    slots = swarm_slots(tmp_path, fake)
    assert slots.base_urls("green") == [
        "http://10.0.0.1:28500",
        "http://10.0.0.4:28500",
    ]
    per_check = len(slots.host.settings.health.checks)
    urls = [c.url for c in slots.checks("blue")]
    assert len(urls) == 2 * per_check
    assert all(u.startswith("http://10.0.0.1:18500/") for u in urls[:per_check])
    assert all(u.startswith("http://10.0.0.4:18500/") for u in urls[per_check:])


def test_the_slots_facts_name_the_adopted_release_as_blue(tmp_path: Any) -> None:
    fake = FakeDocker()  # no slot links yet: never switched to a slot
    fake.run(PROJECT, OLD_IMAGE, 18500)
    slots = swarm_slots(tmp_path, fake)
    assert slots.adoptable(configured=False, intended=None) is None
    assert slots.adoptable(configured=True, intended="blue") is None
    assert slots.adoptable(configured=True, intended=None) == OLD
    facts = slots.facts(SHA, configured=True)
    assert facts.adopt == OLD and facts.live == "blue"
    assert facts.releases == {"blue": OLD, "green": None}
    assert choose_slot(facts, SHA).slot == "green"
    fake = FakeDocker()
    fake.run(PROJECT, OLD_IMAGE, 8500)  # not on blue's port: nothing to adopt
    assert swarm_slots(tmp_path, fake).facts(SHA, configured=True).adopt is None


def test_an_idle_slot_is_stopped_without_waiting_for_its_tasks(tmp_path: Any) -> None:
    """A rollback or a CI verdict does not hold the lock while tasks wind down.

    The slot's next start waits for its port instead.
    """
    fake = slot_fake(linger={MANAGER: None, WORKER: None})
    fake.run(GREEN, OLD_IMAGE, 28500)
    slots = swarm_slots(tmp_path, fake)
    slots.stop("green")
    assert f"rm {GREEN}" in fake.events
    assert not any(e.startswith(f"ps {GREEN}") for e in fake.events)
    green = runtime(tmp_path, fake, "green", update_timeout=0.2)
    with pytest.raises(CicdError, match=f"stack {GREEN} on "):
        green.restart()  # its old containers never went: no deploy over them
    assert fake.deploys == []


def test_a_warm_slot_whose_tasks_still_start_is_stopped_by_a_ci_pass(
    tmp_path: Any,
) -> None:
    """Deployed seconds after the release before it, the warm slot's tasks may not
    have passed the swarm's own health check yet: they run, and are stopped."""
    fake = slot_fake()
    fake.run(GREEN, OLD_IMAGE, 28500).state = "Starting 2 seconds ago"
    slots = swarm_slots(tmp_path, fake)
    assert slots.retire("green") == f"stopped the green slot ({SHA[:7]})"
    assert f"rm {GREEN}" in fake.events
