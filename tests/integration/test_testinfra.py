"""The test infrastructure's daemons, for real: sshd hosts, dockerd, local stand-ins.

The pure parts of :mod:`tools.testinfra` are unit-tested in
tests/unit/test_unit_testinfra.py; here sshd runs on 127.0.0.2, 127.0.0.3..., a
second dockerd on its own socket, ``local-env``'s stand-ins start, answer and
stop, and the two-node swarm that ``swarm-up`` built answers from its namespaces.
Each test skips with the way to get its component when it is absent.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import fabric
import invoke
import paramiko
import pytest
from invoke import Context

from tools.testinfra import docker, packages
from tools.testinfra import process as proc
from tools.testinfra import provision, sshd, standins
from tools.testinfra import swarm as swarm_infra
from tools.testinfra import tasks as infra
from tools.testinfra.__main__ import main
from tools.testinfra.sshd import SshFleet
from tools.testinfra.swarm import Swarm

#: fab cannot run a task with this pair (fabric 3.2.3 requires invoke<3).
FAB_BROKEN = fabric.__version_info__ <= (3, 2, 2) and invoke.__version__[0] >= "3"

needs_sshd = pytest.mark.skipif(not sshd.SSHD.exists(), reason=sshd.NEEDS_SSHD)


# -- real sshd ---------------------------------------------------------------------


@needs_sshd
@pytest.mark.sshd
def test_fabric_runs_with_host_key_checking_and_refuses_unknown_keys(
    tmp_path: Path,
) -> None:
    known = tmp_path / "known_hosts"
    address = "127.0.0.2"
    host = sshd.start_sshd(
        address, proc.free_port(address), tmp_path / "h1", known_hosts=known
    )
    try:
        config = tmp_path / "ssh_config"
        config.write_text(sshd.ssh_config_snippet(host, known))
        with sshd.fabric_connection(host.name, config) as c:
            assert c.run("echo $SSH_CONNECTION", hide=True).stdout.split()[2:] == [
                address,
                str(host.port),
            ]
        # A host whose key is not in known_hosts is refused, never added.
        other = tmp_path / "other_known_hosts"
        other.touch()
        config.write_text(sshd.ssh_config_snippet(host, other))
        with sshd.fabric_connection(host.name, config) as stranger:
            with pytest.raises(paramiko.SSHException, match="not found in known_h"):
                stranger.run("true", hide=True)
        assert other.read_text() == ""
        assert host.running()
    finally:
        assert sshd.stop_sshd(host)
    assert not host.running()
    assert not sshd.stop_sshd(host)


@needs_sshd
@pytest.mark.sshd
def test_sshd_that_cannot_bind_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.2", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="(?s)did not start.*Cannot bind any"):
            sshd.start_sshd("127.0.0.2", port, tmp_path)


@pytest.mark.sshd
def test_fleet_of_hosts_with_openssh_and_a_dropped_session(
    ssh_hosts: Callable[[int], SshFleet], tmp_path: Path
) -> None:
    fleet = ssh_hosts(2)
    assert [h.address for h in fleet.hosts] == ["127.0.0.2", "127.0.0.3"]
    assert len(fleet.known_hosts.read_text().splitlines()) == 2
    # OpenSSH reads the same files, strictly.
    ssh = ["ssh", "-F", str(fleet.ssh_config), "h2", "echo $SSH_CONNECTION"]
    assert "127.0.0.3" in subprocess.run(ssh, capture_output=True, text=True).stdout
    # A host that dies mid-session: the client sees a dropped connection.
    with fleet.connection("h2") as c:
        c.run("true", hide=True)
        sshd.stop_sshd(fleet.host("h2"), sessions=True)
        with pytest.raises((EOFError, OSError, paramiko.SSHException)):
            c.run("true", hide=True)
    assert not fleet.host("h2").running() and fleet.host("h1").running()
    assert [h.name for h in fleet.add(1)] == ["h3"]


@pytest.mark.sshd
@pytest.mark.xfail(
    FAB_BROKEN,
    reason="fabric 3.2.2 with invoke 3: ConnectionCall.make_context() got an "
    "unexpected keyword argument 'core_parse_result' (fabric 3.2.3 pins invoke<3)",
    strict=True,
)
def test_fab_cli_reaches_hosts_through_ssh_config(
    ssh_hosts: Callable[[int], SshFleet], tmp_path: Path
) -> None:
    fleet = ssh_hosts(2)
    # `fab -S FILE -H h1 TASK`: the task gives its Connection our host key check.
    (tmp_path / "fabfile.py").write_text(textwrap.dedent("""\
        from fabric import task
        from tools.testinfra.sshd import enforce_known_hosts

        @task
        def where(c):
            enforce_known_hosts(c)
            print(c.run("echo $SSH_CONNECTION", hide=True).stdout.split()[2])
        """))
    fab = [sys.executable, "-m", "fabric", "-r", str(tmp_path)]
    fab += ["-S", str(fleet.ssh_config), "-H", "h1,h2", "where"]
    done = subprocess.run(fab, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["127.0.0.2", "127.0.0.3"], done.stderr
    fleet.known_hosts.write_text("")
    done = subprocess.run(fab, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "'[127.0.0.2]:" in done.stderr and "not found in known_hosts" in done.stderr


# -- real Docker engine --------------------------------------------------------------


@pytest.mark.docker
def test_busybox_image_imports_once_and_runs(docker_engine: str) -> None:
    tag = f"cicd-busybox-test:{uuid.uuid4().hex[:8]}"
    try:
        assert docker.build_busybox_image(tag)
        assert not docker.build_busybox_image(tag)
        assert proc.run(docker.check_image_argv(tag)).stdout == "ok\n"
    finally:
        proc.run(["docker", "image", "rm", tag], check=False)


@pytest.mark.docker
def test_up_is_a_no_op_when_provisioned(busybox_image: str, tmp_path: Path) -> None:
    if packages.missing_packages():
        pytest.skip("needs the packages infra.up installs")
    lines: list[str] = []
    assert not docker.start_dockerd(tmp_path)
    assert not provision.up(tmp_path, say=lines.append)
    assert [line.split(":")[0] for line in lines] == [
        "packages",
        "dockerd",
        f"image {busybox_image.split(':')[0]}",
    ]
    assert "'ok'" in lines[2]
    infra.up(Context(), state_dir=str(tmp_path))
    infra.down(Context(), state_dir=str(tmp_path))
    assert main(["up", "--state-dir", str(tmp_path)]) == 0


@pytest.mark.docker
def test_a_second_engine_starts_and_stops_on_its_own_socket(docker_engine: str) -> None:
    # A short path: containerd's sockets live under the exec root (108-byte limit).
    state = Path(tempfile.mkdtemp(prefix="cicd-d-"))
    socket_path = str(state / "docker.sock")
    try:
        assert docker.start_dockerd(state, socket_path)
        assert docker.docker_ok(socket_path)
        networks = docker.docker_argv(
            "network", "ls", "--format", "{{.Driver}}", socket_path=socket_path
        )
        assert "bridge" not in proc.run(networks).stdout.split()
        assert not docker.start_dockerd(state, socket_path)
    finally:
        assert docker.stop_dockerd(state)
        shutil.rmtree(state, ignore_errors=True)
    assert not docker.docker_ok(socket_path)
    assert not docker.mounts_under(state)


@pytest.mark.docker
def test_dockerd_that_exits_is_a_clear_error(docker_engine: str) -> None:
    state = Path(tempfile.mkdtemp(prefix="cicd-d-"))
    (state / "docker").write_text("not a directory")  # its data root
    try:
        with pytest.raises(RuntimeError, match="dockerd exited"):
            docker.start_dockerd(state, str(state / "docker.sock"))
    finally:
        docker.stop_dockerd(state)
        shutil.rmtree(state)


# -- the two-node swarm (swarm-up) ----------------------------------------------------


def _on(socket_path: str, *args: str) -> str:
    return proc.run(docker.docker_argv(*args, socket_path=socket_path)).stdout


@pytest.mark.docker
def test_swarm_has_two_ready_nodes_each_in_its_namespace(swarm: Swarm) -> None:
    listing = _on(swarm.manager_socket, "node", "ls", "--format", "{{.Status}}")
    assert listing.split() == ["Ready", "Ready"]
    # Both nodes have the host's hostname: a label tells them apart.
    label = '{{index .Spec.Labels "cicd.node"}}'
    nodes = _on(swarm.manager_socket, "node", "ls", "-q").split()
    labels = _on(swarm.manager_socket, "node", "inspect", *nodes, "--format", label)
    assert sorted(labels.split()) == ["node1", "node2"]
    # A host-network container on the worker is in the worker's namespace.
    run = ("run", "--rm", "--network", "host", swarm.image, "ip", "-4", "addr")
    addresses = _on(swarm.worker_socket, *run)
    assert f"inet {swarm.worker_addr}/24" in addresses
    assert swarm.manager_addr not in addresses and "eth0" not in addresses
    # ...and the swarm's ranges exist only in the namespaces.
    assert swarm_infra.host_leaks() == []


@pytest.mark.docker
def test_swarm_registry_round_trip(swarm: Swarm) -> None:
    image = f"{swarm.registry}/cicd-test-{uuid.uuid4().hex[:8]}:1"
    sockets = (swarm.manager_socket, swarm.worker_socket)
    try:
        _on(swarm.manager_socket, "tag", swarm.image, image)
        _on(swarm.manager_socket, "push", image)
        _on(swarm.worker_socket, "pull", image)
        inspect = ("image", "inspect", image, "--format", "{{.Id}}")
        assert _on(swarm.worker_socket, *inspect) == _on(swarm.manager_socket, *inspect)
    finally:
        for socket_path in sockets:
            rm = docker.docker_argv("image", "rm", image, socket_path=socket_path)
            proc.run(rm, check=False)


@pytest.mark.docker
def test_swarm_global_host_service_runs_a_task_in_each_namespace(
    swarm: Swarm,
) -> None:
    name = f"cicd-test-{uuid.uuid4().hex[:8]}"
    create = ["service", "create", "-d", "--name", name, "--mode", "global"]
    # --no-resolve-image: no registry lookup for a local image (none is reachable).
    create += ["--network", "host", "--no-resolve-image"]
    create += [swarm.image, "sh", "-c", "ip -4 addr; exec sleep 600"]
    _on(swarm.manager_socket, *create)
    sockets = (swarm.manager_socket, swarm.worker_socket)
    task = f"label=com.docker.swarm.service.name={name}"
    try:
        seen: dict[str, str] = {}
        limit = time.monotonic() + 60
        while len(seen) < len(sockets) and time.monotonic() < limit:
            for socket_path in sockets:
                ids = _on(socket_path, "ps", "-q", "--filter", task).split()
                logs = _on(socket_path, "logs", ids[0]) if ids else ""
                if "inet " in logs:
                    seen[socket_path] = logs
            time.sleep(0.3)
        assert f"inet {swarm.manager_addr}/24" in seen[swarm.manager_socket]
        assert f"inet {swarm.worker_addr}/24" in seen[swarm.worker_socket]
    finally:
        _on(swarm.manager_socket, "service", "rm", name)


# -- local stand-ins (local-env) ------------------------------------------------------


@pytest.mark.sshd
@needs_sshd
def test_local_env_starts_and_stops(tmp_path: Path) -> None:
    pytest.importorskip("moto.server")
    env = standins.local_env(tmp_path, say=lambda line: None)
    try:
        lines = standins.export_lines(env)
        assert lines.count("export INFRA_CHECK_") == len(env)
        with urllib.request.urlopen(env["CICD_HEALTH_URLS"], timeout=5) as answer:
            assert answer.read() == b"ok"
        runs = urllib.request.Request(
            f"{env['GITHUB_API_URL']}/repos/{env['GITHUB_REPOSITORY']}/actions/runs",
            headers={"Authorization": f"Bearer {env['GITHUB_TOKEN']}"},
        )
        with urllib.request.urlopen(runs, timeout=5) as answer:
            assert json.load(answer)["workflow_runs"]
        listing = f"{env['MANGETAMAIN_S3_ENDPOINT']}/{env['MANGETAMAIN_S3_BUCKET']}"
        with urllib.request.urlopen(listing, timeout=5) as answer:
            assert b"recipes.parquet" in answer.read()
    finally:
        stopped = standins.stop_local_env(tmp_path)
    assert sorted(stopped) == ["http", "s3", "sshd"]
    assert standins.stop_local_env(tmp_path) == []
    assert main(["local-env-stop", "--dir", str(tmp_path)]) == 0
