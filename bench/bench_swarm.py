"""``swarm``: a rolling update and a rollback over a real 2-node Docker Swarm, vs SSH.

The swarm of ``python3 -m tools.testinfra swarm-up`` (two network namespaces, a
dockerd in each) and the project of tests/integration/test_swarm.py: the stand-in
busybox app (its Dockerfile, stack file and commits: imported from there, with
``in_netns``), ``runtime.kind = "swarm"`` on the manager, images given to the
worker by ``docker save | docker load``, haproxy in front of both nodes' tasks.
Everything of the swarm side runs in the manager's network namespace, as a runner
on the manager would: ``invoke`` (a fresh process each time), haproxy, the load.

After an untimed first deploy of A (it creates the stack and starts haproxy), each
of ROUNDS rounds, under a bounded load (WORKERS keep-alive clients on haproxy's
loopback address, a request every PAUSE s each, at most LOAD_SECONDS):

- rolling update: ``invoke deploy.preprod --sha NEW --json`` of a new commit
  (image build, save | load to the worker, ``docker stack deploy`` one node at a
  time as the stack's ``update_config`` says), timed from launch until the page
  through haproxy answers the new version;
- rollback: ``invoke rollback --to A --json``, the pipeline's rollback to the
  previous (validated) image, by name; timed the same way.

The baseline, in the same run and taking turns with it: the SSH fleet path of
bench_fleet (its config and commits), the supervisor runtime deployed to 2 sshd
hosts at once (127.0.0.2-3), a new sha then ``rollback --to A``, until each host's
app answers the new version. Figures are medians; the ratios are swarm / fleet.

Skipped (with the reason) without the swarm, haproxy, sshd or pytest (the helpers
of tests/integration/test_swarm.py import it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench_fleet import (
    BenchSkipped,
    Traced,
    commit,
    host_root,
    require_sshd,
    shutdown_hosts,
    write_fleet_config,
)
from common import (
    REPO_ROOT,
    BenchError,
    Metric,
    Project,
    clean_env,
    ledger_offsets,
    log,
    median,
    shutdown_supervisord,
    wait_for_text,
)

ROUNDS = 3
#: The load on haproxy during the swarm's rounds: bounded in clients, rate and time.
WORKERS = 4
PAUSE = 0.02
LOAD_SECONDS = 120


def _swarm_helpers() -> tuple[Any, Any]:
    """tests.integration.test_swarm and the swarm's description, or BenchSkipped."""
    from tools.testinfra import docker
    from tools.testinfra import swarm as infra

    if shutil.which("haproxy") is None:
        raise BenchSkipped("needs haproxy (python3 -m tools.testinfra up installs it)")
    if not infra.swarm_ok(docker.DEFAULT_STATE_DIR):
        raise BenchSkipped(infra.NEEDS_SWARM)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    try:
        from tests.integration import test_swarm
    except ModuleNotFoundError as missing:
        raise BenchSkipped(
            f"needs {missing.name} in the bench's venv: the helpers of "
            "tests/integration/test_swarm.py import it (pip install pytest)"
        ) from None
    return test_swarm, infra.describe(docker.DEFAULT_STATE_DIR)


