"""GitHub deployments and commit statuses that follow the CI verdict.

Against the GitHub stand-in (a real local HTTP server), real git and a real
supervisord: the Environments-panel story of one push that CI fails, a GitHub that
answers 500 or is down (the deploy never fails, the calls are delivered next time),
and no call at all without provider github.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from cicd.reporting import github_deployments
from cicd.pipeline.activation import DeployFailed
from cicd.pipeline.production import deploy_prod
from cicd.reporting.notify import Notifier
from cicd.pipeline.rollback import rollback
from cicd.pipeline.watch import verdict, watch
from tests.conftest import Project, invoke
from tests.github_fake import FakeGitHub, error
from tests.github_fake import REPOSITORY
from tests.integration.test_watch import TOKEN, body, deploy

FAILED_JOBS = [
    {
        "name": "tests",
        "conclusion": "failure",
        "steps": [{"name": "nox -s tests", "conclusion": "failure"}],
    },
    {"name": "docs", "conclusion": "success", "steps": []},
]


@pytest.fixture
def github(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeGitHub]:
    """The GitHub stand-in, a token, a CD run; each test a fresh reporter."""
    fake = FakeGitHub(httpserver)
    fake.install()
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.test")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/mangetamain")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    github_deployments.reset()
    yield fake
    github_deployments.reset()


def use_github(
    project: Project,
    github: FakeGitHub,
    api_url: str = "",
    preprod: str = "",
    deadline: float = 8,
) -> None:
    """Provider github, its API the stand-in (or ``api_url``)."""
    project.write(
        f"""
        [tool.cicd.ci]
        provider = "github"
        repository = "{REPOSITORY}"
        api_url = "{api_url or github.api_url}"
        poll_interval = 0.1
        deadline = 20
        """,
        preprod=preprod,
        deadline=deadline,
    )


def outbox(project: Project, env: str = "preprod") -> list[dict[str, object]]:
    """The calls still queued for GitHub."""
    path = project.root / env / "github-outbox.json"
    return list(json.loads(path.read_text())["outbox"]) if path.exists() else []


def test_the_environments_panel_story_of_a_push_that_ci_fails(
    project: Project, github: FakeGitHub, capfd: pytest.CaptureFixture[str]
) -> None:
    use_github(project, github, preprod='public_url = "https://preprod.example.test"')
    target = project.target()
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    first = github.writes
    github.set_run(v1, "completed", "success", run_id=1)
    assert watch([target], v1, Notifier(target)) == "success"
    v2 = project.repo.commit("v2")
    before = github.writes
    deploy(project, v2)
    per_deploy = github.writes - before
    github.set_jobs(2, FAILED_JOBS)
    github.set_run(v2, "completed", "failure", run_id=2, number=8)
    before = github.writes
    assert watch([target], v2, Notifier(target)) == "failure"
    on_failure = github.writes - before
    assert body(project) == "v1 ok"
    a, b = v1[:7], v2[:7]
    assert github.story == [
        f"deployment 1000 preprod {a} deploy",
        f"deployment 1000 preprod {a} in_progress: deploy of {a} started",
        f"deployment 1000 preprod {a} success: {a} serves",
        f"status {a} cicd/preprod pending: deployed; waiting for CI",
        f"status {a} cicd/preprod success: validated by CI",
        f"deployment 1001 preprod {b} deploy",
        f"deployment 1001 preprod {b} in_progress: deploy of {b} started",
        f"deployment 1001 preprod {b} success: {b} serves",
        f"deployment 1000 preprod {a} inactive (auto_inactive)",
        f"status {b} cicd/preprod pending: deployed; waiting for CI",
        f"deployment 1001 preprod {b} failure: CI failed: tests › nox -s tests",
        f"status {b} cicd/preprod failure: CI failed: tests › nox -s tests",
        f"deployment 1002 preprod {a} rollback",
        f"deployment 1002 preprod {a} in_progress: rollback to {a} started",
        f"deployment 1002 preprod {a} success: {a} serves (rollback)",
    ]
    # What serves is the newest successful deployment; the others say why not.
    last = {d["id"]: d["statuses"][-1]["state"] for d in github.deployments}
    assert last == {1000: "inactive", 1001: "failure", 1002: "success"}
    served = github.deployments[2]["statuses"][-1]
    assert served["environment_url"] == "https://preprod.example.test"
    assert served["log_url"] == "https://github.test/acme/mangetamain/actions/runs/42"
    failed = github.deployments[1]["statuses"][-1]
    assert failed["log_url"].endswith("/actions/runs/2")
    created = github.deployments[0]
    assert created["ref"] == v1 and created["task"] == "deploy"
    assert not created["production_environment"]
    # The requests: 4 per deploy, 1 per validation, 5 for a failure's rollback.
    assert (first, per_deploy, on_failure) == (4, 4, 5)
    assert outbox(project) == []
    # A re-run that passes validates the sha: its commit status says so (it
    # serves no more: the deployments stay as they are).
    github.set_run(v2, "completed", "success", 2, run_id=2, number=8)
    assert verdict([target], v2, "2", Notifier(target)) == "success"
    assert github.story[-1] == f"status {b} cicd/preprod success: validated by CI"
    assert TOKEN not in capfd.readouterr().err
    print("\n".join(github.story))  # the story, for ``pytest -s``


def test_production_deploys_supersede_by_hand(
    project: Project, github: FakeGitHub
) -> None:
    """GitHub's auto_inactive skips production: the previous one is set inactive."""
    use_github(project, github)
    target = project.target()
    prod = project.target("prod")
    shas = []
    for name in ("v1", "v2"):
        sha = project.repo.commit(name)
        deploy(project, sha)
        github.set_run(sha, "completed", "success", run_id=len(shas) + 1)
        watch([target], sha, Notifier(target))
        deploy_prod(
            [prod], target, sha, confirm="DEPLOY", force=False, notifier=Notifier(prod)
        )
        shas.append(sha)
    production = [line for line in github.story if " production " in line]
    a, b = shas[0][:7], shas[1][:7]
    assert production[-3:] == [
        f"deployment 1003 production {b} in_progress: deploy of {b} started",
        f"deployment 1001 production {a} inactive: superseded",
        f"deployment 1003 production {b} success: {b} serves",
    ]
    assert github.deployments[1]["production_environment"]
    assert github.commit_statuses[-1]["context"] == "cicd/production"
    assert github.commit_statuses[-1]["state"] == "success"


