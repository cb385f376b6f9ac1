"""``exposure``: how long a bad commit serves once its CI has failed a job.

CI is the GitHub stand-in of tests/github_fake.py on 127.0.0.1, driven in time by
a thread. The scenario of issue 21: a run whose ``tests`` job fails after 20 s while
its ``docs`` job runs for 120 s. The CI clock is shortened tenfold (tests fails at
2 s, docs ends at 12 s) to keep the bench short; the watcher's poll interval (1 s)
and everything after the verdict (lock, switch, restart, first answer) run in real
time, so the figures compare with "poll interval + 1 s" as they are.

Validated release A serves; B_i is deployed, its run goes in_progress and
``invoke watch`` (a fresh foreground process) polls it. Measured: the tests job's
failure → A answers the health URL again (polled every 0.05 s).

fail-fast
    The watcher as it is: the run's jobs are read while it is in progress, so the
    failed tests job decides at the next poll.
run-complete (baseline)
    The watcher as it was: the failure is visible only once the whole run completes
    (the stand-in shows the tests job's conclusion with the run's), which is what a
    watcher reading only the run's conclusion sees.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from typing import Any

from common import REPO_ROOT, BenchError, Metric, Project, log, median, wait_for_text

sys.path.insert(0, str(REPO_ROOT / "tests"))
from github_fake import REPOSITORY, FakeGitHub  # noqa: E402

ROUNDS = 3
INTERVAL = 1.0
#: CI seconds per bench second: 20 s and 120 s of CI become 2 s and 12 s.
SCALE = 10.0
TESTS_FAIL = 20.0 / SCALE
DOCS_END = 120.0 / SCALE
TOKEN = "bench-token-not-secret"


def _job(name: str, status: str, conclusion: str | None = None) -> dict[str, Any]:
    step = {"name": f"nox -s {name}", "status": status, "conclusion": conclusion}
    return {"name": name, "status": status, "conclusion": conclusion, "steps": [step]}


def _drive(
    fake: FakeGitHub,
    sha: str,
    run_id: int,
    early: bool,
    stop: threading.Event,
    failed: list[float],
) -> None:
    """Play the run: tests fails at TESTS_FAIL, the run completes at DOCS_END."""
    start = time.monotonic()
    fake.set_run(sha, "in_progress", run_id=run_id, number=run_id)
    fake.set_jobs(run_id, [_job("tests", "in_progress"), _job("docs", "in_progress")])
    if stop.wait(TESTS_FAIL):
        return
    failed.append(time.monotonic())
    if early:
        tests = _job("tests", "completed", "failure")
        fake.set_jobs(run_id, [tests, _job("docs", "in_progress")])
    if stop.wait(max(0.0, start + DOCS_END - time.monotonic())):
        return
    fake.set_jobs(
        run_id,
        [_job("tests", "completed", "failure"), _job("docs", "completed", "success")],
    )
    fake.set_run(sha, "completed", "failure", run_id=run_id, number=run_id)


def _round(
    project: Project, fake: FakeGitHub, version: str, run_id: int, early: bool
) -> tuple[float, int, int]:
    """One bad deploy; return (exposure after the failure, requests, counted)."""
    sha = project.commit(version)
    project.invoke("deploy.preprod", "--sha", sha)
    before = (fake.requests, fake.not_modified)
    stop, failed = threading.Event(), []  # type: ignore[var-annotated]
    driver = threading.Thread(
        target=_drive, args=(fake, sha, run_id, early, stop, failed), daemon=True
    )
    driver.start()
    name = project.dir / f"exposure-{version}.log"
    with open(name, "wb") as out:
        proc = subprocess.Popen(
            project.invoke_argv("watch", "--sha", sha, "--env", "preprod"),
            env=project.env(GITHUB_TOKEN=TOKEN),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            ready = wait_for_text(project.url(), "A ok", interval=0.05, deadline=60)
            proc.wait(timeout=60)
        except (subprocess.TimeoutExpired, BenchError):
            proc.kill()
            proc.wait()
            raise BenchError(f"no rollback; see {name}") from None
        finally:
            stop.set()
            driver.join()
    if not failed:
        raise BenchError("the tests job never failed")
    requests = fake.requests - before[0]
    return ready - failed[0], requests, requests - (fake.not_modified - before[1])


def bench_exposure() -> list[Metric]:
    """Exposure window of a bad commit, fail-fast against the run-complete baseline."""
    from pytest_httpserver import HTTPServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    fake = FakeGitHub(server)
    fake.install()
    project = Project("exposure")
    metrics: list[Metric] = []
    try:
        project.write_standin_config(f"""
            [tool.cicd.ci]
            provider = "github"
            repository = "{REPOSITORY}"
            api_url = "{fake.api_url}"
            workflow = "ci.yml"
            poll_interval = {INTERVAL}
            deadline = 120
            """)
        good = project.commit("A")
        project.invoke("deploy.preprod", "--sha", good)
        fake.set_run(good, "completed", "success", run_id=1, number=1)
        project.invoke("watch", "--sha", good)
        figures: dict[bool, tuple[list[float], list[int], list[int]]] = {}
        run_id = 1
        for early in (False, True):
            mode = "fail-fast" if early else "run-complete"
            windows, sent, counted = [], [], []
            for index in range(ROUNDS):
                run_id += 1
                log(f"exposure: {mode} round {index + 1}/{ROUNDS}")
                window, requests, charged = _round(
                    project, fake, f"B{run_id}", run_id, early
                )
                windows.append(window)
                sent.append(requests)
                counted.append(charged)
            figures[early] = (windows, sent, counted)
        baseline = median(figures[False][0])
        for early, (windows, sent, counted) in figures.items():
            value = median(windows)
            metrics.append(
                Metric(
                    "exposure",
                    "failure -> previous serves, "
                    + ("fail-fast" if early else "run-complete (baseline)"),
                    value,
                    ROUNDS,
                    value=value if early else None,
                    limit=INTERVAL + 1.0 if early else None,
                    target=(
                        f"<= poll {INTERVAL:g}+1 = {INTERVAL + 1:g} s" if early else ""
                    ),
                    samples=windows,
                    meaning=f"tests fails at {TESTS_FAIL:g} s, docs ends at "
                    f"{DOCS_END:g} s (CI clock / {SCALE:g}), poll {INTERVAL:g} s; "
                    f"median {median([float(n) for n in sent]):g} requests per "
                    f"watch, {median([float(n) for n in counted]):g} counted"
                    + (f"; baseline {baseline:.2f} s" if early else ""),
                )
            )
    finally:
        project.close()
        server.clear()
        if server.is_running():
            server.stop()
    return metrics
