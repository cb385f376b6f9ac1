"""The GitHub calls of an environment, queued on its host and delivered in order.

Every call :mod:`cicd.reporting.github_deployments` makes is first queued in
``<env>/github-outbox.json``, which also keeps each deployment's id and the last
state of each commit status; then the queue is delivered by the rule of
:func:`cicd.reporting.outbox.deliver_in_order`. A call that fails for a reason that
may pass (GitHub down, 5xx, 401/403, rate limited) stays queued with those behind it
and the rest of the run only queues; one GitHub refuses for good (another 4xx) is set
aside in ``<env>/github-rejected.jsonl``. A deployment status names its deployment
by a local key, resolved to GitHub's id at delivery, so a deployment created late
still gets its statuses.
"""

from __future__ import annotations

import json
import posixpath
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cicd.ci.github_api import GitHubAccess, github_session, json_object, said
from cicd.commands import files
from cicd.core.ledger import now
from cicd.core.redact import redact
from cicd.reporting.outbox import DELIVERED, KEEP, append_lines, deliver_in_order

if TYPE_CHECKING:
    import requests

    from cicd.host.target import Target

#: Calls queued at most; the oldest are dropped beyond.
OUTBOX_LIMIT = 200
#: What a deployment status may carry besides its state and description.
STATUS_EXTRAS = ("environment_url", "log_url", "auto_inactive")


class GitHubOutbox:
    """One environment's queue of GitHub calls, and their delivery.

    Args:
        target: The environment (the queue lives on its first host).
        say: Where console lines go.
        access: The repository, token and API base.
        environment: The GitHub environment of the deployments.
        context: The commit statuses' context.
        timeout: Per-request timeout, in seconds.
        sleep: Sleep function (tests may inject one).
    """

    def __init__(
        self,
        target: Target,
        say: Callable[[str], None],
        access: GitHubAccess,
        *,
        environment: str,
        context: str,
        timeout: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.say = say
        self.access = access
        self.environment = environment
        self.context = context
        self.timeout = timeout
        self.sleep = sleep
        #: Set after a failure that may pass: the rest of the run only queues.
        self.down = False
        self._session: requests.Session | None = None

    @property
    def path(self) -> str:
        """Where the queue and the deployments' ids live on the host."""
        return posixpath.join(self.target.paths.dir, "github-outbox.json")

    @property
    def rejected_path(self) -> str:
        """Where the calls GitHub refused for good are kept."""
        return posixpath.join(self.target.paths.dir, "github-rejected.jsonl")

    def load(self) -> dict[str, Any]:
        """The deployments (with their ids), the commit statuses and the queue."""
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

    def deliver(self, state: dict[str, Any]) -> None:
        """Send the queued calls in order, then keep the state and what is left."""
        queue: list[dict[str, Any]] = state["outbox"]
        ids = {r["key"]: r.get("id") for r in state["deployments"]}
        if self.down:
            remaining, refused = queue, []
        else:
            drained = deliver_in_order(queue, lambda call: self._send(call, ids))
            remaining, refused = drained.remaining, drained.refused
            self.down = bool(remaining)
        for record in state["deployments"]:
            if ids.get(record["key"]) is not None:
                record["id"] = ids[record["key"]]
        state["outbox"] = remaining[-OUTBOX_LIMIT:]
        runner = self.target.runner
        runner.run(files.mkdirs(self.target.paths.dir))
        runner.run(files.write_atomic(self.path, json.dumps(state, sort_keys=True)))
        set_aside = [{**call, "reason": why, "time": now()} for call, why in refused]
        append_lines(runner, self.rejected_path, set_aside)
        if refused:
            self.say(
                f"{len(refused)} GitHub call(s) refused ({refused[0][1]}); "
                f"set aside in {self.rejected_path}"
            )
        if state["outbox"]:
            self.say(
                f"GitHub deployments: {len(state['outbox'])} call(s) kept in "
                f"{self.path} for the next run"
            )

    def _send(self, call: dict[str, Any], ids: dict[str, Any]) -> str:
        """One call: delivered, kept, or the reason GitHub refuses it for good."""
        request = self._request(call, ids)
        if isinstance(request, str):
            return request
        answer = self._post(*request)
        if isinstance(answer, str):
            if answer != KEEP and call["op"] == "create":
                ids[call["key"]] = 0  # never created: its statuses are moot
            return answer
        if call["op"] == "create":
            ident = answer.get("id")
            if not isinstance(ident, int):
                return KEEP
            ids[call["key"]] = ident
        return DELIVERED

    def _request(
        self, call: dict[str, Any], ids: dict[str, Any]
    ) -> tuple[str, dict[str, Any]] | str:
        """The URL and body of a queued call, or the outcome when none is sent."""
        repo = f"{self.access.api_url}/repos/{self.access.repository}"
        op = call.get("op")
        text = call.get("text", "")
        if op == "create":
            body: dict[str, Any] = {
                "ref": call["sha"],
                "task": call.get("task") or "deploy",
                "auto_merge": False,
                "required_contexts": [],
                "environment": self.environment,
                "description": text,
                "production_environment": self.environment == "production",
                "transient_environment": False,
            }
            return f"{repo}/deployments", body
        if op == "commit":
            body = {
                "state": call["state"],
                "context": self.context,
                "description": text,
            }
            if call.get("target_url"):
                body["target_url"] = call["target_url"]
            return f"{repo}/statuses/{call['sha']}", body
        if op != "status":
            return DELIVERED  # nothing this version knows how to send
        key = str(call.get("key"))
        ident = ids.get(key)
        if ident == 0 or key not in ids:
            return DELIVERED  # its deployment was refused or is forgotten
        if ident is None:
            return KEEP  # its deployment is not created yet
        body = {"state": call["state"], "description": text}
        body.update({name: call[name] for name in STATUS_EXTRAS if name in call})
        return f"{repo}/deployments/{ident}/statuses", body

    def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any] | str:
        """POST once (a 5xx or a dropped connection once more).

        Returns:
            GitHub's JSON answer, :data:`~cicd.reporting.outbox.KEEP` for a failure
            that may pass, or the reason GitHub refuses the call for good.
        """
        import requests

        reason = ""
        for attempt in range(2):
            try:
                response = self._http().post(url, json=body, timeout=self.timeout)
            except requests.RequestException as error:
                reason = f"GitHub unreachable ({type(error).__name__})"
                if isinstance(error, requests.Timeout):
                    break  # a hanging GitHub: do not wait for it twice
                if attempt == 0:
                    self.sleep(0.5)
                continue
            status = response.status_code
            if status < 300:
                return json_object(response) or {}
            reason = f"GitHub answered {status}: {said(response)}"
            if status >= 500 and attempt == 0:
                self.sleep(0.5)
                continue
            if status >= 500 or status in (401, 403, 429):
                # Down, a token or permission to fix, a rate limit: may pass.
                break
            return redact(reason)
        self.say(redact(f"GitHub deployments: {reason}; kept for the next run"))
        return KEEP

    def _http(self) -> requests.Session:
        if self._session is None:
            self._session = github_session(self.access.token, "cicd-deploy")
        return self._session
