"""A scripted stand-in for the GitHub REST API, served by pytest-httpserver.

It answers the two endpoints the watcher uses with GitHub's JSON shapes, sets an
ETag on every answer and honours ``If-None-Match`` with a 304, so tests can count
the requests that would cost rate limit.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

REPOSITORY = "acme/mangetamain"


@dataclass
class FakeGitHub:
    """Workflow runs per sha, changed by the test while the watcher polls."""

    server: HTTPServer
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    not_modified: int = 0
    authorizations: set[str] = field(default_factory=set)
    #: Called before answering; may return a Response to send instead.
    interceptor: Callable[[Request], Response | None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> None:
        """Register the handlers on the server."""
        base = f"/repos/{REPOSITORY}/actions"
        self.server.expect_request(
            f"{base}/workflows/ci.yml/runs"
        ).respond_with_handler(self._runs)
        self.server.expect_request(f"{base}/runs/1/jobs").respond_with_handler(
            self._jobs
        )

    @property
    def api_url(self) -> str:
        """The API base URL to configure."""
        return self.server.url_for("").rstrip("/")

    def set_run(
        self, sha: str, status: str, conclusion: str | None = None, attempt: int = 1
    ) -> None:
        """Set the run of ``sha`` (queued, in_progress, completed + conclusion)."""
        with self.lock:
            self.runs[sha] = {
                "id": 1,
                "name": "CI",
                "head_sha": sha,
                "status": status,
                "conclusion": conclusion,
                "run_number": 7,
                "run_attempt": attempt,
                "html_url": f"https://github.test/{REPOSITORY}/actions/runs/1",
                "jobs_url": self.server.url_for(
                    f"/repos/{REPOSITORY}/actions/runs/1/jobs"
                ),
            }

    def _answer(
        self, request: Request, make_body: Callable[[], dict[str, Any]]
    ) -> Response:
        with self.lock:
            self.requests += 1
            self.authorizations.add(request.headers.get("Authorization", ""))
        if self.interceptor:
            special = self.interceptor(request)
            if special is not None:
                return special
        text = json.dumps(make_body(), sort_keys=True)
        etag = '"' + hashlib.md5(text.encode()).hexdigest() + '"'
        if request.headers.get("If-None-Match") == etag:
            with self.lock:
                self.not_modified += 1
            return Response(status=304, headers={"ETag": etag})
        return Response(
            text, 200, content_type="application/json", headers={"ETag": etag}
        )

    def _runs(self, request: Request) -> Response:
        sha = request.args.get("head_sha", "")

        def body() -> dict[str, Any]:
            with self.lock:
                runs = [self.runs[sha]] if sha in self.runs else []
            return {"total_count": len(runs), "workflow_runs": runs}

        return self._answer(request, body)

    def _jobs(self, request: Request) -> Response:
        return self._answer(
            request, lambda: {"total_count": len(self.jobs), "jobs": self.jobs}
        )

    @property
    def counted(self) -> int:
        """Requests that would count against GitHub's rate limit."""
        return self.requests - self.not_modified
