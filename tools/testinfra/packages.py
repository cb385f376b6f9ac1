"""Debian packages for the real-component tests, installed without starting services.

apt-get runs only when something is missing, and a temporary ``policy-rc.d`` keeps
the packages' maintainer scripts from starting sshd on 0.0.0.0:22 or dockerd with a
bridge (the network rule of DESIGN.md). Standard library only.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tools.testinfra.process import run

#: Debian packages the real-component tests need.
PACKAGES = (
    "openssh-server",
    "openssh-client",
    "docker.io",
    "docker-compose",
    "busybox-static",
    # The zero-downtime proxy (blue/green deploys); its service is held back.
    "haproxy",
    # The image registry of the swarm tests (tools/testinfra/swarm.py); its service
    # is held back too: it is started inside the swarm's network namespace.
    "docker-registry",
)
#: apt's hook that tells maintainer scripts whether to start services.
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


def dpkg_query_argv(package: str) -> list[str]:
    """Build the command printing a package's install status."""
    return ["dpkg-query", "-W", "-f=${Status}", package]


def apt_install_argv(packages: Sequence[str]) -> list[str]:
    """Build the non-interactive install of ``packages`` (no recommends)."""
    return ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]


def missing_packages(packages: Sequence[str] = PACKAGES) -> list[str]:
    """Return the packages of ``packages`` that dpkg does not list as installed."""
    missing = []
    for package in packages:
        result = run(dpkg_query_argv(package), check=False)
        if not result.stdout.endswith("ok installed"):
            missing.append(package)
    return missing


@contextmanager
def services_held_back(policy: Path = POLICY_RC_D) -> Iterator[None]:
    """Keep apt's maintainer scripts from starting services while installing.

    Without it, installing openssh-server starts sshd on 0.0.0.0:22 and docker.io
    starts dockerd with a bridge and iptables rules: both break the network rule.
    An existing ``policy-rc.d`` is left untouched.
    """
    if policy.exists():
        yield
        return
    policy.write_text(
        "#!/bin/sh\n# written by tools.testinfra during apt-get\nexit 101\n"
    )
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


def install_packages(
    packages: Sequence[str] = PACKAGES, log: Path | None = None
) -> list[str]:
    """Install the missing packages with apt-get; do nothing when all are there.

    ``apt-get update`` runs only when something is missing. Services the packages
    ship are not started (see :func:`services_held_back`).

    Args:
        packages: Debian package names.
        log: File receiving apt-get's output (default: discarded unless it fails).

    Returns:
        The packages that were installed (empty when all were present).

    Raises:
        RuntimeError: apt-get failed, or something is missing and we are not root.
    """
    missing = missing_packages(packages)
    if not missing:
        return []
    if os.geteuid() != 0:
        raise RuntimeError(f"installing {' '.join(missing)} needs root (sudo)")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    with services_held_back():
        for argv in (["apt-get", "update", "-q"], apt_install_argv(missing)):
            result = run(argv, timeout=None, env=env)
            if log is not None:
                with log.open("a") as handle:
                    handle.write(f"$ {shlex.join(argv)}\n{result.stdout}")
    return missing