def _docker(socket: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run docker on one node's engine; failures are the caller's to judge."""
    return subprocess.run(
        ["docker", "-H", f"unix://{socket}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


class SwarmSide:
    """The swarm project: config, commits, deploys and rollbacks, cleanup."""

    def __init__(self, test_swarm: Any, swarm: Any) -> None:
        from tests.conftest import AppRepo
        from tests.conftest import Project as TestProject
        from tests.conftest import distinct_ports, git, invoke_argv

        self.t, self.swarm = test_swarm, swarm
        self.dir = Path(tempfile.mkdtemp(prefix="cicd-bench-swarm-"))
        source = self.dir / "source"
        source.mkdir()
        git(source, "init", "-q", "-b", "main")
        self.name = f"cicdbsw{uuid.uuid4().hex[:8]}"
        self.project = TestProject(
            self.dir / "cicd.toml", self.dir / "root", *distinct_ports(AppRepo(source))
        )
        self.project.write(
            test_swarm.swarm_config(swarm, self.name), deadline=30, proxy="haproxy"
        )
        self.env = clean_env(CICD_CONFIG=str(self.project.config_path))
        self.invoke_argv = invoke_argv
        self.ledger = self.project.root / "preprod" / "ledger.jsonl"
        self.versions: dict[str, str] = {}

    def commit(self, version: str) -> str:
        """Commit a release of the busybox app answering ``<version> ok``."""
        sha: str = self.t.commit_swarm_app(self.project.repo, version, self.swarm.image)
        self.versions[sha] = version
        return sha

    def run(self, sha: str, *args: str) -> tuple[float, Traced]:
        """Run an ``invoke`` task (in the manager's namespace); until ``sha`` serves."""
        start = time.monotonic()
        done = Traced(self.invoke_argv(*args, "--json"), self.env)
        served = wait_for_text(
            self.project.url(), f"{self.versions[sha]} ok", deadline=30
        )
        return served - start, done

    def round(self, new: str, back: str) -> dict[str, Any]:
        """Deploy ``new`` then roll back to ``back``, under the load (in the netns)."""
        from cicd.checks.traffic import Load

        events = Events(self.swarm.manager_socket, self.name)

        def body() -> dict[str, Any]:
            with Load(
                self.project.url(), workers=WORKERS, seconds=LOAD_SECONDS, pause=PAUSE
            ) as load:
                deploy, deployed = self.run(new, "deploy.preprod", "--sha", new)
                sent, failed = load.tally.sent, load.tally.failed
                deploy_steps = steps(self.ledger, "deploy", deployed)
                back_in, rolled = self.run(
                    back, "rollback", "--env", "preprod", "--to", back
                )
            tally = load.tally
            return {
                "deploy": deploy,
                "rollback": back_in,
                "deploy_steps": deploy_steps,
                "rollback_steps": steps(self.ledger, "rollback", rolled),
                "deploy_load": (sent, failed),
                "rollback_load": (tally.sent - sent, tally.failed - failed),
                "outage": tally.outage,
                "errors": dict(tally.errors),
            }

        try:
            result: dict[str, Any] = self.t.in_netns(self.swarm.manager_netns, body)
        finally:
            result_events = events.stop()
        result["events"] = result_events
        tasks = self.t.tasks(self.project)  # both nodes run the rolled-back image
        image = f"{self.name}:{back}"
        if [i for _, i in tasks] != [image, image]:
            raise BenchError(f"after the rollback the tasks are {tasks}, not 2 {image}")
        return result

    def close(self) -> None:
        """Remove the stack, stop haproxy's supervisord, remove the images."""
        nodes = (self.swarm.manager_socket, self.swarm.worker_socket)
        _docker(self.swarm.manager_socket, "stack", "rm", self.name)
        conf = self.project.root / "supervisor" / "supervisord.conf"
        if conf.exists():
            shutdown_supervisord(conf)
        label = f"label=com.docker.stack.namespace={self.name}"
        end = time.monotonic() + 30  # the tasks stop before their images can go
        while time.monotonic() < end and any(
            _docker(n, "ps", "-aq", "--filter", label).stdout.strip() for n in nodes
        ):
            time.sleep(0.5)
        for node in nodes:
            listed = set(_docker(node, "images", "-q", self.name).stdout.split())
            if listed:
                _docker(node, "rmi", "-f", *listed)
        shutil.rmtree(self.dir, ignore_errors=True)


class FleetSide:
    """bench_fleet's SSH path to 2 hosts: the supervisor runtime, in place."""

    def __init__(self, sshd: Any) -> None:
        self.project = Project("swarm-fleet")
        self.fleet = sshd.start_fleet(2, self.project.dir / "ssh")
        self.config = self.project.dir / "cicd-2.toml"
        write_fleet_config(self.project, self.fleet, self.fleet.hosts, self.config)
        self.versions: dict[str, str] = {}

    def commit(self, version: str) -> str:
        """Commit a release of the address-bound stand-in app."""
        sha = commit(self.project, version)
        self.versions[sha] = version
        return sha

    def run(self, sha: str, *args: str) -> tuple[float, Traced]:
        """Run an ``invoke`` task; until every host's app answers ``sha``."""
        argv = self.project.invoke_argv(*args, "--json")
        start = time.monotonic()
        done = Traced(argv, self.project.env(self.config))
        port = self.project.ports["preprod"]
        served = max(
            wait_for_text(
                f"http://{h.address}:{port}/", f"{self.versions[sha]} ok", deadline=30
            )
            for h in self.fleet.hosts
        )
        return served - start, done

    def round(self, new: str, back: str) -> dict[str, Any]:
        """Deploy ``new`` to both hosts, then roll back to ``back``."""
        ledger = host_root(self.project, self.fleet.hosts[0].name) / "preprod"
        ledger /= "ledger.jsonl"
        deploy, deployed = self.run(new, "deploy.preprod", "--sha", new)
        deploy_steps = steps(ledger, "deploy", deployed)  # before the next events
        back_in, rolled = self.run(back, "rollback", "--env", "preprod", "--to", back)
        return {
            "deploy": deploy,
            "rollback": back_in,
            "deploy_steps": deploy_steps,
            "rollback_steps": steps(ledger, "rollback", rolled),
        }

    def close(self) -> None:
        """Stop each host's supervisord and sshd; delete the project."""
        shutdown_hosts(self.project, self.fleet.hosts)
        self.fleet.stop()
        self.project.close()


def steps(ledger: Path, event: str, done: Traced) -> dict[str, float]:
    """A run's step durations from its ledger event, with its start and CPU.

    ``launch -> ledger`` is from the launch to the run's first ledger event (the
    process's start, the SSH connections, the lock), ``last event -> exit`` from
    its last one to the process's exit; ``machine CPU busy`` is the whole machine's
    busy CPU seconds meanwhile (shared with anything else running).
    """
    found: dict[str, float] = {}
    for line in ledger.read_text().splitlines():
        row = json.loads(line)
        if row.get("event") == event and row.get("durations"):
            found = {k: float(v) for k, v in row["durations"].items()}
    offsets = ledger_offsets(ledger, done.launched)
    if offsets:
        found = {"launch -> ledger": min(offsets.values()), **found}
        found["last event -> exit"] = done.wall - max(offsets.values())
    return {**found, "invoke wall": done.wall, "machine CPU busy": done.busy}


class Events:
    """``docker events`` of the swarm's nodes and services while a round runs.

    What another run does to the shared swarm at the same time shows there: a node
    drained or down, another stack's services created or removed.
    """

    def __init__(self, manager_socket: str, name: str) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [
                "docker",
                "-H",
                f"unix://{manager_socket}",
                "events",
                "--filter",
                "type=node",
                "--filter",
                "type=service",
                "--format",
                "{{json .}}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def stop(self) -> list[str]:
        """Stop watching; return what was not this bench's own doing."""
        self.process.terminate()
        out, _ = self.process.communicate(timeout=10)
        seen: list[str] = []
        for line in out.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            attributes = (event.get("Actor") or {}).get("Attributes") or {}
            name = str(attributes.get("name", ""))
            if event.get("Type") == "service" and not name.startswith(self.name):
                seen.append(f"service {name} {event.get('Action')}")
            changes = [k for k in attributes if k.endswith(".new")]
            if event.get("Type") == "node" and changes:
                seen.append(
                    f"node {name} "
                    + ", ".join(f"{k[:-4]} -> {attributes[k]}" for k in changes)
                )
        return seen


def _medians(rows: list[dict[str, float]]) -> str:
    """Median of each step, in the order they first appear."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    return ", ".join(f"{k} {median([r[k] for r in rows if k in r]):.2f}s" for k in keys)


def bench_swarm() -> list[Metric]:
    """Rolling update and rollback to serving on the swarm, and on 2 SSH hosts."""
    test_swarm, swarm = _swarm_helpers()
    sshd = require_sshd()
    sides: dict[str, Any] = {}
    rounds: dict[str, list[dict[str, Any]]] = {"swarm": [], "fleet": []}
    started = time.monotonic()
    try:
        sides["swarm"] = SwarmSide(test_swarm, swarm)
        log("swarm: starting 2 sshd hosts on 127.0.0.2-3 (the fleet baseline)")
        sides["fleet"] = FleetSide(sshd)
        first = {side: sides[side].commit("A") for side in sides}
        log("swarm: first deploys of A (stack, haproxy; hosts' supervisords; untimed)")
        t0 = time.monotonic()
        a = first["swarm"]
        test_swarm.in_netns(
            swarm.manager_netns,
            lambda: sides["swarm"].run(a, "deploy.preprod", "--sha", a),
        )
        swarm_first = time.monotonic() - t0
        sides["fleet"].run(first["fleet"], "deploy.preprod", "--sha", first["fleet"])
        for index in range(ROUNDS):
            order = ("swarm", "fleet") if index % 2 == 0 else ("fleet", "swarm")
            for side in order:
                new = sides[side].commit(f"R{index + 1}")
                result = sides[side].round(new, first[side])
                rounds[side].append(result)
                log(
                    f"swarm: round {index + 1}/{ROUNDS}, {side}: deploy "
                    f"{result['deploy']:.2f}s, rollback {result['rollback']:.2f}s"
                    + (
                        f", load (sent, failed) {result['deploy_load']} / "
                        f"{result['rollback_load']}"
                        + "".join(f"; {e}" for e in result["events"])
                        if side == "swarm"
                        else ""
                    )
                )
    finally:
        for side in reversed(list(sides.values())):
            side.close()
    log(f"swarm: took {time.monotonic() - started:.0f}s")

    return _metrics(rounds, swarm_first)


def _metrics(rounds: dict[str, list[dict[str, Any]]], first: float) -> list[Metric]:
    """The table's rows: medians per side and phase, ratios, failed requests."""

    def samples(side: str, key: str) -> list[float]:
        return [float(r[key]) for r in rounds[side]]

    def where(side: str, key: str) -> str:
        return _medians([r[f"{key}_steps"] for r in rounds[side]])

    def load(key: str) -> tuple[int, int]:
        pairs = [r[f"{key}_load"] for r in rounds["swarm"]]
        return sum(p[0] for p in pairs), sum(p[1] for p in pairs)

    phases = {
        "deploy": (
            "rolling update",
            "deploy.preprod of a new sha (a fresh process) until the page through "
            "haproxy answers it",
            "deploy",
        ),
        "rollback": (
            "rollback",
            "rollback --to A, the previous (validated) image, by name, until haproxy "
            "answers A",
            "rollback",
        ),
    }
    metrics: list[Metric] = []
    figures: dict[tuple[str, str], float] = {}
    for key, (name, meaning, _) in phases.items():
        sent, failed = load(key)
        figures["swarm", key] = median(samples("swarm", key))
        metrics.append(
            Metric(
                "swarm",
                f"{name} to serving, 2 swarm nodes",
                figures["swarm", key],
                ROUNDS,
                samples=samples("swarm", key),
                meaning=f"{meaning}; load {sent} requests, {failed} failed "
                f"({WORKERS} clients, a request per {PAUSE:g} s each); median "
                f"steps: {where('swarm', key)}",
            )
        )
    for key, (name, _, short) in phases.items():
        figures["fleet", key] = median(samples("fleet", key))
        metrics.append(
            Metric(
                "swarm",
                f"  baseline: {short} to serving, 2 SSH hosts",
                figures["fleet", key],
                ROUNDS,
                samples=samples("fleet", key),
                meaning=f"bench_fleet's path: supervisor runtime, 2 sshd hosts at "
                f"once, in place, no load; until both apps answer; median steps "
                f"(first host): {where('fleet', key)}",
            )
        )
    for key, (name, _, short) in phases.items():
        ratio = figures["swarm", key] / figures["fleet", key]
        metrics.append(
            Metric(
                "swarm",
                f"{short}: swarm / fleet",
                ratio,
                ROUNDS,
                unit="x",
                meaning=f"median {name} to serving, swarm / 2 SSH hosts "
                f"({figures['swarm', key]:.2f} s / {figures['fleet', key]:.2f} s)",
            )
        )
    sent = sum(load(k)[0] for k in phases)
    failed = sum(load(k)[1] for k in phases)
    errors: dict[str, int] = {}
    for row in rounds["swarm"]:
        for error, count in row["errors"].items():
            errors[error] = errors.get(error, 0) + count
    outage = max(r["outage"] for r in rounds["swarm"])
    events = [e for r in rounds["swarm"] for e in r["events"]]
    others = sorted({e.split()[1] for e in events if e.startswith("service ")})
    nodes = [e for e in events if e.startswith("node ")]
    metrics.append(
        Metric(
            "swarm",
            "failed requests, swarm deploys + rollbacks",
            failed,
            ROUNDS,
            unit="",
            value=failed,
            limit=0,
            target="= 0",
            meaning=f"{sent} requests through haproxy, {failed} failed"
            + (
                f" ({', '.join(f'{n}x {e}' for e, n in errors.items())}; longest "
                f"outage {outage:.2f} s)"
                if failed
                else ""
            )
            + "; one node at a time, stop-first (the stack's update_config); "
            f"first deploy (creates the stack, untimed) {first:.1f} s; meanwhile on "
            f"the shared swarm: {len(others)} other service(s)"
            + (f" ({', '.join(others)})" if others else "")
            + (f", node changes: {'; '.join(nodes)}" if nodes else ", no node change"),
        )
    )
    return metrics


__all__ = ["bench_swarm"]
