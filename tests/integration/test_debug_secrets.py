"""Debug mode never prints a secret: ``invoke -d``, ``fab -d``, ``cicd -d``.

Discord is a real local HTTP server (pytest-httpserver) behind a webhook URL whose
path holds a token, as Discord's does; urllib3's debug log prints that path with
each request it sends. Each run's stdout and stderr, and the detached watcher's
log, are searched for the token and the GitHub tokens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pytest_httpserver import HTTPServer

from tests.conftest import Project, invoke
from tests.discord_fake import FakeDiscord
from tests.integration.test_ssh import Hosts, fab, host_tables

#: A webhook path as Discord's: /api/webhooks/<id>/<token>.
HOOK = "/api/webhooks/424242/d3bug-w3bh00k-t0ken"
TOKEN = "ghp_debugModeToken0123456789"
APP_TOKEN = "ghs_debugModeAppToken9876543"
SECRETS = ("d3bug-w3bh00k-t0ken", TOKEN, APP_TOKEN)


def secret_env(server: HTTPServer) -> dict[str, str]:
    """The webhook on ``server`` and token-like GitHub tokens, as a workflow has."""
    FakeDiscord(server, HOOK).install()
    return {
        "DISCORD_WEBHOOK_URL": server.url_for(HOOK),
        "GITHUB_TOKEN": TOKEN,
        "CICD_GITHUB_TOKEN": APP_TOKEN,
        # A laptop, not a workflow run: no GitHub variables leak in from the caller.
        "GITHUB_RUN_ID": "",
        "GITHUB_REPOSITORY": "",
    }


def assert_no_secret(*outputs: str) -> None:
    """None of the secrets appears in any of ``outputs``."""
    for output in outputs:
        for secret in SECRETS:
            assert secret not in output, output[output.find(secret) - 300 :][:600]


def test_invoke_debug_deploy_and_its_watcher_print_no_secret(
    project: Project, httpserver: HTTPServer
) -> None:
    project.write("""
        [tool.cicd.ci]
        provider = "local"
        command = "true"
        deadline = 60
        """)
    sha = project.repo.commit("v1")
    # INVOKE_DEBUG reaches the detached watcher too: its log is debug output.
    env = {**secret_env(httpserver), "INVOKE_DEBUG": "1"}
    result = invoke("-d", "deploy.preprod", "--sha", sha, "--watch", env=env)
    assert result.returncode == 0, result.stderr
    assert_no_secret(result.stdout, result.stderr)
    # The debug log is there, and shows the request without its token.
    assert "POST ***?wait=true HTTP/1.1" in result.stderr
    validated = project.root / "preprod" / "validated"
    deadline = time.monotonic() + 60
    while not validated.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert validated.read_text().strip() == sha
    log = Path(project.root / "preprod" / "logs" / f"watch-{sha}.log")
    deadline = time.monotonic() + 10
    while "CI success" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)  # the watcher's last message is sent after `validated`
    watcher = log.read_text()
    assert_no_secret(watcher)
    assert "POST ***?wait=true HTTP/1.1" in watcher  # it did debug-log its own requests


def test_cicd_program_debug_prints_no_secret(
    project: Project, httpserver: HTTPServer
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cicd", "-d", "notify.send", "--text", "hello"],
        capture_output=True,
        text=True,
        env={**os.environ, **secret_env(httpserver)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert_no_secret(result.stdout, result.stderr)
    assert "POST ***?wait=true HTTP/1.1" in result.stderr


def test_fab_debug_over_ssh_prints_no_secret(
    project: Project, ssh_hosts: Hosts, httpserver: HTTPServer
) -> None:
    fleet = ssh_hosts(1)
    host_tables(project, fleet)
    result = fab(
        fleet,
        "-d",
        "-H",
        "h1",
        "notify.send",
        "--text",
        "hello",
        env=secret_env(httpserver),
    )
    assert result.returncode == 0, result.stderr
    assert_no_secret(result.stdout, result.stderr)
    assert (
        "paramiko" in result.stderr and "POST ***?wait=true HTTP/1.1" in result.stderr
    )
