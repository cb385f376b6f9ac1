"""The rendered-page condition with a stand-in browser, and SSH hardening.

A real Chromium is exercised by tests/integration/test_rendered.py where it is
installed; here a small script plays the browser (it prints a DOM), so the logic
around it runs on any machine. Fabric Connections are built but never opened.
"""

from __future__ import annotations

import json
import socket
import stat
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from paramiko.client import RejectPolicy

from cicd.checks import browser
from cicd.transport import ssh
from cicd.checks.health import run_check, wait_ready
from cicd.core.health_check import HealthCheck

#: What the page shows: the app, Streamlit's empty shell, the app's exception.
APP = ("Mangetamain - ratings", None)
SHELL = ("", None)
ERROR = ("Mangetamain", "RuntimeError: broken at import")


BROWSER = """#!{python}
# A stand-in for Chromium speaking the DevTools protocol on fds 3 and 4, as
# --remote-debugging-pipe does: it answers what the renderer asks, and shows the
# page described in page.json (text, exception), or exits at once when told to.
import json, os, sys
with open({page!r} + ".launches", "a") as launches:
    launches.write("launched\\n")
page = json.load(open({page!r}))
if page.get("exit") is not None:
    sys.exit(page["exit"])
buffer = b""
while True:
    chunk = os.read(3, 65536)
    if not chunk:
        break
    buffer += chunk
    while b"\\0" in buffer:
        raw, buffer = buffer.split(b"\\0", 1)
        message = json.loads(raw)
        method = message["method"]
        result = {{}}
        if method == "Target.createTarget":
            result = {{"targetId": "t1"}}
        elif method == "Target.attachToTarget":
            result = {{"sessionId": "s1"}}
        elif method == "Runtime.evaluate":
            page = json.load(open({page!r}))  # what the page shows now
            seen = {{"text": page["text"], "exception": page.get("exception")}}
            result = {{"result": {{"value": seen}}}}
        answer = {{"id": message["id"], "result": result}}
        os.write(4, json.dumps(answer).encode() + b"\\0")
"""


def fake_browser(
    tmp_path: Path, text: str, exception: str | None = None, exit: int | None = None
) -> Path:
    """A stand-in Chromium showing ``text`` (and Streamlit's ``exception`` box)."""
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"text": text, "exception": exception, "exit": exit}))
    path = tmp_path / "chromium"
    path.write_text(BROWSER.format(python=sys.executable, page=str(page)))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def rendered(url: str = "http://127.0.0.1:9/") -> HealthCheck:
    """A rendered-page condition."""
    return HealthCheck(url=url, rendered_contains="Mangetamain", timeout=5)


@pytest.mark.parametrize(
    ("page", "ok", "reason", "fatal"),
    [
        (APP, True, "ok", False),
        (SHELL, False, "rendered page does not show 'Mangetamain'", False),
        (ERROR, False, "the app shows an exception: RuntimeError", True),
    ],
)
def test_rendered_condition_reads_what_the_browser_shows(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    page: tuple[str, str | None],
    ok: bool,
    reason: str,
    fatal: bool,
) -> None:
    binary = fake_browser(tmp_path, *page)
    monkeypatch.setenv(browser.CHROMIUM_VARIABLE, str(binary))
    result = run_check(rendered(), timeout=1.0)
    assert (result.ok, result.fatal) == (ok, fatal)
    assert result.reason.startswith(reason)


def test_a_page_that_did_not_load_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        browser.CHROMIUM_VARIABLE, str(fake_browser(tmp_path, "", exit=1))
    )
    result = run_check(rendered())
    assert not result.ok and "did not load" in result.reason


def launches(tmp_path: Path) -> int:
    """How many times the stand-in browser was started."""
    path = tmp_path / "page.json.launches"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_readiness_starts_one_browser_for_every_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(browser.CHROMIUM_VARIABLE, str(fake_browser(tmp_path, *SHELL)))
    check = HealthCheck(url="http://127.0.0.1:9/", rendered_contains="Mangetamain")
    check = replace(check, timeout=0.3)
    attempts: list[int] = []

    def on_attempt(attempt: int, results: object) -> None:
        attempts.append(attempt)
        if attempt == 2:  # the app's script has run: the page shows its heading
            (tmp_path / "page.json").write_text(json.dumps({"text": APP[0]}))

    readiness = wait_ready([check], deadline=10, interval=0.05, on_attempt=on_attempt)
    assert readiness.ok and readiness.attempts == 3, readiness
    assert launches(tmp_path) == 1  # started once, before the first attempt


def test_a_browser_that_died_is_started_again_for_the_next_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        browser.CHROMIUM_VARIABLE, str(fake_browser(tmp_path, "", exit=1))
    )
    with browser.Browser() as chrome:
        first = chrome.render("http://127.0.0.1:9/", "Mangetamain", 2)
        second = chrome.render("http://127.0.0.1:9/", "Mangetamain", 2)
    assert not first.ok and "did not load" in first.reason
    assert not second.ok and launches(tmp_path) == 2


