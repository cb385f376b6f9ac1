"""The Docker engine and Compose answer, and every compose file is valid for them.

Run where the compose runtime deploys (the VM's runner): set ``CICD_DOCKER=1``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT

#: The compose files of the environments.
COMPOSE_FILES = sorted((ROOT / "30_docker").glob("docker-compose-*.yml"))
#: How each compose CLI is called: v2 plugin first, then v1.
COMPOSE_CLIS = (["docker", "compose"], ["docker-compose"])


def _run(
    argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command with a 60 s limit; a missing program is an exit 127."""
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
        )
    except FileNotFoundError as error:
        return subprocess.CompletedProcess(argv, 127, "", str(error))


def require_docker() -> None:
    """Skip unless CICD_DOCKER=1 says this machine's docker is to be checked."""
    if os.environ.get("CICD_DOCKER") != "1":
        pytest.skip("set CICD_DOCKER=1 to check this machine's docker and compose")


def _compose() -> tuple[list[str], str]:
    """The compose CLI that answers ``version``, and what it says; fail if none."""
    tried = []
    for cli in COMPOSE_CLIS:
        result = _run([*cli, "version"])
        if result.returncode == 0:
            return cli, result.stdout.strip().splitlines()[0]
        tried.append(f"`{' '.join(cli)} version`: {result.stderr.strip()[:150]}")
    pytest.fail("no compose CLI answers: " + "; ".join(tried), pytrace=False)


def test_docker_and_compose_versions() -> None:
    """The engine reports its server version, and docker compose or docker-compose."""
    require_docker()
    result = _run(["docker", "version", "--format", "{{.Server.Version}}"])
    server = result.stdout.strip()
    assert result.returncode == 0 and server, (
        f"`docker version` exited {result.returncode}: "
        f"{(result.stderr or result.stdout).strip()[:300]}"
    )
    cli, version = _compose()
    print(f"docker server {server}; {' '.join(cli)}: {version}")


@pytest.mark.parametrize("compose_file", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_is_valid(compose_file: Path) -> None:
    """``compose -f FILE config -q`` accepts the file, with a deploy's variables set.

    The variables are those the compose runtime passes: CICD_RELEASE (the release
    directory), CICD_SHARED (the environment's shared data), CICD_IMAGE_TAG.
    """
    require_docker()
    cli, _ = _compose()
    with tempfile.TemporaryDirectory(prefix="cicd-compose-check-") as shared:
        env = {
            **os.environ,
            "CICD_RELEASE": str(ROOT),
            "CICD_SHARED": shared,
            "CICD_IMAGE_TAG": "check",
        }
        argv = [*cli, "-f", str(compose_file), "config", "-q"]
        result = _run(argv, env=env, cwd=compose_file.parent)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[:500]
        pytest.fail(f"`{' '.join(argv)}` exited {result.returncode}: {output}", False)
