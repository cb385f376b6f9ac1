"""Runtimes run the app of an environment's ``current`` release.

Each implements :class:`Runtime`: ``supervisor`` (the embedded default, a real
supervisord), ``compose`` (docker compose v2 or docker-compose v1) and ``swarm``
(a Docker Swarm service with an image per sha).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cicd.commands import Command
    from cicd.core.settings import EnvSettings
    from cicd.core.layout import EnvPaths
    from cicd.transport.runner import Runner


class Runtime(Protocol):
    """The small interface every runtime offers."""

    def preflight(self) -> None:
        """Raise a clear error if the runtime's programs are missing."""

    def preflight_reads(self) -> list[Command]:
        """The read-only commands ``preflight`` begins with (read with the lock)."""

    def start(self) -> None:
        """Start the app if it is not running."""

    def stop(self) -> None:
        """Stop the app."""

    def restart(self) -> None:
        """(Re)start the app so it runs what ``current`` points to now."""

    def restart_reads(self) -> list[Command]:
        """The read-only commands ``restart`` begins with (read with the switch)."""

    def status(self) -> str:
        """One word: RUNNING, STOPPED, EXITED, ... or UNKNOWN."""

    def logs(self, lines: int = 50) -> str:
        """The app's last output lines."""

    def release_logs(self, lines: int = 50) -> str:
        """The last output lines of the release started last, none of an earlier one.

        What a failure shows: an instance's log may hold the lines of every
        release that ran there before.
        """

    def follow(self, lines: int = 50) -> Command:
        """The command that prints the app's last lines, then each new one."""

    def serving(self) -> str:
        """The directory of the release the running app really runs, or ``""``.

        Asked of the process (or container), not of ``current``: the two differ
        when a switch was not followed by a restart.
        """


def runtime_for(
    runner: Runner,
    settings: EnvSettings,
    paths: EnvPaths,
    slot: str | None = None,
) -> Runtime:
    """Return the runtime configured for an environment (on one slot, if given).

    Behind the proxy each slot (``blue``, ``green``) is an instance of its own: its
    own program, compose project or swarm service, port and release symlink.
    """
    if settings.runtime.kind == "swarm":
        from cicd.runtime.swarm import SwarmRuntime

        return SwarmRuntime(runner, settings, paths, slot)
    if settings.runtime.kind == "compose":
        from cicd.runtime.compose import ComposeRuntime

        return ComposeRuntime(runner, settings, paths, slot)
    from cicd.runtime.supervisor import SupervisorRuntime

    return SupervisorRuntime(runner, settings, paths, slot)
