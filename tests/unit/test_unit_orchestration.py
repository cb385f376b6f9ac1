"""Deploys and rollbacks in place, run against a scripted host: no process at all.

The pipeline's entry points run through the real runner, batching as over SSH, and a
:class:`~tests.recorded.ScriptedHost` answers (see ``tests/recorded.py``). Each test
asserts what changed the host, in order (reads inside a round trip may move), how many
round trips it took and what the ledger says. A round-trip count that changes is a
finding: lower it here when a change saves one on purpose.

Blue/green is ``test_unit_orchestration_bluegreen.py``; repairs and CI verdicts are
``test_unit_orchestration_recovery.py``.
"""

from __future__ import annotations

import json

import pytest

from cicd.core.errors import LockHeld
from cicd.pipeline.activation import DeployFailed
from cicd.pipeline.rollback import rollback
from tests.recorded import Stage

V1 = "a1" * 20
V2 = "b2" * 20

#: What the first deploy of a host does beyond a later one: supervisord's files
#: and daemon, and the venv every release without requirements shares.
SUPERVISORD_STARTED = [
    "mkdir supervisor/conf.d preprod/logs",
    "write supervisor/supervisord.conf",
    "write supervisor/app-env.sh",
    "write supervisor/conf.d/app-preprod.conf",
    "start supervisord",
]
VENV_BUILT = [
    "remove venvs/no-requirements",
    "mkdir venvs",
    "venv venvs/no-requirements",
    "touch venvs/no-requirements/.complete",
]


def exported(sha: str) -> list[str]:
    """The export of a new release: into a hidden directory, renamed into place."""
    return [f"export {sha} into preprod/releases/.{sha}.tmp"]


def placed(sha: str) -> list[str]:
    """The venv linked into the exported release, then the release renamed."""
    return [
        f"link preprod/releases/.{sha}.tmp/.venv -> venvs/no-requirements",
        f"rename preprod/releases/.{sha}.tmp -> preprod/releases/{sha}",
    ]


@pytest.fixture
def stage(monkeypatch: pytest.MonkeyPatch) -> Stage:
    """preprod restarted in place (no haproxy), reached over SSH; v1 and v2 exist."""
    stage = Stage(monkeypatch)
    stage.host.commit(V1, "v1")
    stage.host.commit(V2, "v2")
    return stage


def test_first_deploy_starts_supervisord_and_records_each_step(stage: Stage) -> None:
    result = stage.deploy(V1[:10])  # an abbreviation, recorded in full

    assert (result.outcome, result.sha, result.previous) == ("deployed", V1, None)
    assert stage.host.changes() == [
        "lock preprod/lock",
        "append preprod/ledger.jsonl: deploy",
        *exported("a1a1a1a"),
        *VENV_BUILT,
        *placed("a1a1a1a"),
        "write preprod/intent",
        "switch preprod/current -> releases/a1a1a1a, ledger: export switch",
        *SUPERVISORD_STARTED,
        "append preprod/ledger.jsonl: restart health",
        "remove preprod/intent",
        "append preprod/ledger.jsonl: deploy",
        "remove preprod/lock",
    ]
    assert stage.host.trips == 19
    assert stage.host.events("preprod") == [
        "deploy:started",
        "export",
        "switch",
        "restart",
        "health",
        "deploy",
    ]
    assert stage.host.release_of("app-preprod") == V1
    assert not stage.host.exists(stage.path("intent"))
    assert not stage.host.exists(stage.path("lock"))


def test_deploy_over_a_previous_release_restarts_in_place(stage: Stage) -> None:
    stage.deploy(V1)
    stage.host.forget()

    result = stage.deploy(V2)

    assert (result.sha, result.previous) == (V2, V1)
    assert stage.host.changes() == [
        "lock preprod/lock",
        "append preprod/ledger.jsonl: deploy",
        *exported("b2b2b2b"),
        *placed("b2b2b2b"),  # the venv is shared: nothing to build
        "write preprod/intent",
        "switch preprod/current -> releases/b2b2b2b, ledger: export switch",
        "supervisorctl restart app-preprod",
        "append preprod/ledger.jsonl: restart health",
        "remove preprod/intent",
        "append preprod/ledger.jsonl: deploy",
        "remove preprod/lock",
    ]
    assert stage.host.trips == 11
    assert stage.host.events("preprod")[6:] == [
        "deploy:started",
        "export",
        "switch",
        "restart",
        "health",
        "deploy",
    ]
    assert stage.host.release_of("app-preprod") == V2


def test_redeploy_of_a_kept_release_is_five_round_trips(stage: Stage) -> None:
    # As 90_doc/source/pipeline.rst says: resolve (with the runtime's tools), lock
    # (with the state), switch (with the intent and what the restart compares),
    # restart (with the first probes), release (with the last events).
    stage.deploy(V1)
    stage.deploy(V2)
    stage.host.forget()

    stage.deploy(V1)

    trips = [
        sorted({c.kind for c in stage.host.calls if c.trip == n}) for n in range(5)
    ]
    assert trips == [
        ["resolve", "which"],
        ["lock", "read", "snapshot", "which"],
        ["append", "read_all", "switch", "write"],
        ["probe", "supervisorctl"],
        ["append", "list_files", "remove"],
    ]
    assert stage.host.trips == 5
    assert stage.host.ledger("preprod")[-5]["detail"] == "reused"


