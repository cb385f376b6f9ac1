"""The rendered-page condition with a stand-in browser, and SSH hardening.

A real Chromium is exercised by tests/integration/test_rendered.py where it is
installed; here a small script plays the browser (it prints a DOM), so the logic
around it runs on any machine. Fabric Connections are built but never opened.
"""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest
from paramiko.client import RejectPolicy

from cicd import render, ssh
from cicd.health import HealthCheck, run_check

HEAD = "<html><head><title>Mangetamain</title></head>"
APP_DOM = HEAD + "<body><h1>Mangetamain - ratings</h1></body></html>"
SHELL_DOM = HEAD + "<body><div id='root'></div></body></html>"
ERROR_DOM = (
    '<html><body><h1>Mangetamain</h1><div data-testid="stException">'
    "<pre>RuntimeError: broken at import</pre></div></body></html>"
)


def fake_browser(tmp_path: Path, dom: str, exit_code: int = 0) -> Path:
    """A script that prints ``dom`` like ``chromium --dump-dom`` does."""
    path = tmp_path / "chromium"
    (tmp_path / "dom.html").write_text(dom)
    path.write_text(f"#!/bin/sh\ncat '{tmp_path / 'dom.html'}'\nexit {exit_code}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def rendered(url: str = "http://127.0.0.1:9/") -> HealthCheck:
    """A rendered-page condition."""
    return HealthCheck(url=url, rendered_contains="Mangetamain", timeout=5)


@pytest.mark.parametrize(
    ("dom", "ok", "reason", "fatal"),
    [
        (APP_DOM, True, "ok", False),
        (SHELL_DOM, False, "rendered page does not show 'Mangetamain'", False),
        (ERROR_DOM, False, "the app shows an exception", True),
    ],
)
def test_rendered_condition_reads_what_the_browser_shows(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dom: str,
    ok: bool,
    reason: str,
    fatal: bool,
) -> None:
    monkeypatch.setenv(render.CHROMIUM_VARIABLE, str(fake_browser(tmp_path, dom)))
    result = run_check(rendered())
    assert (result.ok, result.fatal) == (ok, fatal)
    assert result.reason.startswith(reason)


def test_a_page_that_did_not_load_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(render.CHROMIUM_VARIABLE, str(fake_browser(tmp_path, "", 1)))
    result = run_check(rendered())
    assert not result.ok and "did not load" in result.reason


def test_without_chromium_the_condition_is_skipped_with_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(render.CHROMIUM_VARIABLE, "/nonexistent/chromium")
    result = run_check(rendered())
    assert result.ok and "apt-get install chromium" in result.note


def test_chromium_flags_keep_it_off_the_network() -> None:
    argv = render.chromium_argv("chromium", "http://127.0.0.1:8500/", "/tmp/p", 8000)
    assert "--disable-background-networking" in argv and "--headless" in argv
    assert argv[-2:] == ["--dump-dom", "http://127.0.0.1:8500/"]
    assert render.visible_text("<body><script>x=1</script><p>Hi</p></body>") == "Hi"


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
    from cicd.errors import ConnectionLost
    from cicd.runner import Runner

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

    from cicd.config import from_table
    from cicd.runner import Runner
    from cicd.runtime.compose import ComposeRuntime
    from cicd.target import Target

    settings = from_table({"runtime": {"kind": "compose"}}, project_dir=tmp_path)
    target = Target(Runner(Context()), settings, "preprod")
    assert isinstance(target.runtime, ComposeRuntime)
