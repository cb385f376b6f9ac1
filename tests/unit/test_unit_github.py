"""The GitHub provider's answers to each kind of reply, against a local HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from cicd.ci import FAILURE, INCONCLUSIVE, PENDING, SUCCESS
from cicd.ci.github import GitHubProvider
from cicd.errors import ConfigError

SHA = "a" * 40
RUNS = "/repos/acme/app/actions/workflows/ci.yml/runs"


def provider(server: HTTPServer, **kwargs: object) -> GitHubProvider:
    """A provider pointed at the local server."""
    return GitHubProvider(
        "acme/app", token="t0k3n-value", api_url=server.url_for(""), **kwargs
    )


def run(conclusion: str | None, status: str = "completed", **extra: object) -> dict:
    """One workflow run of SHA."""
    return {
        "id": 9,
        "head_sha": SHA,
        "status": status,
        "conclusion": conclusion,
        "run_number": 3,
        "html_url": "https://github.test/acme/app/actions/runs/9",
        **extra,
    }


def test_repository_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    with pytest.raises(ConfigError, match="GITHUB_REPOSITORY"):
        GitHubProvider.from_environment("ci.yml")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/app")
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")
    built = GitHubProvider.from_environment("ci.yml")
    assert (
        built.runs_url()
        == "http://127.0.0.1:9/repos/acme/app/actions/workflows/ci.yml/runs"
    )
    assert (
        GitHubProvider("o/r", workflow="")
        .runs_url()
        .endswith("/repos/o/r/actions/runs")
    )


def test_each_state_and_conclusion(httpserver: HTTPServer) -> None:
    answers = [
        {"workflow_runs": []},
        {
            "workflow_runs": [
                run(None, "queued"),
                {**run("failure"), "head_sha": "b" * 40},
            ]
        },
        {"workflow_runs": [run("neutral")]},
        {"workflow_runs": [run("success", run_attempt=2)]},
    ]
    expected = [
        (PENDING, "no CI run yet"),
        (PENDING, "run 3 queued"),
        (PENDING, "run 3 completed: neutral"),
        (SUCCESS, "run 3 attempt 2 succeeded"),
    ]
    github = provider(httpserver)
    for answer, (state, detail) in zip(answers, expected, strict=True):
        httpserver.clear()
        httpserver.expect_request(RUNS).respond_with_json(answer)
        poll = github.poll(SHA)
        assert (poll.state, poll.detail) == (state, detail)


def test_failure_names_failed_jobs_even_when_the_jobs_call_fails(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request(RUNS).respond_with_json(
        {"workflow_runs": [run("timed_out", jobs_url=httpserver.url_for("/jobs"))]}
    )
    httpserver.expect_request("/jobs").respond_with_data("nope", 500)
    poll = provider(httpserver).poll(SHA)
    assert (poll.state, poll.failed) == (FAILURE, ())
    httpserver.clear()
    httpserver.expect_request(RUNS).respond_with_json(
        {"workflow_runs": [run("failure", jobs_url=httpserver.url_for("/jobs"))]}
    )
    jobs = {"jobs": [{"name": "lint", "conclusion": "failure", "steps": []}]}
    httpserver.expect_request("/jobs").respond_with_json(jobs)
    assert provider(httpserver).poll(SHA).failed == ("lint",)


def test_errors_are_inconclusive_and_say_how_long_to_wait(
    httpserver: HTTPServer,
) -> None:
    github = provider(httpserver)
    httpserver.expect_request(RUNS).respond_with_data("gone", 404)
    poll = github.poll(SHA)
    assert poll.state == INCONCLUSIVE and "404" in poll.detail
    httpserver.clear()
    httpserver.expect_request(RUNS).respond_with_data(
        "slow down", 429, headers={"retry-after": "7"}
    )
    assert "waiting 7s" in github.poll(SHA).detail and github.wait_hint() == 7
    assert github.wait_hint() == 0  # read once
    httpserver.clear()
    httpserver.expect_request(RUNS).respond_with_data("forbidden", 403)
    github.poll(SHA)
    assert github.wait_hint() == 60
    httpserver.clear()
    httpserver.expect_request(RUNS).respond_with_data("boom", 502)
    assert github.poll(SHA).detail == "GitHub answered 502"
    assert github.wait_hint() == 1.0  # backs off: 1 s, then 2, 4... up to 30


def test_unreachable_api_is_inconclusive_and_hides_the_token(tmp_path: Path) -> None:
    github = GitHubProvider(
        "acme/app", token="t0k3n-value", api_url="http://127.0.0.1:9"
    )
    poll = github.poll(SHA)
    assert poll.state == INCONCLUSIVE and "unreachable" in poll.detail
    assert "t0k3n-value" not in json.dumps(poll.__dict__)
