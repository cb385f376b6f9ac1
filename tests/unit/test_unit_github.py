"""The GitHub provider's answers to each kind of reply, against a local HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from cicd.ci import FAILURE, INCONCLUSIVE, PENDING, SUCCESS, SUPERSEDED
from cicd.ci.github import GitHubProvider
from cicd.core.errors import ConfigError

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
        (INCONCLUSIVE, "run 3 completed: neutral (neither a pass nor a failure)"),
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
    httpserver.expect_request(RUNS).respond_with_data(
        "limited", 403, headers={"x-ratelimit-remaining": "0"}
    )
    github.poll(SHA)
    assert github.wait_hint() == 60
    # A bare 403 is GitHub's secondary rate limit (no header says so): wait a
    # minute, as GitHub asks, and say GitHub's own words.
    httpserver.clear()
    httpserver.expect_request(RUNS).respond_with_json(
        {
            "message": "You have exceeded a secondary rate limit.",
            "documentation_url": "https://docs.github.com/rest",
        },
        status=403,
    )
    refused = github.poll(SHA)
    assert "403" in refused.detail and "secondary rate limit" in refused.detail
    assert github.wait_hint() >= 60
    httpserver.clear()
    httpserver.expect_request(RUNS).respond_with_data("<html>oops</html>", 200)
    assert github.poll(SHA).detail == "GitHub answered 200 with no JSON"
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
    # A refused connection backs off as a 5xx does: 1 s, then 2, 4... up to 30.
    assert github.wait_hint() == 1.0
    waits = []
    for _ in range(7):
        github.poll(SHA)
        waits.append(github.wait_hint())
    assert waits == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


@pytest.mark.parametrize(
    "conclusion, state",
    [
        ("failure", FAILURE),
        ("timed_out", FAILURE),
        ("startup_failure", FAILURE),
        ("cancelled", INCONCLUSIVE),
        ("skipped", INCONCLUSIVE),
        ("stale", INCONCLUSIVE),
        ("neutral", INCONCLUSIVE),
        ("action_required", INCONCLUSIVE),
    ],
)
def test_only_real_failures_fail_a_sha(
    httpserver: HTTPServer, conclusion: str, state: str
) -> None:
    httpserver.expect_request(RUNS).respond_with_json(
        {"workflow_runs": [run(conclusion, head_branch="main", jobs_url="")]}
    )
    poll = provider(httpserver).poll(SHA)
    assert poll.state == state
    # A completed run will not change by polling again: the watch ends now.
    assert poll.final


def test_a_run_cancelled_by_a_newer_push_is_superseded(httpserver: HTTPServer) -> None:
    newer = {**run("cancelled"), "id": 10, "run_number": 4, "head_sha": "b" * 40}
    httpserver.expect_request(
        RUNS, query_string={"branch": "main", "event": "push", "per_page": "100"}
    ).respond_with_json({"workflow_runs": [newer, run("cancelled")]})
    httpserver.expect_request(RUNS).respond_with_json(
        {"workflow_runs": [run("cancelled", head_branch="main")]}
    )
    github = provider(httpserver)
    poll = github.poll(SHA)
    assert poll.state == SUPERSEDED
    assert poll.detail == "run 3 cancelled: superseded by bbbbbbb"
    assert github.counters.requests == 2  # the branch listing only when cancelled


def test_an_expired_job_token_says_what_to_set(httpserver: HTTPServer) -> None:
    httpserver.expect_request(RUNS).respond_with_json(
        {"message": "Bad credentials"}, status=401
    )
    poll = provider(httpserver).poll(SHA)
    assert poll.state == INCONCLUSIVE and not poll.final
    assert "401" in poll.detail and "CICD_GITHUB_TOKEN" in poll.detail
    assert "\n" not in poll.detail


def test_the_long_lived_token_wins_over_the_job_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/app")
    monkeypatch.setenv("GITHUB_TOKEN", "job-token-1")
    monkeypatch.setenv("CICD_GITHUB_TOKEN", "long-lived-2")
    assert GitHubProvider.from_environment("ci.yml").token == "long-lived-2"
    monkeypatch.setenv("CICD_GITHUB_TOKEN", "")
    assert GitHubProvider.from_environment("ci.yml").token == "job-token-1"


def test_reading_one_run_by_id_costs_one_request(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/repos/acme/app/actions/runs/9").respond_with_json(
        run("success", run_attempt=2)
    )
    github = provider(httpserver)
    poll = github.run(SHA, "9")
    assert (poll.state, poll.run, github.counters.requests) == (SUCCESS, "9/2", 1)
    other = github.run("c" * 40, "9")
    assert other.state == INCONCLUSIVE and "not ccccccc" in other.detail


def test_a_run_without_a_number_is_named_by_its_id(httpserver: HTTPServer) -> None:
    httpserver.expect_request(RUNS).respond_with_json(
        {"workflow_runs": [run(None, "in_progress", run_number=None)]}
    )
    assert provider(httpserver).poll(SHA).detail == "run id 9 in_progress"


def test_only_push_runs_decide_as_in_the_verdict_job(httpserver: HTTPServer) -> None:
    # ci.yml runs on push and pull_request; ci-verdict.yml acts on push runs only.
    pull = {**run("failure"), "id": 12, "run_number": 8, "event": "pull_request"}
    push = {**run("success"), "event": "push"}
    httpserver.expect_request(
        RUNS, query_string={"head_sha": SHA, "event": "push", "per_page": "100"}
    ).respond_with_json({"workflow_runs": [pull, push]})
    assert provider(httpserver).poll(SHA).state == SUCCESS


def test_the_newest_attempt_of_a_run_decides(httpserver: HTTPServer) -> None:
    first = run("failure", run_attempt=1, jobs_url="")
    rerun = run("success", run_attempt=2)
    httpserver.expect_request(RUNS).respond_with_json({"workflow_runs": [rerun, first]})
    poll = provider(httpserver).poll(SHA)
    assert (poll.state, poll.detail) == (SUCCESS, "run 3 attempt 2 succeeded")


def test_runs_are_read_past_the_first_page(httpserver: HTTPServer) -> None:
    page_two = httpserver.url_for("/page2")
    httpserver.expect_request(RUNS).respond_with_json(
        {"workflow_runs": [run("failure", jobs_url="")]},
        headers={"Link": f'<{page_two}>; rel="next", <{page_two}>; rel="last"'},
    )
    newer = {**run("success"), "id": 11, "run_number": 5}
    httpserver.expect_request("/page2").respond_with_json({"workflow_runs": [newer]})
    github = provider(httpserver)
    poll = github.poll(SHA)
    assert (poll.state, poll.detail) == (SUCCESS, "run 5 succeeded")
    assert github.counters.requests == 2


def test_a_failed_job_past_the_first_page_is_named(httpserver: HTTPServer) -> None:
    jobs_url = httpserver.url_for("/jobs")
    httpserver.expect_request(RUNS).respond_with_json(
        {"workflow_runs": [run("failure", jobs_url=jobs_url)]}
    )
    passed = [{"name": f"job {n}", "conclusion": "success"} for n in range(100)]
    httpserver.expect_request(
        "/jobs", query_string={"filter": "latest", "per_page": "100"}
    ).respond_with_json(
        {"total_count": 101, "jobs": passed},
        headers={"Link": f'<{jobs_url}?page=2>; rel="next"'},
    )
    failed = {"name": "docs", "conclusion": "failure", "steps": []}
    httpserver.expect_request("/jobs", query_string="page=2").respond_with_json(
        {"total_count": 101, "jobs": [failed]}
    )
    assert provider(httpserver).poll(SHA).failed == ("docs",)


@pytest.mark.parametrize("token, counted", [("t0k3n-value", 1), ("", 2)])
def test_a_304_is_free_only_with_a_token(
    httpserver: HTTPServer, token: str, counted: int
) -> None:
    etag = '"v1"'

    def answer(request: object) -> object:
        from werkzeug import Response

        if request.headers.get("If-None-Match") == etag:  # type: ignore[attr-defined]
            return Response(status=304, headers={"ETag": etag})
        body = json.dumps({"workflow_runs": [run(None, "queued")]})
        return Response(body, 200, {"ETag": etag}, content_type="application/json")

    httpserver.expect_request(RUNS).respond_with_handler(answer)
    github = GitHubProvider("acme/app", token=token, api_url=httpserver.url_for(""))
    assert github.poll(SHA).state == github.poll(SHA).state == PENDING
    assert (github.counters.requests, github.counters.counted) == (2, counted)


def test_a_page_that_fails_makes_the_poll_inconclusive(httpserver: HTTPServer) -> None:
    # Half a list is not the list: the newest run may be on the page that failed.
    page_two = httpserver.url_for("/page2")
    httpserver.expect_request(RUNS).respond_with_json(
        {"workflow_runs": [run("failure", jobs_url="")]},
        headers={"Link": f'<{page_two}>; rel="next"'},
    )
    httpserver.expect_request("/page2").respond_with_data("boom", 502)
    poll = provider(httpserver).poll(SHA)
    assert (poll.state, poll.detail) == (INCONCLUSIVE, "GitHub answered 502")
