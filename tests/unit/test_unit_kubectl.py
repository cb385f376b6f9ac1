"""Unit tests of the kubectl builders and the Kubernetes runtime, without a cluster.

No Kubernetes API server can run on the machines this project is built on (Debian
ships a kubectl client only), so the task context is a fake: it records every shell
line the runner renders and answers kubectl like a tiny in-memory cluster would (one
Deployment with its image, replicas, pods and revision history), with failures
scripted per verb. The tests pin the argv of every builder and the runtime's
decisions; they say nothing about how a real cluster behaves, which is why the
documentation calls this runtime "on paper".
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cicd.commands import kubectl
from cicd.core.config import EnvSettings, from_table
from cicd.core.errors import CicdError, ConfigError
from cicd.core.layout import EnvPaths
from cicd.transport.runner import Runner
from cicd.runtime.kubernetes import KubernetesRuntime

SHA = "0123456789abcdef0123456789abcdef01234567"
OLD = "fedcba9876543210fedcba9876543210fedcba98"
ROOT = "/srv/cicd"
NOT_FOUND = 'Error from server (NotFound): deployments.apps "app" not found\n'


# -- the builders ---------------------------------------------------------------


def argv(command: Any) -> list[str]:
    """The argv of a command, as the shell would split its rendered line."""
    return shlex.split(command.render())


def test_set_image_argv() -> None:
    command = kubectl.set_image("app", "web", "reg.example:5000/app:abc1234", "shop")

    assert argv(command) == [
        "kubectl",
        "set",
        "image",
        "deployment/app",
        "web=reg.example:5000/app:abc1234",
        "-n",
        "shop",
    ]


def test_every_builder_honours_context_and_kubeconfig() -> None:
    where: dict[str, Any] = {"context": "prod-eu", "kubeconfig": "/etc/k 8s/config"}
    tail = ["-n", "ns", "--context", "prod-eu", "--kubeconfig", "/etc/k 8s/config"]
    commands = [
        kubectl.set_image("app", "app", "app:1", "ns", **where),
        kubectl.annotate_change_cause("app", "why", "ns", **where),
        kubectl.rollout_status("app", "ns", 60, **where),
        kubectl.rollout_restart("app", "ns", **where),
        kubectl.rollout_history("app", "ns", **where),
        kubectl.rollout_undo("app", "ns", 3, **where),
        kubectl.get_deployment_image("app", "app", "ns", **where),
        kubectl.get_replicas("app", "ns", **where),
        kubectl.get_selector("app", "ns", **where),
        kubectl.get_pods("app=app", "app", "ns", **where),
        kubectl.logs("app", "app", "ns", 10, **where),
        kubectl.scale("app", "ns", 2, **where),
        kubectl.apply("/srv/m.yml", "ns", **where),
    ]

    for command in commands:
        assert argv(command)[-len(tail) :] == tail, command.render()
        # A path with a space stays one word: no value is ever shell text.
        assert command.argv[-1] == "/etc/k 8s/config"
    assert argv(kubectl.server_version(**where))[-4:] == tail[2:]


def test_annotate_change_cause_argv() -> None:
    command = kubectl.annotate_change_cause("app", "cicd preprod: image app:1", "ns")

    assert command.argv == (
        "kubectl",
        "annotate",
        "--overwrite",
        "deployment/app",
        "kubernetes.io/change-cause=cicd preprod: image app:1",
        "-n",
        "ns",
    )


def test_rollout_builders_argv() -> None:
    assert argv(kubectl.rollout_status("app", "ns", 90)) == [
        "kubectl",
        "rollout",
        "status",
        "deployment/app",
        "--timeout=90s",
        "-n",
        "ns",
    ]
    assert argv(kubectl.rollout_history("app", "ns"))[:4] == [
        "kubectl",
        "rollout",
        "history",
        "deployment/app",
    ]
    assert argv(kubectl.rollout_undo("app", "ns", 4)) == [
        "kubectl",
        "rollout",
        "undo",
        "deployment/app",
        "--to-revision=4",
        "-n",
        "ns",
    ]
    assert argv(kubectl.rollout_restart("app", "ns"))[:4] == [
        "kubectl",
        "rollout",
        "restart",
        "deployment/app",
    ]


def test_rollout_undo_refuses_revision_zero() -> None:
    # kubectl reads 0 as "the previous revision": never the one a caller named.
    with pytest.raises(ValueError, match="revisions start at 1"):
        kubectl.rollout_undo("app", "ns", 0)


def test_get_builders_argv() -> None:
    assert argv(kubectl.get_deployment_image("app", "web", "ns")) == [
        "kubectl",
        "get",
        "deployment/app",
        "-o",
        'jsonpath={.spec.template.spec.containers[?(@.name=="web")].image}',
        "-n",
        "ns",
    ]
    assert argv(kubectl.get_replicas("app", "ns"))[3:5] == [
        "-o",
        "jsonpath={.spec.replicas}",
    ]
    assert argv(kubectl.get_selector("app", "ns"))[4] == (
        "go-template={{range $k, $v := .spec.selector.matchLabels}}"
        "{{$k}}={{$v}},{{end}}"
    )
    pods = argv(kubectl.get_pods("app=web,tier=front", "web", "ns"))
    assert pods[:5] == ["kubectl", "get", "pods", "-l", "app=web,tier=front"]
    # kubectl's JSONPath turns the quoted \t and \n into a tab and a newline.
    assert pods[6] == (
        'jsonpath={range .items[*]}{.metadata.name}{"\\t"}{.spec.nodeName}'
        '{"\\t"}{.spec.containers[?(@.name=="web")].image}'
        '{"\\t"}{.status.containerStatuses[?(@.name=="web")].ready}{"\\n"}{end}'
    )


def test_get_pods_needs_a_selector() -> None:
    # An empty -l would list every pod of the namespace.
    with pytest.raises(ValueError, match="selector"):
        kubectl.get_pods("", "app", "ns")


def test_logs_scale_apply_and_preflight_argv() -> None:
    assert argv(kubectl.logs("app", "web", "ns", 20)) == [
        "kubectl",
        "logs",
        "deployment/app",
        "-c",
        "web",
        "--tail=20",
        "-n",
        "ns",
    ]
    assert "--follow" in argv(kubectl.logs("app", "web", "ns", 20, follow=True))
    assert argv(kubectl.scale("app", "ns", 0)) == [
        "kubectl",
        "scale",
        "deployment/app",
        "--replicas=0",
        "-n",
        "ns",
    ]
    assert argv(kubectl.apply("/srv/r/k8s.yml", "ns")) == [
        "kubectl",
        "apply",
        "-f",
        "/srv/r/k8s.yml",
        "-n",
        "ns",
    ]
    assert argv(kubectl.client_version()) == ["kubectl", "version", "--client"]
    assert argv(kubectl.server_version()) == [
        "kubectl",
        "version",
        "--request-timeout=10s",
    ]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: kubectl.set_image("-app", "app", "app:1", "ns"), "deployment name"),
        (lambda: kubectl.set_image("app", "Web", "app:1", "ns"), "container name"),
        (lambda: kubectl.set_image("app", "app", "app:1", "--all"), "namespace"),
        (lambda: kubectl.set_image("app", "app", "app 1", "ns"), "image reference"),
        (lambda: kubectl.set_image("app", "app", "", "ns"), "image reference"),
        (lambda: kubectl.set_image("app", "app", "-x", "ns"), "image reference"),
        (lambda: kubectl.scale("app", "ns", -1), "replica count"),
        (lambda: kubectl.apply("", "ns"), "manifest path"),
        (lambda: kubectl.apply("-", "ns"), "not '-'"),
        (lambda: kubectl.get_replicas("a" * 254, "ns"), "at most 253"),
        (lambda: kubectl.get_replicas("app", "n" * 64), "at most 63"),
    ],
)
def test_builders_refuse_values_that_could_read_as_flags(
    build: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_a_deployment_name_may_have_dots_a_namespace_may_not() -> None:
    assert kubectl.check_name("web.v2", "deployment", subdomain=True) == "web.v2"
    with pytest.raises(ValueError, match="DNS label"):
        kubectl.check_name("web.v2", "namespace")


def test_parse_history() -> None:
    text = (
        "deployment.apps/app \n"
        "REVISION  CHANGE-CAUSE\n"
        "1         <none>\n"
        "3         cicd preprod: image app:abc\n"
        "4\n"
        "\n"
    )

    assert kubectl.parse_history(text) == [
        (1, ""),
        (3, "cicd preprod: image app:abc"),
        (4, ""),
    ]


def test_parse_pods_pads_missing_fields() -> None:
    text = "app-1\tnode-a\tapp:1\ttrue\napp-2\t\tapp:1\n\n"

    assert kubectl.parse_pods(text) == [
        {"name": "app-1", "node": "node-a", "image": "app:1", "ready": "true"},
        {"name": "app-2", "node": "", "image": "app:1", "ready": ""},
    ]


# -- a fake cluster ---------------------------------------------------------------


@dataclass
class Raw:
    """What invoke's ``run`` returns: output and exit status."""

    stdout: str = ""
    stderr: str = ""
    exited: int = 0


