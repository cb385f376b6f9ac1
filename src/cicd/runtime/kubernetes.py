"""The Kubernetes runtime, on paper: a Deployment rolled to ``<image>:<sha>``.

The release ``current`` points to names the image tag: a restart sets the
Deployment's container to ``<image>:<sha>`` (``kubectl set image``), records why
(``kubernetes.io/change-cause``) and waits for the rollout (``kubectl rollout
status``). What serves is asked of the pods, not of ``current``. The image itself is
built and pushed by CI, tagged with the commit's sha; nothing here builds one.

Every command is a builder of :mod:`cicd.commands.kubectl`, run by kubectl on the
target host (locally, or over SSH like every other runtime). The builders and the
decisions below are unit-tested with a fake runner only: no API server can run on
the project's machines, so none of this has met a real cluster.

Settings the configuration does not have yet are read with defaults, so the runtime
works with today's ``[tool.cicd.runtime]``: see :class:`KubernetesRuntime`.
"""

from __future__ import annotations

import math
import re
from posixpath import basename, join
from typing import TYPE_CHECKING, TypedDict

from cicd.commands import files, kubectl
from cicd.core.errors import CicdError, CommandFailed, ConfigError
from cicd.core.redact import redact

if TYPE_CHECKING:
    from cicd.commands import Command
    from cicd.core.config import EnvSettings
    from cicd.core.layout import EnvPaths
    from cicd.transport.runner import Result, Runner

#: A tag we deploy: a release's name, i.e. a commit sha.
SHA_TAG = re.compile(r"^[0-9a-f]{7,40}$")
#: How kubectl says an object does not exist.
NOT_FOUND = "(NotFound)"


class _Where(TypedDict):
    """Where kubectl points: the keyword arguments every builder takes."""

    context: str | None
    kubeconfig: str | None


