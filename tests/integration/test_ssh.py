"""The same tasks over SSH with ``fab -H``: real sshd on 127.0.0.x, host keys checked.

Every simulated host is an sshd on its own loopback address; they share this
machine's filesystem and ports, so ``[tool.cicd.host.NAME]`` gives each its own root
and ports (as real hosts would have their own disks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tools.testinfra.sshd import SshFleet
from tests.conftest import (
    REPO_ROOT,
    Project,
    free_port,
    invoke,
    invoke_in_background,
    wait_for_switch,
)

BIN = Path(sys.executable).parent
Hosts = Callable[[int], SshFleet]


def fab_argv(fleet: SshFleet) -> list[str]:
    """The command line of ``fab -S SSH_CONFIG`` with this repository's tasks."""
    return [
        sys.executable,
        "-m",
        "fabric",
        "--search-root",
        str(REPO_ROOT),
        "-S",
        str(fleet.ssh_config),
    ]


def fab(
    fleet: SshFleet, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``fab -S SSH_CONFIG ARGS`` from the repository root."""
    return subprocess.run(
        [*fab_argv(fleet), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=180,
    )


def host_tables(project: Project, fleet: SshFleet) -> dict[str, dict[str, int]]:
    """Give each simulated host its own root and ports; return the ports."""
    ports: dict[str, dict[str, int]] = {}
    text = ""
    for host in fleet.hosts:
        ports[host.name] = {"preprod": free_port(), "prod": free_port()}
        text += f"""
        [tool.cicd.host.{host.name}]
        root = "{project.root / host.name}"
        python = "{sys.executable}"
        [tool.cicd.host.{host.name}.runtime]
        supervisord = "{BIN / 'supervisord'}"
        supervisorctl = "{BIN / 'supervisorctl'}"
        """
    project.write(text)
    return ports


def test_fab_deploys_rolls_back_and_reports_over_ssh(
    project: Project, ssh_hosts: Hosts
) -> None:
    fleet = ssh_hosts(1)
    host_tables(project, fleet)
    v1 = project.repo.commit("v1")
    v2 = project.repo.commit("v2")
    deployed = fab(fleet, "-H", "h1", "deploy.preprod", "--sha", v1, "--json")
    assert deployed.returncode == 0, deployed.stderr
    shown = json.loads(deployed.stdout)
    assert shown["sha"] == v1 and [h["host"] for h in shown["hosts"]] == ["h1"]
    assert fab(fleet, "-H", "h1", "deploy.preprod", "--sha", v2).returncode == 0
    root = project.root / "h1" / "preprod"
    assert os.readlink(root / "current") == f"releases/{v2}"
    events = [
        json.loads(line) for line in (root / "ledger.jsonl").read_text().splitlines()
    ]
    assert all(e["host"] == os.uname().nodename for e in events)  # the controller
    rolled = fab(fleet, "-H", "h1", "rollback", "--env", "preprod", "--to", v1[:8])
    assert rolled.returncode == 0, rolled.stderr
    assert requests.get(project.url(), timeout=5).text.strip() == "v1 ok"
    status = json.loads(
        fab(fleet, "-H", "h1", "status", "--json", "--env", "preprod").stdout
    )["hosts"]
    assert status[0]["current"] == v1 and status[0]["healthy"]
    assert status[0]["host"] == "h1"
    assert fab(fleet, "-H", "h1", "health", "--env", "preprod").returncode == 0


def test_unknown_host_key_is_refused(project: Project, ssh_hosts: Hosts) -> None:
    fleet = ssh_hosts(1)
    host_tables(project, fleet)
    fleet.known_hosts.write_text("")
    result = fab(fleet, "-H", "h1", "status", "--env", "preprod")
    assert result.returncode == 1
    assert "host key unknown" in result.stderr and "Traceback" not in result.stderr
    assert not (project.root / "h1").exists()


def fleet_config(
    project: Project, fleet: SshFleet, batch: int = 0, proxy: str = "none"
) -> None:
    """Configure preprod on every host of ``fleet``, each app on its own address.

    With ``proxy = "haproxy"`` each host's two slots get free ports of their own
    (the simulated hosts share this machine's loopback ports).
    """
    names = [host.name for host in fleet.hosts]
    tables = ""
    for host in fleet.hosts:
        slots = (
            f"proxy.blue_port = {free_port()}\nproxy.green_port = {free_port()}"
            if proxy != "none"
            else ""
        )
        tables += f"""
        [tool.cicd.host.{host.name}]
        root = "{project.root / host.name}"
        python = "{sys.executable}"
        url = "http://{host.address}:{{port}}"
        {slots}
        [tool.cicd.host.{host.name}.runtime]
        supervisord = "{BIN / 'supervisord'}"
        supervisorctl = "{BIN / 'supervisorctl'}"
        """
    project.write(
        tables,
        preprod=(
            f'hosts = {names!r}\nssh_config = "{fleet.ssh_config}"\nbatch = {batch}'
        ),
        proxy=proxy,
    )


def served(fleet: SshFleet, project: Project) -> dict[str, str]:
    """What each host's preprod app answers."""
    port = project.ports["preprod"]
    bodies = {}
    for host in fleet.hosts:
        try:
            bodies[host.name] = requests.get(
                f"http://{host.address}:{port}/", timeout=3
            ).text.strip()
        except requests.ConnectionError:
            bodies[host.name] = "down"
    return bodies


def test_fleet_deploys_to_three_hosts_all_or_nothing(
    project: Project, ssh_hosts: Hosts
) -> None:
    from tools.testinfra.sshd import start_sshd, stop_sshd

    fleet = ssh_hosts(3)
    fleet_config(project, fleet)
    v1 = project.repo.commit("v1")
    first = invoke("deploy.preprod", "--sha", v1)
    assert first.returncode == 0, first.stderr
    assert served(fleet, project) == {"h1": "v1 ok", "h2": "v1 ok", "h3": "v1 ok"}
    assert "h3" in first.stderr and "deployed" in first.stderr  # the result table

    v2 = project.repo.commit("v2", mode="slow 2")
    process = invoke_in_background("deploy.preprod", "--sha", v2)
    wait_for_switch(project.root / "h2" / "preprod" / "current", v2)
    h2 = fleet.hosts[1]
    stop_sshd(h2, sessions=True)  # h2 dies mid-deploy
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    assert "h2" in err and "connection" in err
    bodies = served(fleet, project)
    assert bodies["h1"] == "v1 ok" and bodies["h3"] == "v1 ok", err  # all or nothing
    for name in ("h1", "h3"):
        ledger = (project.root / name / "preprod" / "ledger.jsonl").read_text()
        assert '"event":"rollback"' in ledger and "deploy failed" in ledger

    start_sshd(
        h2.address,
        h2.port,
        h2.state_dir,
        name=h2.name,
        identity=h2.identity,
        known_hosts=fleet.known_hosts,
    )
    rerun = invoke("deploy.preprod", "--sha", v2)
    assert rerun.returncode == 0, rerun.stderr
    assert served(fleet, project) == {"h1": "v2 ok", "h2": "v2 ok", "h3": "v2 ok"}
    status = json.loads(invoke("status", "--json", "--env", "preprod").stdout)["hosts"]
    assert sorted(row["host"] for row in status) == ["h1", "h2", "h3"]
    assert {row["current"] for row in status} == {v2}


def test_fab_with_no_configuration_here_nor_on_the_host_creates_nothing(
    ssh_hosts: Hosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cicd.host.record import RECORD

    home = Path.home()  # the simulated host's SSH user is this user
    if (home / RECORD).exists():
        pytest.skip(f"~/{RECORD} exists here: this machine has a configured cicd")
    fleet = ssh_hosts(1)
    monkeypatch.delenv("CICD_CONFIG", raising=False)
    had_root = (home / ".cicd").exists()
    # From the repository root: the cicd project's own pyproject.toml, no table.
    result = fab(fleet, "-H", "h1", "rollback", "--env", "prod")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: no configuration for h1: none here")
    assert "nothing was done" in result.stderr and "Traceback" not in result.stderr
    assert (home / ".cicd").exists() == had_root  # no guessed root made there
