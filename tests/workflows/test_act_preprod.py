"""cd-preprod.yml and ci-verdict.yml run by act on the "VM" (scenarios 1 to 5).

Each job meets the self-hosted runner's contract (tests/act_harness.py): its orphans
are killed when it ends, its token dies with it, the system Python refuses pip, the
installs are offline, the workspace is a fresh checkout removed afterwards.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests import act_harness
from tests.act_harness import Runner
from tests.conftest import Project
from tests.github_fake import FakeGitHub
from tests.workflows.conftest import (
    ci_completed,
    current,
    deployed_and_validated,
    ledger,
    ok,
    push,
    serves,
    validated,
)

pytestmark = pytest.mark.act

FAILED_JOBS = [
    {
        "name": "Tests (coverage >= 90 %)",
        "conclusion": "failure",
        "steps": [
            {"name": "Set up job", "conclusion": "success"},
            {"name": "nox -s tests", "conclusion": "failure"},
        ],
    },
    {"name": "Quality", "conclusion": "success", "steps": []},
]


def holders_of(path: Path) -> list[str]:
    """Processes whose cwd or an open file lies under ``path``."""
    found = []
    for pid in act_harness.pids():
        links = [Path("/proc") / str(pid) / "cwd"]
        try:
            links += list((Path("/proc") / str(pid) / "fd").iterdir())
        except OSError:
            continue
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target.startswith(str(path)):
                found.append(f"{act_harness.cmdline_of(pid)}: {link.name} -> {target}")
    return found


def test_push_deploys_and_the_app_survives_the_orphan_cleanup(
    runner: Runner, project: Project
) -> None:
    sha = project.repo.commit("v1")
    result = ok(push(runner, sha))
    # After the runner killed the job's orphans, the new sha still serves.
    assert serves(project) == "v1 ok"
    assert current(project) == sha
    assert [e["event"] for e in ledger(project)].count("deploy") >= 1
    # The tool went into its own venv: the system Python refused pip (PEP 668),
    # the venv was made by the system interpreter, through the shim on PATH.
    assert (runner.venv / "bin" / "cicd").exists()
    assert "home = " in (runner.venv / "pyvenv.cfg").read_text()
    refused = subprocess.run(
        [str(runner.shims / "python3"), "-m", "pip", "install", "."],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "externally-managed-environment" in refused.stderr
    # No state in the workspace: act removed it, and nothing that outlived the
    # job (watcher, supervisord, the app) has its cwd or a file in it.
    assert not list(runner.cache.glob("*/hostexecutor"))
    holders = holders_of(runner.cache)
    assert not holders, "\n".join(holders)
    assert (
        str(runner.cache) not in (project.root / "preprod" / "ledger.jsonl").read_text()
    )
    print(result)


def test_ci_success_reported_by_workflow_run_validates_the_sha(
    runner: Runner, project: Project, github: FakeGitHub
) -> None:
    sha = project.repo.commit("v1")
    ok(push(runner, sha))
    result = ok(ci_completed(runner, github, sha, "success", run_id=11))
    assert validated(project) == sha
    assert any(e["event"] == "validated" and e["sha"] == sha for e in ledger(project))
    # The verdict job read the run with its own token, while it ran.
    assert f"Bearer {result.token}" in github.authorizations
    assert result.token not in github.tokens


def test_ci_failure_rolls_back_to_the_validated_sha_and_names_the_failed_job(
    runner: Runner,
    project: Project,
    github: FakeGitHub,
    discord: act_harness.DiscordSink,
) -> None:
    good = deployed_and_validated(runner, project, github, "v1", run_id=21)
    bad = project.repo.commit("v2")
    ok(push(runner, bad))
    assert serves(project) == "v2 ok"
    github.jobs = FAILED_JOBS
    result = ci_completed(runner, github, bad, "failure", run_id=22)
    assert serves(project) == "v1 ok", str(result)
    assert current(project) == good
    assert validated(project) == good
    assert any(e["event"] == "marked_bad" and e["sha"] == bad for e in ledger(project))
    texts = "\n".join(discord.texts())
    assert "Tests (coverage >= 90 %)" in texts, texts
    assert discord.url not in result.output
    # The Environments panel, written with each job's own token: the bad
    # deployment failed naming the job, the release put back serves.
    story = github.story
    failed = "failure: CI failed: Tests (coverage >= 90 %) › nox -s tests"
    assert f"preprod {bad[:7]} {failed}" in "\n".join(story), story
    assert story[-1].endswith(f"{good[:7]} success: {good[:7]} serves (rollback)")
    assert f"status {bad[:7]} cicd/preprod failure: CI failed" in "\n".join(story)


def test_a_run_cancelled_by_a_newer_push_is_superseded_not_bad(
    runner: Runner, project: Project, github: FakeGitHub
) -> None:
    first = project.repo.commit("A")
    ok(push(runner, first))
    second = project.repo.commit("B")
    ok(push(runner, second))
    github.set_run(second, "in_progress", run_id=32, number=32)
    result = ci_completed(runner, github, first, "cancelled", run_id=31)
    assert serves(project) == "B ok", str(result)
    assert current(project) == second
    bad = [e for e in ledger(project) if e["event"] == "marked_bad"]
    assert not [e for e in bad if e["sha"] == first], bad
    assert not any(e["event"] == "rollback" for e in ledger(project))


def test_a_second_deploy_after_the_workspace_clean_finds_the_state_intact(
    runner: Runner, project: Project, github: FakeGitHub
) -> None:
    first = deployed_and_validated(runner, project, github, "v1", run_id=41)
    before = ledger(project)
    releases = project.root / "preprod" / "releases"
    assert (releases / first).is_dir()
    second = project.repo.commit("v2")
    ok(push(runner, second))  # a fresh workspace, cleaned: the state is elsewhere
    assert serves(project) == "v2 ok"
    assert (releases / first).is_dir() and (releases / second).is_dir()
    assert ledger(project)[: len(before)] == before
    assert validated(project) == first
    assert current(project) == second
