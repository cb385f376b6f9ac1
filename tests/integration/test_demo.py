"""The main job's flow (``nox -s demo``) on the stand-in app: deploy, CI passes,
a breaking commit goes live, CI fails, automatic rollback, production deploy.

The real run (the Streamlit app, ``nox -s app`` as CI, ports 8500/8501) is a CI step
of ``.ci/run``; here the same code runs with a stand-in app on free ports.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from cicd.demo import Breakage, Plan, main, report, run
from tests.conftest import AppRepo, free_port, shutdown_supervisord


@pytest.mark.slow
def test_demo_flow_deploys_rolls_back_and_promotes(
    app_repo: AppRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = app_repo.commit("v1")
    ports = (free_port(), free_port())
    plan = Plan(
        checkout=app_repo.path,
        root=tmp_path / "demo",
        ports=ports,
        ci_command="sh -c 'grep -q v1 app/version.txt'",
        breakage=Breakage("app/version.txt", "v1", "v2", "break it"),
        # The stand-in app has no pages to smoke nor a log worth a pre-flight.
        top_config='app_dir = "app"\npreflight = []',
        health_config='checks = [{ path = "/", body_contains = "ok" }]',
        # The stand-in app has no pages for the deploys' browser smoke.
        extra_config='[tool.cicd.runtime]\ncommand = "{python} server.py {port}"\n'
        "[tool.cicd.smoke]\non_deploy = false\n",
        verdict_timeout=60,
    )
    try:
        steps, rows = run(plan)
        report(plan, steps, rows)
        assert rows is not None, [s.outcome for s in steps]
        outcomes = [step.outcome for step in steps]
        assert outcomes[2] == "CI success → validated"
        assert outcomes[3].startswith("deployed: live at once")
        assert outcomes[4] == f"CI failure → running {good[:7]}"
        assert outcomes[5].startswith(f"deployed {good[:7]}")
        for port in ports:
            assert (
                requests.get(f"http://127.0.0.1:{port}/", timeout=5).text == "v1 ok\n"
            )
        by_env = {row["env"]: row for row in rows}
        assert by_env["preprod"]["validated"] == good == by_env["prod"]["current"]
        printed = capsys.readouterr().out
        assert "Timeline" in printed and "nox -s down" in printed
        saved = json.loads((plan.root / "timeline.json").read_text())
        assert len(saved) == 6
    finally:
        shutdown_supervisord(plan.root)


def test_demo_refuses_a_port_in_use(app_repo: AppRepo, tmp_path: Path) -> None:
    import socket

    app_repo.commit("v1")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        plan = Plan(app_repo.path, tmp_path / "demo", ports=(busy.getsockname()[1], 1))
        steps, rows = run(plan)
    assert rows is None and steps[0].outcome == "failed"


def test_main_reports_failure_with_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # not a git repository: the clone fails
    assert main() == 1
    assert (tmp_path / ".cicd" / "demo" / "timeline.json").exists()