def test_already_serving_and_healthy_is_a_noop(stage: Stage) -> None:
    stage.deploy(V1)
    stage.host.forget()

    result = stage.deploy(V1)

    assert result.outcome == "noop"
    assert stage.host.changes() == [
        "lock preprod/lock",
        "append preprod/ledger.jsonl: noop",
        "remove preprod/lock",
    ]
    # The app's status, then one probe; the noop event has a round trip of its own.
    assert [c.kind for c in stage.host.calls if c.trip in (2, 3)] == [
        "supervisorctl",
        "probe",
    ]
    assert stage.host.trips == 6


def test_a_lock_held_by_another_run_changes_nothing(stage: Stage) -> None:
    holder = {"actor": "bob", "host": "elsewhere", "pid": 1, "why": "deploy"}
    stage.host.dirs.add(stage.path("lock"))
    stage.host.files[stage.path("lock", "details")] = json.dumps(holder)

    with pytest.raises(LockHeld, match="locked by bob on elsewhere"):
        stage.deploy(V1)

    assert stage.host.changes() == []
    # The lock's refusal, then who holds it (read on its own).
    assert [c.text for c in stage.host.calls if c.trip > 0][0] == (
        "lock preprod/lock (held)"
    )
    assert stage.host.trips == 3


def test_readiness_that_fails_rolls_back_to_the_previous_release(stage: Stage) -> None:
    stage.deploy(V1)
    stage.host.broken.add(V2)  # runs, but answers every request with a 500
    stage.host.forget()

    with pytest.raises(DeployFailed, match="rolled back to a1a1a1a") as failed:
        stage.deploy(V2)

    assert failed.value.routed
    assert stage.host.changes() == [
        "lock preprod/lock",
        "append preprod/ledger.jsonl: deploy",
        *exported("b2b2b2b"),
        *placed("b2b2b2b"),
        "write preprod/intent",
        "switch preprod/current -> releases/b2b2b2b, ledger: export switch",
        "supervisorctl restart app-preprod",
        "append preprod/ledger.jsonl: restart health",
        "append preprod/ledger.jsonl: marked_bad",
        "write preprod/intent",
        "switch preprod/current -> releases/a1a1a1a, ledger: switch",
        "supervisorctl restart app-preprod",
        "append preprod/ledger.jsonl: restart health",
        "remove preprod/intent",
        "append preprod/ledger.jsonl: rollback",
        "append preprod/ledger.jsonl: deploy",
        "remove preprod/lock",
    ]
    # Each readiness round is a probe on the host until health.deadline (60 s of
    # the virtual clock): one round trip each.
    probes = [c for c in stage.host.calls if c.kind == "probe"]
    assert len(probes) == 124
    assert stage.host.trips == 140
    assert stage.clock.elapsed == pytest.approx(59.8, abs=0.5)
    assert stage.host.events("preprod")[6:] == [
        "deploy:started",
        "export",
        "switch",
        "restart",
        "health:failed",
        "marked_bad:bad",
        "switch",
        "restart",
        "health",
        "rollback",
        "deploy:failed",
    ]
    assert stage.host.release_of("app-preprod") == V1


def test_first_deploy_that_fails_leaves_nothing_running(stage: Stage) -> None:
    stage.host.broken.add(V1)

    with pytest.raises(DeployFailed, match="app stopped"):
        stage.deploy(V1)

    assert stage.host.changes()[-8:] == [
        "append preprod/ledger.jsonl: restart health",
        "append preprod/ledger.jsonl: marked_bad",
        "supervisorctl stop app-preprod",
        # Nothing to start at boot: no release is current any more.
        "autostart app-preprod.conf=false",
        "remove preprod/current",
        "remove preprod/intent",
        "append preprod/ledger.jsonl: deploy",
        "remove preprod/lock",
    ]
    assert stage.host.events("preprod")[-3:] == [
        "health:failed",
        "marked_bad:bad",
        "deploy:failed",
    ]
    assert "app-preprod" not in stage.host.running
    assert not stage.host.exists(stage.path("current"))


def test_rollback_in_place_is_a_switch_and_a_restart(stage: Stage) -> None:
    stage.deploy(V1)
    stage.validate(V1)
    stage.deploy(V2)
    stage.host.forget()
    target = stage.target()

    (result,) = rollback([target], stage.notifier(target), reason="test")

    assert (result.sha, result.abandoned) == (V1, V2)
    assert stage.host.changes() == [
        "lock preprod/lock",
        "write preprod/intent",
        "switch preprod/current -> releases/a1a1a1a, ledger: switch",
        "supervisorctl restart app-preprod",
        "append preprod/ledger.jsonl: restart health",
        "remove preprod/intent",
        "append preprod/ledger.jsonl: marked_bad rollback",
        "remove preprod/lock",
    ]
    assert stage.host.trips == 4
    assert stage.host.events("preprod")[-5:] == [
        "switch",
        "restart",
        "health",
        "marked_bad:bad",
        "rollback",
    ]
    assert stage.host.release_of("app-preprod") == V1


def test_a_local_run_makes_its_health_requests_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # invoke on the host itself: the probes are requests of this process (the
    # stand-in fetcher), not commands; everything else is the same.
    stage = Stage(monkeypatch, remote=False)
    stage.host.commit(V1, "v1")
    stage.host.commit(V2, "v2")
    stage.deploy(V1)
    stage.host.forget()

    stage.deploy(V2)

    assert "probe" not in {c.kind for c in stage.host.calls}
    assert stage.fetcher.urls[-1] == "http://127.0.0.1:8501/"
    assert stage.host.changes()[-6:] == [
        "switch preprod/current -> releases/b2b2b2b, ledger: export switch",
        "supervisorctl restart app-preprod",
        "append preprod/ledger.jsonl: restart health",
        "remove preprod/intent",
        "append preprod/ledger.jsonl: deploy",
        "remove preprod/lock",
    ]
    assert stage.host.trips == 11
