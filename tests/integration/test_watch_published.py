"""The watcher against stand-ins as strict as GitHub and Discord.

GitHub holds a ``push`` and a ``pull_request`` run of the same sha, pages its lists
and answers 304 only to an authorized conditional request; Discord refuses what it
refuses and returns the saved message. The watcher must decide as the verdict job
does (push runs only), name a failed job wherever it is listed, and have each
message saved.
"""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from cicd.reporting.notify import Notifier
from cicd.pipeline.watch import watch
from tests.conftest import Project
from tests.discord_fake import FakeDiscord
from tests.github_fake import FakeGitHub
from tests.integration.test_watch import TOKEN, body, deploy, use_github


@pytest.fixture
def github(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> FakeGitHub:
    """A scripted GitHub API on 127.0.0.1; GITHUB_TOKEN set to a fake token."""
    fake = FakeGitHub(httpserver)
    fake.install()
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    return fake


@pytest.mark.slow
def test_a_failing_pull_request_run_of_the_sha_does_not_roll_it_back(
    project: Project, github: FakeGitHub
) -> None:
    # ci.yml runs on push and pull_request; ci-verdict.yml acts on push runs
    # only. The pull_request run is newer (higher number) and failed: the watcher
    # must follow the push run, as the verdict job does.
    use_github(project, github)
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    github.set_run(v1, "completed", "success", run_id=1, number=1)
    target = project.target()
    assert watch([target], v1, Notifier(target)) == "success"
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    github.set_run(v2, "completed", "success", run_id=2, number=2)
    github.set_run(v2, "completed", "failure", run_id=3, number=3, event="pull_request")
    before = github.counted
    assert watch([target], v2, Notifier(target)) == "success"
    assert body(project) == "v2 ok"
    assert project.target().state().validated == v2
    assert github.counted - before <= 2


@pytest.mark.slow
def test_a_failed_job_past_the_first_page_is_named_in_the_saved_message(
    project: Project, github: FakeGitHub, httpserver: HTTPServer
) -> None:
    discord = FakeDiscord(httpserver).install()
    use_github(project, github)
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    github.set_run(v1, "completed", "success", run_id=1, number=1)
    target = project.target()
    watch([target], v1, Notifier(target, webhook=discord.url))
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    jobs = [{"name": f"matrix {n}", "conclusion": "success"} for n in range(40)]
    jobs[34] = {"name": "docs (linkcheck)", "conclusion": "failure", "steps": []}
    github.set_run(v2, "completed", "failure", run_id=2, number=2)
    github.set_jobs(2, jobs)
    notifier = Notifier(target, webhook=discord.url)
    assert watch([target], v2, notifier) == "failure"
    assert body(project) == "v1 ok"
    assert discord.refused == [] and notifier.pending() == []
    assert any("docs (linkcheck)" in text for text in discord.texts())
