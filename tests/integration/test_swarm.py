"""The swarm runtime on a real two-node Docker Swarm, blue/green behind haproxy.

Each slot is a global service of its own (``PROJECT-blue``, ``PROJECT-green``) on
its slot's port of both nodes; haproxy routes to every node's task of the live one.
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
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import requests

from cicd.pipeline.activation import DeployFailed
from cicd.pipeline.deploy import deploy_preprod
from cicd.checks.traffic import Load
from cicd.reporting.notify import Notifier
from cicd.pipeline.rollback import rollback
from cicd.runtime.swarm import SwarmRuntime
from cicd.transport.failpoints import VARIABLE as FAILPOINT
from cicd.pipeline.status import env_status
from tests.conftest import REPO_ROOT, AppRepo, Project, git, invoke
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


def swarm_config(swarm: Swarm, name: str, extra: str = "") -> str:
    """Preprod on the swarm runtime: stack and image ``name``, copied to node 2."""
    return extra + f"""
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
    for stack in (f"{name}-blue", f"{name}-green"):
        subprocess.run(
            ["docker", "-H", f"unix://{swarm.manager_socket}", "stack", "rm", stack],
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
    """(node, image) of each started task of the live slot, as the manager says.

    Started: running, or its container up while the swarm's own health check has
    not passed yet (our readiness checks already did).
    """
    runtime = project.target().live_runtime()
    assert isinstance(runtime, SwarmRuntime)
    started = ("Running", "Starting")
    return sorted(
        (t.node, t.image) for t in runtime.tasks() if t.state.startswith(started)
    )


def slot_tasks(project: Project, swarm: Swarm, slot: str) -> list[str]:
    """``ID NODE IMAGE`` of each task a slot's service runs ([] without one)."""
    name = project.target().settings.runtime.project
    listed = subprocess.run(
        [
            "docker",
            "-H",
            f"unix://{swarm.manager_socket}",
            "service",
            "ps",
            f"{name}-{slot}_app",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.ID}} {{.Node}} {{.Image}}",
        ],
        capture_output=True,
        text=True,
    )
    return sorted(listed.stdout.split("\n")[:-1]) if listed.returncode == 0 else []


def live_slot(project: Project) -> str:
    """The slot the last switch chose (``<env>/live``)."""
    return (project.root / "preprod" / "live").read_text().strip()


def other(slot: str) -> str:
    """The other slot."""
    return "green" if slot == "blue" else "blue"


def with_local_ci(project: Project, swarm: Swarm, command: str) -> None:
    """Keep the swarm config; CI is a local command run in a copy of the release."""
    name = project.target().settings.runtime.project
    ci = f"""
        [tool.cicd.ci]
        provider = "local"
        command = "{command}"
        deadline = 60
        """
    project.write(swarm_config(swarm, name, ci), deadline=30, proxy="haproxy")


def deploy(project: Project, sha: str) -> None:
    """Deploy ``sha`` to preprod, in this process."""
    deploy_preprod([project.target()], sha, Notifier(project.target()))


def test_deploy_to_both_nodes_then_a_ci_failure_switches_back_with_no_restart(
    swarm_project: tuple[Project, Swarm],
) -> None:
    project, swarm = swarm_project
    with_local_ci(project, swarm, "true")

    def body() -> None:
        v1 = commit_swarm_app(project.repo, "v1", swarm.image)
        deploy(project, v1)
        assert page(project) == "v1 ok"
        image = f"{project.target().settings.runtime.image}:{v1}"
        assert [i for _, i in tasks(project)] == [image, image]  # on both nodes
        assert image in docker(
            swarm.worker_socket, "images", "--format", "{{.Repository}}:{{.Tag}}"
        )  # saved, loaded
        assert invoke("watch", "--sha", v1).returncode == 0  # CI passes: validated
        first = live_slot(project)
        before = slot_tasks(project, swarm, first)
        assert len(before) == 2

        with_local_ci(project, swarm, "false")
        v2 = commit_swarm_app(project.repo, "v2", swarm.image)
        with Load(project.url(), workers=4, seconds=240) as load:
            deploy(project, v2)
            assert page(project) == "v2 ok"
            assert live_slot(project) == other(first)
            assert slot_tasks(project, swarm, first) == before  # warm, untouched
            shown = invoke("status", "--env", "preprod")
            assert f"swarm {first}: 2/2 tasks run" in shown.stdout, shown.stdout
            assert f"swarm {other(first)}: 2/2 tasks run" in shown.stdout
            watched = invoke("watch", "--sha", v2)
            assert watched.returncode == 0, watched.stderr + watched.stdout
        assert load.tally.failed == 0 and load.tally.sent > 20, load.tally.line()
        assert page(project) == "v1 ok"
        # The same tasks serve v1 again: a switch back, no restart.
        assert live_slot(project) == first
        assert slot_tasks(project, swarm, first) == before
        assert slot_tasks(project, swarm, other(first)) == []  # the failed one: gone
        events = project.target().state().events
        (back,) = [e for e in events if e.event == "rollback" and e.outcome == "ok"]
        assert "switch-back" in back.actions and "start-slot" not in back.actions
        row = env_status(project.target())
        assert row["serving"] == v1 and not row["drift"]

    in_netns(swarm.manager_netns, body)


