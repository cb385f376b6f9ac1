"""ci.yml, run through act as GitHub runs it on a push to main: every job, every tier.

The workflow file runs as written (nektos/act, host mode): its five jobs, one at a
time (``--concurrent-jobs 1``: on GitHub each has a machine of its own, here they
share two cores), with the act harness's stand-ins for the hosted runner's actions
(tests/act/actions.py: setup-python, cache, the artifacts) and its ``sudo``. The
tests job provisions this machine with its own steps, then runs the whole suite,
every tier; its JUnit reports travel to the summary job as the ``test-results``
artifact, and that job fails a push to main if a test skipped for a missing
component.

Nothing is downloaded (the network rule): ``pip install "nox[uv]"`` comes from the
harness's wheelhouse, and nox's uv installs run offline (``UV_OFFLINE=1``) from the
uv cache that ``actions/cache`` restores, seeded with this machine's own uv cache
under a key that ci.yml's ``restore-keys`` finds, as the entry a previous run on
main saved.

``documentation.yml`` runs the same way (by hand, ``workflow_dispatch``): the site is
built with ``nox -s docs`` and published by the stand-in of
``peaceiris/actions-gh-pages`` to the origin's ``gh-pages``, keeping the delivery
dashboard the health check publishes there.

The ci.yml run holds the suite inside the suite, so neither is part of ``nox -s
tests`` (marker ``ci_workflow``): ``nox -s workflows`` runs them, after the tests, on
a machine that ``.ci/run`` (or ``tools.testinfra up`` and ``swarm-up``) provisioned;
elsewhere they skip and say so. About 15 minutes for ci.yml (863 s here, the tests
job 12 min 44 s), 80 s for documentation.yml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
import zipfile
from pathlib import Path

import pytest

from cicd.checks.browser import find_chromium
from tests import act_harness
from tests.act_harness import NEEDS_NODE, REPO_ROOT, Runner, git_in
from tools.testinfra import docker, swarm
from tools.testinfra.sshd import NEEDS_SSHD, SSHD

pytestmark = [pytest.mark.act, pytest.mark.slow, pytest.mark.ci_workflow]

#: ci.yml's cache steps' ``restore-keys``: what a seeded entry's key starts with.
UV_RESTORE_KEY = "uv-Linux-"
#: What nox runs with (``nox -s workflows`` passes its own versions), so that the
#: jobs' uv reads the cache this machine's uv wrote.
REQUIREMENTS_VARIABLE = "CICD_CI_ACT_REQUIREMENTS"
JOBS = 5
TIMEOUT = 75 * 60


def unprovisioned() -> str | None:
    """Why ci.yml cannot run every tier on this machine (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (ci.yml's provisioning and tests steps run through sudo)"
    if not shutil.which(SSHD):
        return NEEDS_SSHD
    if not docker.docker_ok():
        return docker.NEEDS_DOCKER
    if not swarm.healthy():
        return swarm.NEEDS_SWARM
    if shallow():
        return (
            "needs the project's whole history, as ci.yml's tests job checks it out "
            "(git fetch --unshallow)"
        )
    if not shutil.which("node"):
        return NEEDS_NODE
    if not find_chromium():
        return "needs Chromium (apt-get install chromium; .ci/run installs it)"
    return None


def uv_cache() -> Path:
    """This machine's uv cache: where nox's uv keeps what it downloaded."""
    uv = Path(sys.executable).parent / "uv"
    if uv.exists():
        found = subprocess.run(
            [str(uv), "cache", "dir"], capture_output=True, text=True, check=True
        )
        return Path(found.stdout.strip())
    return Path(os.environ.get("UV_CACHE_DIR") or Path.home() / ".cache" / "uv")


def shallow(source: Path = REPO_ROOT) -> bool:
    """Whether the project's clone lacks history (``git clone --depth``)."""
    return git_in(source, "rev-parse", "--is-shallow-repository").strip() == "true"


def history_origin(dest: Path, source: Path = REPO_ROOT) -> Path:
    """A clone of the project's history whose main is HEAD plus the working tree."""
    git_in(source, "clone", "-q", "--no-checkout", str(source), str(dest))
    head = git_in(source, "rev-parse", "HEAD").strip()
    git_in(dest, "checkout", "-q", "-B", "main", head)
    for child in dest.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    act_harness.copy_project(dest, source)
    git_in(dest, "add", "-A")
    if git_in(dest, "status", "--porcelain"):
        git_in(dest, "commit", "-qm", "the working tree")
    return dest


def junit_totals(report: bytes) -> dict[str, int]:
    """A JUnit report's totals: tests, failures, errors, skipped."""
    root = ElementTree.fromstring(report)
    suites = [root] if root.tag == "testsuite" else list(root)
    return {
        key: sum(int(suite.get(key, 0)) for suite in suites)
        for key in ("tests", "failures", "errors", "skipped")
    }


def hosted_runner(tmp_path: Path, act_binary: str) -> Runner:
    """A hosted runner for this project's history, its uv cache seeded."""
    requirements = os.environ.get(REQUIREMENTS_VARIABLE, "nox[uv]").split()
    shared = tmp_path.parent / "ci-act-wheelhouse"
    runner = Runner(
        act=act_binary,
        origin=history_origin(tmp_path / "origin"),
        home=tmp_path / "runner",
        config=tmp_path / "unused.toml",
        venv=tmp_path / "unused-venv",
        wheelhouse=act_harness.build_wheelhouse(shared, extra=requirements),
        hosted=True,
    )
    runner.seed_cache(f"{UV_RESTORE_KEY}seed", "~/.cache/uv", uv_cache())
    return runner


def test_a_push_to_main_runs_every_job_of_ci_yml_and_every_tier(
    tmp_path: Path, act_binary: str
) -> None:
    if reason := unprovisioned():
        pytest.skip(reason)
    runner = hosted_runner(tmp_path, act_binary)

    result = runner.run("ci.yml", "push", timeout=TIMEOUT, concurrent_jobs=1)

    log = tmp_path / "act-ci.log"
    log.write_text(result.output)
    print(f"act ci.yml: exit {result.returncode} in {result.seconds:.0f} s; {log}")
    assert result.ok, str(result)[-20_000:]
    assert result.output.count("🏁  Job succeeded") == JOBS, result.output[-5000:]
    artifacts = runner.home / "jobs" / result.tracking_id / "artifacts"
    with zipfile.ZipFile(artifacts / "test-results.zip") as zipped:
        totals = {name: junit_totals(zipped.read(name)) for name in zipped.namelist()}
    assert sorted(totals) == ["app.xml", "cicd.xml"]
    for name, counts in totals.items():
        print(f"{name}: {counts}")
        assert counts["failures"] == counts["errors"] == 0, (name, counts)
        # Every tier ran: nothing skipped, as in .ci/run.
        assert counts["skipped"] == 0, (name, counts)
    assert totals["cicd.xml"]["tests"] > 1000
    assert (artifacts / "coverage-html.zip").stat().st_size > 0
    # The summary job's table: every job succeeded, nothing skipped for a component.
    assert "| tests | success |" in result.output
    assert "no test skipped for a missing component" in result.output


def test_documentation_yml_builds_the_site_and_publishes_it_keeping_the_dashboard(
    tmp_path: Path, act_binary: str
) -> None:
    if not shutil.which("node"):
        pytest.skip(act_harness.NEEDS_NODE)
    if os.geteuid() != 0 and not shutil.which("sudo"):
        pytest.skip("needs root (the harness's sudo) or sudo")
    runner = hosted_runner(tmp_path, act_binary)
    # gh-pages as the hourly health check leaves it: the delivery dashboard.
    origin = runner.origin
    git_in(origin, "checkout", "-q", "--orphan", "gh-pages")
    git_in(origin, "rm", "-rq", "--cached", ".")
    pages = tmp_path / "pages"
    (pages / "report").mkdir(parents=True)
    (pages / "report" / "index.html").write_text("dashboard")
    git_in(origin, "--work-tree", str(pages), "add", "report/index.html")
    git_in(origin, "commit", "-qm", "dashboard")
    git_in(origin, "checkout", "-qf", "main")

    result = runner.run(
        "documentation.yml",
        "workflow_dispatch",
        act_harness.dispatch_event({}),
        timeout=900,
    )

    assert result.ok, str(result)[-20_000:]
    assert "Cache restored from key: uv-Linux-seed" in result.output
    published = git_in(origin, "ls-tree", "-r", "--name-only", "gh-pages").split()
    assert "index.html" in published and ".nojekyll" in published
    assert "report/index.html" in published  # keep_files: the dashboard stays
    assert "_static/documentation_options.js" in published
    head = git_in(origin, "rev-parse", "main").strip()
    assert git_in(origin, "log", "-1", "--format=%s", "gh-pages").strip() == (
        f"deploy: {head}"
    )
