"""The swarm runtime: an image per sha, run as Docker Swarm services.

Run from the swarm's manager (``runtime.docker_host``, or docker's default there),
which also keeps the environment's one ledger and lock. Every deploy first builds
``IMAGE:SHA`` from the exported release (:meth:`SwarmRuntime.build`, before anything
is switched) and gives it to the nodes (:meth:`SwarmRuntime.distribute`): pushed to
``runtime.registry``, or copied to each of ``runtime.nodes`` with ``docker save |
docker load``. Then, in one of two shapes:

- **Blue/green behind haproxy** (the default where the manager has haproxy): each
  slot is a stack of its own, ``PROJECT-blue`` and ``PROJECT-green``, a global
  service on the slot's port of every node. A slot's instance is started by
  removing its stack and deploying it again with the new image: its tasks start on
  every node at once, never in a rolling update, since nothing routes to an idle
  slot. haproxy routes to every node's task of the live slot
  (:mod:`cicd.host.slots`), so a rollback to the warm previous release is a switch.
- **In place** (``proxy.kind = "none"``): one stack, ``PROJECT``, on the
  environment's port, rolled by the swarm node by node (``docker stack deploy``
  then ``UpdateStatus`` polled until done). An update the swarm rolled back (its
  health check failed, ``failure_action: rollback``) is a failed deploy:
  :class:`~cicd.core.errors.UpdateRolledBack`.

The single service of a swarm deployed before blue/green (stack ``PROJECT``, on the
blue slot's port behind haproxy) is adopted by the blue slot: it serves as blue's
instance until blue is next stopped or started. ``docker service rollback`` is
never used: it only knows the one previous spec. What runs is read from the tasks
(``docker service ps``), never from ``current``.
"""

from __future__ import annotations

import json
import posixpath
import time
from posixpath import join, normpath
from typing import TYPE_CHECKING, Any

from cicd.commands import files
from cicd.commands import swarm as sw
from cicd.commands.swarm import Node, Task, parse_nodes, parse_tasks
from cicd.core.errors import CicdError, UpdateRolledBack
from cicd.runtime.compose import app_env_file

if TYPE_CHECKING:
    from cicd.commands import Command
    from cicd.core.settings import EnvSettings
    from cicd.core.layout import EnvPaths
    from cicd.transport.runner import Runner

#: The Dockerfile stage that holds the release's code.
RELEASE_STAGE = "release"
#: Seconds between two looks at a rolling update.
POLL = 0.5


