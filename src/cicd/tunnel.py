"""Reach an app that listens on a remote host's loopback, through the SSH connection.

Health checks are HTTP requests made here (with requests, or a local Chromium), but
over ``fab -H HOST`` the app listens on HOST's 127.0.0.1. Each loopback URL is
forwarded through the task's own SSH connection (no port opened on HOST) to a free
local port, and the checks are rewritten to use it. Public URLs are left as they are.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from cicd.health import HealthCheck
    from cicd.runner import Runner

LOOPBACK_NAMES = ("localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names the loopback interface."""
    return host in LOOPBACK_NAMES or host.startswith("127.")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def reachable(
    runner: Runner, checks: Sequence[HealthCheck]
) -> Iterator[tuple[HealthCheck, ...]]:
    """Yield ``checks`` rewritten so they reach the target host's loopback URLs.

    Locally the checks are returned unchanged.
    """
    if not runner.remote:
        yield tuple(checks)
        return
    with ExitStack() as stack:
        local: dict[tuple[str, int], int] = {}
        rewritten = []
        for check in checks:
            parts = urlsplit(check.url)
            host = parts.hostname or ""
            if not is_loopback(host):
                rewritten.append(check)
                continue
            port = parts.port or (443 if parts.scheme == "https" else 80)
            if (host, port) not in local:
                local[(host, port)] = _free_port()
                stack.enter_context(
                    runner.context.forward_local(  # type: ignore[attr-defined]
                        local[(host, port)],
                        remote_port=port,
                        remote_host=host,
                        local_host="127.0.0.1",
                    )
                )
            netloc = f"127.0.0.1:{local[(host, port)]}"
            rewritten.append(
                replace(check, url=urlunsplit(parts._replace(netloc=netloc)))
            )
        yield tuple(rewritten)
