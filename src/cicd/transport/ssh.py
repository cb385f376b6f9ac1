"""SSH connections the way OpenSSH users expect them: host keys are checked.

Fabric 3 gives its paramiko client an ``AutoAddPolicy`` and ignores
``UserKnownHostsFile`` and ``StrictHostKeyChecking``: any host key would be accepted
silently. :func:`harden` loads the known_hosts files read-only and rejects any key
not found there, and sets a connect timeout, before the first command runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Seconds to wait for a TCP connection and the SSH handshake.
CONNECT_TIMEOUT = 10


def known_hosts_files(ssh_config: Mapping[str, Any]) -> list[Path]:
    """The known_hosts files an ssh_config lookup names (``UserKnownHostsFile``).

    Args:
        ssh_config: A host's resolved options, e.g. ``Connection.ssh_config``.

    Returns:
        The files, ``~`` expanded; ``~/.ssh/known_hosts`` when none is set.
    """
    value = ssh_config.get("userknownhostsfile") or "~/.ssh/known_hosts"
    if not isinstance(value, str):
        return [Path(word).expanduser() for word in value]
    # paramiko strips the quotes around a path with spaces: try it whole first.
    if Path(value).expanduser().exists():
        return [Path(value).expanduser()]
    return [Path(word).expanduser() for word in shlex.split(value)]


def harden(connection: Any, known_hosts: Path | None = None) -> Any:
    """Make a Fabric Connection check host keys like ``StrictHostKeyChecking yes``.

    Idempotent; call it before the connection opens (it opens lazily).

    Args:
        connection: A :class:`fabric.Connection`.
        known_hosts: A known_hosts file overriding ssh_config's.

    Returns:
        The same connection.
    """
    from paramiko.client import RejectPolicy

    if getattr(connection, "_cicd_hardened", False):
        return connection
    files = [known_hosts] if known_hosts else known_hosts_files(connection.ssh_config)
    for path in files:
        if path.is_file():
            connection.client.load_system_host_keys(str(path))
    connection.client.set_missing_host_key_policy(RejectPolicy())
    if connection.connect_timeout is None:
        connection.connect_timeout = CONNECT_TIMEOUT
    connection._cicd_hardened = True
    return connection


def describe_failure(host: str, error: BaseException) -> str:
    """One line saying why talking to ``host`` failed, and what to do."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    name = type(error).__name__
    if "not found in known_hosts" in text:
        return (
            f"{host}: host key unknown ({text}); check its fingerprint, then add it "
            "to known_hosts (e.g. ssh-keyscan), never accepted automatically"
        )
    if name == "BadHostKeyException":
        return f"{host}: host key does not match known_hosts ({text}): refusing"
    if name in ("AuthenticationException", "PasswordRequiredException"):
        return f"{host}: SSH authentication failed ({text})"
    if name in ("NoValidConnectionsError", "ConnectionRefusedError", "timeout"):
        return f"{host}: cannot connect ({text or name})"
    return (
        f"{host}: connection lost ({name}{': ' + text if text else ''}); "
        "rerun the task: every step is idempotent"
    )


def connect(host: str, ssh_config: str = "") -> Any:
    """A hardened Fabric Connection to ``host`` (an ssh_config alias or address).

    Args:
        host: What ``ssh HOST`` would be given.
        ssh_config: An ssh_config file; empty for the user's (~/.ssh/config).

    Returns:
        The connection, not yet opened.
    """
    from fabric import Config, Connection

    config = Config(runtime_ssh_path=ssh_config or None)
    config.load_ssh_config()
    return harden(Connection(host, config=config))


def tune(connection: Any) -> None:
    """Open the connection and turn off Nagle's algorithm on its socket.

    Each command is a small request and a small answer: without ``TCP_NODELAY``
    every round trip can wait for a delayed ACK (measured here: 125 ms a command
    over loopback, about 90 ms with it).
    """
    import socket

    if getattr(connection, "_cicd_tuned", False):
        return
    connection.open()
    sock = getattr(getattr(connection, "transport", None), "sock", None)
    if isinstance(sock, socket.socket) and sock.family in (
        socket.AF_INET,
        socket.AF_INET6,
    ):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection._cicd_tuned = True
