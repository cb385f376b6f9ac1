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
blocks a deploy: every call is first queued on the host, then delivered in order
(:mod:`cicd.reporting.github_outbox`). The token is the watcher's
(``CICD_GITHUB_TOKEN``, else ``GITHUB_TOKEN``), else the deploy job's own
(``CICD_JOB_TOKEN``); it goes only into the ``Authorization`` header.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cicd.ci.github_api import TOKEN_VARIABLES, cd_run_url, find_access
from cicd.core.ledger import now
from cicd.core.redact import redact
from cicd.reporting.github_outbox import GitHubOutbox

if TYPE_CHECKING:
    from cicd.ci.github_api import GitHubAccess
    from cicd.host.target import Target
    from cicd.reporting.notify import Notifier

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
#: Deployments (with their ids) and commit statuses remembered at most.
REMEMBERED = 50


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


class Silent:
    """The reporter when CI is not GitHub: every event is ignored, nothing is sent."""

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

    Each event turns into calls queued in the environment's outbox, which is then
    delivered (:class:`~cicd.reporting.github_outbox.GitHubOutbox`).

    Args:
        target: The environment (its outbox lives on its first host).
        say: Where console lines go.
        access: The repository, token and API base.
        timeout: Per-request timeout, in seconds.
        sleep: Sleep function (tests may inject one).
    """

    def __init__(
        self,
        target: Target,
        say: Callable[[str], None],
        access: GitHubAccess,
        *,
        timeout: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.access = access
        self.environment = environment_of(target.env)
        self.outbox = GitHubOutbox(
            target,
            say,
            access,
            environment=self.environment,
            context=context_of(target.env),
            timeout=timeout,
            sleep=sleep,
        )

    def flush(self) -> int:
        """Deliver what the outbox holds; return how many calls are left."""
        state = self.outbox.load()
        self.outbox.deliver(state)
        return len(state["outbox"])

    # -- the events ------------------------------------------------------------

    def started(self, sha: str, *, task: str = "deploy") -> None:
        """A deploy or rollback of ``sha`` begins: a new deployment, in progress."""
        state = self.outbox.load()
        what = "rollback to" if task == "rollback" else "deploy of"
        description = f"{what} {sha[:7]} started"
        record = self._add(state, sha, task, description)
        self._move(state, record, "in_progress", description)
        self.outbox.deliver(state)

    def served(self, sha: str, *, validated: bool = False) -> None:
        """``sha`` serves: its deployment succeeds; CI is awaited (or was, for prod).

        Args:
            sha: The release that serves now.
            validated: CI validated it already (production): the commit status
                says so instead of "pending".
        """
        state = self.outbox.load()
        record = self._latest(state, sha) or self._add(state, sha, "deploy")
        self._succeed(state, record, f"{sha[:7]} serves")
        if validated:
            self._commit(state, sha, "success", "serves; validated by CI")
        elif self.environment == "production":
            # Forced past CI: no watcher will turn this status.
            self._commit(state, sha, "pending", "serves; not validated by CI")
        else:
            self._commit(state, sha, "pending", "deployed; waiting for CI")
        self.outbox.deliver(state)

    def failed(self, sha: str, reason: str, *, restored: str | None = None) -> None:
        """``sha`` never got ready; ``restored`` serves again (its own deployment)."""
        state = self.outbox.load()
        record = self._latest(state, sha)
        if record is not None:
            self._move(state, record, "failure", f"not deployed: {reason}")
        if restored and restored != sha:
            back = self._add(state, restored, "rollback")
            self._succeed(state, back, f"{restored[:7]} serves again")
        self.outbox.deliver(state)

    def rolled_back(self, sha: str, abandoned: str | None, reason: str) -> None:
        """``sha`` serves again in place of ``abandoned``, which goes to failure."""
        state = self.outbox.load()
        record = self._latest(state, sha) or self._add(state, sha, "rollback")
        if abandoned and abandoned != sha:
            bad = self._latest(state, abandoned, before=record["key"])
            self._fail(state, bad, f"rolled back: {reason}")
            self._commit(state, abandoned, "failure", f"rolled back: {reason}")
        self._succeed(state, record, f"{sha[:7]} serves (rollback)")
        self.outbox.deliver(state)

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
        state = self.outbox.load()
        if verdict == "success":
            self._commit(state, sha, "success", "validated by CI", url)
        elif verdict == "failure":
            named = f": {', '.join(failed)}" if failed else f" ({detail})"
            detail = f"CI failed{named}"
            if acted:
                self._fail(state, self._latest(state, sha), detail, log_url=url)
            self._commit(state, sha, "failure", detail, url)
        elif verdict == "superseded":
            self._commit(state, sha, "error", "CI cancelled: superseded", url)
        else:
            self._commit(state, sha, "error", f"CI inconclusive: {detail}", url)
        self.outbox.deliver(state)

    # -- building the calls ----------------------------------------------------

    @staticmethod
    def _status(key: str, state: str, description: str, **urls: str) -> dict[str, Any]:
        call: dict[str, Any] = {
            "op": "status",
            "key": key,
            "state": state,
            "text": describe(description),
        }
        call.update({name: url for name, url in urls.items() if url})
        return call

    def _add(
        self, state: dict[str, Any], sha: str, task: str, description: str = ""
    ) -> dict[str, Any]:
        """A deployment for ``sha`` created now (in progress until moved on)."""
        key = f"{sha[:12]}-{now()}-{len(state['deployments'])}"
        record = {"key": key, "sha": sha, "state": "in_progress"}
        state["deployments"].append(record)
        del state["deployments"][:-REMEMBERED]
        text = describe(description or f"{task} of {sha[:7]}")
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

    def _fail(
        self,
        state: dict[str, Any],
        record: dict[str, Any] | None,
        description: str,
        log_url: str = "",
    ) -> None:
        """Move a deployment to failure, unless it is unknown or failed already."""
        if record is not None and record.get("state") != "failure":
            self._move(state, record, "failure", description, log_url=log_url)

    def _succeed(
        self, state: dict[str, Any], record: dict[str, Any], description: str
    ) -> None:
        """Success, with the public URL and the CD run; supersede the one before."""
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
        for old in list(commits)[:-REMEMBERED]:
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


#: One reporter per environment and host in this process, so a run's calls share
#: a session and the knowledge that GitHub is down.
_REPORTERS: dict[tuple[str, str], GitHubDeployments] = {}


def reporter(target: Target, notifier: Notifier) -> GitHubDeployments | Silent:
    """The environment's GitHub reporter, or :class:`Silent` without provider github.

    The repository, API and token are found as the watcher finds them
    (:func:`cicd.ci.github_api.find_access`), the deploy job's token last.
    """
    ci = target.settings.ci
    if ci.provider != "github":
        return Silent()
    hosts = target.settings.hosts
    if len(hosts) > 1 and target.runner.remote and target.runner.host != hosts[0]:
        # One deployment per environment, not per host: its first host reports
        # (a rollback runs on every host of a fleet).
        return Silent()
    access = find_access(ci.repository, ci.api_url, (*TOKEN_VARIABLES, JOB_TOKEN))
    if not access.repository:
        return Silent()
    key = (target.runner.host, target.paths.dir)
    found = _REPORTERS.get(key)
    if found is None or found.access != access or found.target is not target:
        found = GitHubDeployments(target, notifier.say, access)
        _REPORTERS[key] = found
    return found


def reset() -> None:
    """Forget every reporter (a new run in the same process, as tests make)."""
    _REPORTERS.clear()
