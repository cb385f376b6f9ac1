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
from pathlib import Path

import requests

from cicd.testinfra import SshFleet
from tests.conftest import REPO_ROOT, Project, free_port

BIN = Path(sys.executable).parent


def fab(
    fleet: SshFleet, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``fab -S SSH_CONFIG ARGS`` from the repository root."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "fabric",
            "--search-root",
            str(REPO_ROOT),
            "-S",
            str(fleet.ssh_config),
            *args,
        ],
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
    project: Project, ssh_hosts
) -> None:  # type: ignore[no-untyped-def]
    fleet = ssh_hosts(1)
    host_tables(project, fleet)
    v1 = project.repo.commit("v1")
    v2 = project.repo.commit("v2")
    deployed = fab(fleet, "-H", "h1", "deploy.preprod", "--sha", v1, "--json")
    assert deployed.returncode == 0, deployed.stderr
    assert json.loads(deployed.stdout)["sha"] == v1
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
    )
    assert status[0]["current"] == v1 and status[0]["healthy"]
    assert status[0]["host"] == "h1"
    assert fab(fleet, "-H", "h1", "health", "--env", "preprod").returncode == 0


def test_unknown_host_key_is_refused(project: Project, ssh_hosts) -> None:  # type: ignore[no-untyped-def]
    fleet = ssh_hosts(1)
    host_tables(project, fleet)
    fleet.known_hosts.write_text("")
    result = fab(fleet, "-H", "h1", "status", "--env", "preprod")
    assert result.returncode == 1
    assert "host key unknown" in result.stderr and "Traceback" not in result.stderr
    assert not (project.root / "h1").exists()
