"""``--plan`` on deploys and rollbacks: the steps, host by host, and nothing changed.

Run through the CLI as a user would, against a real supervisord (and a real haproxy
for the blue/green plan); each test checks that the ledger, the releases and the
lock are exactly as they were.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import Project, invoke
from tests.integration.test_deploy import deploy


def untouched(project: Project, env: str = "preprod") -> tuple[str, list[str]]:
    """The ledger's text and the release names: what a plan must not change."""
    root = project.root / env
    ledger = root / "ledger.jsonl"
    releases = root / "releases"
    return (
        ledger.read_text() if ledger.exists() else "",
        sorted(p.name for p in releases.iterdir()) if releases.exists() else [],
    )


@pytest.mark.slow
def test_deploy_plan_lists_the_steps_and_changes_nothing(project: Project) -> None:
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    v2 = project.repo.commit("v2")
    before = untouched(project)
    shown = invoke("deploy.preprod", "--sha", "HEAD", "--plan")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.startswith(f"plan: deploy {v2[:7]} to preprod")
    assert "switches: in place" in text
    assert "take the preprod lock (free)" in text
    assert f"export releases/{v2[:7]}" in text
    assert f"switch current {v1[:7]} → {v2[:7]}" in text
    assert text.rstrip().endswith("nothing was changed (--plan)")
    assert untouched(project) == before
    assert not (project.root / "preprod" / "lock").exists()

    document = json.loads(
        invoke("deploy.preprod", "--sha", v2, "--plan", "--json").stdout
    )
    assert document["schema"] == 1 and document["plan"] is True
    assert document["sha"] == v2
    (host,) = document["hosts"]
    assert host["env"] == "preprod" and host["refused"] is None
    assert any("readiness" in step for step in host["steps"])
    assert untouched(project) == before


@pytest.mark.slow
def test_prod_plan_needs_no_confirmation_and_says_what_would_refuse(
    project: Project,
) -> None:
    v1 = project.repo.commit("v1")
    before = untouched(project, "prod")
    shown = invoke("deploy.prod", "--sha", v1, "--plan")
    assert shown.returncode == 0, shown.stderr
    assert "not been validated by CI on preprod" in shown.stdout
    assert "back up shared into backups/" in shown.stdout
    assert untouched(project, "prod") == before  # not even a "refused" event
    forced = invoke("deploy.prod", "--sha", v1, "--plan", "--force", "--reason", "x")
    assert "refused" not in forced.stdout


@pytest.mark.slow
def test_rollback_plan_names_the_release_and_refuses_bad_input(
    project: Project,
) -> None:
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    before = untouched(project)
    shown = invoke("rollback", "--to", v1[:8], "--plan")
    assert shown.returncode == 0, shown.stderr
    assert f"plan: roll back {v1[:7]} to preprod" in shown.stdout
    assert f"mark {v2[:7]} bad" in shown.stdout
    nothing = invoke("rollback", "--plan")  # nothing validated to go back to
    assert nothing.returncode == 0
    assert "refused: preprod: no kept release is CI-validated" in nothing.stdout
    bad = invoke("rollback", "--to", "zz;rm", "--plan")
    assert bad.returncode == 2 and "is not a kept release" in bad.stderr
    assert untouched(project) == before


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("haproxy") is None,
    reason="needs haproxy (apt-get install haproxy; CI's .ci/run installs it)",
)
def test_blue_green_plan_names_the_slots(project: Project) -> None:
    project.write(proxy="haproxy")
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    live = (project.root / "preprod" / "live").read_text().strip()
    idle = "green" if live == "blue" else "blue"
    v2 = project.repo.commit("v2")
    shown = invoke("deploy.preprod", "--sha", v2, "--plan")
    assert f"start {v2[:7]} on the idle {idle} slot" in shown.stdout, shown.stdout
    assert f"switch haproxy {live} → {idle}" in shown.stdout
    deploy(project, v2)
    back = invoke("rollback", "--to", v1, "--plan")
    assert f"switch back to the {live} slot" in back.stdout, back.stdout
    assert not Path(project.root / "preprod" / "intent").exists()
