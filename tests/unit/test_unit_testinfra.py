"""Unit tests of the test infrastructure (:mod:`tests.testinfra`, ``infra.*`` tasks).

The builders are checked as data: the sshd and ssh_config texts are parsed back
(by paramiko for the client side), argv lists are inspected. The real parts run for
real when the component is installed (sshd on 127.0.0.2, the Docker engine that
``invoke infra.up`` starts) and skip with the way to get it otherwise.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import fabric
import invoke
import paramiko
import pytest
from fabric import Connection
from invoke import Context
from invoke.exceptions import Exit

from tests import testinfra
from tests import infra_tasks as infra
from tests.testinfra import SshFleet, SshHost
from tests import infra_fixtures

#: fab cannot run a task with this pair (fabric 3.2.3 requires invoke<3).
FAB_BROKEN = fabric.__version_info__ <= (3, 2, 2) and invoke.__version__[0] >= "3"

ssh_hosts = infra_fixtures.ssh_hosts
docker_engine = infra_fixtures.docker_engine
busybox_image = infra_fixtures.busybox_image

needs_sshd = pytest.mark.skipif(
    not testinfra.SSHD.exists(), reason=testinfra.NEEDS_SSHD
)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPOGTIdYZkEBSdGLeR44UfglWRA8LPxBajRD4hqSKV4b"
NEW = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDmdX6QV4Rti4qnXxstHR9J5Z2hOMSkhFcmiY8f/iB10"


def _host(tmp_path: Path) -> SshHost:
    return SshHost("h1", "127.0.0.2", 2222, "root", tmp_path / "id", tmp_path)


# -- builders -------------------------------------------------------------------


def test_dockerd_argv_keeps_containers_off_every_network(tmp_path: Path) -> None:
    argv = testinfra.dockerd_argv(tmp_path)
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
    assert testinfra.docker_argv("info") == ["docker", "info"]
    assert testinfra.docker_argv("info", socket_path="/s") == [
        "docker",
        "-H",
        "unix:///s",
        "info",
    ]
    imported = testinfra.docker_import_argv(tmp_path / "r.tar", "t:1")
    assert imported[:2] == ["docker", "import"]
    assert imported[-2:] == [str(tmp_path / "r.tar"), "t:1"]
    check = testinfra.check_image_argv("t:1")
    assert check[check.index("--network") + 1] == "host"
    assert check[-4:] == ["t:1", "busybox", "echo", "ok"]
    tar = testinfra.tar_argv(tmp_path, tmp_path / "r.tar")
    assert "--numeric-owner" in tar and tar[-1] == "."


def test_apt_commands_are_non_interactive() -> None:
    assert testinfra.apt_install_argv(["busybox-static"]) == [
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "busybox-static",
    ]
    assert testinfra.dpkg_query_argv("git")[-1] == "git"


def test_sshd_config_listens_only_on_its_loopback_address(tmp_path: Path) -> None:
    state = tmp_path / "with space"
    text = testinfra.sshd_config_text("127.0.0.2", 2222, state)
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
    text = testinfra.ssh_config_snippet(_host(tmp_path), known)
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
    assert testinfra.known_hosts_files(options) == [known]


def test_known_hosts_files_default_and_several(tmp_path: Path) -> None:
    home = Path("~/.ssh/known_hosts").expanduser()
    assert testinfra.known_hosts_files({}) == [home]
    both = f"{tmp_path}/one {tmp_path}/two"
    assert testinfra.known_hosts_files({"userknownhostsfile": both}) == [
        tmp_path / "one",
        tmp_path / "two",
    ]
    assert testinfra.known_hosts_files({"userknownhostsfile": ["/x"]}) == [Path("/x")]


def test_known_hosts_line_format_and_replacement(tmp_path: Path) -> None:
    line = testinfra.known_hosts_line("127.0.0.2", 2222, KEY)
    assert line == f"[127.0.0.2]:2222 {KEY}"
    assert testinfra.known_hosts_line("127.0.0.2", 2222, f"{KEY} u@box\n") == line
    assert testinfra.known_hosts_line("127.0.0.2", 22, KEY).startswith("127.0.0.2 ")
    known = tmp_path / "known_hosts"
    other = testinfra.known_hosts_line("127.0.0.3", 2222, KEY)
    testinfra.add_known_host(known, line)
    testinfra.add_known_host(known, other)
    new = testinfra.known_hosts_line("127.0.0.2", 2222, NEW)
    testinfra.add_known_host(known, new)
    assert known.read_text().splitlines() == [other, new]
    # paramiko finds a non-22 port under the bracketed name.
    assert paramiko.HostKeys(str(known)).lookup("[127.0.0.3]:2222") is not None


def test_loopback_addresses_and_ports() -> None:
    assert testinfra.loopback_address(0) == "127.0.0.2"
    assert testinfra.loopback_address(7) == "127.0.0.9"
    with pytest.raises(ValueError):
        testinfra.loopback_address(250)
    assert 1024 < testinfra.free_port("127.0.0.2") < 65536


def test_keygen_argv_has_no_passphrase(tmp_path: Path) -> None:
    argv = testinfra.keygen_argv(tmp_path / "k", "c")
    assert argv[argv.index("-N") + 1] == ""
    assert argv[argv.index("-t") + 1] == "ed25519"


# -- local effects --------------------------------------------------------------


def test_run_reports_the_failing_command() -> None:
    with pytest.raises(RuntimeError, match="exited 3: boom"):
        testinfra.run(["sh", "-c", "echo boom >&2; exit 3"])
    assert not testinfra.succeeds(["/nonexistent/program"])
    assert testinfra.succeeds(["true"])


@pytest.mark.skipif(not shutil.which("dpkg-query"), reason="needs dpkg (Debian)")
def test_missing_packages_asks_dpkg() -> None:
    assert testinfra.missing_packages(["cicd-no-such-package"]) == [
        "cicd-no-such-package"
    ]
    assert testinfra.install_packages([]) == []


def test_services_are_held_back_while_installing(tmp_path: Path) -> None:
    policy = tmp_path / "policy-rc.d"
    with testinfra.services_held_back(policy):
        assert subprocess.run([str(policy)]).returncode == 101
    assert not policy.exists()
    policy.write_text("#!/bin/sh\nexit 0\n")
    with testinfra.services_held_back(policy):
        pass
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"


def test_kill_pidfile_stops_only_the_named_program(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    assert not testinfra.kill_pidfile(pidfile, "sleep")
    process = subprocess.Popen(["sleep", "30"])
    pidfile.write_text(f"{process.pid}\n")
    assert not testinfra.kill_pidfile(pidfile, "dockerd")  # a recycled pid: spared
    assert process.poll() is None and not pidfile.exists()
    pidfile.write_text(f"{process.pid}\n")
    assert testinfra.kill_pidfile(pidfile, "sleep", deadline=5)
    assert process.wait(5) == -15


def test_stop_dockerd_leaves_engines_it_did_not_start(tmp_path: Path) -> None:
    assert not testinfra.stop_dockerd(tmp_path)
    lines: list[str] = []
    assert not testinfra.down(tmp_path, say=lines.append)
    assert lines == ["dockerd: none started by infra.up is running; nothing to stop"]
    assert testinfra.main(["down", "--state-dir", str(tmp_path)]) == 0


def test_mounts_under_reads_the_escaped_table(tmp_path: Path) -> None:
    table = tmp_path / "mounts"
    table.write_text(
        f"nsfs {tmp_path}/s\\040d/exec/netns/default nsfs rw 0 0\n"
        f"/dev/vda {tmp_path}/s\\040d/exec ext4 rw 0 0\n"
        f"/dev/vda {tmp_path}/s\\040dx ext4 rw 0 0\n"
        "proc /proc proc rw 0 0\n"
    )
    assert testinfra.mounts_under(tmp_path / "s d" / "exec", str(table)) == [
        f"{tmp_path}/s d/exec/netns/default",
        f"{tmp_path}/s d/exec",
    ]


@pytest.mark.skipif(not testinfra.BUSYBOX.exists(), reason="needs busybox-static")
def test_busybox_rootfs_layout(tmp_path: Path) -> None:
    root = testinfra.busybox_rootfs(tmp_path / "root")
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


# -- real sshd ---------------------------------------------------------------------


@needs_sshd
@pytest.mark.sshd
def test_fabric_runs_with_host_key_checking_and_refuses_unknown_keys(
    tmp_path: Path,
) -> None:
    known = tmp_path / "known_hosts"
    address = "127.0.0.2"
    host = testinfra.start_sshd(
        address, testinfra.free_port(address), tmp_path / "h1", known_hosts=known
    )
    try:
        config = tmp_path / "ssh_config"
        config.write_text(testinfra.ssh_config_snippet(host, known))
        with testinfra.fabric_connection(host.name, config) as c:
            assert c.run("echo $SSH_CONNECTION", hide=True).stdout.split()[2:] == [
                address,
                str(host.port),
            ]
        # A host whose key is not in known_hosts is refused, never added.
        other = tmp_path / "other_known_hosts"
        other.touch()
        config.write_text(testinfra.ssh_config_snippet(host, other))
        with testinfra.fabric_connection(host.name, config) as stranger:
            with pytest.raises(paramiko.SSHException, match="not found in known_h"):
                stranger.run("true", hide=True)
        assert other.read_text() == ""
        assert host.running()
    finally:
        assert testinfra.stop_sshd(host)
    assert not host.running()
    assert not testinfra.stop_sshd(host)


def test_sshd_missing_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(testinfra, "SSHD", tmp_path / "sshd")
    with pytest.raises(RuntimeError, match="apt-get install openssh-server"):
        testinfra.start_sshd("127.0.0.2", 2222, tmp_path)


def test_waiting_for_ssh_needs_a_banner() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.2", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(TimeoutError, match=f"no SSH server on 127.0.0.2:{port}"):
            testinfra.wait_for_ssh("127.0.0.2", port, deadline=0.2)


@needs_sshd
@pytest.mark.sshd
def test_sshd_that_cannot_bind_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.2", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="(?s)did not start.*Cannot bind any"):
            testinfra.start_sshd("127.0.0.2", port, tmp_path)


def test_cli_reports_errors_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert testinfra.main(["up", "--state-dir", "/proc/cicd-no"]) == 1
    assert capsys.readouterr().out.startswith("==> error: ")


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
        testinfra.stop_sshd(fleet.host("h2"), sessions=True)
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
        from tests.testinfra import enforce_known_hosts

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
        assert testinfra.build_busybox_image(tag)
        assert not testinfra.build_busybox_image(tag)
        assert testinfra.run(testinfra.check_image_argv(tag)).stdout == "ok\n"
    finally:
        testinfra.run(["docker", "image", "rm", tag], check=False)


@pytest.mark.docker
def test_up_is_a_no_op_when_provisioned(busybox_image: str, tmp_path: Path) -> None:
    if testinfra.missing_packages():
        pytest.skip("needs the packages infra.up installs")
    lines: list[str] = []
    assert not testinfra.start_dockerd(tmp_path)
    assert not testinfra.up(tmp_path, say=lines.append)
    assert [line.split(":")[0] for line in lines] == [
        "packages",
        "dockerd",
        f"image {busybox_image.split(':')[0]}",
    ]
    assert "'ok'" in lines[2]
    infra.up(Context(), state_dir=str(tmp_path))
    infra.down(Context(), state_dir=str(tmp_path))
    assert testinfra.main(["up", "--state-dir", str(tmp_path)]) == 0


@pytest.mark.docker
def test_a_second_engine_starts_and_stops_on_its_own_socket(docker_engine: str) -> None:
    # A short path: containerd's sockets live under the exec root (108-byte limit).
    state = Path(tempfile.mkdtemp(prefix="cicd-d-"))
    socket_path = str(state / "docker.sock")
    try:
        assert testinfra.start_dockerd(state, socket_path)
        assert testinfra.docker_ok(socket_path)
        networks = testinfra.docker_argv(
            "network", "ls", "--format", "{{.Driver}}", socket_path=socket_path
        )
        assert "bridge" not in testinfra.run(networks).stdout.split()
        assert not testinfra.start_dockerd(state, socket_path)
    finally:
        assert testinfra.stop_dockerd(state)
        shutil.rmtree(state, ignore_errors=True)
    assert not testinfra.docker_ok(socket_path)
    assert not testinfra.mounts_under(state)


@pytest.mark.docker
def test_dockerd_that_exits_is_a_clear_error(docker_engine: str) -> None:
    state = Path(tempfile.mkdtemp(prefix="cicd-d-"))
    (state / "docker").write_text("not a directory")  # its data root
    try:
        with pytest.raises(RuntimeError, match="dockerd exited"):
            testinfra.start_dockerd(state, str(state / "docker.sock"))
    finally:
        testinfra.stop_dockerd(state)
        shutil.rmtree(state)
