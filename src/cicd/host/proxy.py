"""The host's haproxy: its config, its process under supervisord, its runtime API.

One haproxy per host (per root) listens on every blue/green environment's public
address and routes it to one slot: the slot's one server here, or, in front of a
swarm, the slot's server on every node (``SLOT-NODE``, the slot's port there). It
runs as the program ``proxy`` of the root's supervisord, so it outlives the command
(and the CI job) that started it and is restarted if it dies. Its config is written
from ``[tool.cicd]``; a switch goes through the runtime API (``set server ...
state``) with no reload, and the environment's fragment is rewritten with the new
live slot so a restarted haproxy routes where the last switch did. What haproxy
routes to is what serves (:func:`Proxy.routed`); :mod:`cicd.host.slots` decides what
to start and switch.
"""

from __future__ import annotations

import shlex
import socket
import time
from collections.abc import Callable, Sequence
from posixpath import join
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cicd.commands import files
from cicd.commands import haproxy as hx
from cicd.commands import supervisor as sv
from cicd.core.config_schema import SLOTS
from cicd.core.errors import CicdError

if TYPE_CHECKING:
    from cicd.runtime.supervisor import SupervisorRuntime
    from cicd.host.context import HostContext

#: The supervisord program that runs haproxy.
PROGRAM = "proxy"


class ProxyDown(CicdError):
    """haproxy does not answer on its runtime API socket."""


