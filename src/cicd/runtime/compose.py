"""The compose runtime: the app in a container that mounts the current release.

The compose file is taken from the release itself (``30_docker/...``), and the
release directory is passed as ``CICD_RELEASE``; every restart recreates the
container so it mounts what ``current`` points to now.
"""

from __future__ import annotations

from posixpath import dirname, join, normpath
from typing import TYPE_CHECKING

from cicd.core import dependency_lock
from cicd.commands import compose, files, venv
from cicd.commands.prepare import create_private_file
from cicd.core.errors import CicdError

if TYPE_CHECKING:
    from cicd.commands import Command
    from cicd.core.settings import EnvSettings
    from cicd.core.layout import EnvPaths
    from cicd.transport.runner import Runner


class ComposeRuntime:
    """Run an environment's app with docker compose."""

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
        #: ``blue`` or ``green`` behind the proxy: a compose project of its own.
        self.slot = slot

    @property
    def project(self) -> str:
        """The compose project: ``runtime.project``, plus ``-SLOT`` behind the proxy."""
        base = self.settings.runtime.project
        return f"{base}-{self.slot}" if self.slot else base

    @property
    def port(self) -> int:
        """The port the container listens on (``CICD_PORT``)."""
        return self.settings.port_of(self.slot)

    @property
    def link(self) -> str:
        """The symlink to the release it runs: its slot's, or ``current``."""
        return self.paths.link(self.slot)

    @property
    def program(self) -> tuple[str, ...]:
        """``docker compose`` when the v2 plugin works, else ``docker-compose``.

        Asked once per host and run: every slot's runtime shares the answer.
        """
        found = self._detected()
        if found == "v2":
            return compose.V2
        if found == "v1":
            return compose.V1
        raise CicdError(
            f"docker compose not found on {self.runner.host} (install the "
            "docker compose plugin or docker-compose, or use the supervisor "
            "runtime)"
        )

    def _detected(self) -> str:
        known = self.runner.facts.get("compose")
        if not isinstance(known, str):
            known = self.runner.output(compose.detect())
            self.runner.facts["compose"] = known
        return known

    def preflight_reads(self) -> list[Command]:
        """Which compose the host has, unless this run knows already."""
        return [] if "compose" in self.runner.facts else [compose.detect()]

    def preflight(self) -> None:
        """Fail with a clear message when docker or compose is missing."""
        if not self._detected():
            raise CicdError(
                f"docker not found on {self.runner.host} (install docker, "
                "or set tool.cicd.runtime.kind = 'supervisor')"
            )
        _ = self.program

    def _release(self) -> str:
        target = self.runner.output(files.readlink(self.link))
        if not target:
            raise CicdError(f"{self.settings.name}: no current release to run")
        base = self.link.rsplit("/", 1)[0]
        return normpath(join(base, target))

    def _args(
        self, release: str | None = None
    ) -> tuple[tuple[str, ...], str, str, str, dict[str, str]]:
        release = release or self.link
        env = {
            "CICD_RELEASE": release,
            "CICD_ENV": self.settings.name,
            "CICD_PORT": str(self.port),
            "CICD_SHARED": self.paths.shared,
        }
        file = join(release, self.settings.runtime.compose_file)
        return (
            self.program,
            file,
            self.project,
            self.settings.runtime.service,
            env,
        )

    def start(self) -> None:
        """Create and start the container for the current release."""
        self.restart()

    def restart_reads(self) -> list[Command]:
        """The release ``current`` names and its requirements' digest."""
        return [
            *self.preflight_reads(),
            files.readlink(self.link),
            self._digest(self.link),
            files.exists(self.paths.app_env),
        ]

    def _digest(self, release: str) -> Command:
        """The digest of the app's lock (or requirements file) in ``release``."""
        app = join(release, self.settings.app_dir)
        names = dependency_lock.candidates(self.settings.requirements)
        return venv.digest_first(*(join(app, name) for name in names))

    def restart(self) -> None:
        """Recreate the container so it mounts the release ``current`` points to.

        ``CICD_IMAGE_TAG`` names the image after the app's lock, so compose
        builds a new image (dependencies installed at build time) only when they
        change, and a rollback reuses the image it ran with.
        """
        program, file, project, service, env = self._args(self._release())
        # Through the link: the file is the release's, and the command the one
        # read ahead with the switch (restart_reads).
        digest = self.runner.output(self._digest(self.link))
        env["CICD_IMAGE_TAG"] = digest[:16] if digest else "latest"
        env["CICD_APP_ENV"] = app_env_file(self.runner, self.paths.app_env)
        self.runner.run(compose.up(program, file, project, service, env))

    def stop(self) -> None:
        """Stop the container."""
        self.runner.run(compose.stop(*self._args()), check=False)

    def status(self) -> str:
        """Return the container's state in upper case (RUNNING, EXITED...), or DOWN."""
        result = self.runner.run(compose.container_id(*self._args()), check=False)
        container = result.stdout.strip().splitlines()
        if not result.ok or not container:
            return "DOWN"
        state = self.runner.run(compose.inspect_state(container[0]), check=False)
        return state.stdout.strip().upper() or "UNKNOWN"

    def serving(self) -> str:
        """The release the service's container was created for, or ``""``."""
        result = self.runner.run(compose.container_id(*self._args()), check=False)
        container = result.stdout.strip().splitlines()
        if not result.ok or not container:
            return ""
        env = self.runner.run(compose.inspect_release(container[0]), check=False)
        lines = env.stdout.splitlines()
        for line in lines:
            source = line.removeprefix("mount=")
            if line.startswith("mount=") and self.paths.release_of(source):
                return source
        for line in lines:
            if line.startswith("CICD_RELEASE="):
                return line.removeprefix("CICD_RELEASE=")
        return ""

    def logs(self, lines: int = 50) -> str:
        """Return the container's last log lines."""
        return self.runner.run(compose.logs(*self._args(), lines), check=False).stdout

    def release_logs(self, lines: int = 50) -> str:
        """The container's last log lines: each start recreates the container."""
        return self.logs(lines)

    def follow(self, lines: int = 50) -> Command:
        """``compose logs --follow``: the container's last lines, then each new one."""
        return compose.logs(*self._args(), lines, follow=True)


def app_env_file(runner: Runner, app_env: str) -> str:
    """The file a compose or stack file's ``env_file`` names: the app's secrets.

    ``<root>/<env>/shared/app.env``, created empty (mode 0600) when missing, as
    ``setup`` does: an ``env_file`` must name a regular file (docker-compose v1
    refuses ``/dev/null``, and cannot make it optional). Compose reads it itself,
    so a secret never passes through the job's environment or argv.
    """
    runner.run(files.mkdirs(dirname(app_env)))
    runner.run(create_private_file(app_env))
    return app_env
