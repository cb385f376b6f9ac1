"""The swarm runtime on a real two-node Docker Swarm, behind a real haproxy.

The swarm (``python3 -m tools.testinfra swarm-up``; CI's ``.ci/run``) is two
network namespaces joined by a veth pair, a dockerd and a containerd in each. The
pipeline runs where a self-hosted runner would: on the manager. So each test body
runs in a thread that entered the manager's network namespace (``setns``): the
pipeline, haproxy (under the root's supervisord), the health checks and the
bounded load all live there, on its loopback and the veth pair, and nowhere else.

The app is the stand-in (busybox httpd serving a page): the real app's image needs
a Python base image, which no registry here can give (see the note in
``90_doc/source/swarm.rst``).
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from cicd.pipeline.activation import DeployFailed
from cicd.pipeline.deploy import deploy_preprod
from cicd.checks.traffic import Load
from cicd.reporting.notify import Notifier
from cicd.pipeline.rollback import rollback
from cicd.runtime.swarm import SwarmRuntime
from cicd.pipeline.status import env_status, format_status
from tests.conftest import AppRepo, Project, git
from tools.testinfra.swarm import Swarm

T = TypeVar("T")
CLONE_NEWNET = 0x40000000

DOCKERFILE = """\
FROM {base} AS deps
FROM deps AS release
COPY app /www
CMD {command}
"""
#: A well-behaved server: on SIGTERM it stops listening, lets the requests in
#: flight finish, then exits (as PID 1, a bare httpd would ignore SIGTERM and be
#: killed mid-response 10 s later).
SERVE = (
    '["sh", "-c", "httpd -f -p $CICD_PORT -h /www & '
    "trap 'kill $!; sleep 1; exit 0' TERM; wait\"]"
)
#: Never listens: the swarm's health check fails, so does the update.
NEVER_READY = '["sleep", "3600"]'
STACK = """\
version: "3.8"
services:
  app:
    image: ${CICD_IMAGE}
    networks: [hostnet]
    environment:
      CICD_PORT: "${CICD_PORT}"
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null",
             "http://127.0.0.1:${CICD_PORT}/_stcore/health"]
      interval: 1s
      timeout: 1s
      retries: 2
    deploy:
      mode: global
      update_config:
        parallelism: 1
        order: stop-first
        delay: 1s
        monitor: 3s
        failure_action: rollback
      rollback_config:
        parallelism: 1
        order: stop-first
        monitor: 3s
      restart_policy:
        condition: any
        delay: 1s
networks:
  hostnet:
    external: true
    name: host
