"""Blue/green slots: two instances of an environment's app behind haproxy.

Each slot (``blue``, ``green``) runs one release on a private port, from its own
symlink ``<env>/slots/<slot>``. A release goes live in this order — the zero-downtime
rule, after kamal-proxy:

    start it on the idle slot → every readiness check against that slot directly
    (the rendered page included) → switch haproxy to it → drain the old slot

so a release that never gets ready is never routed to. The previous release keeps
running on its slot (``warm``) until the CI verdict or ``proxy.warm`` seconds, so a
rollback to it is only a switch back. What serves is what haproxy routes to.

On a swarm a slot is a global service (:mod:`cicd.runtime.swarm`): its checks run
against its task on every ready node, and haproxy routes to all of them.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from posixpath import basename
from typing import TYPE_CHECKING

from cicd.commands import files
from cicd.commands import supervisor as sv
from cicd.core.config_schema import SLOTS
from cicd.core.decisions import SlotFacts, other
from cicd.checks.health import wait_ready
from cicd.core.health_check import HealthCheck
from cicd.core.messages import short
from cicd.commands import haproxy as hx
from cicd.host.proxy import Proxy, ProxyDown
from cicd.runtime.supervisor import SupervisorRuntime
from cicd.runtime.swarm import SwarmRuntime

if TYPE_CHECKING:
    from cicd.runtime import Runtime
    from cicd.host.context import HostContext


#: The states of an app instance that is (or is about to be) up.
ALIVE = ("RUNNING", "STARTING")


class Slots:
    """The two slots of one environment on one host.

    Args:
        host: The environment on its host.
    """

    def __init__(self, host: HostContext) -> None:
        self.host = host
        self.swarm = host.settings.runtime.kind == "swarm"
        self.proxy = Proxy(host, self._node_places if self.swarm else None)
        self._runtimes: dict[str, Runtime] = {}
        #: The release of a swarm's single service adopted as blue by this run.
        self.adopted: str | None = None

    def runtime(self, slot: str) -> Runtime:
        """The runtime instance of one slot."""
        if slot not in self._runtimes:
            from cicd.runtime import runtime_for

            t = self.host
            self._runtimes[slot] = runtime_for(t.runner, t.settings, t.paths, slot)
        return self._runtimes[slot]

    def _swarm_runtime(self) -> SwarmRuntime:
        runtime = self.runtime(SLOTS[0])
        assert isinstance(runtime, SwarmRuntime)
        return runtime

    def _node_places(self) -> list[tuple[str, str]]:
        """Each swarm node's server name and address (for haproxy's config)."""
        nodes = self._swarm_runtime().nodes()
        names = [n.name for n in nodes]
        # Two nodes may share a hostname (cloned VMs): the address tells them apart.
        return [
            (n.name if names.count(n.name) == 1 else f"{n.name}-{n.address}", n.address)
            for n in nodes
        ]

    def base_urls(self, slot: str) -> list[str]:
        """Where a slot answers directly, bypassing haproxy: here, or each ready node.

        A swarm node that is down or drained runs no task, and is not asked.
        """
        port = self.host.settings.proxy.slot_port(slot)
        if not self.swarm:
            return [f"http://127.0.0.1:{port}"]
        nodes = self._swarm_runtime().nodes()
        return [f"http://{n.address}:{port}" for n in nodes if n.ready and n.active]

    def checks(self, slot: str) -> tuple[HealthCheck, ...]:
        """The environment's health checks, aimed at one slot directly (every node)."""
        public = self.host.settings.url.rstrip("/")
        return tuple(
            (
                replace(c, url=base + c.url[len(public) :])
                if c.url.startswith(public)
                else c
            )
            for base in self.base_urls(slot)
            for c in self.host.settings.health.checks
        )

    # -- what is where ----------------------------------------------------------

    def routed(self) -> str | None:
        """The slot haproxy routes to now (None: none, or haproxy is down).

        On a swarm whose haproxy still has the single service's config (never
        switched since), that service serves, as the blue slot it becomes.
        """
        routed = self.proxy.routed()
        if routed is None and self.swarm and self.intended() is None:
            return SLOTS[0] if self.adoptable(self.proxy.configured(), None) else None
        return routed

    def proxy_problem(self) -> str:
        """Why haproxy routes this environment nowhere, in one line."""
        try:
            servers = self.proxy.servers()
        except ProxyDown as error:
            return (
                f"{error}: nothing serves (the next deploy, rollback or "
                "`invoke start` starts it)"
            )
        states = ", ".join(f"{n} {hx.describe(*s)}" for n, s in servers.items())
        return f"haproxy routes {self.host.env} to no slot ({states or 'none'})"

    def finish_half_switch(self) -> str | None:
        """Keep the slot a switch cut short chose, when haproxy routes to both.

        A run killed between enabling the new slot and draining the old leaves
        both routed; ``live`` names the one it chose.

        Returns:
            What was done, or None when nothing needed doing.
        """
        try:
            both = hx.routed_slots(self.proxy.servers())
        except ProxyDown:
            return None
        chosen = self.intended()
        if len(both) < 2 or chosen not in both:
            return None
        self.proxy.route(chosen, other(chosen))
        return f"haproxy routed to both slots (a switch cut short): kept {chosen}"

    def intended(self) -> str | None:
        """The slot the last switch chose (``<env>/live``), or None."""
        name = self.host.runner.output(files.read(self.host.paths.live))
        return name if name in SLOTS else None

    def remember(self, slot: str) -> None:
        """Write ``<env>/live``: the slot the last switch chose."""
        self.host.runner.run(files.write_atomic(self.host.paths.live, slot + "\n"))

    def live(self) -> str:
        """The slot that serves (or should): haproxy's, the last switch's, or blue."""
        return self.routed() or self.intended() or SLOTS[0]

    def release(self, slot: str) -> str | None:
        """The sha a slot's symlink names, or None."""
        link = self.host.runner.output(files.readlink(self.host.paths.slot(slot)))
        return basename(link.rstrip("/")) or None

    def point(self, slot: str, sha: str) -> None:
        """Point a slot's symlink at ``releases/<sha>`` atomically."""
        self.host.runner.run(files.mkdirs(self.host.paths.slots))
        self.host.runner.run(
            files.switch_symlink(self.host.paths.slot(slot), f"../releases/{sha}")
        )

    def ready_now(self, slot: str) -> bool:
        """Whether a slot answers every check now (2 s at most).

        Its checks answering is what running means here: asking the runtime too
        would cost a ``supervisorctl`` (or ``docker``) call on the rollback path.
        """
        return wait_ready(
            self.checks(slot),
            deadline=2.0,
            interval=0.5,
            fetcher=self.host.fetcher(),
        ).ok

    def facts(self, sha: str, configured: bool | None = None) -> SlotFacts:
        """What decides where ``sha`` goes live (see :func:`.decisions.choose_slot`).

        haproxy's answer, else the last switch's choice: never start over the slot
        that serves (or should) because haproxy was down or its check was failing.
        Only the slots that run ``sha`` are probed (2 s at most each).

        Args:
            sha: The release going live.
            configured: Whether haproxy routes this environment already, when the
                caller asked (saves a round trip).
        """
        if configured is None:
            configured = self.proxy.configured()
        routed = self.routed()
        # The three files in one round trip: the slots' links come with ``live``.
        links = [files.readlink(self.host.paths.slot(slot)) for slot in SLOTS]
        self.host.runner.ahead(links)
        intended = self.intended()
        live = routed or (intended if configured else None)
        releases = {slot: self.release(slot) for slot in SLOTS}
        adopt = self.adoptable(configured, intended)
        if adopt:
            live, releases[SLOTS[0]] = SLOTS[0], adopt
        ready = frozenset(
            slot for slot in SLOTS if releases[slot] == sha and self.ready_now(slot)
        )
        return SlotFacts(configured, live, intended, releases, ready, adopt)

    def adoptable(self, configured: bool, intended: str | None) -> str | None:
        """The release of a swarm's single service the blue slot adopts, or None.

        A swarm deployed before blue/green ran one service on the blue slot's port
        behind haproxy, with no slot ever switched to: it becomes the blue slot's
        instance as it runs (see :meth:`.SwarmRuntime.adopts`).
        """
        if not self.swarm or intended or not configured:
            return None
        runtime = self._swarm_runtime()
        if not runtime.adopts():
            return None
        # What its tasks run, else what its spec names (a task restarting, or a
        # mix mid-update): never None for a service that listens on blue's port,
        # whose start on blue would remove it while it serves.
        return self.host.paths.release_of(runtime.serving()) or runtime.spec_sha()

    # -- switching --------------------------------------------------------------

    def ensure_proxy(self) -> list[str]:
        """Make haproxy run and know this environment (see :meth:`Proxy.ensure`).

        A swarm's single service of before is adopted first, as the blue slot:
        haproxy's config then takes the blue/green shape with blue live, a seamless
        reload onto the same tasks.
        """
        said = []
        live = self.intended()
        if live is None and self.swarm and (single := self.adoptable(True, None)):
            self.point(SLOTS[0], single)
            self.remember(SLOTS[0])
            self.adopted, live = single, SLOTS[0]
            said.append(
                f"the swarm's single service ({short(single)}) is the blue slot"
            )
        return said + self.proxy.ensure(live)

    def start_proxy(self, live: str) -> list[str]:
        """The first switch: remember ``live``, then start haproxy routing to it."""
        self.remember(live)
        said = self.proxy.ensure(live)
        self.boot_only(live)
        return said

    def switch(self, to: str, away: str | None) -> None:
        """Route to ``to``, drain ``away``, and remember ``to`` as live."""
        self.remember(to)
        self.proxy.route(to, away)
        self.boot_only(to)

    def boot_only(self, live: str | None) -> None:
        """Make the program files say that a fresh supervisord starts ``live`` only.

        A reboot (or a killed supervisord) then brings back what serves and
        nothing else: a release CI rejected or one rolled back stays stopped, and
        the warm previous release is started by ``invoke start`` only inside its
        window. Sent with the next command.
        """
        changes = [
            (runtime.program_path, slot == live)
            for slot in SLOTS
            if isinstance(runtime := self.runtime(slot), SupervisorRuntime)
        ]
        if changes:
            self.host.runner.defer(sv.set_autostart(*changes))

    def stop(self, slot: str) -> None:
        """Stop a slot's instance and keep it stopped across a reboot."""
        runtime = self.runtime(slot)
        _stop_now(runtime)
        if isinstance(runtime, SupervisorRuntime):
            runtime.set_autostart(False)

    def keep_warm(self, slot: str, sha: str | None, seconds: float) -> str:
        """Keep the previous release running on ``slot`` for ``seconds``, or stop it.

        Returns:
            What was done, in words.
        """
        if not sha or seconds <= 0:
            self.retire(slot)
            return f"the {slot} slot stopped"
        until = time.time() + seconds
        details = {"slot": slot, "sha": sha, "until": until}
        self.host.runner.run(
            files.write_atomic(self.host.paths.warm, json.dumps(details))
        )
        return (
            f"{short(sha)} kept warm on the {slot} slot for {seconds:g}s "
            "(a rollback to it is a switch back)"
        )

    def warm(self) -> dict[str, object] | None:
        """The slot kept warm and until when, or None."""
        text = self.host.runner.output(files.read(self.host.paths.warm))
        try:
            details = json.loads(text) if text else None
        except ValueError:
            return None
        return details if isinstance(details, dict) else None

    def retire(self, slot: str | None = None) -> str | None:
        """Stop the slot that is not live (the warm one); None when none runs."""
        live = self.routed() or self.intended()
        slot = slot or (other(live) if live else None)
        self.host.runner.run(files.remove(self.host.paths.warm))
        if not slot or slot == live:
            return None
        runtime = self.runtime(slot)
        if isinstance(runtime, SupervisorRuntime):
            runtime.set_autostart(False)
        # Starting counts: a swarm task whose health check has not passed yet runs.
        if runtime.status() not in (*ALIVE, "UPDATING"):
            return None
        _stop_now(runtime)
        return f"stopped the {slot} slot ({short(self.release(slot))})"

    def warm_until(self, slot: str) -> float | None:
        """Until when ``slot`` is kept warm (epoch seconds), or None: not warm now.

        Warm means the ``warm`` file names this slot and the release its symlink
        holds, and its window has not ended.
        """
        details = self.warm() or {}
        until = details.get("until")
        if (
            details.get("slot") != slot
            or not isinstance(until, (int, float))
            or until <= time.time()
            or details.get("sha") != self.release(slot)
        ):
            return None
        return float(until)

    def retire_expired(self) -> str | None:
        """Stop the warm slot if its window has passed; what was done, or None."""
        details = self.warm()
        if not details:
            return None
        until = details.get("until")
        if isinstance(until, (int, float)) and until > time.time():
            return None
        return self.retire(str(details.get("slot") or "") or None)

    def outage(self) -> str | None:
        """Why nothing serves this environment behind haproxy; None if something does.

        haproxy down, routing to no slot, or routing only to slots whose app does
        not run.
        """
        try:
            routed = hx.routed_slots(self.proxy.servers())
        except ProxyDown:
            return "haproxy is not running"
        if not routed and (single := self.routed()):
            routed = [single]
        if not routed:
            return f"haproxy routes {self.host.env} to no slot"
        states = {slot: self.runtime(slot).status() for slot in routed}
        if any(state in ALIVE for state in states.values()):
            return None
        return "; ".join(
            f"the {slot} slot is {state}" for slot, state in states.items()
        )


def _stop_now(runtime: Runtime) -> None:
    """Stop an idle slot's instance without waiting for a swarm's tasks to end.

    Nothing routes to it, and the slot's next start waits for its port: a
    rollback or a CI verdict need not hold the lock while its tasks wind down.
    """
    if isinstance(runtime, SwarmRuntime):
        runtime.stop(wait=False)
    else:
        runtime.stop()
