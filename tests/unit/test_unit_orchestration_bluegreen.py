"""Blue/green deploys and rollbacks behind haproxy, against a scripted host.

As in ``test_unit_orchestration.py``: the real entry points and runner, a scripted
host, and assertions on what changed the host in order, the round trips and the
ledger. haproxy's runtime API is a command over SSH (``remote``), answered by the
host's model of haproxy; a local run speaks to its unix socket from this process,
which needs a real haproxy (``tests/integration/test_bluegreen.py``).
"""

from __future__ import annotations

import pytest

from cicd.pipeline.activation import DeployFailed
from cicd.pipeline.rollback import rollback
from tests.recorded import Stage

V1 = "a1" * 20
V2 = "b2" * 20


def started_on(slot: str, sha: str) -> list[str]:
    """The start of ``sha`` on a slot whose program supervisord does not know yet."""
    return [
        "mkdir preprod/slots",
        f"link preprod/slots/{slot} -> ../releases/{sha}",
        "mkdir supervisor/conf.d preprod/logs",
        f"write supervisor/conf.d/app-preprod-{slot}.conf",
        f"supervisorctl update app-preprod-{slot}",
    ]


def exported(sha: str) -> list[str]:
    """A new release exported, the shared venv linked in, renamed into place."""
    return [
        f"export {sha} into preprod/releases/.{sha}.tmp",
        f"link preprod/releases/.{sha}.tmp/.venv -> venvs/no-requirements",
        f"rename preprod/releases/.{sha}.tmp -> preprod/releases/{sha}",
    ]


@pytest.fixture
def stage(monkeypatch: pytest.MonkeyPatch) -> Stage:
    """preprod behind haproxy, reached over SSH, with v1 deployed on the blue slot."""
    stage = Stage(monkeypatch, proxy="haproxy")
    stage.host.commit(V1, "v1")
    stage.host.commit(V2, "v2")
    stage.deploy(V1)
    stage.host.forget()
    return stage


def routed(stage: Stage) -> list[str]:
    """The slots haproxy routes preprod to."""
    servers = stage.host.backends["be_preprod"]
    return [name for name, (_, admin) in servers.items() if not admin & 0x7B]


def reads(stage: Stage, what: str) -> int:
    """How many commands only read, saying ``what`` first (``haproxy show``...)."""
    calls = stage.host.calls
    return sum(call.text.startswith(what) and not call.changes for call in calls)


def test_first_deploy_starts_haproxy_once_the_slot_is_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stage = Stage(monkeypatch, proxy="haproxy")
    stage.host.commit(V1, "v1")

    stage.deploy(V1)

    changes = stage.host.changes()
    # Ready on its slot before anything routes to it; only then haproxy starts.
    switched = changes.index(
        "switch preprod/current -> releases/a1a1a1a, ledger: export restart health "
        "switch"
    )
    assert changes.index("start supervisord") < switched
    assert changes[switched + 1 :] == [
        "write preprod/live",
        "mkdir proxy/conf.d",
        "write proxy/haproxy.cfg",
        "write proxy/conf.d/preprod.cfg",
        "mkdir supervisor/conf.d preprod/logs",
        "write supervisor/conf.d/proxy.conf",
        "supervisorctl update proxy",
        "autostart app-preprod-blue.conf=true",
        "append preprod/ledger.jsonl: health",
        "remove preprod/intent",
        "append preprod/ledger.jsonl: deploy",
        "remove preprod/lock",
    ]
    assert stage.host.events("preprod") == [
        "deploy:started",
        "export",
        "restart",
        "health",
        "switch",
        "health",
        "deploy",
    ]
    assert routed(stage) == ["blue"]
    assert stage.host.get("http://127.0.0.1:8501/") == (200, "ok")


