"""Real components for the tests: Debian packages, a Docker engine, a tiny image, sshd.

Everything here provisions *this* machine and listens on 127.0.0.0/8 only (the
network rule of DESIGN.md): dockerd runs without a bridge, iptables or masquerading;
each simulated SSH host is an OpenSSH ``sshd`` on its own loopback address
(127.0.0.2, 127.0.0.3, ...) with temporary host and user keys; the image is a
``docker import`` of Debian's busybox-static, so no registry is needed.

Commands are built as argv lists by small pure functions (tested without running
anything) and run with :mod:`subprocess`. The module uses the standard library only
(Fabric and paramiko are imported inside the functions that need them), so CI can
run it before the project is installed::

    PYTHONPATH=src python3 -m tests.testinfra up --extra chromium
    PYTHONPATH=src python3 -m tests.testinfra down

By hand, ``invoke infra.up`` and ``invoke infra.down`` do the same.

dockerd listens on the default socket, ``/var/run/docker.sock``: ``docker``,
``docker-compose`` and the compose runtime (locally or through the loopback sshd)
then work with no ``DOCKER_HOST`` to pass around. Its data, exec root, pidfile and
log live under the state directory (default ``/var/lib/cicd-testinfra``).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Debian packages the real-component tests need.
PACKAGES = (
    "openssh-server",
    "openssh-client",
    "docker.io",
    "docker-compose",
    "busybox-static",
)
#: Where dockerd's data, logs and pidfile go unless told otherwise.
DEFAULT_STATE_DIR = Path(os.environ.get("CICD_INFRA_DIR", "/var/lib/cicd-testinfra"))
#: The engine's socket: the default one, so ``docker`` needs no ``-H``.
DOCKER_SOCKET = "/var/run/docker.sock"
#: dockerd flags that keep containers off every network but the host's loopback.
DOCKERD_NETWORK_FLAGS = (
    "--bridge=none",
    "--iptables=false",
    "--ip-masq=false",
)
BUSYBOX = Path("/bin/busybox")
BUSYBOX_TAG = "cicd-busybox:latest"
SSHD = Path("/usr/sbin/sshd")
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
#: Tests' skip reasons, shared by fixtures and CI messages.
NEEDS_DOCKER = (
    "needs a Docker engine: run `invoke infra.up` (Debian: docker.io) "
    "— CI's .ci/run does"
)
NEEDS_SSHD = (
    "needs OpenSSH sshd: apt-get install openssh-server (CI's .ci/run installs it)"
)

#: Daemons started by this process, kept so they are reaped, never garbage-collected.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


# -- running commands ---------------------------------------------------------


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float | None = 120,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output as text.

    Args:
        argv: The command and its arguments.
        check: Raise when the command exits non-zero.
        timeout: Seconds before the command is killed (None: no limit).
        env: Extra environment variables.

    Returns:
        The finished process.

    Raises:
        RuntimeError: The command failed (with its stderr) and ``check`` is true.
    """
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[-2000:]
        raise RuntimeError(
            f"{shlex.join(argv)} exited {result.returncode}: {output}".strip()
        )
    return result


def succeeds(argv: Sequence[str], timeout: float = 20) -> bool:
    """Tell whether a command exits 0 (a missing program or a timeout is a no)."""
    try:
        return run(argv, check=False, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie counts as gone)."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def kill_pidfile(pidfile: Path, name: str, deadline: float = 30) -> bool:
    """Stop the process a pidfile names, if it is still ``name``.

    Sends SIGTERM, waits up to ``deadline`` seconds, then SIGKILL. A stale
    pidfile, or one naming another program (a recycled pid), is only removed.

    Args:
        pidfile: The daemon's pidfile.
        name: The program name expected in ``/proc/PID/comm``.
        deadline: Seconds to wait for a clean exit.

    Returns:
        Whether a process was stopped.
    """
    pid = _read_pid(pidfile)
    if pid is None or not _alive(pid) or _comm(pid) != name:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    limit = time.monotonic() + deadline
    while _alive(pid) and time.monotonic() < limit:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
    pidfile.unlink(missing_ok=True)
    return True


# -- Debian packages ------------------------------------------------------------


def dpkg_query_argv(package: str) -> list[str]:
    """Build the command printing a package's install status."""
    return ["dpkg-query", "-W", "-f=${Status}", package]


def apt_install_argv(packages: Sequence[str]) -> list[str]:
    """Build the non-interactive install of ``packages`` (no recommends)."""
    return ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]


def missing_packages(packages: Sequence[str] = PACKAGES) -> list[str]:
    """Return the packages of ``packages`` that dpkg does not list as installed."""
    missing = []
    for package in packages:
        result = run(dpkg_query_argv(package), check=False)
        if not result.stdout.endswith("ok installed"):
            missing.append(package)
    return missing


@contextmanager
def services_held_back(policy: Path = POLICY_RC_D) -> Iterator[None]:
    """Keep apt's maintainer scripts from starting services while installing.

    Without it, installing openssh-server starts sshd on 0.0.0.0:22 and docker.io
    starts dockerd with a bridge and iptables rules: both break the network rule.
    An existing ``policy-rc.d`` is left untouched.
    """
    if policy.exists():
        yield
        return
    policy.write_text(
        "#!/bin/sh\n# written by cicd.testinfra during apt-get\nexit 101\n"
    )
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


