"""Parallel deploy to a fleet of simulated SSH hosts (issue 6).

fleet
    Wall time of ``python -m invoke deploy.preprod --sha X`` (a fresh process each
    time) with ``CICD_CONFIG`` listing N hosts (``hosts``, ``ssh_config``,
    ``batch = 0`` under ``[tool.cicd.env.preprod]``), for N = 1, 2, 4, 8. Each host
    is an OpenSSH sshd on its own loopback address (h1 on 127.0.0.2, h2 on
    127.0.0.3...), with its own root and supervisord (``[tool.cicd.host.NAME]``), and
    its stand-in app bound on that address, as in tests/integration/test_ssh.py.
    Each N has its own hosts (1 + 2 + 4 + 8 = 15), so the sizes take turns within
    each round: the machine is shared, and a burst of load then falls on every N
    alike. Before any measure every host exports both commits (A then B, untimed);
    then per N one warm-up deploy of A, and ROUNDS rounds alternating B, A, B...
    (each deploy switches and restarts every host of its group). Figures: T(N) =
    median wall per N, and T(8)/T(1), target <= 1.5. The simulated hosts share this
    machine's CPUs: each T(N) says how many CPU seconds the machine was busy during
    it, which bounds the wall from below (busy / CPUs).

    One more untimed deploy per N with the runner traced counts the SSH round
    trips per host (target <= 5) and the commands they carry; the CPU per extra
    host is split into the controller's and the hosts' side, and the floor of
    T(8)/T(1) on this machine's CPUs is derived from it.

    Where the time goes is measured, not guessed: every stderr line of the deploy
    is time-stamped as it arrives, and each host's ledger events (their ``time`` is
    taken when the event happens, deferred or not) are read as offsets from the
    launch; the ``--json`` step durations (of the first host) are kept too.

Skipped (with the reason) when sshd is not installed.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from common import (
    REPO_ROOT,
    ledger_offsets,
    SERVER,
    SUPERVISORCTL,
    SUPERVISORD,
    BenchError,
    Metric,
    Project,
    git,
    log,
    median,
    run,
    shutdown_supervisord,
)

RESULTS_DIR = REPO_ROOT / "build" / "bench"

SIZES = (1, 2, 4, 8)
CPUS = os.cpu_count() or 1
ROUNDS = 5
LIMIT = 1.5
#: The issue's target: round trips over SSH per host per deploy (and per rollback).
ROUND_TRIPS = 5


class BenchSkipped(Exception):
    """A benchmark cannot run here (a component is missing); the message says why."""


def commit(project: Project, version: str) -> str:
    """Commit a version of the address-bound stand-in app (answers ``<v> ok``)."""
    app = project.repo / "app"
    app.mkdir(exist_ok=True)
    (app / "server.py").write_text(SERVER)
    (app / "version.txt").write_text(f"{version} ok\n")
    git(project.repo, "add", "-A")
    git(project.repo, "commit", "-q", "-m", version)
    return git(project.repo, "rev-parse", "HEAD")


def require_sshd() -> Any:
    """tools.testinfra.sshd, or BenchSkipped when sshd is not installed."""
    from tools.testinfra import sshd

    if not sshd.SSHD.exists():
        raise BenchSkipped(sshd.NEEDS_SSHD)
    return sshd


def host_root(project: Project, name: str) -> Path:
    """A simulated host's own target root (as a real host has its own disk)."""
    return project.dir / "hosts" / name


def host_tables(project: Project, hosts: list[Any], *, url: bool = True) -> str:
    """``[tool.cicd.host.NAME]`` tables: root, python, url, supervisord paths."""
    text = ""
    for host in hosts:
        text += f"""
            [tool.cicd.host.{host.name}]
            root = "{host_root(project, host.name)}"
            python = "{sys.executable}"
            """
        if url:
            text += f'url = "http://{host.address}:{{port}}"\n'
        text += f"""
            [tool.cicd.host.{host.name}.runtime]
            supervisord = "{SUPERVISORD}"
            supervisorctl = "{SUPERVISORCTL}"
            """
    return textwrap.dedent(text)


