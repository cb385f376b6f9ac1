"""An environment's state, replayed from its ledger: a pure function, no I/O.

The ledger is the history, ``validated`` the last known good, ``current`` what runs
(principle 3 of the design). :func:`replay` turns those into an :class:`EnvState`;
:class:`~cicd.host.target.Target` only reads them from the host (one round trip) and
hands them over, so the trickiest rules — what is previous, what is bad, whether a
switch settled, the order of releases — are tested without any process.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cicd.core.ledger import Event


@dataclass(frozen=True)
class EnvState:
    """What an environment looks like now, computed from the ledger and files.

    Attributes:
        env: The environment's name.
        current: The sha ``current`` points to.
        previous: What ran before ``current`` was switched to (never ``current``).
        validated: The ``validated`` file's sha.
        validated_all: Every sha CI validated here, ever.
        bad: Shas whose latest verdict is bad.
        releases: Kept releases, newest first by ledger order.
        lock: The lock holder's details, when held.
        events: The ledger, in order.
        warnings: One line per corrupt ledger line.
        settled: The last switch was followed by a passing readiness check.
    """

    env: str
    current: str | None
    previous: str | None
    validated: str | None
    validated_all: frozenset[str]
    bad: frozenset[str]
    releases: tuple[str, ...]
    lock: dict[str, Any] | None
    events: tuple[Event, ...]
    warnings: tuple[str, ...]
    settled: bool = False

    def is_good(self, sha: str) -> bool:
        """Whether ``sha`` was validated by CI and not marked bad since."""
        return sha in self.validated_all and sha not in self.bad

    def marked_bad(self, sha: str) -> Event | None:
        """The ``marked_bad`` event behind ``sha``'s bad verdict, or None if not bad.

        ``bad`` says whether; this says when, by whom and why (a rollback's event
        reads ``rolled back: <reason>``), for messages that must explain it.
        """
        if sha not in self.bad:
            return None
        return next(
            e for e in reversed(self.events) if e.event == "marked_bad" and e.sha == sha
        )

    def deployed(self, sha: str) -> bool:
        """Whether a deploy of ``sha`` to this environment was ever started."""
        return any(e.event == "deploy" and e.sha == sha for e in self.events)


def release_order(events: Iterable[Event]) -> dict[str, int]:
    """Each sha's position in time (higher is newer): when it was last deployed.

    The one definition of "newer release", used to sort kept releases and to move
    ``validated`` only forward. A rollback does not make a release newer: it runs
    again, but it is still the older commit.
    """
    return {
        event.sha: index
        for index, event in enumerate(events)
        if event.sha and event.event == "deploy"
    }


def replay(
    env: str,
    events: Iterable[Event],
    *,
    current: str | None = None,
    validated: str | None = None,
    releases: Iterable[str] = (),
    lock: dict[str, Any] | None = None,
    warnings: Iterable[str] = (),
) -> EnvState:
    """Replay a ledger (and what the host's files say) into an environment's state.

    Args:
        env: The environment's name.
        events: The ledger's events, oldest first.
        current: The sha the ``current`` symlink names, if any.
        validated: The sha the ``validated`` file holds, if any.
        releases: The release directories on the host.
        lock: The lock holder's details, when the lock is held.
        warnings: Problems found while reading (corrupt ledger lines).

    Returns:
        The state.
    """
    history = tuple(events)
    validated_all, bad = _verdicts(history, validated)
    return EnvState(
        env=env,
        current=current,
        previous=_previous(history, current),
        validated=validated,
        validated_all=validated_all,
        bad=bad,
        releases=_newest_first(releases, history),
        lock=lock,
        events=history,
        warnings=tuple(warnings),
        settled=_settled(history, current),
    )


def _verdicts(
    history: tuple[Event, ...], validated: str | None
) -> tuple[frozenset[str], frozenset[str]]:
    """Every sha CI validated (the ``validated`` file's too), and those now bad.

    A sha's latest verdict wins: validated after marked bad is good again.
    """
    validated_all: set[str] = {validated} if validated else set()
    verdicts: dict[str, str] = {}
    for event in history:
        if event.event == "validated" and event.sha:
            validated_all.add(event.sha)
            verdicts[event.sha] = "validated"
        elif event.event == "marked_bad" and event.sha:
            verdicts[event.sha] = "bad"
    bad = frozenset(sha for sha, verdict in verdicts.items() if verdict == "bad")
    return frozenset(validated_all), bad


def _previous(history: tuple[Event, ...], current: str | None) -> str | None:
    """What ran before the last switch to ``current`` (never ``current`` itself)."""
    previous = None
    for event in history:
        # A switch to what already ran (a rerun after a crash) keeps previous.
        if (
            event.event == "switch"
            and event.sha == current
            and event.previous != event.sha
        ):
            previous = event.previous
    return previous if previous != current else None


def _settled(history: tuple[Event, ...], current: str | None) -> bool:
    """Whether the last switch was followed by a passing readiness check.

    Then what runs is what ``current`` names (a run killed mid-deploy leaves it
    false).
    """
    settled = False
    for event in history:
        if event.event == "switch":
            settled = False
        elif event.event == "health" and event.outcome == "ok":
            settled = event.sha == current
    return settled


def _newest_first(
    releases: Iterable[str], history: tuple[Event, ...]
) -> tuple[str, ...]:
    """The release directories, newest first by :func:`release_order`."""
    order = release_order(history)
    return tuple(
        sorted(sorted(set(releases)), key=lambda sha: order.get(sha, -1), reverse=True)
    )
