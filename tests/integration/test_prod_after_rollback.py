"""A production rollback sticks: ``deploy.prod`` does not bring the release back.

After ``invoke rollback --env prod`` the runbook's next step is ``invoke deploy.prod
--confirm DEPLOY``; preprod's last CI-validated sha is still the release just rolled
back, so the default must refuse it. Driven through the CLI, as a person types it,
against real git and a real supervisord serving the stand-in app.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import requests

from cicd.pipeline.production import deploy_prod
from cicd.reporting.notify import Notifier
from tests.conftest import Project, env_ledger, invoke, validate

#: The sha's short form, as every message shows it.
SHORT = 7


def to_prod(project: Project, sha: str) -> None:
    """Deploy preprod's validated ``sha`` to production, like the task does."""
    prod = project.target("prod")
    deploy_prod(
        [prod],
        project.target("preprod"),
        sha,
        confirm="DEPLOY",
        force=False,
        notifier=Notifier(prod),
    )


def current(project: Project) -> str:
    """The release production's ``current`` names."""
    return os.readlink(project.root / "prod" / "current")


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The task's one ``error:`` line (and check there is exactly one)."""
    lines = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def rolled_back_prod(project: Project) -> tuple[str, str]:
    """v1 then v2 in production, then v2 rolled back by ada: (v1, v2)."""
    v1 = project.repo.commit("v1")
    validate(project, v1)
    to_prod(project, v1)
    v2 = project.repo.commit("v2")
    validate(project, v2)
    to_prod(project, v2)
    back = invoke("rollback", "--env", "prod", env={"GITHUB_ACTOR": "ada"})
    assert back.returncode == 0, back.stderr
    assert current(project) == f"releases/{v1}"
    return v1, v2


@pytest.mark.slow
def test_deploy_prod_after_a_prod_rollback_refuses_the_rolled_back_default(
    project: Project,
) -> None:
    v1, v2 = rolled_back_prod(project)
    before = len(env_ledger(project))

    refused = invoke("deploy.prod", "--confirm", "DEPLOY")

    assert refused.returncode == 2, refused.stderr
    line = error_line(refused)
    assert (
        f"{v2[:SHORT]}, preprod's last CI-validated sha, was rolled back in prod on "
    ) in line
    assert "UTC by ada (by hand): deploy a newer validated sha with --sha SHA" in line
    assert f'--sha {v2[:SHORT]} --force --reason "..."; nothing was changed' in line
    assert current(project) == f"releases/{v1}"
    assert requests.get(project.url("prod"), timeout=5).text.strip() == "v1 ok"
    events = env_ledger(project)
    assert len(events) == before + 1
    assert events[-1]["event"] == "refused" and events[-1]["outcome"] == "refused"
    assert events[-1]["sha"] == v2
    assert events[-1]["detail"] == "default skipped: rolled back in prod"

    data = json.loads(invoke("deploy.prod", "--confirm", "DEPLOY", "--json").stdout)
    assert data["ok"] is False and data["exit_code"] == 2
    assert data["error"] == line.removeprefix("error: ")

    # --plan says the same, from the same decision, and records nothing.
    planned = invoke("deploy.prod", "--plan")
    assert planned.returncode == 0, planned.stderr
    assert (
        "refused: " + line.removeprefix("error: ").removesuffix("; nothing was changed")
        in planned.stdout
    )
    shown = json.loads(invoke("deploy.prod", "--plan", "--json").stdout)
    assert (
        shown["sha"] == v2 and "was rolled back in prod" in shown["hosts"][0]["refused"]
    )
    assert len(env_ledger(project)) == before + 2  # the two refused runs, no plan
    assert current(project) == f"releases/{v1}"


@pytest.mark.slow
def test_redeploying_a_release_rolled_back_in_prod_takes_sha_force_and_reason(
    project: Project,
) -> None:
    v1, v2 = rolled_back_prod(project)

    named = invoke("deploy.prod", "--confirm", "DEPLOY", "--sha", v2)
    assert named.returncode == 2
    assert f"{v2[:SHORT]} was rolled back in prod on " in error_line(named)
    assert 'to redeploy it on purpose pass --force --reason "..."' in error_line(named)
    assert env_ledger(project)[-1]["detail"] == "rolled back in prod"

    before = env_ledger(project)
    no_reason = invoke("deploy.prod", "--confirm", "DEPLOY", "--sha", v2, "--force")
    blank = invoke(
        "deploy.prod", "--confirm", "DEPLOY", "--sha", v2, "--force", "--reason", " "
    )
    for result in (no_reason, blank):
        assert result.returncode == 2
        assert error_line(result).startswith('error: --force needs --reason "...":')
    assert env_ledger(project) == before  # bad input: not even a refusal recorded
    assert current(project) == f"releases/{v1}"

    why = "the failure was a bad row in the data, fixed since"
    done = invoke(
        "deploy.prod",
        "--confirm",
        "DEPLOY",
        "--sha",
        v2[:10],
        "--force",
        "--reason",
        why,
    )

    assert done.returncode == 0, done.stderr
    assert current(project) == f"releases/{v2}"
    assert f"(FORCED: rolled back in prod)\nReason: {why}" in done.stderr
    deploys = [
        e for e in env_ledger(project) if e["event"] == "deploy" and e["sha"] == v2
    ]
    detail = f"forced: rolled back in prod; reason: {why}"
    assert [(e["outcome"], e.get("detail")) for e in deploys[-2:]] == [
        ("started", detail),
        ("ok", detail),
    ]
    # Redeployed on purpose, it is production's good release again: the default
    # deploys it (here: already serving) and a later rollback may pick it.
    again = invoke("deploy.prod", "--confirm", "DEPLOY")
    assert again.returncode == 0, again.stderr
    assert "already running and healthy" in again.stderr + again.stdout


@pytest.mark.slow
def test_a_newer_validated_sha_goes_to_prod_after_a_prod_rollback(
    project: Project,
) -> None:
    rolled_back_prod(project)
    v3 = project.repo.commit("v3")
    validate(project, v3)

    done = invoke("deploy.prod", "--confirm", "DEPLOY")

    assert done.returncode == 0, done.stderr
    assert current(project) == f"releases/{v3}"
    assert "FORCED" not in done.stderr and "Reason" not in done.stderr


def test_prod_plan_refuses_bad_input_as_the_run_does(project: Project) -> None:
    sha = project.repo.commit("v1")
    for args, said in (
        (["--force"], 'error: --force needs --reason "...":'),
        (["--sha", sha, "--force", "--reason", ""], "error: --force needs --reason"),
        ([], "error: preprod has no CI-validated sha yet; pass --sha"),
    ):
        planned = invoke("deploy.prod", "--plan", *args)
        assert planned.returncode == 2, planned.stderr
        assert error_line(planned).startswith(said)
    assert not project.root.exists()
