"""Every option of every task and every environment value cicd reads, given hostile
values: one line, exit 2, nothing changed, under 1 kB of output, no traceback.

The table is built from the collection itself, so a new task or option with no row
here fails :func:`test_the_table_covers_every_option`. Each option gets the hostile
values it must refuse: a word where a number goes, shell metacharacters, 10 kB, a
carriage return and line feed (an injected header), non-latin-1 characters (no
HTTP header carries them), a terminal escape sequence; a value that is legitimate
for an option (metacharacters in a message, a file name in Cyrillic) is left out,
with the reason.

The cases run in this process through the ``cicd`` program (invoke's Program with
the collection), which parses and runs exactly as the ``invoke`` and ``fab``
programs do, in a few milliseconds instead of the half second a new interpreter
costs; a few cases run as real ``invoke``, ``fab`` and ``cicd`` processes at the end.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from invoke.collection import Collection

from cicd import __version__
from cicd.cli import CicdProgram
from cicd.core.inputs import ENVIRONMENT
from cicd.tasks import ns
from tests.conftest import AppRepo, Project, distinct_ports, git, invoke, invoke_argv

NOT_A_NUMBER = "twelve"
SHELL = "$(touch pwned); `touch pwned` | rm -rf ~ &"
HUGE = "9" * 10240
HEADER = "v1\r\nX-Injected: yes"
NON_LATIN1 = "токен☃"
ESCAPE = "\x1b]0;pwned\x07\x1b[2J"
ALL = (NOT_A_NUMBER, SHELL, HUGE, HEADER, NON_LATIN1)
LABELS = {
    NOT_A_NUMBER: "word",
    SHELL: "shell",
    HUGE: "10kB",
    HEADER: "crlf",
    NON_LATIN1: "non-latin-1",
    ESCAPE: "escape",
}

#: The hostile values each option must refuse, by parameter name.
OPTION_VALUES: dict[str, tuple[str, ...]] = {
    "lock_wait": ALL,
    "patience": ALL,
    "lines": ALL,
    "days": ALL,
    "run_id": ALL,
    "env": ALL,  # "twelve" is an unknown environment
    "sha": ALL,  # "twelve" is no commit of the source
    "to": ALL,  # "twelve" is no kept release
    "from_": ALL,  # "twelve" is no backup stamp
    "outcome": ALL,
    "since": ALL,
    "url": ALL,
    "unit_dir": ALL,  # relative ones are refused too
    # A wrong word is a cancellation, recorded on purpose (the audit trail).
    "confirm": (SHELL, HUGE, HEADER, NON_LATIN1, ESCAPE),
    "user": (SHELL, HUGE, HEADER, NON_LATIN1),  # "twelve" is an account name
    # Free text: metacharacters, words and any script are fine in a reason, a
    # message or a file name; length and control characters are not.
    "reason": (HUGE, HEADER, ESCAPE),
    "text": (HUGE, HEADER, ESCAPE),
    "html": (HUGE, HEADER, ESCAPE, "r/" + "n" * 300 + ".html"),
}

#: The hostile values each environment variable must refuse.
ENV_VALUES: dict[str, tuple[str, ...]] = {
    "CICD_CONFIG": ALL,  # a file that does not exist
    "CICD_CHROMIUM": (HUGE, HEADER, ESCAPE),  # a program's name or path
    "CICD_GITHUB_TOKEN": (SHELL, HUGE, HEADER, NON_LATIN1),
    "CICD_JOB_TOKEN": (SHELL, HUGE, HEADER, NON_LATIN1),
    "DISCORD_WEBHOOK_URL": ALL,
    "GITHUB_ACTOR": (SHELL, HUGE, HEADER, NON_LATIN1),
    "GITHUB_API_URL": ALL,
    "GITHUB_REPOSITORY": ALL,
    "GITHUB_RUN_ID": ALL,
    "GITHUB_SERVER_URL": ALL,
    "GITHUB_SHA": (SHELL, HUGE, HEADER, NON_LATIN1),  # --sha is given: unread
    "GITHUB_TOKEN": (SHELL, HUGE, HEADER, NON_LATIN1),
}

#: What the refusal of a well-formed value that means nothing names instead of
#: the flag.
SAID = {"env": "unknown environment", "sha": "revision"}

#: What a task needs besides the option under test to get past its own checks.
BASE: dict[str, list[str]] = {
    "deploy.preprod": ["--sha", "{sha}"],
    "deploy.prod": ["--confirm", "DEPLOY", "--sha", "{sha}"],
    "notify.send": ["--text", "hello"],
    "secrets.reload": ["--env", "preprod"],
    "watch": ["--sha", "{sha}"],
    "watch.verdict": ["--sha", "{sha}", "--run-id", "1"],
    "health": ["--monitor"],  # --patience goes with it
    "lock.acquire": ["--reason", "maintenance"],
    "backup.restore": ["--from", "20261207T000000Z"],
}


def task_options(collection: Collection, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every (task, option that takes a value) of the collection."""
    for name, each in collection.tasks.items():
        full = prefix.rstrip(".") if collection.default == name else prefix + name
        parameters = list(inspect.signature(each.body).parameters.values())[1:]
        for parameter in parameters:
            # Booleans are flags and take no value; every other option does.
            if not isinstance(parameter.default, bool):
                yield full, parameter.name
    for name, sub in collection.collections.items():
        yield from task_options(sub, f"{prefix}{name}.")


