"""cd-prod.yml, secrets on the VM and a reboot, run by act (scenarios 6 to 8)."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from tests import act_harness
from tests.act_harness import DiscordSink, Runner
from tests.conftest import Project
from tests.github_fake import FakeGitHub
from tests.workflows.conftest import (
    ci_completed,
    current,
    deployed_and_validated,
    dispatch_prod,
    ledger,
    ok,
    push,
    serves,
)

pytestmark = pytest.mark.act


def test_prod_deploys_the_validated_sha_on_deploy_and_refuses_anything_else(
    runner: Runner, project: Project, github: FakeGitHub
) -> None:
    first = deployed_and_validated(runner, project, github, "v1", run_id=51)
    result = ok(dispatch_prod(runner, "DEPLOY"))
    assert serves(project, "prod") == "v1 ok", str(result)
    assert current(project, "prod") == first
    # A newer validated sha, then a confirmation typed wrong: nothing changes.
    deployed_and_validated(runner, project, github, "v2", run_id=52)
    before = ledger(project, "prod")
    refused = dispatch_prod(runner, "deploy")
    assert not refused.ok, str(refused)
    assert "exit status 2" in refused.output  # bad input: exit 2, nothing changed
    assert "DEPLOY" in refused.output
    assert current(project, "prod") == first
    assert serves(project, "prod") == "v1 ok"
    after = ledger(project, "prod")
    assert after[: len(before)] == before
    # The refusal itself is recorded (an audit line), nothing else is.
    assert [e["event"] for e in after[len(before) :]] in ([], ["refused"])


def test_no_job_secret_reaches_supervisord_or_an_app(
    runner: Runner, project: Project, github: FakeGitHub, discord: DiscordSink
) -> None:
    # supervisord starts inside a job holding the webhook; the rollback restarts
    # the app inside a job holding its GITHUB_TOKEN.
    deployed_and_validated(runner, project, github, "v1", run_id=61)
    bad = project.repo.commit("v2")
    ok(push(runner, bad))
    ci_completed(runner, github, bad, "failure", run_id=62)
    assert serves(project) == "v1 ok"
    supervisord = act_harness.supervisord_pid(project.root)
    assert supervisord, "supervisord is not running"
    processes = [supervisord, *act_harness.descendants(supervisord)]
    assert len(processes) >= 2, "no app under supervisord"
    values = [r.token for r in runner.history] + [discord.url, discord.path]
    assert act_harness.leaks(processes, values) == {}
    for pid in processes:
        env = act_harness.environ_of(pid) or {}
        assert not env.get(act_harness.TRACKING), (pid, act_harness.cmdline_of(pid))
        assert "GITHUB_TOKEN" not in env and "DISCORD_WEBHOOK_URL" not in env


def test_after_supervisord_is_killed_start_brings_both_apps_back(
    runner: Runner, project: Project, github: FakeGitHub
) -> None:
    deployed_and_validated(runner, project, github, "v1", run_id=71)
    ok(dispatch_prod(runner, "DEPLOY"))
    assert serves(project) == serves(project, "prod") == "v1 ok"
    # A reboot without the systemd unit: supervisord and its apps are gone.
    supervisord = act_harness.supervisord_pid(project.root)
    assert supervisord
    tree = [supervisord, *act_harness.descendants(supervisord)]
    for pid in tree:
        os.kill(pid, signal.SIGKILL)
    act_harness.wait_gone(tree)
    assert serves(project) == serves(project, "prod") == ""
    # The operator's recovery, with the VM's config and the tool's venv.
    started = subprocess.run(
        [str(runner.venv / "bin" / "cicd"), "start"],
        capture_output=True,
        text=True,
        cwd=runner.home,
        env={
            "PATH": f"{runner.venv / 'bin'}:{act_harness.SYSTEM_PATH}",
            "HOME": str(runner.home),
            "CICD_CONFIG": str(project.config_path),
        },
        timeout=60,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert serves(project) == serves(project, "prod") == "v1 ok"
    assert [e for e in ledger(project, "prod") if e["event"] == "deploy"]
