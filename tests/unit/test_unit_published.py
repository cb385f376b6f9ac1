"""The clients and the stand-ins, held to the published API descriptions.

``tests/data/published_api.json`` records, with the repository and commit they were
read from, the fields, enums and limits of GitHub's REST description and Discord's
OpenAPI description that the pipeline relies on. Each side is checked against it:
what the clients send and read exists there, and what the stand-ins enforce or
answer is what is published, so neither can drift into a private dialect.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer

from cicd.reporting import discord_payload, github_deployments, github_outbox, notify
from cicd.ci import github, github_api
from cicd.ci.github import GitHubProvider
from cicd.core.config_schema import SCHEMA
from tests.discord_fake import FakeDiscord
from tests.github_fake import REPOSITORY, FakeGitHub, secondary_rate_limit

DATA = json.loads(
    (Path(__file__).parents[1] / "data" / "published_api.json").read_text()
)
GH = DATA["github"]
DC = DATA["discord"]
SHA = "c" * 40


def test_the_sources_are_named_with_their_commits() -> None:
    for side in (GH, DC):
        source = side["source"]
        assert "/" in source["repository"] and source["path"]
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    assert re.fullmatch(r"[0-9a-f]{40}", DC["documented_outside_the_spec"]["commit"])


# -- GitHub: the client --------------------------------------------------------


def test_every_field_the_github_client_reads_is_published() -> None:
    source = "".join(Path(m.__file__).read_text() for m in (github, github_api))
    read = set(re.findall(r'\.get\("([a-z_]+)"', source))
    schemas = GH["schemas"]
    published = (
        set(schemas["workflow-run"]["properties"])
        | set(schemas["job"]["properties"])
        | set(schemas["job"]["step_properties"])
        | set(schemas["basic-error"]["properties"])
        | {e["list_key"] for e in GH["endpoints"].values()}
    )
    assert read and read <= published, read - published


def test_the_github_client_asks_only_published_parameters(
    httpserver: HTTPServer,
) -> None:
    fake = FakeGitHub(httpserver)
    fake.install()
    fake.set_run(SHA, "completed", "failure", run_id=4)
    fake.set_jobs(4, [{"name": "tests", "conclusion": "failure", "steps": []}])
    provider = GitHubProvider(REPOSITORY, token="t", api_url=fake.api_url)
    assert provider.poll(SHA).failed == ("tests",)
    endpoints = GH["endpoints"]
    for path, query in fake.log:
        kind = (
            "list_jobs_for_workflow_run"
            if path.endswith("/jobs")
            else ("list_workflow_runs")
        )
        assert set(query) <= set(endpoints[kind]["query"]), (path, query)
        assert int(query["per_page"]) == GH["pagination"]["per_page_max"]
    assert str(github.PER_PAGE) == str(GH["pagination"]["per_page_max"])
    assert dict(fake.log[0][1])["event"] == "push"


def test_the_deployments_client_writes_only_published_states_and_fields() -> None:
    writes = GH["writes"]
    statuses = writes["create_deployment_status"]
    assert list(github_deployments.DEPLOYMENT_STATES) == statuses["state"]
    assert github_deployments.DESCRIPTION_LIMIT == statuses["description_max"]
    assert set(github_outbox.STATUS_EXTRAS) <= set(statuses["body"])
    commits = writes["create_commit_status"]
    assert list(github_deployments.COMMIT_STATES) == commits["state"]


# -- GitHub: the stand-in ------------------------------------------------------


@pytest.fixture
def fake(httpserver: HTTPServer) -> FakeGitHub:
    """The GitHub stand-in on the local server."""
    stand_in = FakeGitHub(httpserver)
    stand_in.install()
    return stand_in


def get(fake: FakeGitHub, path: str, token: str = "t", **query: str) -> Any:
    """One GET to the stand-in."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{fake.api_url}/repos/{REPOSITORY}/actions/{path}"
    return requests.get(url, params=query, headers=headers, timeout=5)


