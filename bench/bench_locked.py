"""``locked``: a uv-locked app's deploys against the same app's hashed requirements.

The app of tests/integration/test_locked_app.py (its ``wheel`` and ``LockedApp``,
imported from there): the stand-in server importing a local package
(``libs/datautils``, a path dependency) and ``tinydep`` from a ``file://`` index of
wheels built here, locked by ``uv lock`` into ``app/uv.lock`` and deployed with
``requirements = "uv.lock"`` (a venv built frozen by ``uv sync``, every artifact
checked against the lock's hash). Nothing leaves the machine: uv runs offline.

The baseline is the same app shipped as a hashed requirements file: the same
server, ``datautils`` as a wheel in the same index, and
``datautils==0.1.0 --hash=sha256:…`` and ``tinydep==1.0 --hash=sha256:…`` after
``--no-index --find-links``, so the release installs with ``--require-hashes``;
once with ``installer = "uv"`` (what ``auto`` picks on a host that has uv, as a
locked app's host does) and once with ``installer = "pip"`` (informative).

Each of ROUNDS rounds, for each side in turn (the order rotates), on a fresh
target root with an empty uv and pip cache (a new host):

- first deploy: ``invoke deploy.preprod --sha V1 --json`` (fresh process): the
  export builds the venv;
- warm redeploy: the same of V2, a commit that changes the app's code only (the
  lock, or the requirements file, unchanged): the export reuses V1's venv.

Each deploy must answer its version with the package's greeting, the first must
have built exactly one venv, the warm one must run in that same venv; otherwise the
benchmark does not run (a figure of something else would mislead). Figures are
medians; the ratios are lock / requirements (uv), same run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_fleet import BenchSkipped
from common import (
    json_durations,
    BIN,
    REPO_ROOT,
    BenchError,
    Metric,
    clean_env,
    fetch,
    log,
    median,
    run,
)

ROUNDS = 3
#: What the lock is compared with: what ``installer = "auto"`` picks beside uv.
BASELINE = "requirements (uv)"


def _helpers() -> tuple[Any, Any]:
    """tests.integration.test_locked_app and tests.conftest, or BenchSkipped."""
    uv = BIN / "uv"
    if not os.access(uv, os.X_OK):
        raise BenchSkipped(f"needs uv beside {sys.executable} (pip install uv)")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    try:
        from tests import conftest
        from tests.integration import test_locked_app
    except ModuleNotFoundError as missing:
        raise BenchSkipped(
            f"needs {missing.name} in the bench's venv: the helpers of "
            "tests/integration/test_locked_app.py import it (pip install pytest)"
        ) from None
    # The uv of this venv: the module looks on PATH, which may not hold it here.
    test_locked_app.UV = str(uv)
    return test_locked_app, conftest


def _uv_env(cache: Path) -> dict[str, str]:
    """The uv settings of test_locked_app's fixture: offline, a cache of its own."""
    return {
        "UV_CACHE_DIR": str(cache),
        "UV_OFFLINE": "1",
        "UV_NO_CONFIG": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON": os.path.realpath(sys.executable),
    }


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set variables for this process (``uv lock`` inherits them), then restore."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Side:
    """One way of shipping the app: its source repository, commits and settings."""

    name: str
    repo: Any
    first: str
    warm: str
    preprod: str
    firsts: list[float] = field(default_factory=list)
    warms: list[float] = field(default_factory=list)
    first_exports: list[float] = field(default_factory=list)
    warm_exports: list[float] = field(default_factory=list)


def _locked_side(t: Any, c: Any, work: Path, index: Path) -> Side:
    """The uv project: ``app/uv.lock`` and the local ``libs/datautils``."""
    repo = _new_repo(c, work / "lock-source")
    project = c.Project(work / "lock.toml", work / "lock-root", *c.distinct_ports(repo))
    app = t.LockedApp(project, index)
    first, warm = app.commit("v1"), app.commit("v2")
    return Side("lock", repo, first, warm, 'requirements = "uv.lock"')


def _requirements_side(t: Any, c: Any, work: Path, index: Path, installer: str) -> Side:
    """The same app from a hashed requirements file (datautils as a wheel)."""
    repo = _new_repo(c, work / f"{installer}-source")
    wheels = index / "files"
    pins = "".join(
        f"{name}=={version} --hash=sha256:"
        f"{hashlib.sha256(wheel.read_bytes()).hexdigest()}\n"
        for name, version, wheel in (
            ("datautils", "0.1.0", wheels / "datautils-0.1.0-py3-none-any.whl"),
            ("tinydep", "1.0", wheels / "tinydep-1.0-py3-none-any.whl"),
        )
    )

    def commit(version: str) -> str:
        app = repo.path / "app"
        app.mkdir(exist_ok=True)
        (app / "server.py").write_text(t.LOCKED_SERVER)
        (app / "version.txt").write_text(f"{version} ok\n")
        (app / "mode.txt").write_text("ok\n")
        (app / "requirements.txt").write_text(
            f"--no-index\n--find-links {wheels}\n{pins}"
        )
        c.git(repo.path, "add", "-A")
        c.git(repo.path, "commit", "-q", "-m", version)
        sha: str = c.git(repo.path, "rev-parse", "HEAD")
        return sha

    first, warm = commit("v1"), commit("v2")
    name = f"requirements ({installer})"
    settings = f'requirements = "requirements.txt"\ninstaller = "{installer}"'
    return Side(name, repo, first, warm, settings)


