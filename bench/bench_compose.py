"""Rollback over SSH with the compose runtime on the local Docker engine (issue 6).

compose-rollback
    Wall time of ``fab -S SSH_CONFIG -H h1 rollback --env preprod --to SHA`` (a
    fresh process each time) until it returns, i.e. until the release rolled back to
    is ready, alternating between two kept releases. h1 is one OpenSSH sshd on
    127.0.0.2 (so every command really goes over SSH); the runtime is compose
    (``docker-compose``) on this machine's engine, the release's compose.yml running
    busybox httpd (``cicd-busybox:latest``, host networking, 127.0.0.1), ready as
    soon as it is started. Target: <= 3 s.

    Baselines of the same run, on the same release and container:
    - recreate-to-ready: the very ``docker-compose up --detach --force-recreate``
      cicd runs, run here directly, then the page polled every 0.02 s;
    - one SSH command: ``ssh -F SSH_CONFIG h1 true`` (OpenSSH, a new connection).
    Where the time goes: each ledger event's offset from the launch and the
    rollback event's step durations; plus one untimed traced run that records every
    command cicd's Runner sends over SSH, with its duration.

Skipped (with the reason) when there is no Docker engine or no sshd. Every container
of the benchmark's compose project is removed at the end.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

from bench_fleet import (
    BenchSkipped,
    Traced,
    _medians,
    host_root,
    host_tables,
    keep_trace,
    ledger_offsets,
    require_sshd,
    summarise_commands,
    ROUND_TRIPS,
    traced_commands,
    tracer_script,
)
from common import (
    REPO_ROOT,
    BenchError,
    Metric,
    Project,
    fetch,
    git,
    log,
    median,
    run,
    timed,
    wait_for_text,
)

ROUNDS = 6
LIMIT = 2.0

COMPOSE = """\
services:
  app:
    image: {image}
    network_mode: host
    init: true
    volumes:
      - ${{CICD_RELEASE}}/app:/www:ro
    command: ["httpd", "-f", "-p", "127.0.0.1:${{CICD_PORT}}", "-h", "/www"]
