"""A release of the real Streamlit app whose script raises is rolled back, although
``/_stcore/health`` alone says ok: only the rendered page (headless Chromium) shows
what a user sees.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

from cicd.pipeline.activation import DeployFailed
from cicd.pipeline.deploy import deploy_preprod
from cicd.reporting.notify import Notifier
from cicd.checks.browser import find_chromium
from tests.conftest import REPO_ROOT, Project, git

pytestmark = [
    pytest.mark.skipif(
        find_chromium() is None,
        reason="needs Chromium for rendered-page checks: apt-get install chromium "
        "(CI's .ci/run installs it)",
    ),
    pytest.mark.slow,  # Streamlit and a real browser
]

STREAMLIT = (
    "{python} -m streamlit run src/mangetamain/app.py --server.port {port}"
    " --server.address 127.0.0.1 --server.headless true"
    " --browser.gatherUsageStats false"
)


def test_app_that_raises_is_rolled_back_though_its_health_endpoint_says_ok(
    project: Project, capfd: pytest.CaptureFixture[str]
) -> None:
    app = project.repo.path / "app"
    shutil.copytree(
        REPO_ROOT / "10_preprod", app, ignore=shutil.ignore_patterns("tests", ".*")
    )
    git(project.repo.path, "add", "-A")
    git(project.repo.path, "commit", "-qm", "the real app")
    good = git(project.repo.path, "rev-parse", "HEAD")
    project.write(
        f"""
        [tool.cicd.env.preprod.runtime]
        command = "{STREAMLIT}"
        [tool.cicd.env.preprod.health]
        deadline = 45
        interval = 0.5
        checks = [
            {{ path = "/_stcore/health", body_contains = "ok" }},
            {{ path = "/", rendered_contains = "Mangetamain", timeout = 30 }},
        ]
        """,
        deadline=45,
    )
    target = project.target()
    deploy_preprod([target], good, Notifier(target))

    entry = app / "src" / "mangetamain" / "app.py"
    importing = "from mangetamain.views import run_app"
    source = entry.read_text().replace(
        importing, importing + "\n\nraise RuntimeError('broken at import')"
    )
    entry.write_text(source)
    git(project.repo.path, "commit", "-qam", "a release whose script raises")
    bad = git(project.repo.path, "rev-parse", "HEAD")
    with pytest.raises(DeployFailed, match="rolled back"):
        deploy_preprod([project.target()], bad, Notifier(project.target()))
    output = capfd.readouterr().err
    assert "the app shows an exception" in output  # /_stcore/health passed first
    assert project.target().state().current == good
    health = requests.get(project.url() + "_stcore/health", timeout=5)
    assert health.text == "ok"
    assert (Path(project.root) / "preprod" / "releases" / bad).is_dir()
