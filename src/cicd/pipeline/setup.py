"""First-time preparation of a VM, in the manner of ``kamal setup``.

:func:`run_setup` goes through a list of checks and returns one
:class:`~cicd.pipeline.setup_check.SetupCheck` per item, each with its name, status
(``ok``, ``fixed``, ``missing`` or ``skipped``), a detail line and the commands that
fix it by hand. Every change it makes is idempotent and goes through the target's
runner, so ``fab -H HOST setup`` prepares that host. The checks, in order, and where
each lives:

- the root: absolute, outside any git checkout and the runner's workspace (which is
  cleaned between jobs); each environment's directories (``shared`` mode 0700) and
  ``shared/app.env``, the app's own secrets, created empty with mode 0600 and never
  overwritten nor read (:mod:`cicd.pipeline.setup_root`);
- the runtime: supervisord's programs, its config and the systemd unit that keeps it
  up across reboots (:mod:`cicd.pipeline.setup_unit`: written where the unit
  directory is writable, verified with ``systemd-analyze``), or a Docker engine that
  answers and a compose, or a swarm; then haproxy
  (:mod:`cicd.pipeline.setup_runtime`);
- each fleet host's key in known_hosts (never added automatically), the long-lived
  token of the detached CI watcher, and the record of this user
  (:mod:`cicd.pipeline.setup_access`).

The check model and the report are :mod:`cicd.pipeline.setup_check`. The recovery
after a reboot (``start``) is :mod:`cicd.pipeline.start`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from cicd.pipeline.setup_access import Fleet, check_host, check_record, check_token
from cicd.pipeline.setup_check import Options, SetupCheck, SetupRun
from cicd.pipeline.setup_root import check_env, check_root
from cicd.pipeline.setup_runtime import (
    check_compose,
    check_proxy,
    check_supervisor,
    check_swarm,
)

if TYPE_CHECKING:
    from cicd.host.target import Target


def run_setup(
    targets: Sequence[Target],
    fleets: Sequence[Fleet] = (),
    options: Options | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
) -> list[SetupCheck]:
    """Check (and unless ``options.check``, fix) everything a VM needs.

    Args:
        targets: The environments served from the runner's host (one per env).
        fleets: The environments deployed over SSH to configured hosts: only their
            host keys are checked here (``fab -H HOST setup`` prepares each host).
        options: What was asked.
        environ: The environment variables to look at (default: this process's).
        say: Prints one line per check as it completes.

    Returns:
        Every check, in order.
    """
    options = options or Options()
    environ = os.environ if environ is None else environ
    run = SetupRun(options, say)
    by_root: dict[str, list[Target]] = {}
    for t in targets:
        by_root.setdefault(t.paths.root, []).append(t)
    supervised = [
        root
        for root, group in by_root.items()
        if any(t.settings.runtime.kind == "supervisor" for t in group)
    ]
    for root, group in by_root.items():
        unit = root == supervised[0] if supervised else False
        _check_root_group(run, group, environ, unit=unit)
    if len(supervised) > 1:
        run.missing(
            "systemd unit",
            f"one unit serves one root; {len(supervised)} roots use supervisor "
            f"({', '.join(supervised)}): only {supervised[0]} gets it",
            "give every environment the same root",
            blocking=False,
        )
    for fleet in fleets:
        for host in fleet.settings.hosts:
            check_host(run, fleet, host)
    settings = [t.settings for t in targets] + [f.settings for f in fleets]
    if any(s.ci.provider == "github" for s in settings):
        check_token(run, environ)
    if options.record and targets:
        check_record(run, targets[0], options.record)
    return run.checks


def _check_root_group(
    run: SetupRun, group: list[Target], environ: Mapping[str, str], *, unit: bool
) -> None:
    """The environments that share one root: the root, their files, their runtime.

    Args:
        run: The run the checks go to.
        group: The environments under this root.
        environ: The environment variables to look at.
        unit: Whether this root's supervisord gets the systemd unit.
    """
    good = check_root(run, group[0], environ)
    for t in group:
        check_env(run, t, good)
    supervised = [t for t in group if t.settings.runtime.kind == "supervisor"]
    if supervised:
        check_supervisor(run, supervised, good, unit=unit)
    composed = [t for t in group if t.settings.runtime.kind == "compose"]
    if composed:
        check_compose(run, composed[0])
    for t in group:
        if t.settings.runtime.kind == "swarm":
            check_swarm(run, t)
    proxied = [t for t in group if t.settings.proxy.kind != "none"]
    if proxied:
        check_proxy(run, proxied)
