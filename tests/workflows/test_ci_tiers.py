"""CI's tests job runs every tier ``.ci/run`` runs; on main, a skipped tier fails CI.

The fast half of that proof: the jobs' ``run:`` steps are taken from ``ci.yml`` and
run here as the workflow spells them, with the runner's shell (``bash --noprofile
--norc -eo pipefail``), and what they leave behind is checked:

- the tests job's provisioning steps (``tools.testinfra up`` and ``swarm-up`` under
  ``sudo``) provision this machine; then sshd, haproxy, Chromium, a Docker engine
  and the two-node swarm answer, which the tiers' skips ask for;
- the summary step (``nox -s summary`` with ``NEEDS`` from ``toJSON(needs)``) reads
  a JUnit report that real pytest wrote, and fails a push to main when a test
  skipped for a missing component, but not a pull request.

The whole workflow file, every job through act with the hosted actions' stand-ins
and the suite inside the tests job, is tests/workflows/test_ci_act.py (``nox -s
workflows``, about 15 minutes). Not run here: the step that stops the hosted
image's own Docker engine (``if: runner.environment == 'github-hosted'``; this
machine has no such engine).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cicd.checks.browser import find_chromium
from tests import act_harness
from tests.act_harness import REPO_ROOT
from tools.testinfra import docker, swarm
from tools.testinfra.sshd import NEEDS_SSHD, SSHD

CI = REPO_ROOT / ".github" / "workflows" / "ci.yml"
CI_RUN = REPO_ROOT / ".ci" / "run"
#: The runner's shell for ``run:`` steps (``shell: bash``'s documented template).
SHELL = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]
#: The ``if:`` of steps for GitHub's hosted image only (false on this machine).
HOSTED_ONLY = "runner.environment == 'github-hosted'"
#: The summary step's one expression, as GitHub's runner evaluates it.
NEEDS_EXPRESSION = "${{ toJSON(needs) }}"
SUCCESS = {job: {"result": "success", "outputs": {}} for job in ("quality", "tests")}


def ci_job(name: str) -> dict[str, Any]:
    """One job of ci.yml."""
    return dict(yaml.safe_load(CI.read_text())["jobs"][name])


def provisioning_steps() -> list[dict[str, Any]]:
    """The tests job's steps between the cache and the install of nox."""
    steps = ci_job("tests")["steps"]
    install = next(i for i, s in enumerate(steps) if "pip install" in s.get("run", ""))
    return [step for step in steps[:install] if "run" in step]


def ci_run_extras() -> list[str]:
    """The extra Debian packages .ci/run passes to ``tools.testinfra up``."""
    found = re.search(r"^extra=\(([^)]*)\)", CI_RUN.read_text(), re.M)
    assert found, ".ci/run has no extra=(...) line"
    return found.group(1).split()


def sudo_dir(tmp_path: Path) -> Path | None:
    """A directory to put first on PATH so that ``sudo`` works here, or None.

    The real sudo when installed; as root without it (this machine), the act
    harness's shim (:func:`tests.act_harness.write_sudo`).
    """
    if shutil.which("sudo") or act_harness.write_sudo(tmp_path):
        return tmp_path
    return None


