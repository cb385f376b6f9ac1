"""Unit tests of the test infrastructure (:mod:`tools.testinfra`, ``infra.*`` tasks).

The builders are checked as data: the sshd and ssh_config texts are parsed back
(by paramiko for the client side), argv lists are inspected. Nothing here starts a
daemon: what starts sshd or dockerd is in tests/integration/test_testinfra.py.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
import tomllib
from pathlib import Path

import paramiko
import pytest
import yaml
from fabric import Connection
from invoke.exceptions import Exit

from tools.testinfra import docker, packages
from tools.testinfra import process as proc
from tools.testinfra import provision, sshd, swarm
from tools.testinfra import tasks as infra
from tools.testinfra.__main__ import main
from tools.testinfra.sshd import SshHost

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPOGTIdYZkEBSdGLeR44UfglWRA8LPxBajRD4hqSKV4b"
NEW = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDmdX6QV4Rti4qnXxstHR9J5Z2hOMSkhFcmiY8f/iB10"


def _host(tmp_path: Path) -> SshHost:
    return SshHost("h1", "127.0.0.2", 2222, "root", tmp_path / "id", tmp_path)


# -- builders -------------------------------------------------------------------


def test_dockerd_argv_keeps_containers_off_every_network(tmp_path: Path) -> None:
    argv = docker.dockerd_argv(tmp_path)
    assert argv[0] == "dockerd"
    for flag in (
        "--storage-driver=vfs",
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
    ):
        assert flag in argv
    options = dict(zip(argv[1::2], argv[2::2]))
    assert options["--data-root"] == str(tmp_path / "docker")
    assert options["--exec-root"] == str(tmp_path / "exec")
    assert argv[-2:] == ["-H", "unix:///var/run/docker.sock"]


def test_docker_commands_are_data(tmp_path: Path) -> None:
    assert docker.docker_argv("info") == ["docker", "info"]
    assert docker.docker_argv("info", socket_path="/s") == [
        "docker",
        "-H",
        "unix:///s",
        "info",
    ]
    imported = docker.docker_import_argv(tmp_path / "r.tar", "t:1")
    assert imported[:2] == ["docker", "import"]
    assert imported[-2:] == [str(tmp_path / "r.tar"), "t:1"]
    check = docker.check_image_argv("t:1")
    assert check[check.index("--network") + 1] == "host"
    assert check[-4:] == ["t:1", "busybox", "echo", "ok"]
    tar = docker.tar_argv(tmp_path, tmp_path / "r.tar")
    assert "--numeric-owner" in tar and tar[-1] == "."


def test_swarm_network_commands_stay_inside_the_namespaces() -> None:
    assert swarm.netns_add_argv("cicd-swarm1") == ["ip", "netns", "add", "cicd-swarm1"]
    assert swarm.in_netns(Path("/run/netns/n"), ["ip", "a"]) == [
        "nsenter",
        "--net=/run/netns/n",
        "ip",
        "a",
    ]
    # The veth is made inside the manager's namespace, its peer straight in the
    # worker's: never a link of the host namespace.
    assert swarm.veth_argv() == [
        "nsenter",
        "--net=/run/netns/cicd-swarm1",
        *("ip", "link", "add", "cicdsw1", "type", "veth"),
        *("peer", "name", "cicdsw2", "netns", "cicd-swarm2"),
    ]
    assert swarm.addr_add_argv("cicd-swarm2", "cicdsw2", swarm.WORKER_ADDR) == [
        "nsenter",
        "--net=/run/netns/cicd-swarm2",
        *("ip", "addr", "add", "10.231.0.2/24", "dev", "cicdsw2"),
    ]
    assert swarm.link_up_argv("cicd-swarm1", "lo")[-4:] == ["link", "set", "lo", "up"]
    assert swarm.link_delete_argv("cicd-swarm1", "cicdsw1")[-3:] == [
        "link",
        "delete",
        "cicdsw1",
    ]
    assert swarm.netns_delete_argv("x") == ["ip", "netns", "delete", "x"]


def test_swarm_ranges_are_private_and_apart() -> None:
    link = ipaddress.ip_network(f"{swarm.MANAGER_ADDR}/{swarm.PREFIX_LENGTH}", False)
    assert ipaddress.ip_address(swarm.WORKER_ADDR) in link
    overlay = ipaddress.ip_network(swarm.OVERLAY_POOL)
    local = ipaddress.ip_network(swarm.LOCAL_POOL.split(",")[0].removeprefix("base="))
    for network in (link, overlay, local):
        assert network.is_private
    assert not link.overlaps(overlay) and not overlay.overlaps(local)
    assert not link.overlaps(local)
    assert swarm.REGISTRY == f"{swarm.MANAGER_ADDR}:5000"


def test_swarm_daemons_have_their_own_paths(tmp_path: Path) -> None:
    config = tomllib.loads(swarm.containerd_config(tmp_path))
    assert config["version"] == 2
    assert config["root"] == str(tmp_path / "containerd")
    assert config["state"] == str(tmp_path / "containerd-state")
    assert config["grpc"]["address"] == str(tmp_path / "containerd.sock")
    assert config["grpc"]["tcp_address"] == config["metrics"]["address"] == ""
    assert "io.containerd.grpc.v1.cri" in config["disabled_plugins"]
    assert swarm.containerd_argv(tmp_path, "cicd-swarm2") == [
        "nsenter",
        "--net=/run/netns/cicd-swarm2",
        *("containerd", "--config", str(tmp_path / "containerd.toml")),
    ]
    argv = swarm.swarm_dockerd_argv(tmp_path, "cicd-swarm1")
    assert argv[:3] == ["nsenter", "--net=/run/netns/cicd-swarm1", "dockerd"]
    for flag in ("--storage-driver=vfs", *docker.DOCKERD_NETWORK_FLAGS):
        assert flag in argv
    options = dict(zip(argv[3::2], argv[4::2]))
    assert options["--containerd"] == str(tmp_path / "containerd.sock")
    assert options["--config-file"] == str(tmp_path / "daemon.json")
    assert options["--insecure-registry"] == swarm.REGISTRY
    assert options["--default-address-pool"] == swarm.LOCAL_POOL
    for flag, name in (("--data-root", "docker"), ("--exec-root", "exec")):
        assert options[flag] == str(tmp_path / name)
    assert options["--pidfile"] == str(tmp_path / "dockerd.pid")
    assert options["-H"] == f"unix://{tmp_path / 'docker.sock'}"
    assert swarm.DOCKERD_ENV == {"DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}


def test_swarm_init_and_join_commands() -> None:
    init = swarm.swarm_init_argv("/m.sock")
    assert init[:5] == ["docker", "-H", "unix:///m.sock", "swarm", "init"]
    options = dict(zip(init[5::2], init[6::2]))
    assert options == {
        "--advertise-addr": "10.231.0.1",
        "--listen-addr": "10.231.0.1:2377",
        "--default-addr-pool": swarm.OVERLAY_POOL,
        "--default-addr-pool-mask-length": "24",
    }
    assert swarm.join_token_argv("/m.sock")[-4:] == [
        "swarm",
        "join-token",
        "-q",
        "worker",
    ]
    join = swarm.swarm_join_argv("/w.sock", "SWMTKN-1-x")
    assert join[:5] == ["docker", "-H", "unix:///w.sock", "swarm", "join"]
    assert dict(zip(join[5:-1:2], join[6:-1:2])) == {
        "--token": "SWMTKN-1-x",
        "--advertise-addr": "10.231.0.2",
        "--listen-addr": "10.231.0.2:2377",
    }
    assert join[-1] == "10.231.0.1:2377"
    assert swarm.node_ls_argv("/m.sock")[-4:] == [
        "node",
        "ls",
        "--format",
        "{{.Status}}",
    ]
    label = swarm.node_label_argv("/m.sock", "abc", "node2")
    assert label[-4:] == ["update", "--label-add", "cicd.node=node2", "abc"]


def test_registry_serves_plain_http_on_its_address_only(tmp_path: Path) -> None:
    config = yaml.safe_load(swarm.registry_config(tmp_path))
    assert config["http"] == {"addr": "10.231.0.1:5000"}
    assert config["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "data")
    assert "auth" not in config and "notifications" not in config
    assert swarm.registry_argv(tmp_path) == [
        "nsenter",
        "--net=/run/netns/cicd-swarm1",
        *("/usr/bin/docker-registry", "serve", str(tmp_path / "config.yml")),
    ]
    probe = swarm.registry_probe_argv()
    assert probe[:2] == ["nsenter", "--net=/run/netns/cicd-swarm1"]
    assert "-T" not in probe  # busybox 1.35's wget segfaults with it
    assert probe[-1] == "http://10.231.0.1:5000/v2/"


def test_swarm_description_and_its_absence(tmp_path: Path) -> None:
    described = swarm.describe(tmp_path)
    assert described.manager_socket == str(tmp_path / "swarm/node1/docker.sock")
    assert described.worker_socket == str(tmp_path / "swarm/node2/docker.sock")
    assert described.manager_netns == Path("/run/netns/cicd-swarm1")
    assert described.worker_netns == Path("/run/netns/cicd-swarm2")
    assert (described.manager_addr, described.worker_addr) == (
        "10.231.0.1",
        "10.231.0.2",
    )
    assert (described.registry, described.image) == (
        "10.231.0.1:5000",
        "cicd-busybox:latest",
    )
    # No engine on that socket: not a swarm (the fixture then skips).
    assert swarm.ready_nodes(tmp_path) == 0 and not swarm.swarm_ok(tmp_path)
    assert "swarm-up" in swarm.NEEDS_SWARM and "docker-registry" in swarm.NEEDS_SWARM
    assert "docker-registry" in packages.PACKAGES


def test_apt_commands_are_non_interactive() -> None:
    assert packages.apt_install_argv(["busybox-static"]) == [
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "busybox-static",
    ]
    assert packages.dpkg_query_argv("git")[-1] == "git"


def test_sshd_config_listens_only_on_its_loopback_address(tmp_path: Path) -> None:
    state = tmp_path / "with space"
    text = sshd.sshd_config_text("127.0.0.2", 2222, state)
    options = [line.split(None, 1) for line in text.splitlines() if line[:1].isalpha()]
    keys = [key for key, _ in options]
    assert len(keys) == len(set(keys))
    config = dict(options)
    assert config["ListenAddress"] == "127.0.0.2:2222"
    assert config["HostKey"] == f'"{state / "ssh_host_ed25519_key"}"'
    assert config["AuthorizedKeysFile"] == f'"{state / "authorized_keys"}"'
    assert config["PidFile"] == f'"{state / "sshd.pid"}"'
    for key, value in {
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "PermitRootLogin": "prohibit-password",
        "StrictModes": "no",
        "UsePAM": "no",
        "LogLevel": "VERBOSE",
    }.items():
        assert config[key] == value


def test_ssh_config_snippet_is_what_paramiko_reads(tmp_path: Path) -> None:
    known = tmp_path / "a b" / "known_hosts"
    text = sshd.ssh_config_snippet(_host(tmp_path), known)
    options = paramiko.SSHConfig.from_text(text).lookup("h1")
    assert options["hostname"] == "127.0.0.2"
    assert options["port"] == "2222"
    assert options["user"] == "root"
    assert options["identityfile"] == [str(tmp_path / "id")]
    assert options["identitiesonly"] == "yes"
    assert options["stricthostkeychecking"] == "yes"
    assert options["connecttimeout"] == "5"
    known.parent.mkdir()
    known.touch()
    assert sshd.known_hosts_files(options) == [known]


def test_known_hosts_files_default_and_several(tmp_path: Path) -> None:
    home = Path("~/.ssh/known_hosts").expanduser()
    assert sshd.known_hosts_files({}) == [home]
    both = f"{tmp_path}/one {tmp_path}/two"
    assert sshd.known_hosts_files({"userknownhostsfile": both}) == [
        tmp_path / "one",
        tmp_path / "two",
    ]
    assert sshd.known_hosts_files({"userknownhostsfile": ["/x"]}) == [Path("/x")]


def test_known_hosts_line_format_and_replacement(tmp_path: Path) -> None:
    line = sshd.known_hosts_line("127.0.0.2", 2222, KEY)
    assert line == f"[127.0.0.2]:2222 {KEY}"
    assert sshd.known_hosts_line("127.0.0.2", 2222, f"{KEY} u@box\n") == line
    assert sshd.known_hosts_line("127.0.0.2", 22, KEY).startswith("127.0.0.2 ")
    known = tmp_path / "known_hosts"
    other = sshd.known_hosts_line("127.0.0.3", 2222, KEY)
    sshd.add_known_host(known, line)
    sshd.add_known_host(known, other)
    new = sshd.known_hosts_line("127.0.0.2", 2222, NEW)
    sshd.add_known_host(known, new)
    assert known.read_text().splitlines() == [other, new]
    # paramiko finds a non-22 port under the bracketed name.
    assert paramiko.HostKeys(str(known)).lookup("[127.0.0.3]:2222") is not None


def test_loopback_addresses_and_ports() -> None:
    assert sshd.loopback_address(0) == "127.0.0.2"
    assert sshd.loopback_address(7) == "127.0.0.9"
    with pytest.raises(ValueError):
        sshd.loopback_address(250)
    assert 1024 < proc.free_port("127.0.0.2") < 65536


def test_keygen_argv_has_no_passphrase(tmp_path: Path) -> None:
    argv = sshd.keygen_argv(tmp_path / "k", "c")
    assert argv[argv.index("-N") + 1] == ""
    assert argv[argv.index("-t") + 1] == "ed25519"


# -- local effects --------------------------------------------------------------


def test_run_reports_the_failing_command() -> None:
    with pytest.raises(RuntimeError, match="exited 3: boom"):
        proc.run(["sh", "-c", "echo boom >&2; exit 3"])
    assert not proc.succeeds(["/nonexistent/program"])
    assert proc.succeeds(["true"])


@pytest.mark.skipif(not shutil.which("dpkg-query"), reason="needs dpkg (Debian)")
def test_missing_packages_asks_dpkg() -> None:
    assert packages.missing_packages(["cicd-no-such-package"]) == [
        "cicd-no-such-package"
    ]
    assert packages.install_packages([]) == []


def test_services_are_held_back_while_installing(tmp_path: Path) -> None:
    policy = tmp_path / "policy-rc.d"
    with packages.services_held_back(policy):
        assert subprocess.run([str(policy)]).returncode == 101
    assert not policy.exists()
    policy.write_text("#!/bin/sh\nexit 0\n")
    with packages.services_held_back(policy):
        pass
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"


def test_kill_pidfile_stops_only_the_named_program(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    assert not proc.kill_pidfile(pidfile, "sleep")
    process = subprocess.Popen(["sleep", "30"])
    pidfile.write_text(f"{process.pid}\n")
    assert not proc.kill_pidfile(pidfile, "dockerd")  # a recycled pid: spared
    assert process.poll() is None and not pidfile.exists()
    pidfile.write_text(f"{process.pid}\n")
    assert proc.kill_pidfile(pidfile, "sleep", deadline=5)
    assert process.wait(5) == -15


def test_stop_dockerd_leaves_engines_it_did_not_start(tmp_path: Path) -> None:
    assert not docker.stop_dockerd(tmp_path)
    lines: list[str] = []
    assert not provision.down(tmp_path, say=lines.append)
    assert lines == ["dockerd: none started by infra.up is running; nothing to stop"]
    assert main(["down", "--state-dir", str(tmp_path)]) == 0


def test_mounts_under_reads_the_escaped_table(tmp_path: Path) -> None:
    table = tmp_path / "mounts"
    table.write_text(
        f"nsfs {tmp_path}/s\\040d/exec/netns/default nsfs rw 0 0\n"
        f"/dev/vda {tmp_path}/s\\040d/exec ext4 rw 0 0\n"
        f"/dev/vda {tmp_path}/s\\040dx ext4 rw 0 0\n"
        "proc /proc proc rw 0 0\n"
    )
    assert docker.mounts_under(tmp_path / "s d" / "exec", str(table)) == [
        f"{tmp_path}/s d/exec/netns/default",
        f"{tmp_path}/s d/exec",
    ]


@pytest.mark.skipif(not docker.BUSYBOX.exists(), reason="needs busybox-static")
def test_busybox_rootfs_layout(tmp_path: Path) -> None:
    root = docker.busybox_rootfs(tmp_path / "root")
    assert (root / "bin" / "sh").readlink() == Path("/bin/busybox")
    assert (root / "usr" / "sbin" / "httpd").is_symlink()
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert "nobody:x:65534" in (root / "etc" / "passwd").read_text()


def test_infra_tasks_refuse_to_run_over_ssh() -> None:
    connection = Connection("127.0.0.2", port=9)
    with pytest.raises(Exit, match="run it with invoke, not fab"):
        infra.up(connection)
    with pytest.raises(Exit, match="not fab"):
        infra.down(connection)


def test_sshd_missing_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sshd, "SSHD", tmp_path / "sshd")
    with pytest.raises(RuntimeError, match="apt-get install openssh-server"):
        sshd.start_sshd("127.0.0.2", 2222, tmp_path)


def test_waiting_for_ssh_needs_a_banner() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.2", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(TimeoutError, match=f"no SSH server on 127.0.0.2:{port}"):
            sshd.wait_for_ssh("127.0.0.2", port, deadline=0.2)


def test_cli_reports_errors_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--state-dir", "/proc/cicd-no"]) == 1
    assert capsys.readouterr().out.startswith("==> error: ")
