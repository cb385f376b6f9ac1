"""A power loss in the middle of a deploy, then what the systemd unit runs: ``start``.

The deploy is killed at each fail point (:mod:`cicd.transport.failpoints`) and, at the
same
moment, supervisord and every process it runs (the apps, haproxy) die, as they do
when a VM loses power. ``invoke start`` then has to settle the unfinished switch,
bring back what ``current`` names and nothing else, and leave ``status`` healthy:
in place (``proxy.kind = "none"``) and behind haproxy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import Project, invoke
from tests.integration.test_faults import DEPLOY_POINTS, KILLED, said

pytestmark = pytest.mark.slow


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc: children, their children...)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces: the fields after its ')' are fixed.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def power_loss(project: Project) -> None:
    """SIGKILL supervisord and everything it runs, at once; wait until all are gone."""
    daemon = int((project.root / "supervisor" / "supervisord.pid").read_text())
    victims = [daemon, *descendants(daemon)]
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in victims):
        assert time.monotonic() < deadline, "processes survived SIGKILL"
        time.sleep(0.05)


def supervised(project: Project) -> dict[str, str]:
    """Each program's state under the project's supervisord."""
    ctl = Path(sys.executable).parent / "supervisorctl"
    conf = project.root / "supervisor" / "supervisord.conf"
    result = subprocess.run(
        [str(ctl), "-c", str(conf), "status"], capture_output=True, text=True
    )
    return {
        words[0]: words[1]
        for words in (line.split() for line in result.stdout.splitlines())
        if len(words) >= 2
    }


@pytest.mark.parametrize("proxy", ["none", "haproxy"])
@pytest.mark.parametrize("point", DEPLOY_POINTS)
def test_start_after_a_power_loss_mid_deploy_serves_current_and_only_it(
    project: Project, point: str, proxy: str
) -> None:
    project.write(proxy=proxy, deadline=5)
    v1, v2 = project.repo.commit("v1"), project.repo.commit("v2")
    first = invoke("deploy.preprod", "--sha", v1)
    assert first.returncode == 0, said(first)
    cut = invoke(
        "deploy.preprod", "--sha", v2, env={"CICD_FAILPOINT": point}, timeout=90
    )
    assert cut.returncode in KILLED, f"not killed at {point}: " + said(cut)
    power_loss(project)

    started = invoke("start", timeout=90)
    assert started.returncode == 0, said(started)
    assert "Traceback" not in started.stdout + started.stderr
    status = invoke("status", "--json", "--env", "preprod")
    assert status.returncode == 0, said(status)
    (row,) = json.loads(status.stdout)["hosts"]
    # What serves is what current names, whichever way the switch was settled.
    assert row["serving"] == row["current"] in (v1, v2), row
    version = {v1: "v1", v2: "v2"}[row["current"]]
    assert requests.get(project.url(), timeout=5).text.strip() == f"{version} ok"
    assert not (project.root / "preprod" / "intent").exists()
    assert not (project.root / "preprod" / "lock").exists()
    if proxy == "haproxy":
        # Nothing runs that does not serve: the abandoned release's slot is down
        # (the previous one may run only while it is kept warm).
        states = supervised(project)
        running = {p for p, state in states.items() if state == "RUNNING"}
        live = (project.root / "preprod" / "live").read_text().strip()
        warm_file = project.root / "preprod" / "warm"
        warm = json.loads(warm_file.read_text()) if warm_file.exists() else {}
        allowed = {"proxy", f"app-preprod-{live}"}
        if warm and warm.get("until", 0) > time.time():
            allowed.add(f"app-preprod-{warm['slot']}")
        assert running <= allowed, (states, live, warm)
        assert f"app-preprod-{live}" in running, states