def test_a_browser_that_cannot_start_is_a_failed_condition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "chromium"
    binary.write_text("not a program")  # executable, but exec fails
    binary.chmod(0o755)
    monkeypatch.setenv(browser.CHROMIUM_VARIABLE, str(binary))
    with browser.Browser() as chrome:
        seen = chrome.render("http://127.0.0.1:9/", "Mangetamain", 1)
    assert not seen.ok and "the browser did not start" in seen.reason


def test_without_chromium_the_condition_is_skipped_with_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(browser.CHROMIUM_VARIABLE, "/nonexistent/chromium")
    result = run_check(rendered())
    assert result.ok and "apt-get install chromium" in result.note


def test_chromium_flags_keep_it_off_the_network() -> None:
    argv = browser.chromium_argv("chromium", "/tmp/p")
    assert "--disable-background-networking" in argv and "--headless" in argv
    # Driven over a pipe: no DevTools port is opened, only the app's URL loads.
    assert argv[-2:] == ["--remote-debugging-pipe", "about:blank"]
    assert not [a for a in argv if a.startswith("--remote-debugging-port")]


def test_known_hosts_files_follow_ssh_config(tmp_path: Path) -> None:
    spaced = tmp_path / "my hosts"
    spaced.write_text("")
    assert ssh.known_hosts_files({"userknownhostsfile": str(spaced)}) == [spaced]
    assert ssh.known_hosts_files({"userknownhostsfile": ["/a", "/b"]}) == [
        Path("/a"),
        Path("/b"),
    ]
    assert ssh.known_hosts_files({}) == [Path("~/.ssh/known_hosts").expanduser()]


def test_harden_rejects_unknown_keys_and_sets_a_connect_timeout(tmp_path: Path) -> None:
    from fabric import Connection

    from paramiko import RSAKey

    known = tmp_path / "known_hosts"
    key = RSAKey.generate(1024)
    known.write_text(f"[127.0.0.2]:2222 ssh-rsa {key.get_base64()}\n")
    connection = Connection("127.0.0.2", port=2222)
    assert ssh.harden(connection, known) is connection
    assert isinstance(connection.client._policy, RejectPolicy)
    assert connection.connect_timeout == ssh.CONNECT_TIMEOUT
    assert connection.client._system_host_keys.lookup("[127.0.0.2]:2222")
    assert ssh.harden(connection) is connection  # idempotent


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (Exception("Server '[h]:22' not found in known_hosts"), "host key unknown"),
        (type("BadHostKeyException", (Exception,), {})("mismatch"), "does not match"),
        (type("AuthenticationException", (Exception,), {})("denied"), "authentication"),
        (ConnectionRefusedError("refused"), "cannot connect"),
        (EOFError(), "connection lost"),
    ],
)
def test_ssh_failures_are_one_clear_line(error: Exception, expected: str) -> None:
    line = ssh.describe_failure("h1", error)
    assert line.startswith("h1: ") and expected in line and "\n" not in line


def test_connect_builds_a_hardened_connection_without_opening_it(
    tmp_path: Path,
) -> None:
    config = tmp_path / "ssh_config"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config.write_text(
        f"Host h1\n  HostName 127.0.0.2\n  Port {port}\n"
        f"  UserKnownHostsFile {tmp_path / 'none'}\n"
    )
    connection = ssh.connect("h1", str(config))
    assert (connection.host, connection.port) == ("127.0.0.2", port)
    assert connection.is_connected is False


def test_a_dropped_ssh_connection_is_one_clear_error() -> None:
    from cicd.commands import cmd
    from cicd.core.errors import ConnectionLost
    from cicd.transport.runner import Runner

    class DroppedConnection:
        """Looks like a fabric Connection whose transport just died."""

        host = "127.0.0.2"
        original_host = "h1"

        def open(self) -> None:
            """Never called: the runner opens nothing itself."""

        def run(self, command: str, **kwargs: object) -> None:
            raise EOFError

    runner = Runner(DroppedConnection())
    with pytest.raises(ConnectionLost, match="h1: connection lost .*rerun"):
        runner.run(cmd("true"))


def test_the_compose_runtime_is_chosen_by_kind(tmp_path: Path) -> None:
    from invoke import Context

    from cicd.core.config import from_table
    from cicd.transport.runner import Runner
    from cicd.runtime.compose import ComposeRuntime
    from cicd.host.target import Target

    settings = from_table({"runtime": {"kind": "compose"}}, project_dir=tmp_path)
    target = Target(Runner(Context()), settings, "preprod")
    assert isinstance(target.live_runtime(), ComposeRuntime)
