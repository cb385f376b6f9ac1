"""local-env: the infra checks' stand-ins start for real, answer, and stop."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests import testinfra

SETTINGS = {"token": "t0ken", "repository": "o/r", "webhook_path": "/api/webhooks/1/x"}


@pytest.mark.parametrize(
    ("path", "auth", "status"),
    [
        ("/health", "", 200),
        ("/api/webhooks/1/x", "", 200),
        ("/api/webhooks/1/y", "", 404),
        ("/repos/o/r/actions/runs", "Bearer t0ken", 200),
        ("/repos/o/r/actions/runs", "Bearer nope", 401),
    ],
)
def test_standin_answer(path: str, auth: str, status: int) -> None:
    assert testinfra.standin_answer(path, auth, SETTINGS)[0] == status


@pytest.mark.sshd
@pytest.mark.skipif(not testinfra.SSHD.exists(), reason=testinfra.NEEDS_SSHD)
def test_local_env_starts_and_stops(tmp_path: Path) -> None:
    pytest.importorskip("moto.server")
    env = testinfra.local_env(tmp_path, say=lambda line: None)
    try:
        lines = testinfra.export_lines(env)
        assert lines.count("export INFRA_CHECK_") == len(env)
        with urllib.request.urlopen(env["CICD_HEALTH_URLS"], timeout=5) as answer:
            assert answer.read() == b"ok"
        runs = urllib.request.Request(
            f"{env['GITHUB_API_URL']}/repos/{env['GITHUB_REPOSITORY']}/actions/runs",
            headers={"Authorization": f"Bearer {env['GITHUB_TOKEN']}"},
        )
        with urllib.request.urlopen(runs, timeout=5) as answer:
            assert json.load(answer)["workflow_runs"]
        listing = f"{env['MANGETAMAIN_S3_ENDPOINT']}/{env['MANGETAMAIN_S3_BUCKET']}"
        with urllib.request.urlopen(listing, timeout=5) as answer:
            assert b"recipes.parquet" in answer.read()
    finally:
        stopped = testinfra.stop_local_env(tmp_path)
    assert sorted(stopped) == ["http", "s3", "sshd"]
    assert testinfra.stop_local_env(tmp_path) == []
    assert testinfra.main(["local-env-stop", "--dir", str(tmp_path)]) == 0
