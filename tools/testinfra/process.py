"""Running commands and watching processes: what the other testinfra modules share.

Commands are argv lists run with :mod:`subprocess`; daemons are detached (their own
session) and registered in :data:`CHILDREN`, so this process reaps them instead of
mistaking a zombie for a live daemon. Standard library only.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Daemons started by this process, kept so they are reaped, never garbage-collected.
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


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


def detach(
    argv: Sequence[str],
    log: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a daemon in its own session, its output appended to ``log``.

    It outlives this process; it is registered in :data:`CHILDREN` until reaped.

    Args:
        argv: The command and its arguments.
        log: The file receiving its stdout and stderr.
        cwd: Its working directory (default: this process's).
        env: Extra environment variables.

    Returns:
        The started process.
    """
    with log.open("ab") as handle:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
            env={**os.environ, **(env or {})},
        )
    CHILDREN[process.pid] = process
    return process


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log ("" when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie counts as gone)."""
    child = CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del CHILDREN[pid]
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def read_pid(pidfile: Path) -> int | None:
    """The pid a pidfile names, or None (missing, empty or garbled)."""
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def comm(pid: int) -> str:
    """The program name of ``pid`` (``/proc/PID/comm``; "" when it is gone)."""
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
    pid = read_pid(pidfile)
    if pid is None or not alive(pid) or comm(pid) != name:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    limit = time.monotonic() + deadline
    while alive(pid) and time.monotonic() < limit:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)
    pidfile.unlink(missing_ok=True)
    return True


def start_time(pid: int) -> str:
    """The start time of ``pid`` (``/proc/PID/stat`` field 22): tells a recycled pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


def children(pid: int) -> list[int]:
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


def free_port(address: str = "127.0.0.1") -> int:
    """Return a TCP port nothing listens on right now at ``address``."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])
