"""The monitor as the hourly workflow runs it: ``invoke health --monitor`` and
``invoke health --url``, against a real app under supervisord, a real Discord stand-in
and a real TLS server on 127.0.0.1 with a certificate made here.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from cicd.pipeline.monitor import history_line
from cicd.pipeline.outside import certificate
from tests.conftest import Project, free_port, invoke, invoke_in_background
from tests.discord_fake import FakeDiscord

pytestmark = pytest.mark.slow  # real deploys under supervisord

FAST = """
[tool.cicd.monitor]
failures = 2
successes = 2
retries = {retries}
retry_interval = {interval}
patience = {patience}
cert_days = 30
urls = [{urls}]
"""


class Discord:
    """A Discord stand-in on a real local HTTP server: keeps what it was sent."""

    def __init__(self, server: HTTPServer) -> None:
        self.sent: list[str] = []
        self.fake = FakeDiscord(server, "/hook/monitor")
        server.expect_request("/hook/monitor").respond_with_handler(self.receive)
        self.url = server.url_for("/hook/monitor")

    def receive(self, request: Request) -> Response:
        self.sent.append(json.dumps(request.get_json(), ensure_ascii=False))
        return self.fake.answer(request)

    def saw(self, text: str) -> bool:
        """Whether any message so far contains ``text``."""
        return any(text in message for message in self.sent)


def configure(
    project: Project,
    retries: int = 0,
    interval: float = 0.2,
    urls: str = "",
    patience: float = 0,
) -> None:
    """Rewrite the project's configuration with quick monitor thresholds."""
    project.write(
        FAST.format(retries=retries, interval=interval, urls=urls, patience=patience)
    )


