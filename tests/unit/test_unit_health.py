"""Unit tests of :mod:`cicd.checks.health` against a real HTTP server on 127.0.0.1.

pytest-httpserver stands in for the app (and raw sockets for a server that hangs
or hangs up); nothing is mocked below the standard library's HTTP client.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import threading

from cicd.checks.health import (
    CheckResult,
    FetchError,
    HealthCheck,
    LocalFetcher,
    run_check,
    wait_ready,
)


def closed_port() -> int:
    """Return a loopback port that nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(*statuses: int) -> Callable[[Request], Response]:
    """Return a handler answering ``statuses`` in turn, then the last one forever."""
    served: list[int] = []

    def handler(request: Request) -> Response:
        status = statuses[min(len(served), len(statuses) - 1)]
        served.append(status)
        return Response("ok" if status == 200 else "starting", status=status)

    return handler


def check(
    httpserver: HTTPServer, path: str = "/health", **kwargs: object
) -> HealthCheck:
    """Build a check of ``path`` on the test server."""
    return HealthCheck(url=httpserver.url_for(path), **kwargs)  # type: ignore[arg-type]


# -- run_check --------------------------------------------------------------


def test_status_and_body_pass(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health").respond_with_data("all ok")

    result = run_check(check(httpserver, body_contains="ok"))

    assert (result.ok, result.reason, result.status) == (True, "ok", 200)
    assert result.seconds >= 0


def test_status_mismatch(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health").respond_with_data("down", status=503)

    result = run_check(check(httpserver))

    assert not result.ok
    assert result.status == 503
    assert result.reason == "status 503, expected 200"


def test_expected_non_200_status(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health").respond_with_data("", status=204)

    assert run_check(check(httpserver, status=204)).ok


def test_body_contains_fails(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health").respond_with_data("starting")

    result = run_check(check(httpserver, body_contains="ok"))

    assert not result.ok
    assert result.reason == "body does not contain 'ok'"


def test_json_field_dotted_path(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health").respond_with_json({"checks": {"db": "ok"}})

    assert run_check(check(httpserver, json_field="checks.db=ok")).ok
    assert run_check(check(httpserver, json_field="checks.db")).ok


def test_json_field_value_mismatch(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health").respond_with_json({"checks": {"db": "down"}})

    result = run_check(check(httpserver, json_field="checks.db=ok"))

    assert not result.ok
    assert result.reason == "JSON field 'checks.db' is 'down', expected 'ok'"


def test_json_field_missing(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health").respond_with_json({"checks": {}})

    result = run_check(check(httpserver, json_field="checks.db=ok"))

    assert not result.ok
    assert "'checks.db'" in result.reason and "missing" in result.reason


def test_json_field_on_a_non_json_body(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health").respond_with_data("<html>ok</html>")

    result = run_check(check(httpserver, json_field="status=ok"))

    assert not result.ok
    assert "'status'" in result.reason


def test_json_field_boolean_compares_as_json(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health").respond_with_json({"healthy": True})

    result = run_check(check(httpserver, json_field="healthy=true"))

    assert result.ok, result.reason


def test_max_response_time_exceeded(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.3)
        return Response("ok")

    httpserver.expect_request("/health").respond_with_handler(slow)

    result = run_check(check(httpserver, max_response_time=0.1))

    assert not result.ok
    assert result.status == 200
    assert "slower than 0.1s" in result.reason
    assert result.seconds >= 0.3


def test_connection_refused_is_a_failed_result() -> None:
    url = f"http://127.0.0.1:{closed_port()}/health"

    result = run_check(HealthCheck(url=url, timeout=2))

    assert isinstance(result, CheckResult)
    assert not result.ok
    assert result.status is None
    assert "refused" in result.reason.lower() or "connect" in result.reason.lower()


def test_redirects_are_followed_and_the_charset_is_read(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/old").respond_with_data(
        "", status=302, headers={"Location": "/health?x=1"}
    )
    httpserver.expect_request("/health", query_string="x=1").respond_with_data(
        "caf\xe9 ok".encode("latin-1"), content_type="text/plain; charset=latin-1"
    )
    fetched = LocalFetcher().fetch(httpserver.url_for("/old"), 5)
    assert (fetched.status_code, fetched.text) == (200, "caf\xe9 ok")


def test_a_connection_kept_alive_is_reused_and_reopened_once_closed() -> None:
    """A server that answers one request per connection, keep-alive promised."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    accepted: list[int] = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = server.accept()
            accepted.append(1)
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            time.sleep(0.05)
            conn.close()  # closes the kept-alive connection behind the client

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    fetcher = LocalFetcher()
    url = f"http://127.0.0.1:{port}/"
    assert fetcher.fetch(url, 5).text == "ok"
    time.sleep(0.2)
    assert fetcher.fetch(url, 5).text == "ok"  # stale: reopened, not an error
    thread.join(5)
    server.close()
    assert len(accepted) == 2


def test_a_server_that_hangs_or_hangs_up_is_said_in_a_few_words() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/"
    with pytest.raises(FetchError, match="^timed out$"):
        LocalFetcher().fetch(url, 0.2)  # accepted by the backlog, never answered

    server.close()
    server = socket.socket()  # this one reads the request and hangs up
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/"

    def hang_up() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    with pytest.raises(FetchError, match="^cannot connect$"):
        LocalFetcher().fetch(url, 5)
    thread.join(5)
    server.close()


def test_describe() -> None:
    full = HealthCheck(
        url="http://127.0.0.1:8500/h",
        status=204,
        body_contains="ok",
        json_field="db=ok",
        max_response_time=0.5,
    )

    assert HealthCheck(url="http://h/").describe() == "GET http://h/ (status 200)"
    assert full.describe() == (
        "GET http://127.0.0.1:8500/h (status 204, body contains 'ok', json db=ok,"
        " under 0.5s)"
    )


# -- wait_ready -------------------------------------------------------------


def test_wait_ready_returns_as_soon_as_the_app_answers(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health").respond_with_handler(answers(503, 503, 200))
    rounds: list[int] = []

    ready = wait_ready(
        [check(httpserver)],
        deadline=5,
        interval=0.05,
        on_attempt=lambda attempt, results: rounds.append(attempt),
    )

    assert ready.ok
    assert ready.attempts == 3
    assert ready.reason == "ok"
    assert rounds == [1, 2, 3]
    assert len(httpserver.log) == 3
    assert ready.seconds < 2


def test_wait_ready_needs_consecutive_successes(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health").respond_with_handler(
        answers(200, 503, 200, 200)
    )

    ready = wait_ready([check(httpserver)], deadline=5, interval=0.05, successes=2)

    assert ready.ok
    assert ready.attempts == 4


def test_wait_ready_checks_every_condition_each_round(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data("ok")
    httpserver.expect_request("/b").respond_with_handler(answers(500, 200))

    ready = wait_ready(
        [check(httpserver, "/a"), check(httpserver, "/b")], deadline=5, interval=0.05
    )

    assert ready.ok
    assert ready.attempts == 2


def test_wait_ready_times_out_with_a_reason(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health").respond_with_data("starting", status=503)
    started = time.monotonic()

    ready = wait_ready([check(httpserver)], deadline=1, interval=0.1)

    elapsed = time.monotonic() - started
    assert not ready.ok
    assert ready.attempts >= 5
    assert 0.8 <= elapsed < 1.5
    assert ready.reason == f"{httpserver.url_for('/health')}: status 503, expected 200"


@pytest.mark.parametrize("successes", [1, 3])
def test_wait_ready_with_injected_clock_never_sleeps_past_the_deadline(
    httpserver: HTTPServer, successes: int
) -> None:
    httpserver.expect_request("/health").respond_with_data("down", status=500)
    now = [100.0]
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        now[0] += seconds

    ready = wait_ready(
        [check(httpserver)],
        deadline=2,
        interval=0.5,
        successes=successes,
        clock=lambda: now[0],
        sleep=sleep,
    )

    assert not ready.ok
    # Fast first rounds, then every ``interval``; never past the deadline.
    assert naps == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    assert ready.attempts == 7
    assert sum(naps) <= 2