def verb_of(words: list[str]) -> str:
    """``rollout status``, ``version --client`` (kubectl alone) or ``get``..."""
    if words[1] == "rollout":
        return " ".join(words[1:3])
    if words[1] == "version" and "--client" in words:
        return "version --client"
    return words[1]


@dataclass
class FakeCluster:
    """One Deployment as kubectl would show it, plus the host's release symlink.

    Attributes:
        image: The template's image of the container (None: no such Deployment;
            ``""``: no container of that name).
        replicas: ``.spec.replicas``.
        labels: ``matchLabels`` as the go-template prints them.
        pods: ``(image, ready)`` per pod.
        history: ``[revision, change-cause, image]``, oldest first.
        current: Where the release symlink points (``""``: no release).
        fail: Verb (``set``, ``rollout status``, ``version``...) to a
            scripted failure.
        roll: Whether a successful ``rollout status`` leaves every pod ready
            with the template's image.
    """

    image: str | None = f"reg/app:{OLD}"
    replicas: int = 1
    labels: str = "app=app,"
    pods: list[tuple[str, bool]] | None = None
    history: list[list[Any]] | None = None
    current: str = f"releases/{SHA}"
    fail: dict[str, Raw] = field(default_factory=dict)
    roll: bool = True
    kubectl: bool = True
    lines: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.pods is None:
            self.pods = [(self.image, True)] * self.replicas if self.image else []
        if self.history is None:
            self.history = [[1, "", self.image]] if self.image else []

    def run(self, line: str, **kwargs: Any) -> Raw:
        """Record ``line`` and answer it."""
        words = shlex.split(line)
        self.lines.append(words)
        if words[:2] == ["sh", "-c"] and "readlink" in words[2]:
            return Raw(stdout=self.current + "\n" if self.current else "")
        assert words[0] == "kubectl", line
        if not self.kubectl:
            return Raw(stderr="sh: 1: kubectl: not found\n", exited=127)
        verb = verb_of(words)
        if verb in self.fail:
            return self.fail[verb]
        return self.answer(verb, words)

    def answer(self, verb: str, words: list[str]) -> Raw:
        """What kubectl prints for one verb, changing the state as it would."""
        if verb in ("version --client", "version", "logs", "apply"):
            if verb == "apply" and self.image is None:
                self.image = "reg/app:placeholder"
                self.history = [[1, "", self.image]]
            return Raw(stdout=f"{verb} output\n")
        if self.image is None and verb != "scale":
            return Raw(stderr=NOT_FOUND, exited=1)
        if verb == "get":
            return self.get(words)
        if verb == "set":
            new = words[4].split("=", 1)[1]
            if new != self.image:
                self.image = new
                self.history.append([self.history[-1][0] + 1, "", new])
            return Raw()
        if verb == "annotate":
            self.history[-1][1] = words[4].split("=", 1)[1]
            return Raw()
        if verb == "rollout status":
            if self.roll:
                self.pods = [(str(self.image), True)] * self.replicas
            return Raw(stdout="successfully rolled out\n")
        if verb == "rollout history":
            rows = [f"{r:<9} {c or '<none>'}" for r, c, _ in self.history]
            text = "deployment.apps/app \nREVISION  CHANGE-CAUSE\n" + "\n".join(rows)
            return Raw(stdout=text + "\n")
        if verb == "rollout undo":
            wanted = int(words[4].split("=", 1)[1])
            row = next(r for r in self.history if r[0] == wanted)
            self.history.remove(row)
            row[0] = self.history[-1][0] + 1 if self.history else wanted
            self.history.append(row)
            self.image = row[2]
            return Raw(stdout="rolled back\n")
        if verb == "scale":
            self.replicas = int(words[3].split("=", 1)[1])
            return Raw()
        return Raw()  # rollout restart

    def get(self, words: list[str]) -> Raw:
        """``kubectl get``: the template image, replicas, selector or pods."""
        output = words[words.index("-o") + 1]
        if words[2] == "pods":
            rows = [
                f"app-{i}\tnode-a\t{image}\t{'true' if ready else 'false'}"
                for i, (image, ready) in enumerate(self.pods)
            ]
            return Raw(stdout="".join(row + "\n" for row in rows))
        if output.startswith("go-template="):
            return Raw(stdout=self.labels)
        if output == "jsonpath={.spec.replicas}":
            return Raw(stdout=str(self.replicas))
        return Raw(stdout=str(self.image))

    def verbs(self) -> list[str]:
        """The kubectl verbs run, in order (``rollout status`` as two words)."""
        return [verb_of(w) for w in self.lines if w[0] == "kubectl"]

    def calls(self, verb: str) -> list[list[str]]:
        """Every kubectl argv of one verb."""
        return [w for w, v in zip(self.kubectl_lines(), self.verbs()) if v == verb]

    def kubectl_lines(self) -> list[list[str]]:
        """Every kubectl argv, in order."""
        return [w for w in self.lines if w[0] == "kubectl"]


