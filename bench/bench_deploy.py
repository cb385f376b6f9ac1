"""``deploy`` and ``rollback``: the deploy engine against the app's own boot time.

deploy
    Wall time of ``python -m invoke deploy.preprod --sha X`` (a fresh process, as a
    user or a workflow runs it), alternating between two commits whose releases are
    already exported (warm source). Compared, in the same rounds, with

    - the app's boot-to-ready time: ``supervisorctl restart`` of the same program →
      first answer (see :meth:`common.Project.boot`); overhead = deploy − boot;
    - bench/baseline_deploy.sh: the necessary steps in POSIX sh (export if missing,
      atomic switch, supervisorctl restart, curl poll every 0.1 s) on its own
      supervisord running the same app with the same interpreter; ratio = deploy /
      shell.

rollback
    Wall time of ``python -m invoke rollback --env preprod --to SHA`` to ready,
    alternating between two kept releases; overhead = rollback − boot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from common import (
    json_durations,
    REPO_ROOT,
    SUPERVISORCTL,
    SUPERVISORD,
    Metric,
    Project,
    clean_env,
    log,
    median,
    run,
    shutdown_supervisord,
    timed,
    free_port,
    ledger_offsets,
)

ROUNDS = 8
BASELINE = Path(__file__).with_name("baseline_deploy.sh")
RPC = "supervisor.rpcinterface:make_main_rpcinterface"


class ShellBaseline:
    """The shell script's own target root and supervisord (nothing shared with cicd)."""

    def __init__(
        self,
        project: Project,
        command: str,
        *,
        app_dir: str = "app",
        environment: str = "",
        path: str = "/",
    ) -> None:
        self.project = project
        self.root = project.dir / "shell"
        self.port = free_port()
        self.path = path
        command = command.format(port=self.port)
        extra = f"environment={environment}\n" if environment else ""
        supervisor = self.root / "supervisor"
        (self.root / "releases").mkdir(parents=True)
        supervisor.mkdir()
        self.conf = supervisor / "supervisord.conf"
        # The same program settings as cicd's embedded runtime (startsecs=0, TERM to
        # the group), started on demand by the script's first restart.
        self.conf.write_text(textwrap.dedent(f"""\
            [unix_http_server]
            file={supervisor}/s.sock
            chmod=0700

            [supervisord]
            logfile={supervisor}/supervisord.log
            pidfile={supervisor}/supervisord.pid
            childlogdir={supervisor}

            [rpcinterface:supervisor]
            supervisor.rpcinterface_factory = {RPC}

            [supervisorctl]
            serverurl=unix://{supervisor}/s.sock

            [program:app]
            command={command}
            directory={self.root}/current/{app_dir}
            autostart=false
            autorestart=true
            startsecs=0
            startretries=0
            stopsignal=TERM
            stopwaitsecs=10
            stopasgroup=true
            killasgroup=true
            redirect_stderr=true
            stdout_logfile={supervisor}/app.log
            """) + extra)
        run([SUPERVISORD, "-c", str(self.conf)])
        deadline = time.monotonic() + 10
        while (
            run_quiet([SUPERVISORCTL, "-c", str(self.conf), "pid"]) != 0
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)

    def deploy(self, sha: str, text: str) -> tuple[float, float]:
        """Run the script; return (wall time, its restart → ready time)."""
        argv = [
            "sh",
            str(BASELINE),
            str(self.root),
            str(self.project.repo),
            sha,
            SUPERVISORCTL,
            str(self.conf),
            "app",
            f"http://127.0.0.1:{self.port}{self.path}",
            text,
        ]
        seconds, result = timed(lambda: run(argv))
        marks = dict(line.split() for line in result.stdout.splitlines() if line)
        return seconds, float(marks["ready"]) - float(marks["restart"])

    def close(self) -> None:
        """Stop the baseline's supervisord."""
        shutdown_supervisord(self.conf)


def run_quiet(argv: list[str]) -> int:
    """Exit status of a command whose output does not matter."""
    return subprocess.run(argv, capture_output=True).returncode


def _standin(label: str) -> tuple[Project, dict[str, str]]:
    project = Project(label)
    project.write_standin_config()
    shas = {"A": project.commit("A"), "B": project.commit("B")}
    return project, shas


