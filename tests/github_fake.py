"""A scripted stand-in for the GitHub REST API, served by pytest-httpserver.

It answers the two endpoints the watcher uses with GitHub's JSON shapes, sets an
ETag on every answer and honours ``If-None-Match`` with a 304, so tests can count
the requests that would cost rate limit.
"""

from __future__ import annotations

import hashlib
import json
import re
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
    #: When set, only ``Bearer TOKEN`` for a token in it is accepted (else 401), as
    #: GitHub does with a job's token once its job has ended.
    tokens: set[str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> None:
        """Register the handlers on the server."""
        base = f"/repos/{REPOSITORY}/actions"
        self.server.expect_request(
            f"{base}/workflows/ci.yml/runs"
        ).respond_with_handler(self._runs)
        self.server.expect_request(
            re.compile(rf"{re.escape(base)}/runs/\d+/jobs")
        ).respond_with_handler(self._jobs)
        self.server.expect_request(
            re.compile(rf"{re.escape(base)}/runs/\d+")
        ).respond_with_handler(self._run)

    @property
    def api_url(self) -> str:
        """The API base URL to configure."""
        return self.server.url_for("").rstrip("/")

    def set_run(
        self,
        sha: str,
        status: str,
        conclusion: str | None = None,
        attempt: int = 1,
        *,
        run_id: int = 1,
        number: int | None = 7,
    ) -> dict[str, Any]:
        """Set the run of ``sha`` (queued, in_progress, completed + conclusion)."""
        run: dict[str, Any] = {
            "id": run_id,
            "name": "CI",
            "head_sha": sha,
            "head_branch": "main",
            "event": "push",
            "status": status,
            "conclusion": conclusion,
            "run_attempt": attempt,
            "html_url": f"https://github.test/{REPOSITORY}/actions/runs/{run_id}",
            "jobs_url": self.server.url_for(
                f"/repos/{REPOSITORY}/actions/runs/{run_id}/jobs"
            ),
        }
        if number is not None:
            run["run_number"] = number
        with self.lock:
            self.runs[sha] = run
        return run

    def _answer(
        self, request: Request, make_body: Callable[[], dict[str, Any]]
    ) -> Response:
        with self.lock:
            self.requests += 1
            self.authorizations.add(request.headers.get("Authorization", ""))
        if self.tokens is not None:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if given not in self.tokens:
                message = {"message": "Bad credentials", "status": "401"}
                return Response(
                    json.dumps(message), 401, content_type="application/json"
                )
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
        branch = request.args.get("branch", "")

        def body() -> dict[str, Any]:
            with self.lock:
                if sha:
                    runs = [self.runs[sha]] if sha in self.runs else []
                else:
                    runs = sorted(
                        (
                            r
                            for r in self.runs.values()
                            if not branch or r["head_branch"] == branch
                        ),
                        key=lambda r: int(r["id"]),
                        reverse=True,
                    )
            return {"total_count": len(runs), "workflow_runs": runs}

        return self._answer(request, body)

    def _run(self, request: Request) -> Response:
        run_id = int(request.path.rstrip("/").rsplit("/", 1)[1])

        def body() -> dict[str, Any]:
            with self.lock:
                found = [r for r in self.runs.values() if r["id"] == run_id]
            return found[0] if found else {}

        with self.lock:
            known = any(r["id"] == run_id for r in self.runs.values())
        if not known:
            return Response('{"message": "Not Found"}', 404)
        return self._answer(request, body)

    def _jobs(self, request: Request) -> Response:
        return self._answer(
            request, lambda: {"total_count": len(self.jobs), "jobs": self.jobs}
        )

    @property
    def counted(self) -> int:
        """Requests that would count against GitHub's rate limit."""
        return self.requests - self.not_modified
