"""A scripted stand-in for the GitHub REST API, served by pytest-httpserver.

It answers the endpoints the watcher uses as GitHub does (their shapes are recorded
in ``tests/data/published_api.json`` from GitHub's published REST description):

- the runs of the CI workflow, several per sha (``push`` and ``pull_request`` runs,
  re-run attempts), filtered by ``head_sha``, ``event``, ``branch`` and ``status``,
  newest first, ``per_page`` (default 30, at most 100) to a page with a ``Link``
  header naming the next, previous, first and last pages;
- one run by id, and its jobs (each run its own; the latest attempt's, or all with
  ``filter=all``), paged the same way;
- an ETag on every answer, and a 304 only to a matching ``If-None-Match`` sent with a
  token (GitHub counts an unauthorized conditional request like any other);
- errors in GitHub's JSON shape (``{"message": ..., "documentation_url": ...}``):
  401 for a token it does not accept, 404 for an unknown run, 422 for a parameter
  out of its published range; 403s and others through :attr:`FakeGitHub.interceptor`
  and :func:`error`.

So tests can count the requests that would cost rate limit.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

REPOSITORY = "acme/mangetamain"
PUBLISHED = json.loads(
    (Path(__file__).parent / "data" / "published_api.json").read_text()
)["github"]
PAGINATION = PUBLISHED["pagination"]
DOCS = "https://docs.github.com/rest"


def error(status: int, message: str, **headers: str) -> Response:
    """An error answer in GitHub's JSON shape (``message``, ``documentation_url``)."""
    body = {"message": message, "documentation_url": DOCS, "status": str(status)}
    return Response(
        json.dumps(body), status, headers=headers, content_type="application/json"
    )


def secondary_rate_limit() -> Response:
    """GitHub's secondary rate limit: a bare 403, no ``retry-after``, requests left."""
    return error(
        403,
        "You have exceeded a secondary rate limit. Please wait a few minutes "
        "before you try again.",
        **{"x-ratelimit-remaining": "4999"},
    )


