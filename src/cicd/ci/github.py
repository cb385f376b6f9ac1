"""GitHub Actions as the CI provider, through the REST API with requests.

Polls the workflow runs of the head sha, scoped to the CI workflow file. Each request
carries ``If-None-Match`` with the last ETag, so an unchanged answer is a 304 that
costs nothing against the rate limit. Rate limits (``x-ratelimit-remaining: 0`` with
``x-ratelimit-reset``, or ``retry-after``) are honoured; 5xx answers and refused or
dropped connections back off (1 s, 2, 4... up to 30 s between polls). The
token is sent only in the ``Authorization`` header and never printed.

The token is ``CICD_GITHUB_TOKEN`` when set (long-lived, for the detached watcher),
else ``GITHUB_TOKEN``. A job's ``GITHUB_TOKEN`` expires when its job ends, so a
watcher that outlives the job gets 401s: it says so in one line, and the verdict
arrives through the ``workflow_run`` job (:meth:`GitHubProvider.run`) instead.
"""

from __future__ import annotations

import os
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
from cicd.redact import redact

if TYPE_CHECKING:
    import requests

DEFAULT_API = "https://api.github.com"
#: The long-lived token, preferred over the job's own ``GITHUB_TOKEN``.
TOKEN_VARIABLES = ("CICD_GITHUB_TOKEN", "GITHUB_TOKEN")
EXPIRED = (
    "GitHub refused the token (401): a job's GITHUB_TOKEN expires when its job ends; "
    "set CICD_GITHUB_TOKEN (a fine-grained token with actions:read) for the watcher, "
    "or let the ci-verdict workflow decide"
)


@dataclass
class Counters:
    """What the provider cost: requests sent and those that counted."""

    requests: int = 0
    not_modified: int = 0
    errors: int = 0

    @property
    def counted(self) -> int:
        """Requests counted against the rate limit (304 answers are free)."""
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
        self._wait = 0.0
        self._session: requests.Session | None = None

    @classmethod
    def from_environment(
        cls, workflow: str, repository: str = "", api_url: str = ""
    ) -> GitHubProvider:
        """Build from GitHub Actions' variables; explicit values win."""
        from cicd.errors import ConfigError

        repository = repository or os.environ.get("GITHUB_REPOSITORY", "")
        if not repository:
            raise ConfigError(
                "tool.cicd.ci.repository: not set and GITHUB_REPOSITORY is empty "
                "(expected owner/name)"
            )
        token = next(
            (os.environ[n] for n in TOKEN_VARIABLES if os.environ.get(n, "").strip()),
            "",
        )
        return cls(
            repository,
            token=token.strip(),
            api_url=api_url or os.environ.get("GITHUB_API_URL", DEFAULT_API),
            workflow=workflow,
        )

    def _http(self) -> requests.Session:
        if self._session is None:
            import requests

            self._session = requests.Session()
            self._session.trust_env = False
            self._session.headers.update(
                {
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": "2022-11-28",
                    "User-Agent": "cicd-watch",
                }
            )
            if self.token:
                self._session.headers["Authorization"] = f"Bearer {self.token}"
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
        """Look at the newest run of ``sha`` once."""
        headers = {"If-None-Match": self.etag} if self.etag else {}
        response = self._get(
            self.runs_url(), params={"head_sha": sha, "per_page": "20"}, headers=headers
        )
        if isinstance(response, Poll):
            return response
        if response.status_code == 304 and self._last is not None:
            self.counters.not_modified += 1
            return self._interpret(self._last, sha)
        body = self._body(response)
        if isinstance(body, Poll):
            return body
        self.etag = response.headers.get("ETag", "")
        self._last = body
        return self._interpret(body, sha)

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

    def _back_off(self) -> None:
        """Count one more failure in a row and double the wait: 1 s, 2, 4... 30."""
        self.counters.errors += 1
        self._wait = min(0.5 * 2.0 ** min(self.counters.errors, 6), 30.0)

    def _body(self, response: requests.Response) -> dict[str, Any] | Poll:
        """The JSON object of a 200 answer, or the inconclusive Poll saying why not."""
        problem = self._problem(response)
        if problem:
            return problem
        body = _json(response)
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
        if status >= 500:
            self._back_off()
            return Poll(INCONCLUSIVE, f"GitHub answered {status}")
        hint = "" if self.token else " (no token: set CICD_GITHUB_TOKEN)"
        return Poll(
            INCONCLUSIVE,
            redact(f"GitHub answered {status}{hint}: {response.text[:120]}"),
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
            self._wait = 60.0
        return Poll(
            INCONCLUSIVE,
            f"rate limited by GitHub ({response.status_code}); "
            f"waiting {self._wait:.0f}s",
        )

    def _interpret(self, body: dict[str, Any], sha: str) -> Poll:
        runs = [r for r in body.get("workflow_runs", []) if r.get("head_sha") == sha]
        if not runs:
            return Poll(PENDING, "no CI run yet")
        run = max(
            runs,
            key=lambda r: (
                r.get("run_number") or 0,
                r.get("id") or 0,
                r.get("run_attempt") or 1,
            ),
        )
        url = str(run.get("html_url", ""))
        attempt = run.get("run_attempt") or 1
        # The run number when GitHub gives one, else its id: never "run ?".
        number = run.get("run_number") or f"id {run.get('id', '?')}"
        label = f"run {number}" + (f" attempt {attempt}" if attempt > 1 else "")
        ident = f"{run.get('id', '')}/{attempt}"
        if run.get("status") != "completed":
            status = run.get("status", "pending")
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
        query = {"branch": branch, "event": "push", "per_page": "10"}
        response = self._get(self.runs_url(), params=query)
        if isinstance(response, Poll) or response.status_code != 200:
            return ""
        body = _json(response)
        if body is None:
            return ""
        key = (run.get("run_number") or 0, run.get("id") or 0)
        for other in body.get("workflow_runs", []):
            newer = (other.get("run_number") or 0, other.get("id") or 0) > key
            if newer and other.get("head_sha") != run.get("head_sha"):
                return str(other.get("head_sha", ""))
        return ""

    def _failed_jobs(self, run: dict[str, Any]) -> tuple[str, ...]:
        """Names of the failed jobs and steps (one more request, on failure only)."""
        jobs_url = run.get("jobs_url") or (
            f"{self.api_url}/repos/{self.repository}/actions/runs/{run.get('id')}/jobs"
        )
        response = self._get(jobs_url)
        if isinstance(response, Poll):
            return ()
        body = _json(response) if response.status_code == 200 else None
        jobs = body.get("jobs", []) if body else []
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


def _json(response: requests.Response) -> dict[str, Any] | None:
    """The JSON object of an answer, or None when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
