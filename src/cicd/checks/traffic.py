"""A bounded background load on one loopback URL: what a switch costs its users.

The demo runs it across each deploy and rollback and prints how many requests were
sent and how many failed; the zero-downtime benchmark and tests count the same way.
Each worker keeps one HTTP/1.1 connection open (as a browser does) and opens a new
one after an error. Bounded in workers and in time; loopback only.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit

from cicd.core.errors import UsageError

#: What a server closing an idle keep-alive connection looks like to a client.
STALE = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
)
#: Loopback hosts the load may target (the network rule of the tests and demo).
LOOPBACK = ("127.", "localhost", "[::1]", "::1")


@dataclass
class Tally:
    """Requests sent and failed, and the longest run of failures in seconds."""

    sent: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    outage: float = 0.0

    def line(self) -> str:
        """``1234 requests, 0 failed`` (with the commonest errors, if any)."""
        text = f"{self.sent} requests, {self.failed} failed"
        if self.failed:
            common = sorted(self.errors.items(), key=lambda kv: -kv[1])[:2]
            text += " (" + ", ".join(f"{n}× {e}" for e, n in common) + ")"
            text += f", longest outage {self.outage:.2f}s"
        return text


class Load:
    """Send GET requests to ``url`` from ``workers`` threads until stopped.

    Args:
        url: A loopback URL (anything else is refused).
        workers: Concurrent connections.
        seconds: Upper bound on how long it runs, whatever happens.
        timeout: Per-request timeout.
        pause: Seconds each worker waits between requests (0: as fast as it can).
    """

    def __init__(
        self,
        url: str,
        *,
        workers: int = 8,
        seconds: float = 120.0,
        timeout: float = 5,
        pause: float = 0.0,
    ) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if not host.startswith(LOOPBACK) or parts.scheme != "http":
            raise UsageError(f"the load only targets loopback http URLs, not {url!r}")
        self.host, self.port = host, parts.port or 80
        self.path = parts.path or "/"
        self.workers = max(1, min(workers, 64))
        self.seconds = seconds
        self.timeout = timeout
        self.pause = pause
        self.tally = Tally()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._failing_since: float | None = None

    def __enter__(self) -> Load:
        self._deadline = time.monotonic() + self.seconds
        for _ in range(self.workers):
            thread = threading.Thread(target=self._work, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> Tally:
        """Stop the workers and return the tally."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 1)
        return self.tally

    def _count(self, error: str | None) -> None:
        now = time.monotonic()
        with self._lock:
            self.tally.sent += 1
            if error is None:
                if self._failing_since is not None:
                    self.tally.outage = max(
                        self.tally.outage, now - self._failing_since
                    )
                    self._failing_since = None
                return
            self.tally.failed += 1
            self.tally.errors[error] = self.tally.errors.get(error, 0) + 1
            if self._failing_since is None:
                self._failing_since = now

    def _work(self) -> None:
        conn: http.client.HTTPConnection | None = None
        reused = False
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            if conn is None:
                conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=self.timeout
                )
                reused = False
            try:
                conn.request("GET", self.path)
                response = conn.getresponse()
                response.read()
                ok = response.status < 500
                self._count(None if ok else f"HTTP {response.status}")
                reused = True
                if response.will_close:
                    conn.close()
                    conn = None
                if self.pause:
                    self._stop.wait(self.pause)
            except (OSError, http.client.HTTPException) as error:
                if reused and isinstance(error, STALE) and conn is not None:
                    # The server closed an idle keep-alive connection (a proxy's
                    # reload does): a GET is sent again on a new one, as browsers
                    # and urllib3 do (RFC 9112 9.3.1), not counted as failed.
                    conn.close()
                    conn = None
                    continue
                self._count(type(error).__name__)
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
        if conn is not None:
            conn.close()
