"""Builders for docker compose: the v2 plugin or v1 ``docker-compose``."""

from __future__ import annotations

from collections.abc import Sequence

from cicd.commands import Command, cmd, sh

V2 = ("docker", "compose")
V1 = ("docker-compose",)


def version(program: Sequence[str]) -> Command:
    """Exit 0 when this compose program works."""
    return cmd(*program, "version")


def detect() -> Command:
    """Print which compose this host has: ``v2``, ``v1``, ``docker`` (none) or nothing.

    One command for what a deploy asks once: the plugin is asked (``docker compose
    version``, the docker CLI's own start-up), ``docker-compose`` is only found on
    PATH: starting it costs half a second (it is a Python program), and if it
    does not work, ``up`` says so in its own words. Nothing: no docker at all.
    """
    return sh(
        "if docker compose version >/dev/null 2>&1; then echo v2; "
        "elif command -v docker-compose >/dev/null 2>&1; then echo v1; "
        "elif command -v docker >/dev/null 2>&1; then echo docker; fi"
    )


def _base(program: Sequence[str], file: str, project: str) -> list[str]:
    return [*program, "-f", file, "-p", project]


def up(
    program: Sequence[str], file: str, project: str, service: str, env: dict[str, str]
) -> Command:
    """Recreate the service so it mounts the release ``env`` names, detached.

    ``--force-recreate`` matters: a bind mount of a symlink is resolved when the
    container is created, so a plain restart would keep serving the old release.
    """
    argv = _base(program, file, project) + [
        "up",
        "--detach",
        "--force-recreate",
        "--no-deps",
        "--remove-orphans",
        service,
    ]
    return cmd(*argv, env=env)


def stop(
    program: Sequence[str], file: str, project: str, service: str, env: dict[str, str]
) -> Command:
    """Stop the service's containers."""
    return cmd(*_base(program, file, project), "stop", service, env=env)


def container_id(
    program: Sequence[str], file: str, project: str, service: str, env: dict[str, str]
) -> Command:
    """Print the id of the service's container, if any."""
    return cmd(*_base(program, file, project), "ps", "-q", service, env=env)


def logs(
    program: Sequence[str],
    file: str,
    project: str,
    service: str,
    env: dict[str, str],
    lines: int,
    *,
    follow: bool = False,
) -> Command:
    """Print the service's last log lines (``follow``: then new ones until stopped)."""
    argv = _base(program, file, project) + ["logs", "--no-color", "--tail", str(lines)]
    return cmd(*argv, *(["--follow"] if follow else []), service, env=env)


def inspect_release(container: str) -> Command:
    """Print what names a container's release: its bind mounts' sources, then env.

    The release directory is bind-mounted (``${CICD_RELEASE}/...``), so a mount's
    source names it even when the compose file does not pass ``CICD_RELEASE`` on.
    """
    return cmd(
        "docker",
        "inspect",
        "--format",
        "{{range .Mounts}}mount={{println .Source}}{{end}}"
        "{{range .Config.Env}}{{println .}}{{end}}",
        container,
    )


def inspect_state(container: str) -> Command:
    """Print a container's state, e.g. ``running`` or ``exited``."""
    return cmd("docker", "inspect", "--format", "{{.State.Status}}", container)
