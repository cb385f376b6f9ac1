"""CI providers: ask whether CI passed for a sha, answer with one of three verdicts.

As Argo Rollouts does for analysis runs: ``success`` (mark validated), ``failure``
(roll back) and ``inconclusive`` (the API was unreachable or CI was still pending at
the deadline: alert a person, and roll back only if configured to).

Conclusions mean what they say: only a failed, timed-out or never-started run fails
a sha. A run cancelled because a newer push superseded it is ``superseded`` (recorded,
never a failure); any other cancelled, skipped, stale, neutral or action_required run
is inconclusive: nothing says the commit is bad.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

SUCCESS = "success"
FAILURE = "failure"
INCONCLUSIVE = "inconclusive"
SUPERSEDED = "superseded"
PENDING = "pending"

#: The states a watch ends with (everything but pending).
VERDICTS = (SUCCESS, FAILURE, INCONCLUSIVE, SUPERSEDED)

#: GitHub conclusions that mean the commit failed CI.
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "startup_failure"})


@dataclass(frozen=True)
class Poll:
    """One look at CI for a sha.

    Attributes:
        state: ``pending``, ``success``, ``failure`` or ``inconclusive``.
        detail: A short human description of what CI is doing.
        url: Link to the CI run, when there is one.
        failed: Names of failed jobs and steps (``job › step``).
        run: The CI run's id and attempt (``"123/2"``), when the provider has runs.
        settled: Polling again would not change the answer (a completed run, a local
            command that ran); False for trouble that may pass (network, 401, 5xx).
    """

    state: str
    detail: str = ""
    url: str = ""
    failed: tuple[str, ...] = field(default=())
    run: str = ""
    settled: bool = False

    @property
    def final(self) -> bool:
        """Whether this ends a watch: a pass, a failure, superseded, or settled."""
        return self.state in (SUCCESS, FAILURE, SUPERSEDED) or self.settled


class Provider(Protocol):
    """What the watcher asks of a CI provider."""

    name: str

    def poll(self, sha: str) -> Poll:
        """Look at CI for ``sha`` once; never raise for network trouble."""

    def wait_hint(self) -> float:
        """Seconds the provider asks to wait before the next poll (0: no opinion)."""
