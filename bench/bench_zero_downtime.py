"""``zero-downtime``: what deploys and rollbacks cost the users of the real app.

The real Streamlit app of 10_preprod (a clone of HEAD plus empty commits: one tree,
one venv) on a temporary root and free ports, readiness on ``/_stcore/health``.
A bounded load runs across each phase — 16 keep-alive clients on 127.0.0.1 asking
``/_stcore/health``, never more than 60 s — and counts failed requests:

- blue/green (haproxy): 5 cycles of deploy + rollback (``--to`` the previous, which
  is still warm: a switch back);
- the baseline, in the same run: the same 5 cycles restarting the app in place
  (``proxy.kind = "none"``): its failed requests and its longest outage;
- the switch itself: from "new slot ready" to "switched", the deploy's ``switch``
  step (symlink, ledger, haproxy's runtime API);
- CI failure → previous release serving: 5 deploys of a sha whose local CI fails,
  each followed by ``invoke watch``; timed from the ledger's ``ci`` failure to the
  rollback's ``switch`` (the warm slot), with the load counting failures.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import time
from datetime import UTC, datetime

from bench_fleet import BenchSkipped
from common import REPO_ROOT, Metric, Project, free_port, git, log, median, run

from cicd.checks.traffic import Load

CYCLES = 5
WORKERS = 16
HEALTH = "/_stcore/health"


#: The slots' ports, the same for the whole run.
PORTS: list[int] = []


def _config(project: Project, kind: str, ci: str = "true") -> None:
    while len(PORTS) < 4:
        PORTS.append(free_port())
    blue, green, prod_blue, prod_green = PORTS
    project.config_path.write_text(textwrap.dedent(f"""\
        # The embedded default's app (Streamlit, 10_preprod) on free ports.
        [tool.cicd]
        root = "{project.root}"
        source = "{project.repo}"
        keep = 20

        [tool.cicd.proxy]
        kind = "{kind}"

        # The deploy's mechanics are measured, not the page smoke.
        [tool.cicd.smoke]
        on_deploy = false

        [tool.cicd.health]
        deadline = 180
        interval = 0.1
        checks = [{{ path = "{HEALTH}", body_contains = "ok" }}]

        [tool.cicd.notify]
        discord = false

        [tool.cicd.ci]
        provider = "local"
        command = "{ci}"

        [tool.cicd.env.preprod]
        port = {project.ports["preprod"]}
        proxy.blue_port = {blue}
        proxy.green_port = {green}

        [tool.cicd.env.prod]
        port = {project.ports["prod"]}
        proxy.blue_port = {prod_blue}
        proxy.green_port = {prod_green}
        """))


def _ledger(project: Project) -> list[dict[str, object]]:
    path = project.root / "preprod" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _seconds(event: dict[str, object]) -> float:
    at = datetime.strptime(str(event["time"]), "%Y-%m-%dT%H:%M:%S.%fZ")
    return at.replace(tzinfo=UTC).timestamp()


def _cycles(project: Project, a: str, b: str) -> tuple[Load, list[float]]:
    """Deploy B then roll back to A, CYCLES times, under the load."""
    with Load(project.url("preprod", HEALTH), workers=WORKERS, seconds=120) as load:
        time.sleep(0.5)
        for index in range(CYCLES):
            log(f"zero-downtime: cycle {index + 1}/{CYCLES}")
            project.invoke("deploy.preprod", "--sha", b)
            project.invoke("rollback", "--env", "preprod", "--to", a)
        time.sleep(0.5)
    switches = [
        float(e["durations"]["switch"])  # type: ignore[index]
        for e in _ledger(project)
        if e["event"] == "deploy"
        and e.get("outcome") == "ok"
        and "switch" in (e.get("durations") or {})  # type: ignore[operator]
        and e.get("sha") == b
    ][-CYCLES:]
    return load, switches


def bench_zero_downtime() -> list[Metric]:
    """Failed requests across deploys and rollbacks, blue/green vs in place."""
    if shutil.which("haproxy") is None:
        raise BenchSkipped(
            "needs haproxy (apt-get install haproxy, or "
            "CICD_DEV_TASKS=1 invoke infra.up)"
        )
    project = Project("zero-downtime", app_repo=False)
    try:
        project.repo = project.dir / "source"
        git(project.dir, "clone", "-q", "--no-hardlinks", str(REPO_ROOT), "source")
        shas = [git(project.repo, "rev-parse", "HEAD")]
        for index in range(1 + CYCLES):
            git(project.repo, "commit", "-q", "--allow-empty", "-m", f"bench {index}")
            shas.append(git(project.repo, "rev-parse", "HEAD"))
        a, b, failing = shas[0], shas[1], shas[2:]

        _config(project, "none")
        log(f"zero-downtime: first deploys of {a[:7]} (builds the venv; not timed)")
        first = project.invoke("deploy.preprod", "--sha", a, timeout=900)
        project.invoke("deploy.preprod", "--sha", b)
        project.invoke("deploy.preprod", "--sha", a)
        log("zero-downtime: baseline, in-place restarts")
        baseline, _ = _cycles(project, a, b)

        _config(project, "haproxy")
        # The first blue/green deploy retires the in-place program (said once).
        project.invoke("deploy.preprod", "--sha", b)
        project.invoke("rollback", "--env", "preprod", "--to", a)
        log("zero-downtime: blue/green behind haproxy")
        bluegreen, switches = _cycles(project, a, b)

        log("zero-downtime: CI failure -> previous release serving")
        # A validated by CI first: the release each failing sha rolls back to.
        run(project.invoke_argv("watch", "--sha", a), env=project.env(), timeout=120)
        _config(project, "haproxy", ci="false")
        verdicts: list[float] = []
        url = project.url("preprod", HEALTH)
        with Load(url, workers=WORKERS, seconds=180) as after_ci:
            for sha in failing:
                project.invoke("deploy.preprod", "--sha", sha)
                run(
                    project.invoke_argv("watch", "--sha", sha),
                    env=project.env(),
                    timeout=120,
                )
                events = _ledger(project)
                failed = [
                    e for e in events if e["event"] == "ci" and e.get("sha") == sha
                ]
                back = [
                    e
                    for e in events
                    if e["event"] == "switch"
                    and e.get("sha") == a
                    and failed
                    and _seconds(e) >= _seconds(failed[-1])
                ]
                if failed and back:
                    verdicts.append(_seconds(back[0]) - _seconds(failed[-1]))
    finally:
        for name in ("haproxy.log",):
            source = project.root / "proxy" / name
            if source.exists():
                kept = REPO_ROOT / "build" / "bench" / f"zero-downtime-{name}"
                kept.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, kept)
        project.close()
    switch = median(switches) if switches else float("nan")
    verdict = median(verdicts) if verdicts else float("nan")
    base = baseline.tally
    return [
        Metric(
            "zero-downtime",
            "failed requests, blue/green",
            bluegreen.tally.failed,
            CYCLES,
            unit="",
            value=bluegreen.tally.failed,
            limit=0,
            target="= 0",
            meaning=f"{bluegreen.tally.line()} across {CYCLES} deploy + rollback "
            f"cycles, {WORKERS} keep-alive clients; first deploy (venv) {first:.0f} s",
        ),
        Metric(
            "zero-downtime",
            "  baseline: failed requests, in place",
            base.failed,
            CYCLES,
            unit="",
            meaning=f"{base.line()}; the same cycles restarting the app in place",
        ),
        Metric(
            "zero-downtime",
            "  baseline: longest outage, in place",
            base.outage,
            CYCLES,
            meaning="longest run of failing requests during an in-place restart",
        ),
        Metric(
            "zero-downtime",
            "new slot ready -> switched",
            switch,
            len(switches),
            value=switch,
            limit=0.5,
            target="<= 0.5 s",
            samples=switches,
            meaning="the deploy's switch step: current symlink + ledger + haproxy's "
            "runtime API (enable new, wait until up, drain and disable old)",
        ),
        Metric(
            "zero-downtime",
            "CI failure -> previous serving",
            verdict,
            len(verdicts),
            value=verdict,
            limit=1.0,
            target="<= 1 s",
            samples=verdicts,
            meaning=f"ledger: ci failure -> the rollback's switch to the warm slot; "
            f"load meanwhile: {after_ci.tally.line()}",
        ),
        Metric(
            "zero-downtime",
            "  failed requests across CI rollbacks",
            after_ci.tally.failed,
            len(failing),
            unit="",
            value=after_ci.tally.failed,
            limit=0,
            target="= 0",
            meaning="deploy of a failing sha, then its CI verdict and rollback",
        ),
    ]