def run_step(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """One ``run:`` line, as the runner runs it."""
    return subprocess.run(
        [*SHELL, line],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_the_tests_job_provisions_with_the_steps_of_ci_run() -> None:
    steps = provisioning_steps()
    lines = [str(step["run"]) for step in steps]
    infra = [line for line in lines if "-m tools.testinfra " in line]
    actions = [line.split("-m tools.testinfra ")[1].split()[0] for line in infra]
    ci_run = CI_RUN.read_text()
    # .ci/run's order: packages and dockerd, then the swarm.
    assert actions == ["up", "swarm-up"]
    assert ci_run.index('"${infra[@]}" up') < ci_run.index('"${infra[@]}" swarm-up')
    extras = re.findall(r"--extra=(\S+)", infra[0])
    # Left to the image: Chromium (Ubuntu has no `chromium` deb to install, the
    # hosted image ships /usr/bin/chromium) and Node.js (the image has its own).
    assert extras == [p for p in ci_run_extras() if p not in ("chromium", "nodejs")]
    assert all(line.startswith("sudo env PYTHONPATH=. python3 ") for line in infra)
    others = [step for step in steps if "-m tools.testinfra " not in step["run"]]
    assert [step.get("if") for step in others] == [HOSTED_ONLY]
    tests = [s for s in ci_job("tests")["steps"] if "nox -s tests" in s.get("run", "")]
    assert [s["run"] for s in tests] == ['sudo -E env "PATH=$PATH" nox -s tests']


@pytest.mark.slow
def test_the_provisioning_steps_run_here_and_every_tier_finds_its_component(
    tmp_path: Path,
) -> None:
    path = sudo_dir(tmp_path)
    if path is None:
        pytest.skip("needs root or sudo (ci.yml's steps run through sudo)")
    engine_before = docker.docker_ok()
    swarm_before = swarm.healthy()
    env = {
        "PATH": f"{path}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
    }
    done: list[tuple[str, subprocess.CompletedProcess]] = []
    try:
        for step in provisioning_steps():
            if step.get("if") == HOSTED_ONLY:
                continue  # no hosted image's engine here (see the module's doc)
            assert "if" not in step, f"a condition this test cannot evaluate: {step}"
            result = run_step(str(step["run"]), REPO_ROOT, env)
            done.append((str(step["run"]), result))
            assert result.returncode == 0, f"{step['run']}:\n{result.stdout}{result}"
        up_output, swarm_output = (result.stdout for _, result in done)
        assert "==> packages:" in up_output and "==> dockerd:" in up_output
        assert "`busybox echo ok` in it says 'ok'" in up_output
        assert re.search(r"swarm: (already up, 2 nodes Ready|up;)", swarm_output)
        # What the tiers' skip reasons ask for is here now.
        assert SSHD.exists(), NEEDS_SSHD
        assert shutil.which("haproxy"), "needs haproxy"
        assert find_chromium(), "needs Chromium"
        assert docker.docker_ok(), docker.NEEDS_DOCKER
        assert swarm.healthy(), swarm.NEEDS_SWARM
    finally:
        # Leave the machine as found: what these steps started stops (.ci/run's
        # EXIT trap does the same).
        infra = [sys.executable, "-m", "tools.testinfra"]
        pythonpath = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        if not swarm_before:
            subprocess.run([*infra, "swarm-down"], cwd=REPO_ROOT, env=pythonpath)
        if not engine_before:
            subprocess.run([*infra, "down"], cwd=REPO_ROOT, env=pythonpath)


# -- the summary job -------------------------------------------------------------

TIER_TEST = f"""
import pytest

def test_passes():
    pass

def test_needs_sshd():
    pytest.skip({NEEDS_SSHD!r})
"""
ELSEWHERE_TEST = """
import pytest

def test_skipped_for_this_machine_only():
    pytest.skip("a pyproject.toml of cicd sits above the temporary directory")

@pytest.mark.xfail(reason="needs a fix upstream", strict=True)
def test_known_bug():
    assert False
"""


def junit_report(tmp_path: Path, source: str) -> Path:
    """The JUnit report real pytest writes for ``source`` (as ``nox -s tests``)."""
    module = tmp_path / "tier" / "test_tier.py"
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(source)
    report = tmp_path / "tier" / "cicd.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + ["-p", "no:xdist", f"--junitxml={report}", str(module)],
        cwd=module.parent,
        capture_output=True,
        check=True,
    )
    return report


def find_nox() -> str | None:
    """nox on PATH (CI's tests job), else the venv .ci/run makes."""
    found = shutil.which("nox") or str(REPO_ROOT / ".venv" / "bin" / "nox")
    return found if os.access(found, os.X_OK) else None


def summary_step() -> dict[str, Any]:
    """The summary job's step that runs ``nox -s summary``."""
    (step,) = [
        s for s in ci_job("summary")["steps"] if s.get("run") == "nox -s summary"
    ]
    return step


def run_summary(
    tmp_path: Path,
    *,
    report: Path | None,
    event: str,
    ref: str,
    needs: dict[str, Any] = SUCCESS,
) -> tuple[subprocess.CompletedProcess, str]:
    """Run the summary step as spelled in a checkout; its output and job summary."""
    nox = find_nox()
    if nox is None:
        pytest.skip("needs nox: pip install 'nox[uv]' (ci.yml's summary job does)")
    checkout = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO_ROOT / "src", checkout / "src", ignore=ignore)
    for name in ("noxfile.py", "pyproject.toml"):
        shutil.copy2(REPO_ROOT / name, checkout / name)
    if report is not None:
        # Where actions/download-artifact puts the tests job's test-results.
        results = checkout / "build" / "test-results"
        results.mkdir(parents=True)
        shutil.copy2(report, results / "cicd.xml")
    step = summary_step()
    assert step["env"] == {"NEEDS": NEEDS_EXPRESSION}  # the one value filled in
    job_summary = tmp_path / "step_summary.md"
    env = {
        "PATH": f"{Path(nox).parent}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "NEEDS": json.dumps(needs),
        "GITHUB_EVENT_NAME": event,
        "GITHUB_REF": ref,
        "GITHUB_STEP_SUMMARY": str(job_summary),
        "GITHUB_ACTIONS": "true",
    }
    result = run_step(str(step["run"]), checkout, env)
    shown = job_summary.read_text() if job_summary.exists() else ""
    return result, shown


