"""Local stand-ins for the infrastructure checks (``local-env``), all on loopback.

``nox -s infra`` (50_test) checks a configured real environment: an SSH host, a
target root, GitHub's API, a Discord webhook, health URLs, an S3 bucket. In CI, and
by hand with ``PYTHONPATH=. python3 -m tools.testinfra local-env --dir DIR``, these
stand in for them: one sshd host (:mod:`tools.testinfra.sshd`), an HTTP server
answering like GitHub, Discord and an app's /health, and moto's S3 server with the
app's sample uploaded. Their variables come out as ``export`` lines for ``eval``.
Standard library only (moto runs in a venv of its own when this Python lacks it).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tools.testinfra.docker import docker_ok
from tools.testinfra.process import (
    alive,
    detach,
    free_port,
    read_pid,
    run,
    start_time,
    succeeds,
    tail,
)
from tools.testinfra.sshd import start_fleet

#: Prefix of the variables ``local-env`` prints. ``nox -s infra`` maps each
#: ``INFRA_CHECK_NAME`` to ``NAME`` for its own checks only, so the stand-ins'
#: token, webhook and bucket never reach the ``tests`` session (which reads
#: ``GITHUB_TOKEN``, ``GITHUB_REPOSITORY``...). On a real VM, set the real names.
LOCAL_ENV_PREFIX = "INFRA_CHECK_"
#: The repository root (tools/testinfra/standins.py is two levels down).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The app's synthetic Parquet sample, uploaded to the S3 stand-in.
APP_SAMPLE_DIR = REPO_ROOT / "10_preprod" / "data" / "sample"
LOCAL_BUCKET = "mangetamain"
LOCAL_PREFIX = "sample"
LOCAL_REPOSITORY = "mangetamain/cicd"
#: The environment directories made under the stand-in target root.
LOCAL_ENVIRONMENTS = ("preprod", "prod")
#: No proxy for loopback requests, whatever the environment says.
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def standin_answer(
    path: str, authorization: str, settings: Mapping[str, str]
) -> tuple[int, str, bytes]:
    """Answer a GET the way the services the infra checks talk to would.

    ``/health`` is an app's health URL; ``settings["webhook_path"]`` is a Discord
    webhook (``/api/webhooks/ID/TOKEN``); ``/repos/OWNER/REPO/actions/runs`` is
    GitHub's API and needs ``Authorization: Bearer <settings["token"]>``.

    Args:
        path: The request path, without query string.
        authorization: The Authorization header ("" when absent).
        settings: ``token``, ``repository`` and ``webhook_path``.

    Returns:
        The status, the content type and the body.
    """

    def answer(status: int, body: object) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(body).encode()

    if path == "/health":
        return 200, "text/plain", b"ok"
    if path == settings["webhook_path"]:
        webhook_id = path.split("/")[3]
        return answer(200, {"type": 1, "id": webhook_id, "name": "cicd stand-in"})
    if path == f"/repos/{settings['repository']}/actions/runs":
        if authorization != f"Bearer {settings['token']}":
            return answer(401, {"message": "Bad credentials"})
        run = {"id": 1, "head_sha": "0" * 40, "conclusion": "success"}
        return answer(200, {"total_count": 1, "workflow_runs": [run]})
    return answer(404, {"message": "Not Found"})


def serve_standin(directory: Path) -> None:
    """Serve :func:`standin_answer` on 127.0.0.1 until killed.

    Reads ``directory/settings.json`` (the token stays off the command line),
    binds a free port and writes it to ``directory/port``. Request logs go to
    stderr with the webhook's token masked.
    """
    import http.server

    settings = json.loads((directory / "settings.json").read_text())

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            authorization = self.headers.get("Authorization", "")
            status, kind, body = standin_answer(path, authorization, settings)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            line = (format % args).replace(
                settings["webhook_path"], "/api/webhooks/***"
            )
            sys.stderr.write(f"{self.log_date_time_string()} {line}\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    temporary = directory / "port.tmp"
    temporary.write_text(str(server.server_address[1]))
    temporary.replace(directory / "port")
    server.serve_forever()


def _record(pids: Path, name: str, pid: int) -> None:
    with pids.open("a") as handle:
        handle.write(f"{name} {pid} {start_time(pid)}\n")


def _spawn(
    argv: Sequence[str], directory: Path, name: str, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Start a detached daemon (own session) in ``directory``, logging to NAME.log.

    Its pid is recorded in the ``pids`` file of ``directory``'s parent.
    """
    process = detach(argv, directory / f"{name}.log", cwd=directory, env=env)
    _record(directory.parent / "pids", name, process.pid)
    return process