@pytest.mark.parametrize("trouble", ["500", "down"])
def test_a_github_in_trouble_never_fails_a_deploy_and_gets_its_calls_later(
    project: Project, github: FakeGitHub, trouble: str
) -> None:
    # Down: a loopback port nothing listens on.
    use_github(
        project, github, api_url="http://127.0.0.1:9" if trouble == "down" else ""
    )
    if trouble == "500":
        use_github(project, github)
        github.write_interceptor = lambda request: error(500, "Server Error")
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    assert body(project) == "v1 ok"
    queued = outbox(project)
    assert [c["op"] for c in queued] == ["create", "status", "status", "commit"]
    assert github.story == []
    # The next run: GitHub answers again and gets every call, in order, first.
    github.write_interceptor = None
    use_github(project, github)
    github_deployments.reset()
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    assert outbox(project) == []
    a, b = v1[:7], v2[:7]
    assert github.story[:4] == [
        f"deployment 1000 preprod {a} deploy",
        f"deployment 1000 preprod {a} in_progress: deploy of {a} started",
        f"deployment 1000 preprod {a} success: {a} serves",
        f"status {a} cicd/preprod pending: deployed; waiting for CI",
    ]
    assert github.story[4] == f"deployment 1001 preprod {b} deploy"


def test_a_refused_call_is_set_aside(project: Project, github: FakeGitHub) -> None:
    use_github(project, github)

    def refuse(request: Request) -> Response | None:
        if request.path.endswith("/deployments"):
            return error(422, "Validation Failed")
        return None

    github.write_interceptor = refuse
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    assert outbox(project) == []
    rejected = (project.root / "preprod" / "github-rejected.jsonl").read_text()
    assert "422" in rejected
    # Its statuses are moot; the commit status still goes.
    assert github.story == [
        f"status {v1[:7]} cicd/preprod pending: deployed; waiting for CI"
    ]


