"""The pieces of ``invoke logs``: the follow commands as data, and the streaming runner.

The runner runs real commands through a real ``invoke.Context``.
"""

from __future__ import annotations

import io
from pathlib import Path

import invoke
import pytest

from cicd.commands import cmd, compose, files, sh
from cicd.core.config import from_table
from cicd.core.layout import EnvPaths
from cicd.transport.runner import Runner
from cicd.runtime import runtime_for
from cicd.runtime.compose import ComposeRuntime


def test_follow_is_tail_by_name_of_the_log() -> None:
    assert files.follow("/srv/a b/app.log", 5).argv == (
        "tail",
        "-n",
        "5",
        "-F",
        "--",
        "/srv/a b/app.log",
    )


def test_compose_logs_follow_only_when_asked() -> None:
    args = (compose.V2, "/r/c.yml", "proj", "app", {"CICD_ENV": "preprod"})

    assert "--follow" not in compose.logs(*args, 10).argv
    followed = compose.logs(*args, 10, follow=True)
    assert followed.argv[-3:] == ("10", "--follow", "app")
    assert followed.env == (("CICD_ENV", "preprod"),)


def test_each_runtime_follows_its_own_log(tmp_path: Path) -> None:
    settings = from_table({}, project_dir=tmp_path).env("preprod")
    paths = EnvPaths("/srv/cicd", "preprod")
    runner = Runner(invoke.Context())

    in_place = runtime_for(runner, settings, paths).follow(3)
    blue = runtime_for(runner, settings, paths, "blue").follow(3)

    assert in_place.argv[-1] == "/srv/cicd/preprod/logs/app.log"
    assert blue.argv[-1] == "/srv/cicd/preprod/logs/app-blue.log"
    container = ComposeRuntime(runner, settings, paths)
    runner.facts["compose"] = compose.V1  # known already: nothing is probed
    assert container.follow(7).argv[:1] == ("docker-compose",)
    assert container.follow(7).argv[-4:] == ("--tail", "7", "--follow", "app")


def test_stream_writes_each_line_as_it_comes_and_redacts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", "http://127.0.0.1:9/api/webhooks/1/tok")
    out = io.StringIO()
    line = "one\nposting to http://127.0.0.1:9/api/webhooks/1/tok\nlast, no newline"

    exited = Runner(invoke.Context()).stream(cmd("printf", "%s", line), out)

    assert exited == 0
    assert out.getvalue() == "one\nposting to ***\nlast, no newline"


def test_stream_returns_the_exit_code_and_takes_ctrl_c_as_the_way_out() -> None:
    runner = Runner(invoke.Context())

    assert runner.stream(sh("exit 3"), io.StringIO()) == 3
    assert runner.stream(sh('kill -INT "$$"'), io.StringIO()) == 0
