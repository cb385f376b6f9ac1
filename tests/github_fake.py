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

It also serves the Deployments and commit Statuses endpoints the pipeline writes to
(:mod:`cicd.reporting.github_deployments`), with GitHub's shapes: ``POST
.../deployments`` (201 and
the deployment with its ``id``), ``POST .../deployments/{id}/statuses`` (``state``
among the published seven, ``description`` at most 140 characters) and ``POST
.../statuses/{sha}`` (``error``, ``failure``, ``pending`` or ``success``, with a
``context``); 422 in GitHub's validation-error shape on bad input, 404 for an
unknown deployment. Those requests are counted apart (:attr:`FakeGitHub.story`,
:attr:`FakeGitHub.writes`), so the watcher's counts are unchanged, and have their
own :attr:`FakeGitHub.write_interceptor` (a GitHub down for writes only).
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
    #: Deployments created, in order, each with its statuses (oldest first).
    deployments: list[dict[str, Any]] = field(default_factory=list)
    #: Commit statuses created, in order.
    commit_statuses: list[dict[str, Any]] = field(default_factory=list)
    #: Every accepted write, in order, as one line each (the Environments story).
    story: list[str] = field(default_factory=list)
    #: Write requests received (accepted or not).
    writes: int = 0
    #: Like :attr:`interceptor`, for the Deployments and Statuses endpoints only.
    write_interceptor: Callable[[Request], Response | None] | None = None

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
        repo = f"/repos/{REPOSITORY}"
        self.server.expect_request(
            f"{repo}/deployments", method="POST"
        ).respond_with_handler(self._create_deployment)
        self.server.expect_request(
            re.compile(rf"{re.escape(repo)}/deployments/\d+/statuses"),
            method="POST",
        ).respond_with_handler(self._deployment_status)
        self.server.expect_request(
            re.compile(rf"{re.escape(repo)}/statuses/[0-9a-f]{{40}}"), method="POST"
        ).respond_with_handler(self._commit_status)

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

    def _create_deployment(self, request: Request) -> Response:
        return create_deployment(self, request)

    def _deployment_status(self, request: Request) -> Response:
        return deployment_status(self, request)

    def _commit_status(self, request: Request) -> Response:
        return commit_status(self, request)

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


# -- Deployments and Statuses ---------------------------------------------------

DEPLOYMENTS = PUBLISHED["writes"]["create_deployment"]
DEPLOYMENT_STATUSES = PUBLISHED["writes"]["create_deployment_status"]
COMMIT_STATUSES = PUBLISHED["writes"]["create_commit_status"]


def invalid(field_name: str, code: str = "invalid") -> Response:
    """GitHub's 422 validation error naming the field at fault."""
    body = {
        "message": "Validation Failed",
        "errors": [{"resource": "Status", "field": field_name, "code": code}],
        "documentation_url": DOCS,
        "status": "422",
    }
    return Response(json.dumps(body), 422, content_type="application/json")


def _write(
    fake: FakeGitHub, request: Request, make: Callable[[dict[str, Any]], Response]
) -> Response:
    with fake.lock:
        fake.writes += 1
    if fake.tokens is not None:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if given not in fake.tokens:
            return error(401, "Bad credentials")
    if fake.write_interceptor:
        special = fake.write_interceptor(request)
        if special is not None:
            return special
    try:
        body = json.loads(request.get_data(as_text=True) or "null")
    except ValueError:
        return error(400, "Problems parsing JSON")
    if not isinstance(body, dict):
        return error(400, "Problems parsing JSON")
    # A parameter GitHub does not publish for the endpoint is a client's error.
    unknown = set(body) - set(_bodies(request.path))
    if unknown:
        return invalid(sorted(unknown)[0], "unexpected")
    return make(body)


def _bodies(path: str) -> list[str]:
    if path.endswith("/deployments"):
        return list(DEPLOYMENTS["body"])
    if "/deployments/" in path:
        return list(DEPLOYMENT_STATUSES["body"])
    return list(COMMIT_STATUSES["body"])


def _created(value: dict[str, Any]) -> Response:
    return Response(json.dumps(value), 201, content_type="application/json")


