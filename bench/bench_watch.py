"""``watch``: the CI watcher against a local stand-in for GitHub's REST API.

The fake is tests/github_fake.py (ETag on every answer, 304 on ``If-None-Match``)
served by a pytest-httpserver ``HTTPServer`` started here on 127.0.0.1.

requests counted
    One watch of a CI run scaled from "2 minutes polled every 5 s" (24 polls) to
    12 s polled every 0.5 s: no run for 1 s, queued until 3 s, in_progress until
    12 s, then success. Counted = answers that are not 304 (GitHub does not charge
    conditional requests answered 304).

detection-to-recovery
    Validated release A runs; B_i is deployed and watched (``invoke watch``, a
    fresh foreground process); the fake answers in_progress. Just after the
    watcher's first poll (worst phase: the failure appears 0.1 s after a poll, so
    the watcher sleeps nearly a whole interval before it sees it) the fake starts
    answering conclusion=failure at time T. Measured: T → A answers the health URL
    (polled every 0.05 s). Target: poll interval + 1 s + app boot-to-ready.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from typing import Any

from common import (
    REPO_ROOT,
    BenchError,
    Metric,
    Project,
    log,
    median,
    wait_for_text,
)

sys.path.insert(0, str(REPO_ROOT / "tests"))
from github_fake import REPOSITORY, FakeGitHub  # noqa: E402

ROUNDS = 3
INTERVALS = (5.0, 1.0)
COUNT_INTERVAL = 0.5
#: (seconds after the watcher starts, status, conclusion); None: no run yet.
CI_SCRIPT: tuple[tuple[float, str | None, str | None], ...] = (
    (0.0, None, None),
    (1.0, "queued", None),
    (3.0, "in_progress", None),
    (12.0, "completed", "success"),
)
FAILED_JOBS = [
    {
        "name": "tests",
        "conclusion": "failure",
        "steps": [{"name": "nox -s tests", "conclusion": "failure"}],
    }
]


class Recorder:
    """Times of the fake's requests, per sha (an interceptor that answers nothing)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[float, str]] = []

    def __call__(self, request: Any) -> None:
        """Record one request; the fake then answers as usual."""
        with self.lock:
            self.seen.append((time.monotonic(), request.args.get("head_sha", "")))

    def polls(self, sha: str, after: float = 0.0) -> list[float]:
        """Times of the runs requests for ``sha`` since ``after``."""
        with self.lock:
            return [t for t, s in self.seen if s == sha and t >= after]

    def wait_poll(self, sha: str, after: float, timeout: float = 60.0) -> float:
        """Wait for the first poll for ``sha`` since ``after``; return its time."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            polls = self.polls(sha, after)
            if polls:
                return polls[0]
            time.sleep(0.01)
        raise BenchError(f"the watcher never polled for {sha[:7]}")


def _configure(project: Project, fake: FakeGitHub, interval: float) -> None:
    project.write_standin_config(f"""
        [tool.cicd.ci]
        provider = "github"
        repository = "{REPOSITORY}"
        api_url = "{fake.api_url}"
        workflow = "ci.yml"
        poll_interval = {interval}
        deadline = 120
        """)


def _start_watch(project: Project, sha: str, log_name: str) -> subprocess.Popen[bytes]:
    out = open(project.dir / log_name, "wb")  # noqa: SIM115 - closed by the child's end
    return subprocess.Popen(
        project.invoke_argv("watch", "--sha", sha, "--env", "preprod"),
        env=project.env(GITHUB_TOKEN="bench-token-not-secret"),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def _finish(project: Project, proc: subprocess.Popen[bytes], log_name: str) -> None:
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise BenchError(f"the watcher did not finish; see {log_name}") from None


def _count_run(project: Project, fake: FakeGitHub, sha: str) -> dict[str, int]:
    """Watch a scaled 2-minute CI run; return the fake's request counts."""
    _configure(project, fake, COUNT_INTERVAL)
    before = (fake.requests, fake.not_modified)
    stop = threading.Event()

    def drive(start: float) -> None:
        for at, status, conclusion in CI_SCRIPT:
            if stop.wait(max(0.0, start + at - time.monotonic())):
                return
            if status is None:
                with fake.lock:
                    # The stand-in keeps a list of runs (several per sha) now.
                    fake.runs[:] = [r for r in fake.runs if r["head_sha"] != sha]
            else:
                fake.set_run(sha, status, conclusion)

    proc = _start_watch(project, sha, "watch-count.log")
    driver = threading.Thread(target=drive, args=(time.monotonic(),), daemon=True)
    driver.start()
    try:
        _finish(project, proc, "watch-count.log")
    finally:
        stop.set()
        driver.join()
    if project.root.joinpath("preprod", "validated").read_text().strip() != sha:
        raise BenchError("the count run did not validate its sha")
    requests = fake.requests - before[0]
    not_modified = fake.not_modified - before[1]
    return {
        "requests": requests,
        "not_modified": not_modified,
        "counted": requests - not_modified,
    }