def test_without_provider_github_no_call_is_made(
    project: Project, github: FakeGitHub
) -> None:
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    target = project.target()
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    rollback([target], Notifier(target), to=v1[:7])
    assert github.writes == 0 and github.requests == 0
    assert not (project.root / "preprod" / "github-outbox.json").exists()


@pytest.mark.slow
def test_a_deploy_that_never_gets_ready_fails_and_what_serves_is_shown(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github)
    good = project.repo.commit("v1")
    deploy(project, good)
    bad = project.repo.commit("v2", mode="crash")
    use_github(project, github, deadline=1.5)
    with pytest.raises(DeployFailed):
        deploy(project, bad)
    a, b = good[:7], bad[:7]
    story = github.story[4:]
    assert story[:2] == [
        f"deployment 1001 preprod {b} deploy",
        f"deployment 1001 preprod {b} in_progress: deploy of {b} started",
    ]
    assert story[2].startswith(f"deployment 1001 preprod {b} failure: not deployed")
    assert story[3:] == [
        f"deployment 1002 preprod {a} rollback",
        f"deployment 1002 preprod {a} success: {a} serves again",
        f"deployment 1000 preprod {a} inactive (auto_inactive)",
    ]
    assert len(github.deployments[1]["statuses"][-1]["description"]) <= 140


def test_a_rollback_by_hand_fails_the_abandoned_deployment(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github)
    target = project.target()
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    github.story.clear()
    rollback([target], Notifier(target), to=v1[:7], reason="by hand")
    a, b = v1[:7], v2[:7]
    assert github.story == [
        f"deployment 1002 preprod {a} rollback",
        f"deployment 1002 preprod {a} in_progress: rollback to {a} started",
        f"deployment 1001 preprod {b} failure: rolled back: by hand",
        f"status {b} cicd/preprod failure: rolled back: by hand",
        f"deployment 1002 preprod {a} success: {a} serves (rollback)",
    ]


def test_a_refused_token_keeps_the_calls(project: Project, github: FakeGitHub) -> None:
    """401 and 403 may pass (a token or a permission fixed): kept, not set aside."""
    use_github(project, github)
    github.tokens = {"another"}
    deploy(project, project.repo.commit("v1"))
    assert len(outbox(project)) == 4
    assert not (project.root / "preprod" / "github-rejected.jsonl").exists()
    github.tokens = {TOKEN}
    github_deployments.reset()
    target = project.target()
    reporter = github_deployments.reporter(target, Notifier(target))
    assert isinstance(reporter, github_deployments.GitHubDeployments)
    assert reporter.flush() == 0
    assert len(github.story) == 4


def test_descriptions_fit_githubs_limit() -> None:
    text = "CI failed for abc\nFailed: " + "x" * 200 + "\nhttps://ci.example/run/1"
    said = github_deployments.describe(text)
    assert len(said) == 140 and said.endswith("…") and "https" not in said
    assert github_deployments.context_of("prod") == "cicd/production"
    assert github_deployments.environment_of("preprod") == "preprod"


def test_a_cancelled_or_inconclusive_ci_leaves_an_error_status(
    project: Project, github: FakeGitHub
) -> None:
    """Neither pending forever nor a failure: nothing says the commit is bad."""
    use_github(project, github)
    target = project.target()
    reporter = github_deployments.reporter(target, Notifier(target))
    reporter.verdict("a" * 40, "superseded", "run 7 cancelled", "", acted=False)
    reporter.verdict("b" * 40, "inconclusive", "still pending", "", acted=False)
    assert github.story == [
        "status aaaaaaa cicd/preprod error: CI cancelled: superseded",
        "status bbbbbbb cicd/preprod error: CI inconclusive: still pending",
    ]


def test_notify_flush_delivers_the_github_calls_kept_by_hand(
    project: Project, github: FakeGitHub
) -> None:
    github.write_interceptor = lambda request: error(500, "Server Error")
    use_github(project, github)
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    assert len(outbox(project)) == 4 and github.story == []
    github.write_interceptor = None
    github_deployments.reset()
    flushed = invoke("notify.flush", "--env", "preprod")
    assert flushed.returncode == 0, flushed.stderr
    assert "preprod: GitHub calls all delivered" in flushed.stdout
    assert outbox(project) == []
    assert (
        github.story[2] == f"deployment 1000 preprod {v1[:7]} success: {v1[:7]} serves"
    )
