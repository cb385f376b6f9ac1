"""Unit tests of :mod:`cicd.commands` and its builders.

Builders are pure, so most tests assert the argv they return. The shell scripts of
:mod:`cicd.commands.files` (and ``git.export``) are also run for real with ``sh`` in
a temporary directory: only running a script proves it right. Hostile values use
``touch`` as their payload, never anything destructive, so a quoting bug would only
leave a stray file behind, which the tests then detect.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shlex
import subprocess
import tarfile
from pathlib import Path

import pytest

from cicd.commands import Command, cmd, compose, files, git, sh, supervisor, venv

#: The value from the brief: only rendered and split, never run.
RM_VALUE = "; rm -rf / $(x) 'q\""

#: Shell metacharacters whose only effect, if ever parsed, is to create a file.
HOSTILE = (
    "; touch pwned1 && touch pwned2 | touch pwned3 $(touch pwned4) `touch pwned5`"
    " 'q\" > pwned6 * \\ $HOME\n touch pwned7 # end"
)


def run(command: Command, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command's rendered line with ``sh -c``, capturing its output."""
    return subprocess.run(
        ["sh", "-c", command.render()],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )


def output(command: Command, cwd: Path | None = None) -> str:
    """Run a command that must succeed and return its stdout."""
    result = run(command, cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- Command, cmd, sh -------------------------------------------------------


def test_render_quotes_a_hostile_value_exactly_once() -> None:
    line = cmd("echo", RM_VALUE).render()

    assert line == "echo " + shlex.quote(RM_VALUE)
    assert shlex.split(line) == ["echo", RM_VALUE]


def test_render_quotes_cwd_and_env_values() -> None:
    command = cmd("prog", "arg", cwd="/tmp/a b;c", env={"VALUE": RM_VALUE})

    line = command.render()

    assert line == (
        "cd '/tmp/a b;c' && env VALUE=" + shlex.quote(RM_VALUE) + " prog arg"
    )
    assert str(command) == line


def test_hostile_value_reaches_the_program_as_one_literal_argument(
    tmp_path: Path,
) -> None:
    command = cmd("sh", "-c", 'printf "%s:%s" "$#" "$1"', "sh", HOSTILE)

    assert output(command, cwd=tmp_path) == "1:" + HOSTILE
    assert list(tmp_path.iterdir()) == []


def test_hostile_cwd_and_env_are_never_executed(tmp_path: Path) -> None:
    workdir = tmp_path / "dir; touch pwned0 $(touch pwned8)"
    workdir.mkdir()
    command = cmd(
        "sh",
        "-c",
        'printf "%s" "$VALUE"; pwd',
        cwd=str(workdir),
        env={"VALUE": HOSTILE},
    )

    stdout = output(command, cwd=tmp_path)

    assert stdout == HOSTILE + str(workdir) + "\n"
    assert [p.name for p in tmp_path.iterdir()] == [workdir.name]
    assert list(workdir.iterdir()) == []


def test_sh_binds_values_only_as_positional_parameters(tmp_path: Path) -> None:
    command = sh('printf "%s|%s" "$1" "$2"', HOSTILE, "second")

    assert command.argv == (
        "sh",
        "-c",
        'printf "%s|%s" "$1" "$2"',
        "sh",
        HOSTILE,
        "second",
    )
    assert output(command, cwd=tmp_path) == HOSTILE + "|second"
    assert list(tmp_path.iterdir()) == []


def test_cmd_sorts_env_and_keeps_cwd() -> None:
    command = cmd("prog", env={"B": "2", "A": "1"}, cwd="/srv")

    assert command.argv == ("prog",)
    assert command.env == (("A", "1"), ("B", "2"))
    assert command.cwd == "/srv"


def test_command_needs_a_program() -> None:
    with pytest.raises(ValueError, match="program name"):
        Command(())


@pytest.mark.parametrize("name", ["A-B", "1A", "A B", "A=B", ""])
def test_command_rejects_invalid_env_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid environment variable name"):
        cmd("prog", env={name: "x"})


# -- files: argv ------------------------------------------------------------


def test_files_builders_argv() -> None:
    assert files.mkdirs("/a", "-b").argv == ("mkdir", "-p", "--", "/a", "-b")
    assert files.remove("/a", "/b").argv == ("rm", "-rf", "--", "/a", "/b")
    assert files.exists("/a").argv == ("test", "-e", "/a")
    assert files.link("t", "/l").argv == ("ln", "-sfn", "--", "t", "/l")
    assert files.rename("/s", "/d").argv == ("mv", "-T", "--", "/s", "/d")
    assert files.read("/f").argv[:2] == ("sh", "-c")
    assert files.read("/f").argv[3:] == ("sh", "/f")
    assert files.write_atomic("/f", "text").argv[3:] == ("sh", "/f", "text")
    assert files.archive("/o.tgz", "/b", "x", "y").argv[3:] == (
        "sh",
        "/o.tgz",
        "/b",
        "x",
        "y",
    )


# -- files: run for real ----------------------------------------------------


def test_mkdirs_and_remove(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "deep", tmp_path / "b"

    output(files.mkdirs(str(a), str(b)))
    assert a.is_dir() and b.is_dir()

    output(files.remove(str(tmp_path / "a"), str(b)))
    assert list(tmp_path.iterdir()) == []


def test_read_prints_content_or_nothing_when_missing(tmp_path: Path) -> None:
    path = tmp_path / "f"

    assert output(files.read(str(path))) == ""
    path.write_text("hello\n")
    assert output(files.read(str(path))) == "hello\n"


def test_append_line_twice_then_read(tmp_path: Path) -> None:
    path = str(tmp_path / "ledger.jsonl")

    output(files.append_line(path, '{"n": 1}'))
    output(files.append_line(path, HOSTILE))

    assert output(files.read(path)) == '{"n": 1}\n' + HOSTILE + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.jsonl"]


def test_write_atomic_replaces_content_and_leaves_no_temp_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "validated"
    path.write_text("old content that is longer\n")

    output(files.write_atomic(str(path), "new\n%s\\n"))

    assert path.read_text() == "new\n%s\\n"
    assert [p.name for p in tmp_path.iterdir()] == ["validated"]


def test_write_atomic_creates_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "fresh"

    output(files.write_atomic(str(path), ""))

    assert path.read_text() == ""


def test_switch_symlink_flips_the_link(tmp_path: Path) -> None:
    (tmp_path / "releases" / "a").mkdir(parents=True)
    (tmp_path / "releases" / "b").mkdir()
    link = tmp_path / "current"

    output(files.switch_symlink(str(link), "releases/a"))
    assert os.readlink(link) == "releases/a"
    output(files.switch_symlink(str(link), "releases/b"))

    assert os.readlink(link) == "releases/b"
    assert link.resolve() == tmp_path / "releases" / "b"
    # The new link replaced the old one: nothing was created inside the old target.
    assert list((tmp_path / "releases" / "a").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "releases"]


def test_readlink_prints_the_target_or_nothing(tmp_path: Path) -> None:
    link = tmp_path / "current"

    missing = run(files.readlink(str(link)))
    assert (missing.returncode, missing.stdout) == (0, "")
    link.symlink_to("releases/abc")
    assert output(files.readlink(str(link))) == "releases/abc\n"


def test_make_lock_succeeds_once_then_fails(tmp_path: Path) -> None:
    lock = tmp_path / "lock"

    first = run(files.make_lock(str(lock), '{"by": "first"}'))
    second = run(files.make_lock(str(lock), '{"by": "second"}'))

    assert first.returncode == 0
    assert second.returncode != 0
    assert (lock / "details").read_text() == '{"by": "first"}'


def test_list_dirs_lists_visible_subdirectories_only(tmp_path: Path) -> None:
    for name in ("r1", "r2", ".r3.tmp"):
        (tmp_path / name).mkdir()
    (tmp_path / "file").write_text("x")

    assert sorted(output(files.list_dirs(str(tmp_path))).splitlines()) == ["r1", "r2"]
    assert output(files.list_dirs(str(tmp_path / "missing"))) == ""


def test_list_files_lists_regular_files_only(tmp_path: Path) -> None:
    (tmp_path / "a.tar.gz").write_text("x")
    (tmp_path / "b").write_text("y")
    (tmp_path / "dir").mkdir()

    assert sorted(output(files.list_files(str(tmp_path))).splitlines()) == [
        "a.tar.gz",
        "b",
    ]
    assert output(files.list_files(str(tmp_path / "missing"))) == ""


def test_archive_writes_a_tar_gz_with_the_members(tmp_path: Path) -> None:
    base = tmp_path / "env"
    (base / "shared" / "db").mkdir(parents=True)
    (base / "shared" / "db" / "data.txt").write_text("rows")
    (base / "other").mkdir()
    out = tmp_path / "backups" / "backup.tar.gz"
    out.parent.mkdir()

    output(files.archive(str(out), str(base), "shared"))

    with tarfile.open(out, "r:gz") as tar:
        names = set(tar.getnames())
        member = tar.extractfile("shared/db/data.txt")
        assert member is not None and member.read() == b"rows"
    assert {"shared", "shared/db", "shared/db/data.txt"} <= names
    assert not any(name.startswith("other") for name in names)
    assert [p.name for p in out.parent.iterdir()] == ["backup.tar.gz"]


def test_archive_fails_and_leaves_nothing_for_a_missing_member(tmp_path: Path) -> None:
    out = tmp_path / "backup.tar.gz"

    result = run(files.archive(str(out), str(tmp_path), "missing"))

    assert result.returncode != 0
    assert not out.exists()


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_bytes(b"streamlit==1.39\npandas\n")

    digest = output(files.sha256(str(path))).strip()

    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert output(files.sha256(str(tmp_path / "missing"))) == ""


def test_sha256_matches_hashlib_for_a_backslash_in_the_path(tmp_path: Path) -> None:
    path = tmp_path / "dir\\name" / "requirements.txt"
    path.parent.mkdir()
    path.write_bytes(b"pandas\n")

    digest = output(files.sha256(str(path))).strip()

    assert digest == hashlib.sha256(b"pandas\n").hexdigest()


def test_which_finds_programs_on_path_only() -> None:
    assert run(files.which("sh")).returncode == 0
    assert run(files.which("no-such-program-cicd-unit")).returncode != 0


def test_exists(tmp_path: Path) -> None:
    assert run(files.exists(str(tmp_path))).returncode == 0
    assert run(files.exists(str(tmp_path / "missing"))).returncode != 0


def test_sh_tail_prints_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("one\ntwo\nthree\n")

    assert output(files.sh_tail(str(path), 2)) == "two\nthree\n"
    assert output(files.sh_tail(str(tmp_path / "missing"), 2)) == ""


def test_link_and_rename(tmp_path: Path) -> None:
    (tmp_path / ".abc.tmp").mkdir()
    (tmp_path / "venv").mkdir()

    output(files.link(str(tmp_path / "venv"), str(tmp_path / ".abc.tmp" / ".venv")))
    output(files.rename(str(tmp_path / ".abc.tmp"), str(tmp_path / "abc")))

    assert (tmp_path / "abc" / ".venv").resolve() == tmp_path / "venv"
    assert not (tmp_path / ".abc.tmp").exists()


# -- git ----------------------------------------------------------------------


def test_git_builders_argv() -> None:
    assert git.resolve("/repo", "-abc").argv == (
        "git",
        "-C",
        "/repo",
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        "-abc^{commit}",
    )
    assert git.describe("/repo", "abc").argv == (
        "git",
        "-C",
        "/repo",
        "log",
        "-1",
        "--format=%an%x00%s",
        "abc",
        "--",
    )
    assert git.mirror_clone("https://h/r.git", "/m").argv == (
        "git",
        "clone",
        "--mirror",
        "--quiet",
        "--",
        "https://h/r.git",
        "/m",
    )
    assert git.fetch("/m").argv == (
        "git",
        "-C",
        "/m",
        "fetch",
        "--quiet",
        "--prune",
        "origin",
    )
    assert git.export("/repo", "abc", "/dest").argv[3:] == (
        "sh",
        "/repo",
        "abc",
        "/dest",
    )


def test_git_resolve_and_export_run_for_real(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "main.py").write_text("print('hi')\n")
    environ = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.invalid",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.invalid",
    }
    for argv in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "first"]):
        subprocess.run(["git", "-C", str(repo), *argv], env=environ, check=True)

    sha = output(git.resolve(str(repo), "HEAD")).strip()
    dest = tmp_path / "releases" / ".tmp"
    output(git.export(str(repo), sha, str(dest)))

    assert len(sha) == 40
    assert (dest / "app" / "main.py").read_text() == "print('hi')\n"
    assert sorted(p.name for p in dest.parent.iterdir()) == [".tmp"]
    assert output(git.describe(str(repo), sha)) == "Ada\x00first\n"
    assert run(git.resolve(str(repo), "0" * 40)).returncode != 0