def create_deployment(self: FakeGitHub, request: Request) -> Response:
    def make(body: dict[str, Any]) -> Response:
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref:
            return invalid("ref", "missing_field")
        contexts = body.get("required_contexts", [])
        if not isinstance(contexts, list) or contexts:
            # Any context named must have passed on GitHub: none do here.
            return error(409, "Conflict: Commit status checks failed for main.")
        if body.get("auto_merge", True) is not False:
            return error(409, "Conflict merging main into " + ref)
        environment = body.get("environment", "production")
        with self.lock:
            ident = 1000 + len(self.deployments)
            deployment = {
                "id": ident,
                "node_id": f"DE_{ident}",
                "url": self.server.url_for(f"/repos/{REPOSITORY}/deployments/{ident}"),
                "sha": ref,
                "ref": ref,
                "task": body.get("task", "deploy"),
                "payload": {},
                "original_environment": environment,
                "environment": environment,
                "description": body.get("description"),
                "creator": {"login": "github-actions[bot]"},
                "created_at": "2026-12-07T00:00:00Z",
                "updated_at": "2026-12-07T00:00:00Z",
                "statuses_url": self.server.url_for(
                    f"/repos/{REPOSITORY}/deployments/{ident}/statuses"
                ),
                "repository_url": self.server.url_for(f"/repos/{REPOSITORY}"),
                "transient_environment": bool(body.get("transient_environment")),
                "production_environment": bool(
                    body.get("production_environment", environment == "production")
                ),
                "statuses": [],
            }
            self.deployments.append(deployment)
            self.story.append(
                f"deployment {ident} {environment} {ref[:7]} {deployment['task']}"
            )
        shown = {k: v for k, v in deployment.items() if k != "statuses"}
        return _created(shown)

    return _write(self, request, make)


def deployment_status(self: FakeGitHub, request: Request) -> Response:
    ident = int(request.path.rstrip("/").split("/")[-2])

    def make(body: dict[str, Any]) -> Response:
        with self.lock:
            found = [d for d in self.deployments if d["id"] == ident]
        if not found:
            return error(404, "Not Found")
        deployment = found[0]
        state = body.get("state")
        if state not in DEPLOYMENT_STATUSES["state"]:
            return invalid("state")
        description = body.get("description", "")
        if len(str(description)) > DEPLOYMENT_STATUSES["description_max"]:
            return invalid("description")
        status = {
            "id": 5000 + sum(len(d["statuses"]) for d in self.deployments),
            "state": state,
            "description": description,
            "environment": deployment["environment"],
            "environment_url": body.get("environment_url", ""),
            "log_url": body.get("log_url", ""),
            "deployment_url": deployment["url"],
        }
        with self.lock:
            deployment["statuses"].append(status)
            self.story.append(
                f"deployment {ident} {deployment['environment']} "
                f"{deployment['sha'][:7]} {state}: {description}"
            )
            if state == "success" and body.get("auto_inactive", True):
                # GitHub's auto_inactive: the older successful deployments of
                # the environment go inactive, in non-production ones only.
                for older in self.deployments:
                    last = older["statuses"][-1]["state"] if older["statuses"] else ""
                    if (
                        older is not deployment
                        and older["environment"] == deployment["environment"]
                        and not older["production_environment"]
                        and not older["transient_environment"]
                        and last == "success"
                    ):
                        older["statuses"].append(
                            {"state": "inactive", "description": "by GitHub"}
                        )
                        self.story.append(
                            f"deployment {older['id']} {older['environment']} "
                            f"{older['sha'][:7]} inactive (auto_inactive)"
                        )
        return _created(status)

    return _write(self, request, make)


def commit_status(self: FakeGitHub, request: Request) -> Response:
    sha = request.path.rstrip("/").rsplit("/", 1)[1]

    def make(body: dict[str, Any]) -> Response:
        state = body.get("state")
        if state not in COMMIT_STATUSES["state"]:
            return invalid("state")
        context = body.get("context", "default")
        with self.lock:
            status = {
                "id": 9000 + len(self.commit_statuses),
                "sha": sha,
                "state": state,
                "context": context,
                "description": body.get("description"),
                "target_url": body.get("target_url"),
            }
            self.commit_statuses.append(status)
            self.story.append(
                f"status {sha[:7]} {context} {state}: {body.get('description')}"
            )
        return _created(status)

    return _write(self, request, make)