def install_packages(
    packages: Sequence[str] = PACKAGES, log: Path | None = None
) -> list[str]:
    """Install the missing packages with apt-get; do nothing when all are there.

    ``apt-get update`` runs only when something is missing. Services the packages
    ship are not started (see :func:`services_held_back`).

    Args:
        packages: Debian package names.
        log: File receiving apt-get's output (default: discarded unless it fails).

    Returns:
        The packages that were installed (empty when all were present).

    Raises:
        RuntimeError: apt-get failed, or something is missing and we are not root.
    """
    missing = missing_packages(packages)
    if not missing:
        return []
    if os.geteuid() != 0:
        raise RuntimeError(f"installing {' '.join(missing)} needs root (sudo)")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    with services_held_back():
        for argv in (["apt-get", "update", "-q"], apt_install_argv(missing)):
            result = run(argv, timeout=None, env=env)
            if log is not None:
                with log.open("a") as handle:
                    handle.write(f"$ {shlex.join(argv)}\n{result.stdout}")
    return missing


# -- Docker engine ------------------------------------------------------------------


def docker_argv(*args: str, socket_path: str | None = None) -> list[str]:
    """Build a docker CLI command, on ``socket_path`` when given."""
    host = ["-H", f"unix://{socket_path}"] if socket_path else []
    return ["docker", *host, *args]


def docker_ok(socket_path: str | None = None) -> bool:
    """Tell whether a Docker engine answers ``docker info``."""
    return succeeds(docker_argv("info", socket_path=socket_path), timeout=20)


def dockerd_argv(state_dir: Path, socket_path: str = DOCKER_SOCKET) -> list[str]:
    """Build the dockerd command line: vfs storage, no bridge, no iptables.

    Args:
        state_dir: Holds the data root, exec root and pidfile.
        socket_path: The API socket.

    Returns:
        The argv of dockerd.
    """
    return [
        "dockerd",
        "--storage-driver=vfs",
        *DOCKERD_NETWORK_FLAGS,
        "--data-root",
        str(state_dir / "docker"),
        "--exec-root",
        str(state_dir / "exec"),
        "--pidfile",
        str(state_dir / "dockerd.pid"),
        "-H",
        f"unix://{socket_path}",
    ]


def start_dockerd(
    state_dir: Path = DEFAULT_STATE_DIR,
    socket_path: str = DOCKER_SOCKET,
    *,
    deadline: float = 60,
    poll: float = 0.5,
) -> bool:
    """Start dockerd unless an engine already answers on ``socket_path``.

    The daemon is detached (its own session) and logs to ``state_dir/dockerd.log``;
    it outlives this process until :func:`stop_dockerd`.

    Args:
        state_dir: Data root, exec root, pidfile and log of the daemon.
        socket_path: The API socket (default: Docker's usual one).
        deadline: Seconds to wait for ``docker info`` to answer.
        poll: Seconds between two tries.

    Returns:
        True if dockerd was started, False if an engine was already answering.

    Raises:
        RuntimeError: dockerd exited or did not answer in time (log tail included).
    """
    if docker_ok(socket_path):
        return False
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "dockerd.log"
    with log.open("ab") as handle:
        process = subprocess.Popen(
            dockerd_argv(state_dir, socket_path),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _CHILDREN[process.pid] = process
    limit = time.monotonic() + deadline
    while time.monotonic() < limit:
        if process.poll() is not None:
            raise RuntimeError(
                f"dockerd exited {process.returncode}; {log}:\n{_tail(log)}"
            )
        if docker_ok(socket_path):
            return True
        time.sleep(poll)
    kill_pidfile(state_dir / "dockerd.pid", "dockerd")
    raise RuntimeError(
        f"dockerd did not answer within {deadline:g} s; {log}:\n{_tail(log)}"
    )


def mounts_under(path: Path, table: str = "/proc/self/mounts") -> list[str]:
    """Return the mount points at or below ``path``, deepest first."""
    prefix = str(path.resolve())
    points = []
    for line in Path(table).read_text().splitlines():
        # The table escapes spaces and backslashes as octal: \040, \134.
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[1])
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def stop_dockerd(state_dir: Path = DEFAULT_STATE_DIR, deadline: float = 30) -> bool:
    """Stop the dockerd that :func:`start_dockerd` started with this state dir.

    An engine started any other way (no pidfile here) is left alone. What dockerd
    leaves mounted under its exec root once stopped (``netns/default``) is
    unmounted, so the state directory can be deleted.

    Returns:
        Whether a dockerd was stopped.
    """
    stopped = kill_pidfile(state_dir / "dockerd.pid", "dockerd", deadline)
    for point in mounts_under(state_dir / "exec"):
        run(["umount", point], check=False)
    return stopped


# -- busybox image --------------------------------------------------------------------

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def busybox_rootfs(dest: Path, busybox: Path = BUSYBOX) -> Path:
    """Lay out a root filesystem around a static busybox.

    ``/bin/busybox`` plus one symlink per applet at its usual place (``bin/sh``,
    ``usr/sbin/httpd``, ``usr/bin/wget``...), ``/tmp``, and an ``/etc/passwd`` with
    root and nobody.

    Args:
        dest: An empty directory that becomes the image's ``/``.
        busybox: A statically linked busybox (Debian's busybox-static).

    Returns:
        ``dest``.
    """
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    target = dest / "bin" / "busybox"
    target.write_bytes(busybox.read_bytes())
    target.chmod(0o755)
    applets = run([str(busybox), "--list-full"]).stdout.split()
    for applet in applets:
        link = dest / applet
        if link.name == "busybox" or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    for directory in ("etc", "root", "proc", "sys", "dev", "var/www", "srv"):
        (dest / directory).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").mkdir(exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    (dest / "etc" / "passwd").write_text(PASSWD)
    (dest / "etc" / "group").write_text(GROUP)
    return dest