OPTIONS = sorted(task_options(ns))
CASES = [
    pytest.param(task, option, value, id=f"{task}--{option}={LABELS.get(value, 'x')}")
    for task, option in OPTIONS
    for value in OPTION_VALUES.get(option, ())
]
ENV_CASES = [
    pytest.param(name, value, id=f"{name}={LABELS.get(value, 'x')}")
    for name, values in ENV_VALUES.items()
    for value in values
]


@dataclass
class World:
    """A configured project whose root no case may create."""

    project: Project
    sha: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """One project for the whole table: nothing is ever deployed in it."""
    base = tmp_path_factory.mktemp("hostile")
    source = base / "source"
    source.mkdir()
    git(source, "init", "-q", "-b", "main")
    repo = AppRepo(source)
    project = Project(base / "cicd.toml", base / "target root", *distinct_ports(repo))
    project.write()
    return World(project, repo.commit("v1"))


@pytest.fixture
def here(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A clean environment pointing at the world, run from an empty directory."""
    monkeypatch.setenv("CICD_CONFIG", str(world.project.config_path))
    for name in ENVIRONMENT:
        if name != "CICD_CONFIG":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    before = snapshot(world.project.root)
    yield tmp_path
    assert snapshot(world.project.root) == before, "something changed under the root"
    assert not list(tmp_path.iterdir()), "something was written where it ran"


def snapshot(root: Path) -> list[tuple[str, int]]:
    """Every path under ``root`` with its size: what a change would show in."""
    if not root.exists():
        return []
    return sorted(
        (str(p.relative_to(root)), p.lstat().st_size) for p in root.rglob("*")
    )


@dataclass
class Outcome:
    """How a run ended and what it printed."""

    code: object
    stdout: str
    stderr: str


def run(argv: list[str], capfd: pytest.CaptureFixture[str]) -> Outcome:
    """Run the ``cicd`` program in this process, as ``cicd ARGV`` would."""
    program = CicdProgram(namespace=ns, version=__version__, name="cicd", binary="cicd")
    capfd.readouterr()
    try:
        program.run(["cicd", *argv])
        code: object = 0
    except SystemExit as end:
        code = end.code
    except Exception as error:  # what a user would see as a traceback
        code = f"traceback: {error!r}"[:300]
    out, err = capfd.readouterr()
    return Outcome(code, out, err)


def assert_refused(done: Outcome, *names: str) -> None:
    """Exit 2, one ``error:`` line naming one of ``names``, under 1 kB, no traceback."""
    shown = (done.stdout + done.stderr)[:600]
    assert done.code == 2, f"{done.code}: {shown}"
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    assert any(name in lines[0] for name in names), lines[0]
    assert len((done.stdout + done.stderr).encode()) < 1024, shown
    assert "Traceback" not in done.stdout + done.stderr


def flag(option: str) -> str:
    """``lock_wait`` as a user types it: ``--lock-wait``."""
    return "--" + option.replace("_", "-")


def test_the_table_covers_every_option() -> None:
    missing = {option for _, option in OPTIONS} - set(OPTION_VALUES)
    assert not missing, f"give these options their hostile values: {missing}"
    assert set(ENV_VALUES) == set(ENVIRONMENT)


@pytest.mark.parametrize(("task", "option", "value"), CASES)
@pytest.mark.usefixtures("here")
def test_a_hostile_option_is_one_line_exit_2_and_changes_nothing(
    world: World, capfd: pytest.CaptureFixture[str], task: str, option: str, value: str
) -> None:
    base = [arg.format(sha=world.sha) for arg in BASE.get(task, [])]
    if flag(option) in base:
        at = base.index(flag(option))
        del base[at : at + 2]
    done = run([task, *base, f"{flag(option)}={value}"], capfd)
    assert_refused(done, flag(option), SAID.get(option, flag(option)))


@pytest.mark.parametrize(("name", "value"), ENV_CASES)
@pytest.mark.usefixtures("here")
def test_a_hostile_environment_value_is_one_line_exit_2_and_changes_nothing(
    world: World,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
) -> None:
    monkeypatch.setenv(name, value)
    # The most consequential task: a refusal here means nothing was deployed.
    done = run(["deploy.preprod", "--sha", world.sha], capfd)
    assert_refused(done, name)


@pytest.mark.usefixtures("here")
def test_with_json_the_refusal_is_also_the_json_document(
    world: World, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", HEADER)
    done = run(["watch.verdict", "--sha", world.sha, "--run-id", "1", "--json"], capfd)
    assert_refused(done, "GITHUB_TOKEN")
    document = json.loads(done.stdout)
    assert document["task"] == "watch.verdict" and document["ok"] is False
    assert "GITHUB_TOKEN" in document["error"] and "X-Injected" not in done.stdout


@pytest.mark.parametrize("value", [HUGE, "--" + HUGE], ids=["argument", "flag"])
@pytest.mark.usefixtures("here")
def test_an_unknown_huge_argument_is_clipped(
    capfd: pytest.CaptureFixture[str], value: str
) -> None:
    assert_refused(run(["status", value], capfd), "error:")


def test_the_programs_themselves_refuse_in_one_line(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's own cases, as real ``invoke``, ``cicd`` and ``fab`` processes."""
    monkeypatch.setenv("CICD_CONFIG", str(world.project.config_path))
    for name in ENVIRONMENT:
        if name != "CICD_CONFIG":
            monkeypatch.delenv(name, raising=False)
    cicd = [sys.executable, "-m", "cicd"]
    fab = [sys.executable, "-m", "fabric", "--search-root", invoke_argv()[4]]
    runs = [
        (
            invoke_argv("deploy.preprod", "--sha", world.sha, "--lock-wait", "x"),
            {},
            "--lock-wait",
        ),
        (
            invoke_argv("deploy.prod", "--confirm", HUGE, "--sha", world.sha),
            {},
            "--confirm",
        ),
        (invoke_argv("rollback", "--lock-wait", HUGE), {}, "--lock-wait"),
        (invoke_argv("report", "--html", "/" + "n" * 5000), {}, "--html"),
        (
            [*cicd, "watch.verdict", "--sha", world.sha, "--run-id", "1", "--json"],
            {"GITHUB_TOKEN": "ghp_abc\r\ndef"},
            "GITHUB_TOKEN",
        ),
        *(
            ([*fab, "-H", host, "status"], {}, "not a valid host")
            for host in ("vm;touch pwned", "vm:$(touch pwned)", HUGE, "vm\r\n", "вм")
        ),
    ]
    for argv, env, names in runs:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            cwd=tmp_path,
            timeout=60,
        )
        assert_refused(Outcome(done.returncode, done.stdout, done.stderr), names)
    assert snapshot(world.project.root) == [] and not list(tmp_path.iterdir())
    assert invoke("--list").returncode == 0  # the rule refuses only bad values