def settings_for(tmp_path: Path, **runtime: Any) -> EnvSettings:
    """Preprod's settings, with runtime keys the configuration does not have yet.

    Today's ``RuntimeSettings`` has no namespace or image: a namespace object with
    its fields plus the new ones stands in, as the runtime reads them by name.
    """
    settings = from_table({}, project_dir=tmp_path).env("preprod")
    fields = {**dataclasses.asdict(settings.runtime), **runtime}
    return dataclasses.replace(settings, runtime=SimpleNamespace(**fields))


def runtime_for(
    tmp_path: Path, cluster: FakeCluster, slot: str | None = None, **runtime: Any
) -> KubernetesRuntime:
    """A Kubernetes runtime of preprod on the fake cluster, image ``reg/app``."""
    runtime.setdefault("image", "reg/app")
    return KubernetesRuntime(
        Runner(cluster),
        settings_for(tmp_path, **runtime),
        EnvPaths(ROOT, "preprod"),
        slot,
    )


# -- settings ----------------------------------------------------------------------


def test_defaults_work_with_todays_configuration(tmp_path: Path) -> None:
    settings = from_table({}, project_dir=tmp_path).env("preprod")
    runtime = KubernetesRuntime(
        Runner(FakeCluster()), settings, EnvPaths(ROOT, "preprod")
    )

    assert runtime.deployment == "app"
    assert runtime.container == "app"
    assert runtime.namespace == "default"
    assert (runtime.context, runtime.kubeconfig) == (None, None)
    # runtime.image is shared with other image-based runtimes once it exists.
    repository = getattr(settings.runtime, "image", "") or "app"
    assert runtime.repository == repository
    assert runtime.image_of(SHA) == f"{repository}:{SHA}"
    assert runtime.replicas == 1
    assert runtime.timeout == 60  # health.deadline


