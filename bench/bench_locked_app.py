"""``locked-app``: the real Streamlit app deployed from uv.lock vs a requirements file.

The app of 10_preprod as committed at HEAD (``git archive``), in a throw-away git
repository, deployed to preprod under supervisord (in place, no proxy; the
page smoke off: the deploy's mechanics are measured) and checked on
``/_stcore/health`` answering ``ok``. Two ways of shipping its dependencies, on the
same two commits:

- ``lock``: ``requirements = "uv.lock"``: the venv is built by ``uv sync --frozen``
  (no resolution, every artifact checked against the lock's hash);
- ``requirements (uv)``: ``requirements = "requirements.txt"``, ``installer = "uv"``:
  the file ``uv export --frozen --no-dev --no-emit-project --format
  requirements-txt`` writes from the same lock (every pin with its hashes, so
  ``uv pip install --require-hashes``; ``--no-emit-project`` as the lock side's
  ``--no-install-project``: the app runs from its release, it is not installed).

uv runs offline (``UV_OFFLINE=1``) from this machine's uv cache, which ``nox -s app``
filled with the app's wheels. Before anything is timed each side builds a
throw-away venv with the very commands a deploy runs: a wheel missing from the
cache skips that side, with the package's name, instead of timing a failure.

Each of ROUNDS rounds, for each side in turn (the order rotates), on a fresh target
root (no venv yet):

- first deploy: ``invoke deploy.preprod --sha V1 --json`` (a fresh process): the
  export builds the venv;
- warm redeploy: the same of V2, a commit that changes the app's code only (one
  comment in ``views.py``; lock and requirements file unchanged): the venv is
  reused.

Each deploy must leave ``current`` on its sha and the health endpoint answering
``ok``; the first must have built exactly one venv, the warm one must run in that
same venv; otherwise the benchmark does not run. Figures are medians of the
``invoke`` wall times; ratios are lock / requirements, same run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_fleet import BenchSkipped
from common import (
    json_durations,
    BIN,
    REPO_ROOT,
    BenchError,
    Metric,
    Project,
    clean_env,
    fetch,
    git,
    log,
    median,
    run,
)

from cicd.commands import Command
from cicd.commands import venv as venv_commands

BENCH = "locked-app"
ROUNDS = 3
APP_DIR = "10_preprod"
HEALTH = "/_stcore/health"
#: What a first deploy may take at most (venv built, Streamlit started): a stuck
#: deploy ends the benchmark instead of hanging it.
DEADLINE = 600.0
#: The line of ``views.py`` the warm commit adds: code only, no dependency.
CODE_CHANGE = "\n# bench: a code-only change (the dependencies are the same)\n"


@dataclass
class Side:
    """One way of shipping the app's dependencies, and what its deploys took."""

    name: str
    settings: str
    skipped: str = ""
    firsts: list[float] = field(default_factory=list)
    warms: list[float] = field(default_factory=list)
    first_steps: list[dict[str, float]] = field(default_factory=list)
    warm_steps: list[dict[str, float]] = field(default_factory=list)

    @property
    def slug(self) -> str:
        """The name as a file name."""
        return "".join(ch if ch.isalnum() else "-" for ch in self.name).strip("-")


SIDES = (
    ("lock", 'requirements = "uv.lock"'),
    ("requirements (uv)", 'requirements = "requirements.txt"\ninstaller = "uv"'),
)


def _uv() -> Path:
    """The uv beside this interpreter or on PATH, or BenchSkipped."""
    beside = BIN / "uv"
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("uv")
    if found:
        return Path(found)
    raise BenchSkipped("needs uv (pip install uv): the app's venvs are built by uv")