def test_the_stand_in_serves_published_run_and_error_shapes(fake: FakeGitHub) -> None:
    fake.set_run(SHA, "completed", "success", run_id=3)
    listed = get(fake, "workflows/ci.yml/runs").json()
    assert set(listed) == {"total_count", "workflow_runs"}
    (run,) = listed["workflow_runs"]
    assert set(GH["schemas"]["workflow-run"]["required"]) <= set(run)
    assert set(run) <= set(GH["schemas"]["workflow-run"]["properties"])
    for answer, status in (
        (get(fake, "runs/99"), 404),
        (get(fake, "workflows/ci.yml/runs", status="nope"), 422),
        (get(fake, "runs/3/jobs", filter="some"), 422),
    ):
        assert answer.status_code == status
        assert {"message", "documentation_url"} <= set(answer.json())
        assert set(answer.json()) <= set(GH["schemas"]["basic-error"]["properties"])
    fake.tokens = {"good"}
    refused = get(fake, "workflows/ci.yml/runs", token="expired")
    assert refused.status_code == 401 and refused.json()["message"] == "Bad credentials"
    fake.tokens = None
    fake.interceptor = lambda request: secondary_rate_limit()
    limited = get(fake, "workflows/ci.yml/runs")
    assert limited.status_code == 403 and "retry-after" not in limited.headers
    assert {"message", "documentation_url"} <= set(limited.json())


def test_the_stand_in_holds_several_runs_per_sha_and_filters_them(
    fake: FakeGitHub,
) -> None:
    fake.set_run(SHA, "completed", "failure", run_id=1, number=5)
    fake.set_run(SHA, "completed", "failure", run_id=2, number=6, event="pull_request")
    fake.set_run(SHA, "completed", "success", 2, run_id=1, number=5)  # re-run
    runs = get(fake, "workflows/ci.yml/runs", head_sha=SHA).json()["workflow_runs"]
    assert [(r["id"], r["event"]) for r in runs] == [(2, "pull_request"), (1, "push")]
    pushed = get(fake, "workflows/ci.yml/runs", head_sha=SHA, event="push").json()
    assert [(r["id"], r["run_attempt"]) for r in pushed["workflow_runs"]] == [(1, 2)]
    assert (
        get(fake, "workflows/ci.yml/runs", status="success").json()["total_count"] == 1
    )


def test_the_stand_in_pages_as_published(fake: FakeGitHub) -> None:
    for number in range(1, 151):
        fake.set_run(f"{number:040x}", "completed", "success", run_id=number)
    first = get(fake, "workflows/ci.yml/runs")
    assert len(first.json()["workflow_runs"]) == GH["pagination"]["per_page_default"]
    assert 'rel="next"' in first.headers["Link"]
    big = get(fake, "workflows/ci.yml/runs", per_page="500")
    assert len(big.json()["workflow_runs"]) == GH["pagination"]["per_page_max"]
    following = re.search(r'<([^>]+)>; rel="next"', big.headers["Link"])
    assert following
    last = requests.get(following.group(1), headers={"Authorization": "Bearer t"})
    assert len(last.json()["workflow_runs"]) == 50
    assert 'rel="next"' not in last.headers["Link"]
    assert 'rel="prev"' in last.headers["Link"]
    fake.set_jobs(1, [{"name": f"job {n}", "conclusion": "success"} for n in range(31)])
    jobs = get(fake, "runs/1/jobs")
    assert len(jobs.json()["jobs"]) == 30 and jobs.json()["total_count"] == 31


def test_the_stand_in_answers_304_only_to_a_matching_etag_with_a_token(
    fake: FakeGitHub,
) -> None:
    fake.set_run(SHA, "queued")
    etag = get(fake, "workflows/ci.yml/runs").headers["ETag"]
    matching = {"If-None-Match": etag}
    url = f"{fake.api_url}/repos/{REPOSITORY}/actions/workflows/ci.yml/runs"
    with_token = requests.get(url, headers={**matching, "Authorization": "Bearer t"})
    without = requests.get(url, headers=matching)
    stale = requests.get(
        url, headers={"If-None-Match": '"old"', "Authorization": "Bearer t"}
    )
    assert (with_token.status_code, without.status_code, stale.status_code) == (
        304,
        200,
        200,
    )
    assert fake.counted == 3  # of the four requests, only the authorized 304 is free