def test_the_deployment_falls_back_to_the_project(tmp_path: Path) -> None:
    runtime = runtime_for(tmp_path, FakeCluster(), service="")

    assert runtime.deployment == "mangetamain-preprod"


def test_new_settings_are_read_when_present(tmp_path: Path) -> None:
    runtime = runtime_for(
        tmp_path,
        FakeCluster(),
        slot="blue",
        deployment="shop",
        container="web",
        namespace="mangetamain",
        kube_context="prod-eu",
        kubeconfig="/etc/kube/config",
        replicas=3,
        rollout_timeout=12.5,
    )

    assert runtime.deployment == "shop-blue"
    assert runtime.container == "web"
    assert runtime.namespace == "mangetamain"
    assert (runtime.context, runtime.kubeconfig) == ("prod-eu", "/etc/kube/config")
    assert runtime.replicas == 3
    assert runtime.timeout == 13  # kubectl takes whole seconds: rounded up
    assert runtime.link == f"{ROOT}/preprod/slots/blue"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("namespace", "Prod", "tool.cicd.runtime.namespace: invalid namespace"),
        ("container", "-c", "tool.cicd.runtime.container: invalid container"),
        ("deployment", "a b", "tool.cicd.runtime.deployment: invalid deployment"),
        ("image", "reg/app:latest", "names a tag or digest"),
        ("image", "reg/app@sha256:00", "names a tag or digest"),
        ("image", "reg/my app", "invalid image"),
        ("image", "-reg/app", "invalid image"),
    ],
)
def test_invalid_settings_are_config_errors(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    runtime = runtime_for(tmp_path, FakeCluster(), **{key: value})

    with pytest.raises(ConfigError, match=message):
        runtime.preflight()


def test_a_registry_port_is_not_a_tag(tmp_path: Path) -> None:
    runtime = runtime_for(tmp_path, FakeCluster(), image="reg.example:5000/team/app")

    assert runtime.image_of(SHA) == f"reg.example:5000/team/app:{SHA}"


# -- preflight ---------------------------------------------------------------------


def test_preflight_passes_on_a_reachable_cluster(tmp_path: Path) -> None:
    cluster = FakeCluster()

    runtime_for(tmp_path, cluster, kube_context="prod-eu").preflight()

    assert cluster.verbs() == ["version --client", "version", "get"]
    assert cluster.calls("version")[0][-2:] == ["--context", "prod-eu"]


def test_preflight_without_kubectl(tmp_path: Path) -> None:
    runtime = runtime_for(tmp_path, FakeCluster(kubectl=False))

    with pytest.raises(CicdError, match="kubectl not found on ") as caught:
        runtime.preflight()

    assert "tool.cicd.runtime.kind" in str(caught.value)


def test_preflight_without_an_api_server(tmp_path: Path) -> None:
    refused = Raw(
        stderr="The connection to the server 10.0.0.1:6443 was refused - did you "
        "specify the right host or port?\n",
        exited=1,
    )
    cluster = FakeCluster(fail={"version": refused})
    runtime = runtime_for(tmp_path, cluster, kube_context="prod-eu")

    with pytest.raises(CicdError) as caught:
        runtime.preflight()

    message = str(caught.value)
    assert message.startswith("preprod: no Kubernetes API server answers from ")
    assert "(context prod-eu)" in message
    assert "10.0.0.1:6443 was refused" in message


def test_preflight_without_the_deployment(tmp_path: Path) -> None:
    runtime = runtime_for(tmp_path, FakeCluster(image=None), namespace="shop")

    with pytest.raises(CicdError) as caught:
        runtime.preflight()

    assert str(caught.value) == (
        "preprod: deployment/app not found in namespace shop (create it, or set "
        "tool.cicd.runtime.manifest)"
    )


def test_preflight_accepts_a_missing_deployment_with_a_manifest(
    tmp_path: Path,
) -> None:
    runtime = runtime_for(tmp_path, FakeCluster(image=None), manifest="k8s/app.yml")

    runtime.preflight()


def test_preflight_without_the_container(tmp_path: Path) -> None:
    runtime = runtime_for(tmp_path, FakeCluster(image=""), container="web")

    with pytest.raises(CicdError, match="has no container named web"):
        runtime.preflight()


def test_preflight_when_kubectl_may_not_read_the_deployment(tmp_path: Path) -> None:
    forbidden = Raw(
        stderr='Error from server (Forbidden): deployments.apps "app" is forbidden\n',
        exited=1,
    )
    runtime = runtime_for(tmp_path, FakeCluster(fail={"get": forbidden}))

    with pytest.raises(CicdError) as caught:
        runtime.preflight()

    assert str(caught.value).startswith(
        "preprod: kubectl could not read deployment/app: Error from server "
        "(Forbidden)"
    )


# -- restart -----------------------------------------------------------------------


def test_restart_sets_the_image_then_the_cause_then_waits(tmp_path: Path) -> None:
    cluster = FakeCluster()

    runtime_for(tmp_path, cluster, namespace="shop").restart()

    image = f"reg/app:{SHA}"
    assert cluster.verbs() == ["get", "set", "annotate", "rollout status"]
    assert cluster.calls("set")[0] == [
        "kubectl",
        "set",
        "image",
        "deployment/app",
        f"app={image}",
        "-n",
        "shop",
    ]
    assert cluster.calls("annotate")[0][4] == (
        f"kubernetes.io/change-cause=cicd preprod: image {image}"
    )
    assert cluster.calls("rollout status")[0][4] == "--timeout=60s"
    assert cluster.history[-1] == [2, f"cicd preprod: image {image}", image]


def test_restart_with_the_same_image_replaces_the_pods(tmp_path: Path) -> None:
    cluster = FakeCluster(image=f"reg/app:{SHA}")

    runtime_for(tmp_path, cluster).restart()

    assert cluster.verbs() == [
        "get",
        "set",
        "rollout restart",
        "annotate",
        "rollout status",
    ]


def test_restart_of_a_slot_uses_its_link_and_deployment(tmp_path: Path) -> None:
    cluster = FakeCluster()

    runtime_for(tmp_path, cluster, slot="green").restart()

    readlink = [w for w in cluster.lines if w[0] == "sh"][0]
    assert readlink[-1] == f"{ROOT}/preprod/slots/green"
    assert cluster.calls("set")[0][3] == "deployment/app-green"


def test_restart_without_a_release(tmp_path: Path) -> None:
    cluster = FakeCluster(current="")

    with pytest.raises(CicdError, match="preprod: no current release to run"):
        runtime_for(tmp_path, cluster).restart()

    assert cluster.verbs() == []


def test_restart_applies_the_release_manifest_when_there_is_no_deployment(
    tmp_path: Path,
) -> None:
    cluster = FakeCluster(image=None)

    runtime_for(tmp_path, cluster, manifest="40_k8s/app.yml").restart()

    assert cluster.verbs() == ["get", "apply", "set", "annotate", "rollout status"]
    assert cluster.calls("apply")[0][3] == (
        f"{ROOT}/preprod/releases/{SHA}/40_k8s/app.yml"
    )
    assert cluster.image == f"reg/app:{SHA}"


def test_restart_without_deployment_or_manifest(tmp_path: Path) -> None:
    cluster = FakeCluster(image=None)

    with pytest.raises(CicdError) as caught:
        runtime_for(tmp_path, cluster).restart()

    assert str(caught.value) == (
        "preprod: deployment/app not found in namespace default"
    )
    assert "set" not in cluster.verbs()


def test_a_refused_set_image_is_kubectls_message(tmp_path: Path) -> None:
    denied = Raw(
        stderr='Error from server (Forbidden): deployments.apps "app" is '
        'forbidden: User "ci" cannot patch resource "deployments"\n',
        exited=1,
    )
    cluster = FakeCluster(fail={"set": denied})

    with pytest.raises(CicdError) as caught:
        runtime_for(tmp_path, cluster).restart()

    message = str(caught.value)
    assert message.startswith(
        f"preprod: kubectl could not set the image of deployment/app to "
        f"reg/app:{SHA}: Error from server (Forbidden)"
    )
    assert message.endswith("(exit 1)")
    # Nothing was relabelled: the change-cause follows a successful set image.
    assert "annotate" not in cluster.verbs()


def test_a_failed_rollout_says_what_and_how_long(tmp_path: Path) -> None:
    stuck = Raw(
        stdout='Waiting for deployment "app" rollout to finish: 0 of 1 updated '
        "replicas are available...\n",
        stderr='error: deployment "app" exceeded its progress deadline\n',
        exited=1,
    )
    cluster = FakeCluster(fail={"rollout status": stuck})

    with pytest.raises(CicdError) as caught:
        runtime_for(tmp_path, cluster, rollout_timeout=30).restart()

    assert str(caught.value) == (
        f"preprod: deployment/app did not roll out reg/app:{SHA} within 30s: "
        'error: deployment "app" exceeded its progress deadline (exit 1)'
    )


def test_a_failed_annotation_fails_the_restart(tmp_path: Path) -> None:
    cluster = FakeCluster(fail={"annotate": Raw(stderr="error: boom\n", exited=1)})

    with pytest.raises(CicdError, match="could not annotate deployment/app: error"):
        runtime_for(tmp_path, cluster).restart()


def test_a_failed_apply_fails_the_restart(tmp_path: Path) -> None:
    invalid = Raw(stderr="error: error validating data\n", exited=1)
    cluster = FakeCluster(image=None, fail={"apply": invalid})

    with pytest.raises(CicdError, match="could not apply k8s.yml of 0123456"):
        runtime_for(tmp_path, cluster, manifest="k8s.yml").restart()


# -- start and stop ----------------------------------------------------------------


def test_stop_scales_to_zero_and_start_scales_back(tmp_path: Path) -> None:
    cluster = FakeCluster()
    runtime = runtime_for(tmp_path, cluster, replicas=2)

    runtime.stop()
    assert cluster.replicas == 0
    assert runtime.status() == "STOPPED"
    cluster.lines.clear()

    runtime.start()

    assert cluster.verbs()[:2] == ["get", "scale"]
    assert cluster.calls("scale")[0][3] == "--replicas=2"
    assert runtime.status() == "RUNNING"


def test_start_leaves_a_running_deployments_replicas_alone(tmp_path: Path) -> None:
    cluster = FakeCluster(replicas=3)

    runtime_for(tmp_path, cluster).start()

    assert "scale" not in cluster.verbs()
    assert cluster.replicas == 3


def test_stop_never_raises(tmp_path: Path) -> None:
    cluster = FakeCluster(fail={"scale": Raw(stderr="error: no\n", exited=1)})

    runtime_for(tmp_path, cluster).stop()

    assert cluster.calls("scale")[0][3] == "--replicas=0"


# -- status and serving --------------------------------------------------------------


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        (FakeCluster(), "RUNNING"),
        (FakeCluster(replicas=2), "RUNNING"),
        (FakeCluster(image=None), "DOWN"),
        (FakeCluster(pods=[(f"reg/app:{OLD}", False)]), "DOWN"),
        (FakeCluster(pods=[]), "DOWN"),
        (FakeCluster(replicas=0, pods=[]), "STOPPED"),
        # A rollout under way: an old pod still serves beside a new one.
        (
            FakeCluster(
                image=f"reg/app:{SHA}",
                pods=[(f"reg/app:{SHA}", True), (f"reg/app:{OLD}", True)],
            ),
            "UPDATING",
        ),
        # The new pod is not ready yet.
        (
            FakeCluster(
                image=f"reg/app:{SHA}",
                pods=[(f"reg/app:{SHA}", False), (f"reg/app:{OLD}", True)],
            ),
            "UPDATING",
        ),
        (FakeCluster(replicas=2, pods=[(f"reg/app:{OLD}", True)]), "UPDATING"),
        (FakeCluster(labels=""), "UNKNOWN"),
        (
            FakeCluster(fail={"get": Raw(stderr="error: refused\n", exited=1)}),
            "UNKNOWN",
        ),
    ],
)
def test_status(tmp_path: Path, cluster: FakeCluster, expected: str) -> None:
    assert runtime_for(tmp_path, cluster).status() == expected