@dataclass
class FakeGitHub:
    """Workflow runs per sha, changed by the test while the watcher polls."""

    server: HTTPServer
    #: Every run, each in its latest attempt (as GitHub lists them).
    runs: list[dict[str, Any]] = field(default_factory=list)
    #: The jobs of a run without jobs of its own (see :meth:`set_jobs`).
    jobs: list[dict[str, Any]] = field(default_factory=list)
    #: Jobs per run id, each job with its ``run_attempt``.
    run_jobs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: int = 0
    not_modified: int = 0
    authorizations: set[str] = field(default_factory=set)
    #: Each request's path and query, in order.
    log: list[tuple[str, dict[str, str]]] = field(default_factory=list)
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
        event: str = "push",
        branch: str = "main",
    ) -> dict[str, Any]:
        """Set a run of ``sha`` (queued, in_progress, completed + conclusion).

        The run of the same sha, event and id is replaced (a new attempt of a
        re-run, or a run moving on); any other run of the sha is kept beside it.
        """
        url = f"/repos/{REPOSITORY}/actions/runs/{run_id}"
        run: dict[str, Any] = {
            "id": run_id,
            "name": "CI",
            "node_id": f"WFR_{run_id}",
            "head_sha": sha,
            "head_branch": branch,
            "path": ".github/workflows/ci.yml",
            "display_title": "CI",
            "event": event,
            "status": status,
            "conclusion": conclusion,
            "run_attempt": attempt,
            "workflow_id": 1,
            "url": self.server.url_for(url),
            "html_url": f"https://github.test/{REPOSITORY}/actions/runs/{run_id}",
            "jobs_url": self.server.url_for(f"{url}/jobs"),
            "logs_url": self.server.url_for(f"{url}/logs"),
            "cancel_url": self.server.url_for(f"{url}/cancel"),
            "rerun_url": self.server.url_for(f"{url}/rerun"),
            "artifacts_url": self.server.url_for(f"{url}/artifacts"),
            "check_suite_url": self.server.url_for(
                f"/repos/{REPOSITORY}/check-suites/1"
            ),
            "workflow_url": self.server.url_for(
                f"/repos/{REPOSITORY}/actions/workflows/1"
            ),
            "created_at": "2026-12-07T00:00:00Z",
            "updated_at": "2026-12-07T00:00:00Z",
            "pull_requests": [],
            "head_commit": None,
            "repository": {"full_name": REPOSITORY},
            "head_repository": {"full_name": REPOSITORY},
        }
        if number is not None:
            run["run_number"] = number
        with self.lock:
            self.runs[:] = [
                r
                for r in self.runs
                if (r["head_sha"], r["event"], r["id"]) != (sha, event, run_id)
            ]
            self.runs.append(run)
        return run

    def set_jobs(self, run_id: int, jobs: list[dict[str, Any]]) -> None:
        """Give one run its own jobs (``run_attempt`` 1 unless a job says)."""
        with self.lock:
            self.run_jobs[run_id] = [{"run_attempt": 1, **job} for job in jobs]

    @property
    def counted(self) -> int:
        """Requests that would count against GitHub's rate limit."""
        return self.requests - self.not_modified

    # -- answers ---------------------------------------------------------------

    def _answer(
        self, request: Request, make_body: Callable[[], dict[str, Any] | Response]
    ) -> Response:
        with self.lock:
            self.requests += 1
            authorization = request.headers.get("Authorization", "")
            self.authorizations.add(authorization)
            self.log.append((request.path, dict(request.args)))
        if self.tokens is not None:
            given = authorization.removeprefix("Bearer ")
            if given not in self.tokens:
                return error(401, "Bad credentials")
        if self.interceptor:
            special = self.interceptor(request)
            if special is not None:
                return special
        made = make_body()
        if isinstance(made, Response):
            return made
        link = made.pop("__link__", None)
        text = json.dumps(made, sort_keys=True)
        headers = {"ETag": '"' + hashlib.md5(text.encode()).hexdigest() + '"'}
        if link:
            headers["Link"] = link
        # GitHub answers 304 to a matching ETag; it is free only when authorized,
        # and this stand-in keeps 304s for authorized requests so a test sees the
        # difference in its request count.
        if request.headers.get("If-None-Match") == headers["ETag"] and authorization:
            with self.lock:
                self.not_modified += 1
            return Response(status=304, headers={"ETag": headers["ETag"]})
        return Response(text, 200, content_type="application/json", headers=headers)

    def _page(
        self, request: Request, items: list[dict[str, Any]], key: str
    ) -> dict[str, Any] | Response:
        """One page of ``items``, with ``Link`` when there are more pages."""
        try:
            per_page = int(request.args.get("per_page", PAGINATION["per_page_default"]))
            page = int(request.args.get("page", PAGINATION["page_default"]))
        except ValueError:
            return error(422, "Validation Failed")
        # GitHub serves at most 100 to a page whatever was asked.
        per_page = min(max(per_page, 1), PAGINATION["per_page_max"])
        page = max(page, 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        body: dict[str, Any] = {
            "total_count": len(items),
            key: items[(page - 1) * per_page : page * per_page],
        }
        links = []
        base = self.server.url_for(request.path)
        query = {k: v for k, v in request.args.items() if k != "page"}

        def at(number: int) -> str:
            return f"<{base}?{urlencode({**query, 'page': str(number)})}>"

        if page < last:
            links += [f'{at(page + 1)}; rel="next"', f'{at(last)}; rel="last"']
        if page > 1:
            links += [f'{at(1)}; rel="first"', f'{at(page - 1)}; rel="prev"']
        if links:
            body["__link__"] = ", ".join(links)
        return body

    def _runs(self, request: Request) -> Response:
        args = request.args
        status = args.get("status")
        if status and status not in PUBLISHED["workflow_run_status_filter"]:
            return self._answer(request, lambda: error(422, "Validation Failed"))

        def body() -> dict[str, Any] | Response:
            with self.lock:
                runs = [
                    r
                    for r in self.runs
                    if all(
                        not args.get(name) or str(r.get(key)) == args[name]
                        for name, key in (
                            ("head_sha", "head_sha"),
                            ("event", "event"),
                            ("branch", "head_branch"),
                        )
                    )
                    and (not status or status in (r["status"], r["conclusion"]))
                ]
            runs.sort(key=lambda r: (r.get("run_number") or 0, r["id"]), reverse=True)
            return self._page(request, runs, "workflow_runs")

        return self._answer(request, body)

    def _find(self, run_id: int) -> dict[str, Any] | None:
        with self.lock:
            found = [r for r in self.runs if r["id"] == run_id]
        return found[-1] if found else None

    def _run(self, request: Request) -> Response:
        run_id = int(request.path.rstrip("/").rsplit("/", 1)[1])

        def body() -> dict[str, Any] | Response:
            run = self._find(run_id)
            return run if run is not None else error(404, "Not Found")

        return self._answer(request, body)

    def _jobs(self, request: Request) -> Response:
        run_id = int(request.path.rstrip("/").split("/")[-2])
        which = request.args.get(
            "filter",
            PUBLISHED["endpoints"]["list_jobs_for_workflow_run"]["filter"]["default"],
        )

        def body() -> dict[str, Any] | Response:
            run = self._find(run_id)
            if run is None:
                return error(404, "Not Found")
            allowed = PUBLISHED["endpoints"]["list_jobs_for_workflow_run"]["filter"]
            if which not in allowed["enum"]:
                return error(422, "Validation Failed")
            with self.lock:
                own = self.run_jobs.get(run_id)
                jobs = list(own) if own is not None else list(self.jobs)
            if which == "latest" and own is not None:
                jobs = [j for j in jobs if j["run_attempt"] == run["run_attempt"]]
            return self._page(request, jobs, "jobs")

        return self._answer(request, body)
