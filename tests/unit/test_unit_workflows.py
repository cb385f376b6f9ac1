"""Unit tests of the GitHub Actions workflows: they stay thin and safe.

Every ``run:`` step is one ``nox``, ``invoke`` or ``fab`` command (or the one-line
install of those tools), so the pipeline's logic lives in tasks that run the same
locally. Secrets reach steps only through ``env:`` (or an action's ``with:``), never
inside a shell line, and user input never reaches a shell line unquoted. The
deployment workflows are serialised, production's confirmation is checked by the
task and not by the workflow, monitoring is hourly, and the documentation is
published from the directory ``nox -s docs`` builds.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"
EXPECTED = {
    "ci",
    "ci-verdict",
    "cd-preprod",
    "cd-prod",
    "health-check",
    "documentation",
}
SELF_HOSTED = ["self-hosted", "Linux", "X64"]
SETUP = "./.github/actions/setup-cicd"
TASK_RUNNERS = {"nox", "invoke", "fab"}
INSTALL = re.compile(r"""^(python3? -m )?pip install (-e \.|(["']?)nox(\[uv\])?\3)$""")
#: As root, as .ci/run: CI's tests job provisions with tools.testinfra and tests with
#: nox under sudo, after stopping the hosted image's own Docker engine.
AS_ROOT = re.compile(
    r'^sudo (-E )?env ("?[A-Z]+=\S*"? )+(python3 -m tools\.testinfra [\w-]+'
    r"( --extra=[\w.+-]+)*|nox -s \w+)$|^sudo systemctl stop( [\w.-]+)+$"
)
#: Shell syntax that would chain, pipe, background or substitute a second command.
FORBIDDEN = ("&", ";", "|", "`", "$(", "\n")
SECRET = re.compile(r"\$\{\{\s*secrets\.")
#: Expressions a user controls: they go through env:, never into a shell line.
UNTRUSTED = re.compile(r"\$\{\{\s*(inputs\.|github\.event\.|github\.head_ref)")
DEPLOY_WORD = re.compile(r"\bDEPLOY\b")
DOCS_HTML = "90_doc/build/html"


def load(path: Path) -> dict[str, Any]:
    """Parse one workflow file."""
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    return data


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    """The ``on:`` table (YAML 1.1 reads a bare ``on`` key as True)."""
    value = workflow.get("on", workflow.get(True, {}))
    if isinstance(value, str):
        return {value: None}
    if isinstance(value, list):
        return {name: None for name in value}
    return value or {}


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step of every job."""
    return [
        step
        for job in (workflow.get("jobs") or {}).values()
        for step in job.get("steps") or []
    ]


def conditions(workflow: dict[str, Any]) -> list[str]:
    """Every ``if:`` of jobs and steps, and every ``run:`` line."""
    found = []
    for job in (workflow.get("jobs") or {}).values():
        if "if" in job:
            found.append(str(job["if"]))
        for step in job.get("steps") or []:
            found += [str(step[key]) for key in ("if", "run") if key in step]
    return found


def run_problems(run: str) -> list[str]:
    """What is wrong with one ``run:`` line, if anything."""
    line = run.strip()
    problems = [f"{line!r}: contains {token!r}" for token in FORBIDDEN if token in line]
    if SECRET.search(line):
        problems.append(f"{line!r}: a secret inside run: (pass it through env:)")
    if UNTRUSTED.search(line):
        problems.append(f"{line!r}: user input inside run: (pass it through env:)")
    if problems:
        return problems
    try:
        first = shlex.split(line)[0] if line else ""
    except ValueError as error:
        return [f"{line!r}: not one shell command ({error})"]
    if first not in TASK_RUNNERS and not (INSTALL.match(line) or AS_ROOT.match(line)):
        problems.append(
            f"{line!r}: starts with {first!r}, not one of "
            f"{', '.join(sorted(TASK_RUNNERS))} or the one-line install"
        )
    return problems


def problems(name: str, workflow: dict[str, Any]) -> list[str]:
    """Every rule a workflow breaks: the generic ones, then its own."""
    found = [
        f"{name}: {problem}"
        for step in steps(workflow)
        if "run" in step
        for problem in run_problems(str(step["run"]))
    ]
    if name in ("cd-preprod", "cd-prod"):
        group = (workflow.get("concurrency") or {}).get("group")
        if not group:
            found.append(f"{name}: no concurrency group")
        elif (workflow["concurrency"].get("cancel-in-progress")) is not False:
            found.append(f"{name}: a deploy must never be cancelled half-way")
    if name == "cd-prod":
        dispatch = triggers(workflow).get("workflow_dispatch") or {}
        if "confirm" not in (dispatch.get("inputs") or {}):
            found.append(f"{name}: no 'confirm' workflow_dispatch input")
        found += [
            f"{name}: checks the DEPLOY word itself in {text!r} (the task does)"
            for text in conditions(workflow)
            if DEPLOY_WORD.search(text)
        ]
    if name == "health-check":
        crons = [
            entry.get("cron") for entry in triggers(workflow).get("schedule") or []
        ]
        if "0 * * * *" not in crons:
            found.append(f"{name}: not scheduled hourly (cron '0 * * * *')")
    if name == "documentation":
        published = [
            step
            for step in steps(workflow)
            if (step.get("with") or {}).get("publish_dir") == DOCS_HTML
        ]
        if not published:
            found.append(f"{name}: does not publish {DOCS_HTML}")
        if any("needs" in job for job in (workflow.get("jobs") or {}).values()):
            found.append(f"{name}: must be isolated (no needs:)")
        if "workflow_run" in triggers(workflow):
            found.append(f"{name}: must be isolated (no workflow_run trigger)")
    return found


def workflow_files() -> list[Path]:
    """The repository's workflow files."""
    return sorted(WORKFLOWS.glob("*.yml"))


def test_every_expected_workflow_exists() -> None:
    assert {path.stem for path in workflow_files()} >= EXPECTED


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.stem)
def test_workflow_follows_the_rules(path: Path) -> None:
    assert problems(path.stem, load(path)) == []


def test_preprod_deploys_every_push_to_main_on_the_self_hosted_runner() -> None:
    workflow = load(WORKFLOWS / "cd-preprod.yml")
    assert triggers(workflow)["push"]["branches"] == ["main"]
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "Linux", "X64"]
    (deploy,) = [s for s in steps(workflow) if "deploy.preprod" in s.get("run", "")]
    assert "--watch" in deploy["run"]
    # The job's own token dies with the job: the watcher gets the long-lived one;
    # the job's token, under its own name, writes the deploy's deployment only.
    assert set(deploy["env"]) == {
        "SHA",
        "DISCORD_WEBHOOK_URL",
        "CICD_GITHUB_TOKEN",
        "CICD_JOB_TOKEN",
    }
    assert deploy["env"]["CICD_JOB_TOKEN"] == "${{ github.token }}"
    assert workflow["permissions"] == {
        "contents": "read",
        "deployments": "write",
        "statuses": "write",
    }
    assert job["environment"]["name"] == "preprod" and job["environment"]["url"]