"""


def in_netns(netns: Path, body: Callable[[], T]) -> T:
    """Run ``body`` in a thread that entered the network namespace ``netns``.

    ``setns`` moves only the calling thread; the threads and processes it starts
    inherit the namespace, the rest of pytest stays where it is.
    """
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        handle = os.open(netns, os.O_RDONLY)
        try:
            if libc.setns(handle, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {netns}")
        finally:
            os.close(handle)
        try:
            result.append(body())
        except BaseException as error:  # handed to the test's thread
            failure.append(error)

    thread = threading.Thread(target=run, name=f"in {netns.name}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def commit_swarm_app(
    repo: AppRepo, version: str, base: str, command: str = SERVE, healthy: bool = True
) -> str:
    """Commit a release: a page (and a health file) served by busybox httpd."""
    www = repo.path / "app"
    (www / "_stcore").mkdir(parents=True, exist_ok=True)
    (www / "index.html").write_text(f"{version} ok\n")
    (www / "_stcore" / "health").write_text("ok\n" if healthy else "")
    (repo.path / "Dockerfile").write_text(DOCKERFILE.format(base=base, command=command))
    (repo.path / "stack.yml").write_text(STACK)
    git(repo.path, "add", "-A")
    git(repo.path, "commit", "-qm", version)
    return git(repo.path, "rev-parse", "HEAD")


def docker(swarm_socket: str, *args: str) -> str:
    """Run docker on one node's engine and return its output."""
    return subprocess.run(
        ["docker", "-H", f"unix://{swarm_socket}", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def swarm_config(swarm: Swarm, name: str) -> str:
    """Preprod on the swarm runtime: stack and image ``name``, copied to node 2."""
    return f"""
        [tool.cicd.env.preprod.runtime]
        kind = "swarm"
        project = "{name}"
        image = "{name}"
        dockerfile = "Dockerfile"
        stack_file = "stack.yml"
        docker_host = "unix://{swarm.manager_socket}"
        nodes = ["unix://{swarm.worker_socket}"]
        update_timeout = 120
        """


@pytest.fixture
def swarm_project(
    project: Project, swarm: Swarm, request: pytest.FixtureRequest
) -> Iterator[tuple[Project, Swarm]]:
    """The project on the swarm runtime behind haproxy; stack and images removed."""
    if shutil.which("haproxy") is None:
        pytest.skip("needs haproxy (python3 -m tools.testinfra up installs it)")
    # One swarm test at a time across pytest-xdist workers: a test drains a node,
    # and every test counts the failed requests of its own load.
    lock = (Path(tempfile.gettempdir()) / "cicd-swarm-tests.lock").open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    request.addfinalizer(lock.close)
    name = f"cicdsw{uuid.uuid4().hex[:8]}"
    project.write(swarm_config(swarm, name), deadline=30, proxy="haproxy")
    yield project, swarm
    subprocess.run(
        ["docker", "-H", f"unix://{swarm.manager_socket}", "stack", "rm", name],
        capture_output=True,
    )
    for node in docker(swarm.manager_socket, "node", "ls", "-q").split():
        # A test may have drained one: every node takes tasks again.
        docker(swarm.manager_socket, "node", "update", "--availability", "active", node)
    time.sleep(1)  # the tasks stop before their images can go
    for node in (swarm.manager_socket, swarm.worker_socket):
        listed = subprocess.run(
            [
                "docker",
                "-H",
                f"unix://{node}",
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
            ],
            capture_output=True,
            text=True,
        ).stdout.split()
        ours = [i for i in listed if i.split(":")[-2].endswith(name)]
        if ours:  # by name: the registry's copy too (a tag, not a new image)
            subprocess.run(
                ["docker", "-H", f"unix://{node}", "rmi", "-f", *ours],
                capture_output=True,
            )


def page(project: Project) -> str:
    """What a user gets at the environment's address (through haproxy)."""
    return requests.get(project.url(), timeout=5).text.strip()


def tasks(project: Project) -> list[tuple[str, str]]:
    """(node, image) of each running task, as the manager reports them."""
    runtime = project.target().live_runtime()
    assert isinstance(runtime, SwarmRuntime)
    return sorted((t.node, t.image) for t in runtime.tasks() if t.running)


def test_deploy_to_two_nodes_then_a_ci_failure_rollback_fails_no_request(
    swarm_project: tuple[Project, Swarm],
) -> None:
    project, swarm = swarm_project

    def body() -> dict[str, Any]:
        v1 = commit_swarm_app(project.repo, "v1", swarm.image)
        target = project.target()
        deploy_preprod([target], v1, Notifier(target))
        assert page(project) == "v1 ok"
        image = f"{project.target().settings.runtime.image}:{v1}"
        assert [i for _, i in tasks(project)] == [image, image]  # on both nodes
        assert image in docker(
            swarm.worker_socket, "images", "--format", "{{.Repository}}:{{.Tag}}"
        )  # saved, loaded
        row = env_status(project.target())
        assert row["serving"] == v1 and not row["drift"]
        assert "2/2 tasks run" in format_status([row])

        v2 = commit_swarm_app(project.repo, "v2", swarm.image)
        with Load(project.url(), workers=4, seconds=240) as load:
            deploy_preprod([project.target()], v2, Notifier(project.target()))
            assert page(project) == "v2 ok"
            rolled_to = load.tally.sent
            # CI failed on v2: back to the last validated image, by name.
            project.target().event("validated", sha=v1)
            (result,) = rollback([project.target()], Notifier(project.target()))
        assert result.sha == v1
        assert page(project) == "v1 ok"
        assert load.tally.failed == 0 and rolled_to > 20, load.tally.line()
        return {"load": load.tally.line()}

    in_netns(swarm.manager_netns, body)


def test_an_image_that_never_gets_healthy_is_rolled_back_by_the_swarm(
    swarm_project: tuple[Project, Swarm],
) -> None:
    project, swarm = swarm_project

    def body() -> None:
        v1 = commit_swarm_app(project.repo, "v1", swarm.image)
        deploy_preprod([project.target()], v1, Notifier(project.target()))
        broken = commit_swarm_app(project.repo, "v2", swarm.image, NEVER_READY)
        seen: set[str] = set()
        with Load(project.url(), workers=2, seconds=240) as load:
            with pytest.raises(DeployFailed, match="rolled back the update"):
                deploy_preprod([project.target()], broken, Notifier(project.target()))
            seen.add(page(project))
        assert load.tally.failed == 0, load.tally.line()  # v1 served throughout
        assert seen == {"v1 ok"}
        state = project.target().state()
        assert broken in state.bad and state.current == v1
        image = f"{project.target().settings.runtime.image}:{v1}"
        assert [i for _, i in tasks(project)] == [image, image]

    in_netns(swarm.manager_netns, body)


@pytest.mark.parametrize("which", ["not yet updated", "being updated"])
def test_a_node_drained_during_an_update(
    swarm_project: tuple[Project, Swarm], which: str
) -> None:
    """Drain the node the update has not reached, or the one it is updating.

    The first: the other node serves the new image. The second: the new task is
    shut down inside the update's monitor window, which the swarm counts as a
    failed task, so it rolls the update back; the deploy fails and says so, and
    the old image serves on the node left.
    """
    project, swarm = swarm_project

    def body() -> None:
        v1 = commit_swarm_app(project.repo, "v1", swarm.image)
        deploy_preprod([project.target()], v1, Notifier(project.target()))
        v2 = commit_swarm_app(project.repo, "v2", swarm.image)
        runtime = project.target().live_runtime()
        assert isinstance(runtime, SwarmRuntime)
        old, new = (f"{project.target().settings.runtime.image}:{v}" for v in (v1, v2))
        nodes = {
            json.loads(docker(socket, "info", "--format", "{{json .Swarm.NodeID}}"))
            for socket in (swarm.manager_socket, swarm.worker_socket)
        }
        drained: list[str] = []

        def images_on(node: str) -> list[str]:
            return docker(
                swarm.manager_socket,
                "node",
                "ps",
                node,
                "--filter",
                f"name={runtime.service}",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Image}}",
            ).split()

        def drain_when_updating() -> None:
            # Which node the swarm updates first is its choice: wait for it.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                updated = {node for node in nodes if new in images_on(node)}
                if updated:
                    (node,) = updated if which == "being updated" else nodes - updated
                    docker(
                        swarm.manager_socket,
                        "node",
                        "update",
                        "--availability",
                        "drain",
                        node,
                    )
                    drained.append(node)
                    return
                time.sleep(0.05)

        drainer = threading.Thread(target=drain_when_updating)
        with Load(project.url(), workers=2, seconds=240) as load:
            drainer.start()
            if which == "being updated":
                with pytest.raises(DeployFailed, match="rolled back the update"):
                    deploy_preprod([project.target()], v2, Notifier(project.target()))
            else:
                deploy_preprod([project.target()], v2, Notifier(project.target()))
            drainer.join()
        assert drained, "the update never started"
        serving, image = (v1, old) if which == "being updated" else (v2, new)
        assert page(project) == ("v1 ok" if serving == v1 else "v2 ok")
        assert [i for _, i in tasks(project)] == [image]  # the drained node has none
        state = project.target().state()
        assert state.current == serving and (v2 in state.bad) == (serving == v1)
        # With two nodes, stop-first, no task may run while the one left restarts:
        # requests fail for about a second then, and only then.
        assert load.tally.outage < 5, load.tally.line()

    in_netns(swarm.manager_netns, body)


