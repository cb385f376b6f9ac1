"""Step timing and progress lines, so long steps show what they are doing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Timeline:
    """Time named steps and print one line when each starts and ends.

    Args:
        say: Prints one console line.
    """

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.durations: dict[str, float] = {}
        self.started = time.monotonic()
        #: The steps carried out, by name (:class:`cicd.core.decisions.Step`).
        self.actions: list[str] = []

    def did(self, action: str) -> None:
        """Note that the step named ``action`` was carried out."""
        self.actions.append(action)

    @contextmanager
    def step(self, name: str, label: str) -> Iterator[None]:
        """Time the block as step ``name``; print ``label`` before and after."""
        self.say(f"… {label}")
        start = time.monotonic()
        try:
            yield
        except BaseException:
            self.durations[name] = time.monotonic() - start
            self.say(f"✗ {label} failed after {self.durations[name]:.2f}s")
            raise
        self.durations[name] = time.monotonic() - start
        self.say(f"✓ {label} ({self.durations[name]:.2f}s)")

    @property
    def total(self) -> float:
        """Seconds since the timeline started."""
        return time.monotonic() - self.started
