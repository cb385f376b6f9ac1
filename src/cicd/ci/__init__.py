"""CI providers: ask whether CI passed for a sha, answer with one of three verdicts.

As Argo Rollouts does for analysis runs: ``success`` (mark validated), ``failure``
(roll back) and ``inconclusive`` (the API was unreachable or CI was still pending at
the deadline: alert a person, and roll back only if configured to).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

SUCCESS = "success"
FAILURE = "failure"
INCONCLUSIVE = "inconclusive"
PENDING = "pending"

#: GitHub conclusions that mean CI failed.
FAILED_CONCLUSIONS = frozenset({"failure", "cancelled", "timed_out", "startup_failure"})


@dataclass(frozen=True)
class Poll:
    """One look at CI for a sha.

    Attributes:
        state: ``pending``, ``success``, ``failure`` or ``inconclusive``.
        detail: A short human description of what CI is doing.
        url: Link to the CI run, when there is one.
        failed: Names of failed jobs and steps (``job › step``).
    """

    state: str
    detail: str = ""
    url: str = ""
    failed: tuple[str, ...] = field(default=())

    @property
    def final(self) -> bool:
        """Whether this is a verdict (not pending)."""
        return self.state != PENDING


class Provider(Protocol):
    """What the watcher asks of a CI provider."""

    name: str

    def poll(self, sha: str) -> Poll:
        """Look at CI for ``sha`` once; never raise for network trouble."""

    def wait_hint(self) -> float:
        """Seconds the provider asks to wait before the next poll (0: no opinion)."""
