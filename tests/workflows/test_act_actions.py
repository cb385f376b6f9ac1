"""The hosted actions' stand-ins (tests/act/actions.py) against the real ones.

``ci.yml`` runs through act with stand-ins for ``actions/setup-python``,
``actions/cache``, ``actions/upload-artifact`` and ``actions/download-artifact``.
Each is held to its published contract, recorded in tests/act/contracts.json from
the action's repository at the commit ``ci.yml`` pins: the same inputs (required,
defaults), outputs and ``runs`` (node20, a post step where the real one has one),
and, run by act in a workflow, the behaviour and messages the real ones document:
an exact key or a restore-key prefix (``cache-hit`` true, false, unset), a save
only after a miss, a name uploaded once per run, an artifact gone with its run, a
version the image lacks refused with setup-python's error.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import act_harness
from tests.act_harness import REPO_ROOT, STANDINS, Runner, git_in

pytestmark = [pytest.mark.act, pytest.mark.slow]

CONTRACTS = json.loads((act_harness.ACT_DIR / "contracts.json").read_text())
HOSTED = (
    "actions/setup-python",
    "actions/cache",
    "actions/upload-artifact",
    "actions/download-artifact",
    "peaceiris/actions-gh-pages",
)


def action_yml(action: str) -> dict[str, Any]:
    """A stand-in's action.yml."""
    return dict(yaml.safe_load((STANDINS[action] / "action.yml").read_text()))


def pinned(name: str, owner: str = "actions") -> str:
    """The ``OWNER/NAME@SHA`` the workflow files use (one pin per action)."""
    refs = {
        ref
        for ref in act_harness.uses_refs(REPO_ROOT)
        if ref.startswith(f"{owner}/{name}@")
    }
    assert len(refs) == 1, refs
    return refs.pop()


@pytest.mark.parametrize("action", HOSTED)
def test_each_stand_in_declares_the_pinned_action_s_inputs_outputs_and_steps(
    action: str,
) -> None:
    contract = CONTRACTS[action]
    owner, name = action.split("/")
    assert pinned(name, owner) == f"{action}@{contract['commit']}"
    mine = action_yml(action)
    inputs = {
        key: {
            "required": bool(spec.get("required", False)),
            "default": spec.get("default"),
        }
        for key, spec in mine["inputs"].items()
    }
    assert inputs == contract["inputs"]
    assert sorted(mine.get("outputs", {})) == sorted(contract["outputs"])
    runs = mine["runs"]
    assert runs["using"] == contract["runs"]["using"]
    assert ("post" in runs) == ("post" in contract["runs"])
    assert runs.get("post-if") == contract["runs"].get("post-if")


WORKFLOW = """\
on: push
jobs:
  make:
    runs-on: ubuntu-latest
    steps:
      - uses: {checkout}
      - uses: {setup_python}
        id: python
        with:
          python-version: "{minor}"
      - run: |
          test "${{{{ steps.python.outputs.python-version }}}}" = "{full}"
          test "$(command -v python)" = "${{{{ steps.python.outputs.python-path }}}}"
          test "$pythonLocation/bin/python" = "$(command -v python)"
          python -m pip --version
      - uses: {setup_python}
        id: missing
        continue-on-error: true
        with:
          python-version: "3.99"
      - run: test "${{{{ steps.missing.outcome }}}}" = failure
      - uses: {cache}
        id: miss
        with:
          path: ~/.cache/thing
          key: thing-${{{{ hashFiles('input.txt') }}}}
          restore-keys: thing-
      - run: |
          test "${{{{ steps.miss.outputs.cache-hit }}}}" = "{expect}"
          mkdir -p ~/.cache/thing && echo "{run}" > ~/.cache/thing/made
          mkdir -p out/.hidden && echo report > out/report.xml
          echo secret > out/.hidden/key
      - uses: {upload}
        id: upload
        with:
          name: results
          path: out/
      - uses: {upload}
        id: again
        continue-on-error: true
        with:
          name: results
          path: out/
      - uses: {upload}
        with:
          name: nothing
          path: no-such-dir/
      - run: |
          test "${{{{ steps.again.outcome }}}}" = failure
          test -n "${{{{ steps.upload.outputs.artifact-digest }}}}"
  use:
    runs-on: ubuntu-latest
    needs: make
    steps:
      - uses: {checkout}
      - run: rm -rf ~/.cache/thing
      - uses: {cache}
        id: hit
        with:
          path: ~/.cache/thing
          key: thing-${{{{ hashFiles('input.txt') }}}}
      - run: |
          test "${{{{ steps.hit.outputs.cache-hit }}}}" = true
          cat ~/.cache/thing/made
      - uses: {download}
        with:
          name: results
          path: got
      - run: |
          test "$(cat got/report.xml)" = report
          test ! -e got/.hidden
"""


