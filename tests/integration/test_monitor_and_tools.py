"""The hourly monitor, ``notify.*`` and ``hooks.install``, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from cicd.pipeline.deploy import deploy_preprod
from cicd.pipeline.monitor import MonitorState, advance, run_monitor
from cicd.pipeline.outside import DEFAULT_RULES
from cicd.reporting.notify import Notifier
from tests.conftest import Project, invoke
from tests.discord_fake import FakeDiscord

REMINDER_SECONDS = DEFAULT_RULES.reminder


def test_state_machine_alerts_once_reminds_and_recovers() -> None:
    state = MonitorState()
    messages = [advance(state, False, "status 502", t, "prod") for t in (0, 1, 2)]
    assert messages[:2] == [None, None]
    assert messages[2] is not None and "PROD is DOWN" in messages[2]
    assert advance(state, False, "status 502", 100, "prod") is None  # no repeat
    reminder = advance(state, False, "status 502", 2 + REMINDER_SECONDS, "prod")
    assert reminder is not None and "still DOWN" in reminder
    assert advance(state, True, "ok", 3 + REMINDER_SECONDS, "prod") is None
    recovered = advance(state, True, "ok", 4 + REMINDER_SECONDS, "prod")
    assert recovered is not None and "recovered" in recovered
    assert state.status == "up"


def test_a_single_blip_alerts_nobody() -> None:
    state = MonitorState()
    assert advance(state, False, "timed out", 0, "preprod") is None
    assert advance(state, True, "ok", 1, "preprod") is None
    assert advance(state, False, "timed out", 2, "preprod") is None
    assert state.status == "up" and state.failures == 1


def test_monitor_run_alerts_on_a_real_outage_then_recovers(
    project: Project, httpserver: HTTPServer
) -> None:
    sent: list[str] = []
    fake = FakeDiscord(httpserver, "/hook/abc123secret")

    def discord(request: Request) -> Response:
        sent.append(request.get_json()["content"])
        return fake.answer(request)

    httpserver.expect_request("/hook/abc123secret").respond_with_handler(discord)
    webhook = httpserver.url_for("/hook/abc123secret")
    target = project.target()
    notifier = Notifier(target, webhook=webhook)
    waits: list[float] = []
    assert run_monitor(target, notifier, sleep=waits.append).skipped  # not deployed
    sha = project.repo.commit("v1")
    deploy_preprod([target], sha, notifier)
    target.live_runtime().stop()
    done = run_monitor(target, notifier, sleep=waits.append)
    assert not done.ok and "connection refused" in done.reason
    # 2 waits to confirm the outage, then the bounded re-checks while down.
    assert len(waits) == 2 + DEFAULT_RULES.retries
    assert any("PREPROD is DOWN" in m for m in sent)
    state = json.loads((project.root / "preprod" / "monitor.json").read_text())
    assert state["status"] == "down"
    target.live_runtime().start()
    assert run_monitor(target, notifier, sleep=waits.append).status == "up"
    assert any("PREPROD recovered" in m for m in sent)  # in one run: 2 passes


@pytest.mark.slow
def test_health_task_with_all_and_monitor(project: Project) -> None:
    sha = project.repo.commit("v1")
    assert invoke("deploy.preprod", "--sha", sha).returncode == 0
    result = invoke("health", "--env", "preprod", "--monitor", "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)["hosts"]
    assert (row["env"], row["ok"], row["detail"]) == ("preprod", True, "ok")
    assert invoke("health", "--all", "--env", "prod").returncode == 2
    assert invoke("health", "--all").returncode == 1


@pytest.mark.slow
def test_notify_send_and_flush(project: Project, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook/xyz789secret").respond_with_data("down", 503)
    env = {"DISCORD_WEBHOOK_URL": httpserver.url_for("/hook/xyz789secret")}
    result = invoke("notify.send", "--text", "📚 Documentation build failed", env=env)
    assert result.returncode == 0
    assert "kept in the outbox" in result.stderr and "xyz789secret" not in result.stderr
    httpserver.clear()
    FakeDiscord(httpserver, "/hook/xyz789secret").install()
    flushed = invoke("notify.flush", "--env", "preprod", env=env)
    assert "delivered 1, 0 still kept" in flushed.stdout
    assert invoke("notify.send").returncode == 2


@pytest.mark.slow
def test_hooks_install_writes_a_pre_push_hook(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    from tests.conftest import REPO_ROOT

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        import sys

        return subprocess.run(
            [sys.executable, "-m", "cicd", "hooks.install", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
        )

    assert run().returncode == 0
    hook = tmp_path / ".git" / "hooks" / "pre-push"
    assert "nox -s lint quick" in hook.read_text() and hook.stat().st_mode & 0o100
    assert run().returncode == 0  # ours: replaced quietly
    hook.write_text("#!/bin/sh\necho mine\n")
    refused = run()
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert run("--force").returncode == 0
