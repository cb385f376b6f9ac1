"""A release whose second page raises never reaches users: every page is opened first.

The real Streamlit app, a real Chromium, supervisord (and haproxy for blue/green):
the page "Seasonality" raises only when it is chosen in the sidebar, so
``/_stcore/health`` and the first page say all is well. The deploy's page smoke
opens every page of the new release before users get it: behind haproxy the
release is never routed to; in place the previous release is put back.
"""

from __future__ import annotations

import json
import shutil

import pytest

from cicd.pipeline.activation import DeployFailed
from cicd.pipeline.deploy import deploy_preprod
from cicd.pipeline.plan import plan_deploy
from cicd.reporting.notify import Notifier
from tests.conftest import REPO_ROOT, Project, git
from tests.integration.test_rendered import STREAMLIT
from tests.integration.test_rendered import pytestmark as rendered_marks

# Chromium and Streamlit, as the rendered-page test needs them.
pytestmark = rendered_marks
BROKEN = "    raise ZeroDivisionError('the seasonality page is broken')\n"


def real_app(project: Project, proxy: str) -> str:
    """Commit the real app and configure preprod to run it; return the sha."""
    app = project.repo.path / "app"
    shutil.copytree(
        REPO_ROOT / "10_preprod", app, ignore=shutil.ignore_patterns("tests", ".*")
    )
    git(project.repo.path, "add", "-A")
    git(project.repo.path, "commit", "-qm", "the real app")
    project.write(
        f"""
        [tool.cicd.env.preprod.runtime]
        command = "{STREAMLIT}"
        [tool.cicd.env.preprod.health]
        deadline = 45
        interval = 0.5
        checks = [{{ path = "/_stcore/health", body_contains = "ok" }}]
        # A page that raises is what is tested here, not speed: the first load
        # after a restart fills the app's data cache, slow on a loaded machine.
        [tool.cicd.smoke]
        max_load = 60
        """,
        deadline=45,
        proxy=proxy,
        smoke=True,
    )
    return git(project.repo.path, "rev-parse", "HEAD")


def break_seasonality(project: Project) -> str:
    """Commit a release whose "Seasonality" page raises when chosen."""
    views = project.repo.path / "app" / "src" / "mangetamain" / "views.py"
    lines = views.read_text().splitlines(keepends=True)
    start = next(
        i for i, line in enumerate(lines) if line.startswith("def render_seasonality")
    )
    body = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == '"""')
    lines.insert(body + 1, BROKEN)
    views.write_text("".join(lines))
    git(project.repo.path, "commit", "-qam", "seasonality raises")
    return git(project.repo.path, "rev-parse", "HEAD")


def last_deploy_actions(project: Project) -> list[str]:
    """The actions of the last successful deploy in preprod's ledger."""
    ledger = (project.root / "preprod" / "ledger.jsonl").read_text().splitlines()
    done = [
        e
        for e in map(json.loads, ledger)
        if e["event"] == "deploy" and e["outcome"] == "ok"
    ]
    actions: list[str] = done[-1].get("actions", [])
    return actions


@pytest.mark.skipif(
    shutil.which("haproxy") is None,
    reason="needs haproxy (apt-get install haproxy; CI's .ci/run installs it)",
)
def test_behind_haproxy_a_page_that_raises_is_never_routed_to(
    project: Project, capfd: pytest.CaptureFixture[str]
) -> None:
    good = real_app(project, "haproxy")
    target = project.target()
    (planned,) = plan_deploy([target], good).hosts
    deploy_preprod([target], good, Notifier(target))
    # The plan said so, and the run did it: after readiness, before the switch.
    actions = last_deploy_actions(project)
    assert [step.action for step in planned.planned] == actions
    assert actions.index("readiness") < actions.index("smoke") < actions.index("switch")
    said = capfd.readouterr().err
    for page in ("Ratings", "Seasonality", "Weekend effect"):
        assert f"✓ {page}" in said  # each page with its load time

    bad = break_seasonality(project)
    with pytest.raises(DeployFailed, match="Seasonality") as failed:
        deploy_preprod([project.target()], bad, Notifier(project.target()))
    assert failed.value.routed is False
    assert "ZeroDivisionError" in str(failed.value)
    state = project.target().state()
    assert state.current == good and bad in state.bad
    assert project.target().serving() == good


def test_in_place_a_page_that_raises_puts_the_previous_release_back(
    project: Project,
) -> None:
    good = real_app(project, "none")
    target = project.target()
    deploy_preprod([target], good, Notifier(target))
    bad = break_seasonality(project)
    with pytest.raises(DeployFailed, match="rolled back") as failed:
        deploy_preprod([project.target()], bad, Notifier(project.target()))
    assert "Seasonality" in str(failed.value)
    state = project.target().state()
    assert state.current == good and bad in state.bad
