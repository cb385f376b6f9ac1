"""What every task shares: building the Target, reporting errors with exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from invoke.exceptions import Exit

from cicd.errors import CicdError
from cicd.redact import redact

if TYPE_CHECKING:
    from cicd.notify import Notifier
    from cicd.target import Target


@contextmanager
def reported() -> Iterator[None]:
    """Turn a :class:`~cicd.errors.CicdError` into a one-line message and exit code."""
    try:
        yield
    except CicdError as error:
        raise Exit(f"error: {redact(str(error))}", code=error.exit_code) from None


def target(c: Any, env: str) -> Target:
    """Build the Target of ``env`` for this task's context (local or SSH)."""
    from cicd import config
    from cicd.runner import Runner
    from cicd.target import Target

    runner = Runner(c)
    if runner.remote:
        from cicd.ssh import harden

        harden(c)
    return Target(runner, config.load(), env)


def targets(c: Any, env: str) -> list[Target]:
    """The Targets of ``env``: one per configured host, or this context's only.

    Under ``fab -H HOST`` (or with no ``hosts`` configured) it is the context's own
    host; under ``invoke`` with ``hosts = [...]`` it is every host, over SSH.
    """
    from cicd import config
    from cicd.runner import Runner
    from cicd.target import Target

    settings = config.load()
    names = settings.env(env).hosts
    if Runner(c).remote or not names:
        return [target(c, env)]
    from cicd.ssh import connect

    ssh_config = settings.env(env).ssh_config
    if ssh_config and not ssh_config.startswith(("/", "~")):
        ssh_config = str(settings.project_dir / ssh_config)
    return [Target(Runner(connect(name, ssh_config)), settings, env) for name in names]


def configured_fleet(c: Any, hosts: list[Target]) -> list[Target] | None:
    """``hosts`` when they come from the configuration (not ``fab -H``), else None."""
    from cicd.runner import Runner

    remote_context = Runner(c).remote
    return hosts if hosts[0].runner.remote and not remote_context else None


def env_names() -> list[str]:
    """Names of the configured environments."""
    from cicd import config

    return sorted(config.load().envs)


def notifier(t: Target) -> Notifier:
    """The notifier of an environment."""
    from cicd.notify import Notifier

    return Notifier(t)


def emit_json(data: Any) -> None:
    """Print machine-readable output on stdout."""
    print(json.dumps(data, indent=2, sort_keys=True), file=sys.stdout, flush=True)
