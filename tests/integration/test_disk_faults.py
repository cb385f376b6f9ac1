"""Disk faults say their cause and leave nothing behind: a full disk, a read-only one.

Real filesystems: a small tmpfs filled to the last byte under ``releases/``, and a
read-only bind mount of ``backups/``. Both need root (``mount``); the tests skip
without it. Each failed step must keep the OS's words with the path, in the output
and in the ledger, and a failed export must leave no temporary behind.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Project, invoke

pytestmark = pytest.mark.slow


def mount(*args: str) -> None:
    """``mount ARGS``, or skip: not root, or no mount in this sandbox."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (CI's .ci/run runs as root)")
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")


@pytest.fixture
def mounted() -> Iterator[list[Path]]:
    """Mount points to unmount after the test, last first."""
    points: list[Path] = []
    yield points
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` to the last byte; return the filler."""
    filler = directory / "filler"
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True
    )
    return filler


def ledger(project: Project, env: str) -> list[dict[str, object]]:
    path = project.root / env / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_a_full_disk_names_the_path_and_leaves_no_temporary(
    project: Project, mounted: list[Path]
) -> None:
    releases = project.root / "preprod" / "releases"
    releases.mkdir(parents=True)
    mount("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(releases))
    mounted.append(releases)
    filler = fill(releases)
    sha = project.repo.commit("v1")

    failed = invoke("deploy.preprod", "--sha", sha)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    error = failed.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: preprod: {sha[:7]} not deployed: export failed: ")
    assert "No space left on device" in error, error
    assert f"(into {releases}/.{sha}.tmp)" in error, error
    assert "Traceback" not in failed.stderr
    assert not [p.name for p in releases.iterdir() if p.name != "filler"]
    said = [str(e.get("detail")) for e in ledger(project, "preprod")]
    assert any("No space left on device" in d and str(releases) in d for d in said)

    # Space again, and a leftover of some earlier run: the next deploy sweeps it.
    filler.unlink()
    (releases / ".0123abcd.tmp" / "app").mkdir(parents=True)
    (releases / ".0123abcd.tmp.tar").write_text("cut short")
    done = invoke("deploy.preprod", "--sha", sha)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in releases.iterdir()) == [sha]


def test_a_read_only_backups_directory_names_the_path_and_the_reason(
    project: Project, mounted: list[Path]
) -> None:
    v1 = project.repo.commit("v1")
    assert invoke("deploy.preprod", "--sha", v1).returncode == 0
    project.target("preprod").set_validated(v1)
    backups = project.root / "prod" / "backups"
    shared = project.root / "prod" / "shared"
    for folder in (backups, shared):
        folder.mkdir(parents=True, exist_ok=True)
    (shared / "ratings.db").write_text("precious")
    mount("--bind", str(backups), str(backups))
    mounted.append(backups)
    mount("-o", "remount,ro,bind", str(backups))

    failed = invoke("deploy.prod", "--confirm", "DEPLOY")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    error = failed.stderr.strip().splitlines()[-1]
    assert str(backups) in error and "Read-only file system" in error, error
    assert "not recoverable" not in error
    said = " ".join(str(e.get("detail")) for e in ledger(project, "prod"))
    assert "Read-only file system" in said and str(backups) in said
    assert not (project.root / "prod" / "current").exists()


def test_a_write_to_a_full_disk_names_the_file_and_leaves_no_temp(
    tmp_path: Path, mounted: list[Path]
) -> None:
    from invoke import Context

    from cicd.commands import files
    from cicd.core.errors import CommandFailed
    from cicd.transport.runner import Runner

    full = tmp_path / "full"
    full.mkdir()
    mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full))
    mounted.append(full)
    fill(full)
    with pytest.raises(CommandFailed) as raised:
        Runner(Context()).run(files.write_atomic(str(full / "warm"), "x" * 100_000))
    assert f"{full}/warm.tmp." in str(raised.value)
    assert "No space left on device" in str(raised.value)
    assert sorted(p.name for p in full.iterdir()) == ["filler"]