# -- venv ---------------------------------------------------------------------


def test_venv_create() -> None:
    assert venv.create("python3.11", "/v", installer="uv", with_pip=True).argv == (
        "uv",
        "venv",
        "--quiet",
        "--python",
        "python3.11",
        "/v",
    )
    assert venv.create("python3", "/v", installer="pip", with_pip=True).argv == (
        "python3",
        "-m",
        "venv",
        "/v",
    )
    assert venv.create("python3", "/v", installer="pip", with_pip=False).argv == (
        "python3",
        "-m",
        "venv",
        "--without-pip",
        "/v",
    )


def test_venv_install() -> None:
    assert venv.install("/v", "/r/req.txt", installer="uv").argv == (
        "uv",
        "pip",
        "install",
        "--quiet",
        "--python",
        "/v/bin/python",
        "-r",
        "/r/req.txt",
    )
    assert venv.install("/v", "/r/req.txt", installer="pip").argv == (
        "/v/bin/python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-r",
        "/r/req.txt",
    )


def test_venv_completion_marker(tmp_path: Path) -> None:
    assert venv.mark_complete("/v").argv == ("touch", "/v/.complete")
    assert venv.is_complete("/v").argv == ("test", "-e", "/v/.complete")
    assert run(venv.is_complete(str(tmp_path))).returncode != 0
    output(venv.mark_complete(str(tmp_path)))
    assert run(venv.is_complete(str(tmp_path))).returncode == 0