def write_fleet_config(
    project: Project, fleet: Any, hosts: list[Any], path: Path
) -> None:
    """A configuration deploying preprod to ``hosts`` at once."""
    names = [h.name for h in hosts]
    text = textwrap.dedent(f"""\
        [tool.cicd]
        root = "{project.root}"
        source = "{project.repo}"
        app_dir = "app"
        keep = 5

        [tool.cicd.runtime]
        command = "{{python}} server.py {{port}} {{address}}"

        [tool.cicd.health]
        deadline = 60
        interval = 0.1
        checks = [{{ path = "/", body_contains = "ok" }}]

        [tool.cicd.notify]
        discord = false

        # In place: the simulated hosts share this machine's loopback, where
        # every host's blue/green slots would ask for the same two ports.
        [tool.cicd.proxy]
        kind = "none"

        [tool.cicd.env.preprod]
        port = {project.ports["preprod"]}
        hosts = {json.dumps(names)}
        ssh_config = "{fleet.ssh_config}"
        batch = 0

        [tool.cicd.env.prod]
        port = {project.ports["prod"]}
        """)
    path.write_text(text + host_tables(project, hosts))


#: Runs ``python TRACER fabric|invoke ARGS`` as ``python -m fabric|invoke ARGS``,
#: with cicd's Runner.execute wrapped so that each round trip's host, start
#: (seconds from $BENCH_LAUNCHED), duration and commands (the first characters of
#: each: a script sends several) go to $BENCH_TRACE (JSON lines). Only for untimed
#: diagnostic runs: the measured runs are plain processes.
TRACER = """\
import json, os, sys, threading, time
LAUNCHED = float(os.environ["BENCH_LAUNCHED"])
import cicd.transport.runner as runner
original = runner.Runner.execute
lock = threading.Lock()
out = open(os.environ["BENCH_TRACE"], "a")
def traced(self, line, *, shown=()):
    start = time.monotonic()
    at = time.time() - LAUNCHED
    try:
        return original(self, line, shown=shown)
    finally:
        commands = [c[:300] for c in (shown or [line])]
        row = {"at": at, "seconds": time.monotonic() - start, "host": self.host,
               "command": commands[0], "commands": commands}
        with lock:
            out.write(json.dumps(row) + "\\n")
            out.flush()
runner.Runner.execute = traced
module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
if module == "fabric":
    from fabric.main import program
else:
    from invoke.main import program
program.run()
"""


def tracer_script(project: Project) -> Path:
    """Write TRACER into the project; return its path."""
    path = project.dir / "tracer.py"
    path.write_text(TRACER)
    return path


def traced_commands(
    argv: list[str], env: dict[str, str], trace: Path
) -> tuple[float, list[dict[str, Any]]]:
    """Run ``argv`` (a TRACER command line); return its wall and its commands."""
    trace.unlink(missing_ok=True)
    launched = time.time()
    start = time.monotonic()
    run(argv, env={**env, "BENCH_TRACE": str(trace), "BENCH_LAUNCHED": str(launched)})
    wall = time.monotonic() - start
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    return wall, sorted(rows, key=lambda r: r["at"])


