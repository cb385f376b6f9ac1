"""Shared fixtures: a real git repository of a stand-in app, a configuration pointing
at a temporary target root, and a real supervisord that is shut down after each test.

The stand-in app is a stdlib HTTP server (the Streamlit app has its own tests in
10_preprod); everything else — git, supervisord, HTTP — is real.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from invoke import Context

from cicd.core import config
from cicd.core.settings import Settings
from cicd.transport.runner import Runner
from cicd.host.target import Target

REPO_ROOT = Path(__file__).resolve().parents[1]

# sshd hosts on 127.0.0.x and the Docker engine: skipped with a reason when absent.
pytest_plugins = ("tools.testinfra.fixtures",)

#: What a CI runner puts in the environment of the job that runs these tests
#: (GitHub's runner, or the act harness's in ``nox -s workflows``). The pipeline
#: reads several (the run's URL, the step summary, the repository), so a test sees
#: them only when it sets them: the suite then behaves as it does on a laptop, and
#: no test writes into the job's real step summary. RUNNER_TRACKING_ID stays: it is
#: what the runner's end-of-job cleanup finds the job's processes by.
RUNNER_PREFIXES = ("GITHUB_", "RUNNER_", "ACTIONS_")
#: Inside the act harness's jobs only (``ACT_HARNESS_ACTIONS`` is set): its own
#: variables and the offline installs it gives the workflow's steps.
HARNESS_SETTINGS = ("UV_OFFLINE", "PIP_NO_INDEX", "PIP_FIND_LINKS", "PIP_CONFIG_FILE")


def forget_the_ci_runner(environ: MutableMapping[str, str]) -> list[str]:
    """Remove the CI runner's variables from ``environ``; the names removed."""
    harness = "ACT_HARNESS_ACTIONS" in environ
    names = [
        name
        for name in environ
        if (name.startswith(RUNNER_PREFIXES) and name != "RUNNER_TRACKING_ID")
        or (harness and (name.startswith("ACT_HARNESS_") or name in HARNESS_SETTINGS))
    ]
    for name in names:
        del environ[name]
    return sorted(names)


forget_the_ci_runner(os.environ)

SERVER = '''\
"""Stand-in app: answers every GET with the content of version.txt."""
import base64
import hashlib
import http.server
import os
import sys
import time

MODE = open("mode.txt").read().strip()
if MODE == "crash":
    sys.exit("crashing at start, as a broken release would")
if MODE.startswith("slow"):
    time.sleep(float(MODE.split()[1]))
BODY = open("version.txt", "rb").read()
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.headers.get("Upgrade") == "websocket":
            # As Streamlit's /_stcore/stream: a connection upgraded for good. A
            # proxy then tunnels it; each line sent is answered with the version.
            key = self.headers.get("Sec-WebSocket-Key", "") + WS_GUID
            accept = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            while self.rfile.readline():
                self.wfile.write(BODY)
                self.wfile.flush()
            self.close_connection = True
            return
        status = 500 if MODE == "error" else 200
        body = BODY
        if self.path.startswith("/env/"):
            # The variable as this process started with it (app.env is read at start).
            body = os.environ.get(self.path[len("/env/") :], "").encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ADDRESS = (sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1", int(sys.argv[1]))
http.server.ThreadingHTTPServer(ADDRESS, Handler).serve_forever()
'''


def distinct_ports(
    repo: AppRepo,
) -> tuple[dict[str, int], AppRepo, dict[str, tuple[int, int]]]:
    """Free ports for both environments and their two slots, all different."""
    ports: list[int] = []
    while len(ports) < 6:
        port = free_port()
        if port not in ports:
            ports.append(port)
    envs = {"preprod": ports[0], "prod": ports[1]}
    return envs, repo, {"preprod": (ports[2], ports[3]), "prod": (ports[4], ports[5])}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return its stripped output."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.test",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.test",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass
class AppRepo:
    """A git repository holding the stand-in app; each commit is a release."""

    path: Path
    shas: list[str] = field(default_factory=list)

    def commit(self, version: str, mode: str = "ok", message: str = "") -> str:
        """Commit a version of the app; ``mode`` is ok, crash, error or 'slow N'."""
        app = self.path / "app"
        app.mkdir(exist_ok=True)
        (app / "server.py").write_text(SERVER)
        (app / "version.txt").write_text(f"{version} ok\n")
        (app / "mode.txt").write_text(mode + "\n")
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message or version)
        sha = git(self.path, "rev-parse", "HEAD")
        self.shas.append(sha)
        return sha


@pytest.fixture
def app_repo(tmp_path: Path) -> AppRepo:
    """An empty git repository for the stand-in app."""
    path = tmp_path / "source"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return AppRepo(path)


