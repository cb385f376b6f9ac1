"""``setup``'s checks of what runs the apps: the runtime, then the proxy.

Supervisor: supervisord's programs and its config (then the systemd unit of
:mod:`cicd.pipeline.setup_unit`). Compose: a Docker engine that answers and a
compose. Swarm: a manager that answers, and each listed node. Then haproxy, for
zero-downtime switches.
"""

from __future__ import annotations

import shlex
import sys
from typing import TYPE_CHECKING

from cicd.commands import cmd, files
from cicd.commands import compose as compose_commands
from cicd.commands.prepare import command_path, docker_server_version
from cicd.core.errors import CicdError
from cicd.pipeline.setup_check import SetupRun, last_line
from cicd.pipeline.setup_root import ROOT_FIRST
from cicd.pipeline.setup_unit import check_unit

if TYPE_CHECKING:
    from cicd.host.target import Target
    from cicd.runtime.supervisor import SupervisorRuntime

#: How to get a compose, v2 (the plugin) or v1.
COMPOSE_FIX = "apt-get install docker-compose-v2   # as root (or docker-compose)"


def check_supervisor(
    run: SetupRun, group: list[Target], root_ok: bool, *, unit: bool
) -> None:
    """The supervisor runtime: its programs, its config, then the systemd unit.

    Args:
        run: The run the checks go to.
        group: The supervisor environments that share one root (one supervisord).
        root_ok: Whether the root can be used.
        unit: Whether this root gets the systemd unit (one unit serves one root).
    """
    first = group[0]
    runtime = _supervisor(first)
    try:
        runtime.preflight()
    except CicdError as error:
        if first.runner.remote:
            install = '"$CICD_VENV/bin/python" -m pip install supervisor'
        else:
            install = shlex.join([sys.executable, "-m", "pip", "install"])
            install += " supervisor"
        run.missing("supervisor", str(error), install)
        return
    supervisord = shlex.split(runtime.supervisord)
    resolved = first.runner.output(command_path(supervisord[0])) or supervisord[0]
    run.ok("supervisor", f"supervisord found: {resolved}")
    if not root_ok:
        run.skipped("supervisor config", ROOT_FIRST)
        return
    _check_supervisor_config(run, group, runtime)
    if unit:
        program = shlex.join([resolved, *supervisord[1:]])
        check_unit(run, first, program, runtime.conf)


def _check_supervisor_config(
    run: SetupRun, group: list[Target], runtime: SupervisorRuntime
) -> None:
    """The config of supervisord and each environment's program file."""
    name, envs = "supervisor config", ", ".join(t.env for t in group)
    if run.options.check:
        wanted = [runtime.conf] + [_supervisor(t).program_path for t in group]
        runner = group[0].runner
        absent = [path for path in wanted if not runner.ok(files.exists(path))]
        if absent:
            run.missing_until_run(name, "absent: " + ", ".join(absent))
        else:
            run.ok(name, f"{runtime.conf} ({envs})")
        return
    written = [path for t in group for path in _supervisor(t).write_config()]
    if written:
        run.fixed(name, f"written: {runtime.conf} ({envs})")
    else:
        run.ok(name, f"up to date: {runtime.conf} ({envs})")


def _supervisor(t: Target) -> SupervisorRuntime:
    """``t``'s runtime, which the configuration makes supervisor."""
    from cicd.runtime.supervisor import SupervisorRuntime

    runtime = t.live_runtime()
    assert isinstance(runtime, SupervisorRuntime)
    return runtime


def check_compose(run: SetupRun, t: Target) -> None:
    """A Docker engine that answers and a compose, v2 or v1."""
    from cicd.runtime.compose import ComposeRuntime

    info = t.runner.run(docker_server_version(), check=False)
    if info.ok:
        run.ok("docker", f"the engine answers (server {info.stdout.strip()})")
    else:
        run.missing(
            "docker",
            f"docker info: {last_line(info)}",
            f"apt-get install docker.io && usermod -aG docker {run.options.user_word}"
            "   # as root",
        )
    runtime = t.live_runtime()
    assert isinstance(runtime, ComposeRuntime)
    try:
        program = " ".join(runtime.program)
    except CicdError as error:
        run.missing("compose", str(error), COMPOSE_FIX)
        return
    # A deploy only finds docker-compose on PATH (starting it costs 0.5 s); here
    # it is run, so a broken one is found before a deploy needs it.
    answer = t.runner.run(compose_commands.version(runtime.program), check=False)
    if not answer.ok:
        run.missing("compose", f"{program} version: {last_line(answer)}", COMPOSE_FIX)
        return
    run.ok("compose", f"{program} version answers")


def check_swarm(run: SetupRun, t: Target) -> None:
    """The swarm runtime: a swarm manager answers, and so does each listed node."""
    from cicd.commands import swarm as sw

    runtime = t.live_runtime()
    try:
        runtime.preflight()
    except CicdError as error:
        run.missing(
            f"{t.env}: swarm",
            str(error),
            "docker swarm init --advertise-addr ADDRESS   # on the manager",
        )
        return
    nodes = t.runner.run(sw.nodes(t.settings.runtime.docker_host), check=False)
    count = len([line for line in nodes.stdout.splitlines() if line.strip()])
    run.ok(f"{t.env}: swarm", f"a manager answers; {count} node(s)")
    for node in t.settings.runtime.nodes:
        answer = t.runner.run(sw.swarm_role(node), check=False)
        if answer.ok:
            run.ok(f"{t.env}: node {node}", "its engine answers")
            continue
        run.missing(
            f"{t.env}: node {node}",
            f"docker info: {last_line(answer)}",
            f"fix runtime.nodes, or the SSH access to {node}'s engine",
        )


def check_proxy(run: SetupRun, proxied: list[Target]) -> None:
    """Check haproxy, for zero-downtime switches (needed by ``haproxy``).

    It is looked up where supervisord runs it (``/usr/sbin`` included, which a
    service user's PATH lacks), and the line names each environment's slot ports:
    a VM's port plan needs them.
    """
    t = proxied[0]
    path = t.context.haproxy_path()
    found = t.runner.run(cmd(path, "-v"), check=False) if path else None
    if found is not None and found.ok:
        version = (found.stdout.strip().splitlines() or ["haproxy"])[0]
        slots = "; ".join(
            f"{p.env} {p.settings.port} -> slots {p.settings.proxy.blue_port} "
            f"(blue), {p.settings.proxy.green_port} (green)"
            for p in proxied
        )
        run.ok(
            "haproxy", f"{path}: {version}: blue/green deploys, no downtime ({slots})"
        )
        return
    required = t.settings.proxy.kind == "haproxy"
    run.missing(
        "haproxy",
        f"{t.settings.proxy.haproxy} not found: "
        + (
            "proxy.kind = 'haproxy' needs it"
            if required
            else "deploys restart the app in place (a few seconds down)"
        ),
        "apt-get install haproxy   # as root",
        blocking=required,
    )