def test_each_run_has_its_own_jobs_and_latest_is_its_last_attempt(
    fake: FakeGitHub,
) -> None:
    fake.set_run(SHA, "completed", "success", 2, run_id=8)
    fake.set_jobs(
        8,
        [
            {"name": "tests", "conclusion": "failure", "run_attempt": 1},
            {"name": "tests", "conclusion": "success", "run_attempt": 2},
        ],
    )
    latest = get(fake, "runs/8/jobs").json()["jobs"]
    assert [j["conclusion"] for j in latest] == ["success"]
    assert len(get(fake, "runs/8/jobs", filter="all").json()["jobs"]) == 2


# -- Discord: the client -------------------------------------------------------


def test_the_notifiers_limits_are_the_published_ones() -> None:
    limits = DC["limits"]
    assert discord_payload.DISCORD_LIMIT == limits["content"]
    assert discord_payload.TITLE_LIMIT == limits["embed_title"]
    assert discord_payload.DESCRIPTION_LIMIT == limits["embed_description"]
    assert discord_payload.FIELD_LIMIT == limits["field_value"]
    assert discord_payload.FIELD_NAME_LIMIT == limits["field_name"]
    assert discord_payload.FOOTER_LIMIT == limits["footer_text"]
    assert discord_payload.AUTHOR_LIMIT == limits["author_name"]
    assert discord_payload.EMBED_TOTAL_LIMIT == limits["embed_total"]
    assert discord_payload.EMBEDS_LIMIT == limits["embeds"]
    assert discord_payload.FIELDS_LIMIT == limits["embed_fields"]
    assert discord_payload.URL_LIMIT == limits["url"] == max(DC["url_limits"].values())
    assert (discord_payload.USERNAME_MIN, discord_payload.USERNAME_MAX) == (
        limits["username_min"],
        limits["username_max"],
    )
    username = SCHEMA["notify"]["username"]
    assert username.length == (limits["username_min"], limits["username_max"])
    assert list(username.forbidden) == DC["username_forbidden"]


