"""The record of a machine's configuration: written by setup, read here and over SSH.

The commands run on a real shell (the runner's local path) with HOME pointed at a
temporary directory, as they would in the SSH user's home on a host.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from invoke import Context

from cicd.core import config
from cicd.core.record import RECORD, Record, parse
from cicd.host import record
from cicd.core.errors import ConfigError, UsageError
from cicd.transport.runner import Runner

VM_TOML = """\
[tool.cicd]
root = "/srv/mangetamain"
[tool.cicd.env.prod]
port = 8501
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home directory of its own for the shell the runner starts."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_a_record_reads_back_what_it_wrote(home: Path) -> None:
    wanted = Record('/srv/a "b"/cicd.toml', "/srv/mangetamain/tool")
    runner = Runner(Context())
    runner.run(record.write_command(wanted))
    text = (home / RECORD).read_text()
    assert parse(text, "here") == wanted
    assert runner.run(record.read_command()).stdout == wanted.text()


@pytest.mark.parametrize(
    "text, problem",
    [
        ("config = [", "invalid TOML"),
        ('config = "relative.toml"', "config must be an absolute path"),
        ('config = "/c.toml"\ntool = "venv"', "tool must be an absolute path"),
        ("tool = 3", "config must be an absolute path"),
    ],
)
def test_a_bad_record_is_a_one_line_config_error(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse(text, "vm:~/.config/cicd/config.toml")


def test_over_ssh_the_recorded_configuration_and_tool_are_used(
    home: Path, tmp_path: Path
) -> None:
    vm_config = tmp_path / "cicd.toml"
    vm_config.write_text(VM_TOML)
    runner = Runner(Context())
    runner.run(record.write_command(Record(str(vm_config), "/srv/m/tool")))
    settings = record.remote_settings(runner)
    prod = settings.env("prod")
    assert prod.root == "/srv/mangetamain" and prod.port == 8501
    # The tool's programs, as on the VM itself (nothing on the SSH user's PATH).
    assert prod.runtime.supervisord == "/srv/m/tool/bin/supervisord"
    assert prod.runtime.supervisorctl == "/srv/m/tool/bin/supervisorctl"
    assert prod.python == "/srv/m/tool/bin/python"


def test_keys_the_recorded_file_sets_win_over_the_tool(
    home: Path, tmp_path: Path
) -> None:
    vm_config = tmp_path / "cicd.toml"
    vm_config.write_text(VM_TOML + '[tool.cicd.runtime]\nsupervisord = "/opt/sd"\n')
    runner = Runner(Context())
    runner.run(record.write_command(Record(str(vm_config), "/srv/m/tool")))
    assert record.remote_settings(runner).env("prod").runtime.supervisord == "/opt/sd"


def test_no_record_on_the_host_says_what_to_set(home: Path) -> None:
    with pytest.raises(UsageError) as raised:
        record.remote_settings(Runner(Context()))
    message = str(raised.value)
    assert "cicd setup --user USER" in message and "CICD_CONFIG" in message
    assert "nothing was done" in message


def test_a_recorded_file_that_is_gone_is_said(home: Path, tmp_path: Path) -> None:
    runner = Runner(Context())
    gone = tmp_path / "gone.toml"
    runner.run(record.write_command(Record(str(gone))))
    with pytest.raises(UsageError, match=f"{gone}, is missing or empty"):
        record.remote_settings(runner)


def test_the_local_record_is_found_without_cicd_config(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vm_config = tmp_path / "cicd.toml"
    vm_config.write_text(VM_TOML)
    Runner(Context()).run(record.write_command(Record(str(vm_config))))
    monkeypatch.delenv("CICD_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = config.load()
    assert settings.path == vm_config and settings.explicit
    assert settings.env("prod").root == "/srv/mangetamain"


def test_the_embedded_default_is_not_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CICD_CONFIG", raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")
    monkeypatch.chdir(Path(__file__).parents[2])
    assert not config.load().explicit
