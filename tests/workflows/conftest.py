"""Fixtures of the workflow tier: act, the VM (config, root, tool venv), the runner.

Every test gets its own origin repository (the project's files from the working tree,
plus the stand-in app under ``app/``), its own configuration and root (the
``project`` fixture of tests/conftest.py) and a :class:`tests.act_harness.Runner`
wired to a GitHub stand-in and a Discord sink on one local HTTP server. The
wheelhouse, the tool's venv and act's home are built once per test session, as on a
VM where the venv outlives the jobs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer

from tests import act_harness
from tests.act_harness import DiscordSink, JobResult, Runner, workflow_run_event
from tests.conftest import AppRepo, Project, shutdown_supervisord
from tests.github_fake import FakeGitHub

logging.getLogger("werkzeug").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def act_binary() -> str:
    """The act binary, or a skip saying how to get it."""
    found = act_harness.find_act()
    if not found:
        pytest.skip(act_harness.ACT_MISSING)
    return found


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory, act_binary: str) -> Path:
    """Wheels for the jobs' offline installs, shared by the session's xdist workers."""
    shared = tmp_path_factory.getbasetemp().parent
    return act_harness.build_wheelhouse(shared / "act-wheelhouse")


@pytest.fixture(scope="session")
def origin_template(tmp_path_factory: pytest.TempPathFactory, act_binary: str) -> Path:
    """A git repository of the project's working tree (copied once per session)."""
    return act_harness.make_origin(tmp_path_factory.mktemp("act-origin") / "repo")


@pytest.fixture(scope="session")
def vm(tmp_path_factory: pytest.TempPathFactory, act_binary: str) -> Path:
    """What outlives the jobs on the VM: the tool's venv, the runner's home."""
    return tmp_path_factory.mktemp("vm")


@pytest.fixture
def app_repo(tmp_path: Path, origin_template: Path) -> AppRepo:
    """The test's origin: the project, then the stand-in app's commits on top."""
    path = tmp_path / "source"
    shutil.copytree(origin_template, path, symlinks=True)
    return AppRepo(path)


@pytest.fixture
def github(httpserver: HTTPServer) -> FakeGitHub:
    """The GitHub API stand-in; only tokens of running jobs are accepted."""
    fake = FakeGitHub(httpserver, tokens=set())
    fake.install()
    return fake


@pytest.fixture
def discord(httpserver: HTTPServer) -> DiscordSink:
    """A Discord webhook that keeps what it receives."""
    return DiscordSink(httpserver).install()


def configure(project: Project, github: FakeGitHub, extra: str = "") -> None:
    """The VM's configuration: the stand-in app, CI on the GitHub stand-in."""
    project.write(
        f"""
        [tool.cicd.ci]
        provider = "github"
        repository = "{act_harness.REPOSITORY}"
        api_url = "{github.api_url}"
        poll_interval = 0.2
        deadline = 30
        {extra}
        """,
        deadline=20,
    )


@pytest.fixture
def runner(
    act_binary: str,
    wheelhouse: Path,
    vm: Path,
    project: Project,
    github: FakeGitHub,
    discord: DiscordSink,
    tmp_path: Path,
) -> Iterator[Runner]:
    """A self-hosted runner for this test's origin and configuration."""
    configure(project, github)
    runner = Runner(
        act=act_binary,
        origin=project.repo.path,
        home=tmp_path / "runner",
        config=project.config_path,
        venv=vm / "tool",
        wheelhouse=wheelhouse,
        github=github,
        secrets={"DISCORD_WEBHOOK_URL": discord.url},
    )
    yield runner
    # The detached watchers of this configuration, then its supervisord(s).
    act_harness.stop_processes_with("CICD_CONFIG", str(project.config_path))
    shutdown_supervisord(project.root)


# -- what the scenarios do and look at -----------------------------------------


def serves(project: Project, env: str = "preprod") -> str:
    """What the app of ``env`` answers ('' when it does not answer)."""
    try:
        return requests.get(project.url(env), timeout=5).text.strip()
    except requests.RequestException:
        return ""


def ledger(project: Project, env: str = "preprod") -> list[dict[str, Any]]:
    """Every ledger event of ``env`` (none when there is no ledger yet)."""
    path = project.root / env / "ledger.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def validated(project: Project, env: str = "preprod") -> str:
    """The sha in ``env``'s validated file ('' when none)."""
    path = project.root / env / "validated"
    return path.read_text().strip() if path.exists() else ""


def current(project: Project, env: str = "preprod") -> str:
    """The sha ``env``'s current symlink names ('' when none)."""
    link = project.root / env / "current"
    return Path(os.readlink(link)).name if link.is_symlink() else ""


def ok(result: JobResult) -> JobResult:
    """The result, asserted successful (act's whole output shown otherwise)."""
    assert result.ok, str(result)
    return result


def push(runner: Runner, sha: str) -> JobResult:
    """A push of ``sha`` to main: cd-preprod.yml runs."""
    return runner.run("cd-preprod.yml", "push", sha=sha)


def ci_completed(
    runner: Runner, github: FakeGitHub, sha: str, conclusion: str, run_id: int
) -> JobResult:
    """CI of ``sha`` completes with ``conclusion``: ci-verdict.yml runs."""
    github.set_run(sha, "completed", conclusion, run_id=run_id, number=run_id)
    return runner.run(
        "ci-verdict.yml", "workflow_run", workflow_run_event(sha, run_id, conclusion)
    )


def dispatch_prod(runner: Runner, confirm: str, sha: str = "") -> JobResult:
    """Someone runs cd-prod.yml by hand with these inputs."""
    return runner.run(
        "cd-prod.yml", "workflow_dispatch", inputs={"confirm": confirm, "sha": sha}
    )


def deployed_and_validated(
    runner: Runner, project: Project, github: FakeGitHub, version: str, run_id: int
) -> str:
    """Commit ``version``, push it (deployed), CI passes (validated); its sha."""
    sha = project.repo.commit(version)
    ok(push(runner, sha))
    ok(ci_completed(runner, github, sha, "success", run_id))
    assert validated(project) == sha
    return sha
