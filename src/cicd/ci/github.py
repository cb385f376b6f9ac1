"""GitHub Actions as the CI provider, through the REST API with requests.

Polls the ``push`` runs of the head sha, scoped to the CI workflow file: the runs the
``ci-verdict`` workflow acts on, so the two never disagree (a ``pull_request`` run of
the same sha is not the deploy's CI). Lists are read 100 to a page and followed through
the ``Link`` header, never assumed to fit one page nor to come newest first. Each poll
carries ``If-None-Match`` with the last ETag, so an unchanged answer is a 304, which
GitHub does not count against the rate limit when the request is authorized (without a
token it counts like any other). Rate limits (``x-ratelimit-remaining: 0`` with
``x-ratelimit-reset``, or ``retry-after``) are honoured; a bare 403 (GitHub's secondary
rate limit sends no header) waits at least a minute; 5xx answers and refused or dropped
connections back off (1 s, 2, 4... up to 30 s between polls). The token is sent only in
the ``Authorization`` header and never printed.

The token is ``CICD_GITHUB_TOKEN`` when set (long-lived, for the detached watcher),
else ``GITHUB_TOKEN``. A job's ``GITHUB_TOKEN`` expires when its job ends, so a
watcher that outlives the job gets 401s: it says so in one line, and the verdict
arrives through the ``workflow_run`` job (:meth:`GitHubProvider.run`) instead.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cicd.ci import (
    FAILED_CONCLUSIONS,
    FAILURE,
    INCONCLUSIVE,
    PENDING,
    SUCCESS,
    SUPERSEDED,
    Poll,
)
from cicd.ci.github_api import (
    DEFAULT_API,
    find_access,
    github_session,
    json_object,
    said,
)
from cicd.core.redact import redact

if TYPE_CHECKING:
    import requests

EXPIRED = (
    "GitHub refused the token (401): a job's GITHUB_TOKEN expires when its job ends; "
    "set CICD_GITHUB_TOKEN (a fine-grained token with actions:read) for the watcher, "
    "or let the ci-verdict workflow decide"
)
#: The most GitHub serves per page (``per_page``'s maximum).
PER_PAGE = "100"
#: Pages followed at most per list, so a runaway ``Link`` chain cannot loop forever.
MAX_PAGES = 10
#: The event whose runs decide, as in ``ci-verdict.yml`` (``workflow_run.event``).
EVENT = "push"
#: GitHub asks for at least a minute's wait after a secondary rate limit.
SECONDARY_WAIT = 60.0
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


@dataclass
class Counters:
    """What the provider cost: requests sent and those that counted."""

    requests: int = 0
    not_modified: int = 0
    errors: int = 0

    @property
    def counted(self) -> int:
        """Requests counted against the rate limit (authorized 304 answers are free)."""
        return self.requests - self.not_modified


class GitHubProvider:
    """Workflow runs of a sha on GitHub (or GitHub Enterprise, or a test server).

    Args:
        repository: ``owner/name``.
        token: API token; optional for public repositories.
        api_url: API base, e.g. ``$GITHUB_API_URL``.
        workflow: Workflow file name (``ci.yml``) to scope runs to; empty for all.
        clock: Wall clock in seconds (tests may inject one).
    """

    name = "github"

    def __init__(
        self,
        repository: str,
        *,
        token: str = "",
        api_url: str = DEFAULT_API,
        workflow: str = "ci.yml",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repository = repository
        self.token = token
        self.api_url = api_url.rstrip("/")
        self.workflow = workflow
        self.clock = clock
        self.counters = Counters()
        self.etag = ""
        self._last: dict[str, Any] | None = None
        #: The in-progress run's jobs, their ETag and the run they belong to.
        self.jobs_etag = ""
        self._jobs: list[dict[str, Any]] = []
        self._jobs_of = ""
        self._wait = 0.0
        self._session: requests.Session | None = None

    @classmethod
    def from_environment(
        cls, workflow: str, repository: str = "", api_url: str = ""
    ) -> GitHubProvider:
        """Build from GitHub Actions' variables; explicit values win."""
        from cicd.core.errors import ConfigError

        access = find_access(repository, api_url)
        if not access.repository:
            raise ConfigError(
                "tool.cicd.ci.repository: not set and GITHUB_REPOSITORY is empty "
                "(expected owner/name)"
            )
        return cls(
            access.repository,
            token=access.token,
            api_url=access.api_url,
            workflow=workflow,
        )

    def _http(self) -> requests.Session:
        if self._session is None:
            self._session = github_session(self.token, "cicd-watch")
        return self._session

    def runs_url(self) -> str:
        """The endpoint listing runs, scoped to the workflow file when set."""
        base = f"{self.api_url}/repos/{self.repository}/actions"
        if self.workflow:
            return f"{base}/workflows/{self.workflow}/runs"
        return f"{base}/runs"

    def wait_hint(self) -> float:
        """Seconds GitHub asked us to wait (rate limit or back-off), then reset."""
        wait, self._wait = self._wait, 0.0
        return wait

    def poll(self, sha: str) -> Poll:
        """Look at the newest ``push`` run of ``sha`` once."""
        query = {"head_sha": sha, "event": EVENT, "per_page": PER_PAGE}
        response = self._get_if_changed(self.runs_url(), query, self.etag)
        if isinstance(response, Poll):
            return response
        if response.status_code == 304 and self._last is not None:
            return self._interpret(self._last, sha)
        body = self._body(response)
        if isinstance(body, Poll):
            return body
        runs = self._rest(response, body, "workflow_runs")
        if isinstance(runs, Poll):
            return runs
        self.etag = response.headers.get("ETag", "")
        self._last = {**body, "workflow_runs": runs}
        return self._interpret(self._last, sha)

    def _rest(
        self, response: requests.Response, body: dict[str, Any], key: str
    ) -> list[Any] | Poll:
        """Every item of a list, following the ``Link`` header's ``next`` pages.

        Args:
            response: The first page's answer.
            body: Its JSON object.
            key: The list's key (``workflow_runs``, ``jobs``).

        Returns:
            The items of all pages, or the inconclusive Poll of a page that failed.
        """
        items = list(body.get(key) or [])
        following = _next_page(response)
        for _ in range(MAX_PAGES - 1):
            if not following:
                break
            page = self._get(following)
            if isinstance(page, Poll):
                return page
            more = self._body(page)
            if isinstance(more, Poll):
                return more
            items.extend(more.get(key) or [])
            following = _next_page(page)
        return items

    def run(self, sha: str, run_id: str) -> Poll:
        """Read one run by id (the ``workflow_run`` event's), for ``sha``.

        One request, plus one for the failed jobs when it failed: the verdict job's
        whole cost.
        """
        url = f"{self.api_url}/repos/{self.repository}/actions/runs/{run_id}"
        response = self._get(url)
        if isinstance(response, Poll):
            return response
        run = self._body(response)
        if isinstance(run, Poll):
            return run
        if run.get("head_sha") != sha:
            return Poll(
                INCONCLUSIVE,
                f"run {run_id} is for {str(run.get('head_sha'))[:7]}, not {sha[:7]}",
            )
        return self._interpret({"workflow_runs": [run]}, sha)

    def _get(self, url: str, **kwargs: Any) -> requests.Response | Poll:
        """One GET, counted; a network failure is an inconclusive Poll."""
        import requests

        self.counters.requests += 1
        try:
            return self._http().get(url, timeout=10, **kwargs)
        except requests.RequestException as error:
            # A refused or dropped connection is GitHub (or the network) down, as
            # a 5xx is: polling it every interval would only add load and noise.
            self._back_off()
            return Poll(
                INCONCLUSIVE, redact(f"GitHub unreachable ({type(error).__name__})")
            )

    def _get_if_changed(
        self, url: str, query: dict[str, str], etag: str
    ) -> requests.Response | Poll:
        """A GET carrying the last answer's ETag: a 304 says nothing changed.

        GitHub counts a 304 as free only when the request was authorized.
        """
        headers = {"If-None-Match": etag} if etag else {}
        response = self._get(url, params=query, headers=headers)
        unchanged = not isinstance(response, Poll) and response.status_code == 304
        if unchanged and etag and self.token:
            self.counters.not_modified += 1
        return response

    def _back_off(self) -> None:
        """Count one more failure in a row and double the wait: 1 s, 2, 4... 30."""
        self.counters.errors += 1
        self._wait = min(0.5 * 2.0 ** min(self.counters.errors, 6), 30.0)

    def _body(self, response: requests.Response) -> dict[str, Any] | Poll:
        """The JSON object of a 200 answer, or the inconclusive Poll saying why not."""
        problem = self._problem(response)
        if problem:
            return problem
        body = json_object(response)
        if body is None:
            return Poll(INCONCLUSIVE, "GitHub answered 200 with no JSON")
        return body

    def _problem(self, response: requests.Response) -> Poll | None:
        """The inconclusive Poll for a non-200 answer, or None when it is 200."""
        status = response.status_code
        if status == 200:
            self.counters.errors = 0
            return None
        if status == 401:
            return Poll(INCONCLUSIVE, EXPIRED)
        limited = response.headers.get("x-ratelimit-remaining") == "0" or (
            response.headers.get("retry-after")
        )
        if status == 429 or (status == 403 and limited):
            return self._rate_limited(response)
        hint = "" if self.token else " (no token: set CICD_GITHUB_TOKEN)"
        if status == 403:
            # A secondary rate limit comes as a bare 403 (no retry-after, requests
            # left): GitHub asks for a minute's wait, and polling it sooner prolongs
            # it. A missing permission waits as long: it will not heal sooner.
            self._wait = max(self._wait, SECONDARY_WAIT)
            return Poll(
                INCONCLUSIVE,
                redact(
                    f"GitHub answered 403{hint}: {said(response)}; "
                    f"waiting {self._wait:.0f}s"
                ),
            )
        if status >= 500:
            self._back_off()
            return Poll(INCONCLUSIVE, f"GitHub answered {status}")
        return Poll(
            INCONCLUSIVE,
            redact(f"GitHub answered {status}{hint}: {said(response)}"),
        )

    def _rate_limited(self, response: Any) -> Poll:
        retry_after = response.headers.get("retry-after")
        remaining = response.headers.get("x-ratelimit-remaining")
        reset = response.headers.get("x-ratelimit-reset")
        if retry_after and retry_after.strip().isdigit():
            self._wait = float(retry_after)
        elif remaining == "0" and reset:
            self._wait = max(float(reset) - self.clock(), 0.0) + 1.0
        else:
            self._wait = SECONDARY_WAIT
        return Poll(
            INCONCLUSIVE,
            f"rate limited by GitHub ({response.status_code}); "
            f"waiting {self._wait:.0f}s",
        )

    def _interpret(self, body: dict[str, Any], sha: str) -> Poll:
        # The query already asks for push runs; a server that ignored ``event``
        # must not let a pull_request run of the sha decide either.
        runs = [
            r
            for r in body.get("workflow_runs", [])
            if r.get("head_sha") == sha and r.get("event", EVENT) == EVENT
        ]
        if not runs:
            return Poll(PENDING, "no CI run yet")
        # The newest run, and of a run its newest attempt: a re-run that passes
        # decides over the attempt that failed.
        run = max(runs, key=_newest)
        url = str(run.get("html_url", ""))
        attempt = run.get("run_attempt") or 1
        # The run number when GitHub gives one, else its id: never "run ?".
        number = run.get("run_number") or f"id {run.get('id', '?')}"
        label = f"run {number}" + (f" attempt {attempt}" if attempt > 1 else "")
        ident = f"{run.get('id', '')}/{attempt}"
        if run.get("status") != "completed":
            status = run.get("status", "pending")
            # A failed job means a failed run: act on it now rather than after
            # the run's slowest job (fail fast shortens a bad commit's exposure).
            failed = self._failing_jobs(run, ident) if status == "in_progress" else ()
            if failed:
                detail = f"{label} failing (job failed while the run is in progress)"
                return Poll(FAILURE, detail, url, failed, run=ident)
            return Poll(PENDING, f"{label} {status}", url, run=ident)
        conclusion = run.get("conclusion")
        if conclusion == SUCCESS:
            return Poll(SUCCESS, f"{label} succeeded", url, run=ident)
        if conclusion in FAILED_CONCLUSIONS:
            failed = self._failed_jobs(run)
            return Poll(FAILURE, f"{label} {conclusion}", url, failed, run=ident)
        if conclusion == "cancelled":
            newer = self._superseded_by(run)
            if newer:
                detail = f"{label} cancelled: superseded by {newer[:7]}"
                return Poll(SUPERSEDED, detail, url, run=ident)
        return Poll(
            INCONCLUSIVE,
            f"{label} completed: {conclusion} (neither a pass nor a failure)",
            url,
            run=ident,
            settled=True,
        )

    def _superseded_by(self, run: dict[str, Any]) -> str:
        """The sha of a newer run on the same branch, when one exists (1 request)."""
        branch = run.get("head_branch")
        if not branch:
            return ""
        # One page of the newest runs suffices: a newer push is on the first one.
        query = {"branch": branch, "event": EVENT, "per_page": PER_PAGE}
        response = self._get(self.runs_url(), params=query)
        if isinstance(response, Poll) or response.status_code != 200:
            return ""
        body = json_object(response)
        if body is None:
            return ""
        key = (run.get("run_number") or 0, run.get("id") or 0)
        newer = [
            other
            for other in body.get("workflow_runs", [])
            if (other.get("run_number") or 0, other.get("id") or 0) > key
            and other.get("head_sha") != run.get("head_sha")
        ]
        return str(max(newer, key=_newest).get("head_sha", "")) if newer else ""

    def _failing_jobs(self, run: dict[str, Any], ident: str) -> tuple[str, ...]:
        """Failed jobs of a run still in progress (one conditional request a poll).

        The jobs list carries its own ETag, so while nothing changes each poll's
        jobs request is a 304 (free when authorized). A cancelled job is not a
        failure here: a run cancelled by a newer push cancels its jobs first, and
        only the completed run says whether it was superseded.
        """
        if ident != self._jobs_of:
            self.jobs_etag, self._jobs, self._jobs_of = "", [], ident
        query = {"filter": "latest", "per_page": PER_PAGE}
        response = self._get_if_changed(self._jobs_url(run), query, self.jobs_etag)
        if isinstance(response, Poll):
            return ()
        if response.status_code == 304 and self.jobs_etag:
            return _failed_names(self._jobs)
        body = json_object(response) if response.status_code == 200 else None
        if body is None:
            # Trouble reading jobs is no verdict: the run's own status still decides.
            return ()
        jobs = self._rest(response, body, "jobs")
        if isinstance(jobs, Poll):
            return ()
        self.jobs_etag = response.headers.get("ETag", "")
        self._jobs = jobs
        return _failed_names(jobs)

    def _jobs_url(self, run: dict[str, Any]) -> str:
        """The run's jobs endpoint, as GitHub names it in the run."""
        return str(
            run.get("jobs_url")
            or f"{self.api_url}/repos/{self.repository}/actions/runs/{run.get('id')}"
            "/jobs"
        )

    def _failed_jobs(self, run: dict[str, Any]) -> tuple[str, ...]:
        """Names of the failed jobs and steps (one more request, on failure only)."""
        jobs_url = self._jobs_url(run)
        # The latest attempt's jobs, all of them: a failed job past the first
        # page (GitHub's default is 30) must still be named.
        query = {"filter": "latest", "per_page": PER_PAGE}
        response = self._get(jobs_url, params=query)
        if isinstance(response, Poll):
            return ()
        body = json_object(response) if response.status_code == 200 else None
        if body is None:
            return ()
        jobs = self._rest(response, body, "jobs")
        if isinstance(jobs, Poll):
            jobs = list(body.get("jobs") or [])
        return _failed_names(jobs)


def _failed_names(jobs: list[dict[str, Any]]) -> tuple[str, ...]:
    """Names of the failed jobs, and of their failed steps (``job › step``)."""
    failed: list[str] = []
    for job in jobs:
        if job.get("conclusion") not in FAILED_CONCLUSIONS:
            continue
        steps = [
            s.get("name", "?")
            for s in job.get("steps", [])
            if s.get("conclusion") in FAILED_CONCLUSIONS
        ]
        name = job.get("name", "?")
        (
            failed.extend(f"{name} › {step}" for step in steps)
            if steps
            else failed.append(name)
        )
    return tuple(failed)


def _newest(run: dict[str, Any]) -> tuple[int, int, int]:
    """Order runs by number, then attempt (a re-run keeps its number), then id."""
    return (
        int(run.get("run_number") or 0),
        int(run.get("run_attempt") or 1),
        int(run.get("id") or 0),
    )


def _next_page(response: requests.Response) -> str:
    """The ``rel="next"`` URL of a ``Link`` header, or ``""`` on the last page."""
    found = _NEXT.search(response.headers.get("Link", ""))
    return found.group(1) if found else ""