def test_a_ci_pass_stops_the_previous_service(
    swarm_project: tuple[Project, Swarm],
) -> None:
    project, swarm = swarm_project
    with_local_ci(project, swarm, "true")

    def body() -> None:
        deploy(project, commit_swarm_app(project.repo, "v1", swarm.image))
        first = live_slot(project)
        v2 = commit_swarm_app(project.repo, "v2", swarm.image)
        deploy(project, v2)
        assert len(slot_tasks(project, swarm, first)) == 2  # warm until the verdict
        with Load(project.url(), workers=2, seconds=120) as load:
            watched = invoke("watch", "--sha", v2)
        assert watched.returncode == 0, watched.stderr
        assert f"stopped the {first} slot" in watched.stdout + watched.stderr
        assert slot_tasks(project, swarm, first) == []
        assert load.tally.failed == 0, load.tally.line()
        assert page(project) == "v2 ok"

    in_netns(swarm.manager_netns, body)


def test_a_rollback_to_an_older_image_starts_it_on_the_idle_slot(
    swarm_project: tuple[Project, Swarm],
) -> None:
    project, swarm = swarm_project

    def body() -> None:
        v1 = commit_swarm_app(project.repo, "v1", swarm.image)
        deploy(project, v1)
        for version in ("v2", "v3"):
            deploy(project, commit_swarm_app(project.repo, version, swarm.image))
        live = live_slot(project)
        with Load(project.url(), workers=4, seconds=240) as load:
            (result,) = rollback([project.target()], Notifier(project.target()), to=v1)
        assert result.sha == v1
        assert load.tally.failed == 0 and load.tally.sent > 20, load.tally.line()
        assert page(project) == "v1 ok"
        assert live_slot(project) == other(live)
        image = f"{project.target().settings.runtime.image}:{v1}"
        assert [i for _, i in tasks(project)] == [image, image]
        events = project.target().state().events
        (back,) = [e for e in events if e.event == "rollback" and e.outcome == "ok"]
        assert "start-slot" in back.actions and "readiness" in back.actions

    in_netns(swarm.manager_netns, body)


def test_an_image_that_never_gets_ready_is_never_routed_to(
    swarm_project: tuple[Project, Swarm],
) -> None:
    project, swarm = swarm_project
    name = project.target().settings.runtime.project
    project.write(swarm_config(swarm, name), deadline=8, proxy="haproxy")

    def body() -> None:
        v1 = commit_swarm_app(project.repo, "v1", swarm.image)
        deploy(project, v1)
        live = live_slot(project)
        broken = commit_swarm_app(project.repo, "v2", swarm.image, NEVER_READY)
        with Load(project.url(), workers=2, seconds=240) as load:
            with pytest.raises(DeployFailed, match="never routed to"):
                deploy(project, broken)
        assert load.tally.failed == 0, load.tally.line()  # v1 served throughout
        assert page(project) == "v1 ok"
        state = project.target().state()
        assert broken in state.bad and state.current == v1
        assert live_slot(project) == live
        assert slot_tasks(project, swarm, other(live)) == []  # its stack removed

    in_netns(swarm.manager_netns, body)


@pytest.mark.parametrize("which", ["worker", "manager"])
def test_a_node_drained_while_the_new_release_starts(
    swarm_project: tuple[Project, Swarm], which: str
) -> None:
    """Drain a node once the idle slot's service exists, before it is ready.

    Its tasks stop (the live slot's too: haproxy's checks and redispatch take that
    node out); the deploy counts the nodes left, gets ready there and switches.
    """
    project, swarm = swarm_project

    def body() -> None:
        deploy(project, commit_swarm_app(project.repo, "v1", swarm.image))
        idle = other(live_slot(project))
        v2 = commit_swarm_app(project.repo, "v2", swarm.image)
        socket = swarm.worker_socket if which == "worker" else swarm.manager_socket
        node = json.loads(docker(socket, "info", "--format", "{{json .Swarm.NodeID}}"))
        drained: list[str] = []

        def drain_once_started() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not drained:
                if slot_tasks(project, swarm, idle):
                    docker(
                        swarm.manager_socket,
                        "node",
                        "update",
                        "--availability",
                        "drain",
                        node,
                    )
                    drained.append(node)
                time.sleep(0.05)

        drainer = threading.Thread(target=drain_once_started)
        with Load(project.url(), workers=2, seconds=240) as load:
            drainer.start()
            deploy(project, v2)
            drainer.join()
        assert drained, "the new release's service never appeared"
        assert page(project) == "v2 ok"
        image = f"{project.target().settings.runtime.image}:{v2}"
        assert [i for _, i in tasks(project)] == [image]  # the drained node has none
        assert project.target().state().current == v2
        # The drained node's task of the live slot stops under the load: haproxy
        # retries a refused connection on the node left.
        assert load.tally.failed == 0, load.tally.line()

    in_netns(swarm.manager_netns, body)


