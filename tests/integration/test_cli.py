"""The tasks as a user runs them: ``invoke ...`` in a subprocess, exit codes, output.

Discord is a real local HTTP server (pytest-httpserver); nothing is patched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import Project, invoke, invoke_in_background, wait_for_switch
from tests.discord_fake import FakeDiscord


def test_list_and_help_explain_every_task() -> None:
    listing = invoke("--list")
    assert listing.returncode == 0
    for name in ("deploy.preprod", "deploy.prod", "rollback", "health", "status"):
        assert name in listing.stdout
    help_text = invoke("deploy.prod", "--help").stdout
    assert "DEPLOY" in help_text and "--force" in help_text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deploy.preprod", "--sha", "$(touch pwned); rm -rf /"], "invalid revision"),
        (["deploy.preprod", "--sha=--upload-pack=touch pwned"], "not start with '-'"),
        (["deploy.preprod", "--sha", "abc"], "revision abc is not a commit of"),
        (["deploy.preprod", "--sha", "deadbeefdeadbeef"], "is not a commit of"),
        (["deploy.preprod"], "--sha is required"),
        (
            ["deploy.preprod", "--sha", "deadbeef", "--env", "staging"],
            "unknown environment",
        ),
        (["deploy.prod", "--confirm", "deploy"], "exactly DEPLOY"),
        (["rollback", "--to", "; touch pwned"], "not a kept release"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    project: Project, tmp_path: Path, args: list[str], message: str
) -> None:
    project.repo.commit("v1")
    before = (
        sorted(p.name for p in project.root.rglob("*")) if project.root.exists() else []
    )
    result = invoke(*args, cwd=tmp_path)  # where an injected `touch` would write
    assert result.returncode == 2, result.stderr
    error_lines = [
        line for line in result.stderr.splitlines() if line.startswith("error:")
    ]
    assert len(error_lines) == 1 and message in error_lines[0]
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    after = (
        sorted(p.name for p in project.root.rglob("*")) if project.root.exists() else []
    )
    # Only the audit trail of a refusal may appear; no release, link or lock.
    assert {n for n in after if n not in before} <= {
        "prod",
        "ledger.jsonl",
        "releases",
        "logs",
        "backups",
        "shared",
    }
    assert not any(project.root.rglob("current"))


@pytest.mark.slow
def test_deploy_status_and_json_output(project: Project) -> None:
    sha = project.repo.commit("v1")
    result = invoke("deploy.preprod", "--sha", sha, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outcome"] == "deployed"
    status = json.loads(invoke("status", "--json").stdout)["hosts"]
    preprod = next(row for row in status if row["env"] == "preprod")
    assert (
        preprod["current"] == sha
        and preprod["healthy"]
        and preprod["runtime"] == "RUNNING"
    )
    assert invoke("health", "--env", "preprod").returncode == 0
    assert invoke("health").returncode == 1  # prod is not deployed
    table = invoke("status").stdout
    assert "preprod" in table and sha[:7] in table


@pytest.mark.slow
def test_releases_and_down(project: Project) -> None:
    v1 = project.repo.commit("v1")
    v2 = project.repo.commit("v2")
    for sha in (v1, v2):
        assert invoke("deploy.preprod", "--sha", sha).returncode == 0
    listing = invoke("releases")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[0].startswith(v2[:12]) and "current" in lines[0]
    assert lines[1].startswith(v1[:12]) and "previous" in lines[1]
    (host,) = json.loads(invoke("releases", "--json").stdout)["hosts"]
    assert [r["sha"] for r in host["releases"]] == [v2, v1]
    assert "no releases" in invoke("releases", "--env", "prod").stdout
    assert invoke("down").stdout.strip().startswith("supervisord stopped (")
    with pytest.raises(requests.ConnectionError):
        requests.get(project.url(), timeout=2)
    # Nothing runs any more: instant, and says so.
    assert invoke("down").stdout.strip().startswith("nothing running under")


@pytest.mark.slow
def test_lock_held_by_a_live_run_names_the_holder(project: Project) -> None:
    sha = project.repo.commit("v1")
    lock = project.root / "preprod" / "lock"
    lock.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        details = {
            "actor": "grace",
            "host": os.uname().nodename,
            "pid": sleeper.pid,
            "why": "deploy",
            "time": "now",
            "sha": "f" * 40,
        }
        (lock / "details").write_text(json.dumps(details))
        result = invoke("deploy.preprod", "--sha", sha)
        assert result.returncode == 3
        assert "locked by grace" in result.stderr and str(sleeper.pid) in result.stderr
        assert not (project.root / "preprod" / "current").exists()
        assert "grace" in invoke("lock.status").stdout
        assert invoke("lock.release", "--env", "preprod").returncode == 3
        assert invoke("lock.release", "--env", "preprod", "--force").returncode == 0
    finally:
        sleeper.kill()
    assert invoke("deploy.preprod", "--sha", sha).returncode == 0


def test_missing_supervisord_is_a_clear_error(project: Project) -> None:
    project.write(
        '[tool.cicd.runtime]\nsupervisord = "/nonexistent/supervisord"\n'.replace(
            "[tool.cicd.runtime]", "[tool.cicd.env.preprod.runtime]"
        )
    )
    sha = project.repo.commit("v1")
    result = invoke("deploy.preprod", "--sha", sha)
    assert result.returncode == 1
    assert (
        "supervisord not found" in result.stderr
        and "tool.cicd.runtime.supervisord" in result.stderr
    )
    assert not (project.root / "preprod").exists()


@pytest.mark.slow
def test_discord_429_is_retried_and_500_goes_to_the_outbox(
    project: Project, httpserver: HTTPServer
) -> None:
    webhook = httpserver.url_for("/api/webhooks/123/s3cr3t-t0ken")
    calls: list[dict[str, object]] = []
    discord = FakeDiscord(httpserver, "/api/webhooks/123/s3cr3t-t0ken")

    def rate_limited_once(request: Request) -> Response:
        calls.append(request.get_json())
        if len(calls) == 1:
            return Response(
                json.dumps({"retry_after": 0.2}), 429, content_type="application/json"
            )
        return discord.answer(request)

    httpserver.expect_request("/api/webhooks/123/s3cr3t-t0ken").respond_with_handler(
        rate_limited_once
    )
    sha = project.repo.commit("v1", message="Fix bug analysis")
    result = invoke(
        "deploy.preprod", "--sha", sha, env={"DISCORD_WEBHOOK_URL": webhook}
    )
    assert result.returncode == 0, result.stderr
    contents = [str(c["content"]) for c in calls]
    assert any(
        "PREPROD - Deployment started" in c and "Fix bug analysis" in c
        for c in contents
    )
    # Without --watch nothing verifies CI in this run: the message does not say so.
    assert not any("CI verification in progress" in c for c in contents)

    httpserver.clear()
    httpserver.expect_request("/api/webhooks/123/s3cr3t-t0ken").respond_with_data(
        "boom", 500
    )
    sha2 = project.repo.commit("v2")
    result = invoke(
        "deploy.preprod", "--sha", sha2, env={"DISCORD_WEBHOOK_URL": webhook}
    )
    assert result.returncode == 0, result.stderr
    assert "kept in the outbox" in result.stderr
    assert "s3cr3t-t0ken" not in result.stderr + result.stdout
    assert httpserver.url_for("/") not in result.stderr
    outbox = (project.root / "preprod" / "outbox.jsonl").read_text().splitlines()
    assert len(outbox) == 2

    httpserver.clear()
    delivered: list[str] = []
    httpserver.expect_request("/api/webhooks/123/s3cr3t-t0ken").respond_with_handler(
        lambda request: (
            delivered.append(request.get_json()["content"]),
            discord.answer(request),
        )[1]
    )
    result = invoke(
        "deploy.preprod", "--sha", sha2, env={"DISCORD_WEBHOOK_URL": webhook}
    )
    assert result.returncode == 0
    target = project.target()
    from cicd.reporting.notify import Notifier

    Notifier(target, webhook=webhook).send("next run")
    assert "Deployment started" in delivered[0]  # the outbox goes first, oldest first
    assert delivered[-1] == "next run"
    assert (project.root / "preprod" / "outbox.jsonl").read_text() == ""


@pytest.mark.slow
def test_kill_9_during_a_deploy_then_rerun_completes(project: Project) -> None:
    v1 = project.repo.commit("v1")
    assert invoke("deploy.preprod", "--sha", v1).returncode == 0
    v2 = project.repo.commit("v2", mode="slow 3")
    process = invoke_in_background("deploy.preprod", "--sha", v2)
    current = project.root / "preprod" / "current"
    wait_for_switch(current, v2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (project.root / "preprod" / "lock").exists()  # left behind by the kill
    target = os.readlink(current)
    assert (current.parent / target / "app" / "server.py").exists()  # a whole release
    result = invoke("deploy.preprod", "--sha", v2)
    assert result.returncode == 0, result.stderr
    assert requests.get(project.url(), timeout=5).text.strip() == "v2 ok"
    events = [
        json.loads(line)["event"]
        for line in (project.root / "preprod" / "ledger.jsonl").read_text().splitlines()
    ]
    assert "lock_broken" in events
