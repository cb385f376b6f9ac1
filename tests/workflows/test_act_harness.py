"""The harness's own pieces: the PEP 668 decision, the environ scan, the uses: refs.

These need no act: they run everywhere, quickly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests import act_harness
from tests.conftest import forget_the_ci_runner
from tests.act import pep668

REFUSED = [
    ("pip", ["install", "."]),
    ("pip3", ["install", "--quiet", "requests"]),
    ("/usr/bin/pip3.11", ["--log", "x.log", "install", "requests"]),
    ("pip", ["uninstall", "-y", "requests"]),
    ("pip", ["install", "--user", "requests"]),
    ("pip", ["install", "--break-system-packages", "requests"]),
    ("python3", ["-m", "pip", "install", "."]),
    ("python", ["-mpip", "install", "."]),
    ("python3", ["-I", "-W", "ignore", "-m", "pip", "install", "x"]),
]
ALLOWED = [
    ("python3", ["-m", "venv", "/srv/tool"]),
    ("python3", ["-c", "import pip"]),
    ("python3", ["script.py", "-m", "pip", "install"]),
    ("python3", []),
    ("pip", ["--version"]),
    ("pip", ["list"]),
    ("pip", ["download", "-d", "x", "requests"]),
    ("pip", ["install", "--target", "/tmp/x", "requests"]),
    ("pip", ["install", "--prefix=/tmp/x", "requests"]),
    ("python3", ["-m", "pipx", "install", "x"]),
]


@pytest.mark.parametrize(("program", "args"), REFUSED)
def test_system_pip_installs_are_refused(program: str, args: list[str]) -> None:
    assert pep668.refused(program, args)


@pytest.mark.parametrize(("program", "args"), ALLOWED)
def test_everything_else_runs(program: str, args: list[str]) -> None:
    assert not pep668.refused(program, args)


def run_shim(shims: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one of the shims with a PATH holding only them and the system's."""
    return subprocess.run(
        [str(shims / name), *args],
        capture_output=True,
        text=True,
        env={"PATH": f"{shims}:{act_harness.SYSTEM_PATH}", "HOME": str(shims)},
        timeout=120,
    )


@pytest.mark.slow
def test_the_system_python_refuses_pip_and_makes_venvs_that_work(
    tmp_path: Path,
) -> None:
    shims = act_harness.write_system_python(tmp_path / "bin")
    for name, args in (
        ("pip", ["install", "."]),
        ("pip3", ["install", "requests"]),
        ("python3", ["-m", "pip", "install", "."]),
    ):
        refused = run_shim(shims, name, *args)
        assert refused.returncode == 1
        assert "error: externally-managed-environment" in refused.stderr
        assert "PEP 668" in refused.stderr
    assert run_shim(shims, "python3", "-c", "print(6 * 7)").stdout == "42\n"
    venv = tmp_path / "venv"
    assert run_shim(shims, "python3", "-m", "venv", str(venv)).returncode == 0
    # Inside the venv, its own pip works (no install: no index here).
    inside = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert inside.returncode == 0, inside.stderr
    assert str(venv) in inside.stdout


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_every_checkout_ref_is_found_tag_or_pinned_sha(tmp_path: Path) -> None:
    sha = "11d5960a326750d5838078e36cf38b85af677262"
    write(
        tmp_path / ".github/workflows/a.yml",
        f"""\
jobs:
  a:
    steps:
      - uses: actions/checkout@v4
      - uses: "actions/checkout@{sha}" # v4.2.2
      -   uses: 'actions/setup-python@v5'
      - name: x
        uses: ./.github/actions/setup-cicd
""",
    )
    write(
        tmp_path / ".github/actions/setup-cicd/action.yml",
        "runs:\n  steps:\n    - uses: actions/checkout@v3\n",
    )
    assert act_harness.checkout_refs(tmp_path) == [
        f"actions/checkout@{sha}",
        "actions/checkout@v3",
        "actions/checkout@v4",
    ]
    assert "./.github/actions/setup-cicd" in act_harness.uses_refs(tmp_path)


