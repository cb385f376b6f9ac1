"""Fail-fast verdicts: a job that fails while the CI run still runs decides at once.

Against the GitHub stand-in (a real local HTTP server): the provider alone, polled
by hand, then the watcher rolling back on real git and supervisord.
"""

from __future__ import annotations

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from cicd.ci import FAILURE, PENDING, SUCCESS
from cicd.ci.github import GitHubProvider
from cicd.pipeline.deploy import deploy_preprod
from cicd.reporting.notify import Notifier
from cicd.pipeline.watch import watch
from tests.conftest import Project
from tests.github_fake import REPOSITORY, FakeGitHub, error

TOKEN = "ghs_fake_token_for_fail_fast_0123456789"
SHA = "a" * 40


def job(name: str, status: str, conclusion: str | None = None) -> dict[str, object]:
    """One job of a run, as GitHub lists it."""
    steps = [{"name": f"nox -s {name}", "status": status, "conclusion": conclusion}]
    return {"name": name, "status": status, "conclusion": conclusion, "steps": steps}


@pytest.fixture
def github(httpserver: HTTPServer) -> FakeGitHub:
    """The GitHub stand-in on 127.0.0.1."""
    fake = FakeGitHub(httpserver)
    fake.install()
    return fake


def provider(github: FakeGitHub, token: str = TOKEN) -> GitHubProvider:
    """A provider pointed at the stand-in."""
    return GitHubProvider(REPOSITORY, token=token, api_url=github.api_url)


def test_a_failed_job_fails_the_run_before_it_completes(github: FakeGitHub) -> None:
    github.set_run(SHA, "in_progress")
    github.set_jobs(1, [job("tests", "in_progress"), job("docs", "in_progress")])
    ci = provider(github)
    polls = [ci.poll(SHA) for _ in range(3)]
    assert [p.state for p in polls] == [PENDING] * 3
    # Unchanged run and jobs: every poll after the first is two free 304s.
    assert (ci.counters.requests, ci.counters.counted) == (6, 2)
    github.set_jobs(
        1, [job("tests", "completed", "failure"), job("docs", "in_progress")]
    )
    verdict = ci.poll(SHA)
    assert verdict.state == FAILURE and verdict.final
    assert verdict.failed == ("tests › nox -s tests",)
    assert "in progress" in verdict.detail
    # Four polls: each one runs request (304) and one jobs request.
    assert (ci.counters.requests, ci.counters.counted) == (8, 3)
    assert github.runs[0]["status"] == "in_progress"  # the run is not over


@pytest.mark.parametrize("state", ["queued", "in_progress"])
def test_a_run_in_progress_without_failures_gives_no_early_verdict(
    github: FakeGitHub, state: str
) -> None:
    github.set_run(SHA, state)
    github.set_jobs(
        1, [job("tests", "completed", "success"), job("docs", "completed", "skipped")]
    )
    ci = provider(github)
    assert [ci.poll(SHA).state for _ in range(3)] == [PENDING] * 3
    jobs_asked = [path for path, _ in github.log if path.endswith("/jobs")]
    # Queued runs have no jobs to read; in progress, one jobs request a poll.
    assert len(jobs_asked) == (3 if state == "in_progress" else 0)
    github.set_run(SHA, "completed", "success")
    assert ci.poll(SHA).state == SUCCESS


def test_a_cancelled_job_waits_for_the_run_to_say_why(github: FakeGitHub) -> None:
    # A run cancelled by a newer push cancels its jobs first: not a failure yet.
    github.set_run(SHA, "in_progress")
    github.set_jobs(1, [job("tests", "completed", "cancelled")])
    assert provider(github).poll(SHA).state == PENDING


def test_jobs_past_the_first_page_and_a_new_attempt_are_read(
    github: FakeGitHub,
) -> None:
    github.set_run(SHA, "in_progress")
    jobs = [job(f"matrix-{i}", "in_progress") for i in range(130)]
    github.set_jobs(1, jobs)
    ci = provider(github, token="")
    assert ci.poll(SHA).state == PENDING
    jobs[120] = job("matrix-120", "completed", "timed_out")
    github.set_jobs(1, jobs)
    verdict = ci.poll(SHA)
    assert verdict.state == FAILURE
    assert verdict.failed == ("matrix-120 › nox -s matrix-120",)
    pages = [q.get("page") for path, q in github.log if path.endswith("/jobs")]
    assert pages == [None, "2", None, "2"]
    # Without a token a 304 is not free, and none is counted as such.
    assert ci.counters.not_modified == 0
    # A re-run (attempt 2) reads its own jobs, not the first attempt's.
    github.set_run(SHA, "in_progress", attempt=2)
    github.set_jobs(1, [{**job("tests", "in_progress"), "run_attempt": 2}])
    assert ci.poll(SHA).state == PENDING


def test_trouble_reading_jobs_is_no_verdict(github: FakeGitHub) -> None:
    github.set_run(SHA, "in_progress")
    github.set_jobs(1, [job("tests", "completed", "failure")])
    github.interceptor = lambda request: (
        error(502, "Bad Gateway") if request.path.endswith("/jobs") else None
    )
    assert provider(github).poll(SHA).state == PENDING


@pytest.mark.slow
def test_the_watcher_rolls_back_on_the_first_failed_job(
    project: Project, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    project.write(f"""
        [tool.cicd.ci]
        provider = "github"
        repository = "{REPOSITORY}"
        api_url = "{github.api_url}"
        poll_interval = 0.1
        deadline = 20
        """)
    target = project.target()
    v1 = project.repo.commit("v1")
    deploy_preprod([target], v1, Notifier(target))
    github.set_run(v1, "completed", "success", run_id=1)
    assert watch([target], v1, Notifier(target)) == SUCCESS
    v2 = project.repo.commit("v2")
    deploy_preprod([target], v2, Notifier(target))
    github.set_run(v2, "in_progress", run_id=2, number=8)
    github.set_jobs(2, [job("tests", "in_progress"), job("docs", "in_progress")])
    polls = 0

    def fail_on_the_third_poll(request: Request) -> Response | None:
        nonlocal polls
        if request.path.endswith("/runs"):
            polls += 1
            if polls == 3:
                github.set_jobs(
                    2,
                    [job("tests", "completed", "failure"), job("docs", "in_progress")],
                )
        return None

    github.interceptor = fail_on_the_third_poll
    assert watch([target], v2, Notifier(target)) == FAILURE
    assert polls == 3  # decided on the poll that saw the failed job
    assert github.runs[-1]["status"] == "in_progress"
    assert requests.get(project.url(), timeout=5).text.strip() == "v1 ok"
    state = project.target().state()
    assert state.current == v1 and v2 in state.bad


def test_a_jobs_page_that_fails_is_no_verdict(github: FakeGitHub) -> None:
    github.set_run(SHA, "in_progress")
    github.set_jobs(1, [job(f"matrix-{i}", "completed", "failure") for i in range(101)])
    github.interceptor = lambda request: (
        error(502, "Bad Gateway") if request.args.get("page") == "2" else None
    )
    # Half a list is not read as the whole: the run's status decides later.
    assert provider(github).poll(SHA).state == PENDING
