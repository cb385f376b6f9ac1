"""Unit tests of the swarm runtime's commands and decisions, without a swarm.

A fresh machine has no Docker engine, so here docker is a fake: a small state
machine that answers the command lines the runner renders the way docker does (an
image store per engine; stacks by name, each with one service, its spec, tasks and
``UpdateStatus``; rolling updates that complete or are rolled back; a removed
stack's containers that take a moment to stop). The blue/green slots' stacks are
``test_unit_swarm_slots.py``'s. The real two-node swarm runs in
``tests/integration/test_swarm.py``. The tests assert what a user sees: the commands
that ran, what was built and copied where, what status says, and the errors.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

import pytest

from cicd.commands import swarm as sw
from cicd.core.config import from_table
from cicd.core.errors import CicdError
from cicd.transport.runner import Runner
from cicd.runtime import runtime_for
from cicd.runtime.swarm import (
    SwarmRuntime,
    UpdateRolledBack,
    parse_nodes,
    parse_tasks,
)
from cicd.pipeline.status import format_swarm
from cicd.host.target import Target
from tests.unit.test_unit_runtime import FakeContext, Raw, split_env

SHA = "0123456789abcdef0123456789abcdef01234567"
OLD = "fedcba9876543210fedcba9876543210fedcba98"
PROJECT = "mangetamain-preprod"
MANAGER = "unix:///swarm/node1.sock"
WORKER = "unix:///swarm/node2.sock"


def settings(tmp_path: Any, proxy: str = "none", **runtime: Any) -> Any:
    """Settings of a swarm preprod on the manager (a temporary root)."""
    table = {
        "root": str(tmp_path),
        "proxy": {"kind": proxy},
        "runtime": {
            "kind": "swarm",
            "docker_host": MANAGER,
            "nodes": [WORKER],
            "update_timeout": 5.0,
            **runtime,
        },
    }
    return from_table(table, project_dir=tmp_path)


@dataclass
class Stack:
    """One stack's one service: its spec (image, env), tasks and ``UpdateStatus``.

    Global unless ``replicas`` says how many tasks it wants; every task is in
    ``state``.
    """

    spec: str
    env: dict[str, str]
    tasks: dict[str, str]
    update: dict[str, str] | None = None
    pending: tuple[str, int] | None = None
    tried: str = ""
    replicas: int | None = None
    state: str = "Running 3 seconds ago"


@dataclass
class FakeDocker:
    """Answers docker command lines like a two-node swarm would.

    Attributes:
        images: The images each engine (by ``DOCKER_HOST``) has.
        stacks: The stacks by name, each with its one service (``STACK_app``).
        outcome: What the next update ends in: completed or rollback_completed.
        polls: ``docker service inspect`` calls an update takes to finish.
        links: Each symlink's target, by the link's name (``current``, ``blue``).
        linger: By engine, the ``docker ps`` calls a removed stack's containers
            still show in (stopping); None: they never stop.
        lingering: What still runs of each removed stack: (engine, stack) →
            calls left.
        events: What happened, in order (``rm``, ``ps``, ``deploy``).
    """

    images: dict[str, set[str]] = field(
        default_factory=lambda: {MANAGER: set(), WORKER: set()}
    )
    stacks: dict[str, Stack] = field(default_factory=dict)
    outcome: str = "completed"
    polls: int = 1
    role: str = "active true"
    fail: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(
        default_factory=lambda: {"current": f"releases/{SHA}"}
    )
    nodes: str = "vm1 0.0.0.0 ready active 10.0.0.1:2377\nvm2 10.0.0.2 ready drain -\n"
    linger: dict[str, int | None] = field(
        default_factory=lambda: {MANAGER: 1, WORKER: 1}
    )
    lingering: dict[tuple[str, str], int | None] = field(default_factory=dict)
    deploys: list[dict[str, str]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    has_docker: bool = True
    task_error: str = "task: non-zero exit (137): dockerexec: unhealthy container"

    def run(self, stack: str, image: str, port: int, **tasks: str) -> Stack:
        """Make ``stack`` run ``image`` on ``port`` (tasks: node → image)."""
        self.stacks[stack] = Stack(
            image,
            {"CICD_PORT": str(port)},
            tasks or {"node1": image, "node2": image},
        )
        return self.stacks[stack]

    def __call__(self, argv: list[str]) -> Raw | None:
        if argv[:2] == ["sh", "-c"]:
            return self.script(argv[2], argv[4:])
        env, argv = split_env(argv)
        if argv[0] != "docker":
            return None
        host = env.get("DOCKER_HOST", "")
        words = argv[1:]
        for key, message in self.fail.items():
            if key in " ".join(words):
                return Raw(stderr=f"some detail\n{message}\n", exited=1)
        if words[0] == "info":
            return Raw(stdout=self.role + "\n")
        if words[:2] == ["image", "inspect"]:
            known = words[-1] in self.images.get(host, set())
            return Raw(stdout="sha256:1\n") if known else Raw(exited=1)
        if words[0] in ("build", "push", "pull"):
            tag = words[words.index("--tag") + 1] if words[0] == "build" else words[-1]
            self.images[host].add(tag)
            self.events.append(f"{words[0]} {tag} {host}")
            return Raw(stdout="done\n")
        if words[:2] == ["stack", "deploy"]:
            return self.stack_deploy(words[-1], env)
        if words[:2] == ["stack", "rm"]:
            return self.stack_rm(words[-1])
        if words[0] == "ps":
            return self.containers(host, words[-1].rsplit("=", 1)[-1])
        stack = self.stacks.get(words[-1].rsplit("_", 1)[0])
        if words[:2] == ["service", "inspect"]:
            return self.inspect(stack)
        if words[:2] == ["service", "ps"]:
            if "desired-state=running" not in words:  # the whole history
                failed = {
                    "Node": "node1",
                    "Image": stack.tried if stack else "",
                    "CurrentState": "Shutdown 1 second ago",
                    "Error": self.task_error,
                }
                return Raw(stdout=json.dumps(failed) + "\n")
            return self.ps(stack)
        if words[:2] == ["service", "logs"]:
            return Raw(stdout=f"app.1.x@node1    | serving {words[-1]}\n")
        raise AssertionError(f"unexpected docker command: {argv}")

    def script(self, script: str, args: list[str]) -> Raw | None:
        if "readlink" in script:
            target = self.links.get(args[0].rsplit("/", 1)[-1], "")
            return Raw(stdout=target + "\n")
        if "docker" in args and not self.has_docker:
            return Raw(stdout="docker\n", exited=1)
        if "command -v" in script or "cat --" in script:
            return None  # the program is there; no such file
        if "docker save" in script:
            source, dest, image = args
            assert image in self.images[source]
            self.images[dest].add(image)
            self.events.append(f"copy {image} {dest}")
            return Raw()
        if "set -C" in script:  # the app's env file, made empty when missing
            return Raw()
        if "docker node inspect" in script:
            return Raw(stdout=self.nodes)
        raise AssertionError(f"unexpected script: {script}")

    def stack_deploy(self, name: str, env: dict[str, str]) -> Raw:
        self.deploys.append(env)
        held = sum(self.containers_left(e, name) for e in self.linger)
        self.events.append(f"deploy {name} (old containers on {held} engine(s))")
        image = env["CICD_IMAGE"]
        stack = self.stacks.get(name)
        if stack is None:
            self.run(name, image, int(env["CICD_PORT"]))
            return Raw()
        if stack.spec != image:
            stack.pending = (image, self.polls)
            stack.tried = image
            stack.update = {"State": "updating", "StartedAt": f"t{len(self.deploys)}"}
        return Raw()

    def stack_rm(self, name: str) -> Raw:
        self.events.append(f"rm {name}")
        if self.stacks.pop(name, None) is not None:
            for engine, calls in self.linger.items():
                self.lingering[(engine, name)] = calls
        return Raw()

    def containers_left(self, engine: str, name: str) -> bool:
        left = self.lingering.get((engine, name), 0)
        return left is None or left > 0

    def containers(self, engine: str, name: str) -> Raw:
        """``docker ps --filter label=...``: a removed stack's containers stopping."""
        if not self.containers_left(engine, name):
            self.events.append(f"ps {name} {engine}: none")
            return Raw()
        left = self.lingering[(engine, name)]
        if left is not None:
            self.lingering[(engine, name)] = left - 1
        self.events.append(f"ps {name} {engine}: one")
        return Raw(stdout="c0ffee\n")

    def inspect(self, stack: Stack | None) -> Raw:
        if stack is None:
            return Raw(stderr="Error: no such service: x\n", exited=1)
        if stack.pending:
            image, left = stack.pending
            if left > 1:
                stack.pending = (image, left - 1)
            else:
                stack.pending = None
                assert stack.update is not None
                stack.update["State"] = self.outcome
                if self.outcome == "completed":
                    stack.spec = image
                    stack.tasks = {node: image for node in stack.tasks}
                else:
                    stack.update["Message"] = "update rolled back due to failure"
        data: dict[str, Any] = {
            "Spec": {
                "Mode": (
                    {"Replicated": {"Replicas": stack.replicas}}
                    if stack.replicas
                    else {"Global": {}}
                ),
                "TaskTemplate": {
                    "ContainerSpec": {
                        "Image": stack.spec + "@x",
                        "Env": [f"{k}={v}" for k, v in stack.env.items()],
                    }
                },
            }
        }
        if stack.update:
            data["UpdateStatus"] = dict(stack.update)
        return Raw(stdout=json.dumps(data) + "\n")

    def ps(self, stack: Stack | None) -> Raw:
        if stack is None:
            return Raw(stderr="no such service\n", exited=1)
        lines = [
            json.dumps(
                {
                    "Node": node,
                    "Image": image,
                    "CurrentState": stack.state,
                    "Error": "",
                }
            )
            for node, image in stack.tasks.items()
        ]
        return Raw(stdout="\n".join(lines) + "\n")


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Look at the fake swarm every 10 ms (it answers at once)."""
    monkeypatch.setattr("cicd.runtime.swarm.POLL", 0.01)


def runtime(
    tmp_path: Any, fake: FakeDocker, slot: str | None = None, **keys: Any
) -> SwarmRuntime:
    """A SwarmRuntime of preprod on the fake docker (one slot's, or in place)."""
    env = settings(tmp_path, **keys).env("preprod")
    target = Target(Runner(FakeContext(fake)), settings(tmp_path, **keys), "preprod")
    made = runtime_for(target.runner, env, target.paths, slot)
    assert isinstance(made, SwarmRuntime)
    return made


# -- builders -------------------------------------------------------------------


def test_docker_aims_at_the_configured_api_only_when_there_is_one() -> None:
    assert sw.docker("", "info").render() == "docker info"
    assert sw.docker(MANAGER, "info").render() == (
        f"env DOCKER_HOST={MANAGER} docker info"
    )


def test_build_tags_the_release_stage_and_labels_the_commit() -> None:
    argv = sw.build("", "/r/abc", "/r/abc/Dockerfile", "app:abc", "abc", "release").argv
    assert argv[:4] == ("docker", "build", "--network", "host")
    assert ("--target", "release") == argv[4:6]
    assert f"{sw.REVISION_LABEL}=abc" in argv and argv[-1] == "/r/abc"
    assert argv[argv.index("--tag") + 1] == "app:abc"


def test_copy_and_node_listing_pass_values_only_as_arguments() -> None:
    copy = sw.copy_image("", WORKER, "app:abc; rm -rf /")
    assert copy.argv[-3:] == ("", WORKER, "app:abc; rm -rf /")
    assert "app:abc" not in copy.argv[2]  # the script is constant
    assert sw.nodes(MANAGER).argv[-2] == MANAGER


def test_stack_deploy_never_resolves_images_and_passes_the_image_in_env() -> None:
    command = sw.stack_deploy("", "/r/stack.yml", "mangetamain-preprod", {"A": "b"})
    assert command.argv[1:5] == ("stack", "deploy", "--resolve-image", "never")
    assert command.argv[-1] == "mangetamain-preprod" and dict(command.env) == {"A": "b"}
    assert "--follow" in sw.service_logs("", "s", 5, follow=True).argv


def test_parsers_read_docker_json_and_node_lines() -> None:
    tasks = parse_tasks(
        'junk\n{"Node": "vm1", "Image": "app:abc", "CurrentState": "Running 1 s",'
        ' "Error": ""}\n'
    )
    assert [(t.node, t.image, t.running) for t in tasks] == [("vm1", "app:abc", True)]
    nodes = parse_nodes("vm1 0.0.0.0 ready active 10.0.0.1:2377\nbad line\n")
    assert [(n.name, n.address, n.ready, n.active) for n in nodes] == [
        ("vm1", "10.0.0.1", True, True)
    ]


# -- config ---------------------------------------------------------------------


def test_swarm_with_several_hosts_is_refused_one_ledger_on_the_manager(
    tmp_path: Any,
) -> None:
    with pytest.raises(CicdError, match="runs from the swarm's manager: list one"):
        from_table(
            {"runtime": {"kind": "swarm"}, "hosts": ["vm1", "vm2"]},
            project_dir=tmp_path,
        )


# -- the runtime in place ---------------------------------------------------------


def test_first_deploy_builds_copies_and_creates_the_stack(tmp_path: Any) -> None:
    fake = FakeDocker()
    swarm = runtime(tmp_path, fake)
    swarm.preflight()
    swarm.restart()
    image = f"mangetamain-app:{SHA}"
    assert image in fake.images[MANAGER] and image in fake.images[WORKER]
    (deployed,) = fake.deploys
    assert deployed == {
        "CICD_IMAGE": image,
        "CICD_ENV": "preprod",
        "CICD_PORT": "8500",
        "CICD_APP_ENV": swarm.paths.app_env,
        "DOCKER_HOST": MANAGER,
    }
    assert list(fake.stacks) == [PROJECT]
    assert swarm.status() == "RUNNING"
    assert swarm.serving() == swarm.paths.release(SHA)
    assert swarm.prepare(SHA, swarm.paths.release(SHA)) == []  # all there already


def test_an_update_is_polled_until_the_swarm_completes_it(tmp_path: Any) -> None:
    fake = FakeDocker(polls=3)
    fake.run(PROJECT, f"mangetamain-app:{OLD}", 8500)
    fake.images[MANAGER].add(f"mangetamain-app:{SHA}")
    swarm = runtime(tmp_path, fake)
    swarm.restart()
    assert set(fake.stacks[PROJECT].tasks.values()) == {f"mangetamain-app:{SHA}"}
    described = swarm.describe()
    assert described["slot"] is None
    assert described["image"] == f"mangetamain-app:{SHA}"
    assert described["update"] == "completed"
    assert format_swarm("preprod", [described]) == (
        f"  preprod swarm: 2/2 tasks run mangetamain-app:{SHA} (node1, node2); "
        "update completed"
    )
    deploys = len(fake.deploys)
    swarm.start()  # already what current says: nothing is deployed again
    assert len(fake.deploys) == deploys
    assert not any(e.startswith("rm ") for e in fake.events)  # rolled, not removed


def test_an_update_the_swarm_rolled_back_is_a_failed_deploy(tmp_path: Any) -> None:
    fake = FakeDocker(outcome="rollback_completed")
    fake.run(PROJECT, f"mangetamain-app:{OLD}", 8500, node1=f"mangetamain-app:{OLD}")
    swarm = runtime(tmp_path, fake)
    with pytest.raises(UpdateRolledBack, match="rolled back the update to .*failure"):
        swarm.restart()
    with pytest.raises(UpdateRolledBack) as caught:
        swarm.restart()
    # Why, in the words of the task the swarm stopped:
    assert str(caught.value).endswith(
        "(a task of it: task: non-zero exit (137): dockerexec: unhealthy container)"
    )
    assert swarm.serving() == swarm.paths.release(OLD)  # the old image serves


def test_an_update_that_never_finishes_fails_with_the_tasks(tmp_path: Any) -> None:
    fake = FakeDocker(polls=10**9)
    fake.run(PROJECT, f"mangetamain-app:{OLD}", 8500, node1=f"mangetamain-app:{OLD}")
    # node2 is ready and active but was given no task: the message names it.
    fake.nodes = "node1 10.0.0.1 ready active -\nnode2 10.0.0.2 ready active -\n"
    swarm = runtime(tmp_path, fake, update_timeout=0.3)
    with pytest.raises(CicdError, match="not on mangetamain-app:.* after 0.3s") as e:
        swarm.restart()
    assert f"(tasks: node1 mangetamain-app:{OLD} Running" in str(e.value)
    assert str(e.value).endswith("; no task on node2")


def test_a_registry_gets_the_image_instead_of_each_node(tmp_path: Any) -> None:
    fake = FakeDocker()
    swarm = runtime(tmp_path, fake, registry="reg:5000", nodes=[])
    said = swarm.prepare(SHA, "/r")
    assert said[0].startswith(f"built reg:5000/mangetamain-app:{SHA}")
    assert said[1] == f"pushed reg:5000/mangetamain-app:{SHA}"
    assert swarm.sha_of(f"reg:5000/mangetamain-app:{SHA}") == SHA
    listed = runtime(tmp_path, fake, registry="reg:5000")  # nodes: pulled ahead
    assert listed.prepare(SHA, "/r")[-1] == (
        f"pulled reg:5000/mangetamain-app:{SHA} on {WORKER}"
    )
    assert swarm.sha_of(f"other:{SHA}") is None


def test_failures_name_the_step_and_docker_s_last_line(tmp_path: Any) -> None:
    fake = FakeDocker(fail={"build": "COPY failed: app not found"})
    swarm = runtime(tmp_path, fake)
    with pytest.raises(CicdError, match="building .* failed on .*: COPY failed"):
        swarm.restart()
    fake = FakeDocker(role="inactive false")
    with pytest.raises(CicdError, match="is not a swarm manager .*docker swarm init"):
        runtime(tmp_path, fake).preflight()
    fake = FakeDocker(links={})
    with pytest.raises(CicdError, match="preprod: no release at .*/current to run"):
        runtime(tmp_path, fake).restart()


def test_status_logs_nodes_and_stop(tmp_path: Any) -> None:
    fake = FakeDocker()
    swarm = runtime(tmp_path, fake)
    assert swarm.status() == "DOWN" and swarm.serving() == ""
    assert swarm.describe()["image"] is None
    swarm.restart()
    assert "serving" in swarm.logs(5)
    assert "serving" in swarm.release_logs(5)
    assert swarm.follow(5).argv[-1] == "mangetamain-preprod_app"
    assert [(n.name, n.address, n.active) for n in swarm.nodes()] == [
        ("vm1", "10.0.0.1", True),
        ("vm2", "10.0.0.2", False),
    ]
    fake.stacks[PROJECT].update = {"State": "updating"}
    assert swarm.status() == "UPDATING"
    swarm.stop()
    assert swarm.status() == "DOWN"
    assert fake.events[-2:] == [
        f"ps {PROJECT} {MANAGER}: none",
        f"ps {PROJECT} {WORKER}: none",
    ]


def test_shell_lines_quote_every_value_once(tmp_path: Any) -> None:
    fake = FakeDocker(links={"blue": f"../releases/{SHA}"})
    context = FakeContext(fake)
    env = settings(tmp_path).env("preprod")
    swarm = SwarmRuntime(
        Runner(context),
        env,
        Target(Runner(context), settings(tmp_path), "preprod").paths,
        "blue",
    )
    swarm.restart()
    deploy = next(line for line in context.lines if "stack deploy" in line)
    assert shlex.split(deploy)[-1] == "mangetamain-preprod-blue"
    assert "CICD_PORT=18500" in deploy
    build = next(line for line in context.lines if " build " in line)
    assert shlex.split(build)[-1] == swarm.paths.release(SHA)  # slots/ resolved


def test_status_reads_the_tasks_and_a_replicated_service_counts_its_replicas(
    tmp_path: Any,
) -> None:
    fake = FakeDocker()
    swarm = runtime(tmp_path, fake)
    stack = fake.run(PROJECT, f"mangetamain-app:{SHA}", 8500)
    stack.state = "Starting 1 second ago"
    # Its container is up, the swarm's health check not passed yet: STARTING, but
    # it is what serves (a slot is judged by our own checks through its tasks).
    assert swarm.status() == "STARTING" and swarm.serving().endswith(SHA)
    stack.tasks = {}
    assert swarm.status() == "DOWN"
    # Two replicas wanted, one runs: not yet the release, so it is deployed.
    image = f"mangetamain-app:{SHA}"
    fake.images = {MANAGER: {image}, WORKER: {image}}
    fake.links["blue"] = f"../releases/{SHA}"
    fake.run(f"{PROJECT}-blue", image, 18500, node1=image).replicas = 2
    runtime(tmp_path, fake, "blue").start()
    assert [d["CICD_PORT"] for d in fake.deploys] == ["18500"]
    fake.run(f"{PROJECT}-blue", image, 18500, node1=image).replicas = 1
    runtime(tmp_path, fake, "blue").start()  # one wanted, one runs it
    assert len(fake.deploys) == 1


def test_a_rollback_no_task_explains_says_the_swarm_s_message_only(
    tmp_path: Any,
) -> None:
    fake = FakeDocker(outcome="rollback_completed", task_error="")
    fake.run(PROJECT, f"mangetamain-app:{OLD}", 8500)
    with pytest.raises(UpdateRolledBack) as caught:
        runtime(tmp_path, fake).restart()
    assert str(caught.value) == (
        f"the swarm rolled back the update to mangetamain-app:{SHA}: "
        "update rolled back due to failure"
    )


def test_a_manager_without_docker_is_one_clear_error(tmp_path: Any) -> None:
    swarm = runtime(tmp_path, FakeDocker(has_docker=False))
    assert swarm.preflight_reads() == [] and swarm.restart_reads() == []
    with pytest.raises(CicdError, match="docker not found on .*runtime.kind"):
        swarm.preflight()
