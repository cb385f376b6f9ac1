"""``--plan`` says what the run does: its steps are the steps the run records.

Every situation a plan covers, run through the CLI as a user would against a real
supervisord (and a real haproxy for blue/green, real sshd hosts for a fleet):
``--plan --json`` first, then the same command for real; the ``actions`` the plan
lists for each host are the ``actions`` the run then records in that host's ledger.
Both come from :mod:`cicd.core.decisions`; this test is what keeps the plan honest
when the run's code changes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Project, invoke
from tests.integration.test_deploy import validate
from tests.integration.test_ssh import fleet_config
from tools.testinfra.sshd import SshFleet

pytestmark = pytest.mark.slow

needs_haproxy = pytest.mark.skipif(
    shutil.which("haproxy") is None,
    reason="needs haproxy (apt-get install haproxy; CI's .ci/run installs it)",
)


def planned(*args: str) -> dict[str, list[str]]:
    """Each host's planned actions for ``invoke ARGS --plan --json``."""
    shown = invoke(*args, "--plan", "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert all(host["refused"] is None for host in document["hosts"]), document
    return {host["host"]: host["actions"] for host in document["hosts"]}


def recorded(ledger: Path, event: str) -> list[str]:
    """The actions of the last successful ``event`` in a ledger."""
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    done = [e for e in lines if e["event"] == event and e["outcome"] == "ok"]
    assert done, f"no {event} in {ledger}"
    actions: list[str] = done[-1].get("actions", [])
    return actions


def plan_then_run(
    project: Project, *args: str, event: str = "deploy", env: str = "preprod"
) -> list[str]:
    """Plan, run for real, and check the recorded actions are the planned ones."""
    plan = planned(*args)
    run = invoke(*args)
    assert run.returncode == 0, run.stderr
    (actions,) = plan.values()
    assert recorded(project.root / env / "ledger.jsonl", event) == actions
    return actions


def deploy_args(sha: str) -> tuple[str, ...]:
    return ("deploy.preprod", "--sha", sha)


def test_in_place_first_deploy_then_over_a_previous_one_then_nothing_to_do(
    project: Project,
) -> None:
    v1 = project.repo.commit("v1")
    first = plan_then_run(project, *deploy_args(v1))
    assert first == [
        "lock",
        "export",
        "switch-current",
        "restart",
        "readiness",
        "record",
    ]
    v2 = project.repo.commit("v2")
    assert plan_then_run(project, *deploy_args(v2)) == first
    assert plan_then_run(project, *deploy_args(v2), event="noop") == ["lock", "noop"]


def test_rollback_in_place_to_a_cold_release(project: Project) -> None:
    v1 = project.repo.commit("v1")
    v2 = project.repo.commit("v2")
    for sha in (v1, v2):
        assert invoke(*deploy_args(sha)).returncode == 0
    actions = plan_then_run(project, "rollback", "--to", v1, event="rollback")
    assert actions == [
        "lock",
        "switch-current",
        "restart",
        "readiness",
        "mark-bad",
        "record",
    ]


def test_old_releases_pruned_are_the_ones_the_plan_names(project: Project) -> None:
    shas = [project.repo.commit(f"v{n}") for n in range(1, 5)]
    for sha in shas[:3]:
        assert invoke(*deploy_args(sha)).returncode == 0
    shown = invoke(*deploy_args(shas[3]), "--plan")
    assert f"prune 1 old release(s): {shas[0][:7]}" in shown.stdout, shown.stdout
    assert plan_then_run(project, *deploy_args(shas[3]))[-1] == "prune"
    assert not (project.root / "preprod" / "releases" / shas[0]).exists()


@needs_haproxy
def test_blue_green_idle_slot_then_the_warm_release_then_rollback_to_warm(
    project: Project,
) -> None:
    project.write(proxy="haproxy")
    v1 = project.repo.commit("v1")
    assert plan_then_run(project, *deploy_args(v1)) == [
        "lock",
        "export",
        "start-slot",
        "readiness",
        "switch",
        "record",
    ]
    v2 = project.repo.commit("v2")
    second = plan_then_run(project, *deploy_args(v2))
    assert second[2:] == ["start-slot", "readiness", "switch", "keep-warm", "record"]
    # v1 still runs warm on the idle slot: deploying it again is a switch back.
    back = plan_then_run(project, *deploy_args(v1))
    assert back[1:] == ["reuse", "switch-back", "switch", "keep-warm", "record"]
    # And v2, now warm, is where a rollback goes: a switch, then v1 is stopped.
    rollback = plan_then_run(project, "rollback", "--to", v2, event="rollback")
    assert rollback == ["lock", "switch-back", "switch", "stop-previous"] + [
        "mark-bad",
        "record",
    ]


@needs_haproxy
def test_a_stale_slot_is_started_again_not_switched_to(project: Project) -> None:
    project.write(preprod="proxy.warm = 0", proxy="haproxy")
    v1 = project.repo.commit("v1")
    v2 = project.repo.commit("v2")
    for sha in (v1, v2):
        assert invoke(*deploy_args(sha)).returncode == 0
    # v1's slot still points at v1, but it was stopped (no warm window).
    again = plan_then_run(project, *deploy_args(v1))
    assert again[1:] == [
        "reuse",
        "start-slot",
        "readiness",
        "switch",
        "stop-previous",
        "record",
    ]


def test_a_refused_production_deploy_is_refused_by_the_plan_too(
    project: Project,
) -> None:
    v1 = project.repo.commit("v1")
    shown = invoke("deploy.prod", "--sha", v1, "--plan", "--json")
    assert shown.returncode == 0, shown.stderr
    (host,) = json.loads(shown.stdout)["hosts"]
    assert "not been validated by CI" in host["refused"]
    run = invoke("deploy.prod", "--sha", v1, "--confirm", "DEPLOY")
    assert run.returncode == 2 and "not been validated by CI" in run.stderr
    ledger = (project.root / "prod" / "ledger.jsonl").read_text().splitlines()
    assert [json.loads(line)["event"] for line in ledger] == ["refused"]


def test_a_validated_production_deploy_backs_up_first(project: Project) -> None:
    v1 = project.repo.commit("v1")
    assert invoke(*deploy_args(v1)).returncode == 0
    validate(project, v1)
    args = ("deploy.prod", "--sha", v1)
    plan = planned(*args)
    run = invoke(*args, "--confirm", "DEPLOY")
    assert run.returncode == 0, run.stderr
    (actions,) = plan.values()
    assert "backup" in actions
    assert recorded(project.root / "prod" / "ledger.jsonl", "deploy") == actions


def test_a_fleet_switched_one_host_at_a_time(
    project: Project, ssh_hosts: Callable[[int], SshFleet]
) -> None:
    fleet = ssh_hosts(2)
    fleet_config(project, fleet, batch=1)
    v1 = project.repo.commit("v1")
    plan = planned(*deploy_args(v1))
    assert sorted(plan) == [host.name for host in fleet.hosts]
    run = invoke(*deploy_args(v1))
    assert run.returncode == 0, run.stderr
    for host in fleet.hosts:
        ledger = project.root / host.name / "preprod" / "ledger.jsonl"
        assert recorded(ledger, "deploy") == plan[host.name], host.name
