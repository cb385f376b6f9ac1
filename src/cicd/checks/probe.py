"""Health requests made on the target host, for environments reached over SSH."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from cicd.commands import http
from cicd.checks.health import Fetched, FetchError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cicd.core.health_check import HealthCheck
    from cicd.transport.runner import Runner


class RemoteFetcher:
    """GET a URL from the target host, where the app's loopback address is.

    Args:
        runner: Runs commands on the host.
        python: The host's Python interpreter (stdlib only is used).
    """

    remote = True

    def __init__(self, runner: Runner, python: str) -> None:
        self.runner = runner
        self.python = python

    def read_ahead(self, checks: Sequence[HealthCheck], deadline: float) -> None:
        """Send the first readiness round's requests with the host's next command.

        A restart is then followed by its first probes in the same round trip;
        the round asks each with its own timeout (capped by a deadline that is
        larger in any sane configuration), so the lines match and are answered
        from what the runner kept.
        """
        self.runner.ahead(
            [
                http.probe(self.python, c.url, c.timeout)
                for c in checks
                if not c.rendered_contains and c.timeout < deadline
            ]
        )

    def fetch(self, url: str, timeout: float) -> Fetched:
        """GET ``url`` on the host; raise :class:`FetchError` when nothing answers."""
        result = self.runner.run(http.probe(self.python, url, timeout), check=False)
        try:
            answer = json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise FetchError(f"probe failed on {self.runner.host}: {detail}") from None
        if "error" in answer:
            raise FetchError(str(answer["error"]))
        return Fetched(
            int(answer["status"]), str(answer["body"]), float(answer["seconds"])
        )
