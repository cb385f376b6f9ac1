"""Simulated SSH hosts: an OpenSSH ``sshd`` per host on its own loopback address.

Host ``h1`` listens on 127.0.0.2, ``h2`` on 127.0.0.3..., each on a free high port
with a temporary host key; one user key logs in everywhere. An :class:`SshFleet`
writes the client side too: an ssh_config with one ``Host`` block per host and a
known_hosts with every host key, read alike by OpenSSH (``ssh -F FILE h1``) and
Fabric (``fab -S FILE -H h1``), host keys checked strictly.

Commands are built as argv lists and config texts by pure functions (tested without
running anything). The standard library only, except :func:`fabric_connection` and
its helpers, which import Fabric and :mod:`cicd.transport.ssh` when called.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.testinfra.process import (
    alive,
    children,
    comm,
    free_port,
    kill_pidfile,
    read_pid,
    run,
    tail,
)

#: OpenSSH's server (Debian: openssh-server).
SSHD = Path("/usr/sbin/sshd")
#: The skip reason of tests that need it (fixtures, benches).
NEEDS_SSHD = (
    "needs OpenSSH sshd: apt-get install openssh-server (CI's .ci/run installs it)"
)


def loopback_address(index: int) -> str:
    """The address of simulated host ``index`` (0 -> 127.0.0.2, 1 -> 127.0.0.3...)."""
    if not 0 <= index < 250:
        raise ValueError(f"host index out of range: {index}")
    return f"127.0.0.{index + 2}"


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
            "# tools.testinfra: one simulated host on a loopback address",
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
        pid = read_pid(self.pidfile)
        return pid is not None and alive(pid)


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
            f"{tail(host.log) or result.stderr.strip()}"
        )

    def failed() -> bool:
        # sshd daemonizes before it binds: a taken port shows only in its log.
        return "Cannot bind any address" in host.log.read_text(errors="replace")

    try:
        wait_for_ssh(address, port, deadline, failed)
    except OSError as error:
        stop_sshd(host)
        raise RuntimeError(f"{error}; {host.log}:\n{tail(host.log)}") from None
    if known_hosts is not None:
        add_known_host(known_hosts, host.known_hosts_line())
    return host


def stop_sshd(host: SshHost, *, sessions: bool = False) -> bool:
    """Stop a host's sshd listener, and optionally drop its open sessions.

    Args:
        host: The simulated host.
        sessions: Also kill the per-connection sshd processes, so clients see a
            dropped connection (a host that dies mid-deploy).

    Returns:
        Whether an sshd was running and was stopped.
    """
    pid = read_pid(host.pidfile)
    if sessions and pid is not None and comm(pid) == "sshd":
        for child in children(pid):
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
    """The known_hosts files an ssh_config lookup names (:mod:`cicd.transport.ssh`)."""
    from cicd.transport.ssh import known_hosts_files as files

    return files(ssh_config)


def enforce_known_hosts(connection: Any, known_hosts: Path | None = None) -> Any:
    """Check host keys strictly on a Fabric Connection (see ssh.harden)."""
    from cicd.transport.ssh import harden

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
