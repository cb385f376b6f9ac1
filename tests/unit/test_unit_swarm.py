"""Unit tests of the swarm runtime's commands and decisions, without a swarm.

A fresh machine has no Docker engine, so here docker is a fake: a small state
machine that answers the command lines the runner renders the way docker does (an
image store per engine, one service with its spec, tasks and ``UpdateStatus``, and
rolling updates that complete or are rolled back). The real two-node swarm runs in
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
MANAGER = "unix:///swarm/node1.sock"
WORKER = "unix:///swarm/node2.sock"


def settings(tmp_path: Any, **runtime: Any) -> Any:
    """Settings of a swarm preprod on the manager (a temporary root)."""
    table = {
        "root": str(tmp_path),
        "proxy": {"kind": "none"},
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
class FakeDocker:
    """Answers docker command lines like a two-node swarm would.

    Attributes:
        images: The images each engine (by ``DOCKER_HOST``) has.
        spec: The service's image, or None when there is no service.
        tasks: Image of the task on each node.
        update: The service's ``UpdateStatus`` (None: never updated).
        outcome: What the next update ends in: completed or rollback_completed.
        polls: ``docker service inspect`` calls an update takes to finish.
    """

    images: dict[str, set[str]] = field(
        default_factory=lambda: {MANAGER: set(), WORKER: set()}
    )
    spec: str | None = None
    tasks: dict[str, str] = field(default_factory=dict)
    update: dict[str, str] | None = None
    outcome: str = "completed"
    polls: int = 1
    role: str = "active true"
    fail: dict[str, str] = field(default_factory=dict)
    current: str = f"releases/{SHA}"
    deploys: list[dict[str, str]] = field(default_factory=list)
    _pending: tuple[str, int] | None = None
    _tried: str = ""

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
            return Raw(stdout="done\n")
        if words[:2] == ["stack", "deploy"]:
            return self.stack_deploy(env)
        if words[:2] == ["stack", "rm"]:
            self.spec, self.tasks = None, {}
            return Raw()
        if words[:2] == ["service", "inspect"]:
            return self.inspect()
        if words[:2] == ["service", "ps"]:
            if "desired-state=running" not in words:  # the whole history
                failed = {
                    "Node": "node1",
                    "Image": self._tried,
                    "CurrentState": "Shutdown 1 second ago",
                    "Error": (
                        "task: non-zero exit (137): dockerexec: unhealthy container"
                    ),
                }
                return Raw(stdout=json.dumps(failed) + "\n")
            return self.ps()
        if words[:2] == ["service", "logs"]:
            return Raw(stdout="app.1.x@node1    | serving\n")
        raise AssertionError(f"unexpected docker command: {argv}")

    def script(self, script: str, args: list[str]) -> Raw | None:
        if "readlink" in script:
            return Raw(stdout=self.current + "\n")
        if "command -v" in script:
            return None
        if "docker save" in script:
            source, dest, image = args
            assert image in self.images[source]
            self.images[dest].add(image)
            return Raw()
        if "set -C" in script:  # the app's env file, made empty when missing
            return Raw()
        if "docker node inspect" in script:
            return Raw(
                stdout="vm1 0.0.0.0 ready active 10.0.0.1:2377\n"
                "vm2 10.0.0.2 ready drain -\n"
            )
        raise AssertionError(f"unexpected script: {script}")

    def stack_deploy(self, env: dict[str, str]) -> Raw:
        self.deploys.append(env)
        image = env["CICD_IMAGE"]
        if self.spec is None:
            self.spec = image
            self.tasks = {"node1": image, "node2": image}
            return Raw()
        if self.spec != image:
            self._pending = (image, self.polls)
            self._tried = image
            self.update = {"State": "updating", "StartedAt": f"t{len(self.deploys)}"}
        return Raw()

    def inspect(self) -> Raw:
        if self.spec is None:
            return Raw(stderr="Error: no such service: x\n", exited=1)
        if self._pending:
            image, left = self._pending
            if left > 1:
                self._pending = (image, left - 1)
            else:
                self._pending = None
                assert self.update is not None
                self.update["State"] = self.outcome
                if self.outcome == "completed":
                    self.spec = image
                    self.tasks = {node: image for node in self.tasks}
                else:
                    self.update["Message"] = "update rolled back due to failure"
        data: dict[str, Any] = {
            "Spec": {"TaskTemplate": {"ContainerSpec": {"Image": self.spec + "@x"}}}
        }
        if self.update:
            data["UpdateStatus"] = dict(self.update)
        return Raw(stdout=json.dumps(data) + "\n")

    def ps(self) -> Raw:
        if self.spec is None:
            return Raw(stderr="no such service\n", exited=1)
        lines = [
            json.dumps(
                {
                    "Node": node,
                    "Image": image,
                    "CurrentState": "Running 3 seconds ago",
                    "Error": "",
                }
            )
            for node, image in self.tasks.items()
        ]
        return Raw(stdout="\n".join(lines) + "\n")


def runtime(tmp_path: Any, fake: FakeDocker, **keys: Any) -> SwarmRuntime:
    """A SwarmRuntime of preprod on the fake docker."""
    env = settings(tmp_path, **keys).env("preprod")
    target = Target(Runner(FakeContext(fake)), settings(tmp_path, **keys), "preprod")
    made = runtime_for(target.runner, env, target.paths)
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


# -- the runtime ----------------------------------------------------------------


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
    assert swarm.status() == "RUNNING"
    assert swarm.serving() == swarm.paths.release(SHA)
    assert swarm.prepare(SHA, swarm.paths.release(SHA)) == []  # all there already


def test_an_update_is_polled_until_the_swarm_completes_it(tmp_path: Any) -> None:
    fake = FakeDocker(spec=f"mangetamain-app:{OLD}", polls=3)
    fake.tasks = {"node1": fake.spec or "", "node2": fake.spec or ""}
    fake.images[MANAGER].add(f"mangetamain-app:{SHA}")
    swarm = runtime(tmp_path, fake)
    swarm.restart()
    assert set(fake.tasks.values()) == {f"mangetamain-app:{SHA}"}
    described = swarm.describe()
    assert described["image"] == f"mangetamain-app:{SHA}"
    assert described["update"] == "completed"
    assert format_swarm("preprod", described) == (
        f"  preprod swarm: 2/2 tasks run mangetamain-app:{SHA} (node1, node2); "
        "update completed"
    )
    deploys = len(fake.deploys)
    swarm.start()  # already what current says: nothing is deployed again
    assert len(fake.deploys) == deploys


def test_an_update_the_swarm_rolled_back_is_a_failed_deploy(tmp_path: Any) -> None:
    fake = FakeDocker(spec=f"mangetamain-app:{OLD}", outcome="rollback_completed")
    fake.tasks = {"node1": fake.spec or ""}
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
    fake = FakeDocker(spec=f"mangetamain-app:{OLD}", polls=10**9)
    fake.tasks = {"node1": fake.spec or ""}
    swarm = runtime(tmp_path, fake, update_timeout=0.6)
    with pytest.raises(CicdError, match="not on mangetamain-app:.* after 0.6s"):
        swarm.restart()


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
    fake = FakeDocker(current="")
    with pytest.raises(CicdError, match="no current release"):
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
    fake.update = {"State": "updating"}
    assert swarm.status() == "UPDATING"
    swarm.stop()
    assert swarm.status() == "DOWN"


def test_shell_lines_quote_every_value_once(tmp_path: Any) -> None:
    fake = FakeDocker()
    context = FakeContext(fake)
    env = settings(tmp_path).env("preprod")
    swarm = SwarmRuntime(
        Runner(context),
        env,
        Target(Runner(context), settings(tmp_path), "preprod").paths,
        18500,
    )
    swarm.restart()
    deploy = next(line for line in context.lines if "stack deploy" in line)
    assert shlex.split(deploy)[-1] == "mangetamain-preprod"
    assert "CICD_PORT=18500" in deploy
