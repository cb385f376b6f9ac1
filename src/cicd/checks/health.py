"""HTTP health checks and readiness polling, in the manner of Gatus and Kamal.

A :class:`HealthCheck` is a condition on one URL: expected status, text the body must
contain, a JSON field's value, a maximum response time. :func:`wait_ready` polls every
``interval`` seconds until ``successes`` consecutive rounds pass or the deadline
expires: no fixed sleeps, so a fast app is declared ready as soon as it is.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.client import HTTPConnection
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin, urlsplit

from cicd.commands.http import BODY_LIMIT
from cicd.core.health_check import HealthCheck

if TYPE_CHECKING:
    from cicd.checks.browser import Browser

#: The first pause between readiness rounds; it doubles up to the interval.
FIRST_INTERVAL = 0.05


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    check: HealthCheck
    ok: bool
    reason: str
    seconds: float
    status: int | None = None
    note: str = ""
    #: The failure will not go away by waiting (the app shows an exception).
    fatal: bool = False


@dataclass(frozen=True)
class Readiness:
    """The outcome of polling until ready or out of time."""

    ok: bool
    attempts: int
    seconds: float
    last: tuple[CheckResult, ...]

    @property
    def reason(self) -> str:
        """Why the last round failed (or ``ok``)."""
        failed = [r for r in self.last if not r.ok]
        if not failed:
            return "ok"
        return "; ".join(f"{r.check.url}: {r.reason}" for r in failed)


@dataclass(frozen=True)
class Fetched:
    """An HTTP answer: status, body text and how long it took."""

    status_code: int
    text: str
    seconds: float

    def json(self) -> Any:
        """The body parsed as JSON (raises ValueError when it is not)."""
        return json.loads(self.text)


class FetchError(Exception):
    """No HTTP answer at all; the message says why in a few words."""


class Fetcher(Protocol):
    """Gets a URL: from here, or from the target host over SSH."""

    remote: bool

    def fetch(self, url: str, timeout: float) -> Fetched:
        """GET ``url``; raise :class:`FetchError` when nothing answers."""


#: Redirects followed, as requests and browsers do, and how many at most.
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
#: What reusing a kept-alive connection the server has closed looks like.
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class LocalFetcher:
    """GET from this machine with the standard library, connections kept open.

    The standard library's ``http.client`` costs ~10 ms to import where requests
    costs ~140 ms, and every deploy makes these requests. Redirects are followed
    (as a browser and requests would), proxies from the environment are not
    (a loopback check must reach the app), and the errors are said in the words of
    the remote probe (:mod:`cicd.commands.http`).
    """

    remote = False

    def __init__(self) -> None:
        self._open: dict[tuple[str, str, int], http.client.HTTPConnection] = {}

    def fetch(self, url: str, timeout: float) -> Fetched:
        """GET ``url``; raise :class:`FetchError` when nothing answers."""
        started = time.monotonic()
        for _ in range(MAX_REDIRECTS + 1):
            status, location, text = self._get(url, timeout)
            if status in REDIRECTS and location:
                url = urljoin(url, location)
                continue
            break
        return Fetched(status, text, time.monotonic() - started)

    def _get(self, url: str, timeout: float) -> tuple[int, str, str]:
        """One GET: status, ``Location`` and body text."""
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        key = (parts.scheme, parts.hostname or "", port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = self._open.get(key)
        reused = conn is not None
        if conn is None:
            factory = http.client.HTTPSConnection if secure else HTTPConnection
            conn = self._open[key] = factory(key[1], port, timeout=timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        try:
            conn.request("GET", path, headers={"User-Agent": "cicd-health/1"})
            answer = conn.getresponse()
            body = answer.read()
            if answer.will_close:
                self._close(key)
        except STALE:
            self._close(key)
            if reused:  # the server closed an idle kept-alive connection
                return self._get(url, timeout)
            raise FetchError("cannot connect") from None
        except ConnectionRefusedError:
            self._close(key)
            raise FetchError("connection refused") from None
        except TimeoutError:
            self._close(key)
            raise FetchError("timed out") from None
        except (OSError, http.client.HTTPException):
            self._close(key)
            raise FetchError("cannot connect") from None
        charset = answer.headers.get_content_charset() or "utf-8"
        text = body[:BODY_LIMIT].decode(charset, "replace")
        return answer.status, answer.getheader("Location", ""), text

    def _close(self, key: tuple[str, str, int]) -> None:
        conn = self._open.pop(key, None)
        if conn is not None:
            conn.close()


def run_check(
    check: HealthCheck,
    *,
    fetcher: Fetcher | None = None,
    timeout: float | None = None,
    browser: Browser | None = None,
) -> CheckResult:
    """Run one check once.

    Args:
        check: The condition.
        fetcher: Who makes the request (default: this machine).
        timeout: Override of the per-request timeout (e.g. the time left).
        browser: The Chromium a rendered-page condition uses (default: one
            started for it).

    Returns:
        The result; never raises for network errors, which are failures.
    """
    fetcher = fetcher or LocalFetcher()
    if check.rendered_contains:
        if fetcher.remote:
            return CheckResult(check, True, "skipped", 0.0, note=REMOTE_RENDER_NOTE)
        from cicd.checks.browser import render

        judge = browser.render if browser is not None else render
        seen = judge(check.url, check.rendered_contains, timeout or check.timeout)
        return CheckResult(
            check, seen.ok, seen.reason, seen.seconds, fatal=seen.fatal, note=seen.note
        )
    started = time.monotonic()
    try:
        response = fetcher.fetch(check.url, timeout or check.timeout)
    except FetchError as error:
        return CheckResult(check, False, str(error), time.monotonic() - started)
    problem = _evaluate(check, response, response.seconds)
    return CheckResult(
        check, problem is None, problem or "ok", response.seconds, response.status_code
    )


REMOTE_RENDER_NOTE = (
    "rendered-page check skipped over SSH: Chromium runs here, the app listens on "
    "the host (the hourly monitor can check a public URL)"
)


def _evaluate(check: HealthCheck, response: Any, seconds: float) -> str | None:
    if response.status_code != check.status:
        return f"status {response.status_code}, expected {check.status}"
    if check.body_contains and check.body_contains not in response.text:
        return f"body does not contain {check.body_contains!r}"
    if check.json_field:
        name, _, expected = check.json_field.partition("=")
        try:
            value: Any = response.json()
            for part in name.split("."):
                value = value[part]
        except (ValueError, KeyError, TypeError, IndexError):
            return f"JSON field {name!r} missing"
        # Compare as JSON spells it: true, false, null, 3.5, text.
        shown = (
            json.dumps(value) if isinstance(value, (bool, type(None))) else str(value)
        )
        if expected and shown != expected:
            return f"JSON field {name!r} is {value!r}, expected {expected!r}"
    if check.max_response_time and seconds > check.max_response_time:
        return f"answered in {seconds:.2f}s, slower than {check.max_response_time:g}s"
    return None


def run_round(
    checks: Sequence[HealthCheck],
    fetcher: Fetcher | None,
    left: float,
    browser: Browser | None = None,
) -> tuple[CheckResult, ...]:
    """Run checks in order, stopping at the first failure (a browser is costly).

    Args:
        checks: The conditions, cheapest first.
        fetcher: Who makes the requests (default: this machine).
        left: Seconds left: caps each HTTP request's timeout.
        browser: The Chromium of rendered-page conditions, if started ahead.
    """
    fetcher = fetcher or LocalFetcher()
    results: list[CheckResult] = []
    for check in checks:
        timeout = min(check.timeout, left)
        results.append(
            run_check(check, fetcher=fetcher, timeout=timeout, browser=browser)
        )
        if not results[-1].ok:
            break
    return tuple(results)


def wait_ready(
    checks: Sequence[HealthCheck],
    *,
    deadline: float,
    interval: float = 0.5,
    successes: int = 1,
    on_attempt: Callable[[int, tuple[CheckResult, ...]], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    fetcher: Fetcher | None = None,
) -> Readiness:
    """Poll the checks until ``successes`` consecutive rounds pass, or time runs out.

    Args:
        checks: Conditions that must all pass in a round.
        deadline: Seconds from now after which readiness has failed.
        interval: Longest pause between the starts of two rounds (the first
            pauses are shorter: 0.05 s, doubling up to it).
        successes: Consecutive passing rounds required.
        on_attempt: Called after each round with its number and results.
        clock: Monotonic clock (tests may inject one).
        sleep: Sleep function (tests may inject one).
        fetcher: Who makes the requests (default: this machine).

    Returns:
        Whether the app became ready, after how many rounds and seconds.
    """
    fetcher = fetcher or LocalFetcher()
    browser = _browser_for(checks, fetcher)
    try:
        return _poll(
            checks,
            fetcher,
            browser,
            deadline,
            interval,
            successes,
            on_attempt,
            clock,
            sleep,
        )
    finally:
        if browser is not None:
            browser.close()


def _browser_for(checks: Sequence[HealthCheck], fetcher: Fetcher) -> Browser | None:
    """A Chromium started now when a condition needs one (it boots with the app)."""
    if fetcher.remote or not any(c.rendered_contains for c in checks):
        return None
    from cicd.checks.browser import Browser, find_chromium

    return Browser() if find_chromium() is not None else None


def _poll(
    checks: Sequence[HealthCheck],
    fetcher: Fetcher,
    browser: Browser | None,
    deadline: float,
    interval: float,
    successes: int,
    on_attempt: Callable[[int, tuple[CheckResult, ...]], None] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> Readiness:
    start = clock()
    end = start + deadline
    streak = 0
    attempt = 0
    results: tuple[CheckResult, ...] = ()
    while True:
        attempt += 1
        round_start = clock()
        left = max(end - round_start, 0.05)
        results = run_round(checks, fetcher, left, browser)
        if on_attempt:
            on_attempt(attempt, results)
        streak = streak + 1 if all(r.ok for r in results) else 0
        if streak >= successes:
            return Readiness(True, attempt, clock() - start, results)
        if any(r.fatal for r in results):
            return Readiness(False, attempt, clock() - start, results)
        # Start fast (an app that boots in 150 ms is seen then), back off to
        # ``interval`` so a slow boot is not hammered.
        step = min(interval, FIRST_INTERVAL * 2 ** (attempt - 1))
        pause = step - (clock() - round_start)
        if clock() + max(pause, 0) >= end:
            return Readiness(False, attempt, clock() - start, results)
        if pause > 0:
            sleep(pause)