def bench_deploy() -> list[Metric]:
    """Deploy overhead and ratio against the shell baseline."""
    project, shas = _standin("deploy")
    shell = None
    try:
        log("deploy: warm-up (first export of A and B, venv, supervisord)")
        for name in ("A", "B"):
            project.invoke("deploy.preprod", "--sha", shas[name])
        # The very interpreter cicd's program runs: the release's venv.
        venv = os.path.realpath(project.root / "preprod" / "current" / ".venv")
        python = os.path.join(venv, "bin", "python")
        shell = ShellBaseline(project, python + " server.py {port}")
        for name in ("A", "B"):
            shell.deploy(shas[name], f"{name} ok")
        # Each round: cicd deploys A (readiness every 0.1 s, as the shell polls),
        # the boot of A is measured, the shell deploys A or B on its own target,
        # then cicd deploys B with the embedded default's 0.5 s readiness interval.
        default_config = project.dir / "cicd-default-interval.toml"
        project.write_standin_config(interval=0.5, path=default_config)
        walls, boots, shells, shell_boots, default_walls = [], [], [], [], []
        steps: list[dict[str, float]] = []
        offsets: list[dict[str, float]] = []
        for index in range(ROUNDS):
            log(f"deploy: round {index + 1}/{ROUNDS}")
            launched = time.time()
            wall, out = timed(
                lambda: run(
                    project.invoke_argv("deploy.preprod", "--sha", shas["A"], "--json"),
                    env=project.env(),
                )
            )
            walls.append(wall)
            steps.append(json_durations(out.stdout))
            offsets.append(_ledger_offsets(project, launched, wall))
            boots.append(project.boot("A ok"))
            name = "AB"[index % 2]
            seconds, restart_ready = shell.deploy(shas[name], f"{name} ok")
            shells.append(seconds)
            shell_boots.append(restart_ready)
            default_walls.append(
                timed(
                    lambda: run(
                        project.invoke_argv("deploy.preprod", "--sha", shas["B"]),
                        env=project.env(default_config),
                    )
                )[0]
            )
        diag = _step_medians(steps)
        timeline = _step_medians(offsets)
        processes, commands = _count_processes(project, shas)
        costs = _costs()
    finally:
        if shell:
            shell.close()
        project.close()
    wall, boot, sh = median(walls), median(boots), median(shells)
    overhead = wall - boot
    n = len(walls)
    where = ", ".join(f"{k} {v:.2f}s" for k, v in diag.items())
    return [
        Metric(
            "deploy",
            "invoke deploy.preprod (wall)",
            wall,
            n,
            samples=walls,
            meaning=f"fresh process, warm source; steps: {where}; "
            f"{commands} commands run through invoke ({processes} processes); "
            "ledger events after launch: "
            + ", ".join(
                f"{k} +{v:.2f}s" for k, v in sorted(timeline.items(), key=_second)
            ),
        ),
        Metric(
            "deploy",
            "app boot-to-ready",
            boot,
            n,
            samples=boots,
            meaning="supervisorctl restart of the same program -> first answer "
            "(polled every 0.02 s)",
        ),
        Metric(
            "deploy",
            "shell baseline (wall)",
            sh,
            n,
            samples=shells,
            meaning="bench/baseline_deploy.sh; its restart->ready median is "
            f"{median(shell_boots):.2f}s",
        ),
        Metric(
            "deploy",
            "overhead = deploy - boot",
            overhead,
            n,
            value=overhead,
            limit=1.0,
            target="<= 1 s",
            meaning="median deploy wall minus median boot-to-ready",
        ),
        Metric(
            "deploy",
            "ratio deploy / shell",
            wall / sh,
            n,
            unit="x",
            value=wall / sh,
            limit=1.3,
            target="<= 1.3",
            meaning="median deploy wall / median shell-baseline wall",
        ),
        Metric(
            "deploy",
            "deploy, default readiness interval",
            median(default_walls),
            len(default_walls),
            samples=default_walls,
            meaning="same rounds, cicd deploying B with health.interval = 0.5 s "
            "(the embedded default) instead of 0.1 s; overhead "
            f"{median(default_walls) - boot:.2f} s (an app that is not up at the "
            "first check waits up to 0.5 s more)",
        ),
        Metric(
            "deploy",
            "runner cost per command",
            costs["invoke"] * 1000,
            COST_ROUNDS,
            unit="ms",
            samples=[s * 1000 for s in costs["invoke_samples"]],
            meaning="invoke Context.run('true'), as cicd's Runner does, vs "
            f"{costs['subprocess'] * 1000:.1f} ms for subprocess.run(['true'])",
        ),
        Metric(
            "deploy",
            "import requests (fresh process)",
            costs["requests"] * 1000,
            COST_ROUNDS // 2,
            unit="ms",
            meaning="python -c 'import requests' minus python -c 'import "
            f"urllib.request' ({costs['urllib'] * 1000:.0f} ms over bare python)",
        ),
    ]


