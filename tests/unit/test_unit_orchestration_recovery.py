"""Repairs of an interrupted switch and CI verdicts, against a scripted host.

As in ``test_unit_orchestration.py``: the real entry points and runner, a scripted
host, and assertions on what changed the host in order, the round trips and the
ledger.
"""

from __future__ import annotations

from typing import Any

import pytest

from cicd.ci import FAILURE, SUCCESS, Poll
from cicd.host import lock
from cicd.pipeline.repair import repair
from cicd.pipeline.watch import verdict
from tests.recorded import Stage

V1 = "a1" * 20
V2 = "b2" * 20


class FinishedRun:
    """A GitHub Actions run of one sha that ended: what ``watch.verdict`` reads."""

    name = "github"

    def __init__(self, state: str) -> None:
        self.state = state

    def run(self, sha: str, run_id: str) -> Poll:
        """The run's verdict, as GitHub's API gives it."""
        url = f"https://github.com/o/r/actions/runs/{run_id}"
        return Poll(
            self.state, f"CI {self.state}", url, run=f"{run_id}/1", settled=True
        )


@pytest.fixture
def interrupted(monkeypatch: pytest.MonkeyPatch) -> Stage:
    """preprod in place, running v1; a deploy of v2 killed right after its switch."""
    stage = Stage(monkeypatch)
    stage.host.commit(V1, "v1")
    stage.host.commit(V2, "v2")
    stage.deploy(V2)
    stage.deploy(V1)
    stage.interrupt_switch(V1, V2)
    return stage


def repair_by_hand(stage: Stage) -> str | None:
    """``invoke status --repair``: under the lock, the runtime asked too."""
    target = stage.target()
    with lock.hold([target], "repair"):
        return repair(target, stage.notifier(target), thorough=True)


def test_repair_completes_an_interrupted_switch(interrupted: Stage) -> None:
    stage = interrupted
    assert stage.host.release_of("app-preprod") == V1

    done = repair_by_hand(stage)

    assert done == "restarted b2b2b2b: it serves and is ready"
    assert stage.host.changes() == [
        "lock preprod/lock",
        "supervisorctl restart app-preprod",
        # Three events, three round trips.
        "append preprod/ledger.jsonl: health",
        "append preprod/ledger.jsonl: deploy",
        "append preprod/ledger.jsonl: repair",
        "remove preprod/intent",
        "remove preprod/lock",
    ]
    assert stage.host.trips == 10
    assert stage.host.events("preprod")[-3:] == ["health", "deploy", "repair"]
    assert stage.host.ledger("preprod")[-2]["detail"] == "completed by repair"
    assert stage.host.release_of("app-preprod") == V2
    assert not stage.host.exists(stage.path("intent"))


def test_repair_goes_back_when_the_switched_release_never_gets_ready(
    interrupted: Stage,
) -> None:
    stage = interrupted
    stage.host.broken.add(V2)

    done = repair_by_hand(stage)

    assert done is not None and done.endswith("back on a1a1a1a")
    assert stage.host.changes() == [
        "lock preprod/lock",
        "supervisorctl restart app-preprod",
        "append preprod/ledger.jsonl: marked_bad",
        "write preprod/intent",
        "switch preprod/current -> releases/a1a1a1a, ledger: switch",
        "supervisorctl restart app-preprod",
        "append preprod/ledger.jsonl: restart health",
        "remove preprod/intent",
        "append preprod/ledger.jsonl: repair",
        "remove preprod/lock",
    ]
    assert stage.host.events("preprod")[-5:] == [
        "marked_bad:bad",
        "switch",
        "restart",
        "health",
        "repair",
    ]
    assert stage.host.release_of("app-preprod") == V1
    assert stage.host.read_link(stage.path("current")) == V1


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> Stage:
    """preprod behind haproxy: v1 validated and warm on blue, v2 serving on green."""
    stage = Stage(monkeypatch, proxy="haproxy")
    stage.host.commit(V1, "v1")
    stage.host.commit(V2, "v2")
    stage.deploy(V1)
    stage.validate(V1)
    stage.deploy(V2)
    stage.host.forget()
    return stage