@dataclass
class Project:
    """A configuration file, its target root and the ports of its environments."""

    config_path: Path
    root: Path
    ports: dict[str, int]
    repo: AppRepo
    #: Each environment's (blue, green) private ports behind haproxy.
    slot_ports: dict[str, tuple[int, int]] = field(default_factory=dict)

    def settings(self) -> Settings:
        """Load the configuration."""
        return config.load(self.config_path)

    def target(self, env: str = "preprod") -> Target:
        """A Target of ``env`` running commands locally."""
        return Target(Runner(Context()), self.settings(), env)

    def url(self, env: str = "preprod") -> str:
        """The app's URL in ``env``."""
        return f"http://127.0.0.1:{self.ports[env]}/"

    def write(
        self,
        extra: str = "",
        deadline: float = 8,
        preprod: str = "",
        proxy: str = "none",
        smoke: bool = False,
    ) -> None:
        """(Re)write the configuration, with extra TOML appended.

        Args:
            extra: TOML tables appended.
            deadline: Readiness deadline, in seconds.
            preprod: TOML key lines added to ``[tool.cicd.env.preprod]``.
            proxy: ``proxy.kind``: in-place restarts (``none``, what most tests
                exercise) or blue/green behind haproxy (``haproxy``), each slot
                on a free port.
            smoke: Deploys open the app's pages in a browser (``smoke.on_deploy``).
                Off by default: the stand-in app has no pages to choose, and
                most tests are about something else.
        """
        on_deploy = "" if smoke else "smoke.on_deploy = false"
        slots = {
            env: f"proxy.blue_port = {blue}\nproxy.green_port = {green}"
            for env, (blue, green) in self.slot_ports.items()
        }
        self.config_path.write_text(textwrap.dedent(f"""\
                [tool.cicd]
                root = "{self.root}"
                source = "{self.repo.path}"
                app_dir = "app"
                keep = 3
                preflight = []  # the pre-flight has its own tests: test_preflight.py

                [tool.cicd.runtime]
                command = "{{python}} server.py {{port}} {{address}}"

                [tool.cicd.health]
                deadline = {deadline}
                interval = 0.1
                checks = [{{ path = "/", body_contains = "ok" }}]

                [tool.cicd.proxy]
                kind = "{proxy}"

                [tool.cicd.env.preprod]
                port = {self.ports["preprod"]}
                {slots["preprod"]}
                {on_deploy}
                {preprod}

                [tool.cicd.env.prod]
                port = {self.ports["prod"]}
                {slots["prod"]}
                {on_deploy}
                """) + textwrap.dedent(extra))


def shutdown_supervisord(root: Path) -> None:
    """Stop every supervisord a test started under ``root`` (one per simulated host)."""
    ctl = Path(sys.executable).parent / "supervisorctl"
    for conf in (
        sorted(root.glob("**/supervisor/supervisord.conf")) if root.exists() else []
    ):
        subprocess.run(
            [str(ctl), "-c", str(conf), "shutdown"], capture_output=True, timeout=30
        )


@pytest.fixture
def project(
    tmp_path: Path, app_repo: AppRepo, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    """A configured project on a temporary root; CICD_CONFIG points at it."""
    root = tmp_path / "target root"  # a space, so quoting is exercised everywhere
    project = Project(
        tmp_path / "cicd.toml",
        root,
        *distinct_ports(app_repo),
    )
    project.write()
    monkeypatch.setenv("CICD_CONFIG", str(project.config_path))
    # In GitHub's CI these are set for the test process itself: a test's deploy
    # must neither write to that job's summary nor annotate it.
    for name in (
        "DISCORD_WEBHOOK_URL",
        "GITHUB_ACTOR",
        "GITHUB_SHA",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_ACTIONS",
    ):
        monkeypatch.delenv(name, raising=False)
    yield project
    shutdown_supervisord(root)


def invoke_argv(*args: str) -> list[str]:
    """The command line of ``invoke ARGS`` with this repository's tasks."""
    return [sys.executable, "-m", "invoke", "--search-root", str(REPO_ROOT), *args]


def invoke(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``invoke ARGS`` with this repository's tasks, as a user would."""
    return subprocess.run(
        invoke_argv(*args),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=cwd,
    )


def invoke_in_background(*args: str) -> subprocess.Popen[str]:
    """Start ``invoke ARGS`` and return at once (to interrupt it mid-way)."""
    return subprocess.Popen(
        invoke_argv(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_switch(current: Path, sha: str, timeout: float = 60) -> None:
    """Wait until the ``current`` symlink points at ``sha``'s release."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if current.is_symlink() and os.readlink(current).endswith(sha):
            return
        time.sleep(0.02)
    raise AssertionError(f"{current} never switched to {sha[:7]}")


def env_ledger(project: Project, env: str = "prod") -> list[dict[str, Any]]:
    """Every ledger event of ``env`` (none when it has no ledger yet)."""
    path = project.root / env / "ledger.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def validate(project: Project, sha: str) -> None:
    """Record a CI success for ``sha`` on preprod, as the watcher does."""
    preprod = project.target("preprod")
    preprod.ensure_dirs()
    preprod.set_validated(sha)
    preprod.event("validated", sha=sha)