def self_signed(folder: Path, days: int) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 valid ``days`` more days, and its key (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Page(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 200 ``ok``."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tls_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTPS server on 127.0.0.1 whose certificate expires in 10 days."""
    cert, key = self_signed(tmp_path, days=10)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/", cert
    server.shutdown()
    server.server_close()


def history(project: Project, env: str = "preprod") -> list[dict[str, object]]:
    """The monitor's history of ``env``, one dict per check."""
    path = project.root / env / "monitor.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_never_deployed_environments_are_skipped_said_once(project: Project) -> None:
    result = invoke("health", "--monitor")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        "preprod: skipped — never deployed (no current release)",
        "prod: skipped — never deployed (no current release)",
    ]
    assert "DOWN" not in result.stdout + result.stderr
    assert not (project.root / "preprod" / "monitor.jsonl").exists()


def test_a_down_environment_is_rechecked_and_recovers_within_the_run(
    project: Project, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    discord = Discord(httpserver)
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", discord.url)
    configure(project, retries=40, interval=0.25)
    sha = project.repo.commit("v1")
    assert invoke("deploy.preprod", "--sha", sha).returncode == 0
    target = project.target()
    target.live_runtime().stop()
    run = invoke_in_background("health", "--env", "preprod", "--monitor")
    try:
        deadline = time.monotonic() + 30
        while not discord.saw("PREPROD is DOWN") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert discord.saw("PREPROD is DOWN"), discord.sent
        target.live_runtime().start()  # the app comes back while the run is still going
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 0, err
    assert "preprod: ok — ok" in out
    assert discord.saw("PREPROD recovered after 0 min down")
    checks = history(project)
    assert [c["ok"] for c in checks[:2]] == [False, False]
    assert checks[-2]["ok"] and checks[-1]["ok"] and checks[-1]["status"] == "up"
    assert 3 < len(checks) < 40  # stopped once recovered, not at the bound

    # Still down at the end of a run: bounded by retries, then exit 1.
    configure(project, retries=2, interval=0.05)
    target.live_runtime().stop()
    before = len(history(project))
    failed = invoke("health", "--env", "preprod", "--monitor", "--json")
    assert failed.returncode == 1
    assert len(history(project)) - before == 4  # 2 to confirm, 2 re-checks
    assert json.loads(failed.stdout) and '"ok": false' in failed.stdout


def alive(pid: int) -> bool:
    """Whether a process runs (and is not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def test_still_down_at_the_end_of_a_run_is_rechecked_in_the_background(
    project: Project, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    discord = Discord(httpserver)
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", discord.url)
    configure(project, retries=0, interval=0.2, patience=60)
    assert invoke("deploy.preprod", "--sha", project.repo.commit("v1")).returncode == 0
    target = project.target()
    target.live_runtime().stop()
    pidfile = project.root / "preprod" / "monitor.pid"
    first = invoke("health", "--env", "preprod", "--monitor")
    assert first.returncode == 1
    assert "re-checked every 0.2s in the background for up to 60s" in first.stdout
    assert discord.saw("PREPROD is DOWN")
    pid = int(pidfile.read_text())
    assert alive(pid)
    # The next run takes over: the earlier re-checker is stopped, a new one starts.
    second = invoke("health", "--env", "preprod", "--monitor")
    assert second.returncode == 1
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    newer = int(pidfile.read_text())
    assert newer != pid and alive(newer)
    target.live_runtime().start()  # the app comes back between two hourly runs
    deadline = time.monotonic() + 30
    while not discord.saw("PREPROD recovered") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert discord.saw("PREPROD recovered"), discord.sent
    deadline = time.monotonic() + 10
    while alive(newer) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(newer) and not pidfile.exists()  # done once recovered
    assert sum("recovered" in message for message in discord.sent) == 1


def test_certificate_days_left_alert_and_the_outside_view(
    project: Project,
    httpserver: HTTPServer,
    tls_site: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, cert = tls_site
    # The public URL is verified as a browser would, against this machine's CAs.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    discord = Discord(httpserver)
    configure(project, urls=f'"{url}"')
    sha = project.repo.commit("v1")
    assert invoke("deploy.preprod", "--sha", sha).returncode == 0
    env = {"DISCORD_WEBHOOK_URL": discord.url}
    first = invoke("health", "--env", "preprod", "--monitor", env=env)
    assert first.returncode == 0, first.stderr
    port = url.rsplit(":", 1)[1].rstrip("/")
    said = f"certificate of 127.0.0.1:{port} expires in 9 days"
    assert discord.saw(said) and discord.saw("alert under 30 days")
    again = invoke("health", "--env", "preprod", "--monitor", "--json", env=env)
    assert again.returncode == 0
    assert sum(said in m for m in discord.sent) == 1  # once per reminder period
    (row,) = json.loads(again.stdout)["hosts"]
    (cert,) = row["certificates"]
    assert cert["url"] == url and 9 < cert["days"] < 10 and row["status"] == "up"

    outside = invoke("health", "--url", url, env=env)
    assert outside.returncode == 0, outside.stderr
    assert f"{url}: ok — ok; {said}" in outside.stdout
    dead = f"http://127.0.0.1:{free_port()}/"
    down = invoke("health", "--url", f"{url},{dead}", env=env)
    assert down.returncode == 1
    assert f"{dead}: FAIL — connection refused" in down.stdout
    assert discord.saw(f"{dead} is DOWN seen from outside the VM (2 failed checks")

    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    refused = invoke("health", "--url", url, "--json")
    assert refused.returncode == 1 and "certificate refused" in refused.stdout
    httpserver.expect_request("/gone").respond_with_data("", 503)
    plain = f"127.0.0.1:{httpserver.port}"
    broken = invoke("health", "--url", f"http://{plain}/gone https://{plain}/")
    assert f"http://{plain}/gone: FAIL — status 503" in broken.stdout
    assert f"https://{plain}/: FAIL — TLS handshake failed" in broken.stdout


def test_bad_urls_are_refused_with_nothing_done(project: Project) -> None:
    for args in (["--url", "ftp://example.test/"], ["--url", "x", "--env", "prod"]):
        result = invoke("health", *args)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith("error: ")


def test_an_unreachable_certificate_is_said_not_raised() -> None:
    found = certificate(f"https://127.0.0.1:{free_port()}/", timeout=2)
    assert found.days is None and found.error == "connection refused"
    assert "not read: connection refused" in found.describe()
    line = json.loads(history_line("prod", 0.0, False, "x" * 400, "down"))
    assert line["time"] == "1970-01-01T00:00:00Z" and len(line["reason"]) == 300
