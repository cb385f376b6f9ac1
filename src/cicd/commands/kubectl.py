"""Builders for ``kubectl``: roll a Deployment to an image, watch it, undo it.

Every builder is pure and returns a :class:`~cicd.commands.Command`; each value is an
argv word of its own, never part of a shell string. Every builder takes the same
optional ``context`` (a kubeconfig context) and ``kubeconfig`` (a file on the host
that runs kubectl), added as the same trailing flags, so one environment's commands
all reach the same cluster.

Names (deployment, container, namespace) are checked against Kubernetes' own rules
(RFC 1123), so none can start with ``-`` and be read as a flag, and a container name
is safe inside a JSONPath filter.

Nothing here has been run against a real API server (see the "Kubernetes (on paper)"
page): the argv is what the unit tests pin.
"""

from __future__ import annotations

import re

from cicd.commands import Command, cmd

PROGRAM = "kubectl"

#: The annotation ``kubectl rollout history`` shows as CHANGE-CAUSE. It replaces the
#: deprecated ``--record`` flag, which wrote our whole command line into it.
CHANGE_CAUSE = "kubernetes.io/change-cause"

#: An RFC 1123 label: namespaces and container names.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
#: An RFC 1123 subdomain: deployment names (labels joined by dots, 253 at most).
_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)

#: One line per pod: name, node, the container's image, its readiness.
POD_FIELDS = ("name", "node", "image", "ready")


def check_name(value: str, what: str, *, subdomain: bool = False) -> str:
    """Return ``value`` if it is a valid Kubernetes name, else raise ValueError.

    Args:
        value: The name.
        what: What it names, for the message (``namespace``, ``container``...).
        subdomain: Allow dots and up to 253 characters (object names such as a
            Deployment's); otherwise a label (63 characters, no dots).

    Returns:
        The name, unchanged.

    Raises:
        ValueError: The name breaks the rule.
    """
    pattern, limit = (_SUBDOMAIN, 253) if subdomain else (_LABEL, 63)
    if len(value) > limit or not pattern.match(value):
        rule = "a DNS subdomain" if subdomain else "a DNS label"
        raise ValueError(
            f"invalid {what} {value!r}: must be {rule} (lowercase letters, digits "
            f"and '-', at most {limit} characters, starting and ending alphanumeric)"
        )
    return value


def _tail(namespace: str, context: str | None, kubeconfig: str | None) -> list[str]:
    """The flags every command ends with: namespace, then where the cluster is."""
    words = ["-n", check_name(namespace, "namespace")]
    if context:
        words += ["--context", context]
    if kubeconfig:
        words += ["--kubeconfig", kubeconfig]
    return words


def _deployment(name: str) -> str:
    return "deployment/" + check_name(name, "deployment name", subdomain=True)


def _kubectl(
    *argv: str,
    namespace: str,
    context: str | None,
    kubeconfig: str | None,
) -> Command:
    return cmd(PROGRAM, *argv, *_tail(namespace, context, kubeconfig))


def client_version() -> Command:
    """Exit 0 when kubectl itself works (no cluster is asked)."""
    return cmd(PROGRAM, "version", "--client")