COST_ROUNDS = 20


def _costs() -> dict[str, Any]:
    """What one command costs through invoke, and what importing requests costs."""
    from invoke.context import Context

    context = Context()
    through_invoke, direct = [], []
    for _ in range(COST_ROUNDS):
        through_invoke.append(
            timed(
                lambda: context.run(
                    "true", hide=True, warn=True, in_stream=False, pty=False
                )
            )[0]
        )
        direct.append(timed(lambda: subprocess.run(["true"], capture_output=True))[0])
    env = clean_env()
    bare: list[float] = []
    urllib: list[float] = []
    requests: list[float] = []
    for _ in range(COST_ROUNDS // 2):
        for code, into in (
            ("pass", bare),
            ("import urllib.request", urllib),
            ("import requests", requests),
        ):
            into.append(timed(lambda: run([sys.executable, "-c", code], env=env))[0])
    return {
        "invoke": median(through_invoke),
        "invoke_samples": through_invoke,
        "subprocess": median(direct),
        "requests": median(requests) - median(urllib),
        "urllib": median(urllib) - median(bare),
    }


def _second(item: tuple[str, float]) -> float:
    return item[1]


def _ledger_offsets(project: Project, launched: float, wall: float) -> dict[str, float]:
    """Seconds from the process launch to each ledger event it wrote, and to exit."""
    offsets = ledger_offsets(project.root / "preprod" / "ledger.jsonl", launched)
    offsets["exit"] = wall
    return offsets


def _step_medians(steps: list[dict[str, float]]) -> dict[str, float]:
    names = sorted({k for s in steps for k in s})
    return {k: median([s[k] for s in steps if k in s]) for k in names}


def _count_processes(project: Project, shas: dict[str, str]) -> tuple[int, int]:
    """Processes one warm deploy spawns, and commands it runs (strace -f, untimed).

    Each command of cicd's Runner is one ``bash -c`` of invoke. (-1, -1) without
    strace.
    """
    if not shutil.which("strace"):
        return -1, -1
    current = os.path.basename(os.readlink(project.root / "preprod" / "current"))
    sha = shas["A"] if current == shas["B"] else shas["B"]
    trace = project.dir / "deploy.strace"
    run(
        [
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=execve",
            "-e",
            "signal=none",
            "-o",
            str(trace),
            *project.invoke_argv("deploy.preprod", "--sha", sha),
        ],
        env=project.env(),
    )
    spawned = [
        line
        for line in trace.read_text().splitlines()
        if "execve(" in line and "= 0" in line
    ]
    commands = sum(1 for line in spawned if 'bash", "-c"' in line)
    # The traced invoke itself was not spawned by the deploy.
    return len(spawned) - 1, commands


def bench_rollback() -> list[Metric]:
    """Manual rollback to ready, against the app's boot time."""
    project, shas = _standin("rollback")
    try:
        log("rollback: warm-up (deploy A, then B)")
        for name in ("A", "B"):
            project.invoke("deploy.preprod", "--sha", shas[name])
        walls, boots = [], []
        order = ["A", "B", "A", "B", "A"]
        for index, name in enumerate(order):
            log(f"rollback: round {index + 1}/{len(order)} (to {name})")
            walls.append(
                project.invoke("rollback", "--env", "preprod", "--to", shas[name][:12])
            )
            boots.append(project.boot(f"{name} ok"))
    finally:
        project.close()
    wall, boot = median(walls), median(boots)
    return [
        Metric(
            "rollback",
            "invoke rollback --to (wall)",
            wall,
            len(walls),
            samples=walls,
            meaning="fresh process, switch + restart + readiness",
        ),
        Metric(
            "rollback",
            "app boot-to-ready",
            boot,
            len(boots),
            samples=boots,
            meaning="supervisorctl restart -> first answer",
        ),
        Metric(
            "rollback",
            "overhead = rollback - boot",
            wall - boot,
            len(walls),
            value=wall - boot,
            limit=1.0,
            target="<= 1 s (+ boot)",
            meaning="median rollback wall minus median boot-to-ready",
        ),
    ]


__all__ = ["bench_deploy", "bench_rollback", "REPO_ROOT"]
