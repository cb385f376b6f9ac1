"""The app's dependency files read purely, and the venv builders run for real."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Context

from cicd.core import config, dependency_lock
from cicd.commands import Command, venv
from cicd.core.errors import ConfigError
from cicd.transport.runner import Runner
from cicd.runtime.compose import app_env_file

UV_LOCK = """\
version = 1
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }

[[package]]
name = "datautils"
version = "0.1.0"
source = { directory = "../libs/datautils" }

[[package]]
name = "editable-one"
version = "0.1.0"
source = { editable = "../libs/edit" }

[[package]]
name = "outside"
version = "0.1.0"
source = { directory = "../../elsewhere" }

[[package]]
name = "tinydep"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
"""

PYLOCK = """\
lock-version = "1.0"

[[packages]]
name = "datautils"
directory = { path = "../libs/datautils" }

[[packages]]
name = "tinydep"
version = "1.0"
"""


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("uv.lock", "uv"),
        ("sub/uv.lock", "uv"),
        ("pylock.toml", "pylock"),
        ("pylock.prod.toml", "pylock"),
        ("requirements.txt", "requirements"),
        ("reqs/base.in", "requirements"),
    ],
)
def test_the_kind_comes_from_the_name(name: str, kind: str) -> None:
    assert dependency_lock.kind_of(name) == kind


def test_auto_takes_the_first_present_candidate() -> None:
    assert dependency_lock.candidates("auto") == (
        "uv.lock",
        "pylock.toml",
        "requirements.txt",
    )
    assert dependency_lock.candidates("deps.txt") == ("deps.txt",)
    assert dependency_lock.chosen("auto", ["", "x", "y"]) == ("pylock.toml", "x")
    assert dependency_lock.chosen("auto", ["", " \n", ""]) == ("requirements.txt", "")
    assert dependency_lock.chosen("uv.lock", [""]) == ("uv.lock", "")


def test_hashed_requirements_are_recognised() -> None:
    assert dependency_lock.has_hashes("a==1 \\\n    --hash=sha256:00\n")
    assert not dependency_lock.has_hashes("a==1\n")


def test_local_packages_are_the_path_sources_inside_the_release() -> None:
    assert dependency_lock.local_packages(UV_LOCK, "uv", "app") == [
        "libs/datautils",
        "libs/edit",
    ]
    assert dependency_lock.local_packages(PYLOCK, "pylock", "app") == ["libs/datautils"]
    assert dependency_lock.local_packages("a==1", "requirements", "app") == []
    assert dependency_lock.local_packages("not [toml", "uv", "app") == []
    assert dependency_lock.local_packages("", "uv", "app") == []
    assert dependency_lock.local_packages('package = ["x"]', "uv", "app") == []


def test_the_venv_key_changes_with_each_of_its_parts() -> None:
    base = dependency_lock.venv_key("lock", "/usr/bin/python3 3.11.2", ["tree1"])
    assert len(base) == 16
    assert base == dependency_lock.venv_key(
        "lock", "/usr/bin/python3 3.11.2", ["tree1"]
    )
    assert base != dependency_lock.venv_key(
        "lock2", "/usr/bin/python3 3.11.2", ["tree1"]
    )
    assert base != dependency_lock.venv_key(
        "lock", "/usr/bin/python3 3.13.7", ["tree1"]
    )
    assert base != dependency_lock.venv_key(
        "lock", "/usr/bin/python3 3.11.2", ["tree2"]
    )


@pytest.mark.parametrize(
    ("version", "specifier", "ok"),
    [
        ("3.11.2", ">=3.11", True),
        ("3.11.2", ">=3.13.7", False),
        ("3.13.7", ">=3.13.7", True),
        ("3.13.7", ">=3.10,<3.14", True),
        ("3.14.0", ">=3.10,<3.14", False),
        ("3.11.2", "==3.11.*", True),
        ("3.12.0", "==3.11.*", False),
        ("3.12.0", "!=3.11.*", True),
        ("3.11.9", "~=3.11.2", True),
        ("3.12.0", "~=3.11.2", False),
        ("3.11.1", "~=3.11.2", False),
        ("3.11.2", "==3.11.2", True),
        ("3.11.2", "!=3.11.2", False),
        ("3.11.2", "<=3.11.2", True),
        ("3.11.2", ">3.11.2", False),
        ("3.11.2", "3.11.2", True),
        ("3.11.2", "=== 3.11.2", True),
        ("3.11.2", "junk, >=3", True),  # unreadable: left to the installer
        ("3.11.2", "", True),
    ],
)
def test_requires_python_is_checked(version: str, specifier: str, ok: bool) -> None:
    assert dependency_lock.satisfies(version, specifier) is ok


def test_what_the_app_asks_for_is_read_from_its_files() -> None:
    pyproject = '[project]\nname = "a"\nrequires-python = ">=3.13.7"\n'
    needs = dependency_lock.needs(pyproject, "# pinned\ncpython-3.13\n")
    assert needs == dependency_lock.Needs(">=3.13.7", "3.13")
    assert needs.describe() == ">=3.13.7, 3.13 (.python-version)"
    assert needs.accepts("3.13.7") and not needs.accepts("3.14.0")
    assert not needs.accepts("3.13.1")
    assert dependency_lock.needs("", "3.12\n") == dependency_lock.Needs("", "3.12")
    assert dependency_lock.needs("not [toml", "") == dependency_lock.Needs()
    assert (
        dependency_lock.needs("[project]\nrequires-python = 3\n", "")
        == dependency_lock.Needs()
    )
    assert dependency_lock.Needs().accepts("2.7.18")


def test_the_package_that_failed_its_hash_is_named() -> None:
    uv = "error: Failed to download\n  cause: Hash mismatch for `tinydep==1.0`"
    assert dependency_lock.failed_package(uv) == "tinydep==1.0"
    pip = (
        "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n"
        "    tinydep==1.0 from file:///x/tinydep-1.0-py3-none-any.whl:\n"
        "        Expected sha256 00\n"
        "             Got        11\n"
    )
    assert dependency_lock.failed_package(pip) == "tinydep==1.0"
    missing = (
        "ERROR: Hashes are required in --require-hashes mode, but they are missing"
    )
    assert dependency_lock.failed_package(missing) == "a requirement without a hash"
    assert dependency_lock.failed_package("No space left on device") == ""


def test_venv_builders() -> None:
    sync = venv.sync_uv_lock("/v/abc", "/r/app")
    assert sync.argv[:3] == ("uv", "sync", "--quiet")
    assert {"--frozen", "--no-default-groups", "--no-editable"} <= set(sync.argv)
    assert "--no-install-project" in sync.argv
    assert sync.env == (("UV_PROJECT_ENVIRONMENT", "/v/abc"),)
    pylock = venv.sync_pylock("/v/abc", "/r/app/pylock.toml")
    assert "--require-hashes" in pylock.argv and pylock.argv[-1] == "/r/app/pylock.toml"
    # Local directories have no hash: every hash the lock has is still checked.
    local = venv.sync_pylock("/v/abc", "/r/app/pylock.toml", "/opt/uv", local=True)
    assert local.argv[0] == "/opt/uv" and "--verify-hashes" in local.argv
    hashed = venv.install("/v/a b", "/r/req.txt", installer="pip", hashes=True)
    assert "--require-hashes" in hashed.argv
    assert (
        "--require-hashes" in venv.install("/v", "/r", installer="uv", hashes=True).argv
    )
    assert "--require-hashes" not in venv.install("/v", "/r", installer="uv").argv
    assert venv.find_python("3.13").argv[-2:] == ("--no-python-downloads", "3.13")
    assert venv.tree_ids("/repo", "abc", "libs/x").argv[-1] == "abc:libs/x"


def run(command: Command) -> str:
    """Run a built command here and return its stdout."""
    return subprocess.run(
        command.render(), shell=True, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_the_interpreter_reports_its_path_and_version() -> None:
    path, version = run(venv.python_version(sys.executable)).rsplit(" ", 1)
    assert version.startswith(f"{sys.version_info[0]}.{sys.version_info[1]}.")
    assert Path(path).exists()


def test_the_first_present_file_is_digested(tmp_path: Path) -> None:
    second = tmp_path / "odd name\\2"
    second.write_text("b\n")
    paths = (str(tmp_path / "missing"), str(second), str(tmp_path / "x"))
    assert run(venv.digest_first(*paths)) == hashlib.sha256(b"b\n").hexdigest()
    assert run(venv.digest_first(str(tmp_path / "missing"))) == ""


@pytest.mark.parametrize("value", ["/etc/passwd", "../uv.lock", "", "a\nb"])
def test_requirements_must_stay_in_the_app(tmp_path: Path, value: str) -> None:
    path = tmp_path / "cicd.toml"
    path.write_text(
        "[tool.cicd]\nrequirements = " + repr(value).replace("'", '"') + "\n"
    )
    with pytest.raises(ConfigError, match="requirements: a path inside"):
        config.load(path)


def test_the_app_env_file_is_made_empty_and_private_when_there_is_none(
    tmp_path: Path,
) -> None:
    runner = Runner(Context())
    app_env = tmp_path / "shared dir" / "app.env"
    assert app_env_file(runner, str(app_env)) == str(app_env)
    assert app_env.read_text() == "" and app_env.stat().st_mode & 0o777 == 0o600
    app_env.write_text("A=1\n")
    assert app_env_file(runner, str(app_env)) == str(app_env)
    assert app_env.read_text() == "A=1\n"  # never overwritten
