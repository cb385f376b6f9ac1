"""What every benchmark shares: temp projects, timing, polling, results.

A benchmark builds its own throw-away project, as tests/conftest.py does: a git
repository of a stand-in stdlib HTTP app, a configuration TOML with a temporary
root and free ports, and the supervisord that cicd starts under that root (shut
down at the end). Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SUPERVISORCTL = str(BIN / "supervisorctl")
SUPERVISORD = str(BIN / "supervisord")

#: Variables that could make a run talk to anything but 127.0.0.1, or change it.
SCRUBBED = (
    "CICD_CONFIG",
    "DISCORD_WEBHOOK_URL",
    "GITHUB_TOKEN",
    "GITHUB_API_URL",
    "GITHUB_REPOSITORY",
    "GITHUB_SHA",
    "GITHUB_ACTOR",
    "GITHUB_SERVER_URL",
    # Set on this machine: every Python process (invoke, supervisorctl, the app)
    # would recompile every module at each start. A real host caches bytecode, so
    # the runs measured here do too (__pycache__ is git-ignored).
    "PYTHONDONTWRITEBYTECODE",
)

SERVER = '''\
"""Stand-in app: answers every GET with the content of version.txt."""
import http.server
import sys

BODY = open("version.txt", "rb").read()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


ADDRESS = (sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1", int(sys.argv[1]))
http.server.ThreadingHTTPServer(ADDRESS, Handler).serve_forever()
'''


class BenchError(RuntimeError):
    """A benchmark could not run (not a missed target: those are reported)."""


# -- results ------------------------------------------------------------------


@dataclass
class Metric:
    """One line of the results table.

    ``value`` is what is compared with ``limit`` (``value <= limit`` passes); a
    metric without a limit is informative only.
    """

    bench: str
    name: str
    median: float
    n: int
    unit: str = "s"
    value: float | None = None
    limit: float | None = None
    target: str = ""
    meaning: str = ""
    samples: list[float] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """pass, FAIL or info."""
        if self.limit is None or self.value is None:
            return "info"
        return "pass" if self.value <= self.limit else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "bench": self.bench,
            "name": self.name,
            "median": round(self.median, 4),
            "n": self.n,
            "unit": self.unit,
            "value": None if self.value is None else round(self.value, 4),
            "limit": None if self.limit is None else round(self.limit, 4),
            "target": self.target,
            "verdict": self.verdict,
            "meaning": self.meaning,
            "samples": [round(s, 4) for s in self.samples],
        }


def median(samples: list[float]) -> float:
    """Return the median: the machine is shared and noisy, so never the mean."""
    if not samples:
        raise BenchError("no samples")
    return statistics.median(samples)


def page_load_metrics(
    bench: str, loads: dict[str, list[float]], rounds: int, target: str
) -> list[Metric]:
    """One row per page: its load time's median against ``smoke.max_load`` (10 s)."""
    return [
        Metric(
            bench,
            f"  load time: {name}",
            median(samples),
            rounds,
            samples=samples,
            value=median(samples),
            limit=10.0,
            target=target,
            meaning="navigation or click to content (run ended, screen still)",
        )
        for name, samples in loads.items()
    ]


def log(text: str) -> None:
    """Progress on stderr, so the table on stdout stays clean."""
    print(f"  [bench] {text}", file=sys.stderr, flush=True)


