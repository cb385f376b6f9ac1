"""The watcher backs off when GitHub refuses or drops its connections.

The issue's case: a 150 s watch at 2 s polls made 74 attempts against an API that
refused every connection. The requests here are real (to a port nothing listens on,
or to a socket that closes each connection it accepts); only the watcher's clock is
virtual, so the 150 s pass in a moment.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from cicd.ci import INCONCLUSIVE
from cicd.ci.github import GitHubProvider
from cicd.pipeline.deploy import deploy_preprod
from cicd.reporting.notify import Notifier
from cicd.pipeline.watch import watch
from cicd.pipeline.watch_journal import load_journal
from tests.conftest import Project, free_port

DEADLINE = 150
INTERVAL = 2
#: Polls at 0, 2, 4, 8, 16, 32, 62, 92, 122 s (waits of 1, 2, 4... 30 s, never
#: below the 2 s interval), and a last one at the deadline.
BACKED_OFF = 10


class Closer:
    """A listening socket that accepts each connection and closes it at once."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return  # closed by the test
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        """Stop accepting."""
        self.server.close()


@pytest.fixture
def closer() -> Iterator[Closer]:
    """A server that drops every connection."""
    server = Closer()
    yield server
    server.close()


class VirtualClock:
    """The watcher's clock and sleep: sleeping moves the time on, at once."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def clock(self) -> float:
        """The current virtual time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds


def watch_against(
    project: Project, port: int, closer: Closer | None = None
) -> tuple[str, GitHubProvider]:
    """Watch a sha for 150 s at 2 s polls against an API on ``port``.

    With ``closer`` (the server on ``port``), its count of accepted connections is
    reset once the deploy is done: the deploy's own GitHub deployment calls go to
    the same API (and, refused, wait in their outbox), and only the watch's polls
    are counted here.
    """
    project.write(f"""
        [tool.cicd.ci]
        provider = "github"
        repository = "acme/mangetamain"
        api_url = "http://127.0.0.1:{port}"
        poll_interval = {INTERVAL}
        deadline = {DEADLINE}
        """)
    sha = project.repo.commit("v1")
    target = project.target()
    deploy_preprod([target], sha, Notifier(target))
    if closer is not None:
        closer.accepted = 0
    github = GitHubProvider(
        "acme/mangetamain", api_url=f"http://127.0.0.1:{port}", workflow="ci.yml"
    )
    time = VirtualClock()
    verdict = watch(
        [target],
        sha,
        Notifier(target),
        provider=github,
        sleep=time.sleep,
        clock=time.clock,
    )
    assert load_journal(target, sha)["verdict"] == verdict  # type: ignore[index]
    return verdict, github


def test_refused_connections_back_off(project: Project) -> None:
    verdict, github = watch_against(project, free_port())
    assert verdict == INCONCLUSIVE
    assert github.counters.requests == BACKED_OFF  # not 76: one per 2 s poll


def test_dropped_connections_back_off(project: Project, closer: Closer) -> None:
    verdict, github = watch_against(project, closer.port, closer)
    assert verdict == INCONCLUSIVE
    assert closer.accepted == github.counters.requests == BACKED_OFF