def self_hosted_jobs() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workflow name, workflow, job) of every job on the self-hosted runner."""
    found = []
    for path in workflow_files():
        workflow = load(path)
        for job in (workflow.get("jobs") or {}).values():
            if "self-hosted" in (job.get("runs-on") or []):
                found.append((path.stem, workflow, job))
    return found


def test_self_hosted_jobs_keep_state_and_the_tool_outside_the_workspace() -> None:
    names = set()
    for name, workflow, job in self_hosted_jobs():
        names.add(name)
        assert job["runs-on"] == SELF_HOSTED, name
        env = {**(workflow.get("env") or {}), **(job.get("env") or {})}
        # An absolute config (and root) and a venv at a stable path, from vars.
        assert env["CICD_CONFIG"].startswith("${{ vars.CICD_CONFIG || '/"), name
        assert env["CICD_VENV"].startswith("${{ vars.CICD_VENV || '/"), name
        uses = [step.get("uses", "") for step in job["steps"]]
        assert uses[0].startswith("actions/checkout@") and uses[1] == SETUP, name
        # Never `pip install` into the runner's system Python (PEP 668).
        assert not [s for s in job["steps"] if "pip install" in s.get("run", "")]
    assert names == {"cd-preprod", "cd-prod", "ci-verdict", "health-check"}


def test_the_setup_action_installs_into_a_venv_never_the_system_python() -> None:
    action = load(WORKFLOWS.parent / "actions" / "setup-cicd" / "action.yml")
    (step,) = action["runs"]["steps"]
    script = step["run"]
    assert 'python3 -m venv "$CICD_VENV"' in script
    assert '"$CICD_VENV/bin/python" -m pip install' in script
    assert '>> "$GITHUB_PATH"' in script


def test_ci_verdict_acts_on_completed_ci_runs_of_pushes_with_its_own_token() -> None:
    workflow = load(WORKFLOWS / "ci-verdict.yml")
    on = triggers(workflow)["workflow_run"]
    assert on == {"workflows": ["CI"], "types": ["completed"], "branches": ["main"]}
    (job,) = workflow["jobs"].values()
    assert job["if"] == "github.event.workflow_run.event == 'push'"
    (verdict,) = [s for s in steps(workflow) if "watch.verdict" in s.get("run", "")]
    assert verdict["run"] == (
        'invoke watch.verdict --sha "$HEAD_SHA" --run-id "$RUN_ID"'
    )
    assert verdict["env"]["HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"
    assert verdict["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
    assert workflow["permissions"] == {
        "actions": "read",
        "contents": "read",
        "deployments": "write",
        "statuses": "write",
    }
    assert load(WORKFLOWS / "ci.yml")["name"] == "CI"  # what workflow_run names


def test_ci_cancels_superseded_runs_only_on_pull_requests() -> None:
    concurrency = load(WORKFLOWS / "ci.yml")["concurrency"]
    assert concurrency["cancel-in-progress"] == (
        "${{ github.event_name == 'pull_request' }}"
    )


def test_every_action_is_pinned_to_a_commit() -> None:
    for path in workflow_files():
        for step in steps(load(path)):
            uses = step.get("uses", "")
            if uses and not uses.startswith("./"):
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), uses


def test_prod_passes_its_inputs_through_env() -> None:
    workflow = load(WORKFLOWS / "cd-prod.yml")
    inputs = triggers(workflow)["workflow_dispatch"]["inputs"]
    assert inputs["confirm"]["required"] is True
    assert inputs["sha"].get("required", False) is False
    (deploy,) = [s for s in steps(workflow) if "deploy.prod" in s.get("run", "")]
    assert '--confirm "$CONFIRM"' in deploy["run"]
    assert deploy["env"]["CONFIRM"] == "${{ inputs.confirm }}"
    assert workflow["concurrency"]["group"] == "deploy-prod"
    # Required reviewers and GitHub's deployment history.
    assert workflow["jobs"]["deploy"]["environment"] == "production"


def test_health_check_monitors_every_environment() -> None:
    workflow = load(WORKFLOWS / "health-check.yml")
    assert "workflow_dispatch" in triggers(workflow)
    runs = [s["run"] for s in steps(workflow) if "run" in s]
    assert "invoke health --all --monitor" in runs


def test_documentation_builds_with_nox_and_notifies_only_on_failure() -> None:
    workflow = load(WORKFLOWS / "documentation.yml")
    assert "90_doc/source/**" in triggers(workflow)["push"]["paths"]
    runs = [s["run"] for s in steps(workflow) if "run" in s]
    assert "nox -s docs" in runs
    notify = [s for s in steps(workflow) if "notify.send" in s.get("run", "")]
    assert notify and all(s.get("if") == "failure()" for s in notify)


def test_checker_catches_a_chained_command_and_a_secret_in_run() -> None:
    bad = {
        "on": {"push": {"branches": ["main"]}},
        "jobs": {
            "x": {
                "runs-on": "ubuntu-latest",
                "steps": [
                    {"run": "echo hi && rm -rf x"},
                    {"run": "invoke notify.send --text ${{ secrets.WEBHOOK }}"},
                    {"run": "invoke deploy.prod --sha ${{ inputs.sha }}"},
                    {"run": "curl https://example.invalid"},
                    {"run": "nox -s lint\nnox -s tests"},
                    {"run": "python -m pip install requests"},
                ],
            }
        },
    }
    found = "\n".join(problems("bad", bad))
    assert "contains '&'" in found
    assert "a secret inside run:" in found
    assert "user input inside run:" in found
    assert "starts with 'curl'" in found
    assert "contains '\\n'" in found
    assert "'python -m pip install requests': starts with 'python'" in found
    assert len(problems("bad", bad)) >= 6


def test_checker_catches_a_workflow_that_checks_deploy_itself() -> None:
    bad = {
        True: {"workflow_dispatch": {"inputs": {"sha": {"type": "string"}}}},
        "jobs": {
            "deploy": {
                "if": "inputs.confirm == 'DEPLOY'",
                "runs-on": "self-hosted",
                "steps": [{"run": "invoke deploy.prod --confirm DEPLOY"}],
            }
        },
    }
    found = problems("cd-prod", bad)
    assert "cd-prod: no concurrency group" in found
    assert "cd-prod: no 'confirm' workflow_dispatch input" in found
    assert sum("checks the DEPLOY word" in problem for problem in found) == 2


def test_checker_accepts_the_one_line_installs() -> None:
    for line in (
        'python -m pip install "nox[uv]"',
        "python3 -m pip install 'nox[uv]'",
        "python -m pip install -e .",
        "fab -H dataia rollback --env prod",
    ):
        assert run_problems(line) == []


def test_health_check_sees_the_vm_from_outside_and_publishes_the_dashboard() -> None:
    workflow = load(WORKFLOWS / "health-check.yml")
    outside = workflow["jobs"]["outside"]
    # A GitHub-hosted runner: it still runs when the VM (and its runner) is dead.
    assert outside["runs-on"] == "ubuntu-latest"
    assert outside["env"]["CICD_CONFIG"] == ""  # not the VM's absolute path
    uses = [step.get("uses", "") for step in outside["steps"]]
    assert uses[:2] == [uses[0], SETUP] and uses[0].startswith("actions/checkout@")
    runs = [s["run"] for s in outside["steps"] if "run" in s]
    assert runs == ['invoke health --url "$PUBLIC_URLS"']
    dashboard = workflow["jobs"]["dashboard"]
    assert dashboard["if"] == "always()" and dashboard["runs-on"] == SELF_HOSTED
    assert dashboard["permissions"] == {"contents": "write"}
    runs = [s["run"] for s in dashboard["steps"] if "run" in s]
    assert runs == ["invoke report --html build/report/index.html --publish"]
    docs = load(WORKFLOWS / "documentation.yml")
    (site,) = [s for s in steps(docs) if "gh-pages" in s.get("uses", "")]
    assert site["with"]["keep_files"] is True  # the hourly dashboard stays
