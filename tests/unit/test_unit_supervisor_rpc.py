"""supervisorctl's answers from supervisord's XML-RPC interface, without supervisord.

The calls a deploy makes are run against a real supervisord by the integration
tests; here a fake server object answers with the faults supervisord raises, so
every mapping to supervisorctl's lines and exit codes is pinned down.
"""

from __future__ import annotations

import xmlrpc.client
from typing import Any

from cicd.runtime.supervisor_rpc import (
    ALREADY_STARTED,
    BAD_NAME,
    NOT_RUNNING,
    LocalControl,
)


class FakeServer:
    """Answers like supervisord's ``supervisor`` namespace; faults scripted."""

    def __init__(self, **faults: list[int]) -> None:
        self.faults = faults
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any) -> Any:
            self.calls.append((method, args))
            pending = self.faults.get(method, [])
            if pending:
                raise xmlrpc.client.Fault(pending.pop(0), "FAULT")
            if method == "getProcessInfo":
                return {"pid": 42, "statename": "STOPPED", "description": "Not started"}
            return 7 if method == "getPID" else True

        return call


def control(**faults: list[int]) -> LocalControl:
    made = LocalControl("/nowhere/supervisor.sock")
    made.server = FakeServer(**faults)
    return made


def test_the_answers_supervisorctl_would_give() -> None:
    assert control().call(("pid",)) == (0, "7")
    assert control().call(("pid", "app")) == (0, "42")
    assert control().call(("status", "app")) == (3, "app STOPPED Not started")
    assert control().call(("start", "app")) == (0, "app: started")
    assert control().call(("stop", "app")) == (0, "app: stopped")
    assert control().call(("signal", "USR2", "proxy")) == (0, "proxy: signalled")
    assert control().call(("restart", "app")) == (0, "app: stopped\napp: started")


def test_faults_become_supervisorctl_s_errors() -> None:
    gone = control(getProcessInfo=[BAD_NAME])
    assert gone.call(("status", "app")) == (4, "app: ERROR (no such process)")
    busy = control(startProcess=[ALREADY_STARTED])
    assert busy.call(("start", "app")) == (1, "app: ERROR (already started)")
    idle = control(stopProcess=[NOT_RUNNING])
    assert idle.call(("stop", "app")) == (1, "app: ERROR (not running)")
    other = control(startProcess=[50])
    assert other.call(("start", "app")) == (1, "app: ERROR (fault)")


def test_restart_starts_a_stopped_program_and_outlasts_a_respawn() -> None:
    stopped = control(stopProcess=[NOT_RUNNING])
    assert stopped.call(("restart", "app")) == (
        0,
        "app: ERROR (not running)\napp: started",
    )
    # supervisord respawned it between our stop and start: stopped again, started.
    respawned = control(startProcess=[ALREADY_STARTED])
    assert respawned.call(("restart", "app"))[0] == 0
    methods = [m for m, _ in respawned.server.calls]
    assert methods == ["stopProcess", "startProcess"] * 2
    stuck = control(startProcess=[ALREADY_STARTED] * 3)
    assert stuck.call(("restart", "app")) == (1, "app: ERROR (already started)")


def test_other_actions_and_an_absent_daemon() -> None:
    assert control().call(("update",)) is None  # supervisorctl runs it
    assert control().call(("signal", "USR2")) is None
    assert control().call(("start", "a", "b")) is None
    assert control().call(()) is None
    exited, said = LocalControl("/nowhere/supervisor.sock").call(("pid",)) or (0, "")
    assert exited == 7 and said.startswith("unix:///nowhere/supervisor.sock ")