def _new_repo(c: Any, path: Path) -> Any:
    """An empty git repository for one side's app."""
    path.mkdir()
    c.git(path, "init", "-q", "-b", "main")
    return c.AppRepo(path)


class Host:
    """One side's fresh target: config, root, empty caches; deploys through invoke."""

    def __init__(self, c: Any, side: Side, work: Path, label: str) -> None:
        self.c, self.side = c, side
        self.dir = work / label
        self.dir.mkdir()
        self.project = c.Project(
            self.dir / "cicd.toml", self.dir / "root", *c.distinct_ports(side.repo)
        )
        self.project.write(preprod=side.preprod)
        self.env = clean_env(
            CICD_CONFIG=str(self.project.config_path),
            PIP_CACHE_DIR=str(self.dir / "pip-cache"),
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            **_uv_env(self.dir / "uv-cache"),
        )

    def deploy(self, sha: str, version: str) -> tuple[float, float]:
        """Deploy ``sha``; return (wall time, export step) once it answers."""
        argv = self.c.invoke_argv("deploy.preprod", "--sha", sha, "--json")
        start = time.monotonic()
        result = run(argv, env=self.env)
        wall = time.monotonic() - start
        body = fetch(self.project.url(), timeout=5) or ""
        if body.strip() != f"{version} ok hi":
            raise BenchError(f"{self.side.name}: {version} answered {body!r}")
        return wall, json_durations(result.stdout).get("export", float("nan"))

    def venv(self, sha: str) -> str:
        """The venv a release runs with."""
        release = self.project.root / "preprod" / "releases" / sha / ".venv"
        return os.path.realpath(release)

    def close(self) -> None:
        """Stop this root's supervisord."""
        self.c.shutdown_supervisord(self.project.root)


def _round(c: Any, side: Side, work: Path, index: int) -> None:
    """A new host: first deploy (venv built), then a warm redeploy (venv reused)."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in side.name).strip("-")
    host = Host(c, side, work, f"{slug}-{index}")
    try:
        wall, export = host.deploy(side.first, "v1")
        venvs = list((host.project.root / "venvs").iterdir())
        if len(venvs) != 1:
            raise BenchError(f"{side.name}: the first deploy left venvs {venvs}")
        side.firsts.append(wall)
        side.first_exports.append(export)
        wall, export = host.deploy(side.warm, "v2")
        if host.venv(side.warm) != host.venv(side.first):
            raise BenchError(f"{side.name}: the warm redeploy built another venv")
        side.warms.append(wall)
        side.warm_exports.append(export)
    finally:
        host.close()


def bench_locked() -> list[Metric]:
    """First and warm deploys of a uv-locked app vs its hashed requirements file."""
    t, c = _helpers()
    work = Path(tempfile.mkdtemp(prefix="cicd-bench-locked-"))
    try:
        index = work / "index"
        t.wheel(index, "tinydep", "1.0", "VERSION = '1.0'\n")
        t.wheel(index, "devonly", "1.0", "")
        t.wheel(index, "datautils", "0.1.0", "def hello():\n    return 'hi'\n")
        log("locked: the apps' repositories (uv lock against the local index)")
        with _environ(_uv_env(work / "dev-uv-cache")):
            sides = [_locked_side(t, c, work, index)] + [
                _requirements_side(t, c, work, index, installer)
                for installer in ("uv", "pip")
            ]
        for number in range(ROUNDS):
            # The order rotates: no side always runs on a warmer (or busier) machine.
            turn = number % len(sides)
            for side in sides[turn:] + sides[:turn]:
                log(f"locked: round {number + 1}/{ROUNDS}, {side.name}")
                _round(c, side, work, number)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _metrics({side.name: side for side in sides})


def _metrics(sides: dict[str, Side]) -> list[Metric]:
    """Medians of each side's deploys, and the lock / requirements ratios."""
    metrics: list[Metric] = []
    for kind, what in (
        ("first", "venv built: empty root and caches"),
        ("warm", "new commit, same dependency file: venv reused"),
    ):
        for side in sides.values():
            samples = side.firsts if kind == "first" else side.warms
            exports = side.first_exports if kind == "first" else side.warm_exports
            metrics.append(
                Metric(
                    "locked",
                    f"{kind} deploy, {side.name}",
                    median(samples),
                    len(samples),
                    samples=samples,
                    meaning=f"invoke deploy.preprod (wall), {what}; its export "
                    f"step (venv inside) {median(exports):.2f}s",
                )
            )
        locked = getattr(sides["lock"], f"{kind}s")
        base = median(getattr(sides[BASELINE], f"{kind}s"))
        exports = [
            median(getattr(sides[name], f"{kind}_exports"))
            for name in ("lock", BASELINE)
        ]
        metrics.append(
            Metric(
                "locked",
                f"ratio {kind} lock / requirements",
                median(locked) / base,
                len(locked),
                unit="x",
                meaning=f"median {kind} deploy from uv.lock (uv sync --frozen) / "
                "from the hashed requirements file (uv pip install "
                f"--require-hashes), same run; export steps {exports[0]:.2f}s / "
                f"{exports[1]:.2f}s",
            )
        )
    return metrics


__all__ = ["bench_locked"]