def keep_trace(rows: list[dict[str, Any]], name: str) -> None:
    """Keep a command trace beside results.json, for a closer look."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def summarise_commands(wall: float, rows: list[dict[str, Any]]) -> str:
    """One line: round trips and commands, when the first left, the slowest ones."""
    if not rows:
        return f"wall {wall:.2f}s; no command recorded"
    hosts = sorted({r["host"] for r in rows})
    per_host = round_trips_per_host(rows)
    most = max(sum(1 for r in rows if r["host"] == h) for h in hosts)
    commands = sum(len(r.get("commands") or [r]) for r in rows) / len(hosts)
    busy = sum(r["seconds"] for r in rows) / len(hosts)
    slowest = sorted(rows, key=lambda r: -r["seconds"])[:3]
    text = (
        f"wall {wall:.2f}s; first command sent at +{rows[0]['at']:.2f}s; "
        f"{per_host:g} round trips per host (median; most {most}), "
        f"{commands:g} commands per host, "
        f"{busy:.2f}s of round trips per host; "
    )
    if len(hosts) > 1:
        firsts = [min(r["at"] for r in rows if r["host"] == h) for h in hosts]
        lasts = [
            max(r["at"] + r["seconds"] for r in rows if r["host"] == h) for h in hosts
        ]
        text += (
            f"first command per host from +{min(firsts):.2f}s to "
            f"+{max(firsts):.2f}s, last one ends +{min(lasts):.2f}s to "
            f"+{max(lasts):.2f}s; "
        )
    return (
        text
        + "slowest: "
        + "; ".join(f"{r['seconds']:.2f}s `{_shown(r)}`" for r in slowest)
    )


def round_trips_per_host(rows: list[dict[str, Any]]) -> float:
    """The median host's round trips (shell lines sent) in a trace.

    The median: under load one host may need one readiness probe more.
    """
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["host"]] = counts.get(row["host"], 0) + 1
    return float(median([float(n) for n in counts.values()])) if counts else 0.0


def _shown(row: dict[str, Any]) -> str:
    """A round trip's commands by their first words (``a; b`` for a script)."""
    return "; ".join(_words(c) for c in row.get("commands") or [row["command"]])


def _words(command: str) -> str:
    """A command's first words, after any ``env NAME=VALUE...`` prefix."""
    words = command.split()
    if words[:1] == ["env"]:
        words = words[1:]
        while words and "=" in words[0] and not words[0].startswith("-"):
            words.pop(0)
    return " ".join(words[:4])


def busy_cpu_seconds() -> float:
    """CPU seconds this machine has spent busy since boot (all CPUs, /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's reaped children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Traced:
    """A finished run: wall time, stdout, each stderr line's arrival offset, and
    CPU seconds: the whole machine's busy time during the run (``busy``: the
    simulated hosts share this machine's CPUs, and so does any other load) and the
    controller process's own (``controller``)."""

    def __init__(self, argv: list[str], env: dict[str, str], timeout: float = 300):
        busy, controller = busy_cpu_seconds(), children_cpu_seconds()
        self.launched = time.time()
        start = time.monotonic()
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[tuple[float, str]] = []
        out: list[str] = []

        def drain_stdout() -> None:
            assert process.stdout is not None
            out.append(process.stdout.read())

        reader = threading.Thread(target=drain_stdout, daemon=True)
        reader.start()
        assert process.stderr is not None
        for line in process.stderr:
            self.lines.append((time.monotonic() - start, line.rstrip("\n")))
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise BenchError(f"{' '.join(argv)} timed out") from None
        self.wall = time.monotonic() - start
        self.busy = busy_cpu_seconds() - busy
        self.controller = children_cpu_seconds() - controller
        reader.join(10)
        self.stdout = "".join(out)
        if process.returncode != 0:
            tail = "\n".join(line for _, line in self.lines[-30:])
            raise BenchError(
                f"{' '.join(argv)} exited {process.returncode}\n--- stderr\n{tail}"
            )

    def durations(self) -> dict[str, float]:
        """The ``durations`` of the ``--json`` result (the JSON ends stdout)."""
        start = self.stdout.find("{")
        try:
            return dict(json.loads(self.stdout[start:]).get("durations", {}))
        except ValueError:
            return {}


#: Ledger events of a deploy, in order.
EVENTS = ("started", "export", "switch", "restart", "health", "deployed")