def test_self_hosted_workflows_use_only_checkout_and_local_actions() -> None:
    """Nothing but the stand-in and ./ actions: act has nothing to fetch."""
    workflows = act_harness.REPO_ROOT / ".github" / "workflows"
    for name in ("cd-preprod.yml", "cd-prod.yml", "ci-verdict.yml", "health-check.yml"):
        text = (workflows / name).read_text()
        assert "self-hosted" in text, name
        for ref in (m.group(1) for m in act_harness._USES.finditer(text)):
            assert ref.startswith(("actions/checkout@", "./")), (name, ref)


def fake_proc(tmp_path: Path, environs: dict[int, bytes]) -> Path:
    proc = tmp_path / "proc"
    for pid, environ in environs.items():
        write(proc / str(pid) / "environ", "")
        (proc / str(pid) / "environ").write_bytes(environ)
    (proc / "self").mkdir()
    (proc / "sys").mkdir()
    return proc


def test_the_environ_scan_matches_the_exact_tracking_id(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        {
            10: b"PATH=/bin\0RUNNER_TRACKING_ID=github_abc\0",
            11: b"RUNNER_TRACKING_ID=github_abcd\0",
            12: b"RUNNER_TRACKING_ID=\0CICD_CONFIG=/srv/x.toml\0",
            13: b"",
            14: b"X=RUNNER_TRACKING_ID=github_abc\0",
            15: b"RUNNER_TRACKING_ID=github_abc",
        },
    )
    found = act_harness.processes_with("RUNNER_TRACKING_ID", "github_abc", proc)
    assert found == [10, 15]
    assert act_harness.environ_of(12, proc) == {
        "RUNNER_TRACKING_ID": "",
        "CICD_CONFIG": "/srv/x.toml",
    }
    assert act_harness.environ_of(99, proc) is None
    assert act_harness.leaks([10, 11, 12], ["abcd", ""]) == {}  # real /proc
    assert act_harness.processes_with("CICD_CONFIG", "/srv/x.toml", proc) == [12]


def sleeper(**env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={"PATH": os.environ.get("PATH", ""), **env},
        start_new_session=True,
    )


def test_the_cleanup_kills_the_job_s_processes_only() -> None:
    job = f"github_{uuid.uuid4()}"
    mine = sleeper(RUNNER_TRACKING_ID=job)
    other = sleeper(RUNNER_TRACKING_ID=f"github_{uuid.uuid4()}")
    detached = sleeper(RUNNER_TRACKING_ID="", SECRET_LOOKING="tok-123")
    try:
        killed = act_harness.kill_processes_with("RUNNER_TRACKING_ID", job)
        assert [k.pid for k in killed] == [mine.pid]
        assert "time.sleep(60)" in killed[0].cmdline
        assert mine.wait(timeout=10) == -signal.SIGKILL
        assert other.poll() is None and detached.poll() is None
        assert act_harness.leaks([detached.pid, other.pid], ["tok-123"]) == {
            detached.pid: ["SECRET_LOOKING"]
        }
        assert other.pid in act_harness.descendants(os.getpid())
    finally:
        for process in (mine, other, detached):
            process.kill()
            process.wait()


def test_the_suite_forgets_the_ci_runner_s_variables_but_its_tracking_id() -> None:
    """Inside ci.yml's tests job the pipeline under test must not see the runner's
    step summary, run URL or repository (nor the harness's offline installs)."""
    environ = {
        "GITHUB_STEP_SUMMARY": "/runner/summary.md",
        "GITHUB_SERVER_URL": "http://127.0.0.1:9",
        "RUNNER_TEMP": "/runner/tmp",
        "RUNNER_TRACKING_ID": "github_1",
        "ACT_HARNESS_ACTIONS": "/work/tests/act/actions.py",
        "UV_OFFLINE": "1",
        "PATH": "/usr/bin",
        "GITHUBISH": "kept",
    }
    removed = forget_the_ci_runner(environ)
    assert environ == {
        "RUNNER_TRACKING_ID": "github_1",
        "PATH": "/usr/bin",
        "GITHUBISH": "kept",
    }
    assert "GITHUB_STEP_SUMMARY" in removed
    # Outside the harness a developer's own uv or pip settings stay.
    laptop = {"UV_OFFLINE": "1", "PIP_CONFIG_FILE": "/etc/pip.conf"}
    assert forget_the_ci_runner(laptop) == [] and len(laptop) == 2
    assert not any(name.startswith("GITHUB_") for name in os.environ)
