"""Tasks that provision this machine for the real-component tests: infra.up, infra.down.

They wrap :mod:`tools.testinfra.provision`, which ``.ci/run`` calls too (through
``python3 -m tools.testinfra``). They act on the machine where ``invoke`` runs, never
on a ``fab -H`` host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invoke.exceptions import Exit
from invoke.tasks import task

STATE_HELP = "dockerd's data, pidfile and logs (default: /var/lib/cicd-testinfra)."


def _local_only(c: Any, name: str) -> None:
    if hasattr(c, "host") and hasattr(c, "open"):
        raise Exit(f"infra.{name} provisions this machine: run it with invoke, not fab")


@task(
    help={
        "state_dir": STATE_HELP,
        "extra": "Another Debian package to install (repeatable, e.g. chromium).",
    },
    iterable=["extra"],
)
def up(c: Any, state_dir: str = "", extra: list[str] | None = None) -> None:
    """Install and start what the real-component tests need; idempotent.

    apt-get installs openssh-server, openssh-client, docker.io, docker-compose and
    busybox-static when missing (services are not started); dockerd is started with
    vfs storage and no bridge, iptables or masquerading on /var/run/docker.sock
    unless an engine already answers; the busybox image cicd-busybox:latest is
    imported from /bin/busybox unless present, then checked with a container. sshd
    is not started here: the tests' fixtures start one per simulated host. Needs
    root for whatever is missing.
    """
    _local_only(c, "up")
    from tools.testinfra import docker, provision

    try:
        provision.up(
            Path(state_dir) if state_dir else docker.DEFAULT_STATE_DIR,
            extra_packages=extra or [],
        )
    except RuntimeError as error:
        raise Exit(f"error: {error}", code=1) from None


@task(help={"state_dir": STATE_HELP})
def down(c: Any, state_dir: str = "") -> None:
    """Stop the dockerd that infra.up started; packages and image stay.

    An engine that infra.up did not start (a system service) is left running.
    """
    _local_only(c, "down")
    from tools.testinfra import docker, provision

    provision.down(Path(state_dir) if state_dir else docker.DEFAULT_STATE_DIR)