"""


def require_docker() -> Any:
    """tools.testinfra.docker with a working engine and sshd, or BenchSkipped."""
    require_sshd()
    from tools.testinfra import docker

    if not docker.docker_ok():
        raise BenchSkipped(docker.NEEDS_DOCKER)
    return docker


def commit_release(project: Project, version: str, image: str) -> str:
    """Commit a release: a static page and the compose file that serves it."""
    (project.repo / "app").mkdir(exist_ok=True)
    (project.repo / "app" / "index.html").write_text(f"{version} ok\n")
    (project.repo / "compose.yml").write_text(COMPOSE.format(image=image))
    git(project.repo, "add", "-A")
    git(project.repo, "commit", "-q", "-m", version)
    return git(project.repo, "rev-parse", "HEAD")


def write_config(project: Project, host: Any, name: str) -> None:
    """preprod on h1 with the compose runtime (the project named ``name``)."""
    project.config_path.write_text(textwrap.dedent(f"""\
            [tool.cicd]
            root = "{project.root}"
            source = "{project.repo}"
            app_dir = "app"
            keep = 5

            # The deploy's mechanics are measured, not the page smoke.
            [tool.cicd.smoke]
            on_deploy = false

            [tool.cicd.health]
            deadline = 60
            interval = 0.1
            checks = [{{ path = "/", body_contains = "ok" }}]

            [tool.cicd.notify]
            discord = false

            # In place: the restart-to-ready figure is the point here.
            [tool.cicd.proxy]
            kind = "none"

            [tool.cicd.env.preprod]
            port = {project.ports["preprod"]}

            [tool.cicd.env.preprod.runtime]
            kind = "compose"
            compose_file = "compose.yml"
            service = "app"
            project = "{name}"

            [tool.cicd.env.prod]
            port = {project.ports["prod"]}
            """) + host_tables(project, [host], url=False))


def remove_containers(name: str) -> None:
    """``docker rm -f`` every container of compose project ``name``."""
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={name}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


def fab_argv(
    ssh_config: Path, *args: str, python: list[str] | None = None
) -> list[str]:
    """``python -m fabric --search-root REPO -S SSH_CONFIG -H h1 ARGS``."""
    return [
        *(python or [sys.executable, "-m", "fabric"]),
        "--search-root",
        str(REPO_ROOT),
        "-S",
        str(ssh_config),
        "-H",
        "h1",
        *args,
    ]


def bench_compose_rollback() -> list[Metric]:
    """``fab -H h1 rollback --to`` with compose, against recreate-to-ready."""
    docker = require_docker()
    sshd = require_sshd()
    image = docker.BUSYBOX_TAG
    docker.build_busybox_image(image)
    name = f"cicdbench{uuid.uuid4().hex[:8]}"
    project = Project("compose")
    fleet = None
    try:
        shas = {v: commit_release(project, v, image) for v in ("A", "B")}
        fleet = sshd.start_fleet(1, project.dir / "ssh")
        host = fleet.hosts[0]
        write_config(project, host, name)
        env = project.env()
        url = project.url()
        log("compose-rollback: warm-up (fab deploy.preprod A, then B, over SSH)")
        for v in ("A", "B"):
            run(fab_argv(fleet.ssh_config, "deploy.preprod", "--sha", shas[v]), env=env)
            wait_for_text(url, f"{v} ok", deadline=10)
        preprod = host_root(project, host.name) / "preprod"
        ledger = preprod / "ledger.jsonl"
        walls, recreates, offsets, steps, busy = [], [], [], [], []
        order = ["A", "B"] * (ROUNDS // 2)
        for index, v in enumerate(order):
            argv = fab_argv(
                fleet.ssh_config, "rollback", "--env", "preprod", "--to", shas[v][:12]
            )
            traced = Traced(argv, env)
            walls.append(traced.wall)
            busy.append(traced.busy)
            if f"{v} ok" not in (fetch(url, timeout=2.0) or ""):
                raise BenchError(f"after the rollback to {v}, {url} does not serve it")
            marks = ledger_offsets(ledger, traced.launched)
            marks["exit"] = traced.wall
            offsets.append(marks)
            steps.append(rollback_durations(ledger))
            recreates.append(recreate_to_ready(preprod, shas[v], name, project, v))
            log(
                f"compose-rollback: round {index + 1}/{len(order)} (to {v}): "
                f"{traced.wall:.2f}s; recreate-to-ready {recreates[-1]:.2f}s"
            )
        ssh_rtts = [
            timed(lambda: run(["ssh", "-F", str(fleet.ssh_config), "h1", "true"]))[0]
            for _ in range(5)
        ]
        per_command, nodelay = command_cost(fleet)
        commands = trace_commands(project, fleet.ssh_config, env, shas)
    finally:
        remove_containers(name)
        if fleet is not None:
            fleet.stop()
        project.close()
    wall, recreate = median(walls), median(recreates)
    timeline = _medians(offsets)
    where = _medians(steps)
    return [
        Metric(
            "compose-rollback",
            "fab -H h1 rollback --to (wall)",
            wall,
            len(walls),
            value=wall,
            limit=LIMIT,
            target=f"<= {LIMIT:g} s",
            samples=walls,
            meaning=f"fresh process, over SSH, to ready; CPU busy {median(busy):.2f} s "
            "machine-wide; steps (ledger): "
            + ", ".join(f"{k} {v:.2f}s" for k, v in where.items())
            + "; ledger events after launch: "
            + ", ".join(f"{k} +{v:.2f}s" for k, v in timeline.items()),
        ),
        Metric(
            "compose-rollback",
            "docker-compose recreate-to-ready",
            recreate,
            len(recreates),
            samples=recreates,
            meaning="the same `docker-compose up -d --force-recreate` run directly, "
            "then the page polled every 0.02 s",
        ),
        Metric(
            "compose-rollback",
            "overhead = rollback - recreate",
            wall - recreate,
            len(walls),
            meaning="median rollback wall minus median recreate-to-ready",
        ),
        Metric(
            "compose-rollback",
            "one SSH command (ssh h1 true)",
            median(ssh_rtts),
            len(ssh_rtts),
            samples=ssh_rtts,
            meaning="OpenSSH client, new connection each time",
        ),
        Metric(
            "compose-rollback",
            "one command on an open connection",
            median(per_command) * 1000,
            len(per_command),
            unit="ms",
            samples=[s * 1000 for s in per_command],
            meaning="`true` through a Fabric Connection to h1 (paramiko, as cicd's "
            f"Runner); {median(nodelay) * 1000:.0f} ms with TCP_NODELAY on its socket",
        ),
        Metric(
            "compose-rollback",
            "SSH round trips per rollback",
            float(commands["count"]),
            1,
            unit="",
            value=float(commands["count"]),
            limit=ROUND_TRIPS,
            target=f"<= {ROUND_TRIPS}",
            meaning="one traced (untimed) run: " + commands["summary"],
        ),
    ]


def rollback_durations(ledger: Path) -> dict[str, float]:
    """The step durations of the ledger's last rollback event."""
    for line in reversed(ledger.read_text().splitlines()):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "rollback":
            return dict(event.get("durations") or {})
    return {}