def test_the_notifiers_payload_and_query_are_published(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    import invoke

    from cicd.core.config import from_table
    from cicd.transport.runner import Runner
    from cicd.host.target import Target

    discord = FakeDiscord(httpserver).install()
    settings = from_table({}, project_dir=tmp_path)
    target = Target(Runner(invoke.Context()), settings, "preprod")
    sender = notify.Notifier(target, webhook=discord.url, console=io.StringIO())
    assert sender.send("✅ PREPROD - Deployed") is True
    (request, _), *_ = httpserver.log
    assert set(request.args) <= set(DC["execute_webhook"]["query"])
    assert set(request.get_json()) <= set(DC["execute_webhook"]["request_properties"])


def test_a_fitted_payload_is_within_every_published_limit() -> None:
    limits = DC["limits"]
    huge = {
        "content": "c" * 5000,
        "username": "u" * 200,
        "embeds": [
            {
                "title": "t" * 999,
                "description": "d" * 9999,
                "url": "https://x.test/" + "u" * 3000,
                "footer": {
                    "text": "f" * 3000,
                    "icon_url": "https://x.test/" + "i" * 3000,
                },
                "author": {"name": "a" * 999, "url": "https://x.test/" + "a" * 3000},
                "fields": [{"name": "n" * 999, "value": "v" * 9999}] * 40,
            }
        ]
        * 12,
    }
    from tests.discord_fake import problems

    assert problems(huge)
    fitted = discord_payload.fit(huge)
    assert problems(fitted) == {}
    assert discord_payload.embed_total(fitted["embeds"]) <= limits["embed_total"]


# -- Discord: the stand-in -----------------------------------------------------


def post(discord: FakeDiscord, payload: Any, wait: str | None = "true") -> Any:
    """One execute-webhook request to the stand-in."""
    params = {"wait": wait} if wait is not None else {}
    return requests.post(discord.url, params=params, json=payload, timeout=5)


def embed(**fields: Any) -> dict[str, Any]:
    """A message of one embed with ``fields``."""
    return {"embeds": [{"title": "t", **fields}]}


LIMITED: list[tuple[str, Any]] = [
    ("content", lambda n: {"content": "x" * n}),
    ("embed_title", lambda n: {"embeds": [{"title": "x" * n}]}),
    ("embed_description", lambda n: embed(description="x" * n)),
    ("url", lambda n: embed(url="https://x.test/" + "u" * (n - 15))),
    ("footer_text", lambda n: embed(footer={"text": "x" * n})),
    ("author_name", lambda n: embed(author={"name": "x" * n})),
    ("field_name", lambda n: embed(fields=[{"name": "x" * n, "value": "v"}])),
    ("field_value", lambda n: embed(fields=[{"name": "n", "value": "x" * n}])),
    ("embed_fields", lambda n: embed(fields=[{"name": "n", "value": "v"}] * n)),
    ("embeds", lambda n: {"embeds": [{"title": "t"}] * n}),
    (
        "embed_total",
        lambda n: {
            "embeds": [
                {"description": "x" * 4000},
                {"description": "y" * (n - 4000)},
            ]
        },
    ),
    ("username_max", lambda n: {"content": "hi", "username": "x" * n}),
]


@pytest.mark.parametrize(("limit", "make"), LIMITED, ids=[n for n, _ in LIMITED])
def test_the_stand_in_enforces_each_published_limit_exactly(
    httpserver: HTTPServer, limit: str, make: Any
) -> None:
    discord = FakeDiscord(httpserver).install()
    at = DC["limits"][limit]
    assert post(discord, make(at)).status_code == 200
    refused = post(discord, make(at + 1))
    body = refused.json()
    assert refused.status_code == 400
    assert body["code"] == DC["error_codes"]["invalid_form_body"]
    assert set(DC["error"]["required"]) <= set(body) <= set(DC["error"]["properties"])
    assert body["errors"]
    assert len(discord.messages) == 1


def test_the_stand_in_refuses_a_short_or_forbidden_username(
    httpserver: HTTPServer,
) -> None:
    discord = FakeDiscord(httpserver).install()
    for name in ("", "The Discord bot", "clyde"):
        answer = post(discord, {"content": "hi", "username": name})
        assert answer.status_code == 400 and "username" in answer.json()["errors"]


def test_the_stand_in_honours_wait_and_a_deleted_webhook(
    httpserver: HTTPServer,
) -> None:
    discord = FakeDiscord(httpserver).install()
    saved = post(discord, {"content": "hi"})
    assert saved.status_code == 200
    assert set(DC["execute_webhook"]["message_required"]) <= set(saved.json())
    assert re.fullmatch(r"[1-9][0-9]*", saved.json()["id"])
    assert post(discord, {"content": "hi"}, wait=None).status_code == 204
    assert post(discord, {"content": "hi"}, wait="false").status_code == 204
    assert post(discord, {"content": "hi"}, wait="maybe").status_code == 400
    empty = post(discord, {"content": ""})
    assert empty.json()["code"] == DC["error_codes"]["empty_message"]
    discord.rate_limits.append(0.5)
    limited = post(discord, {"content": "hi"})
    assert limited.status_code == 429
    assert set(DC["rate_limited"]["required"]) <= set(limited.json())
    discord.deleted = True
    gone = post(discord, {"content": "hi"})
    assert gone.status_code == 404
    assert gone.json() == {
        "code": DC["error_codes"]["unknown_webhook"],
        "message": "Unknown Webhook",
    }
    assert [m["content"] for m in discord.messages] == ["hi", "hi", "hi"]