def _http_answers(url: str) -> bool:
    try:
        _LOOPBACK.open(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def _wait_ready(
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes],
    log: Path,
    deadline: float = 60,
) -> None:
    """Poll ``ready`` until it says yes; fail early if ``process`` exits."""
    limit = time.monotonic() + deadline
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"exited {process.returncode}; {log}:\n{tail(log)}")
        if time.monotonic() > limit:
            raise RuntimeError(f"no answer within {deadline:g} s; {log}:\n{tail(log)}")
        time.sleep(0.1)


def moto_python(directory: Path, python: str = sys.executable) -> str:
    """A Python that can run ``moto.server``: ``python``, or a venv made for it.

    When ``python`` lacks moto, ``directory/moto-venv`` is created (once) and
    ``moto[server]`` installed into it with pip from the configured index.

    Returns:
        The interpreter's path.
    """
    probe = ["-c", "import moto.server"]
    if succeeds([python, *probe], timeout=60):
        return python
    venv_python = str(directory / "moto-venv" / "bin" / "python")
    if not succeeds([venv_python, *probe], timeout=60):
        run([python, "-m", "venv", str(directory / "moto-venv")], timeout=None)
        pip = [venv_python, "-m", "pip", "install", "--quiet", "moto[server]"]
        run(pip, timeout=None)
    return venv_python


def upload_sample(endpoint: str, bucket: str, prefix: str, sample: Path) -> list[str]:
    """Create ``bucket`` on an S3 stand-in and put every Parquet file of ``sample``.

    moto's server does not check signatures, so plain PUTs do (stdlib only).

    Returns:
        The keys written.
    """
    files = sorted(sample.glob("*.parquet"))
    if not files:
        raise RuntimeError(f"no Parquet file in {sample}")
    puts: list[tuple[str, Path | None]] = [(f"{endpoint}/{bucket}", None)]
    puts += [(f"{endpoint}/{bucket}/{prefix}/{f.name}", f) for f in files]
    for url, path in puts:
        data = path.read_bytes() if path else None
        headers = {"Content-Type": "application/octet-stream"}
        request = urllib.request.Request(url, data, headers, method="PUT")
        _LOOPBACK.open(request, timeout=30).close()
    return [f"{prefix}/{f.name}" for f in files]


def stop_local_env(directory: Path, deadline: float = 10) -> list[str]:
    """Stop every stand-in ``local-env`` recorded in ``directory/pids``.

    Each is signalled with its process group (it leads its own session), SIGTERM
    then SIGKILL after ``deadline`` seconds. A pid now used by another process (its
    start time differs) is left alone.

    Returns:
        The names of the stand-ins stopped.
    """
    pids = directory / "pids"
    stopped: list[str] = []
    lines = pids.read_text().splitlines() if pids.exists() else []
    for line in lines:
        name, pid_text, started = (line.split() + ["", "", ""])[:3]
        pid = int(pid_text) if pid_text.isdigit() else 0
        if not pid or not alive(pid) or start_time(pid) != started:
            continue
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            limit = time.monotonic() + deadline
            while alive(pid) and time.monotonic() < limit:
                time.sleep(0.05)
            if not alive(pid):
                break
        stopped.append(name)
    pids.unlink(missing_ok=True)
    return stopped