def recreate_to_ready(
    preprod: Path, sha: str, name: str, project: Project, version: str
) -> float:
    """The compose command cicd runs, run directly; seconds until the page answers."""
    release = preprod / "releases" / sha
    env = project.env(
        CICD_RELEASE=str(release),
        CICD_ENV="preprod",
        CICD_PORT=str(project.ports["preprod"]),
        CICD_SHARED=str(preprod / "shared"),
    )
    argv = [
        "docker-compose",
        "-f",
        str(release / "compose.yml"),
        "-p",
        name,
        "up",
        "--detach",
        "--force-recreate",
        "--no-deps",
        "--remove-orphans",
        "app",
    ]
    start = time.monotonic()
    run(argv, env=env)
    return wait_for_text(project.url(), f"{version} ok", deadline=30) - start


def command_cost(fleet: Any, rounds: int = 10) -> tuple[list[float], list[float]]:
    """Seconds per ``true`` on one open Fabric connection: as is, and with
    TCP_NODELAY (Nagle off) on the client's socket."""
    connection = fleet.connection("h1")
    try:
        connection.run("true", hide=True)  # connect, authenticate
        plain = [
            timed(lambda: connection.run("true", hide=True))[0] for _ in range(rounds)
        ]
        transport = connection.client.get_transport()
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        nodelay = [
            timed(lambda: connection.run("true", hide=True))[0] for _ in range(rounds)
        ]
    finally:
        connection.close()
    return plain, nodelay


def trace_commands(
    project: Project, ssh_config: Path, env: dict[str, str], shas: dict[str, str]
) -> dict[str, Any]:
    """One untimed rollback with every Runner command recorded (see TRACER)."""
    current = (host_root(project, "h1") / "preprod" / "current").readlink().name
    to = shas["A"] if current == shas["B"] else shas["B"]
    argv = fab_argv(
        ssh_config,
        "rollback",
        "--env",
        "preprod",
        "--to",
        to[:12],
        python=[sys.executable, str(tracer_script(project)), "fabric"],
    )
    wall, rows = traced_commands(argv, env, project.dir / "commands.jsonl")
    keep_trace(rows, "compose-rollback-commands.jsonl")
    return {"count": len(rows), "summary": summarise_commands(wall, rows)}


__all__ = ["bench_compose_rollback"]
