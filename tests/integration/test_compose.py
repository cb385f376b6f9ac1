"""The compose runtime on a real Docker engine (no bridge: host networking on
127.0.0.1), with a tiny busybox image imported locally: deploy, rollback, readiness,
and a container that exits at start making the deploy roll back.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cicd.pipeline.activation import DeployFailed
from cicd.pipeline.deploy import deploy_preprod
from cicd.checks.traffic import Load
from cicd.reporting.notify import Notifier
from cicd.pipeline.rollback import rollback
from tests.conftest import AppRepo, Project, git

COMPOSE = """\
services:
  app:
    image: {image}
    network_mode: host
    init: true
    volumes:
      - ${{CICD_RELEASE}}/app:/www:ro
    command: {command}
"""
#: Each container's id and compose project.
LABELLED = '{{.ID}} {{.Label "com.docker.compose.project"}}'
SERVE = '["httpd", "-f", "-p", "127.0.0.1:${CICD_PORT}", "-h", "/www"]'
CRASH = '["sh", "-c", "echo crashing at start; exit 3"]'


def commit_compose_app(repo: AppRepo, version: str, image: str, command: str) -> str:
    """Commit a release: a static page served by busybox httpd in a container."""
    (repo.path / "app").mkdir(exist_ok=True)
    (repo.path / "app" / "index.html").write_text(f"{version} ok\n")
    (repo.path / "compose.yml").write_text(COMPOSE.format(image=image, command=command))
    git(repo.path, "add", "-A")
    git(repo.path, "commit", "-qm", version)
    return git(repo.path, "rev-parse", "HEAD")


@pytest.fixture
def compose_project(
    project: Project, busybox_image: str
) -> Iterator[tuple[Project, str]]:
    """The project configured for the compose runtime; containers removed after."""
    name = f"cicdtest{uuid.uuid4().hex[:8]}"
    project.write(f"""
        [tool.cicd.env.preprod.runtime]
        kind = "compose"
        compose_file = "compose.yml"
        service = "app"
        project = "{name}"
        """)
    yield project, busybox_image
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={name}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


def test_compose_deploy_rollback_and_a_container_that_exits(
    compose_project: tuple[Project, str],
) -> None:
    project, image = compose_project
    v1 = commit_compose_app(project.repo, "v1", image, SERVE)
    target = project.target()
    deploy_preprod([target], v1, Notifier(target))
    assert requests.get(project.url(), timeout=5).text.strip() == "v1 ok"
    assert project.target().live_runtime().status() == "RUNNING"

    v2 = commit_compose_app(project.repo, "v2", image, SERVE)
    deploy_preprod([project.target()], v2, Notifier(project.target()))
    assert requests.get(project.url(), timeout=5).text.strip() == "v2 ok"

    project.target().event("validated", sha=v1)
    (result,) = rollback([project.target()], Notifier(project.target()), reason="test")
    assert result.sha == v1
    assert requests.get(project.url(), timeout=5).text.strip() == "v1 ok"

    broken = commit_compose_app(project.repo, "v3", image, CRASH)
    with pytest.raises(DeployFailed, match="rolled back to"):
        deploy_preprod([project.target()], broken, Notifier(project.target()))
    assert requests.get(project.url(), timeout=5).text.strip() == "v1 ok"
    assert broken in project.target().state().bad
    logs = project.target().live_runtime().logs(20)
    assert isinstance(logs, str)
    assert Path(project.root / "preprod" / "releases" / broken).is_dir()


@pytest.fixture
def compose_bluegreen(
    project: Project, busybox_image: str
) -> Iterator[tuple[Project, str, str]]:
    """The compose runtime behind haproxy: one compose project per slot."""
    if shutil.which("haproxy") is None:
        pytest.skip(
            "needs haproxy (apt-get install haproxy, or python3 -m tools.testinfra up)"
        )
    name = f"cicdtest{uuid.uuid4().hex[:8]}"
    project.write(
        f"""
        [tool.cicd.env.preprod.runtime]
        kind = "compose"
        compose_file = "compose.yml"
        service = "app"
        project = "{name}"
        """,
        proxy="haproxy",
    )
    yield project, busybox_image, name
    listed = subprocess.run(
        ["docker", "ps", "-a", "--format", LABELLED],
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    ids = [line.split()[0] for line in listed if f" {name}" in line]
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


def test_compose_blue_green_has_two_projects_and_fails_no_request(
    compose_bluegreen: tuple[Project, str, str],
) -> None:
    project, image, name = compose_bluegreen
    v1 = commit_compose_app(project.repo, "v1", image, SERVE)
    target = project.target()
    deploy_preprod([target], v1, Notifier(target))
    assert requests.get(project.url(), timeout=5).text.strip() == "v1 ok"
    v2 = commit_compose_app(project.repo, "v2", image, SERVE)
    with Load(project.url(), workers=4, seconds=120) as load:
        deploy_preprod([project.target()], v2, Notifier(project.target()))
        assert requests.get(project.url(), timeout=5).text.strip() == "v2 ok"
        project.target().event("validated", sha=v1)
        (result,) = rollback([project.target()], Notifier(project.target()))
    assert result.sha == v1
    assert load.tally.failed == 0 and load.tally.sent > 20, load.tally.line()
    assert requests.get(project.url(), timeout=5).text.strip() == "v1 ok"
    projects = subprocess.run(
        ["docker", "ps", "--format", '{{.Label "com.docker.compose.project"}}'],
        capture_output=True,
        text=True,
    ).stdout.split()
    # v1 serves from one slot; the other (v2, rolled back from) was stopped.
    assert [p for p in projects if p.startswith(name)] in (
        [f"{name}-blue"],
        [f"{name}-green"],
    )
    assert project.target().serving() == v1