def test_status_when_replicas_cannot_be_read(tmp_path: Path) -> None:
    cluster = FakeCluster()
    real = cluster.get

    def no_replicas(words: list[str]) -> Raw:
        if "jsonpath={.spec.replicas}" in words:
            return Raw(stderr="error: timeout\n", exited=1)
        return real(words)

    cluster.get = no_replicas  # type: ignore[method-assign]

    assert runtime_for(tmp_path, cluster).status() == "UNKNOWN"


def test_status_when_pods_cannot_be_listed(tmp_path: Path) -> None:
    cluster = FakeCluster()
    real = cluster.get

    def no_pods(words: list[str]) -> Raw:
        if words[2] == "pods":
            return Raw(stderr="error: forbidden\n", exited=1)
        return real(words)

    cluster.get = no_pods  # type: ignore[method-assign]
    runtime = runtime_for(tmp_path, cluster)

    assert runtime.status() == "UNKNOWN"
    assert runtime.serving() == ""


def test_serving_is_the_release_the_ready_pods_run(tmp_path: Path) -> None:
    # The template says SHA (a rollout that failed); the ready pod still runs OLD.
    cluster = FakeCluster(
        image=f"reg/app:{SHA}",
        pods=[(f"reg/app:{SHA}", False), (f"reg/app:{OLD}", True)],
    )

    assert runtime_for(tmp_path, cluster).serving() == (
        f"{ROOT}/preprod/releases/{OLD}"
    )


