"""Health requests made on the target host, for environments reached over SSH."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from cicd.commands import http
from cicd.health import Fetched, FetchError

if TYPE_CHECKING:
    from cicd.runner import Runner


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