# -- supervisor -------------------------------------------------------------


def test_supervisor_ctl_and_daemon_split_multi_word_programs() -> None:
    ctl = supervisor.ctl("/opt/py/bin/python -m supervisor.supervisorctl", "/s.conf")
    assert ctl.argv == (
        "/opt/py/bin/python",
        "-m",
        "supervisor.supervisorctl",
        "-c",
        "/s.conf",
    )
    assert supervisor.ctl("supervisorctl", "/s.conf", "status", "app").argv == (
        "supervisorctl",
        "-c",
        "/s.conf",
        "status",
        "app",
    )
    assert supervisor.daemon("supervisord", "/s.conf").argv[-3:] == (
        "supervisord",
        "-c",
        "/s.conf",
    )
    assert supervisor.conf_path("/r/supervisor") == "/r/supervisor/supervisord.conf"
    assert supervisor.program_path("/r/sv", "app-prod") == "/r/sv/conf.d/app-prod.conf"


def test_supervisord_starts_with_a_clean_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a CI job's environment holds: the runner reaps RUNNER_TRACKING_ID holders.
    monkeypatch.setenv("RUNNER_TRACKING_ID", "github_1234")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_job_token_value")
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", "http://127.0.0.1:1/api/webhooks/1/x")
    # A "supervisord" that prints the environment it was given.
    started = supervisor.daemon("sh -c env printenv", "/s.conf")
    seen = dict(
        line.split("=", 1) for line in output(started).splitlines() if "=" in line
    )
    assert "RUNNER_TRACKING_ID" not in seen
    assert "GITHUB_TOKEN" not in seen and "DISCORD_WEBHOOK_URL" not in seen
    assert seen["PATH"] == supervisor.CLEAN_PATH
    assert {"HOME", "USER", "LANG"} <= set(seen)


