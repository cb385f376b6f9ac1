"""Deploy and rollback against real git, a real supervisord and the real app's HTTP.

Each test drives the same functions the tasks call, on a local invoke Context.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests

from cicd.pipeline.activation import DeployFailed
from cicd.pipeline.deploy import DeployResult, deploy_preprod
from cicd.pipeline.production import deploy_prod
from cicd.core.errors import CicdError, UsageError
from cicd.reporting.notify import Notifier
from cicd.pipeline.rollback import rollback
from tests.conftest import Project


def get(url: str) -> str:
    """Return the body the app answers at ``url``."""
    return requests.get(url, timeout=5).text.strip()


def ledger(project: Project, env: str = "preprod") -> list[dict[str, object]]:
    """The parsed ledger of an environment."""
    path = project.root / env / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def deploy(project: Project, sha: str, env: str = "preprod") -> DeployResult:
    """Deploy ``sha`` to ``env`` like the task does."""
    target = project.target(env)
    return deploy_preprod([target], sha, Notifier(target))


def validate(project: Project, sha: str, env: str = "preprod") -> None:
    """Record a CI success for ``sha``, as the watcher does."""
    target = project.target(env)
    target.set_validated(sha)
    target.event("validated", sha=sha)


def test_deploy_runs_the_release_and_records_every_step(project: Project) -> None:
    sha = project.repo.commit("v1")
    result = deploy(project, sha[:10])  # an abbreviation, recorded in full
    assert result.outcome == "deployed" and result.sha == sha
    assert get(project.url()) == "v1 ok"
    current = project.root / "preprod" / "current"
    assert os.readlink(current) == f"releases/{sha}"
    events = ledger(project)
    steps = [e["event"] for e in events]
    assert steps[:2] == ["deploy", "export"]
    assert {"switch", "restart", "health"} <= set(steps)
    assert events[-1]["event"] == "deploy" and events[-1]["outcome"] == "ok"
    assert set(events[-1]["durations"]) >= {"export", "switch", "restart", "readiness"}
    assert all(e["actor"] and e["host"] and e["time"] for e in events)


@pytest.mark.slow
def test_deploying_what_already_runs_is_a_noop(project: Project) -> None:
    sha = project.repo.commit("v1")
    deploy(project, sha)
    result = deploy(project, sha)
    assert result.outcome == "noop"
    assert ledger(project)[-1]["event"] == "noop"


@pytest.mark.slow
def test_release_that_never_gets_ready_is_rolled_back(project: Project) -> None:
    good = project.repo.commit("v1")
    deploy(project, good)
    bad = project.repo.commit("v2", mode="crash")
    project.write(deadline=1.5)
    with pytest.raises(DeployFailed, match="rolled back to") as failed:
        deploy(project, bad)
    # What the app said before dying goes with the failure (console and Discord).
    assert "crashing at start" in failed.value.log
    assert get(project.url()) == "v1 ok"
    state = project.target().state()
    assert state.current == good
    assert bad in state.bad
    assert (project.root / "preprod" / "releases" / bad).is_dir()


@pytest.mark.slow
def test_first_deploy_that_fails_leaves_nothing_running(project: Project) -> None:
    bad = project.repo.commit("v1", mode="error")
    project.write(deadline=1)
    with pytest.raises(DeployFailed, match="app stopped"):
        deploy(project, bad)
    assert not (project.root / "preprod" / "current").exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(project.url(), timeout=2)


@pytest.mark.slow
def test_rollback_picks_newest_validated_release_and_needs_no_source(
    project: Project,
) -> None:
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    validate(project, v1)
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    # No network, no source: a rollback only switches to what is kept.
    project.repo.path.rename(project.repo.path.with_name("gone"))
    target = project.target()
    (result,) = rollback([target], Notifier(target), reason="test")
    assert (result.sha, result.abandoned) == (v1, v2)
    assert get(project.url()) == "v1 ok"
    assert v2 in project.target().state().bad


@pytest.mark.slow
def test_rollback_to_a_named_release_and_refusals(project: Project) -> None:
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    target = project.target()
    with pytest.raises(CicdError, match="no kept release is CI-validated"):
        rollback([target], Notifier(target))
    with pytest.raises(UsageError, match="is not a kept release"):
        rollback([target], Notifier(target), to="deadbeef")
    (result,) = rollback([target], Notifier(target), to=v1[:8])
    assert result.sha == v1 and get(project.url()) == "v1 ok"


@pytest.mark.slow
def test_prod_deploys_preprods_validated_sha_with_a_backup(project: Project) -> None:
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    validate(project, v1)
    shared = project.root / "prod" / "shared"
    shared.mkdir(parents=True)
    (shared / "ratings.db").write_text("precious")
    prod, preprod = project.target("prod"), project.target("preprod")
    result = deploy_prod(
        [prod], preprod, None, confirm="DEPLOY", force=False, notifier=Notifier(prod)
    )
    assert result.sha == v1
    assert get(project.url("prod")) == "v1 ok"
    backups = list((project.root / "prod" / "backups").glob("*.tar.gz"))
    assert len(backups) == 1
    assert [e["event"] for e in ledger(project, "prod")].count("backup") == 1


@pytest.mark.slow
def test_prod_refuses_wrong_confirmation_and_unvalidated_sha(project: Project) -> None:
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    prod, preprod = project.target("prod"), project.target("preprod")
    with pytest.raises(UsageError, match="exactly DEPLOY"):
        deploy_prod(
            [prod], preprod, v1, confirm="deploy", force=False, notifier=Notifier(prod)
        )
    with pytest.raises(UsageError, match="no CI-validated sha"):
        deploy_prod(
            [prod],
            preprod,
            None,
            confirm="DEPLOY",
            force=False,
            notifier=Notifier(prod),
        )
    with pytest.raises(UsageError, match="not been validated"):
        deploy_prod(
            [prod], preprod, v1, confirm="DEPLOY", force=False, notifier=Notifier(prod)
        )
    assert not (project.root / "prod" / "current").exists()
    assert not (project.root / "prod" / "releases" / v1).exists()
    refused = [e for e in ledger(project, "prod") if e["event"] == "refused"]
    assert len(refused) == 3
    forced = deploy_prod(
        [prod],
        preprod,
        v1,
        confirm="DEPLOY",
        force=True,
        reason="hotfix, CI is down",
        notifier=Notifier(prod),
    )
    assert forced.outcome == "deployed"
    started = [e for e in ledger(project, "prod") if e["outcome"] == "started"]
    assert started[-1]["detail"] == (
        "forced: not validated by CI; reason: hotfix, CI is down"
    )


@pytest.mark.slow
def test_prune_keeps_current_previous_validated_and_newest(project: Project) -> None:
    shas = [project.repo.commit(f"v{i}") for i in range(6)]
    deploy(project, shas[0])
    validate(project, shas[0])
    for sha in shas[1:]:
        deploy(project, sha)
    kept = {p.name for p in (project.root / "preprod" / "releases").iterdir()}
    assert kept == {shas[0], shas[3], shas[4], shas[5]}


def test_app_dependencies_are_installed_once_per_requirements(project: Project) -> None:
    (project.repo.path / "app").mkdir()
    (project.repo.path / "app" / "requirements.txt").write_text("# nothing yet\n")
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    releases = project.root / "preprod" / "releases"
    venv1 = os.readlink(releases / v1 / ".venv")
    assert venv1 == os.readlink(releases / v2 / ".venv")
    assert (Path(venv1) / ".complete").exists()
    assert (Path(venv1) / "pyvenv.cfg").exists()


def test_started_message_links_the_commit_in_a_workflow(
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.example")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/mangetamain")
    sha = project.repo.commit("v1")
    deploy(project, sha)
    assert (
        f"https://github.example/acme/mangetamain/commit/{sha}"
        in capfd.readouterr().err
    )


def test_a_release_that_cannot_be_prepared_changes_nothing(project: Project) -> None:
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    app = project.repo.path / "app"
    # A dependency that cannot be installed (a local path: no network involved).
    (app / "requirements.txt").write_text("/nonexistent/missing-1.0-py3-none-any.whl\n")
    v2 = project.repo.commit("v2")
    with pytest.raises(DeployFailed, match="not deployed"):
        deploy(project, v2)
    assert get(project.url()) == "v1 ok"
    assert project.target().state().current == v1
    assert not (project.root / "preprod" / "releases" / v2).exists()
    assert ledger(project)[-1]["outcome"] == "failed"


def test_in_parallel_reports_each_hosts_error(project: Project) -> None:
    from cicd.transport.parallel import failures_by_host as in_parallel

    hosts = [project.target("preprod"), project.target("prod")]

    def action(target: object) -> None:
        if target is hosts[1]:
            raise CicdError("prod is down")

    errors = in_parallel(action, hosts)
    assert errors[hosts[0]] is None and str(errors[hosts[1]]) == "prod is down"

    def bug(target: object) -> None:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        in_parallel(bug, hosts)