def server_version(
    *,
    request_timeout_s: int = 10,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Command:
    """Exit 0 when the API server answers (kubectl prints both versions).

    ``/version`` is readable by any client, so a namespaced CI account passes
    where ``cluster-info`` (services of ``kube-system``) would be forbidden; the
    credentials are checked by the first real read. ``--request-timeout`` bounds
    a preflight against an unreachable server.
    """
    argv = [PROGRAM, "version", f"--request-timeout={request_timeout_s}s"]
    if context:
        argv += ["--context", context]
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    return cmd(*argv)


def set_image(
    deployment: str,
    container: str,
    image: str,
    namespace: str,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Command:
    """Set one container's image: a new ReplicaSet and a rolling update, if changed.

    The same image again changes nothing (no new revision, no pod restarted).
    """
    if not image or any(c.isspace() for c in image) or image.startswith("-"):
        raise ValueError(f"invalid image reference {image!r}")
    return _kubectl(
        "set",
        "image",
        _deployment(deployment),
        f"{check_name(container, 'container name')}={image}",
        namespace=namespace,
        context=context,
        kubeconfig=kubeconfig,
    )


def annotate_change_cause(
    deployment: str,
    text: str,
    namespace: str,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Command:
    """Set ``kubernetes.io/change-cause``: what ``rollout history`` shows.

    The Deployment's annotations are copied to its newest ReplicaSet, so the text
    names the revision the last ``set image`` made. ``--overwrite``: it is replaced
    at every deploy.
    """
    return _kubectl(
        "annotate",
        "--overwrite",
        _deployment(deployment),
        f"{CHANGE_CAUSE}={text}",
        namespace=namespace,
        context=context,
        kubeconfig=kubeconfig,
    )


def rollout_status(
    deployment: str,
    namespace: str,
    timeout_s: int,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Command:
    """Wait until the rollout is complete; exit non-zero if it fails or times out."""
    return _kubectl(
        "rollout",
        "status",
        _deployment(deployment),
        f"--timeout={int(timeout_s)}s",
        namespace=namespace,
        context=context,
        kubeconfig=kubeconfig,
    )


def rollout_restart(
    deployment: str,
    namespace: str,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Command:
    """Replace every pod, same image: what a restart is when the image is unchanged."""
    return _kubectl(
        "rollout",
        "restart",
        _deployment(deployment),
        namespace=namespace,
        context=context,
        kubeconfig=kubeconfig,
    )


def rollout_history(
    deployment: str,
    namespace: str,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Command:
    """Print the revisions kept (``revisionHistoryLimit``) and their change-cause."""
    return _kubectl(
        "rollout",
        "history",
        _deployment(deployment),
        namespace=namespace,
        context=context,
        kubeconfig=kubeconfig,
    )


def rollout_undo(
    deployment: str,
    namespace: str,
    revision: int,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Command:
    """Roll back to one revision: its whole pod template, its own ReplicaSet."""
    if revision < 1:
        # 0 means "the previous revision" to kubectl: never what a caller naming
        # a revision wants.
        raise ValueError(f"invalid revision {revision}: revisions start at 1")
    return _kubectl(
        "rollout",
        "undo",
        _deployment(deployment),
        f"--to-revision={revision}",
        namespace=namespace,
        context=context,
        kubeconfig=kubeconfig,
    )


def get_deployment_image(
    deployment: str,
    container: str,
    namespace: str,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Command:
    """Print the image the Deployment's pod template gives one container."""
    name = check_name(container, "container name")
    path = f'{{.spec.template.spec.containers[?(@.name=="{name}")].image}}'
    return _kubectl(
        "get",
        _deployment(deployment),
        "-o",
        f"jsonpath={path}",
        namespace=namespace,
        context=context,
        kubeconfig=kubeconfig,
    )


def get_replicas(
    deployment: str,
    namespace: str,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Command:
    """Print how many pods the Deployment asks for (``.spec.replicas``)."""
    return _kubectl(
        "get",
        _deployment(deployment),
        "-o",
        "jsonpath={.spec.replicas}",
        namespace=namespace,
        context=context,
        kubeconfig=kubeconfig,
    )


def get_selector(
    deployment: str,
    namespace: str,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Command:
    """Print the Deployment's ``matchLabels`` as ``k=v,k=v,`` (a ``-l`` selector).

    A go-template, not JSONPath: JSONPath prints a map as JSON in recent kubectl
    and as ``map[...]`` in older ones; the template's output is the same in both.
    """
    template = "{{range $k, $v := .spec.selector.matchLabels}}{{$k}}={{$v}},{{end}}"
    return _kubectl(
        "get",
        _deployment(deployment),
        "-o",
        f"go-template={template}",
        namespace=namespace,
        context=context,
        kubeconfig=kubeconfig,
    )


def get_pods(
    selector: str,
    container: str,
    namespace: str,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Command:
    """Print one tab-separated line per pod: :data:`POD_FIELDS`.

    The image is the pod spec's (the tag asked for; the status's may be a digest),
    readiness that of the named container (``true``, ``false``, or empty while the
    pod is not scheduled yet).
    """
    if not selector:
        # An empty selector lists every pod of the namespace.
        raise ValueError("a pod selector is needed")
    name = check_name(container, "container name")
    path = (
        "{range .items[*]}{.metadata.name}"
        '{"\\t"}{.spec.nodeName}'
        f'{{"\\t"}}{{.spec.containers[?(@.name=="{name}")].image}}'
        f'{{"\\t"}}{{.status.containerStatuses[?(@.name=="{name}")].ready}}'
        '{"\\n"}{end}'
    )
    return _kubectl(
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        f"jsonpath={path}",
        namespace=namespace,
        context=context,
        kubeconfig=kubeconfig,
    )


def logs(
    deployment: str,
    container: str,
    namespace: str,
    lines: int,
    *,
    follow: bool = False,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Command:
    """Print the last lines of one of the Deployment's pods (``follow``: then more).

    ``deployment/NAME`` makes kubectl pick one pod; with one replica, the app's.
    """
    argv = [
        "logs",
        _deployment(deployment),
        "-c",
        check_name(container, "container name"),
        f"--tail={int(lines)}",
    ]
    if follow:
        argv.append("--follow")
    return _kubectl(*argv, namespace=namespace, context=context, kubeconfig=kubeconfig)


def scale(
    deployment: str,
    namespace: str,
    replicas: int,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Command:
    """Ask for ``replicas`` pods: 0 stops the app, keeping the Deployment."""
    if replicas < 0:
        raise ValueError(f"invalid replica count {replicas}")
    return _kubectl(
        "scale",
        _deployment(deployment),
        f"--replicas={replicas}",
        namespace=namespace,
        context=context,
        kubeconfig=kubeconfig,
    )


def apply(
    manifest: str,
    namespace: str,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Command:
    """Create or update the objects of a manifest file (or directory) on the host."""
    if not manifest:
        raise ValueError("a manifest path is needed")
    # "-f -" would read the manifest from stdin, which never comes.
    if manifest == "-":
        raise ValueError("the manifest must be a path, not '-'")
    return _kubectl(
        "apply",
        "-f",
        manifest,
        namespace=namespace,
        context=context,
        kubeconfig=kubeconfig,
    )


def parse_history(text: str) -> list[tuple[int, str]]:
    """The ``(revision, change-cause)`` pairs of ``rollout history`` output.

    ::

        deployment.apps/app
        REVISION  CHANGE-CAUSE
        1         <none>
        2         cicd preprod: image app:0123...

    Args:
        text: What ``kubectl rollout history`` printed.

    Returns:
        The revisions, in the order printed; ``<none>`` becomes ``""``.
    """
    revisions: list[tuple[int, str]] = []
    for line in text.splitlines():
        words = line.split(None, 1)
        if not words or not words[0].isdigit():
            continue
        cause = words[1].strip() if len(words) > 1 else ""
        revisions.append((int(words[0]), "" if cause == "<none>" else cause))
    return revisions


def parse_pods(text: str) -> list[dict[str, str]]:
    """The pods :func:`get_pods` printed, one dict of :data:`POD_FIELDS` each."""
    pods: list[dict[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        values = line.split("\t")
        values += [""] * (len(POD_FIELDS) - len(values))
        pods.append(dict(zip(POD_FIELDS, values)))
    return pods