PUSH_MAIN = {"event": "push", "ref": "refs/heads/main"}
PULL_REQUEST = {"event": "pull_request", "ref": "refs/pull/7/merge"}


@pytest.mark.slow
def test_a_tier_skipped_for_a_missing_component_fails_a_push_to_main(
    tmp_path: Path,
) -> None:
    report = junit_report(tmp_path, TIER_TEST)
    result, shown = run_summary(tmp_path, report=report, **PUSH_MAIN)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "1 test skipped for a missing component, e.g. " in output
    assert "test_tier::test_needs_sshd: needs OpenSSH sshd" in output
    assert "**1 test skipped for a missing component** (fails the run on main)" in (
        shown
    )
    assert "| tests | success |" in shown


@pytest.mark.slow
def test_on_a_pull_request_the_skipped_tier_is_reported_and_passes(
    tmp_path: Path,
) -> None:
    report = junit_report(tmp_path, TIER_TEST)
    result, shown = run_summary(tmp_path, report=report, **PULL_REQUEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(reported; not failed on a PR)" in shown
    assert f"1 × {NEEDS_SSHD} (e.g. `test_tier::test_needs_sshd`)" in shown


@pytest.mark.slow
def test_main_passes_when_the_only_skips_name_no_component(tmp_path: Path) -> None:
    report = junit_report(tmp_path, ELSEWHERE_TEST)
    result, shown = run_summary(tmp_path, report=report, **PUSH_MAIN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "**Every tier ran:** no test skipped for a missing component." in shown
    # The xfail is not a skip; the machine-specific skip is counted apart.
    assert "1 test skipped for another reason (naming no component)." in shown


@pytest.mark.slow
def test_main_fails_without_a_test_report_and_on_a_failed_job(tmp_path: Path) -> None:
    failed = {**SUCCESS, "tests": {"result": "failure", "outputs": {}}}
    result, shown = run_summary(tmp_path, report=None, needs=failed, **PUSH_MAIN)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "jobs not successful: tests; no test report to check for skipped" in output
    assert "| tests | failure |" in shown