def test_app_env_file_is_loaded_literally_before_the_app(tmp_path: Path) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text(
        "# the app's own secrets\n\nAPI_KEY=s3cret value $(touch pwned)\nMODE=prod"
    )
    show = 'sh -c \'printf "%s|%s" "$API_KEY" "$MODE"\''
    loader = tmp_path / "app-env.sh"
    loader.write_text(supervisor.APP_ENV_LOADER)
    line = supervisor.with_app_env(str(loader), str(env_file), show)
    # supervisord starts it in the release's app directory, through a symlink.
    app = tmp_path / "releases" / "abc123" / "app"
    app.mkdir(parents=True)
    (tmp_path / "current").symlink_to(app)
    done = subprocess.run(
        shlex.split(line),
        capture_output=True,
        text=True,
        cwd=tmp_path / "current",
        check=True,
    )
    mark, shown = done.stdout.split("\n", 1)
    assert mark.startswith(supervisor.START_MARK + "abc123 at 20"), mark
    assert shown == "s3cret value $(touch pwned)|prod"
    assert not (tmp_path / "pwned").exists()
    # No file: the app starts all the same; a bad line stops it with a message.
    missing = supervisor.with_app_env(str(loader), str(tmp_path / "no.env"), "true")
    assert subprocess.run(shlex.split(missing)).returncode == 0
    env_file.write_text("not a variable line\n")
    bad = subprocess.run(shlex.split(line), capture_output=True, text=True)
    assert bad.returncode == 78 and "not a KEY=VALUE line" in bad.stderr


