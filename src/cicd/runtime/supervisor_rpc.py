"""The few supervisorctl actions a deploy uses, spoken to supervisord in-process.

On this machine a ``supervisorctl`` process costs ~0.2 s (an interpreter and the
supervisor package) for what is one XML-RPC call on supervisord's unix socket. So a
local runner asks supervisord directly; over SSH (and for the actions not listed
here) the runtime still runs supervisorctl. The answers mimic supervisorctl's: the
same lines, the same exit codes, so callers cannot tell the two apart.
"""

from __future__ import annotations

import http.client
import socket
import xmlrpc.client
from typing import Any

#: supervisord's fault codes (supervisor.xmlrpc.Faults) that callers react to.
BAD_NAME = 10
ALREADY_STARTED = 60
NOT_RUNNING = 70
#: What supervisorctl exits with when it cannot reach supervisord.
UNREACHABLE_EXIT = 7
#: What ``supervisorctl status`` exits with for a program that does not run.
NOT_RUNNING_EXIT = 3
#: Longest wait for one call: a stop waits up to the program's stopwaitsecs.
TIMEOUT = 60.0
HANDLED = ("pid", "status", "start", "stop", "restart", "signal")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT)
        self.unix_path = path

    def connect(self) -> None:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(TIMEOUT)
        conn.connect(self.unix_path)
        self.sock = conn


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.unix_path = path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self.unix_path)


class LocalControl:
    """supervisorctl's answers, from supervisord's XML-RPC interface.

    Args:
        socket_path: supervisord's unix socket.
    """

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.server: Any = xmlrpc.client.ServerProxy(
            "http://localhost/RPC2", transport=_UnixTransport(socket_path)
        ).supervisor

    def call(self, args: tuple[str, ...]) -> tuple[int, str] | None:
        """Answer ``supervisorctl ARGS`` as supervisorctl would: exit code, output.

        Returns:
            None for an action not handled here (run supervisorctl instead).
        """
        if not args or args[0] not in HANDLED or len(args) > 3:
            return None
        action, names = args[0], args[1:]
        try:
            return self._call(action, names)
        except xmlrpc.client.Fault as fault:
            name = names[-1] if names else ""
            return _fault_answer(fault, name, action)
        except OSError as error:
            reason = error.strerror or str(error)
            return UNREACHABLE_EXIT, f"unix://{self.socket_path} {reason}"

    def _call(self, action: str, names: tuple[str, ...]) -> tuple[int, str] | None:
        if action == "pid":
            if not names:
                return 0, str(self.server.getPID())
            return 0, str(self.server.getProcessInfo(names[0])["pid"])
        if action == "signal":
            if len(names) != 2:
                return None
            signal_name, name = names
            self.server.signalProcess(name, signal_name)
            return 0, f"{name}: signalled"
        if len(names) != 1:
            return None
        name = names[0]
        if action == "status":
            info = self.server.getProcessInfo(name)
            state = str(info["statename"])
            line = f"{name} {state} {info.get('description', '')}".rstrip()
            return (0 if state == "RUNNING" else NOT_RUNNING_EXIT), line
        if action == "start":
            self.server.startProcess(name, True)
            return 0, f"{name}: started"
        if action == "stop":
            self.server.stopProcess(name, True)
            return 0, f"{name}: stopped"
        return self._restart(name)

    def _restart(self, name: str, attempts: int = 3) -> tuple[int, str]:
        """Stop (if running), then start; again if supervisord restarted it between.

        A program that exits at once is respawned by supervisord itself
        (``autorestart``): it can be starting again between our stop and start.
        """
        lines = []
        for attempt in range(attempts):
            try:
                self.server.stopProcess(name, True)
                lines.append(f"{name}: stopped")
            except xmlrpc.client.Fault as fault:
                if fault.faultCode != NOT_RUNNING:
                    raise
                lines.append(f"{name}: ERROR (not running)")
            try:
                self.server.startProcess(name, True)
            except xmlrpc.client.Fault as fault:
                if fault.faultCode != ALREADY_STARTED or attempt == attempts - 1:
                    raise
                continue
            break
        return 0, "\n".join([*lines, f"{name}: started"])


def _fault_answer(
    fault: xmlrpc.client.Fault, name: str, action: str
) -> tuple[int, str]:
    """Give supervisorctl's line and exit code for a fault supervisord answered."""
    if fault.faultCode == BAD_NAME:
        return (4 if action == "status" else 1), f"{name}: ERROR (no such process)"
    words = {ALREADY_STARTED: "already started", NOT_RUNNING: "not running"}
    said = words.get(fault.faultCode, str(fault.faultString).lower())
    return 1, f"{name}: ERROR ({said})"