class KubernetesRuntime:
    """Run an environment's app as a Kubernetes Deployment, through kubectl.

    Settings, from ``[tool.cicd.runtime]`` (the ones marked *new* are read with
    their default until the configuration declares them):

    - ``deployment`` (*new*): the Deployment; default ``service``, else ``project``;
      behind the proxy, ``-SLOT`` is appended.
    - ``container`` (*new*): its container that runs the app; default ``service``.
    - ``image`` (*new*): the image repository, without a tag; default the
      Deployment's base name.
    - ``namespace`` (*new*): default ``default``.
    - ``kube_context``, ``kubeconfig`` (*new*): where kubectl points; default its
      own (``$KUBECONFIG``, the current context).
    - ``replicas`` (*new*): the pods :meth:`start` asks for after a stop; default 1.
    - ``rollout_timeout`` (*new*): seconds ``rollout status`` waits; default
      ``health.deadline``.
    - ``manifest`` (*new*): a manifest inside the release applied when the
      Deployment does not exist yet; default none (the Deployment must exist).
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
        #: ``blue`` or ``green`` behind the proxy: a Deployment of its own.
        self.slot = slot

    # -- settings -----------------------------------------------------------------

    def _setting(self, name: str, default: str = "") -> str:
        # getattr: the configuration does not declare these keys yet.
        value = getattr(self.settings.runtime, name, "")
        return str(value) if value else default

    def _name(self, key: str, value: str, *, subdomain: bool = False) -> str:
        try:
            return kubectl.check_name(value, key.replace("_", " "), subdomain=subdomain)
        except ValueError as error:
            raise ConfigError(f"tool.cicd.runtime.{key}: {error}") from None

    @property
    def base(self) -> str:
        """The Deployment's name before any slot suffix."""
        runtime = self.settings.runtime
        default = runtime.service or runtime.project
        return self._setting("deployment", default)

    @property
    def deployment(self) -> str:
        """The Deployment: ``deployment``, plus ``-SLOT`` behind the proxy."""
        name = f"{self.base}-{self.slot}" if self.slot else self.base
        return self._name("deployment", name, subdomain=True)

    @property
    def container(self) -> str:
        """The Deployment's container that runs the app."""
        return self._name(
            "container",
            self._setting("container", self.settings.runtime.service or "app"),
        )

    @property
    def namespace(self) -> str:
        """The namespace of the Deployment."""
        return self._name("namespace", self._setting("namespace", "default"))

    @property
    def context(self) -> str | None:
        """The kubeconfig context, or None for kubectl's current one."""
        return self._setting("kube_context") or None

    @property
    def kubeconfig(self) -> str | None:
        """The kubeconfig file on the host, or None for kubectl's default."""
        return self._setting("kubeconfig") or None

    @property
    def repository(self) -> str:
        """The image without its tag, e.g. ``registry.example.com/team/app``."""
        image = self._setting("image", self.base)
        last = image.rsplit("/", 1)[-1]
        if any(c.isspace() for c in image) or image.startswith("-"):
            raise ConfigError(f"tool.cicd.runtime.image: invalid image {image!r}")
        if ":" in last or "@" in image:
            # The tag is the release's sha: a configured one would be overridden.
            raise ConfigError(
                f"tool.cicd.runtime.image: {image!r} names a tag or digest; give "
                "the repository only (the release's sha is the tag)"
            )
        return image

    @property
    def replicas(self) -> int:
        """The pods :meth:`start` asks for when the Deployment is scaled to 0."""
        return int(getattr(self.settings.runtime, "replicas", 0) or 1)

    @property
    def timeout(self) -> int:
        """Whole seconds ``rollout status`` waits (kubectl takes no fraction)."""
        seconds = getattr(self.settings.runtime, "rollout_timeout", 0)
        return max(1, math.ceil(float(seconds or self.settings.health.deadline)))

    @property
    def link(self) -> str:
        """The symlink to the release it runs: its slot's, or ``current``."""
        return self.paths.link(self.slot)

    def image_of(self, sha: str) -> str:
        """The image a release runs: ``<repository>:<sha>``."""
        return f"{self.repository}:{sha}"

    # -- running kubectl -------------------------------------------------------------

    def _where(self) -> _Where:
        return {"context": self.context, "kubeconfig": self.kubeconfig}

    def _run(self, command: Command, doing: str) -> Result:
        """Run a kubectl command that must succeed; its failure in kubectl's words."""
        try:
            return self.runner.run(command)
        except CommandFailed as error:
            raise CicdError(
                f"{self.settings.name}: kubectl could not {doing}: {error}"
            ) from None

    def _release(self) -> tuple[str, str]:
        """The sha and directory of the release ``current`` (or the slot) names."""
        target = self.runner.output(files.readlink(self.link))
        sha = basename(target.rstrip("/"))
        if not sha:
            raise CicdError(f"{self.settings.name}: no current release to run")
        return sha, self.paths.release(sha)

    def spec_image(self) -> str | None:
        """The image the Deployment's template gives our container.

        Returns:
            The image; ``""`` when it has no such container; None when the
            Deployment does not exist.

        Raises:
            CicdError: kubectl failed otherwise (no cluster, no permission...).
        """
        command = kubectl.get_deployment_image(
            self.deployment, self.container, self.namespace, **self._where()
        )
        result = self.runner.run(command, check=False)
        if not result.ok and NOT_FOUND in result.stderr:
            return None
        if not result.ok:
            # As the runner does for a failure it raises: no secret in a message.
            detail = CommandFailed("kubectl", result.exited, redact(result.stderr))
            raise CicdError(
                f"{self.settings.name}: kubectl could not read "
                f"deployment/{self.deployment}: {detail}"
            )
        return result.stdout.strip()

    def pods(self) -> list[dict[str, str]] | None:
        """List the Deployment's pods, each a dict of ``kubectl.POD_FIELDS``.

        Returns:
            The pods, or None when they cannot be listed (no Deployment, no
            ``matchLabels`` to select them by, kubectl failing).
        """
        where = self._where()
        selector = self.runner.run(
            kubectl.get_selector(self.deployment, self.namespace, **where), check=False
        )
        labels = selector.stdout.strip().rstrip(",")
        if not selector.ok or not labels:
            return None
        listing = self.runner.run(
            kubectl.get_pods(labels, self.container, self.namespace, **where),
            check=False,
        )
        return kubectl.parse_pods(listing.stdout) if listing.ok else None

    def _wait(self, image: str) -> None:
        command = kubectl.rollout_status(
            self.deployment, self.namespace, self.timeout, **self._where()
        )
        try:
            self.runner.run(command)
        except CommandFailed as error:
            raise CicdError(
                f"{self.settings.name}: deployment/{self.deployment} did not roll "
                f"out {image} within {self.timeout}s: {error}"
            ) from None

    # -- the Runtime protocol ------------------------------------------------------

    def preflight_reads(self) -> list[Command]:
        """Nothing read ahead: ``preflight`` asks the engine, which may change."""
        return []

    def preflight(self) -> None:
        """Fail clearly when kubectl, the cluster or the Deployment is missing."""
        _ = (self.deployment, self.container, self.namespace, self.repository)
        if not self.runner.ok(kubectl.client_version()):
            raise CicdError(
                f"kubectl not found on {self.runner.host} (install kubectl, or set "
                "tool.cicd.runtime.kind = 'supervisor')"
            )
        where = self._where()
        info = self.runner.run(kubectl.server_version(**where), check=False)
        if not info.ok:
            detail = CommandFailed("kubectl", info.exited, redact(info.stderr))
            context = f" (context {self.context})" if self.context else ""
            raise CicdError(
                f"{self.settings.name}: no Kubernetes API server answers from "
                f"{self.runner.host}{context}: {detail}"
            )
        image = self.spec_image()
        if image is None and not self._setting("manifest"):
            raise CicdError(
                f"{self.settings.name}: deployment/{self.deployment} not found in "
                f"namespace {self.namespace} (create it, or set "
                "tool.cicd.runtime.manifest)"
            )
        if image == "":
            raise CicdError(
                f"{self.settings.name}: deployment/{self.deployment} has no "
                f"container named {self.container} (set tool.cicd.runtime.container)"
            )

    def start(self) -> None:
        """Scale the Deployment up if it was stopped, then roll it to ``current``."""
        where = self._where()
        replicas = self.runner.run(
            kubectl.get_replicas(self.deployment, self.namespace, **where), check=False
        )
        if replicas.ok and replicas.stdout.strip() == "0":
            self._run(
                kubectl.scale(self.deployment, self.namespace, self.replicas, **where),
                f"scale deployment/{self.deployment} to {self.replicas}",
            )
        self.restart()

    def restart_reads(self) -> list[Command]:
        """Nothing to read ahead: ``restart`` begins by acting."""
        return []

    def restart(self) -> None:
        """Roll the Deployment to the image of the release ``current`` names.

        ``set image`` first, the change-cause after: annotating first would
        relabel the running ReplicaSet (the annotation is copied to the newest
        one, still the old one then) and leave it wrong if ``set image`` failed.
        With the image unchanged, ``set image`` does nothing, so the pods are
        replaced with ``rollout restart``: a restart restarts.

        Raises:
            CicdError: kubectl failed or the rollout did not complete in time, in
                kubectl's words.
        """
        sha, release = self._release()
        image = self.image_of(sha)
        where = self._where()
        before = self.spec_image()
        if before is None:
            manifest = self._setting("manifest")
            if not manifest:
                raise CicdError(
                    f"{self.settings.name}: deployment/{self.deployment} not found "
                    f"in namespace {self.namespace}"
                )
            self._run(
                kubectl.apply(join(release, manifest), self.namespace, **where),
                f"apply {manifest} of {sha[:7]}",
            )
        self._run(
            kubectl.set_image(
                self.deployment, self.container, image, self.namespace, **where
            ),
            f"set the image of deployment/{self.deployment} to {image}",
        )
        if before == image:
            self._run(
                kubectl.rollout_restart(self.deployment, self.namespace, **where),
                f"restart deployment/{self.deployment}",
            )
        self._run(
            kubectl.annotate_change_cause(
                self.deployment, self.change_cause(image), self.namespace, **where
            ),
            f"annotate deployment/{self.deployment}",
        )
        self._wait(image)

    def change_cause(self, image: str) -> str:
        """The change-cause of a rollout to ``image``; :meth:`revision_of` reads it."""
        return f"cicd {self.settings.name}: image {image}"

    def stop(self) -> None:
        """Scale the Deployment to 0 pods; it stays, with its image and history."""
        command = kubectl.scale(self.deployment, self.namespace, 0, **self._where())
        self.runner.run(command, check=False)

    def status(self) -> str:
        """RUNNING when every pod asked for is ready with the Deployment's image.

        Returns:
            RUNNING; STOPPED when scaled to 0; UPDATING while pods of another
            image remain or some are not ready yet; DOWN when no pod is ready or
            the Deployment does not exist; UNKNOWN when kubectl cannot tell.
        """
        try:
            image = self.spec_image()
        except CicdError:
            return "UNKNOWN"
        if image is None:
            return "DOWN"
        where = self._where()
        replicas = self.runner.run(
            kubectl.get_replicas(self.deployment, self.namespace, **where), check=False
        )
        wanted = replicas.stdout.strip()
        if not replicas.ok or not wanted.isdigit():
            return "UNKNOWN"
        if wanted == "0":
            return "STOPPED"
        pods = self.pods()
        if pods is None:
            return "UNKNOWN"
        ready = [p for p in pods if p["ready"] == "true"]
        if not ready:
            return "DOWN"
        current = [p for p in ready if p["image"] == image]
        if len(current) >= int(wanted) and all(p["image"] == image for p in pods):
            return "RUNNING"
        return "UPDATING"

    def serving(self) -> str:
        """The release directory whose sha is the tag the ready pods run, or ``""``.

        Asked of the pods, not of the Deployment's template: during a rollout, or
        after a failed one, the template names an image no ready pod runs yet.
        Mid-rollout (ready pods of two images), the template's image wins if a
        ready pod runs it. An image of another repository, or a tag that is not a
        sha, is no release of ours.
        """
        pods = self.pods()
        if not pods:
            return ""
        images = {p["image"] for p in pods if p["ready"] == "true"}
        if len(images) > 1:
            try:
                spec = self.spec_image()
            except CicdError:
                spec = None
            images = {spec} if spec in images else set()
        if len(images) != 1:
            return ""
        (image,) = images
        repository, _, tag = image.rpartition(":")
        if "/" in tag or not SHA_TAG.match(tag) or repository != self.repository:
            return ""
        return self.paths.release(tag)

    def logs(self, lines: int = 50) -> str:
        """One pod's last log lines, or kubectl's reason when there are none."""
        command = kubectl.logs(
            self.deployment, self.container, self.namespace, lines, **self._where()
        )
        result = self.runner.run(command, check=False)
        # A pod that cannot start has no log, and kubectl's error says why.
        return result.stdout if result.ok else result.stderr

    def release_logs(self, lines: int = 50) -> str:
        """One pod's last log lines: a pod runs one release."""
        return self.logs(lines)

    def follow(self, lines: int = 50) -> Command:
        """``kubectl logs --follow``: one pod's last lines, then each new one."""
        return kubectl.logs(
            self.deployment,
            self.container,
            self.namespace,
            lines,
            follow=True,
            **self._where(),
        )

    # -- rollback by revision ------------------------------------------------------

    def revision_of(self, image: str) -> int | None:
        """The newest revision whose change-cause names ``image``, or None.

        Only rollouts this runtime made carry such a change-cause (see
        :meth:`change_cause`), and only the last ``revisionHistoryLimit`` are kept.

        Raises:
            CicdError: kubectl could not print the history.
        """
        result = self._run(
            kubectl.rollout_history(self.deployment, self.namespace, **self._where()),
            f"read the rollout history of deployment/{self.deployment}",
        )
        found = [
            revision
            for revision, cause in kubectl.parse_history(result.stdout)
            if image in cause.split()
        ]
        return max(found) if found else None

    def undo_to(self, image: str) -> int:
        """Roll back to the revision that ran ``image``: ``rollout undo``.

        The primary rollback is :meth:`restart` after ``current`` is switched back,
        i.e. ``set image`` to the validated tag: it works whatever the history
        kept. This one restores that revision's whole pod template and reuses its
        ReplicaSet (which becomes the newest revision, its change-cause with it),
        so the history shows a return to a known revision, not a new one.

        Returns:
            The revision rolled back to.

        Raises:
            CicdError: No kept revision ran ``image``; the undo, or its rollout,
                failed; or the revision turned out to run another image.
        """
        revision = self.revision_of(image)
        if revision is None:
            raise CicdError(
                f"{self.settings.name}: no revision of deployment/{self.deployment} "
                f"kept in its history ran {image} (set the image instead)"
            )
        self._run(
            kubectl.rollout_undo(
                self.deployment, self.namespace, revision, **self._where()
            ),
            f"undo deployment/{self.deployment} to revision {revision}",
        )
        # The change-cause is only text: check what the template says now.
        now = self.spec_image()
        if now != image:
            raise CicdError(
                f"{self.settings.name}: revision {revision} of "
                f"deployment/{self.deployment} runs {now or 'nothing'}, not {image}"
            )
        self._wait(image)
        return revision