def test_a_log_tail_keeps_the_lines_of_the_release_started_last(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app-blue.log"

    def tail(lines: int) -> list[str]:
        argv = supervisor.tail_since_start(str(log), lines).argv
        return subprocess.run(argv, capture_output=True, text=True).stdout.split()

    assert tail(5) == []  # no log yet
    log.write_text("before 1\nbefore 2\n")
    assert tail(5) == ["before", "1", "before", "2"]  # no mark: tailed whole
    mark = supervisor.START_MARK
    log.write_text(
        f"old\n{mark}aaa at T1 ---\na1\na2\n{mark}bbb at T2 ---\nb1\n"
        # supervisord restarts a crashing release: its attempts are all its own.
        f"{mark}bbb at T3 ---\nb2\nb3\n"
    )
    assert tail(20) == ["b1", "b2", "b3"]
    assert tail(2) == ["b2", "b3"]
    assert tail(0) == ["b3"]
    with log.open("a") as more:
        more.write(f"{mark}aaa at T4 ---\nagain\n")
    assert tail(20) == ["again"]


def conf_values(text: str) -> dict[str, str]:
    """Return the ``key=value`` lines of an ini text (last one wins)."""
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, _, value in pairs}


def test_supervisor_daemon_conf_keeps_every_file_in_its_directory() -> None:
    text = supervisor.daemon_conf("/srv/100%/supervisor")
    values = conf_values(text)

    assert values["file"] == "/srv/100%%/supervisor/supervisor.sock"
    assert values["serverurl"] == "unix://" + values["file"]
    assert values["pidfile"] == "/srv/100%%/supervisor/supervisord.pid"
    assert values["logfile"] == "/srv/100%%/supervisor/supervisord.log"
    assert values["chmod"] == "0700"
    # A relative include is relative to the config file, i.e. to the directory.
    include = posixpath.join("/srv/100%%/supervisor", values["files"])
    assert include == "/srv/100%%/supervisor/conf.d/*.conf"


def test_supervisor_program_conf() -> None:
    text = supervisor.program_conf(
        "app-prod",
        "python -m app --rate 5%",
        directory="/srv/prod/current/10_preprod",
        environment={"B": "2%", "A": "1"},
        logfile="/srv/prod/logs/app.log",
    )
    lines = text.splitlines()

    assert lines[0] == "[program:app-prod]"
    assert "command=python -m app --rate 5%%" in lines
    assert "directory=/srv/prod/current/10_preprod" in lines
    assert "startsecs=0" in lines
    assert "stopasgroup=true" in lines
    assert "killasgroup=true" in lines
    assert "stdout_logfile=/srv/prod/logs/app.log" in lines
    assert 'environment=A="1",B="2%%"' in lines


# -- compose ------------------------------------------------------------------


def test_compose_builders_argv() -> None:
    env = {"CICD_RELEASE": "/r/releases/abc"}
    base = ("docker", "compose", "-f", "/r/c.yml", "-p", "proj")

    assert compose.version(compose.V2).argv == ("docker", "compose", "version")
    assert compose.version(compose.V1).argv == ("docker-compose", "version")
    up = compose.up(compose.V2, "/r/c.yml", "proj", "app", env)
    assert up.argv == base + (
        "up",
        "--detach",
        "--force-recreate",
        "--no-deps",
        "--remove-orphans",
        "app",
    )
    assert up.env == (("CICD_RELEASE", "/r/releases/abc"),)
    assert compose.stop(compose.V2, "/r/c.yml", "proj", "app", env).argv == base + (
        "stop",
        "app",
    )
    assert compose.container_id(compose.V1, "/r/c.yml", "proj", "app", env).argv == (
        "docker-compose",
        "-f",
        "/r/c.yml",
        "-p",
        "proj",
        "ps",
        "-q",
        "app",
    )
    assert compose.logs(compose.V2, "/r/c.yml", "proj", "app", env, 20).argv == base + (
        "logs",
        "--no-color",
        "--tail",
        "20",
        "app",
    )
    assert compose.inspect_state("cid").argv == (
        "docker",
        "inspect",
        "--format",
        "{{.State.Status}}",
        "cid",
    )


def test_an_append_after_a_torn_last_line_starts_a_fresh_line(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"event": "deploy"}\n{"event": "sw')
    said = output(files.append_lines(str(ledger), '{"event": "health"}'))
    assert said.strip() == "torn 2"
    assert ledger.read_text().splitlines() == [
        '{"event": "deploy"}',
        '{"event": "sw',
        '{"event": "health"}',
    ]
    # A whole last line: nothing to say, nothing added before the new line.
    assert output(files.append_lines(str(ledger), "{}")) == ""
    assert ledger.read_text().endswith('{"event": "health"}\n{}\n')
