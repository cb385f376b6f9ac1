"""Checks of the services a deployment depends on, each against the real thing."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import require, scrub

#: The environment directories under the target root.
ENVIRONMENTS = ("preprod", "prod")


def _get(url: str, what: str, **kwargs: Any) -> requests.Response:
    """GET ``url``; an unreachable peer fails the check with a redacted message."""
    try:
        return requests.get(url, timeout=10, **kwargs)
    except requests.RequestException as error:
        problem = scrub(f"{what} unreachable: {error}")
    # Failing outside the except block: no chained traceback quoting the URL.
    pytest.fail(problem, pytrace=False)


def test_health_endpoints_answer() -> None:
    """Every URL in CICD_HEALTH_URLS (comma-separated) answers 200 within 10 s."""
    urls = require("CICD_HEALTH_URLS")["CICD_HEALTH_URLS"].split(",")
    for url in (u.strip() for u in urls if u.strip()):
        response = _get(url, url)
        assert response.status_code == 200, f"{url} answered {response.status_code}"


def test_target_root_has_free_disk() -> None:
    """CICD_TARGET_ROOT exists and has CICD_MIN_FREE_GB (default 2) free."""
    root = Path(require("CICD_TARGET_ROOT")["CICD_TARGET_ROOT"])
    assert root.is_dir(), f"CICD_TARGET_ROOT={root}: no such directory"
    free_gb = shutil.disk_usage(root).free / 1e9
    minimum = float(os.environ.get("CICD_MIN_FREE_GB", "2"))
    assert free_gb >= minimum, f"{root}: {free_gb:.1f} GB free, need {minimum:g}"


def test_environment_directories_are_writable() -> None:
    """CICD_TARGET_ROOT, and its preprod and prod directories when they exist."""
    root = Path(require("CICD_TARGET_ROOT")["CICD_TARGET_ROOT"])
    assert root.is_dir(), f"CICD_TARGET_ROOT={root}: no such directory"
    directories = [root, *(root / e for e in ENVIRONMENTS if (root / e).exists())]
    failures = []
    for directory in directories:
        try:
            with tempfile.NamedTemporaryFile(dir=directory, prefix=".cicd-check-"):
                pass
        except OSError as error:
            failures.append(f"{directory}: not writable ({error.strerror})")
    assert not failures, "; ".join(failures)


def test_discord_webhook_is_valid() -> None:
    """A GET on DISCORD_WEBHOOK_URL answers 200 (the URL itself is never printed)."""
    url = require("DISCORD_WEBHOOK_URL")["DISCORD_WEBHOOK_URL"]
    response = _get(url, "Discord webhook")
    assert response.status_code == 200, scrub(
        f"Discord webhook answered {response.status_code}: {response.text[:200]}"
    )


def test_github_token_reads_actions_runs() -> None:
    """GITHUB_TOKEN can list the Actions runs of GITHUB_REPOSITORY (GITHUB_API_URL)."""
    env = require("GITHUB_TOKEN", "GITHUB_REPOSITORY", optional=("GITHUB_API_URL",))
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    url = f"{api}/repos/{env['GITHUB_REPOSITORY']}/actions/runs"
    response = _get(
        url,
        "GitHub API",
        params={"per_page": 1},
        headers={
            "Authorization": f"Bearer {env['GITHUB_TOKEN']}",
            "Accept": "application/vnd.github+json",
        },
    )
    assert response.status_code == 200, scrub(
        f"GET {url} answered {response.status_code}: {response.text[:200]}"
    )
    runs = response.json().get("workflow_runs")
    assert isinstance(runs, list), f"GET {url}: no workflow_runs list in the answer"