def local_env(
    directory: Path,
    *,
    sample: Path = APP_SAMPLE_DIR,
    python: str = sys.executable,
    say: Callable[[str], None] = print,
) -> dict[str, str]:
    """Start local stand-ins for every infra check (``nox -s infra``), on loopback.

    One sshd host (``h1`` on 127.0.0.2, its ssh_config and known_hosts); an HTTP
    stand-in on 127.0.0.1 for GitHub's Actions runs API, a Discord webhook and a
    health URL; moto's S3 server on 127.0.0.1 with the app's sample uploaded; a
    target root with ``preprod`` and ``prod``. A previous run's stand-ins in the
    same directory are stopped first. Stop them with :func:`stop_local_env`.

    Args:
        directory: State, logs, ``pids`` and ``env.sh`` of the stand-ins.
        sample: The Parquet files to upload.
        python: The interpreter to run moto with (a venv is made if it lacks it).
        say: Where the step lines go.

    Returns:
        The variables the checks read, by their real names.
    """
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    stop_local_env(directory)
    variables: dict[str, str] = {}
    try:
        fleet = start_fleet(1, directory / "ssh")
        host = fleet.hosts[0]
        _record(directory / "pids", "sshd", read_pid(host.pidfile) or 0)
        variables["CICD_SSH_HOST"] = host.name
        variables["CICD_SSH_CONFIG"] = str(fleet.ssh_config)
        say(f"sshd: {host.name} on {host.address}:{host.port}, {fleet.ssh_config}")

        root = directory / "target"
        for name in LOCAL_ENVIRONMENTS:
            (root / name).mkdir(parents=True, exist_ok=True)
        variables["CICD_TARGET_ROOT"] = str(root)
        if docker_ok():
            variables["CICD_DOCKER"] = "1"
        else:
            say("docker: no engine answers `docker info`; CICD_DOCKER left unset")

        web = directory / "http"
        web.mkdir(exist_ok=True)
        (web / "port").unlink(missing_ok=True)
        token = secrets.token_hex(20)
        webhook = f"/api/webhooks/{secrets.randbelow(10**18)}/{secrets.token_hex(24)}"
        settings = web / "settings.json"
        settings.touch(mode=0o600)
        settings.write_text(
            json.dumps(
                {
                    "token": token,
                    "repository": LOCAL_REPOSITORY,
                    "webhook_path": webhook,
                }
            )
        )
        # The stand-in is this package's own CLI: the repository root on the path.
        argv = [sys.executable, "-m", "tools.testinfra", "http-standin"]
        argv += ["--dir", str(web)]
        process = _spawn(argv, web, "http", {"PYTHONPATH": str(REPO_ROOT)})
        _wait_ready((web / "port").exists, process, web / "http.log")
        base = f"http://127.0.0.1:{(web / 'port').read_text()}"
        _wait_ready(lambda: _http_answers(f"{base}/health"), process, web / "http.log")
        variables["CICD_HEALTH_URLS"] = f"{base}/health"
        variables["GITHUB_API_URL"] = base
        variables["GITHUB_REPOSITORY"] = LOCAL_REPOSITORY
        variables["GITHUB_TOKEN"] = token
        variables["DISCORD_WEBHOOK_URL"] = base + webhook
        say(f"http: GitHub API, Discord webhook and /health stand-in on {base}")

        s3 = directory / "s3"
        s3.mkdir(exist_ok=True)
        interpreter = moto_python(directory, python)
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        argv = [interpreter, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        process = _spawn(argv, s3, "s3", {"AWS_EC2_METADATA_DISABLED": "true"})
        _wait_ready(
            lambda: _http_answers(f"{endpoint}/moto-api/"), process, s3 / "s3.log"
        )
        keys = upload_sample(endpoint, LOCAL_BUCKET, LOCAL_PREFIX, sample)
        variables["MANGETAMAIN_S3_BUCKET"] = LOCAL_BUCKET
        variables["MANGETAMAIN_S3_PREFIX"] = LOCAL_PREFIX
        variables["MANGETAMAIN_S3_ENDPOINT"] = endpoint
        variables["AWS_ACCESS_KEY_ID"] = "cicd-standin"
        variables["AWS_SECRET_ACCESS_KEY"] = secrets.token_hex(20)
        variables["AWS_REGION"] = "us-east-1"
        variables["AWS_EC2_METADATA_DISABLED"] = "true"
        say(f"s3: moto on {endpoint}, s3://{LOCAL_BUCKET}/: {', '.join(keys)}")
    except BaseException:
        stop_local_env(directory)
        raise
    return variables


def export_lines(variables: Mapping[str, str], prefix: str = LOCAL_ENV_PREFIX) -> str:
    """``export PREFIXNAME=VALUE`` lines for a shell's ``eval``, values quoted."""
    return "".join(
        f"export {prefix}{name}={shlex.quote(value)}\n"
        for name, value in sorted(variables.items())
    )
