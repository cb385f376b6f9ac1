"""Job summaries and ``::error::`` annotations of real ``invoke`` processes.

The deploy, verdict, rollback, prod and monitor tasks run as the workflows run them,
with GitHub Actions' variables set, against real git, supervisord and the GitHub
stand-in (a real local HTTP server).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import Project, invoke
from tests.github_fake import REPOSITORY, FakeGitHub

TOKEN = "ghs_summary_token_for_tests_0123456789"


@pytest.mark.slow
def test_each_job_appends_its_summary_and_a_rollback_is_annotated(
    project: Project, httpserver: HTTPServer, tmp_path: Path
) -> None:
    github = FakeGitHub(httpserver)
    github.install()
    project.write(f"""
        [tool.cicd.ci]
        provider = "github"
        repository = "{REPOSITORY}"
        api_url = "{github.api_url}"
        poll_interval = 0.1
        deadline = 20
        """)
    path = tmp_path / "summary.md"
    actions = {
        "GITHUB_STEP_SUMMARY": str(path),
        "GITHUB_ACTIONS": "true",
        "GITHUB_SERVER_URL": "https://github.test",
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_RUN_ID": "77",
        "GITHUB_TOKEN": TOKEN,
    }

    def step(*args: str, code: int = 0) -> tuple[str, str]:
        """Run one task as a job's step; its stdout and its part of the summary."""
        before = path.read_text() if path.exists() else ""
        done = invoke(*args, env=actions)
        assert done.returncode == code, done.stdout + done.stderr
        assert TOKEN not in done.stdout + done.stderr
        text = path.read_text()
        assert text.startswith(before)  # appended
        return done.stdout, text[len(before) :]

    v1 = project.repo.commit("v1")
    out, said = step("deploy.preprod", "--sha", v1)
    assert "::error" not in out
    assert "### ✅ `deploy.preprod` · preprod" in said
    assert f"**Release:** — → `{v1[:7]}` (deployed)" in said
    assert f"| vm | `{v1[:7]}` | deployed |" in said  # what serves
    assert "**Timings:**" in said
    assert "[CI/CD run](https://github.test/acme/mangetamain/actions/runs/77)" in said

    github.set_run(v1, "completed", "success", run_id=1, number=1)
    out, said = step("watch.verdict", "--sha", v1, "--run-id", "1")
    assert "### ✅ `watch.verdict` · preprod" in said
    assert f"**CI verdict for `{v1[:7]}`:** success" in said
    assert "::error" not in out

    v2 = project.repo.commit("v2")
    step("deploy.preprod", "--sha", v2)
    github.set_run(v2, "completed", "failure", run_id=2, number=2)
    github.set_jobs(
        2,
        [
            {
                "name": "tests",
                "conclusion": "failure",
                "steps": [
                    {"name": "nox -s tests: 100%\nfail", "conclusion": "failure"}
                ],
            }
        ],
    )
    out, said = step("watch.verdict", "--sha", v2, "--run-id", "2")
    assert f"**CI verdict for `{v2[:7]}`:** failure" in said
    assert "- failed: tests › nox -s tests: 100% fail" in said
    assert "[CI run](https://github.test/acme/mangetamain/actions/runs/2)" in said
    assert f"| vm | `{v1[:7]}` |" in said  # the previous release serves again
    annotation = [line for line in out.splitlines() if line.startswith("::error")]
    assert annotation == [
        f"::error title=preprod%3A CI failed for {v2[:7]}::CI failed for {v2[:7]} "
        "(run 2 failure): tests › nox -s tests: 100%25%0Afail"
    ]

    v3 = project.repo.commit("v3")
    step("deploy.preprod", "--sha", v3)
    out, said = step("rollback")
    assert "### ✅ `rollback` · preprod" in said
    assert f"**Release:** `{v3[:7]}` → `{v1[:7]}`" in said
    out, said = step("rollback", code=1)
    assert "### ❌ `rollback` · preprod" in said and "**Failed:**" in said
    assert out.startswith("::error title=rollback preprod::")

    out, said = step("deploy.prod", "--confirm", "DEPLOY")
    assert "### ✅ `deploy.prod` · prod" in said
    assert f"→ `{v1[:7]}`" in said

    out, said = step("health", "--monitor")
    assert "### ✅ `health` · all environments" in said
    assert "**Checks:**" in said and "- vm: ok" in said

    # Without GITHUB_STEP_SUMMARY nothing is written, and outside Actions no
    # annotation is printed.
    before = path.read_text()
    quiet = {**actions, "GITHUB_STEP_SUMMARY": "", "GITHUB_ACTIONS": ""}
    done = invoke("rollback", env=quiet)
    assert done.returncode == 1 and "::error" not in done.stdout
    assert invoke("health", "--monitor", env=quiet).returncode == 0
    assert path.read_text() == before


@pytest.mark.slow
def test_a_detached_watcher_leaves_the_finished_steps_summary_alone(
    project: Project, tmp_path: Path
) -> None:
    project.write("""
        [tool.cicd.ci]
        provider = "local"
        command = "true"
        deadline = 60
        """)
    path = tmp_path / "summary.md"
    actions = {"GITHUB_STEP_SUMMARY": str(path), "GITHUB_ACTIONS": "true"}
    v1 = project.repo.commit("v1")
    done = invoke("deploy.preprod", "--sha", v1, "--watch", env=actions)
    assert done.returncode == 0, done.stderr
    said = path.read_text()
    assert said.count("### ") == 1 and "`deploy.preprod`" in said
    validated = project.root / "preprod" / "validated"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not validated.exists():
        time.sleep(0.1)
    assert validated.read_text().strip() == v1
    time.sleep(0.5)  # the watcher's last words come after the verdict
    assert path.read_text() == said