def _phases(run: Traced, roots: list[Path]) -> dict[str, float]:
    """Offsets from launch: first stderr line, each ledger event (first and last
    host), and exit."""
    per_host = [
        ledger_offsets(r / "preprod" / "ledger.jsonl", run.launched) for r in roots
    ]
    phases: dict[str, float] = {}
    if run.lines:
        phases["first stderr line"] = run.lines[0][0]
    for name in EVENTS:
        seen = [h[name] for h in per_host if name in h]
        if not seen:
            continue
        if len(roots) == 1:
            phases[name] = seen[0]
        else:
            phases[f"{name} (first host)"] = min(seen)
            phases[f"{name} (last host)"] = max(seen)
    phases["exit"] = run.wall
    return phases


def _medians(samples: list[dict[str, float]]) -> dict[str, float]:
    keys: list[str] = []
    for sample in samples:
        keys += [k for k in sample if k not in keys]
    return {k: median([s[k] for s in samples if k in s]) for k in keys}


def _fmt(phases: dict[str, float]) -> str:
    return ", ".join(f"{k} +{v:.2f}s" for k, v in phases.items())


def shutdown_hosts(project: Project, hosts: list[Any]) -> None:
    """Shut down the supervisord cicd started under each host's root."""
    for host in hosts:
        conf = host_root(project, host.name) / "supervisor" / "supervisord.conf"
        if conf.exists():
            shutdown_supervisord(conf)