def origin_with(tmp_path: Path, workflow: str) -> Path:
    """A git repository holding ``input.txt`` and the workflow ``w.yml``."""
    origin = tmp_path / "origin"
    (origin / ".github" / "workflows").mkdir(parents=True)
    (origin / ".github" / "workflows" / "w.yml").write_text(workflow)
    (origin / "input.txt").write_text("v1\n")
    git_in(origin, "init", "-q", "-b", "main")
    git_in(origin, "add", "-A")
    git_in(origin, "commit", "-qm", "w")
    return origin


@pytest.fixture
def hosted(tmp_path: Path, act_binary: str) -> Runner:
    """A runner for a workflow of ubuntu-latest jobs using the four stand-ins."""
    if not shutil.which("node"):
        pytest.skip(act_harness.NEEDS_NODE)
    full = subprocess.run(
        [
            act_harness.base_python(),
            "-c",
            "import platform; print(platform.python_version())",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    minor = ".".join(full.split(".")[:2])

    def workflow(run: str, expect: str) -> str:
        return WORKFLOW.format(
            checkout=pinned("checkout"),
            setup_python=pinned("setup-python"),
            cache=pinned("cache"),
            upload=pinned("upload-artifact"),
            download=pinned("download-artifact"),
            minor=minor,
            full=full,
            run=run,
            expect=expect,
        )

    origin = origin_with(tmp_path, workflow("first", ""))
    (origin / "second.yml").write_text(workflow("second", "false"))
    return Runner(
        act=act_binary,
        origin=origin,
        home=tmp_path / "runner",
        config=tmp_path / "unused.toml",
        venv=tmp_path / "unused-venv",
        wheelhouse=tmp_path / "unused-wheelhouse",
        hosted=True,
    )


def test_the_stand_ins_cache_hand_over_artifacts_and_set_up_python(
    hosted: Runner,
) -> None:
    first = hosted.run("w.yml", "push", timeout=300, concurrent_jobs=1)
    assert first.ok, str(first)
    out = first.output
    assert "was not found for" in out and "versions-manifest.json" in out
    assert "Cache not found for input keys: thing-" in out
    assert "Cache saved with key: thing-" in out
    assert "an artifact with this name already exists on the workflow run" in out
    assert "No files were found with the provided path: no-such-dir/" in out
    assert "Cache restored from key: thing-" in out
    assert "Cache hit occurred on the primary key thing-" in out
    # A new input: the new key misses, the restore key finds the first run's entry
    # (cache-hit false), the post step saves the new key. The upload of
    # `results` succeeds again: the first run's artifacts went with it.
    origin = hosted.origin
    (origin / "input.txt").write_text("v2\n")
    (origin / "second.yml").rename(origin / ".github" / "workflows" / "w.yml")
    git_in(origin, "commit", "-qam", "v2")
    second = hosted.run("w.yml", "push", timeout=300, concurrent_jobs=1)
    assert second.ok, str(second)
    assert "Cache not found" not in second.output
    assert second.output.count("Cache saved with key: thing-") == 1
    assert second.output.count("not saving cache") == 1