def test_with_a_registry_the_image_is_pushed_and_pulled_on_the_nodes(
    swarm_project: tuple[Project, Swarm],
) -> None:
    project, swarm = swarm_project
    text = project.config_path.read_text()
    nodes = f'nodes = ["unix://{swarm.worker_socket}"]'
    assert nodes in text
    project.config_path.write_text(
        text.replace(nodes, f'registry = "{swarm.registry}"\n{nodes}')
    )

    def body() -> None:
        v1 = commit_swarm_app(project.repo, "v1", swarm.image)
        deploy_preprod([project.target()], v1, Notifier(project.target()))
        assert page(project) == "v1 ok"
        image = f"{swarm.registry}/{project.target().settings.runtime.image}:{v1}"
        assert [i for _, i in tasks(project)] == [image, image]
        pulled = docker(
            swarm.worker_socket, "images", "--format", "{{.Repository}}:{{.Tag}}"
        )
        assert image in pulled.split()
        name = project.target().settings.runtime.image
        listed = requests.get(f"http://{swarm.registry}/v2/{name}/tags/list", timeout=5)
        assert listed.json()["tags"] == [v1]  # pushed, then pulled from there
        assert project.target().serving() == v1

    in_netns(swarm.manager_netns, body)


def test_the_plan_of_a_swarm_deploy_is_what_the_run_does(
    swarm_project: tuple[Project, Swarm],
) -> None:
    """``--plan``'s steps on the swarm are the ones the run records (see
    ``test_plan_is_run``): an image, then a roll-out behind haproxy."""
    from cicd.pipeline.plan import plan_deploy

    project, swarm = swarm_project

    def body() -> tuple[list[str], list[str]]:
        v1 = commit_swarm_app(project.repo, "v1", swarm.image)
        target = project.target()
        (host,) = plan_deploy([target], v1).hosts
        deploy_preprod([target], v1, Notifier(target))
        events = project.target().state().events
        done = [e for e in events if e.event == "deploy" and e.outcome == "ok"]
        return [step.action for step in host.planned], list(done[-1].actions)

    planned, recorded = in_netns(swarm.manager_netns, body)
    assert (
        planned
        == recorded
        == [
            "lock",
            "export",
            "image",
            "switch-current",
            "roll-out",
            "readiness",
            "record",
        ]
    )
