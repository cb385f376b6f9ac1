"""Unit tests of :mod:`cicd.core.ledger`: one JSON line per event, forgiving reads."""

from __future__ import annotations

import json

import pytest

from cicd.core.ledger import Event, actor, parse


def sample(**fields: object) -> Event:
    """Return a fully specified event (no field left to its clock-based default)."""
    values: dict[str, object] = {
        "event": "switch",
        "env": "prod",
        "sha": "a" * 40,
        "previous": "b" * 40,
        "outcome": "ok",
        "detail": "deploy by hand",
        "durations": {"export": 1.25, "health": 0.5},
        "time": "2024-05-01T12:00:00.000000Z",
        "actor": "ada",
        "host": "vm1",
    }
    values.update(fields)
    return Event(**values)  # type: ignore[arg-type]


def test_event_round_trip() -> None:
    event = sample()

    line = event.to_json()
    events, warnings = parse(line + "\n")

    assert "\n" not in line
    assert events == [event]
    assert warnings == []


def test_to_json_is_compact_and_omits_empty_optional_fields() -> None:
    line = sample(detail="", durations={}, sha=None).to_json()

    assert json.loads(line) == {
        "time": "2024-05-01T12:00:00.000000Z",
        "env": "prod",
        "event": "switch",
        "sha": None,
        "previous": "b" * 40,
        "outcome": "ok",
        "actor": "ada",
        "host": "vm1",
    }
    assert ", " not in line and '": ' not in line


def test_to_json_rounds_durations_and_keeps_unicode() -> None:
    data = json.loads(sample(durations={"x": 1.23456}, detail="déployé").to_json())

    assert data["durations"] == {"x": 1.235}
    assert data["detail"] == "déployé"


def test_corrupt_line_in_the_middle_is_skipped_with_its_line_number() -> None:
    first, last = sample(event="deploy"), sample(event="validated")
    text = "\n".join([first.to_json(), '{"event": "switch", "env', last.to_json()])

    events, warnings = parse(text)

    assert [e.event for e in events] == ["deploy", "validated"]
    assert len(warnings) == 1
    assert warnings[0].startswith("ledger line 2 skipped")


def test_blank_lines_are_ignored_and_non_objects_are_corrupt() -> None:
    lines = ["", sample().to_json(), "   ", "[1, 2]", '{"env": "prod"}']
    text = "\n".join(lines) + "\n"

    events, warnings = parse(text)

    assert len(events) == 1
    assert [w.split(" skipped")[0] for w in warnings] == [
        "ledger line 4",
        "ledger line 5",
    ]


def test_lines_are_split_on_newlines_only() -> None:
    # U+2028 inside a value is not a line break: line numbers stay the file's.
    odd = sample().to_json().replace('"ok"', '"o\u2028k"') + "\n"
    assert parse(odd)[1] == [] and len(parse(odd)[0]) == 1


def test_unknown_fields_are_ignored() -> None:
    line = json.dumps({"event": "ci", "env": "preprod", "future": {"x": 1}})

    events, warnings = parse(line)

    assert warnings == []
    assert events[0].event == "ci" and events[0].outcome == "ok"


def test_actor_uses_github_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")

    assert actor() == "octocat"
    assert Event(event="ci", env="preprod").actor == "octocat"


def test_actor_falls_back_to_the_local_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "localdev")
    monkeypatch.setenv("LOGNAME", "localdev")

    assert actor() == "localdev"
