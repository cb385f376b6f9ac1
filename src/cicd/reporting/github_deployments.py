"""GitHub deployments and commit statuses that follow what serves (provider ``github``).

Every deploy, rollback and production deploy creates a GitHub deployment for its
environment (``preprod``, ``production``; the sha as ``ref``, ``auto_merge: false``,
``required_contexts: []``) and moves its status: ``in_progress`` when it starts,
``success`` with ``environment_url`` and ``log_url`` once it serves, ``failure`` when
it never gets ready or CI fails and it is rolled back; the release put back gets a
``success`` deployment of its own, so the Environments panel shows what serves. A
superseded deployment goes ``inactive``: for a non-production environment GitHub does
it itself when a newer deployment succeeds (``auto_inactive``, true by default, sent
explicitly); GitHub does not do it for production environments, so for production the
previous successful deployment is set ``inactive`` here.

A commit status per environment (context ``cicd/preprod``, ``cicd/production``) says
``pending`` while CI runs on a deployed sha, ``success`` once validated, ``failure``
once rolled back (``error`` when CI was cancelled or inconclusive).

As with Discord (:mod:`cicd.reporting.notify`), a failing GitHub call never fails nor
blocks a
deploy: every call is first queued in ``<env>/github-outbox.json`` on the host, then
delivered in order; a call that fails for a reason that may pass (GitHub down, 5xx,
401/403, rate limited) stays queued with those behind it and is delivered by the
next run; one GitHub refuses for good (another 4xx) is set aside in
``<env>/github-rejected.jsonl``. After one such failure a run stops calling GitHub
and only queues. The same file keeps each deployment's id (a status names the
deployment by a local key, resolved at delivery, so a deployment created late still
gets its statuses). The token is the watcher's (``CICD_GITHUB_TOKEN``, else
``GITHUB_TOKEN``), else the deploy job's own (``CICD_JOB_TOKEN``); it goes only into
the ``Authorization`` header.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cicd.commands import files
from cicd.core.ledger import now
from cicd.core.redact import redact

if TYPE_CHECKING:
    import requests

    from cicd.reporting.notify import Notifier
    from cicd.host.target import Target

DEFAULT_API = "https://api.github.com"
#: The deploy job's own token, after the watcher's two: cd-preprod.yml passes it
#: under this name, as GITHUB_TOKEN would be taken by the detached watcher for its
#: polls and expire with the job.
JOB_TOKEN = "CICD_JOB_TOKEN"
#: The GitHub environment of each of our environments (GitHub's own name for prod).
ENVIRONMENTS = {"prod": "production"}
#: GitHub's limit on a status's ``description``.
DESCRIPTION_LIMIT = 140
#: The states of a deployment status and of a commit status, as published.
DEPLOYMENT_STATES = (
    "error",
    "failure",
    "inactive",
    "in_progress",
    "queued",
    "pending",
    "success",
)
COMMIT_STATES = ("error", "failure", "pending", "success")
#: Deployments remembered (with their ids) and calls queued at most.
KEEP = 50
OUTBOX_LIMIT = 200


def environment_of(env: str) -> str:
    """The GitHub environment name of one of ours: ``prod`` is ``production``."""
    return ENVIRONMENTS.get(env, env)


def context_of(env: str) -> str:
    """The commit status context of an environment: ``cicd/preprod``."""
    return f"cicd/{environment_of(env)}"


def describe(text: str) -> str:
    """A status description: one line, no links, at most 140 characters."""
    parts = [p.strip() for p in str(text).splitlines()]
    kept = [p for p in parts if p and not p.startswith(("http://", "https://"))]
    line = redact("; ".join(kept))
    return line if len(line) <= DESCRIPTION_LIMIT else line[:139] + "…"


@dataclass
class Counters:
    """Requests sent to GitHub by this process, and those that failed."""

    requests: int = 0
    failed: int = 0


class Silent:
    """The reporter when CI is not GitHub: every event is ignored, nothing is sent."""

    counters = Counters()

    def started(self, sha: str, *, task: str = "deploy") -> None:
        """Ignore."""

    def served(self, sha: str, *, validated: bool = False) -> None:
        """Ignore."""

    def failed(self, sha: str, reason: str, *, restored: str | None = None) -> None:
        """Ignore."""

    def rolled_back(self, sha: str, abandoned: str | None, reason: str) -> None:
        """Ignore."""

    def verdict(
        self,
        sha: str,
        verdict: str,
        detail: str,
        url: str,
        *,
        failed: Sequence[str] = (),
        acted: bool,
    ) -> None:
        """Ignore."""


class GitHubDeployments:
    """One environment's deployments and commit statuses on GitHub.

    Args:
        target: The environment (its outbox lives on its first host).
        say: Where console lines go.
        repository: ``owner/name``.
        token: The API token (``CICD_GITHUB_TOKEN`` or ``GITHUB_TOKEN``).
        api_url: The API base.
        timeout: Per-request timeout, in seconds.
        sleep: Sleep function (tests may inject one).
    """

    def __init__(
        self,
        target: Target,
        say: Callable[[str], None],
        *,
        repository: str,
        token: str,
        api_url: str = DEFAULT_API,
        timeout: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.say = say
        self.repository = repository
        self.token = token
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.sleep = sleep
        self.environment = environment_of(target.env)
        self.context = context_of(target.env)
        self.counters = Counters()
        #: Set after a failure that may pass: the rest of the run only queues.
        self.down = False
        self._session: requests.Session | None = None

    # -- the events ------------------------------------------------------------

    def started(self, sha: str, *, task: str = "deploy") -> None:
        """A deploy or rollback of ``sha`` begins: a new deployment, in progress."""
        state = self._load()
        key = f"{sha[:12]}-{now()}-{len(state['deployments'])}"
        state["deployments"].append({"key": key, "sha": sha, "state": "in_progress"})
        del state["deployments"][:-KEEP]
        what = "rollback to" if task == "rollback" else "deploy of"
        description = describe(f"{what} {sha[:7]} started")
        state["outbox"] += [
            {"op": "create", "key": key, "sha": sha, "task": task, "text": description},
            self._status(key, "in_progress", description),
        ]
        self._deliver(state)

    def served(self, sha: str, *, validated: bool = False) -> None:
        """``sha`` serves: its deployment succeeds; CI is awaited (or was, for prod).

        Args:
            sha: The release that serves now.
            validated: CI validated it already (production): the commit status
                says so instead of "pending".
        """
        state = self._load()
        record = self._latest(state, sha) or self._add(state, sha, "deploy")
        self._succeed(state, record, f"{sha[:7]} serves")
        if validated:
            self._commit(state, sha, "success", "serves; validated by CI")
        elif self.environment == "production":
            # Forced past CI: no watcher will turn this status.
            self._commit(state, sha, "pending", "serves; not validated by CI")
        else:
            self._commit(state, sha, "pending", "deployed; waiting for CI")
        self._deliver(state)

    def failed(self, sha: str, reason: str, *, restored: str | None = None) -> None:
        """``sha`` never got ready; ``restored`` serves again (its own deployment)."""
        state = self._load()
        record = self._latest(state, sha)
        if record is not None:
            self._move(state, record, "failure", f"not deployed: {reason}")
        if restored and restored != sha:
            back = self._add(state, restored, "rollback")
            self._succeed(state, back, f"{restored[:7]} serves again")
        self._deliver(state)

    def rolled_back(self, sha: str, abandoned: str | None, reason: str) -> None:
        """``sha`` serves again in place of ``abandoned``, which goes to failure."""
        state = self._load()
        record = self._latest(state, sha) or self._add(state, sha, "rollback")
        if abandoned and abandoned != sha:
            bad = self._latest(state, abandoned, before=record["key"])
            if bad is not None and bad.get("state") != "failure":
                self._move(state, bad, "failure", f"rolled back: {reason}")
            self._commit(state, abandoned, "failure", f"rolled back: {reason}")
        self._succeed(state, record, f"{sha[:7]} serves (rollback)")
        self._deliver(state)

    def verdict(
        self,
        sha: str,
        verdict: str,
        detail: str,
        url: str,
        *,
        failed: Sequence[str] = (),
        acted: bool,
    ) -> None:
        """Report the CI verdict on a deployed sha, before it is acted on.

        Args:
            sha: The sha CI judged.
            verdict: ``success``, ``failure``, ``superseded`` or ``inconclusive``.
            detail: What CI said.
            url: The CI run.
            failed: The failed jobs (``job › step``), named in a failure's
                description.
            acted: ``sha`` serves and the verdict rolls it back: its deployment
                goes to failure now, before the rollback's own deployment.
        """
        state = self._load()
        if verdict == "success":
            self._commit(state, sha, "success", "validated by CI", url)
        elif verdict == "failure":
            named = f": {', '.join(failed)}" if failed else f" ({detail})"
            detail = f"CI failed{named}"
            if acted:
                record = self._latest(state, sha)
                if record is not None and record.get("state") != "failure":
                    self._move(state, record, "failure", detail, log_url=url)
            self._commit(state, sha, "failure", detail, url)
        elif verdict == "superseded":
            self._commit(state, sha, "error", "CI cancelled: superseded", url)
        else:
            self._commit(state, sha, "error", f"CI inconclusive: {detail}", url)
        self._deliver(state)

    # -- building the calls ----------------------------------------------------

    def _status(
        self, key: str, state: str, description: str, **urls: str
    ) -> dict[str, Any]:
        call: dict[str, Any] = {
            "op": "status",
            "key": key,
            "state": state,
            "text": describe(description),
        }
        call.update({name: url for name, url in urls.items() if url})
        return call

    def _add(self, state: dict[str, Any], sha: str, task: str) -> dict[str, Any]:
        """A deployment for ``sha`` created now (no in-progress step: it serves)."""
        key = f"{sha[:12]}-{now()}-{len(state['deployments'])}"
        record = {"key": key, "sha": sha, "state": "in_progress"}
        state["deployments"].append(record)
        del state["deployments"][:-KEEP]
        text = describe(f"{task} of {sha[:7]}")
        state["outbox"].append(
            {"op": "create", "key": key, "sha": sha, "task": task, "text": text}
        )
        return record

    def _move(
        self,
        state: dict[str, Any],
        record: dict[str, Any],
        to: str,
        description: str,
        log_url: str = "",
    ) -> None:
        record["state"] = to
        state["outbox"].append(
            self._status(record["key"], to, description, log_url=log_url)
        )

    def _succeed(
        self, state: dict[str, Any], record: dict[str, Any], description: str
    ) -> None:
        """Success, with the public URL and the CD run; supersede the one before."""
        from cicd.reporting.notify import cd_run_url

        settings = self.target.settings
        record["state"] = "success"
        call = self._status(
            record["key"],
            "success",
            description,
            environment_url=settings.public_url or settings.url,
            log_url=cd_run_url(settings),
        )
        # GitHub sets the older successful deployments of the environment
        # inactive itself, except in a production environment.
        call["auto_inactive"] = True
        for older in state["deployments"]:
            if older is record or older.get("state") != "success":
                continue
            older["state"] = "inactive"
            if self.environment == "production":
                state["outbox"].append(
                    self._status(older["key"], "inactive", "superseded")
                )
        state["outbox"].append(call)

    def _commit(
        self,
        state: dict[str, Any],
        sha: str,
        to: str,
        description: str,
        target_url: str = "",
    ) -> None:
        commits: dict[str, str] = state["commits"]
        if commits.get(sha) == to:
            return  # said already (a verdict, then its rollback)
        commits[sha] = to
        for old in list(commits)[:-KEEP]:
            del commits[old]
        call = {"op": "commit", "sha": sha, "state": to, "text": describe(description)}
        if target_url:
            call["target_url"] = target_url
        state["outbox"].append(call)

    @staticmethod
    def _latest(
        state: dict[str, Any], sha: str, before: str | None = None
    ) -> dict[str, Any] | None:
        found = None
        for record in state["deployments"]:
            if before is not None and record["key"] == before:
                break
            if record["sha"] == sha:
                found = record
        return found

    # -- the outbox ------------------------------------------------------------

    @property
    def path(self) -> str:
        """Where the queue and the deployments' ids live on the host."""
        return posixpath.join(self.target.paths.dir, "github-outbox.json")

    @property
    def rejected_path(self) -> str:
        """Where the calls GitHub refused for good are kept."""
        return posixpath.join(self.target.paths.dir, "github-rejected.jsonl")

    def _load(self) -> dict[str, Any]:
        text = self.target.runner.run(files.read(self.path)).stdout
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        return {
            "deployments": list(data.get("deployments") or []),
            "outbox": list(data.get("outbox") or []),
            "commits": dict(data.get("commits") or {}),
        }

    def pending(self) -> list[dict[str, Any]]:
        """The calls not delivered yet, oldest first."""
        return list(self._load()["outbox"])

    def flush(self) -> int:
        """Deliver what the outbox holds; return how many calls are left."""
        state = self._load()
        self._deliver(state)
        return len(state["outbox"])

    def _deliver(self, state: dict[str, Any]) -> None:
        """Send the queued calls in order, stopping at one that may pass later."""
        queue: list[dict[str, Any]] = state["outbox"]
        refused: list[dict[str, Any]] = []
        ids = {r["key"]: r.get("id") for r in state["deployments"]}
        while queue and not self.down:
            call = queue[0]
            outcome = self._send(call, ids)
            if outcome == "later":
                self.down = True
                break
            queue.pop(0)
            if outcome not in ("ok", "skip"):
                refused.append({**call, "reason": outcome, "time": now()})
                if call["op"] == "create":
                    ids[call["key"]] = 0  # never created: its statuses are moot
        for record in state["deployments"]:
            if ids.get(record["key"]) is not None:
                record["id"] = ids[record["key"]]
        del queue[:-OUTBOX_LIMIT]
        runner = self.target.runner
        runner.run(files.mkdirs(self.target.paths.dir))
        runner.run(files.write_atomic(self.path, json.dumps(state, sort_keys=True)))
        for entry in refused:
            runner.run(files.append_line(self.rejected_path, json.dumps(entry)))
        if refused:
            self.say(
                f"{len(refused)} GitHub call(s) refused ({refused[0]['reason']}); "
                f"set aside in {self.rejected_path}"
            )
        if queue:
            self.say(
                f"GitHub deployments: {len(queue)} call(s) kept in {self.path} "
                "for the next run"
            )

    def _send(self, call: dict[str, Any], ids: dict[str, Any]) -> str:
        """One call: ``ok``, ``skip``, ``later`` (kept) or the reason it is refused."""
        repo = f"{self.api_url}/repos/{self.repository}"
        op = call.get("op")
        if op == "create":
            body: dict[str, Any] = {
                "ref": call["sha"],
                "task": call.get("task") or "deploy",
                "auto_merge": False,
                "required_contexts": [],
                "environment": self.environment,
                "description": call.get("text", ""),
                "production_environment": self.environment == "production",
                "transient_environment": False,
            }
            url = f"{repo}/deployments"
        elif op == "status":
            key = str(call.get("key"))
            ident = ids.get(key)
            if ident == 0 or key not in ids:
                return "skip"  # its deployment was refused or is forgotten
            if ident is None:
                return "later"  # its deployment is not created yet
            body = {"state": call["state"], "description": call.get("text", "")}
            for name in ("environment_url", "log_url", "auto_inactive"):
                if name in call:
                    body[name] = call[name]
            url = f"{repo}/deployments/{ident}/statuses"
        elif op == "commit":
            body = {
                "state": call["state"],
                "context": self.context,
                "description": call.get("text", ""),
            }
            if call.get("target_url"):
                body["target_url"] = call["target_url"]
            url = f"{repo}/statuses/{call['sha']}"
        else:
            return "skip"
        answer = self._post(url, body)
        if isinstance(answer, str):
            return answer
        if op == "create":
            ident = answer.get("id")
            if not isinstance(ident, int):
                return "later"
            ids[call["key"]] = ident
        return "ok"

    def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any] | str:
        """POST once (a 5xx or a dropped connection once more): the JSON or why not."""
        import requests

        reason = ""
        for attempt in range(2):
            self.counters.requests += 1
            try:
                response = self._http().post(url, json=body, timeout=self.timeout)
            except requests.RequestException as error:
                self.counters.failed += 1
                reason = f"GitHub unreachable ({type(error).__name__})"
                if isinstance(error, requests.Timeout):
                    break  # a hanging GitHub: do not wait for it twice
                if attempt == 0:
                    self.sleep(0.5)
                continue
            status = response.status_code
            if status < 300:
                try:
                    answer = response.json()
                except ValueError:
                    answer = {}
                return answer if isinstance(answer, dict) else {}
            self.counters.failed += 1
            reason = f"GitHub answered {status}: {_said(response)}"
            if status >= 500 and attempt == 0:
                self.sleep(0.5)
                continue
            if status >= 500 or status in (401, 403, 429):
                # Down, a token or permission to fix, a rate limit: may pass.
                break
            return redact(reason)
        self.say(redact(f"GitHub deployments: {reason}; kept for the next run"))
        return "later"

    def _http(self) -> requests.Session:
        if self._session is None:
            import requests

            self._session = requests.Session()
            self._session.trust_env = False
            self._session.headers.update(
                {
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": "2022-11-28",
                    "User-Agent": "cicd-deploy",
                }
            )
            if self.token:
                self._session.headers["Authorization"] = f"Bearer {self.token}"
        return self._session