# -- processes and HTTP --------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without the variables that could reach beyond loopback."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(extra)
    return env


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return its stripped output."""
    env = clean_env(
        GIT_AUTHOR_NAME="Bench",
        GIT_AUTHOR_EMAIL="bench@example.test",
        GIT_COMMITTER_NAME="Bench",
        GIT_COMMITTER_EMAIL="bench@example.test",
    )
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def fetch(url: str, timeout: float = 1.0) -> str | None:
    """The body of a GET on ``url``, or None when it does not answer 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            body: bytes = response.read()
            return body.decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_for_text(
    url: str, text: str, *, interval: float = 0.02, deadline: float = 120.0
) -> float:
    """Poll ``url`` until its body contains ``text``; return time.monotonic() then."""
    end = time.monotonic() + deadline
    while True:
        body = fetch(url, timeout=min(2.0, deadline))
        now = time.monotonic()
        if body is not None and text in body:
            return now
        if now > end:
            raise BenchError(f"{url} never answered {text!r} within {deadline:g}s")
        time.sleep(interval)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` and return (seconds, result)."""
    start = time.monotonic()
    result = fn()
    return time.monotonic() - start, result


def run(
    argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a command that must succeed; its output is shown when it does not."""
    result = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=timeout
    )
    if result.returncode != 0:
        raise BenchError(
            f"{' '.join(argv)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
        )
    return result


# -- projects ------------------------------------------------------------------


class Project:
    """A throw-away project: stand-in app repo, cicd config, target root.

    Args:
        label: Part of the temp directory's name.
        app_repo: Create a git repository of the stand-in app (else ``source``).
        source: The git repository releases come from when ``app_repo`` is false.
    """

    def __init__(
        self, label: str, *, app_repo: bool = True, source: Path | None = None
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"cicd-bench-{label}-"))
        self.root = self.dir / "root"
        self.config_path = self.dir / "cicd.toml"
        self.ports = {"preprod": free_port(), "prod": free_port()}
        self.repo = self.dir / "source" if app_repo else (source or REPO_ROOT)
        if app_repo:
            self.repo.mkdir()
            git(self.repo, "init", "-q", "-b", "main")

    # the stand-in app's history

    def commit(self, version: str) -> str:
        """Commit a version of the stand-in app; it answers ``<version> ok``."""
        app = self.repo / "app"
        app.mkdir(exist_ok=True)
        (app / "server.py").write_text(SERVER)
        (app / "version.txt").write_text(f"{version} ok\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", version)
        return git(self.repo, "rev-parse", "HEAD")

    # configuration

    def write_standin_config(
        self, extra: str = "", interval: float = 0.1, path: Path | None = None
    ) -> None:
        """The tests' configuration style: stand-in app, 0.1 s readiness polling."""
        (path or self.config_path).write_text(textwrap.dedent(f"""\
                [tool.cicd]
                root = "{self.root}"
                source = "{self.repo}"
                app_dir = "app"
                keep = 5

                [tool.cicd.runtime]
                command = "{{python}} server.py {{port}}"

                # The deploy's mechanics are measured, not the page smoke.
                [tool.cicd.smoke]
                on_deploy = false

                [tool.cicd.health]
                deadline = 60
                interval = {interval}
                checks = [{{ path = "/", body_contains = "ok" }}]

                [tool.cicd.notify]
                discord = false

                # In place, as the shell baseline restarts: blue/green behind
                # haproxy has a bench of its own (zero-downtime).
                [tool.cicd.proxy]
                kind = "none"

                [tool.cicd.env.preprod]
                port = {self.ports["preprod"]}

                [tool.cicd.env.prod]
                port = {self.ports["prod"]}
                """) + textwrap.dedent(extra))

    def url(self, env: str = "preprod", path: str = "/") -> str:
        """The app's URL in ``env``."""
        return f"http://127.0.0.1:{self.ports[env]}{path}"

    def env(self, config: Path | None = None, **extra: str) -> dict[str, str]:
        """Environment of a task run against this project (or another config)."""
        return clean_env(CICD_CONFIG=str(config or self.config_path), **extra)

    # running tasks

    def invoke_argv(self, *args: str) -> list[str]:
        """``python -m invoke --search-root REPO ARGS``, as a user runs it."""
        return [
            sys.executable,
            "-m",
            "invoke",
            "--search-root",
            str(REPO_ROOT),
            *args,
        ]

    def invoke(self, *args: str, timeout: float = 300) -> float:
        """Run a task that must succeed; return its wall time."""
        seconds, _ = timed(
            lambda: run(self.invoke_argv(*args), env=self.env(), timeout=timeout)
        )
        return seconds

    # the runtime cicd started

    @property
    def supervisor_conf(self) -> Path:
        """supervisord.conf that cicd wrote under the root."""
        return self.root / "supervisor" / "supervisord.conf"

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run supervisorctl against cicd's supervisord (must succeed)."""
        return run([SUPERVISORCTL, "-c", str(self.supervisor_conf), *args])

    def boot(self, text: str, env: str = "preprod", path: str = "/") -> float:
        """App boot-to-ready: ``supervisorctl restart`` → first answer with ``text``.

        The clock starts as supervisorctl is started, so it includes what any deploy
        pays for a restart (supervisorctl's own start, stopping the old process,
        spawning the new one) plus the app's start until it answers; polled every
        0.02 s.
        """
        start = time.monotonic()
        self.ctl("restart", f"app-{env}")
        return wait_for_text(self.url(env, path), text) - start

    def close(self) -> None:
        """Shut down the supervisord cicd started, then delete everything."""
        if self.supervisor_conf.exists():
            shutdown_supervisord(self.supervisor_conf)
        shutil.rmtree(self.dir, ignore_errors=True)


def shutdown_supervisord(conf: Path, timeout: float = 30.0) -> None:
    """Ask a supervisord to shut down and wait until its process is gone."""
    pidfile = conf.parent / "supervisord.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        pid = 0
    subprocess.run(
        [SUPERVISORCTL, "-c", str(conf), "shutdown"], capture_output=True, timeout=60
    )
    end = time.monotonic() + timeout
    while pid and time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def ledger_offsets(ledger: Path, launched: float) -> dict[str, float]:
    """Seconds from the launch to each ledger event written by that run."""
    offsets: dict[str, float] = {}
    try:
        text = ledger.read_text()
    except OSError:
        return offsets
    for line in text.splitlines():
        try:
            event = json.loads(line)
            at = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        except (ValueError, KeyError, TypeError):
            continue
        offset = at.replace(tzinfo=UTC).timestamp() - launched
        if offset < 0:
            continue
        name = event["event"]
        if name == "deploy":
            name = "started" if event.get("outcome") == "started" else "deployed"
        offsets.setdefault(name, offset)
    return offsets


def json_durations(stdout: str) -> dict[str, float]:
    """The ``durations`` of ``deploy.preprod --json`` (the JSON ends stdout)."""
    start = stdout.find("\n{")
    text = stdout[start + 1 :] if start >= 0 else stdout
    try:
        return dict(json.loads(text).get("durations", {}))
    except ValueError:
        return {}
