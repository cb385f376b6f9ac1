"""The hosted actions' stand-ins, piece by piece (tests/act/actions.py; no act).

What a workflow would notice if these were wrong: which cache entry a key finds,
a key saved twice, where an artifact's files are rooted and which hidden files go
in it, which version setup-python takes for a spec.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.act import actions


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The harness's cache service, and a workspace holding ``data/``."""
    store = tmp_path / "service"
    monkeypatch.setenv("ACT_HARNESS_CACHE", str(store))
    workspace = tmp_path / "workspace"
    (workspace / "data").mkdir(parents=True)
    (workspace / "data" / "file").write_text("x")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(workspace))
    return store


def save(store: Path, key: str, version: str = "v") -> None:
    workspace = Path(os.environ["GITHUB_WORKSPACE"])
    actions.save_entry(store, key, version, ["data"], workspace)
    time.sleep(0.01)  # distinct creation times


def test_the_exact_key_wins_then_the_newest_entry_of_a_restore_prefix(
    service: Path,
) -> None:
    save(service, "uv-Linux-old")
    save(service, "uv-Linux-new")
    save(service, "uv-Linux-abc", version="other paths")
    assert actions.find_entry(["uv-Linux-old"], "v")["key"] == "uv-Linux-old"
    assert actions.find_entry(["uv-Linux-zzz", "uv-Linux-"], "v")["key"] == (
        "uv-Linux-new"
    )
    # An entry of other paths (another version) is never restored.
    assert actions.find_entry(["uv-Linux-abc"], "v") is None
    assert actions.find_entry(["pip-"], "v") is None


def test_a_key_is_saved_once_and_a_half_saved_entry_is_not_found(
    service: Path,
) -> None:
    save(service, "k")
    with pytest.raises(FileExistsError):
        save(service, "k")
    # Another job reserved "j" and is still writing it.
    half = service / "reserved.part"
    half.mkdir()
    (half / "entry.json").write_text(json.dumps({"key": "j", "version": "v"}))
    assert actions.find_entry(["j"], "v") is None


def test_an_artifact_is_rooted_at_its_search_path_and_skips_hidden_files_below_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A workspace under a dot directory, as ~/.cache/... would be.
    workspace = tmp_path / ".hidden-home" / "workspace"
    for name in ("build/test-results/cicd.xml", "build/test-results/.tmp/x"):
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_text("x")
    (workspace / "build" / "te").mkdir()
    monkeypatch.setenv("GITHUB_WORKSPACE", str(workspace))
    files, root = actions.search(["build/test-results/"], hidden=False)
    assert root == workspace / "build" / "test-results"
    assert [f.relative_to(root).as_posix() for f in files] == ["cicd.xml"]
    # A glob's root is the path segments before its first wildcard.
    files, root = actions.search(["build/te*/"], hidden=True)
    assert root == workspace / "build"
    assert sorted(f.relative_to(root).as_posix() for f in files) == [
        "test-results/.tmp/x",
        "test-results/cicd.xml",
    ]


@pytest.mark.parametrize(
    ("spec", "version", "fits"),
    [
        ("3.11", "3.11.7", True),
        ("3.11.7", "3.11.7", True),
        ("3.x", "3.11.7", True),
        ("3", "3.11.7", True),
        ("3.13", "3.11.7", False),
        ("3.1", "3.11.7", False),
        ("3.11.2", "3.11.7", False),
    ],
)
def test_setup_python_takes_what_the_spec_names(
    spec: str, version: str, fits: bool
) -> None:
    assert actions.matches(spec, version) is fits