def _said(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    text = message if isinstance(message, str) else response.text
    return " ".join(str(text).split())[:120]


#: One reporter per environment and host in this process, so a run's calls share
#: a session, a request count and the knowledge that GitHub is down.
_REPORTERS: dict[tuple[str, str], GitHubDeployments] = {}


def reporter(target: Target, notifier: Notifier) -> GitHubDeployments | Silent:
    """The environment's GitHub reporter, or :class:`Silent` without provider github.

    The repository, API and token are found as the watcher finds them
    (:meth:`cicd.ci.github.GitHubProvider.from_environment`).
    """
    ci = target.settings.ci
    if ci.provider != "github":
        return Silent()
    hosts = target.settings.hosts
    if len(hosts) > 1 and target.runner.remote and target.runner.host != hosts[0]:
        # One deployment per environment, not per host: its first host reports
        # (a rollback runs on every host of a fleet).
        return Silent()
    from cicd.ci.github import TOKEN_VARIABLES

    repository = ci.repository or os.environ.get("GITHUB_REPOSITORY", "")
    if not repository:
        return Silent()
    token = next(
        (
            os.environ[n]
            for n in (*TOKEN_VARIABLES, JOB_TOKEN)
            if os.environ.get(n, "").strip()
        ),
        "",
    )
    api_url = ci.api_url or os.environ.get("GITHUB_API_URL", "") or DEFAULT_API
    key = (target.runner.host, target.paths.dir)
    found = _REPORTERS.get(key)
    if (
        found is None
        or (found.repository, found.token, found.api_url)
        != (repository, token.strip(), api_url.rstrip("/"))
        or found.target is not target
    ):
        found = GitHubDeployments(
            target,
            notifier.say,
            repository=repository,
            token=token.strip(),
            api_url=api_url,
        )
        if key in _REPORTERS:
            # Another Target object for the same place: keep the count.
            found.counters = _REPORTERS[key].counters
        _REPORTERS[key] = found
    return found


def reset() -> None:
    """Forget every reporter (a new run in the same process, as tests make)."""
    _REPORTERS.clear()


def requests_sent(targets: Sequence[Target]) -> int:
    """Requests sent to GitHub for these environments by this process."""
    return sum(
        r.counters.requests
        for (host, where), r in _REPORTERS.items()
        if any((t.runner.host, t.paths.dir) == (host, where) for t in targets)
    )