def bench_fleet() -> list[Metric]:
    """T(N) for N = 1, 2, 4, 8 hosts deployed at once, and T(8)/T(1)."""
    sshd = require_sshd()
    project = Project("fleet")
    fleet = None
    walls: dict[int, list[float]] = {n: [] for n in SIZES}
    timelines: dict[int, list[dict[str, float]]] = {n: [] for n in SIZES}
    runs: dict[int, list[Traced]] = {n: [] for n in SIZES}
    traces: dict[int, tuple[int, str]] = {}
    try:
        shas = {"A": commit(project, "A"), "B": commit(project, "B")}
        total = sum(SIZES)
        log(f"fleet: starting {total} sshd hosts on 127.0.0.2-{1 + total}")
        fleet = sshd.start_fleet(total, project.dir / "ssh")
        # Disjoint groups (h1 | h2-h3 | h4-h7 | h8-h15), so the sizes can take
        # turns within each round and a burst of load on this shared machine
        # falls on every N alike, not on one N's block of runs.
        groups: dict[int, list[Any]] = {}
        configs: dict[int, Path] = {}
        first = 0
        for count in SIZES:
            groups[count] = fleet.hosts[first : first + count]
            first += count
            configs[count] = project.dir / f"cicd-{count}.toml"
            write_fleet_config(project, fleet, groups[count], configs[count])
        everyone = project.dir / "cicd-all.toml"
        write_fleet_config(project, fleet, fleet.hosts, everyone)

        def deploy(config: Path, name: str) -> Traced:
            argv = project.invoke_argv("deploy.preprod", "--sha", shas[name], "--json")
            return Traced(argv, project.env(config))

        log("fleet: priming every host (export A and B, venvs, supervisords; untimed)")
        for name in ("A", "B"):
            deploy(everyone, name)
        for count in SIZES:
            log(f"fleet: N={count}: warm-up deploy of A")
            deploy(configs[count], "A")
        for index in range(ROUNDS):
            name = "BA"[index % 2]
            turn = index % len(SIZES)
            for count in SIZES[turn:] + SIZES[:turn]:
                run = deploy(configs[count], name)
                roots = [host_root(project, h.name) for h in groups[count]]
                runs[count].append(run)
                walls[count].append(run.wall)
                timelines[count].append(_phases(run, roots))
                log(
                    f"fleet: round {index + 1}/{ROUNDS} ({name}), N={count}: "
                    f"{run.wall:.2f}s, CPU busy {run.busy:.1f}s"
                )
                for root in roots:  # every host really switched
                    current = (root / "preprod" / "current").readlink().name
                    if current != shas[name]:
                        raise BenchError(f"{root.name} runs {current}, not {name}")
        for count in (min(SIZES), max(SIZES)):
            log(f"fleet: N={count}: one traced deploy (untimed)")
            name = "AB"[(ROUNDS - 1) % 2]  # not the one running now
            argv = [
                sys.executable,
                str(tracer_script(project)),
                "invoke",
                *project.invoke_argv("deploy.preprod", "--sha", shas[name])[3:],
            ]
            wall, rows = traced_commands(
                argv, project.env(configs[count]), project.dir / "trace.jsonl"
            )
            keep_trace(rows, f"fleet-{count}-commands.jsonl")
            traces[count] = (round_trips_per_host(rows), summarise_commands(wall, rows))

    finally:
        if fleet is not None:
            shutdown_hosts(project, fleet.hosts)
            fleet.stop()
        project.close()
    phases = {n: _medians(timelines[n]) for n in SIZES}
    steps = {n: _medians([r.durations() for r in runs[n]]) for n in SIZES}
    cpu = {
        n: (median([r.busy for r in runs[n]]), median([r.controller for r in runs[n]]))
        for n in SIZES
    }

    metrics = []
    for count in SIZES:
        where = ", ".join(f"{k} {v:.2f}s" for k, v in steps[count].items())
        metrics.append(
            Metric(
                "fleet",
                f"T({count}) invoke deploy.preprod, {count} host(s)",
                median(walls[count]),
                len(walls[count]),
                samples=walls[count],
                meaning=f"fresh process; CPU busy {cpu[count][0]:.2f} s machine-wide "
                f"({CPUS} CPUs: at least {cpu[count][0] / CPUS:.2f} s of "
                f"wall), {cpu[count][1]:.2f} s of it in the controller; "
                f"its first host's steps: {where}; after launch: "
                + _fmt(phases[count]),
            )
        )
    for count, (trips, summary) in traces.items():
        metrics.append(
            Metric(
                "fleet",
                f"SSH round trips per host, {count} host(s)",
                trips,
                1,
                unit="",
                value=trips,
                limit=ROUND_TRIPS,
                target=f"<= {ROUND_TRIPS}",
                meaning=f"one traced (untimed) deploy: {summary}; "
                f"build/bench/fleet-{count}-commands.jsonl",
            )
        )
    few, many = min(SIZES), max(SIZES)
    one = median(walls[few])
    ratio = median(walls[many]) / one
    # What each extra host costs in CPU, on the controller and on the hosts
    # (simulated here: they share this machine's CPUs with the controller).
    extra = many - few
    controller = (cpu[many][1] - cpu[few][1]) / extra
    hosts_side = (cpu[many][0] - cpu[few][0]) / extra - controller
    floor = (one + extra * (controller + hosts_side) / CPUS) / one
    metrics += [
        Metric(
            "fleet",
            "controller CPU per extra host",
            controller * 1000,
            len(walls[many]),
            unit="ms",
            meaning=f"(controller CPU with {many} hosts - with {few}) / {extra}: "
            "the SSH connection, its commands and their answers",
        ),
        Metric(
            "fleet",
            "host-side CPU per extra host",
            hosts_side,
            len(walls[many]),
            unit="s",
            meaning="machine-wide CPU per extra host minus the controller's: sshd, "
            "a login shell per round trip (this machine's root .bashrc runs pyenv "
            "init, ~0.1 CPU-s each), supervisorctl and the probe on the host",
        ),
        Metric(
            "fleet",
            f"T({many}) / T({few})",
            ratio,
            len(walls[many]),
            unit="x",
            value=ratio,
            limit=LIMIT,
            target=f"<= {LIMIT:g}",
            meaning=f"median wall with {many} hosts at once / with {few} host; "
            f"the floor on {CPUS} CPUs shared by every simulated host: "
            f"{floor:.2f}x (T({few}) + {extra} extra hosts' CPU / {CPUS} CPUs)",
        ),
    ]
    return metrics


__all__ = ["BenchSkipped", "bench_fleet"]