def _uv_env(uv: Path) -> dict[str, str]:
    """Offline uv from the machine's cache, found on PATH by cicd's commands."""
    return clean_env(
        UV_OFFLINE="1",
        UV_PYTHON_DOWNLOADS="never",
        PATH=f"{uv.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )


# -- the app's repository --------------------------------------------------------


def _source(work: Path, uv: Path) -> tuple[Path, str, str, int]:
    """A git repository of HEAD's 10_preprod plus its exported requirements file.

    Returns:
        The repository, the first and the warm commit, and how many packages
        the requirements file pins.
    """
    repo = work / "source"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    archive = work / "app.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "archive", "--format=tar", "HEAD", APP_DIR],
            cwd=REPO_ROOT,
            stdout=out,
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(repo, filter="data")
    app = repo / APP_DIR
    run(
        [
            str(uv),
            "export",
            "--quiet",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--format",
            "requirements-txt",
            "--project",
            str(app),
            "--output-file",
            str(app / "requirements.txt"),
        ],
        env=_uv_env(uv),
    )
    pins = (app / "requirements.txt").read_text()
    packages = len(re.findall(r"^[A-Za-z0-9][^\s=]*==", pins, re.M))
    if "--hash=sha256:" not in pins:
        raise BenchError("uv export wrote no hashes: the baseline would not be checked")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the app, its lock and its requirements file")
    first = git(repo, "rev-parse", "HEAD")
    views = app / "src" / "mangetamain" / "views.py"
    views.write_text(views.read_text() + CODE_CHANGE)
    git(repo, "commit", "-q", "-am", "a code-only change")
    return repo, first, git(repo, "rev-parse", "HEAD"), packages


# -- the probe: are the wheels in the cache? --------------------------------------


def _probe(side: Side, app: Path, uv: Path, work: Path) -> str:
    """Build a throw-away venv as a deploy of ``side`` would; ``""`` or why not.

    The commands are cicd's own (:mod:`cicd.commands.venv`), offline: a wheel
    missing from the cache fails within seconds and is named.

    Raises:
        BenchError: The build failed for another reason than a missing artifact.
    """
    venv = str(work / f"probe-{side.slug}")
    python = os.path.realpath(sys.executable)
    if side.name == "lock":
        steps = [
            venv_commands.create(python, venv, installer="pip", with_pip=False),
            venv_commands.sync_uv_lock(venv, str(app), str(uv)),
        ]
    else:
        steps = [
            venv_commands.create(python, venv, installer="uv", with_pip=True),
            venv_commands.install(
                venv, str(app / "requirements.txt"), installer="uv", hashes=True
            ),
        ]
    try:
        for step in steps:
            _run_command(step, uv)
    except subprocess.TimeoutExpired:
        return f"uv did not finish within {DEADLINE:g} s offline"
    except BenchError as failed:
        reason = _missing(str(failed))
        if reason:
            return reason
        raise
    finally:
        shutil.rmtree(venv, ignore_errors=True)
    return ""


def _run_command(command: Command, uv: Path) -> None:
    """Run one of cicd's commands here, offline (must succeed)."""
    env = _uv_env(uv)
    env.update(dict(command.env))
    run(list(command.argv), env=env, timeout=DEADLINE)


#: uv's words, offline, for an artifact or an index page it does not have cached.
_NOT_CACHED = re.compile(r"wasn't found in the cache for: `([^`]+)`")
_NOT_DOWNLOADED = re.compile(r"Failed to (?:download|fetch)(?: and build)? `([^`]+)`")
#: ``uv pip install`` resolves first: a package whose index page is not cached.
_NOT_RESOLVED = re.compile(
    r"Because (\S+) was not found in the cache and you require (\S+?),"
)
_OFFLINE = re.compile(
    r"network (?:connectivity )?(?:is|was) disabled|offline", re.IGNORECASE
)


def _missing(output: str) -> str:
    """What uv could not find in its cache, in one line, or ``""``."""
    if not _OFFLINE.search(output):
        return ""
    names = sorted(
        set(_NOT_DOWNLOADED.findall(output))
        | {pin for _, pin in _NOT_RESOLVED.findall(output)}
    )
    urls = _NOT_CACHED.findall(output)
    files = sorted({url.rstrip("/").rsplit("/", 1)[-1] for url in urls})
    what = ", ".join(names or files) or "an artifact (see uv's output)"
    return f"not in the uv cache (uv is offline here): {what}; " "`nox -s app` fills it"


# -- the deploys ---------------------------------------------------------------------


class Host:
    """A fresh target root for one side: its config, deploys, venvs."""

    def __init__(self, side: Side, repo: Path, uv: Path) -> None:
        self.side = side
        self.project = Project(f"locked-app-{side.slug}", app_repo=False, source=repo)
        self.env = _uv_env(uv)
        self.env["CICD_CONFIG"] = str(self.project.config_path)
        self.project.config_path.write_text(
            textwrap.dedent(f"""\
                # The embedded default (Streamlit app of 10_preprod, supervisord),
                # on a temporary root and free ports.
                [tool.cicd]
                root = "{self.project.root}"
                source = "{repo}"
                """)
            + side.settings
            + textwrap.dedent(f"""

                # The deploy's mechanics are measured, not the page smoke.
                [tool.cicd.smoke]
                on_deploy = false

                [tool.cicd.health]
                deadline = 180
                interval = 0.1
                checks = [{{ path = "{HEALTH}", body_contains = "ok" }}]

                [tool.cicd.notify]
                discord = false

                # In place: blue/green has benchmarks of its own.
                [tool.cicd.proxy]
                kind = "none"

                [tool.cicd.env.preprod]
                port = {self.project.ports["preprod"]}

                [tool.cicd.env.prod]
                port = {self.project.ports["prod"]}
                """)
        )

    def deploy(self, sha: str) -> tuple[float, dict[str, float]]:
        """Deploy ``sha``; return its wall time and step durations once checked."""
        argv = self.project.invoke_argv("deploy.preprod", "--sha", sha, "--json")
        start = time.monotonic()
        try:
            result = run(argv, env=self.env, timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            raise BenchError(
                f"{self.side.name}: deploy.preprod did not end within {DEADLINE:g} s"
            ) from None
        wall = time.monotonic() - start
        current = Path(os.path.realpath(self.project.root / "preprod" / "current"))
        body = fetch(self.project.url(path=HEALTH), timeout=5)
        if current.name != sha or body != "ok":
            raise BenchError(
                f"{self.side.name}: after deploying {sha[:7]}, current is "
                f"{current.name[:7]} and {HEALTH} answered {body!r}"
            )
        return wall, json_durations(result.stdout)

    def venvs(self) -> list[Path]:
        """The venvs built under this root."""
        folder = self.project.root / "venvs"
        return sorted(folder.iterdir()) if folder.is_dir() else []

    def venv(self, sha: str) -> str:
        """The venv a release runs with."""
        release = self.project.root / "preprod" / "releases" / sha / ".venv"
        return os.path.realpath(release)


def _round(side: Side, repo: Path, uv: Path, first: str, warm: str) -> None:
    """A new root: first deploy (venv built), then a warm redeploy (venv reused)."""
    host = Host(side, repo, uv)
    try:
        wall, steps = host.deploy(first)
        if len(host.venvs()) != 1:
            raise BenchError(f"{side.name}: the first deploy left {host.venvs()}")
        side.firsts.append(wall)
        side.first_steps.append(steps)
        wall, steps = host.deploy(warm)
        if host.venv(warm) != host.venv(first) or len(host.venvs()) != 1:
            raise BenchError(f"{side.name}: the warm redeploy built another venv")
        side.warms.append(wall)
        side.warm_steps.append(steps)
    finally:
        host.project.close()


def bench_locked_app() -> list[Metric]:
    """First and warm deploys of the Streamlit app from uv.lock vs requirements."""
    uv = _uv()
    sides = [Side(name, settings) for name, settings in SIDES]
    work = Path(tempfile.mkdtemp(prefix="cicd-bench-locked-app-"))
    try:
        log(f"{BENCH}: HEAD's {APP_DIR}, its requirements file exported by uv")
        repo, first, warm, packages = _source(work, uv)
        for side in sides:
            log(f"{BENCH}: probe: {side.name} venv from the uv cache, offline")
            side.skipped = _probe(side, repo / APP_DIR, uv, work)
            if side.skipped:
                log(f"{BENCH}: {side.name} skipped: {side.skipped}")
        live = [side for side in sides if not side.skipped]
        if not live:
            raise BenchSkipped("; ".join(f"{s.name}: {s.skipped}" for s in sides))
        for number in range(ROUNDS):
            # The order rotates: no side always runs on a warmer (or busier) machine.
            turn = number % len(live)
            for side in live[turn:] + live[:turn]:
                log(f"{BENCH}: round {number + 1}/{ROUNDS}, {side.name}")
                _round(side, repo, uv, first, warm)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _metrics(sides, packages)


def _step(steps: list[dict[str, float]], name: str) -> float:
    """The median of one step over the deploys (NaN when never reported)."""
    values = [s[name] for s in steps if name in s]
    return median(values) if values else float("nan")


def _metrics(sides: list[Side], packages: int) -> list[Metric]:
    """Medians of each side's deploys, and the lock / requirements ratios."""
    metrics: list[Metric] = []
    what = {
        "first": f"fresh root: the venv is built ({packages} pinned packages, "
        "from the uv cache)",
        "warm": "a code-only commit: the venv is reused",
    }
    for kind in ("first", "warm"):
        for side in sides:
            metrics.append(_side_metric(side, kind, what[kind]))
        lock, base = sides
        if lock.skipped or base.skipped:
            continue
        exports = [_step(getattr(s, f"{kind}_steps"), "export") for s in sides]
        locked, baseline = getattr(lock, f"{kind}s"), getattr(base, f"{kind}s")
        metrics.append(
            Metric(
                BENCH,
                f"ratio {kind} lock / requirements",
                median(locked) / median(baseline),
                len(locked),
                unit="x",
                meaning=f"median {kind} deploy from uv.lock (uv sync --frozen) / "
                "from the exported requirements file (uv pip install "
                f"--require-hashes), same run; export steps {exports[0]:.2f}s / "
                f"{exports[1]:.2f}s",
            )
        )
    return metrics


def _side_metric(side: Side, kind: str, what: str) -> Metric:
    """One side's first or warm deploys (or why it was skipped)."""
    name = f"{kind} deploy, {side.name}"
    if side.skipped:
        return Metric(BENCH, name, 0.0, 0, meaning=f"skipped: {side.skipped}")
    samples = side.firsts if kind == "first" else side.warms
    steps = side.first_steps if kind == "first" else side.warm_steps
    return Metric(
        BENCH,
        name,
        median(samples),
        len(samples),
        samples=samples,
        meaning=f"invoke deploy.preprod (wall), {what}; export step (venv inside) "
        f"{_step(steps, 'export'):.2f}s, readiness {_step(steps, 'readiness'):.2f}s",
    )


__all__ = ["bench_locked_app"]
