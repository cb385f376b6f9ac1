"""Checks of the services a deployment depends on, each against the real thing."""

from __future__ import annotations

import os
import shutil
import tempfile

import requests
from conftest import require

from cicd.redact import redact


def test_health_endpoints_answer() -> None:
    """Every URL in CICD_HEALTH_URLS answers 200 within 10 s."""
    urls = require("CICD_HEALTH_URLS")["CICD_HEALTH_URLS"].split(",")
    for url in (u.strip() for u in urls if u.strip()):
        response = requests.get(url, timeout=10)
        assert response.status_code == 200, f"{url} answered {response.status_code}"


def test_target_root_is_writable_with_free_disk() -> None:
    """CICD_TARGET_ROOT is writable and has CICD_MIN_FREE_GB (default 2) free."""
    root = require("CICD_TARGET_ROOT")["CICD_TARGET_ROOT"]
    with tempfile.NamedTemporaryFile(dir=root):
        pass
    free_gb = shutil.disk_usage(root).free / 1e9
    minimum = float(os.environ.get("CICD_MIN_FREE_GB", "2"))
    assert free_gb >= minimum, f"{root}: {free_gb:.1f} GB free, need {minimum:g}"


def test_discord_webhook_is_valid() -> None:
    """A GET on DISCORD_WEBHOOK_URL answers 200 (the URL itself is never printed)."""
    url = require("DISCORD_WEBHOOK_URL")["DISCORD_WEBHOOK_URL"]
    try:
        response = requests.get(url, timeout=10)
    except requests.RequestException as error:
        raise AssertionError(redact(f"webhook unreachable: {error}")) from None
    assert response.status_code == 200, f"webhook answered {response.status_code}"


def test_github_token_reads_actions_runs() -> None:
    """GITHUB_TOKEN can list the Actions runs of GITHUB_REPOSITORY."""
    env = require("GITHUB_TOKEN", "GITHUB_REPOSITORY")
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    response = requests.get(
        f"{api}/repos/{env['GITHUB_REPOSITORY']}/actions/runs",
        params={"per_page": 1},
        headers={
            "Authorization": f"Bearer {env['GITHUB_TOKEN']}",
            "Accept": "application/vnd.github+json",
        },
        timeout=10,
    )
    assert response.status_code == 200, redact(
        f"GitHub answered {response.status_code}: {response.text[:200]}"
    )