def bench_watch() -> list[Metric]:
    """Requests per watch, and detection-to-recovery with 5 s and 1 s polls."""
    from pytest_httpserver import HTTPServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    fake = FakeGitHub(server)
    fake.install()
    recorder = Recorder()
    fake.interceptor = recorder
    project = Project("watch")
    metrics: list[Metric] = []
    try:
        _configure(project, fake, COUNT_INTERVAL)
        good = project.commit("A")
        log("watch: deploy A, then watch a scaled 2-minute CI run (12 s)")
        project.invoke("deploy.preprod", "--sha", good)
        counts = _count_run(project, fake, good)
        metrics.append(
            Metric(
                "watch",
                "rate-limited requests per watch",
                counts["counted"],
                1,
                unit="req",
                value=counts["counted"],
                limit=5,
                target="<= 5",
                meaning=f"{counts['requests']} requests for a 12 s CI polled every "
                f"{COUNT_INTERVAL:g} s (= 2 min at 5 s), {counts['not_modified']} "
                "answered 304; the fake's body changes only with the run's "
                "status (real GitHub also changes updated_at)",
            )
        )
        for interval in INTERVALS:
            metrics += _recovery(project, fake, recorder, good, interval)
    finally:
        project.close()
        server.clear()
        if server.is_running():
            server.stop()
    return metrics


def _recovery(
    project: Project,
    fake: FakeGitHub,
    recorder: Recorder,
    good: str,
    interval: float,
) -> list[Metric]:
    _configure(project, fake, interval)
    recoveries, detections, boots = [], [], []
    for index in range(ROUNDS):
        version = f"B{interval:g}s{index}"
        sha = project.commit(version)
        log(f"watch: poll {interval:g}s round {index + 1}/{ROUNDS}: deploy {version}")
        project.invoke("deploy.preprod", "--sha", sha)
        # A run in progress has no failed job yet: the watcher reads its jobs
        # (fail fast), and a failed one from the start would decide at once.
        fake.jobs = []
        fake.set_run(sha, "in_progress")
        started = time.monotonic()
        name = f"watch-{version}.log"
        proc = _start_watch(project, sha, name)
        try:
            first = recorder.wait_poll(sha, started)
            time.sleep(max(0.0, first + 0.1 - time.monotonic()))
            fake.jobs = FAILED_JOBS
            fake.set_run(sha, "completed", "failure")
            failed_at = time.monotonic()
            ready = wait_for_text(project.url(), "A ok", interval=0.05, deadline=120)
            recoveries.append(ready - failed_at)
            detections.append(recorder.wait_poll(sha, failed_at) - failed_at)
        finally:
            _finish(project, proc, name)
        boots.append(project.boot("A ok"))
    recovery, boot = median(recoveries), median(boots)
    limit = interval + 1.0 + boot
    return [
        Metric(
            "watch",
            f"detection-to-recovery, poll {interval:g} s",
            recovery,
            ROUNDS,
            value=recovery,
            limit=limit,
            target=f"<= {interval:g}+1+boot = {limit:.2f} s",
            samples=recoveries,
            meaning=f"failure appears -> A answers; of which detection (next poll) "
            f"{median(detections):.2f} s, then verdict + lock + rollback "
            f"{recovery - median(detections):.2f} s; boot {boot:.2f} s "
            "(supervisorctl restart -> first answer)",
        )
    ]
