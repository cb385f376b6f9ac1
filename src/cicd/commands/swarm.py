"""Builders for Docker Swarm: images per sha, the stack, its service and nodes.

Every command can aim at another Docker API (``DOCKER_HOST``: the manager's, or a
node's for ``docker load``); an empty host is docker's default. Outputs that code
reads are asked for as JSON (``--format '{{json .}}'``) and parsed here
(:func:`parse_tasks`, :func:`parse_nodes`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cicd.commands import Command, cmd, sh

#: The label that names the commit an image was built from.
REVISION_LABEL = "org.opencontainers.image.revision"
#: ``UpdateStatus.State`` values after which the swarm does nothing more.
UPDATE_DONE = ("completed", "rollback_completed", "paused", "rollback_paused")


def docker(host: str, *args: str, env: dict[str, str] | None = None) -> Command:
    """``docker ARGS`` on the Docker API ``host`` ("" : docker's default)."""
    extra = {"DOCKER_HOST": host} if host else {}
    return cmd("docker", *args, env={**(env or {}), **extra})


def swarm_role(host: str) -> Command:
    """Print ``STATE MANAGER``: e.g. ``active true`` on a swarm manager."""
    return docker(
        host,
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
    )


def image_id(host: str, image: str) -> Command:
    """Print the image's id (exit 1 when the engine does not have it)."""
    return docker(host, "image", "inspect", "--format", "{{.Id}}", image)


def build(
    host: str, context: str, dockerfile: str, image: str, sha: str, target: str
) -> Command:
    """Build ``image`` from a release directory: its ``target`` stage, labelled.

    ``--network host``: the engine has no bridge (a ``RUN pip install`` needs
    the host's network to reach the package index).
    """
    return docker(
        host,
        "build",
        "--network",
        "host",
        "--target",
        target,
        "--label",
        f"{REVISION_LABEL}={sha}",
        "--tag",
        image,
        "--file",
        dockerfile,
        context,
    )


def push(host: str, image: str) -> Command:
    """Push ``image`` (a ``registry/name:tag``) to its registry."""
    return docker(host, "push", image)


def pull(host: str, image: str) -> Command:
    """Pull ``image`` from its registry onto the engine ``host``."""
    return docker(host, "pull", "--quiet", image)


def copy_image(source: str, dest: str, image: str) -> Command:
    """Copy ``image`` from one engine to another: ``docker save | docker load``.

    The pipeline fails when either side does: ``docker load`` refuses an empty
    input. An empty host is docker's default (``DOCKER_HOST=""`` is unset).
    """
    return sh(
        'DOCKER_HOST="$1" docker save "$3" | DOCKER_HOST="$2" docker load --quiet',
        source,
        dest,
        image,
    )


def stack_deploy(host: str, file: str, stack: str, env: dict[str, str]) -> Command:
    """Create or update the stack from its file; returns at once (the swarm rolls).

    ``--resolve-image never``: nodes use the image they were given (loaded or
    pulled by name), never a registry lookup at deploy time.
    """
    return docker(
        host,
        "stack",
        "deploy",
        "--resolve-image",
        "never",
        "--compose-file",
        file,
        stack,
        env=env,
    )


def stack_rm(host: str, stack: str) -> Command:
    """Remove the stack (its services and their tasks)."""
    return docker(host, "stack", "rm", stack)


def stack_containers(host: str, stack: str) -> Command:
    """Print the ids of the stack's containers that still run on the engine ``host``.

    A removed stack's tasks stop after it is gone: until they have, their port is
    held.
    """
    label = f"com.docker.stack.namespace={stack}"
    return docker(host, "ps", "--quiet", "--filter", f"label={label}")


def service_inspect(host: str, service: str) -> Command:
    """Print the service as JSON (spec, version, ``UpdateStatus``)."""
    return docker(host, "service", "inspect", "--format", "{{json .}}", service)


def service_tasks(host: str, service: str) -> Command:
    """Print the service's tasks meant to run, one JSON object per line."""
    return docker(
        host,
        "service",
        "ps",
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        "{{json .}}",
        service,
    )


def service_history(host: str, service: str) -> Command:
    """Print every task the service had, newest first, one JSON object per line."""
    return docker(
        host, "service", "ps", "--no-trunc", "--format", "{{json .}}", service
    )


def service_logs(
    host: str, service: str, lines: int, *, follow: bool = False
) -> Command:
    """Print the last lines of every task's output (``follow``: then new ones)."""
    argv = ["service", "logs", "--no-trunc", "--tail", str(lines)]
    return docker(host, *argv, *(["--follow"] if follow else []), service)


def nodes(host: str) -> Command:
    """Print one line per node: ``hostname address state availability manager``.

    ``Status.Addr`` can read ``0.0.0.0`` on a manager; its ``ManagerStatus.Addr``
    (``ip:2377``) is printed last for that case.
    """
    form = (
        "{{.Description.Hostname}} {{.Status.Addr}} {{.Status.State}} "
        "{{.Spec.Availability}} "
        "{{if .ManagerStatus}}{{.ManagerStatus.Addr}}{{else}}-{{end}}"
    )
    return sh(
        'DOCKER_HOST="$1" docker node inspect --format "$2" '
        '$(DOCKER_HOST="$1" docker node ls -q)',
        host,
        form,
    )


@dataclass(frozen=True)
class Task:
    """One task of the service that is meant to run."""

    node: str
    image: str
    state: str
    error: str

    @property
    def running(self) -> bool:
        """Whether the task runs now (``Running 5 seconds ago``)."""
        return self.state.startswith("Running")

    @property
    def started(self) -> bool:
        """Whether its container is up (running, or its health check starting)."""
        return self.state.startswith(("Running", "Starting"))


@dataclass(frozen=True)
class Node:
    """One swarm node: where haproxy reaches its task."""

    name: str
    address: str
    ready: bool
    active: bool


def parse_tasks(text: str) -> list[Task]:
    """Parse ``docker service ps --format '{{json .}}'`` output."""
    tasks = []
    for line in text.splitlines():
        if not line.strip().startswith("{"):
            continue
        data = json.loads(line)
        tasks.append(
            Task(
                node=str(data.get("Node", "")),
                image=str(data.get("Image", "")),
                state=str(data.get("CurrentState", "")),
                # docker quotes the error it prints ('"task: non-zero exit"').
                error=str(data.get("Error", "")).strip().strip('"'),
            )
        )
    return tasks


def parse_nodes(text: str) -> list[Node]:
    """Parse :func:`cicd.commands.swarm.nodes` output (one node per line)."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) != 5:
            continue
        name, address, state, availability, manager = words
        if address in ("0.0.0.0", "") and manager != "-":
            address = manager.rsplit(":", 1)[0]
        found.append(Node(name, address, state == "ready", availability == "active"))
    return found