@pytest.mark.parametrize(("point", "serves"), [("restarted", "v1"), ("switched", "v2")])
def test_an_interrupted_switch_is_settled_by_the_next_command(
    swarm_project: tuple[Project, Swarm], point: str, serves: str
) -> None:
    project, swarm = swarm_project

    def body() -> None:
        deploy(project, commit_swarm_app(project.repo, "v1", swarm.image))
        v2 = commit_swarm_app(project.repo, "v2", swarm.image)
        killed = invoke("deploy.preprod", "--sha", v2, env={FAILPOINT: point})
        assert killed.returncode in (-9, 137), killed.stderr
        assert (project.root / "preprod" / "intent").exists()
        with Load(project.url(), workers=4, seconds=120) as load:
            repaired = invoke("status", "--repair", "--env", "preprod")
        assert repaired.returncode == 0, repaired.stderr + repaired.stdout
        assert load.tally.failed == 0, load.tally.line()
        assert not (project.root / "preprod" / "intent").exists()
        assert page(project) == f"{serves} ok"
        row = env_status(project.target())
        assert not row["drift"] and row["healthy"], row

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
        deploy(project, v1)
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
    ``test_plan_is_run``): an image, then blue/green on the idle slot."""
    from cicd.pipeline.plan import plan_deploy

    project, swarm = swarm_project

    def body() -> list[tuple[list[str], list[str]]]:
        pairs = []
        for version in ("v1", "v2"):
            sha = commit_swarm_app(project.repo, version, swarm.image)
            (host,) = plan_deploy([project.target()], sha).hosts
            deploy(project, sha)
            events = project.target().state().events
            done = [e for e in events if e.event == "deploy" and e.outcome == "ok"]
            pairs.append(([s.action for s in host.planned], list(done[-1].actions)))
        return pairs

    (first, first_run), (second, second_run) = in_netns(swarm.manager_netns, body)
    assert first == first_run
    assert first == [
        "lock",
        "export",
        "image",
        "start-slot",
        "readiness",
        "switch",
        "record",
    ]
    assert second == second_run
    assert second == [
        "lock",
        "export",
        "image",
        "start-slot",
        "readiness",
        "switch",
        "keep-warm",
        "record",
    ]


#: The last commit whose swarm ran one service (behind haproxy, on the blue slot's
#: port): what a team upgrading from it has running.
SINGLE_SERVICE = "98da66bc7f70f2901c91598c437a2247fad10c86"


def single_service_pipeline(tmp_path: Path) -> Path:
    """The pipeline of :data:`SINGLE_SERVICE`, exported from this repository's history.

    Skips when the history does not hold it (a shallow clone).
    """
    if (
        subprocess.run(
            ["git", "-C", str(REPO_ROOT), "cat-file", "-e", SINGLE_SERVICE],
            capture_output=True,
        ).returncode
        != 0
    ):
        pytest.skip(
            f"needs commit {SINGLE_SERVICE[:7]} in the clone (git fetch --unshallow)"
        )
    old = tmp_path / "single-service"
    old.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", SINGLE_SERVICE, "src", "tasks.py"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    return old


def deploy_single_service(old: Path, sha: str) -> None:
    """Deploy ``sha`` with the single-service pipeline exported at ``old``."""
    argv = [sys.executable, "-m", "invoke", "--search-root", str(old)]
    before = subprocess.run(
        [*argv, "deploy.preprod", "--sha", sha],
        capture_output=True,
        text=True,
        # Not measured: it is not this repository's code (coverage's
        # subprocess patch would count its modules as ``cicd``'s).
        env={
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("COVERAGE_", "COV_CORE_"))
            },
            "PYTHONPATH": str(old / "src"),
        },
        timeout=300,
    )
    assert before.returncode == 0, before.stderr + before.stdout


def test_moving_from_the_single_service_behind_haproxy_fails_no_request(
    swarm_project: tuple[Project, Swarm], tmp_path: Path
) -> None:
    """A swarm deployed by the single-service pipeline, then by this one.

    The single service (on the blue slot's port) is adopted as the blue slot: the
    new release starts on green, and the switch reshapes haproxy's config with a
    seamless reload. It stays warm: a CI failure switches back to it. The next
    deploy to blue removes it.
    """
    project, swarm = swarm_project
    old = single_service_pipeline(tmp_path)
    name = project.target().settings.runtime.project

    def body() -> None:
        v1 = commit_swarm_app(project.repo, "v1", swarm.image)
        deploy_single_service(old, v1)
        assert page(project) == "v1 ok"
        assert not (project.root / "preprod" / "live").exists()
        # Upgraded, before its first deploy: the single service serves, as blue.
        row = env_status(project.target())
        assert row["serving"] == v1 and not row["drift"] and not row["down"], row

        v2 = commit_swarm_app(project.repo, "v2", swarm.image)
        planned = invoke("deploy.preprod", "--sha", v2, "--plan")
        assert "single service" in planned.stdout, planned.stdout
        with Load(project.url(), workers=4, seconds=240) as load:
            deploy(project, v2)
            assert page(project) == "v2 ok"
            assert live_slot(project) == "green"
            # CI failed on v2: the single service of before is still warm (blue).
            project.target().event("validated", sha=v1)
            (result,) = rollback([project.target()], Notifier(project.target()))
            assert result.sha == v1 and page(project) == "v1 ok"
        assert load.tally.failed == 0 and load.tally.sent > 20, load.tally.line()
        events = project.target().state().events
        (back,) = [e for e in events if e.event == "rollback" and e.outcome == "ok"]
        assert "switch-back" in back.actions

        v3 = commit_swarm_app(project.repo, "v3", swarm.image)
        deploy(project, v3)  # onto green (v1 serves on blue)
        deploy(project, commit_swarm_app(project.repo, "v4", swarm.image))  # blue
        assert live_slot(project) == "blue" and page(project) == "v4 ok"
        stacks = docker(swarm.manager_socket, "stack", "ls", "--format", "{{.Name}}")
        assert name not in stacks.split()  # the single service is gone
        assert f"{name}-blue" in stacks.split()

    in_netns(swarm.manager_netns, body)


def test_moving_from_a_swarm_without_haproxy_has_one_short_outage(
    swarm_project: tuple[Project, Swarm],
) -> None:
    """The single service ran on the environment's own port, without haproxy.

    The first deploy behind haproxy starts the release on blue; once it is ready
    the single service stops and haproxy takes its port: the one short outage the
    plan announces.
    """
    project, swarm = swarm_project
    name = project.target().settings.runtime.project
    project.write(swarm_config(swarm, name), deadline=30, proxy="none")

    def body() -> None:
        deploy(project, commit_swarm_app(project.repo, "v1", swarm.image))
        assert page(project) == "v1 ok"
        project.write(swarm_config(swarm, name), deadline=30, proxy="haproxy")
        v2 = commit_swarm_app(project.repo, "v2", swarm.image)
        planned = invoke("deploy.preprod", "--sha", v2, "--plan")
        assert "the first switch behind haproxy here" in planned.stdout
        with Load(project.url(), workers=4, seconds=240) as load:
            deploy(project, v2)
            time.sleep(0.5)
        assert page(project) == "v2 ok"
        assert load.tally.outage < 5, load.tally.line()
        stacks = docker(swarm.manager_socket, "stack", "ls", "--format", "{{.Name}}")
        assert name not in stacks.split()
        return None

    in_netns(swarm.manager_netns, body)


def test_a_reboot_before_the_first_deploy_adopts_the_single_service(
    swarm_project: tuple[Project, Swarm], tmp_path: Path
) -> None:
    """haproxy gone (a reboot) on a swarm upgraded from the single service.

    ``invoke start`` adopts that service as blue and starts haproxy routing to
    it: it serves again, with nothing restarted.
    """
    project, swarm = swarm_project
    old = single_service_pipeline(tmp_path)

    def body() -> None:
        v1 = commit_swarm_app(project.repo, "v1", swarm.image)
        deploy_single_service(old, v1)
        ctl = Path(sys.executable).parent / "supervisorctl"
        conf = project.root / "supervisor" / "supervisord.conf"
        subprocess.run([str(ctl), "-c", str(conf), "stop", "proxy"], check=True)
        name = project.target().settings.runtime.project
        before = docker(swarm.manager_socket, "service", "ps", "-q", f"{name}_app")
        started = invoke("start", "--env", "preprod")
        assert started.returncode == 0, started.stderr + started.stdout
        assert "single service" in started.stdout + started.stderr
        assert page(project) == "v1 ok"
        assert live_slot(project) == "blue"
        after = docker(swarm.manager_socket, "service", "ps", "-q", f"{name}_app")
        assert after == before  # the same tasks: nothing restarted
        row = env_status(project.target())
        assert row["serving"] == v1 and not row["drift"] and row["healthy"], row

    in_netns(swarm.manager_netns, body)
