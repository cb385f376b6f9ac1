"""cd-preprod.yml and ci-verdict.yml, run by act on the "VM" (scenarios 1 to 5)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests

from tests.act_harness import JobResult, Runner, workflow_run_event
from tests.conftest import Project
from tests.github_fake import FakeGitHub

pytestmark = pytest.mark.act


def serves(project: Project, env: str = "preprod") -> str:
    """What the app of ``env`` answers."""
    return requests.get(project.url(env), timeout=5).text.strip()


def ledger(project: Project, env: str = "preprod") -> list[dict[str, object]]:
    """Every ledger event of ``env``."""
    path = project.root / env / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def validated(project: Project, env: str = "preprod") -> str:
    """The sha in ``env``'s validated file ('' when none)."""
    path = project.root / env / "validated"
    return path.read_text().strip() if path.exists() else ""


def ok(result: JobResult) -> JobResult:
    """The result, asserted successful (act's output shown otherwise)."""
    assert result.ok, str(result)
    return result


def push(runner: Runner, sha: str) -> JobResult:
    """A push of ``sha`` to main: cd-preprod.yml."""
    return runner.run("cd-preprod.yml", "push", sha=sha)


def verdict(
    runner: Runner, github: FakeGitHub, sha: str, conclusion: str, run_id: int
) -> JobResult:
    """CI of ``sha`` completed with ``conclusion``: ci-verdict.yml."""
    github.set_run(sha, "completed", conclusion, run_id=run_id)
    return runner.run(
        "ci-verdict.yml",
        "workflow_run",
        workflow_run_event(sha, run_id, conclusion),
    )


def test_push_deploys_and_the_app_survives_the_orphan_cleanup(
    runner: Runner, project: Project
) -> None:
    sha = project.repo.commit("v1")
    result = ok(push(runner, sha))
    assert serves(project) == "v1 ok"
    # Nothing of the VM lives in the workspace: the state is under the root.
    assert os.readlink(project.root / "preprod" / "current").endswith(sha)
    assert not list(Path(runner.cache).glob("*/hostexecutor"))
    assert (
        str(runner.cache) not in (project.root / "preprod" / "ledger.jsonl").read_text()
    )
    print(result)