def tar_argv(source: Path, tarball: Path) -> list[str]:
    """Build the tar command archiving ``source`` as root-owned files."""
    owner = ["--numeric-owner", "--owner=0", "--group=0"]
    return ["tar", *owner, "-C", str(source), "-cf", str(tarball), "."]


def docker_import_argv(
    tarball: Path, tag: str, socket_path: str | None = None
) -> list[str]:
    """Build ``docker import`` of a root filesystem tarball, with PATH and CMD."""
    changes = ["-c", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin", "-c", 'CMD ["sh"]']
    return docker_argv("import", *changes, str(tarball), tag, socket_path=socket_path)


def image_present(tag: str = BUSYBOX_TAG, socket_path: str | None = None) -> bool:
    """Tell whether the engine has an image called ``tag``."""
    return succeeds(docker_argv("image", "inspect", tag, socket_path=socket_path))


def build_busybox_image(
    tag: str = BUSYBOX_TAG,
    socket_path: str | None = None,
    busybox: Path = BUSYBOX,
) -> bool:
    """Import a busybox image into the engine unless ``tag`` already exists.

    Args:
        tag: The image name.
        socket_path: The engine's socket (default: docker's default).
        busybox: The static busybox binary to put in it.

    Returns:
        True if the image was imported, False if it was already there.
    """
    if image_present(tag, socket_path):
        return False
    with tempfile.TemporaryDirectory(prefix="cicd-busybox-") as work:
        root = busybox_rootfs(Path(work) / "rootfs", busybox)
        tarball = Path(work) / "rootfs.tar"
        run(tar_argv(root, tarball))
        run(docker_import_argv(tarball, tag, socket_path))
    return True


def check_image_argv(
    tag: str = BUSYBOX_TAG, socket_path: str | None = None
) -> list[str]:
    """Build the smoke test of the image: ``busybox echo ok`` in a container."""
    command = ["run", "--rm", "--network", "host", tag, "busybox", "echo", "ok"]
    return docker_argv(*command, socket_path=socket_path)


# -- sshd on loopback addresses ---------------------------------------------------


def loopback_address(index: int) -> str:
    """The address of simulated host ``index`` (0 -> 127.0.0.2, 1 -> 127.0.0.3...)."""
    if not 0 <= index < 250:
        raise ValueError(f"host index out of range: {index}")
    return f"127.0.0.{index + 2}"


def free_port(address: str = "127.0.0.1") -> int:
    """Return a TCP port nothing listens on right now at ``address``."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def current_user() -> str:
    """The login name of the user running this process."""
    return pwd.getpwuid(os.getuid()).pw_name


def keygen_argv(path: Path, comment: str) -> list[str]:
    """Build the creation of an ed25519 key pair without passphrase."""
    return [
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        comment,
        "-f",
        str(path),
    ]


def ensure_key(path: Path, comment: str) -> Path:
    """Create an ed25519 key pair at ``path`` unless it exists; return ``path``."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        run(keygen_argv(path, comment))
    return path


def _quote(value: str | Path) -> str:
    text = str(value)
    return f'"{text}"' if any(c.isspace() for c in text) else text


def sshd_config_text(address: str, port: int, state_dir: Path) -> str:
    """Return an sshd_config listening only on ``address:port``, keys only.

    Args:
        address: A loopback address (127.x.y.z).
        port: The TCP port.
        state_dir: Holds the host key, authorized_keys and pidfile.

    Returns:
        The configuration text.
    """
    return "\n".join(
        [
            "# cicd.testinfra: one simulated host on a loopback address",
            f"ListenAddress {address}:{port}",
            "AddressFamily inet",
            f"HostKey {_quote(state_dir / 'ssh_host_ed25519_key')}",
            f"PidFile {_quote(state_dir / 'sshd.pid')}",
            f"AuthorizedKeysFile {_quote(state_dir / 'authorized_keys')}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "LoginGraceTime 20",
            "StrictModes no",
            "UsePAM no",
            "UseDNS no",
            "PrintMotd no",
            "X11Forwarding no",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
            "",
        ]
    )


def sshd_argv(config: Path, log: Path) -> list[str]:
    """Build the sshd command (it daemonizes; errors and logins go to ``log``)."""
    return [str(SSHD), "-f", str(config), "-E", str(log)]


def known_hosts_line(address: str, port: int, public_key: str) -> str:
    """Return the known_hosts line of a host key served at ``address:port``.

    Args:
        address: The address clients connect to (ssh_config's HostName).
        port: The port; 22 is written bare, others as ``[address]:port``.
        public_key: A ``.pub`` line: ``type base64 [comment]``.

    Returns:
        ``[127.0.0.2]:2222 ssh-ed25519 AAAA...`` (without the comment).
    """
    kind, blob = public_key.split()[:2]
    name = address if port == 22 else f"[{address}]:{port}"
    return f"{name} {kind} {blob}"


def add_known_host(known_hosts: Path, line: str) -> None:
    """Write ``line`` into ``known_hosts``, replacing the same host's old entry."""
    name = line.split()[0]
    old = known_hosts.read_text().splitlines() if known_hosts.exists() else []
    kept = [entry for entry in old if entry.split()[:1] != [name]]
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    known_hosts.write_text("\n".join([*kept, line]) + "\n")


@dataclass(frozen=True)
class SshHost:
    """One simulated host: an sshd on a loopback address, and how to reach it.

    Attributes:
        name: The ssh_config alias (``h1``), what ``fab -H`` is given.
        address: The loopback address sshd listens on.
        port: Its port.
        user: The login user (the one running the tests).
        identity: The private key that logs in.
        state_dir: Host key, config, authorized_keys, pidfile and log.
    """

    name: str
    address: str
    port: int
    user: str
    identity: Path
    state_dir: Path

    @property
    def pidfile(self) -> Path:
        """The pidfile of sshd."""
        return self.state_dir / "sshd.pid"

    @property
    def log(self) -> Path:
        """The log of sshd: connections, key checks, errors."""
        return self.state_dir / "sshd.log"

    @property
    def config(self) -> Path:
        """The configuration file of sshd."""
        return self.state_dir / "sshd_config"

    @property
    def host_key(self) -> Path:
        """The private host key (its ``.pub`` is what clients must know)."""
        return self.state_dir / "ssh_host_ed25519_key"

    def known_hosts_line(self) -> str:
        """The known_hosts line of this host's key."""
        public = self.host_key.with_suffix(".pub").read_text()
        return known_hosts_line(self.address, self.port, public)

    def running(self) -> bool:
        """Whether this host's sshd is running."""
        pid = _read_pid(self.pidfile)
        return pid is not None and _alive(pid)


def ssh_config_snippet(host: SshHost, known_hosts: Path, timeout: int = 5) -> str:
    """Return the ssh_config ``Host`` block through which ``host.name`` is reached.

    Both OpenSSH (``ssh -F FILE h1``) and Fabric (``fab -S FILE -H h1``, or
    ``fabric.Config(runtime_ssh_path=FILE)``) read it. Fabric does not apply
    ``UserKnownHostsFile`` or ``StrictHostKeyChecking`` itself: see
    :func:`enforce_known_hosts`.

    Args:
        host: The simulated host.
        known_hosts: The known_hosts file holding its host key.
        timeout: ConnectTimeout in seconds.

    Returns:
        The block, ending with a blank line.
    """
    return "\n".join(
        [
            f"Host {host.name}",
            f"    HostName {host.address}",
            f"    Port {host.port}",
            f"    User {host.user}",
            f"    IdentityFile {_quote(host.identity)}",
            "    IdentitiesOnly yes",
            f"    UserKnownHostsFile {_quote(known_hosts)}",
            "    StrictHostKeyChecking yes",
            "    BatchMode yes",
            f"    ConnectTimeout {timeout}",
            "",
            "",
        ]
    )


def wait_for_ssh(
    address: str,
    port: int,
    deadline: float = 10,
    failed: Callable[[], bool] | None = None,
) -> None:
    """Wait until ``address:port`` accepts a connection and sends an SSH banner.

    Args:
        address: The server's address.
        port: Its port.
        deadline: Seconds to wait.
        failed: Tells early that the server will never answer (it died).

    Raises:
        TimeoutError: Nothing answered within ``deadline`` seconds.
        ConnectionError: ``failed`` said so.
    """
    limit = time.monotonic() + deadline
    while True:
        try:
            with socket.create_connection((address, port), timeout=1) as sock:
                if sock.recv(8).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if failed is not None and failed():
            raise ConnectionError(f"the SSH server on {address}:{port} did not start")
        if time.monotonic() > limit:
            raise TimeoutError(
                f"no SSH server on {address}:{port} after {deadline:g} s"
            )
        time.sleep(0.05)


def start_sshd(
    address: str,
    port: int,
    state_dir: Path,
    *,
    name: str = "",
    identity: Path | None = None,
    known_hosts: Path | None = None,
    user: str = "",
    deadline: float = 10,
) -> SshHost:
    """Start an sshd listening only on ``address:port``, with fresh keys.

    Creates (once) an ed25519 host key and a user key pair, authorizes the user
    key, writes the config, starts ``sshd -f CONFIG -E LOG`` (it daemonizes), waits
    for its banner, then records its host key in ``known_hosts``.

    Args:
        address: A loopback address, e.g. 127.0.0.2.
        port: A free port on it.
        state_dir: This host's directory (keys, config, pidfile, log).
        name: The ssh_config alias (default: the address).
        identity: The user's private key, shared by several hosts (created if
            missing; default: ``state_dir/id_ed25519``).
        known_hosts: A known_hosts file to add this host's key to.
        user: The login user (default: the current user).
        deadline: Seconds to wait for sshd to answer.

    Returns:
        The running host.

    Raises:
        RuntimeError: sshd is not installed or would not start (log tail included).
    """
    if not SSHD.exists():
        raise RuntimeError(NEEDS_SSHD)
    state_dir.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    identity = identity or state_dir / "id_ed25519"
    host = SshHost(
        name or address, address, port, user or current_user(), identity, state_dir
    )
    ensure_key(host.host_key, f"cicd-testinfra host {address}:{port}")
    ensure_key(identity, f"cicd-testinfra user {host.user}")
    authorized = state_dir / "authorized_keys"
    authorized.write_text(identity.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    host.config.write_text(sshd_config_text(address, port, state_dir))
    host.log.write_text("")
    result = run(sshd_argv(host.config, host.log), check=False, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(
            f"sshd on {address}:{port} exited {result.returncode}: "
            f"{_tail(host.log) or result.stderr.strip()}"
        )

    def failed() -> bool:
        # sshd daemonizes before it binds: a taken port shows only in its log.
        return "Cannot bind any address" in host.log.read_text(errors="replace")

    try:
        wait_for_ssh(address, port, deadline, failed)
    except OSError as error:
        stop_sshd(host)
        raise RuntimeError(f"{error}; {host.log}:\n{_tail(host.log)}") from None
    if known_hosts is not None:
        add_known_host(known_hosts, host.known_hosts_line())
    return host


def _children(pid: int) -> list[int]:
    """Pids of the processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def stop_sshd(host: SshHost, *, sessions: bool = False) -> bool:
    """Stop a host's sshd listener, and optionally drop its open sessions.

    Args:
        host: The simulated host.
        sessions: Also kill the per-connection sshd processes, so clients see a
            dropped connection (a host that dies mid-deploy).

    Returns:
        Whether an sshd was running and was stopped.
    """
    pid = _read_pid(host.pidfile)
    if sessions and pid is not None and _comm(pid) == "sshd":
        for child in _children(pid):
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return kill_pidfile(host.pidfile, "sshd", deadline=10)


@dataclass
class SshFleet:
    """Several simulated hosts and the client files that reach them.

    Attributes:
        hosts: The hosts, ``h1`` on 127.0.0.2, ``h2`` on 127.0.0.3...
        ssh_config: An ssh_config file with one Host block per host.
        known_hosts: The known_hosts file with every host key.
        identity: The user key that logs in everywhere.
    """

    hosts: list[SshHost]
    ssh_config: Path
    known_hosts: Path
    identity: Path
    directory: Path = field(repr=False)

    def host(self, name: str) -> SshHost:
        """The host called ``name``."""
        return next(h for h in self.hosts if h.name == name)

    def connection(self, name: str, **kwargs: Any) -> Any:
        """A Fabric Connection to ``name`` that refuses unknown host keys."""
        return fabric_connection(name, self.ssh_config, **kwargs)

    def add(self, count: int = 1) -> list[SshHost]:
        """Start ``count`` more hosts and rewrite the client files."""
        added = []
        for _ in range(count):
            index = len(self.hosts)
            address = loopback_address(index)
            name = f"h{index + 1}"
            for attempt in range(3):
                try:
                    host = start_sshd(
                        address,
                        free_port(address),
                        self.directory / name,
                        name=name,
                        identity=self.identity,
                        known_hosts=self.known_hosts,
                    )
                    break
                except RuntimeError:
                    # Another test may have taken the port in between: try another.
                    if attempt == 2:
                        raise
            self.hosts.append(host)
            added.append(host)
        self.ssh_config.write_text(
            "".join(ssh_config_snippet(h, self.known_hosts) for h in self.hosts)
        )
        return added

    def stop(self) -> None:
        """Stop every host's sshd."""
        for host in self.hosts:
            stop_sshd(host)


def start_fleet(count: int, directory: Path) -> SshFleet:
    """Start ``count`` sshd hosts on 127.0.0.2, 127.0.0.3... on free high ports.

    Args:
        count: How many hosts.
        directory: Holds every host's state and the client files.

    Returns:
        The fleet; call :meth:`SshFleet.stop` when done.
    """
    directory.mkdir(parents=True, exist_ok=True)
    identity = ensure_key(directory / "id_ed25519", f"cicd-testinfra {current_user()}")
    fleet = SshFleet(
        [], directory / "ssh_config", directory / "known_hosts", identity, directory
    )
    fleet.known_hosts.touch()
    try:
        fleet.add(count)
    except BaseException:
        fleet.stop()
        raise
    return fleet


# -- Fabric with host key checking -------------------------------------------------


def known_hosts_files(ssh_config: Mapping[str, Any]) -> list[Path]:
    """The known_hosts files an ssh_config lookup names (see :mod:`cicd.ssh`)."""
    from cicd.ssh import known_hosts_files as files

    return files(ssh_config)


def enforce_known_hosts(connection: Any, known_hosts: Path | None = None) -> Any:
    """Check host keys strictly on a Fabric Connection (see :func:`cicd.ssh.harden`)."""
    from cicd.ssh import harden

    return harden(connection, known_hosts)


def fabric_connection(name: str, ssh_config: Path, **kwargs: Any) -> Any:
    """A Fabric Connection to ``name`` as ssh_config describes it, strictly checked.

    Only ``ssh_config`` is read (not ~/.ssh/config), the agent and default keys are
    not used (only IdentityFile), stdin is not forwarded, and unknown host keys are
    refused.

    Args:
        name: The Host alias.
        ssh_config: The ssh_config file.
        **kwargs: More :class:`fabric.Connection` arguments.

    Returns:
        The connection, not yet opened.
    """
    from fabric import Config, Connection

    # No stdin forwarding: commands never wait on the caller's (pytest's) input.
    config = Config(
        runtime_ssh_path=str(ssh_config), overrides={"run": {"in_stream": False}}
    )
    kwargs.setdefault("connect_kwargs", {"allow_agent": False, "look_for_keys": False})
    return enforce_known_hosts(Connection(name, config=config, **kwargs))


# -- local stand-ins for the infrastructure checks (local-env) ----------------------

#: Prefix of the variables ``local-env`` prints. ``nox -s infra`` maps each
#: ``INFRA_CHECK_NAME`` to ``NAME`` for its own checks only, so the stand-ins'
#: token, webhook and bucket never reach the ``tests`` session (which reads
#: ``GITHUB_TOKEN``, ``GITHUB_REPOSITORY``...). On a real VM, set the real names.
LOCAL_ENV_PREFIX = "INFRA_CHECK_"
#: The app's synthetic Parquet sample, uploaded to the S3 stand-in.
APP_SAMPLE_DIR = Path(__file__).resolve().parents[1] / "10_preprod" / "data" / "sample"
LOCAL_BUCKET = "mangetamain"
LOCAL_PREFIX = "sample"
LOCAL_REPOSITORY = "mangetamain/cicd"
#: The environment directories made under the stand-in target root.
LOCAL_ENVIRONMENTS = ("preprod", "prod")
#: No proxy for loopback requests, whatever the environment says.
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def standin_answer(
    path: str, authorization: str, settings: Mapping[str, str]
) -> tuple[int, str, bytes]:
    """Answer a GET the way the services the infra checks talk to would.

    ``/health`` is an app's health URL; ``settings["webhook_path"]`` is a Discord
    webhook (``/api/webhooks/ID/TOKEN``); ``/repos/OWNER/REPO/actions/runs`` is
    GitHub's API and needs ``Authorization: Bearer <settings["token"]>``.

    Args:
        path: The request path, without query string.
        authorization: The Authorization header ("" when absent).
        settings: ``token``, ``repository`` and ``webhook_path``.

    Returns:
        The status, the content type and the body.
    """

    def answer(status: int, body: object) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(body).encode()

    if path == "/health":
        return 200, "text/plain", b"ok"
    if path == settings["webhook_path"]:
        webhook_id = path.split("/")[3]
        return answer(200, {"type": 1, "id": webhook_id, "name": "cicd stand-in"})
    if path == f"/repos/{settings['repository']}/actions/runs":
        if authorization != f"Bearer {settings['token']}":
            return answer(401, {"message": "Bad credentials"})
        run = {"id": 1, "head_sha": "0" * 40, "conclusion": "success"}
        return answer(200, {"total_count": 1, "workflow_runs": [run]})
    return answer(404, {"message": "Not Found"})


def serve_standin(directory: Path) -> None:
    """Serve :func:`standin_answer` on 127.0.0.1 until killed.

    Reads ``directory/settings.json`` (the token stays off the command line),
    binds a free port and writes it to ``directory/port``. Request logs go to
    stderr with the webhook's token masked.
    """
    import http.server

    settings = json.loads((directory / "settings.json").read_text())

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            authorization = self.headers.get("Authorization", "")
            status, kind, body = standin_answer(path, authorization, settings)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            line = (format % args).replace(
                settings["webhook_path"], "/api/webhooks/***"
            )
            sys.stderr.write(f"{self.log_date_time_string()} {line}\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    temporary = directory / "port.tmp"
    temporary.write_text(str(server.server_address[1]))
    temporary.replace(directory / "port")
    server.serve_forever()


def _start_time(pid: int) -> str:
    """The start time of ``pid`` (``/proc/PID/stat`` field 22): tells a recycled pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


def _record(pids: Path, name: str, pid: int) -> None:
    with pids.open("a") as handle:
        handle.write(f"{name} {pid} {_start_time(pid)}\n")


def _spawn(
    argv: Sequence[str], directory: Path, name: str, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Start a detached daemon (own session) in ``directory``, logging to NAME.log.

    Its pid is recorded in the ``pids`` file of ``directory``'s parent.
    """
    with (directory / f"{name}.log").open("ab") as handle:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=directory,
            env={**os.environ, **env},
        )
    _CHILDREN[process.pid] = process
    _record(directory.parent / "pids", name, process.pid)
    return process


def _http_answers(url: str) -> bool:
    try:
        _LOOPBACK.open(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def _wait_ready(
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes],
    log: Path,
    deadline: float = 60,
) -> None:
    """Poll ``ready`` until it says yes; fail early if ``process`` exits."""
    limit = time.monotonic() + deadline
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"exited {process.returncode}; {log}:\n{_tail(log)}")
        if time.monotonic() > limit:
            raise RuntimeError(f"no answer within {deadline:g} s; {log}:\n{_tail(log)}")
        time.sleep(0.1)


def moto_python(directory: Path, python: str = sys.executable) -> str:
    """A Python that can run ``moto.server``: ``python``, or a venv made for it.

    When ``python`` lacks moto, ``directory/moto-venv`` is created (once) and
    ``moto[server]`` installed into it with pip from the configured index.

    Returns:
        The interpreter's path.
    """
    probe = ["-c", "import moto.server"]
    if succeeds([python, *probe], timeout=60):
        return python
    venv_python = str(directory / "moto-venv" / "bin" / "python")
    if not succeeds([venv_python, *probe], timeout=60):
        run([python, "-m", "venv", str(directory / "moto-venv")], timeout=None)
        pip = [venv_python, "-m", "pip", "install", "--quiet", "moto[server]"]
        run(pip, timeout=None)
    return venv_python


def upload_sample(endpoint: str, bucket: str, prefix: str, sample: Path) -> list[str]:
    """Create ``bucket`` on an S3 stand-in and put every Parquet file of ``sample``.

    moto's server does not check signatures, so plain PUTs do (stdlib only).

    Returns:
        The keys written.
    """
    files = sorted(sample.glob("*.parquet"))
    if not files:
        raise RuntimeError(f"no Parquet file in {sample}")
    puts: list[tuple[str, Path | None]] = [(f"{endpoint}/{bucket}", None)]
    puts += [(f"{endpoint}/{bucket}/{prefix}/{f.name}", f) for f in files]
    for url, path in puts:
        data = path.read_bytes() if path else None
        headers = {"Content-Type": "application/octet-stream"}
        request = urllib.request.Request(url, data, headers, method="PUT")
        _LOOPBACK.open(request, timeout=30).close()
    return [f"{prefix}/{f.name}" for f in files]


def stop_local_env(directory: Path, deadline: float = 10) -> list[str]:
    """Stop every stand-in ``local-env`` recorded in ``directory/pids``.

    Each is signalled with its process group (it leads its own session), SIGTERM
    then SIGKILL after ``deadline`` seconds. A pid now used by another process (its
    start time differs) is left alone.

    Returns:
        The names of the stand-ins stopped.
    """
    pids = directory / "pids"
    stopped: list[str] = []
    lines = pids.read_text().splitlines() if pids.exists() else []
    for line in lines:
        name, pid_text, started = (line.split() + ["", "", ""])[:3]
        pid = int(pid_text) if pid_text.isdigit() else 0
        if not pid or not _alive(pid) or _start_time(pid) != started:
            continue
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            limit = time.monotonic() + deadline
            while _alive(pid) and time.monotonic() < limit:
                time.sleep(0.05)
            if not _alive(pid):
                break
        stopped.append(name)
    pids.unlink(missing_ok=True)
    return stopped


def local_env(
    directory: Path,
    *,
    sample: Path = APP_SAMPLE_DIR,
    python: str = sys.executable,
    say: Callable[[str], None] = print,
) -> dict[str, str]:
    """Start local stand-ins for every infra check (``nox -s infra``), on loopback.

    One sshd host (``h1`` on 127.0.0.2, its ssh_config and known_hosts); an HTTP
    stand-in on 127.0.0.1 for GitHub's Actions runs API, a Discord webhook and a
    health URL; moto's S3 server on 127.0.0.1 with the app's sample uploaded; a
    target root with ``preprod`` and ``prod``. A previous run's stand-ins in the
    same directory are stopped first. Stop them with :func:`stop_local_env`.

    Args:
        directory: State, logs, ``pids`` and ``env.sh`` of the stand-ins.
        sample: The Parquet files to upload.
        python: The interpreter to run moto with (a venv is made if it lacks it).
        say: Where the step lines go.

    Returns:
        The variables the checks read, by their real names.
    """
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    stop_local_env(directory)
    variables: dict[str, str] = {}
    try:
        fleet = start_fleet(1, directory / "ssh")
        host = fleet.hosts[0]
        _record(directory / "pids", "sshd", _read_pid(host.pidfile) or 0)
        variables["CICD_SSH_HOST"] = host.name
        variables["CICD_SSH_CONFIG"] = str(fleet.ssh_config)
        say(f"sshd: {host.name} on {host.address}:{host.port}, {fleet.ssh_config}")

        root = directory / "target"
        for name in LOCAL_ENVIRONMENTS:
            (root / name).mkdir(parents=True, exist_ok=True)
        variables["CICD_TARGET_ROOT"] = str(root)
        if docker_ok():
            variables["CICD_DOCKER"] = "1"
        else:
            say("docker: no engine answers `docker info`; CICD_DOCKER left unset")

        web = directory / "http"
        web.mkdir(exist_ok=True)
        (web / "port").unlink(missing_ok=True)
        token = secrets.token_hex(20)
        webhook = f"/api/webhooks/{secrets.randbelow(10**18)}/{secrets.token_hex(24)}"
        settings = web / "settings.json"
        settings.touch(mode=0o600)
        settings.write_text(
            json.dumps(
                {
                    "token": token,
                    "repository": LOCAL_REPOSITORY,
                    "webhook_path": webhook,
                }
            )
        )
        # The repository root (for ``tests``) and src/ (for ``cicd``).
        repo = Path(__file__).resolve().parents[1]
        package_root = os.pathsep.join([str(repo), str(repo / "src")])
        argv = [
            sys.executable,
            "-m",
            "tests.testinfra",
            "http-standin",
            "--dir",
            str(web),
        ]
        process = _spawn(argv, web, "http", {"PYTHONPATH": package_root})
        _wait_ready((web / "port").exists, process, web / "http.log")
        base = f"http://127.0.0.1:{(web / 'port').read_text()}"
        _wait_ready(lambda: _http_answers(f"{base}/health"), process, web / "http.log")
        variables["CICD_HEALTH_URLS"] = f"{base}/health"
        variables["GITHUB_API_URL"] = base
        variables["GITHUB_REPOSITORY"] = LOCAL_REPOSITORY
        variables["GITHUB_TOKEN"] = token
        variables["DISCORD_WEBHOOK_URL"] = base + webhook
        say(f"http: GitHub API, Discord webhook and /health stand-in on {base}")

        s3 = directory / "s3"
        s3.mkdir(exist_ok=True)
        interpreter = moto_python(directory, python)
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        argv = [interpreter, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        process = _spawn(argv, s3, "s3", {"AWS_EC2_METADATA_DISABLED": "true"})
        _wait_ready(
            lambda: _http_answers(f"{endpoint}/moto-api/"), process, s3 / "s3.log"
        )
        keys = upload_sample(endpoint, LOCAL_BUCKET, LOCAL_PREFIX, sample)
        variables["MANGETAMAIN_S3_BUCKET"] = LOCAL_BUCKET
        variables["MANGETAMAIN_S3_PREFIX"] = LOCAL_PREFIX
        variables["MANGETAMAIN_S3_ENDPOINT"] = endpoint
        variables["AWS_ACCESS_KEY_ID"] = "cicd-standin"
        variables["AWS_SECRET_ACCESS_KEY"] = secrets.token_hex(20)
        variables["AWS_REGION"] = "us-east-1"
        variables["AWS_EC2_METADATA_DISABLED"] = "true"
        say(f"s3: moto on {endpoint}, s3://{LOCAL_BUCKET}/: {', '.join(keys)}")
    except BaseException:
        stop_local_env(directory)
        raise
    return variables


def export_lines(variables: Mapping[str, str], prefix: str = LOCAL_ENV_PREFIX) -> str:
    """``export PREFIXNAME=VALUE`` lines for a shell's ``eval``, values quoted."""
    return "".join(
        f"export {prefix}{name}={shlex.quote(value)}\n"
        for name, value in sorted(variables.items())
    )


# -- up and down ------------------------------------------------------------------


def up(
    state_dir: Path = DEFAULT_STATE_DIR,
    *,
    extra_packages: Sequence[str] = (),
    tag: str = BUSYBOX_TAG,
    say: Callable[[str], None] = print,
) -> bool:
    """Provision this machine: packages, a Docker engine, the busybox image.

    Each step is idempotent and prints one line.

    Args:
        state_dir: dockerd's state, logs and pidfile.
        extra_packages: More Debian packages (CI adds chromium).
        tag: The busybox image's name.
        say: Where the step lines go.

    Returns:
        Whether dockerd was started by this call.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    packages = [*PACKAGES, *extra_packages]
    started = time.monotonic()
    installed = install_packages(packages, log=state_dir / "apt.log")
    took = f"{time.monotonic() - started:.1f} s"
    if installed:
        say(f"packages: installed {' '.join(installed)} ({took})")
    else:
        say(f"packages: all present: {' '.join(packages)} ({took})")
    started = time.monotonic()
    launched = start_dockerd(state_dir)
    took = f"{time.monotonic() - started:.1f} s"
    if launched:
        flags = " ".join(DOCKERD_NETWORK_FLAGS)
        log = state_dir / "dockerd.log"
        say(f"dockerd: started on {DOCKER_SOCKET} (vfs, {flags}), log {log} ({took})")
    else:
        say(f"dockerd: an engine already answers `docker info`; left as is ({took})")
    started = time.monotonic()
    imported = build_busybox_image(tag)
    answer = run(check_image_argv(tag)).stdout.strip()
    took = f"{time.monotonic() - started:.1f} s"
    verb = "imported from busybox-static" if imported else "present"
    say(f"image {tag}: {verb}; `busybox echo ok` in it says {answer!r} ({took})")
    return launched


def down(
    state_dir: Path = DEFAULT_STATE_DIR, say: Callable[[str], None] = print
) -> bool:
    """Stop the dockerd that :func:`up` started (packages and image stay).

    Returns:
        Whether a dockerd was stopped.
    """
    stopped = stop_dockerd(state_dir)
    if stopped:
        say(f"dockerd: stopped (state kept in {state_dir})")
    else:
        say("dockerd: none started by infra.up is running; nothing to stop")
    return stopped


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m tests.testinfra ACTION``.

    ``up``/``down [--state-dir DIR]`` provision this machine. ``local-env --dir
    DIR`` starts the infra checks' stand-ins and prints ``export`` lines for
    ``eval`` (progress on stderr); ``local-env-stop --dir DIR`` stops them.
    ``http-standin --dir DIR`` is the HTTP stand-in's own process.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tests.testinfra", description=__doc__
    )
    actions = ["up", "down", "local-env", "local-env-stop", "http-standin"]
    parser.add_argument("action", choices=actions)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument(
        "--extra", action="append", default=[], help="another package to install"
    )
    parser.add_argument("--dir", type=Path, help="the stand-ins' directory")
    parser.add_argument(
        "--prefix",
        default=LOCAL_ENV_PREFIX,
        help=f"prefix of the exported names (default {LOCAL_ENV_PREFIX}; '' for none)",
    )
    parser.add_argument("--sample-dir", type=Path, default=APP_SAMPLE_DIR)
    args = parser.parse_args(argv)
    if args.action in actions[2:] and args.dir is None:
        parser.error(f"{args.action} needs --dir DIR")
    # local-env's stdout is eval'ed: everything else goes to stderr.
    out = sys.stderr if args.action.startswith("local-env") else sys.stdout

    def say(line: str) -> None:
        print(f"==> {line}", file=out, flush=True)

    try:
        if args.action == "up":
            up(args.state_dir, extra_packages=args.extra, say=say)
        elif args.action == "down":
            down(args.state_dir, say=say)
        elif args.action == "local-env":
            variables = local_env(args.dir, sample=args.sample_dir, say=say)
            exports = export_lines(variables, args.prefix)
            env_file = args.dir.resolve() / "env.sh"
            env_file.touch(mode=0o600)
            env_file.write_text(exports)
            say(f"local-env: {len(variables)} variables; also in {env_file}")
            print(exports, end="", flush=True)
        elif args.action == "local-env-stop":
            stopped = stop_local_env(args.dir)
            say(f"local-env: stopped {', '.join(stopped) or 'nothing (none running)'}")
        else:
            serve_standin(args.dir)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        print(f"==> error: {error}", file=out, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