def test_serving_mid_rollout_prefers_the_templates_image(tmp_path: Path) -> None:
    cluster = FakeCluster(
        image=f"reg/app:{SHA}",
        pods=[(f"reg/app:{OLD}", True), (f"reg/app:{SHA}", True)],
    )

    assert runtime_for(tmp_path, cluster).serving() == (
        f"{ROOT}/preprod/releases/{SHA}"
    )


@pytest.mark.parametrize(
    "cluster",
    [
        FakeCluster(pods=[]),
        FakeCluster(pods=[(f"reg/app:{OLD}", False)]),
        FakeCluster(image=None),
        FakeCluster(pods=[("reg/app:latest", True)]),
        FakeCluster(pods=[(f"other/app:{OLD}", True)]),
        FakeCluster(pods=[(f"reg/app/{OLD}", True)]),
        # Two images ready, neither the template's: which one serves is not ours.
        FakeCluster(
            image=f"reg/app:{SHA}",
            pods=[(f"reg/app:{OLD}", True), ("reg/app:1234567", True)],
        ),
    ],
)
def test_serving_nothing_of_ours(tmp_path: Path, cluster: FakeCluster) -> None:
    assert runtime_for(tmp_path, cluster).serving() == ""


def test_serving_mid_rollout_when_the_template_cannot_be_read(
    tmp_path: Path,
) -> None:
    cluster = FakeCluster(pods=[(f"reg/app:{OLD}", True), (f"reg/app:{SHA}", True)])
    real = cluster.get

    def no_template(words: list[str]) -> Raw:
        if "containers" in words[4] and words[2] != "pods":
            return Raw(stderr="error: timeout\n", exited=1)
        return real(words)

    cluster.get = no_template  # type: ignore[method-assign]

    assert runtime_for(tmp_path, cluster).serving() == ""