def test_deploy_goes_to_the_idle_slot_and_keeps_the_previous_warm(
    stage: Stage,
) -> None:
    result = stage.deploy(V2)

    assert (result.sha, result.previous) == (V2, V1)
    assert stage.host.changes() == [
        "lock preprod/lock",
        "append preprod/ledger.jsonl: deploy",
        *exported("b2b2b2b"),
        "write preprod/intent",
        *started_on("green", "b2b2b2b"),
        "switch preprod/current -> releases/b2b2b2b, ledger: export restart health "
        "switch",
        "write preprod/live",
        "write proxy/conf.d/preprod.cfg",
        "haproxy green ready",
        "haproxy blue drain, blue maint",
        "autostart app-preprod-blue.conf=false app-preprod-green.conf=true",
        "append preprod/ledger.jsonl: health",
        "write preprod/warm",
        "remove preprod/intent",
        "append preprod/ledger.jsonl: deploy",
        "remove preprod/lock",
    ]
    assert stage.host.trips == 37
    # Asked again and again, each a round trip of its own: what haproxy routes to,
    # and the slot the last switch chose.
    assert reads(stage, "haproxy show") == 5
    assert reads(stage, "read preprod/live") == 3
    assert stage.host.events("preprod")[7:] == [
        "deploy:started",
        "export",
        "restart",
        "health",
        "switch",
        "health",
        "deploy",
    ]
    assert routed(stage) == ["green"]
    # v1 still runs on blue, warm: a rollback to it is a switch back.
    assert stage.host.release_of("app-preprod-blue") == V1
    assert stage.host.release_of("app-preprod-green") == V2


def test_readiness_that_fails_on_the_idle_slot_is_never_routed(stage: Stage) -> None:
    stage.host.broken.add(V2)

    with pytest.raises(DeployFailed, match="never routed to") as failed:
        stage.deploy(V2)

    assert not failed.value.routed
    changes = stage.host.changes()
    assert not [line for line in changes if line.startswith("switch")]
    assert not [line for line in changes if line.startswith("haproxy")]
    assert changes[changes.index("supervisorctl update app-preprod-green") :] == [
        "supervisorctl update app-preprod-green",
        "supervisorctl stop app-preprod-green",
        "autostart app-preprod-green.conf=false",
        "remove preprod/intent",
        "append preprod/ledger.jsonl: export restart health",
        "append preprod/ledger.jsonl: marked_bad",
        # The intent is removed twice (the slot's failure, then the recovery's).
        "remove preprod/intent",
        "append preprod/ledger.jsonl: deploy",
        "remove preprod/lock",
    ]
    assert stage.host.events("preprod")[7:] == [
        "deploy:started",
        "export",
        "restart",
        "health:failed",
        "marked_bad:bad",
        "deploy:failed",
    ]
    assert routed(stage) == ["blue"]
    assert stage.host.read_link(stage.path("current")) == V1
    assert "app-preprod-green" not in stage.host.running


def test_rollback_to_the_warm_previous_release_is_a_switch_without_restart(
    stage: Stage,
) -> None:
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
        "write preprod/live",
        "write proxy/conf.d/preprod.cfg",
        "haproxy blue ready",
        "haproxy green drain, green maint",
        "autostart app-preprod-blue.conf=true app-preprod-green.conf=false",
        "append preprod/ledger.jsonl: health",
        # A rollback does not keep the abandoned release warm.
        "remove preprod/warm",
        "autostart app-preprod-green.conf=false",
        "supervisorctl stop app-preprod-green",
        "remove preprod/intent",
        "append preprod/ledger.jsonl: marked_bad rollback",
        "remove preprod/lock",
    ]
    # In place the same rollback is 4 round trips.
    assert stage.host.trips == 27
    assert reads(stage, "haproxy show") == 6
    assert reads(stage, "read preprod/live") == 3
    assert stage.host.events("preprod")[-4:] == [
        "switch",
        "health",
        "marked_bad:bad",
        "rollback",
    ]
    assert routed(stage) == ["blue"]
    assert stage.host.release_of("app-preprod-blue") == V1
    assert "app-preprod-green" not in stage.host.running
