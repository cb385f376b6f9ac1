"""A deploy window: the days and hours production may change, in a time zone.

The original design's advice ("Avoid: Friday evening … Prefer: Tuesday–Thursday
morning") as a rule the pre-flight checks: ``"Tue-Thu 08:00-16:00 Europe/Paris"``
lets ``deploy.prod`` run on Tuesday, Wednesday and Thursday from 08:00 to 16:00,
Paris time, whatever the machine's clock zone and across daylight-saving changes
(the hours are wall-clock hours of the zone, read with :mod:`zoneinfo`).

The text is ``DAYS START-END [ZONE]``: days are a comma-separated list of days or
ranges (``Mon-Fri``, ``Mon,Wed,Fri``, ``Fri-Mon`` wraps past Sunday); hours are
``HH:MM`` (``24:00`` ends at midnight); an end before the start wraps past midnight
(``Mon-Fri 22:00-06:00``: each such night, counted from the day it starts); the zone
is an IANA name, UTC when left out. Pure: the moment is always given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cicd.core.errors import ConfigError

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Minutes in a day: ``24:00``.
DAY = 24 * 60
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
EXAMPLE = "Tue-Thu 08:00-16:00 Europe/Paris"


@dataclass(frozen=True)
class Window:
    """When production may change.

    Attributes:
        text: The window as configured.
        days: The weekdays a window opens on (0 is Monday).
        start: Opening, in minutes after local midnight.
        end: Closing, in minutes after local midnight (at most :data:`DAY`); at or
            before ``start``, the window closes the next day.
        zone: The time zone the hours are read in.
    """

    text: str
    days: frozenset[int]
    start: int
    end: int
    zone: ZoneInfo

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` (an aware datetime) falls inside the window."""
        local = moment.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        today = local.weekday()
        if self.start < self.end:
            return today in self.days and self.start <= minute < self.end
        # Wraps past midnight: tonight's opening, or last night's still open.
        yesterday = (today - 1) % 7
        return (today in self.days and minute >= self.start) or (
            yesterday in self.days and minute < self.end
        )

    def next_opening(self, moment: datetime) -> datetime:
        """The next time the window opens after ``moment``, in the window's zone."""
        local = moment.astimezone(self.zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        days = (midnight + timedelta(days=offset) for offset in range(8))
        # Wall-clock arithmetic in the zone, then normalised through UTC (a time a
        # DST jump skips becomes the first one that exists). Eight days hold the
        # next opening: a window has at least one day (checked at load).
        openings = (
            (day + timedelta(minutes=self.start)).astimezone(UTC).astimezone(self.zone)
            for day in days
            if day.weekday() in self.days
        )
        return next(o for o in openings if o.astimezone(UTC) > moment.astimezone(UTC))

    def describe(self, moment: datetime) -> str:
        """Where ``moment`` stands: its local time, and the next opening if outside.

        For example ``Fri 17:05 Europe/Paris, outside Tue-Thu 08:00-16:00
        Europe/Paris (opens Tue 08:00)``.
        """
        local = moment.astimezone(self.zone)
        now = f"{DAYS[local.weekday()]} {local:%H:%M} {self.zone.key}"
        if self.contains(moment):
            return f"{now}, inside {self.text}"
        opening = self.next_opening(moment)
        return (
            f"{now}, outside {self.text} "
            f"(opens {DAYS[opening.weekday()]} {opening:%Y-%m-%d %H:%M})"
        )


def parse_window(text: str, key: str) -> Window | None:
    """Read a window from its text; ``""`` is no window at all.

    Args:
        text: ``DAYS START-END [ZONE]``, e.g. ``Tue-Thu 08:00-16:00 Europe/Paris``.
        key: The configuration key it came from, named in the error.

    Raises:
        ConfigError: The text is not a window; the message names ``key``.
    """
    if not text.strip():
        return None
    parts = text.split()
    if len(parts) not in (2, 3):
        raise _bad(key, text, "expected DAYS START-END [ZONE]")
    days = _days(parts[0], key, text)
    start, end = _hours(parts[1], key, text)
    zone = _zone(parts[2] if len(parts) == 3 else "UTC", key)
    return Window(" ".join(parts), days, start, end, zone)


def _bad(key: str, text: str, why: str) -> ConfigError:
    return ConfigError(f"{key}: {why} (like {EXAMPLE!r}), got {text!r}")


def _days(spec: str, key: str, text: str) -> frozenset[int]:
    """``Mon-Fri``, ``Mon,Wed``, ``Fri-Mon`` (wrapping): the weekdays named."""
    names = {name.lower(): index for index, name in enumerate(DAYS)}
    days: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        if first.lower() not in names or (last and last.lower() not in names):
            raise _bad(key, text, f"unknown day in {part!r} (days are Mon to Sun)")
        low = names[first.lower()]
        high = names[last.lower()] if last else low
        days.update((low + step) % 7 for step in range((high - low) % 7 + 1))
    return frozenset(days)


def _hours(spec: str, key: str, text: str) -> tuple[int, int]:
    """``08:00-16:00``: the opening and closing minute of the day."""
    found = _HOURS.match(spec)
    if found is None:
        raise _bad(key, text, f"hours are HH:MM-HH:MM, not {spec!r}")
    start_h, start_m, end_h, end_m = (int(g) for g in found.groups())
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if start_m > 59 or end_m > 59 or start >= DAY or end > DAY:
        raise _bad(key, text, f"no such time in {spec!r}")
    if start == end:
        raise _bad(key, text, "the window opens and closes at the same minute")
    return start, end


def _zone(name: str, key: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(
            f"{key}: unknown time zone {name!r} (an IANA name such as Europe/Paris, "
            "or UTC)"
        ) from None