def test_the_serving_sha_is_what_target_reads(tmp_path: Path) -> None:
    runtime = runtime_for(tmp_path, FakeCluster())

    assert runtime.paths.release_of(runtime.serving()) == OLD


# -- logs ---------------------------------------------------------------------------


def test_logs_and_follow(tmp_path: Path) -> None:
    cluster = FakeCluster()
    runtime = runtime_for(tmp_path, cluster, container="web")

    assert runtime.logs(5) == "logs output\n"
    assert runtime.release_logs(5) == "logs output\n"  # a pod runs one release
    assert cluster.calls("logs")[0][:6] == [
        "kubectl",
        "logs",
        "deployment/app",
        "-c",
        "web",
        "--tail=5",
    ]
    assert "--follow" in runtime.follow(7).argv
    assert "--tail=7" in runtime.follow(7).argv


def test_logs_of_a_pod_that_cannot_start_say_why(tmp_path: Path) -> None:
    waiting = Raw(
        stderr='Error from server (BadRequest): container "app" in pod "app-1" is '
        "waiting to start: image can't be pulled\n",
        exited=1,
    )
    runtime = runtime_for(tmp_path, FakeCluster(fail={"logs": waiting}))

    assert "image can't be pulled" in runtime.logs()


# -- rollback by revision ------------------------------------------------------------


def deployed_twice(tmp_path: Path) -> tuple[FakeCluster, KubernetesRuntime]:
    """A cluster where OLD then SHA were rolled out by the runtime."""
    cluster = FakeCluster(image="reg/app:bootstrap")
    runtime = runtime_for(tmp_path, cluster)
    cluster.current = f"releases/{OLD}"
    runtime.restart()
    cluster.current = f"releases/{SHA}"
    runtime.restart()
    cluster.lines.clear()
    return cluster, runtime


def test_revision_of_reads_the_history(tmp_path: Path) -> None:
    cluster, runtime = deployed_twice(tmp_path)

    assert runtime.revision_of(f"reg/app:{OLD}") == 2
    assert runtime.revision_of(f"reg/app:{SHA}") == 3
    assert runtime.revision_of("reg/app:bootstrap") is None
    assert cluster.verbs() == ["rollout history"] * 3


def test_revision_of_takes_the_newest_match(tmp_path: Path) -> None:
    cause = f"cicd preprod: image reg/app:{OLD}"
    cluster = FakeCluster(
        history=[[2, cause, f"reg/app:{OLD}"], [5, cause, f"reg/app:{OLD}"]]
    )

    assert runtime_for(tmp_path, cluster).revision_of(f"reg/app:{OLD}") == 5


def test_revision_of_a_longer_image_is_not_a_match(tmp_path: Path) -> None:
    cluster = FakeCluster(history=[[2, "cicd preprod: image reg/app:abc1234x", "x"]])

    assert runtime_for(tmp_path, cluster).revision_of("reg/app:abc1234") is None


def test_undo_to_a_named_image(tmp_path: Path) -> None:
    cluster, runtime = deployed_twice(tmp_path)

    assert runtime.undo_to(f"reg/app:{OLD}") == 2

    assert cluster.verbs() == [
        "rollout history",
        "rollout undo",
        "get",
        "rollout status",
    ]
    assert cluster.calls("rollout undo")[0][4] == "--to-revision=2"
    assert cluster.image == f"reg/app:{OLD}"
    # Kubernetes renumbers the revision rolled back to: it is the newest now.
    assert cluster.history[-1][0] == 4
    assert runtime.serving() == f"{ROOT}/preprod/releases/{OLD}"


