"""Provision this machine for the real-component tests: ``up`` and ``down``.

``up`` installs the Debian packages (:mod:`tools.testinfra.packages`), starts dockerd
unless an engine answers and imports the busybox image
(:mod:`tools.testinfra.docker`), one line per step; ``down`` stops the dockerd it
started. sshd is not started here: the fixtures start one per simulated host.
Behind ``invoke infra.up``/``infra.down`` (with ``CICD_DEV_TASKS=1``) and ``python3 -m
tools.testinfra up|down`` (CI's ``.ci/run``). Standard library only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tools.testinfra.docker import (
    BUSYBOX_TAG,
    DEFAULT_STATE_DIR,
    DOCKER_SOCKET,
    DOCKERD_NETWORK_FLAGS,
    build_busybox_image,
    check_image_argv,
    start_dockerd,
    stop_dockerd,
)
from tools.testinfra.packages import PACKAGES, install_packages
from tools.testinfra.process import run


def up(
    state_dir: Path = DEFAULT_STATE_DIR,
    *,
    extra_packages: Sequence[str] = (),
    tag: str = BUSYBOX_TAG,
    say: Callable[[str], None] = print,
) -> bool:
    """Provision this machine: packages, a Docker engine, the busybox image.

    Each step is idempotent and prints one line.

    Args:
        state_dir: dockerd's state, logs and pidfile.
        extra_packages: More Debian packages (CI adds chromium).
        tag: The busybox image's name.
        say: Where the step lines go.

    Returns:
        Whether dockerd was started by this call.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    packages = [*PACKAGES, *extra_packages]
    started = time.monotonic()
    installed = install_packages(packages, log=state_dir / "apt.log")
    took = f"{time.monotonic() - started:.1f} s"
    if installed:
        say(f"packages: installed {' '.join(installed)} ({took})")
    else:
        say(f"packages: all present: {' '.join(packages)} ({took})")
    started = time.monotonic()
    launched = start_dockerd(state_dir)
    took = f"{time.monotonic() - started:.1f} s"
    if launched:
        flags = " ".join(DOCKERD_NETWORK_FLAGS)
        log = state_dir / "dockerd.log"
        say(f"dockerd: started on {DOCKER_SOCKET} (vfs, {flags}), log {log} ({took})")
    else:
        say(f"dockerd: an engine already answers `docker info`; left as is ({took})")
    started = time.monotonic()
    imported = build_busybox_image(tag)
    answer = run(check_image_argv(tag)).stdout.strip()
    took = f"{time.monotonic() - started:.1f} s"
    verb = "imported from busybox-static" if imported else "present"
    say(f"image {tag}: {verb}; `busybox echo ok` in it says {answer!r} ({took})")
    return launched


def down(
    state_dir: Path = DEFAULT_STATE_DIR, say: Callable[[str], None] = print
) -> bool:
    """Stop the dockerd that :func:`up` started (packages and image stay).

    Returns:
        Whether a dockerd was stopped.
    """
    stopped = stop_dockerd(state_dir)
    if stopped:
        say(f"dockerd: stopped (state kept in {state_dir})")
    else:
        say("dockerd: none started by infra.up is running; nothing to stop")
    return stopped
