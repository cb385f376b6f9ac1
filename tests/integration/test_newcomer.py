"""A newcomer's first minutes: the README's first commands on a PEP 668 system Python,
the demo's ports and closing hints, and an operator's ``invoke --list`` without the
developers' test tooling.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cicd.demo import Plan, main, parse_ports, report
from cicd.core.errors import UsageError
from tests import act_harness
from tests.conftest import REPO_ROOT, Project, invoke


def readme_first_commands() -> list[str]:
    """The command lines of the README's "On a fresh machine" block."""
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split("## On a fresh machine", 1)[1].split("```bash\n", 1)[1]
    lines = block.split("```", 1)[0].strip().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines]


@pytest.fixture(scope="session")
def nox_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of ``nox[uv]``, fetched once (provisioning, as nox installs are)."""
    work = tmp_path_factory.mktemp("nox-wheels")
    subprocess.run(
        [act_harness.base_python(), "-m", "venv", str(work / "venv")],
        check=True,
        capture_output=True,
    )
    fetched = subprocess.run(
        [str(work / "venv" / "bin" / "pip"), "download", "-q", "-d", str(work / "w")]
        + ["nox[uv]"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if fetched.returncode != 0:
        pytest.skip(f"cannot fetch nox's wheels: {fetched.stderr.strip()[-200:]}")
    return work / "w"


@pytest.mark.slow
def test_the_readme_first_commands_work_on_a_pep668_python(
    tmp_path: Path, nox_wheels: Path
) -> None:
    shims = act_harness.write_system_python(tmp_path / "system-bin")
    env = {
        "PATH": f"{shims}:{act_harness.SYSTEM_PATH}",
        "HOME": str(tmp_path),
        "PIP_NO_INDEX": "1",  # offline: only the wheels fetched above
        "PIP_FIND_LINKS": str(nox_wheels),
    }

    def shell(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", line],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    # What the README said before: the system Python refuses it.
    old = shell("python3 -m pip install 'nox[uv]'", tmp_path)
    assert old.returncode == 1 and "externally-managed-environment" in old.stderr
    commands = readme_first_commands()
    assert [c.rsplit("&& ", 1)[1] for c in commands] == ["nox -s demo", "nox"]
    # Both install nox the same way: everything up to nox itself runs as written
    # (once), then nox lists the sessions it would run (running them is the demo's
    # and the suite's own business).
    (installed,) = {line.rsplit(" && ", 1)[0] for line in commands}
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    listed = f"nox -l -f {REPO_ROOT / 'noxfile.py'}"
    done = shell(f"{installed} && {listed} && command -v nox", checkout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "demo" in done.stdout and "tests" in done.stdout
    assert done.stdout.strip().endswith(f"{checkout}/.venv/bin/nox")


def test_the_demo_ports_are_chosen_with_port_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert parse_ports([]) == (8500, 8501)
    assert parse_ports(["--port-base", "9000"]) == (9000, 9001)
    assert parse_ports(["--port-base=12000"]) == (12000, 12001)
    for wrong in (["--port-base", "80"], ["--port-base", "x"], ["--ports", "1"]):
        with pytest.raises(UsageError, match="--port-base N"):
            parse_ports(wrong)
    monkeypatch.chdir(tmp_path)
    assert main(["--port-base", "65535"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: usage: nox -s demo -- [--port-base N]")
    assert error.count("\n") == 1
    assert not (tmp_path / ".cicd").exists()  # nothing was done


def test_the_demo_closing_hint_runs_as_printed(
    project: Project,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = project.root
    root.mkdir(parents=True)
    shutil.copy(project.config_path, root / "cicd.toml")
    monkeypatch.chdir(project.config_path.parent)
    plan = Plan(checkout=project.repo.path, root=root, ports=(9000, 9001))
    report(plan, [], [])
    printed = capsys.readouterr().out
    assert "preprod http://127.0.0.1:9000" in printed and "9001" in printed
    hint = re.search(r"Look around:\s+(.+?)\s{3}", printed)
    assert hint, printed
    # In a shell that has neither invoke nor the project: only the system's PATH.
    ran = subprocess.run(
        ["bash", "-c", hint.group(1)],
        env={"PATH": act_harness.SYSTEM_PATH, "HOME": str(project.root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("ENV") and "preprod" in ran.stdout


def test_the_test_tooling_is_not_in_the_operators_list() -> None:
    listing = invoke("--list")
    assert listing.returncode == 0 and "infra." not in listing.stdout
    refused = invoke("infra.up")
    assert refused.returncode == 2
    developers = invoke("--list", env={"CICD_DEV_TASKS": "1"})
    assert "infra.up" in developers.stdout and "infra.down" in developers.stdout