def test_undo_to_an_image_no_longer_in_the_history(tmp_path: Path) -> None:
    cluster, runtime = deployed_twice(tmp_path)

    with pytest.raises(CicdError) as caught:
        runtime.undo_to("reg/app:1234567")

    assert str(caught.value) == (
        "preprod: no revision of deployment/app kept in its history ran "
        "reg/app:1234567 (set the image instead)"
    )
    assert "rollout undo" not in cluster.verbs()


def test_undo_to_a_revision_whose_cause_lies(tmp_path: Path) -> None:
    # Someone annotated by hand: revision 2 says OLD but runs something else.
    cluster = FakeCluster(
        image=f"reg/app:{SHA}",
        history=[
            [2, f"cicd preprod: image reg/app:{OLD}", "reg/app:hotfix"],
            [3, "", f"reg/app:{SHA}"],
        ],
    )

    with pytest.raises(CicdError) as caught:
        runtime_for(tmp_path, cluster).undo_to(f"reg/app:{OLD}")

    assert str(caught.value) == (
        "preprod: revision 2 of deployment/app runs reg/app:hotfix, not "
        f"reg/app:{OLD}"
    )
    assert "rollout status" not in cluster.verbs()


def test_undo_failures_are_kubectls_message(tmp_path: Path) -> None:
    cluster, runtime = deployed_twice(tmp_path)
    cluster.fail["rollout undo"] = Raw(
        stderr="error: unable to find specified revision 2 in history\n", exited=1
    )

    with pytest.raises(CicdError) as caught:
        runtime.undo_to(f"reg/app:{OLD}")

    assert str(caught.value) == (
        "preprod: kubectl could not undo deployment/app to revision 2: error: "
        "unable to find specified revision 2 in history (exit 1)"
    )


def test_history_failure_is_kubectls_message(tmp_path: Path) -> None:
    cluster = FakeCluster(
        fail={"rollout history": Raw(stderr="error: refused\n", exited=1)}
    )

    with pytest.raises(CicdError, match="could not read the rollout history"):
        runtime_for(tmp_path, cluster).revision_of("reg/app:1")


# -- the templates, evaluated by a real kubectl client (no server) -------------------

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "app"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "app", "tier": "web"}},
        "template": {
            "metadata": {"labels": {"app": "app", "tier": "web"}},
            "spec": {
                "containers": [
                    {"name": "sidecar", "image": "proxy:1"},
                    {"name": "app", "image": f"reg/app:{OLD}"},
                ]
            },
        },
    },
}
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "app-1"},
    "spec": {
        "nodeName": "node-a",
        "containers": [
            {"name": "sidecar", "image": "proxy:1"},
            {"name": "app", "image": f"reg/app:{OLD}"},
        ],
    },
    "status": {
        "containerStatuses": [
            {"name": "sidecar", "ready": False},
            {"name": "app", "ready": True},
        ]
    },
}


def evaluate(tmp_path: Path, obj: dict[str, Any], output: str) -> str:
    """Print a local object with a builder's ``-o`` value, as kubectl would.

    ``label --local`` prints the object it was given without asking any server
    (the kubeconfig points nowhere, to be sure).
    """
    manifest = tmp_path / "object.json"
    manifest.write_text(json.dumps(obj))
    nowhere = tmp_path / "kubeconfig"
    nowhere.write_text("apiVersion: v1\nkind: Config\n")
    argv = ["kubectl", "--kubeconfig", str(nowhere), "label", "--local"]
    argv += ["-f", str(manifest), "checked=yes", "-o", output]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def output_of(command: Any) -> str:
    """The value of a built command's ``-o`` flag."""
    return str(command.argv[command.argv.index("-o") + 1])


kubectl_client = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="needs a kubectl client"
)


@kubectl_client
def test_kubectl_reads_the_deployment_templates(tmp_path: Path) -> None:
    image = output_of(kubectl.get_deployment_image("app", "app", "ns"))
    replicas = output_of(kubectl.get_replicas("app", "ns"))
    selector = output_of(kubectl.get_selector("app", "ns"))

    assert evaluate(tmp_path, DEPLOYMENT, image) == f"reg/app:{OLD}"
    assert evaluate(tmp_path, DEPLOYMENT, replicas) == "2"
    assert evaluate(tmp_path, DEPLOYMENT, selector) == "app=app,tier=web,"


@kubectl_client
def test_kubectl_prints_a_pod_line_parse_pods_reads(tmp_path: Path) -> None:
    # One pod, not a list: the body of the range is what each item prints.
    output = output_of(kubectl.get_pods("app=app", "app", "ns"))
    prefix, suffix = "jsonpath={range .items[*]}", "{end}"
    assert output.startswith(prefix) and output.endswith(suffix)
    body = "jsonpath=" + output[len(prefix) : -len(suffix)]

    printed = evaluate(tmp_path, POD, body)

    assert kubectl.parse_pods(printed) == [
        {"name": "app-1", "node": "node-a", "image": f"reg/app:{OLD}", "ready": "true"}
    ]