class Proxy:
    """The haproxy of one environment's host, seen from that environment.

    Args:
        host: The environment on its host.
        nodes: In front of a swarm: what lists its nodes (name, address), read
            only when the config is written; each slot has a server on every node
            and haproxy's own checks take a node whose task is down out. None:
            each slot is one server on this host.
    """

    def __init__(
        self,
        host: HostContext,
        nodes: Callable[[], Sequence[tuple[str, str]]] | None = None,
    ) -> None:
        self.host = host
        self.nodes = nodes
        self.runner = host.runner
        self.env = host.env
        self.directory = host.paths.proxy
        self.conf = join(self.directory, "haproxy.cfg")
        self.fragments = join(self.directory, "conf.d")
        self.fragment = hx.fragment_path(self.directory, self.env)
        self.socket = hx.socket_path(self.directory)
        self.backend = f"be_{self.env}"
        # The full path (Debian's is /usr/sbin/haproxy, off a user's PATH), so
        # the config check and supervisord run the very program detected.
        self.haproxy = host.haproxy_path() or host.settings.proxy.haproxy
        #: The fragment's ports or checks changed: the next switch reloads.
        self.reshaped = False

    # -- config ---------------------------------------------------------------

    def fragment_conf(self, live: str | None) -> str:
        """This environment's frontend and backend, with ``live`` enabled."""
        settings = self.host.settings
        address = urlsplit(settings.url).hostname or "127.0.0.1"
        places = [("", "127.0.0.1")] if self.nodes is None else self.nodes()
        servers = [
            hx.Server(
                hx.server_name(slot, node),
                address,
                settings.proxy.slot_port(slot),
                slot == live,
            )
            for slot in SLOTS
            for node, address in places
        ]
        return hx.env_conf(self.env, address, settings.port, self.check_path, servers)

    @property
    def check_path(self) -> str:
        """The path haproxy's own health check asks: the environment's first check's."""
        checks = self.host.settings.health.checks
        base = self.host.settings.url.rstrip("/")
        url = checks[0].url if checks else base + "/"
        path = url[len(base) :] if url.startswith(base) else urlsplit(url).path
        return path or "/"

    def _supervisor(self) -> SupervisorRuntime:
        from cicd.runtime.supervisor import SupervisorRuntime

        return SupervisorRuntime(self.runner, self.host.settings, self.host.paths)

    def _program_conf(self) -> str:
        line = hx.program_line(
            shlex.quote(self.haproxy),
            shlex.quote(self.conf),
            shlex.quote(self.fragments),
        )
        return sv.program_conf(
            PROGRAM,
            line,
            directory=self.directory,
            environment={},
            logfile=join(self.directory, "haproxy.log"),
        )

    def configured(self) -> bool:
        """Whether this environment's fragment exists (it switched here before)."""
        return self.runner.ok(files.exists(self.fragment))

    # -- process --------------------------------------------------------------

    def ensure(self, live: str | None) -> list[str]:
        """Make haproxy run with this environment's fragment; say what was done.

        Writes the config files that differ (one round trip to compare), starts
        haproxy under supervisord when it is not running, and reloads it (``USR2``,
        no connection refused) when this environment's frontend or backend changed.

        Args:
            live: The slot the fragment enables (what the last switch chose).

        Returns:
            Lines for the console: what was started, reloaded or restarted.

        Raises:
            CicdError: The config is invalid, or haproxy did not start.
        """
        supervisor = self._supervisor()
        program_path = sv.program_path(supervisor.paths.supervisor, PROGRAM)
        wanted = {
            self.conf: hx.global_conf(self.socket),
            self.fragment: self.fragment_conf(live),
        }
        old = self._read([*wanted, program_path])
        stale = {p: c for p, c in wanted.items() if old[p] != c.strip("\n")}
        program_current = old[program_path] == self._program_conf().strip("\n")
        if not stale and program_current and self._answers():
            return []  # the usual case: config as wanted, haproxy answering
        said: list[str] = []
        old_fragment = old[self.fragment]
        reshaped = bool(old_fragment) and hx.structure(old_fragment) != hx.structure(
            wanted[self.fragment]
        )
        if reshaped and supervisor.program_status(PROGRAM) == "RUNNING":
            if (
                self.nodes is not None
                and live
                and _live_listens(old_fragment, wanted[self.fragment])
            ):
                return self._reload_for_new_nodes(supervisor, stale)
            # New ports or checks: the live slot still listens where the running
            # config says, so the new fragment waits for the switch (a reload).
            del stale[self.fragment]
            self.reshaped = True
            said.append(
                f"haproxy's config of {self.env} changed: applied at the switch "
                "(a seamless reload)"
            )
        if stale:
            self._write(stale)
        said += self._run_program(supervisor, program_path, first=not old_fragment)
        self.wait_until_answering(reloaded=bool(said))
        return said

    def _read(self, paths: list[str]) -> dict[str, str]:
        """The content of each file (empty: absent), read in one round trip."""
        snapshot = files.parse_snapshot(self.runner.run(files.read_all(*paths)).stdout)
        return {path: snapshot.get(str(i), "") for i, path in enumerate(paths)}

    def _reload_for_new_nodes(
        self, supervisor: SupervisorRuntime, stale: dict[str, str]
    ) -> list[str]:
        """A swarm's nodes changed (or its config took the blue/green shape).

        The live slot's servers listen already: no switch is coming, so reload now.
        """
        self._write(stale)
        supervisor.signal("USR2", PROGRAM)
        self.wait_until_answering(reloaded=True)
        return [f"haproxy reloaded: {self.env}'s nodes changed"]

    def _run_program(
        self, supervisor: SupervisorRuntime, program_path: str, *, first: bool
    ) -> list[str]:
        """Make supervisord run haproxy with the config just written.

        Args:
            supervisor: The root's supervisord.
            program_path: haproxy's program file.
            first: This environment has no fragment yet (its first switch here).

        Returns:
            Lines for the console: what was stopped, started or reloaded.
        """
        said: list[str] = []
        removed = False
        if first:
            # First blue/green switch here: the app restarted in place holds the
            # public port haproxy is about to take.
            removed, said = self._retire_in_place()
        started = supervisor.ensure_program(
            PROGRAM, program_path, self._program_conf(), removed=removed
        )
        if started:
            return [*said, "haproxy started (under supervisord)"]
        state = supervisor.program_status(PROGRAM)
        if state != "RUNNING":
            supervisor.program_action("start", PROGRAM)
            said.append(f"haproxy was not running ({state}); started it")
        elif first:
            # A new environment on a running haproxy: a seamless reload adds
            # its frontend; the others' connections carry on.
            supervisor.signal("USR2", PROGRAM)
            said.append(
                f"haproxy reloaded: it serves {self.env} on port "
                f"{self.host.settings.port} too"
            )
        return said

    def _write(self, contents: dict[str, str]) -> None:
        """Write config files, then have haproxy check the whole config.

        Raises:
            CicdError: haproxy refuses it (its first alert).
        """
        self.runner.run(files.mkdirs(self.fragments))
        for path, content in contents.items():
            self.runner.run(files.write_atomic(path, content))
        checked = self.runner.run(
            hx.check(self.haproxy, self.conf, self.fragments), check=False
        )
        if not checked.ok:
            output = (checked.stderr + checked.stdout).splitlines()
            alerts = [line for line in output if "ALERT" in line] or output
            raise CicdError(
                f"haproxy refuses its config in {self.directory}: "
                + (alerts[0].strip() if alerts else f"exit {checked.exited}")
            )

    def _retire_in_place(self) -> tuple[bool, list[str]]:
        """Stop the app run in place before (its port becomes haproxy's).

        Under supervisord its program file is only removed here: the ``update``
        that starts haproxy stops it, so the port changes hands at once.

        Returns:
            Whether a program file was removed, and what to say.
        """
        from cicd.runtime import runtime_for

        t = self.host
        said = [
            f"{self.env}: the app run in place stops; haproxy takes port "
            f"{t.settings.port} (from now on, no downtime)"
        ]
        if t.settings.runtime.kind == "supervisor":
            path = sv.program_path(t.paths.supervisor, sv.app_program(self.env))
            if self.runner.ok(files.exists(path)):
                self.runner.run(files.remove(path))
                return True, said
            return False, []
        in_place = runtime_for(self.runner, t.settings, t.paths)
        # A swarm service updating or with a task starting still holds the port.
        if in_place.status() in ("RUNNING", "STARTING", "UPDATING"):
            in_place.stop()
            return False, said
        return False, []

    def _answers(self) -> bool:
        """Whether haproxy answers on its runtime API now."""
        try:
            self.api("show info")
        except ProxyDown:
            return False
        return True

    def wait_until_answering(self, *, timeout: float = 10.0, reloaded: bool) -> None:
        """Wait until the runtime API answers (after a start or reload).

        Raises:
            ProxyDown: Not within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = self.api(hx.show_servers(self.backend))
                if not reloaded or hx.parse_servers(answer):
                    return
            except ProxyDown:
                pass
            if time.monotonic() > deadline:
                raise ProxyDown(
                    f"haproxy did not answer on {self.socket} within {timeout:g}s "
                    f"(see {join(self.directory, 'haproxy.log')})"
                )
            time.sleep(0.05)

    # -- runtime API ----------------------------------------------------------

    def api(self, text: str) -> str:
        """Send runtime API commands (``;``-separated) and return the answer.

        Locally the socket is used from this process; over SSH a small constant
        script does it on the host.

        Raises:
            ProxyDown: haproxy is not running (or not answering).
        """
        if not self.runner.remote:
            try:
                return _exchange(self.socket, text)
            except OSError as error:
                raise ProxyDown(
                    f"haproxy is not running on {self.runner.host} "
                    f"({error.strerror or error})"
                ) from None
        result = self.runner.run(
            hx.api(self.host.python, self.socket, text), check=False
        )
        if not result.ok:
            raise ProxyDown(f"haproxy is not running on {self.runner.host}")
        return result.stdout

    def servers(self) -> dict[str, tuple[int, int]]:
        """This environment's slots as haproxy sees them (op state, admin state)."""
        return hx.parse_servers(self.api(hx.show_servers(self.backend)))

    def routed(self) -> str | None:
        """The slot haproxy routes new requests to, or None (none, or not running)."""
        try:
            up = hx.routed_slots(self.servers())
        except ProxyDown:
            return None
        return up[0] if len(up) == 1 else None

    def route(self, to: str, away: str | None, *, timeout: float = 5.0) -> None:
        """Send new requests to ``to``; drain ``away`` and stop routing to it.

        ``to`` was checked ready by our own checks: haproxy counts a server it is
        told is ready as up at once, and its own check takes it out if that is
        wrong. Open connections to ``away`` (a websocket) go on until it stops.

        Raises:
            CicdError: haproxy did not take ``to`` up within ``timeout``.
        """
        if self.reshaped:
            self._reload_routing_to(to, timeout)
            return
        # The fragment first: a reload or restart in the middle of this switch
        # (another environment's) applies the new slot, never the old one.
        self.runner.run(files.write_atomic(self.fragment, self.fragment_conf(to)))
        known = list(SLOTS) if self.nodes is None else list(self.servers())
        ready = [hx.set_state(self.backend, n, "ready") for n in hx.of(to, known)]
        self.api("; ".join(ready))
        deadline = time.monotonic() + timeout
        while not any(
            op == hx.UP for n, (op, _) in self.servers().items() if hx.slot_of(n) == to
        ):
            if time.monotonic() > deadline:
                raise CicdError(
                    f"haproxy did not take the {to} slot of {self.env} up within "
                    f"{timeout:g}s"
                )
            time.sleep(0.02)
        if away and away != to:
            self.api(
                "; ".join(
                    hx.set_state(self.backend, name, state)
                    for name in hx.of(away, known)
                    for state in ("drain", "maint")
                )
            )

    def _reload_routing_to(self, to: str, timeout: float) -> None:
        """Apply a reshaped fragment that routes to ``to``: a seamless reload.

        The master starts a new worker on the same listening sockets; the old
        worker finishes the connections it has (the old slot's websockets).

        Raises:
            CicdError: The new worker does not route to ``to`` within ``timeout``.
        """
        self._write({self.fragment: self.fragment_conf(to)})
        self._supervisor().signal("USR2", PROGRAM)
        port = str(self.host.settings.proxy.slot_port(to))
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = self.api(hx.show_servers(self.backend))
                servers = hx.parse_servers(answer)
                if hx.routed_slots(servers) == [to] and port in answer:
                    break
            except ProxyDown:
                pass
            if time.monotonic() > deadline:
                raise CicdError(
                    f"haproxy did not reload {self.env}'s new config within "
                    f"{timeout:g}s (see {join(self.directory, 'haproxy.log')})"
                )
            time.sleep(0.05)
        self.reshaped = False


def _exchange(path: str, text: str) -> str:
    """One runtime API exchange over the unix socket, from this process."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(path)
        conn.sendall(text.encode() + b"\n")
        chunks = []
        while data := conn.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def _live_listens(old: str, new: str) -> bool:
    """Whether a swarm's new fragment routes to tasks that listen already.

    True when only its nodes changed, or when the single service of before takes
    the blue/green shape (its tasks are the blue slot's, on blue's port). Else (new
    ports, a new check) the live slot's tasks do not answer the new config yet:
    it waits for the switch.
    """
    return hx.frame(old) == hx.frame(new) or not hx.slotted(old)
