"""Unit tests of :mod:`cicd.core.window`: the deploy window production is changed in.

Moments are aware datetimes in UTC; the window's hours are wall-clock hours of its
zone, so the same UTC moment is inside or outside depending on the date (DST).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cicd.core.errors import ConfigError
from cicd.core.window import Window, parse_window

KEY = "tool.cicd.env.prod.window"


def window(text: str) -> Window:
    found = parse_window(text, KEY)
    assert found is not None
    return found


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_no_window_is_none() -> None:
    assert parse_window("", KEY) is None
    assert parse_window("   ", KEY) is None


def test_tuesday_to_thursday_morning_in_paris_winter() -> None:
    """The original's advice; Paris is UTC+1 in December."""
    w = window("Tue-Thu 08:00-16:00 Europe/Paris")

    assert w.days == frozenset({1, 2, 3})
    assert w.contains(utc(2026, 12, 8, 7, 0))  # Tue 08:00 Paris
    assert not w.contains(utc(2026, 12, 8, 6, 59))  # Tue 07:59 Paris
    assert not w.contains(utc(2026, 12, 10, 15, 0))  # Thu 16:00 Paris: closed
    assert w.contains(utc(2026, 12, 10, 14, 59))
    assert not w.contains(utc(2026, 12, 11, 9, 0))  # Friday
    assert not w.contains(utc(2026, 12, 7, 9, 0))  # Monday


def test_the_hours_follow_the_zones_daylight_saving() -> None:
    """06:30 UTC is 08:30 in Paris in July (UTC+2), 07:30 in January (UTC+1)."""
    w = window("Tue-Thu 08:00-16:00 Europe/Paris")

    assert w.contains(utc(2026, 7, 7, 6, 30))
    assert not w.contains(utc(2026, 1, 6, 6, 30))
    # The Sunday of the spring change: 01:00 UTC is 03:00 in Paris, not 02:00.
    night = window("Sun 02:30-03:30 Europe/Paris")
    assert night.contains(utc(2026, 3, 29, 1, 15))  # 03:15 local
    assert not night.contains(utc(2026, 3, 29, 0, 45))  # 01:45 local


def test_day_lists_and_ranges_that_wrap_past_sunday() -> None:
    assert window("Mon,Wed,Fri 10:00-11:00").days == frozenset({0, 2, 4})
    assert window("Fri-Mon 10:00-11:00").days == frozenset({4, 5, 6, 0})
    assert window("sat 10:00-11:00 UTC").days == frozenset({5})
    assert window("Mon-Wed,Sun 10:00-11:00").days == frozenset({0, 1, 2, 6})


def test_hours_that_wrap_past_midnight_count_from_the_day_they_start() -> None:
    w = window("Fri 22:00-06:00 UTC")

    assert w.contains(utc(2026, 12, 11, 23, 0))  # Friday night
    assert w.contains(utc(2026, 12, 12, 5, 59))  # Saturday early: still Friday's
    assert not w.contains(utc(2026, 12, 12, 6, 0))
    assert not w.contains(utc(2026, 12, 12, 23, 0))  # Saturday night: not listed
    assert not w.contains(utc(2026, 12, 11, 5, 0))  # Friday early: Thursday's night


def test_a_whole_day_ends_at_24_00() -> None:
    w = window("Wed 00:00-24:00 UTC")

    assert w.contains(utc(2026, 12, 9, 0, 0)) and w.contains(utc(2026, 12, 9, 23, 59))
    assert not w.contains(utc(2026, 12, 10, 0, 0))


def test_the_zone_defaults_to_utc() -> None:
    assert window("Mon 08:00-09:00").zone.key == "UTC"


def test_describe_says_where_now_stands_and_when_it_opens() -> None:
    w = window("Tue-Thu 08:00-16:00 Europe/Paris")

    outside = w.describe(utc(2026, 12, 11, 16, 5))  # Friday 17:05 Paris
    assert outside == (
        "Fri 17:05 Europe/Paris, outside Tue-Thu 08:00-16:00 Europe/Paris "
        "(opens Tue 2026-12-15 08:00)"
    )
    assert w.describe(utc(2026, 12, 9, 10, 0)) == (
        "Wed 11:00 Europe/Paris, inside Tue-Thu 08:00-16:00 Europe/Paris"
    )


def test_the_next_opening_is_today_when_it_has_not_opened_yet() -> None:
    w = window("Mon-Fri 09:00-17:00 Europe/Paris")

    opening = w.next_opening(utc(2026, 12, 7, 6, 0))  # Monday 07:00 Paris
    assert opening.isoformat() == "2026-12-07T09:00:00+01:00"
    # Across the autumn change: Friday's 09:00 is UTC+2, Monday's UTC+1.
    monday = w.next_opening(utc(2026, 10, 23, 16, 0))
    assert monday.isoformat() == "2026-10-26T09:00:00+01:00"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("Tue-Thu", "expected DAYS START-END [ZONE]"),
        ("Tue-Thu 08:00-16:00 Europe/Paris extra", "expected DAYS START-END [ZONE]"),
        ("Tues 08:00-16:00", "unknown day in 'Tues'"),
        ("Tue-Thu 8h-16h", "hours are HH:MM-HH:MM, not '8h-16h'"),
        ("Tue 08:00-25:00", "no such time in '08:00-25:00'"),
        ("Tue 08:61-09:00", "no such time"),
        ("Tue 24:00-09:00", "no such time"),
        ("Tue 08:00-08:00", "opens and closes at the same minute"),
        ("Tue 08:00-16:00 Europe/Nowhere", "unknown time zone 'Europe/Nowhere'"),
        ("Tue 08:00-16:00 ../../etc/passwd", "unknown time zone"),
    ],
)
def test_a_bad_window_is_a_config_error_naming_the_key(text: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_window(text, KEY)

    message = str(caught.value)
    assert message.startswith(f"{KEY}: ") and said in message
    assert "\n" not in message
