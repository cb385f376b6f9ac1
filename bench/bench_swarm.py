"""``swarm``: blue/green on a real 2-node Docker Swarm behind haproxy, vs SSH.

The swarm of ``python3 -m tools.testinfra swarm-up`` (two network namespaces, a
dockerd in each) and the project of tests/integration/test_swarm.py: the stand-in
busybox app (its Dockerfile, stack file and commits: imported from there, with
``in_netns``), ``runtime.kind = "swarm"`` on the manager, images given to the
worker by ``docker save | docker load``, haproxy in front of both nodes' tasks of
the live slot (each slot a global stack, ``PROJECT-blue`` and ``PROJECT-green``).
Local CI decides by the release's page: a version named ``F...`` fails, any other
passes (``grep -qv ^F app/index.html``). ``keep = 6``, so older images stay.
Everything of the swarm side runs in the manager's network namespace, as a runner
on the manager would: ``invoke`` (a fresh process each time), haproxy, the load.
The whole run holds the swarm integration tests' lock (``cicd-swarm-tests.lock``
in the temp directory), waiting for it: the two never run at once.

After an untimed first deploy of A (it creates the blue stack and starts haproxy)
and its CI pass (``invoke watch``: A is validated), each of ROUNDS rounds starts
from a validated release B live (A, then the previous round's N) and runs these
phases, each under a bounded load of its own (WORKERS keep-alive clients on
haproxy's loopback address, a request every PAUSE s each, at most LOAD_SECONDS):

- deploy: ``invoke deploy.preprod --sha N --json`` of a new commit (image build,
  save | load to the worker, the idle slot's stack removed and deployed, readiness
  of every node's task, haproxy switched; B stays warm), timed from launch until
  the page through haproxy answers N. The page is polled from the launch on, so
  what a run does after its switch (keeping the previous slot warm; a rollback
  stopping the slot it left) is not counted: the steps show it (``switch event
  -> last event``), and the run's wall time;
- rollback to the warm release: ``invoke rollback --to B``, a switch back; timed
  the same way;
- CI failure: a deploy of F (untimed; B warm again), then ``invoke watch --sha F``
  whose local CI fails and rolls back to B, the warm slot. Timed from the ledger's
  ``ci`` failure event to the rollback's ``switch`` event (as bench_zero_downtime
  does), and to the page through haproxy answering B (the bench polls it; wall
  clocks of one machine);
- rollback to an older kept image: ``invoke rollback --to N`` (N is neither live
  nor warm: the rollback to B stopped its slot), started on the idle slot, made
  ready, switched to; timed like the deploy. Then ``invoke watch --sha N`` (CI
  passes, untimed): N is the next round's B.

The deploy's time breakdown comes from the ledger's ``deploy`` event
(``durations``: image build, distribution to the nodes, task start, readiness,
switch), and so do the rollbacks'. Failed requests are counted per phase.

The baseline, in the same run and taking turns with it: the SSH fleet path of
bench_fleet (its config and commits), the supervisor runtime deployed to 2 sshd
hosts at once (127.0.0.2-3), in place with no proxy, a new sha then ``rollback
--to A``, until each host's app answers the new version (polled from the launch
on, too). Figures are medians; the ratios are swarm / fleet.

Skipped (with the reason) without the swarm, haproxy, sshd or pytest (the helpers
of tests/integration/test_swarm.py import it).
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

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
    run,
    shutdown_supervisord,
    wait_for_text,
)

ROUNDS = 3
#: The load on haproxy during each swarm phase: bounded in clients, rate and time.
WORKERS = 4
PAUSE = 0.02
LOAD_SECONDS = 120
#: The lock the swarm integration tests take (their ``swarm_project`` fixture).
LOCK = Path(tempfile.gettempdir()) / "cicd-swarm-tests.lock"
#: Local CI: a release whose page names a version starting with F fails.
CI_COMMAND = "grep -qv ^F app/index.html"
#: The swarm side's phases, in a round's order: (key, what the rows call it).
PHASES = (
    ("deploy", "deploy"),
    ("rollback", "rollback to the warm release"),
    ("ci", "CI failure -> rollback (deploy of F + watch)"),
    ("older", "rollback to an older kept image"),
)
#: The deploy's steps, as the ledger's ``durations`` name them.
DEPLOY_STEPS = (
    ("image", "image build"),
    ("distribute", "distribution to the nodes"),
    ("restart", "task start (stack rm + deploy, every node's task runs)"),
    ("readiness", "readiness (every node's task)"),
    ("switch", "switch (haproxy)"),
)


@contextmanager
def swarm_lock() -> Iterator[None]:
    """Hold the swarm integration tests' lock, waiting for it."""
    handle: IO[str] = LOCK.open("a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"swarm: waiting for {LOCK} (swarm tests run)")
            waited = time.monotonic()
            fcntl.flock(handle, fcntl.LOCK_EX)
            log(f"swarm: got the lock after {time.monotonic() - waited:.0f}s")
        yield
    finally:
        handle.close()


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


def _seconds(event: dict[str, Any]) -> float:
    """A ledger event's time, as seconds since the epoch."""
    at = datetime.strptime(str(event["time"]), "%Y-%m-%dT%H:%M:%S.%fZ")
    return at.replace(tzinfo=UTC).timestamp()


class Until:
    """A poll that runs in a thread from its creation on (e.g. from a launch).

    Args:
        wait: Polls until done; returns ``time.monotonic()`` then (as
            ``wait_for_text`` does).
    """

    def __init__(self, wait: Callable[[], float]) -> None:
        self.done: list[float] = []
        self.failed: list[BaseException] = []

        def poll() -> None:
            try:
                self.done.append(wait())
            except BaseException as error:  # handed to the caller of at()
                self.failed.append(error)

        self.thread = threading.Thread(target=poll, daemon=True)
        self.thread.start()

    def at(self) -> float:
        """When the poll saw it (monotonic seconds); its error if it never did."""
        self.thread.join(150)
        if self.failed:
            raise self.failed[0]
        if not self.done:
            raise BenchError("a poll still runs after 150 s")
        return self.done[0]


class SwarmSide:
    """The swarm project: config, commits, deploys, rollbacks, CI, cleanup."""

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
        ci = f'\n[tool.cicd.ci]\nprovider = "local"\ncommand = "{CI_COMMAND}"\n'
        self.project.write(
            test_swarm.swarm_config(swarm, self.name) + ci,
            deadline=30,
            proxy="haproxy",
        )
        config = self.project.config_path
        text = config.read_text()
        if "keep = 3" not in text:
            raise BenchError(f"{config}: no 'keep = 3' to raise (the tests' config)")
        config.write_text(text.replace("keep = 3", "keep = 6", 1))
        self.env = clean_env(CICD_CONFIG=str(config))
        self.invoke_argv = invoke_argv
        self.ledger = self.project.root / "preprod" / "ledger.jsonl"
        self.versions: dict[str, str] = {}

    def commit(self, version: str) -> str:
        """Commit a release of the busybox app answering ``<version> ok``."""
        sha: str = self.t.commit_swarm_app(self.project.repo, version, self.swarm.image)
        self.versions[sha] = version
        return sha

    def run(self, sha: str, *args: str) -> tuple[float, Traced]:
        """Run an ``invoke`` task (in the manager's namespace); until ``sha`` serves.

        The page is polled from the launch on: serving is when haproxy first
        answers ``sha``, whatever the run still does after its switch.
        """
        url, text = self.project.url(), f"{self.versions[sha]} ok"
        start = time.monotonic()
        served = Until(lambda: wait_for_text(url, text, deadline=120))
        done = Traced(self.invoke_argv(*args, "--json"), self.env)
        return served.at() - start, done

    def watch(self, sha: str) -> None:
        """``invoke watch --sha SHA``: local CI's verdict and what follows it."""
        run(self.invoke_argv("watch", "--sha", sha), env=self.env, timeout=180)

    def events(self) -> list[dict[str, Any]]:
        """The environment's ledger."""
        return [json.loads(line) for line in self.ledger.read_text().splitlines()]

    def ci_failure(self, failing: str, back: str) -> dict[str, float]:
        """Watch ``failing`` (CI fails); from its verdict to ``back`` serving.

        ``ledger``: the ``ci`` failure event to the rollback's ``switch`` event;
        ``page``: the same verdict to the page through haproxy answering ``back``
        (polled meanwhile: both clocks are this machine's).
        """
        url, text = self.project.url(), f"{self.versions[back]} ok"
        served = Until(lambda: wait_for_text(url, text, interval=0.01, deadline=120))
        self.watch(failing)
        page = served.at() + time.time() - time.monotonic()  # as a wall clock
        events = self.events()
        verdicts = [
            e
            for e in events
            if e["event"] == "ci"
            and e.get("sha") == failing
            and e.get("outcome") == "failure"
        ]
        if not verdicts:
            raise BenchError(f"no ci failure of {failing[:7]} in {self.ledger}")
        verdict = _seconds(verdicts[-1])
        switches = [
            e
            for e in events
            if e["event"] == "switch"
            and e.get("sha") == back
            and _seconds(e) >= verdict
        ]
        if not switches:
            raise BenchError(f"after the CI failure of {failing[:7]}, no switch back")
        return {"ledger": _seconds(switches[0]) - verdict, "page": page - verdict}

    def round(self, base: str, new: str, failing: str) -> dict[str, Any]:
        """One round from ``base`` live: deploy, rollbacks, a CI failure."""
        from cicd.checks.traffic import Load

        events = Events(self.swarm.manager_socket, self.name)
        out: dict[str, Any] = {"errors": {}, "outage": 0.0}

        def phase(key: str, action: Callable[[], None]) -> None:
            with Load(
                self.project.url(), workers=WORKERS, seconds=LOAD_SECONDS, pause=PAUSE
            ) as load:
                action()
            tally = load.tally
            out[f"{key}_load"] = (tally.sent, tally.failed)
            out["outage"] = max(out["outage"], tally.outage)
            for error, count in tally.errors.items():
                out["errors"][error] = out["errors"].get(error, 0) + count

        def deploy() -> None:
            out["deploy"], done = self.run(new, "deploy.preprod", "--sha", new)
            out["deploy_steps"] = steps(self.ledger, "deploy", done)

        def rollback(key: str, to: str) -> Callable[[], None]:
            def action() -> None:
                out[key], done = self.run(
                    to, "rollback", "--env", "preprod", "--to", to
                )
                out[f"{key}_steps"] = steps(self.ledger, "rollback", done)

            return action

        def ci() -> None:
            self.run(failing, "deploy.preprod", "--sha", failing)
            out["ci"] = self.ci_failure(failing, base)
            out["ci_steps"] = steps_of(self.ledger, "rollback")

        def body() -> None:
            phase("deploy", deploy)
            phase("rollback", rollback("rollback", base))
            phase("ci", ci)
            phase("older", rollback("older", new))

        try:
            self.t.in_netns(self.swarm.manager_netns, body)
        finally:
            out["events"] = events.stop()
        tasks = self.t.tasks(self.project)  # both nodes run the older image
        image = f"{self.name}:{new}"
        if [i for _, i in tasks] != [image, image]:
            raise BenchError(f"after the rollback the tasks are {tasks}, not 2 {image}")
        self.t.in_netns(self.swarm.manager_netns, lambda: self.watch(new))
        return out

    def close(self) -> None:
        """Remove both slots' stacks, stop haproxy's supervisord, remove the images."""
        nodes = (self.swarm.manager_socket, self.swarm.worker_socket)
        for stack in (f"{self.name}-blue", f"{self.name}-green", self.name):
            _docker(self.swarm.manager_socket, "stack", "rm", stack)
        conf = self.project.root / "supervisor" / "supervisord.conf"
        if conf.exists():
            shutdown_supervisord(conf)
        end = time.monotonic() + 30  # the tasks stop before their images can go
        while time.monotonic() < end and any(
            self.name in _docker(n, "ps", "-a", "--format", "{{.Names}}").stdout
            for n in nodes
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
        """Run an ``invoke`` task; until every host's app answers ``sha`` (polled)."""
        argv = self.project.invoke_argv(*args, "--json")
        port = self.project.ports["preprod"]
        text = f"{self.versions[sha]} ok"
        start = time.monotonic()
        served = Until(
            lambda: max(
                wait_for_text(f"http://{h.address}:{port}/", text, deadline=120)
                for h in self.fleet.hosts
            )
        )
        done = Traced(argv, self.project.env(self.config))
        return served.at() - start, done

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


def steps_of(ledger: Path, event: str) -> dict[str, float]:
    """The step durations of the ledger's last ``event`` that has some."""
    found: dict[str, float] = {}
    for line in ledger.read_text().splitlines():
        row = json.loads(line)
        if row.get("event") == event and row.get("durations"):
            found = {k: float(v) for k, v in row["durations"].items()}
    return found


def steps(ledger: Path, event: str, done: Traced) -> dict[str, float]:
    """A run's step durations from its ledger event, with its start and CPU.

    ``launch -> ledger`` is from the launch to the run's first ledger event (the
    process's start, the SSH connections, the lock), ``last event -> exit`` from
    its last one to the process's exit, ``switch event -> last event`` what it did
    after its switch (keeping the previous slot warm, or stopping it);
    ``machine CPU busy`` is the whole machine's
    busy CPU seconds meanwhile (shared with anything else running).
    """
    found = steps_of(ledger, event)
    offsets = ledger_offsets(ledger, done.launched)
    if offsets:
        found = {"launch -> ledger": min(offsets.values()), **found}
        if "switch" in offsets:
            found["switch event -> last event"] = (
                max(offsets.values()) - offsets["switch"]
            )
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
    """Blue/green phases on the swarm under load, and deploys to 2 SSH hosts."""
    test_swarm, swarm = _swarm_helpers()
    sshd = require_sshd()
    with swarm_lock():
        return _bench(test_swarm, swarm, sshd)


def _bench(test_swarm: Any, swarm: Any, sshd: Any) -> list[Metric]:
    """The rounds of both sides, taking turns; the caller holds the swarm lock."""
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
        a, swarm_side = first["swarm"], sides["swarm"]

        def first_deploy() -> None:
            swarm_side.run(a, "deploy.preprod", "--sha", a)
            swarm_side.watch(a)  # CI passes: A is validated

        test_swarm.in_netns(swarm.manager_netns, first_deploy)
        swarm_first = time.monotonic() - t0
        sides["fleet"].run(first["fleet"], "deploy.preprod", "--sha", first["fleet"])
        base = a
        for index in range(ROUNDS):
            order = ("swarm", "fleet") if index % 2 == 0 else ("fleet", "swarm")
            for side in order:
                new = sides[side].commit(f"R{index + 1}")
                if side == "fleet":
                    result = sides[side].round(new, first[side])
                    log(
                        f"swarm: round {index + 1}/{ROUNDS}, fleet: deploy "
                        f"{result['deploy']:.2f}s, rollback {result['rollback']:.2f}s"
                    )
                else:
                    failing = swarm_side.commit(f"F{index + 1}")
                    result = swarm_side.round(base, new, failing)
                    base = new
                    log(
                        f"swarm: round {index + 1}/{ROUNDS}, swarm: deploy "
                        f"{result['deploy']:.2f}s, rollback {result['rollback']:.2f}s, "
                        f"CI failure -> switch {result['ci']['ledger']:.2f}s (page "
                        f"{result['ci']['page']:.2f}s), older {result['older']:.2f}s; "
                        "load (sent, failed) "
                        + ", ".join(f"{k} {result[f'{k}_load']}" for k, _ in PHASES)
                        + "".join(f"; {e}" for e in result["events"])
                    )
                rounds[side].append(result)
    finally:
        for side in reversed(list(sides.values())):
            side.close()
    log(f"swarm: took {time.monotonic() - started:.0f}s")
    return _metrics(rounds, swarm_first)


def _metrics(rounds: dict[str, list[dict[str, Any]]], first: float) -> list[Metric]:
    """The table's rows: medians per side and phase, ratios, failed requests."""
    swarm, fleet = rounds["swarm"], rounds["fleet"]

    def samples(side: list[dict[str, Any]], key: str) -> list[float]:
        return [float(r[key]) for r in side]

    def where(side: list[dict[str, Any]], key: str) -> str:
        return _medians([r[f"{key}_steps"] for r in side])

    def load(key: str) -> tuple[int, int]:
        pairs = [r[f"{key}_load"] for r in swarm]
        return sum(p[0] for p in pairs), sum(p[1] for p in pairs)

    def tail(key: str) -> str:
        sent, failed = load(key)
        return f"; load {sent} requests, {failed} failed; median steps: " + where(
            swarm, key
        )

    metrics: list[Metric] = []
    figures: dict[str, float] = {}

    def row(key: str, name: str, values: list[float], meaning: str, **kw: Any) -> None:
        figures[key] = median(values)
        metrics.append(
            Metric(
                "swarm",
                name,
                figures[key],
                len(values),
                samples=values,
                meaning=meaning,
                **kw,
            )
        )

    row(
        "deploy",
        "deploy to serving, 2 swarm nodes",
        samples(swarm, "deploy"),
        "deploy.preprod of a new sha (a fresh process) until the page through "
        "haproxy answers it" + tail("deploy"),
    )
    row(
        "rollback",
        "rollback to the warm release, to serving",
        samples(swarm, "rollback"),
        "rollback --to the previous release, still warm on its slot: a switch back; "
        "until haproxy answers it" + tail("rollback"),
    )
    row(
        "older",
        "rollback to an older kept image, to serving",
        samples(swarm, "older"),
        "rollback --to a kept image neither live nor warm: started on the idle "
        "slot, ready on both nodes, switched; until haproxy answers it" + tail("older"),
    )
    row(
        "fleet deploy",
        "  baseline: deploy to serving, 2 SSH hosts",
        samples(fleet, "deploy"),
        "bench_fleet's path: supervisor runtime, 2 sshd hosts at once, in place, "
        f"no load; until both apps answer; median steps (first host): "
        f"{where(fleet, 'deploy')}",
    )
    row(
        "fleet rollback",
        "  baseline: rollback to serving, 2 SSH hosts",
        samples(fleet, "rollback"),
        "rollback --to A, in place (a restart), until both apps answer; median "
        f"steps (first host): {where(fleet, 'rollback')}",
    )
    for key, name, limit in (
        ("deploy", "deploy", 2.0),
        ("rollback", "rollback (warm)", None),
        ("older", "rollback (older image)", None),
    ):
        base = "fleet " + ("deploy" if key == "deploy" else "rollback")
        ratio = figures[key] / figures[base]
        metrics.append(
            Metric(
                "swarm",
                f"{name}: swarm / fleet",
                ratio,
                len(swarm),
                unit="x",
                value=ratio if limit else None,
                limit=limit,
                target=f"<= {limit:g}x" if limit else "",
                meaning=f"median to serving, swarm / 2 SSH hosts "
                f"({figures[key]:.2f} s / {figures[base]:.2f} s)",
            )
        )
    ci_ledger = [float(r["ci"]["ledger"]) for r in swarm]
    ci_page = [float(r["ci"]["page"]) for r in swarm]
    row(
        "ci",
        "CI failure -> previous serving",
        ci_ledger,
        "ledger: the ci failure event of invoke watch (local CI) -> the rollback's "
        "switch event to the warm slot; to the page through haproxy answering it: "
        f"median {median(ci_page):.2f} s (samples "
        + ", ".join(f"{p:.2f}" for p in ci_page)
        + ")"
        + tail("ci"),
        value=median(ci_ledger),
        limit=1.0,
        target="<= 1 s",
    )
    deploys = [r["deploy_steps"] for r in swarm]
    for key, name in DEPLOY_STEPS:
        values = [float(d[key]) for d in deploys if key in d]
        if not values:
            continue
        row(
            f"step {key}",
            f"  deploy step: {name}",
            values,
            f"the ledger's deploy event, durations[{key!r}]",
        )
    for key, name in PHASES:
        sent, failed = load(key)
        metrics.append(
            Metric(
                "swarm",
                f"failed requests: {name}",
                failed,
                len(swarm),
                unit="",
                value=failed,
                limit=0,
                target="= 0",
                meaning=f"{sent} requests through haproxy, {failed} failed "
                f"({WORKERS} clients, a request per {PAUSE:g} s each)",
            )
        )
    errors: dict[str, int] = {}
    for r in swarm:
        for error, count in r["errors"].items():
            errors[error] = errors.get(error, 0) + count
    outage = max(r["outage"] for r in swarm)
    events = [e for r in swarm for e in r["events"]]
    others = sorted({e.split()[1] for e in events if e.startswith("service ")})
    nodes = [e for e in events if e.startswith("node ")]
    said = ", ".join(f"{n}x {e}" for e, n in errors.items())
    notes = (
        [f"across all phases: {said}, longest outage {outage:.2f} s"] if said else []
    )
    notes.append(f"first deploy (creates the stack, starts haproxy) {first:.1f} s")
    notes.append(
        f"meanwhile on the shared swarm: {len(others)} other service(s)"
        + (f" ({', '.join(others)})" if others else "")
        + (f", node changes: {'; '.join(nodes)}" if nodes else ", no node change")
    )
    metrics[-1].meaning += "; " + "; ".join(notes)
    return metrics


__all__ = ["bench_swarm"]