def decide(stage: Stage, state: str) -> str:
    """``invoke watch.verdict --sha V2 --run-id 7`` with GitHub's run finished."""
    target = stage.target()
    run: Any = FinishedRun(state)  # what verdict reads of a GitHubProvider
    return verdict([target], V2, "7", stage.notifier(target), provider=run)


def test_verdict_success_validates_and_stops_the_warm_slot(watched: Stage) -> None:
    stage = watched

    assert decide(stage, SUCCESS) == SUCCESS

    journal = "preprod/watch/b2b2b2b.json"
    assert stage.host.changes() == [
        "lock preprod/lock",
        "mkdir preprod/watch",
        f"write {journal}",
        "append preprod/ledger.jsonl: ci",
        "mkdir preprod/watch",
        f"write {journal}",
        "append preprod/ledger.jsonl: validated",
        "write preprod/validated",
        # No rollback will need v1 warm any more.
        "remove preprod/warm",
        "autostart app-preprod-blue.conf=false",
        "supervisorctl stop app-preprod-blue",
        "mkdir preprod/watch",
        f"write {journal}",
        "remove preprod/lock",
    ]
    assert stage.host.trips == 22
    assert stage.host.events("preprod")[-2:] == ["ci:success", "validated"]
    assert stage.host.files[stage.path("validated")] == V2 + "\n"
    assert "app-preprod-blue" not in stage.host.running
    assert stage.host.release_of("app-preprod-green") == V2


def test_verdict_failure_rolls_back_to_the_warm_release(watched: Stage) -> None:
    stage = watched

    assert decide(stage, FAILURE) == FAILURE

    changes = stage.host.changes()
    assert changes[:7] == [
        "lock preprod/lock",
        "mkdir preprod/watch",
        "write preprod/watch/b2b2b2b.json",
        "append preprod/ledger.jsonl: ci",
        "append preprod/ledger.jsonl: marked_bad",
        "mkdir preprod/watch",
        "write preprod/watch/b2b2b2b.json",
    ]
    # Then the rollback (a switch back to the warm slot, no restart) and the
    # journal's "done".
    assert changes[7:] == [
        "write preprod/intent",
        "switch preprod/current -> releases/a1a1a1a, ledger: switch",
        "write preprod/live",
        "write proxy/conf.d/preprod.cfg",
        "haproxy blue ready",
        "haproxy green drain, green maint",
        "autostart app-preprod-blue.conf=true app-preprod-green.conf=false",
        "append preprod/ledger.jsonl: health",
        "remove preprod/warm",
        "autostart app-preprod-green.conf=false",
        "supervisorctl stop app-preprod-green",
        "remove preprod/intent",
        "append preprod/ledger.jsonl: rollback",
        "mkdir preprod/watch",
        "write preprod/watch/b2b2b2b.json",
        "remove preprod/lock",
    ]
    assert stage.host.trips == 42
    assert stage.host.events("preprod")[-5:] == [
        "ci:failure",
        "marked_bad:bad",
        "switch",
        "health",
        "rollback",
    ]
    assert stage.host.release_of("app-preprod-blue") == V1
    assert "app-preprod-green" not in stage.host.running
    assert stage.host.get("http://127.0.0.1:8501/") == (200, "ok")


def test_the_next_deploy_completes_an_interrupted_switch_first(
    interrupted: Stage,
) -> None:
    stage = interrupted
    v3 = stage.host.commit("c3" * 20, "v3")

    result = stage.deploy(v3)

    # The switch to v2 was completed under the lock: v2 is what v3 replaces.
    assert result.previous == V2
    assert stage.host.changes()[:7] == [
        "lock preprod/lock",
        "supervisorctl restart app-preprod",
        "append preprod/ledger.jsonl: health",
        "append preprod/ledger.jsonl: deploy",
        "append preprod/ledger.jsonl: repair",
        "remove preprod/intent",
        "append preprod/ledger.jsonl: deploy",  # v3's start
    ]
    assert stage.host.trips == 20
    assert stage.host.events("preprod")[-9:] == [
        "health",
        "deploy",
        "repair",
        "deploy:started",
        "export",
        "switch",
        "restart",
        "health",
        "deploy",
    ]
    assert stage.host.release_of("app-preprod") == v3