class SwarmRuntime:
    """Run an environment's app as a Docker Swarm service (one per slot).

    Args:
        runner: Runs commands on the manager's host.
        settings: The environment's settings.
        paths: The environment's paths on that host.
        slot: Behind haproxy, the slot whose stack this is (``PROJECT-SLOT``, on
            the slot's port); None: the one stack run in place.
    """

    def __init__(
        self,
        runner: Runner,
        settings: EnvSettings,
        paths: EnvPaths,
        slot: str | None = None,
    ) -> None:
        self.runner = runner
        self.settings = settings
        self.paths = paths
        self.slot = slot
        self.port = settings.port_of(slot)
        self.host = settings.runtime.docker_host
        single = settings.runtime.project
        self.stack = f"{single}-{slot}" if slot else single
        #: ``docker stack deploy`` names a stack's service ``STACK_SERVICE``.
        self.service = f"{self.stack}_{settings.runtime.service}"
        #: The stack a swarm ran before blue/green (adopted by the slot whose port
        #: it listens on, see :meth:`adopts`).
        self.single = single
        self._adopts: bool | None = None

    # -- images ---------------------------------------------------------------

    def image(self, sha: str) -> str:
        """The image of a release: ``[REGISTRY/]IMAGE:SHA``."""
        runtime = self.settings.runtime
        name = (
            f"{runtime.registry}/{runtime.image}" if runtime.registry else runtime.image
        )
        return f"{name}:{sha}"

    def sha_of(self, image: str) -> str | None:
        """The sha an image of ours is tagged with, or None for another image."""
        name, _, tag = image.split("@", 1)[0].rpartition(":")
        return tag if tag and name == self.image("").rstrip(":") else None

    def prepare(self, sha: str, release: str) -> list[str]:
        """Make ``IMAGE:SHA`` exist on the manager and reach every node.

        Returns:
            Lines for the console (see :meth:`build` and :meth:`distribute`).
        """
        return self.build(sha, release) + self.distribute(sha)

    def build(self, sha: str, release: str) -> list[str]:
        """Build ``IMAGE:SHA`` on the manager from the release (once: idempotent).

        Args:
            sha: The release's commit.
            release: Its exported directory (the build context).

        Returns:
            What was built, for the console (nothing when it existed).

        Raises:
            CicdError: The build failed (docker's last line).
        """
        image = self.image(sha)
        if self.runner.ok(sw.image_id(self.host, image)):
            return []
        started = time.monotonic()
        dockerfile = join(release, self.settings.runtime.dockerfile)
        self._run(
            sw.build(self.host, release, dockerfile, image, sha, RELEASE_STAGE),
            f"building {image}",
        )
        return [f"built {image} ({time.monotonic() - started:.1f}s)"]

    def distribute(self, sha: str) -> list[str]:
        """Give ``IMAGE:SHA`` to every node that lacks it (pushed, pulled or copied).

        Returns:
            Where it went, for the console.

        Raises:
            CicdError: The push, a pull or a copy failed (docker's last line).
        """
        image = self.image(sha)
        said = []
        if self.settings.runtime.registry:
            self._run(sw.push(self.host, image), f"pushing {image}")
            said.append(f"pushed {image}")
        for node in self.settings.runtime.nodes:
            if self.runner.ok(sw.image_id(node, image)):
                continue
            if self.settings.runtime.registry:
                # Pulled ahead: the start waits for no pull, a node that cannot
                # pull fails the deploy before anything switched, and a node set
                # never to pull (DOCKER_SERVICE_PREFER_OFFLINE_IMAGE) has it.
                self._run(sw.pull(node, image), f"pulling {image} on {node}")
                said.append(f"pulled {image} on {node}")
                continue
            self._run(sw.copy_image(self.host, node, image), f"copying {image}")
            said.append(f"copied {image} to {node}")
        return said

    def _run(self, command: Command, what: str) -> str:
        result = self.runner.run(command, check=False)
        if not result.ok:
            lines = (result.stderr + result.stdout).strip().splitlines()
            last = lines[-1].strip() if lines else f"exit {result.exited}"
            raise CicdError(f"{what} failed on {self.runner.host}: {last}")
        return result.stdout

    # -- the service ----------------------------------------------------------

    def preflight_reads(self) -> list[Command]:
        """Nothing read ahead: ``preflight`` asks the engine, which may change."""
        return []

    def preflight(self) -> None:
        """Fail with a clear message unless docker answers as a swarm manager."""
        if not self.runner.ok(files.which("docker")):
            raise CicdError(
                f"docker not found on {self.runner.host} (install docker, or set "
                "tool.cicd.runtime.kind = 'supervisor')"
            )
        role = self.runner.run(sw.swarm_role(self.host), check=False)
        if role.stdout.split() != ["active", "true"]:
            where = self.host or "docker's default socket"
            raise CicdError(
                f"{where} on {self.runner.host} is not a swarm manager "
                f"({role.stdout.strip() or role.stderr.strip() or 'no answer'}): "
                "run docker swarm init there, or set tool.cicd.runtime.docker_host"
            )

    def adopts(self) -> bool:
        """Whether this slot's instance is still the single service of before.

        A swarm deployed before blue/green ran one stack, ``PROJECT``, on the blue
        slot's port behind haproxy: the slot on whose port it listens treats it as
        its instance (no restart, no outage) until it is next stopped or started.
        """
        if self._adopts is None:
            self._adopts = False
            if self.slot and (data := self._inspect(self._single_service())):
                env = (
                    data.get("Spec", {})
                    .get("TaskTemplate", {})
                    .get("ContainerSpec", {})
                    .get("Env")
                ) or []
                self._adopts = f"CICD_PORT={self.port}" in env
        return self._adopts

    def _single_service(self) -> str:
        return f"{self.single}_{self.settings.runtime.service}"

    def in_use(self) -> str:
        """The service that is this instance: its own, or the single one it adopts."""
        if self.adopts() and self._inspect(self.service) is None:
            return self._single_service()
        return self.service

    def _inspect(self, service: str) -> dict[str, Any] | None:
        result = self.runner.run(sw.service_inspect(self.host, service), check=False)
        if not result.ok or not result.stdout.strip():
            return None
        data = json.loads(result.stdout)
        return data if isinstance(data, dict) else None

    def spec_sha(self) -> str | None:
        """The sha of the image its service's spec names (None: none of ours)."""
        data = self.inspect()
        return self.sha_of(_spec_image(data)) if data else None

    def inspect(self) -> dict[str, Any] | None:
        """The service as docker describes it, or None when there is none."""
        return self._inspect(self.in_use())

    def tasks(self) -> list[Task]:
        """The service's tasks meant to run (none when there is no service)."""
        result = self.runner.run(
            sw.service_tasks(self.host, self.in_use()), check=False
        )
        return parse_tasks(result.stdout) if result.ok else []

    def nodes(self) -> list[Node]:
        """The swarm's nodes, with the address haproxy reaches each one's task at."""
        return parse_nodes(self._run(sw.nodes(self.host), "listing the swarm's nodes"))

    def _release(self) -> tuple[str, str]:
        link = self.paths.link(self.slot)
        target = self.runner.output(files.readlink(link))
        if not target:
            raise CicdError(f"{self.settings.name}: no release at {link} to run")
        release = normpath(join(posixpath.dirname(link), target))
        sha = target.rstrip("/").rsplit("/", 1)[-1]
        return sha, release

    def start(self) -> None:
        """Deploy the stack for its release unless its image already runs."""
        if self.slot is None:
            self.restart()
            return
        sha, _ = self._release()
        if not self._all_run(self.image(sha)):
            self.restart()

    def restart_reads(self) -> list[Command]:
        """Nothing to read ahead: ``restart`` begins by acting."""
        return []

    def restart(self) -> None:
        """Run the release its link names and wait until every node's task runs it.

        A slot's stack is removed and deployed anew (its tasks start on every node
        at once); the stack run in place is rolled node by node by the swarm.

        Raises:
            UpdateRolledBack: The swarm rolled the update back or paused it.
            CicdError: Not done within ``runtime.update_timeout``.
        """
        sha, release = self._release()
        self.prepare(sha, release)
        image = self.image(sha)
        if self.slot is not None:
            self.stop()
            if self._inspect(self._single_service()) is None:
                # The single service of before, adopted then removed a moment
                # ago, may still hold this port.
                self._wait_gone([self.single])
            before = None
        else:
            before = self.inspect()
            if before and _spec_image(before) == image and self._all_run(image, before):
                return  # already what current says, on every task
        started = (before or {}).get("UpdateStatus", {}).get("StartedAt")
        env = {
            "CICD_IMAGE": image,
            "CICD_ENV": self.settings.name,
            "CICD_PORT": str(self.port),
            # ``env_file`` is read by ``docker stack deploy`` on this manager.
            "CICD_APP_ENV": app_env_file(self.runner, self.paths.app_env),
        }
        file = join(release, self.settings.runtime.stack_file)
        self._run(
            sw.stack_deploy(self.host, file, self.stack, env), "docker stack deploy"
        )
        self._wait(image, started, created=before is None)

    def _all_run(
        self, image: str, data: dict[str, Any] | None = None, *, begun: bool = False
    ) -> bool:
        """Whether every task the service should have runs ``image``.

        A global service has one task per ready, active node, and a node's task
        can appear a moment after the others: counted against the nodes.

        Args:
            image: The image the tasks must run.
            data: The service, when just inspected.
            begun: A task whose container started counts (its health check may
                still be starting): a slot's readiness checks judge the rest.
        """
        tasks = self.tasks()
        if not tasks or not all(
            (t.started if begun else t.running) and t.image == image for t in tasks
        ):
            return False
        mode = ((data or self.inspect() or {}).get("Spec") or {}).get("Mode") or {}
        if "Global" in mode:
            wanted = sum(n.ready and n.active for n in self.nodes())
        else:
            wanted = int((mode.get("Replicated") or {}).get("Replicas") or 1)
        return len(tasks) >= wanted

    def _wait(self, image: str, started: str | None, *, created: bool) -> None:
        """Poll until the swarm finished rolling ``image`` out (or back)."""
        limit = time.monotonic() + self.settings.runtime.update_timeout
        while time.monotonic() < limit:
            data = self.inspect() or {}
            update = data.get("UpdateStatus") or {}
            state = update.get("State", "")
            if update.get("StartedAt") != started and state in sw.UPDATE_DONE:
                if state != "completed":
                    why = self._task_error(image)
                    raise UpdateRolledBack(
                        f"the swarm {_said(state)} the update to {image}: "
                        f"{update.get('Message', '')}".rstrip(": ")
                        + (f" (a task of it: {why})" if why else "")
                    )
                if self._all_run(image, data):
                    return
            elif (created or not update) and self._all_run(
                image, data, begun=self.slot is not None
            ):
                # A new service (or a spec the swarm applied without an update
                # record): its tasks running the image is the whole answer.
                return
            time.sleep(POLL)
        found = self.tasks()
        tasks = ", ".join(f"{t.node} {t.image} {t.state}" for t in found)
        # A node with no task at all: an image it lacks (list it in
        # runtime.nodes), or a placement constraint that leaves it out.
        wanted = [n.name for n in self.nodes() if n.ready and n.active]
        idle = sorted(set(wanted) - {t.node for t in found})
        without = f"; no task on {', '.join(idle)}" if idle else ""
        raise CicdError(
            f"{self.service}: not on {image} after "
            f"{self.settings.runtime.update_timeout:g}s (tasks: {tasks or 'none'})"
            + without
        )

    def _task_error(self, image: str) -> str:
        """The newest error of a task that ran ``image`` ("" when none says)."""
        result = self.runner.run(
            sw.service_history(self.host, self.in_use()), check=False
        )
        for task in parse_tasks(result.stdout if result.ok else ""):
            if task.image == image and task.error:
                return task.error
        return ""

    def stop(self, *, wait: bool = True) -> None:
        """Remove the stack (and the single service it adopts); wait until it stopped.

        Args:
            wait: Return once no task of it runs on any engine (its port is free
                again). False: return at once; the slot's next start waits.

        Raises:
            CicdError: A task still runs after ``runtime.update_timeout``.
        """
        stacks = [self.stack] + ([self.single] if self.adopts() else [])
        for stack in stacks:
            self.runner.run(sw.stack_rm(self.host, stack), check=False)
        self._adopts = False
        if wait:
            self._wait_gone(stacks)

    def _wait_gone(self, stacks: list[str]) -> None:
        """Wait until no container of ``stacks`` runs on any engine we know."""
        engines = [self.host, *self.settings.runtime.nodes]
        limit = time.monotonic() + self.settings.runtime.update_timeout
        while True:
            left = [
                f"{stack} on {engine or 'the manager'}"
                for engine in engines
                for stack in stacks
                if self.runner.output(sw.stack_containers(engine, stack))
            ]
            if not left:
                return
            if time.monotonic() > limit:
                raise CicdError(
                    f"tasks still run after {self.settings.runtime.update_timeout:g}s"
                    f" (stack {', '.join(left)}): stop them, or raise "
                    "runtime.update_timeout"
                )
            time.sleep(POLL)

    def status(self) -> str:
        """RUNNING (every task runs), UPDATING, STARTING, or DOWN (no service)."""
        data = self.inspect()
        if data is None:
            return "DOWN"
        state = (data.get("UpdateStatus") or {}).get("State", "")
        if state in ("updating", "rollback_started"):
            return "UPDATING"
        tasks = self.tasks()
        if tasks and all(t.running for t in tasks):
            return "RUNNING"
        return "STARTING" if tasks else "DOWN"

    def serving(self) -> str:
        """The release every running task runs, or ``""`` (none, or a mix)."""
        # Started counts: a slot is ready once our own checks pass through its
        # tasks, whatever the swarm's health check says yet.
        images = {t.image for t in self.tasks() if t.started}
        if len(images) != 1:
            return ""
        sha = self.sha_of(images.pop())
        return self.paths.release(sha) if sha else ""

    def describe(self) -> dict[str, Any]:
        """What runs where: the spec's image and each task's node, image and state."""
        data = self.inspect()
        return {
            "slot": self.slot,
            "service": self.in_use(),
            "image": _spec_image(data) if data else None,
            "update": ((data or {}).get("UpdateStatus") or {}).get("State") or None,
            "tasks": [
                {"node": t.node, "image": t.image, "state": t.state, "error": t.error}
                for t in self.tasks()
            ],
        }

    def logs(self, lines: int = 50) -> str:
        """Return the tasks' last log lines (each prefixed with its task and node)."""
        result = self.runner.run(
            sw.service_logs(self.host, self.in_use(), lines), check=False
        )
        return result.stdout + result.stderr

    def release_logs(self, lines: int = 50) -> str:
        """The tasks' last log lines, each prefixed with its task and node.

        The swarm keeps the tasks an update replaced, so their lines may come too:
        the prefix tells them apart.
        """
        return self.logs(lines)

    def follow(self, lines: int = 50) -> Command:
        """``docker service logs --follow``: every task's last lines, then new ones."""
        return sw.service_logs(self.host, self.in_use(), lines, follow=True)


def _spec_image(data: dict[str, Any]) -> str:
    """The image a service's spec names (without a digest)."""
    spec = data.get("Spec", {}).get("TaskTemplate", {}).get("ContainerSpec", {})
    return str(spec.get("Image", "")).split("@", 1)[0]


def _said(state: str) -> str:
    return {
        "rollback_completed": "rolled back",
        "paused": "paused",
        "rollback_paused": "paused the rollback of",
    }.get(state, state)
