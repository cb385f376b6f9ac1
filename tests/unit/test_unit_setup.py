"""Unit tests of ``invoke setup``'s logic: the systemd unit builder and the checks.

The checks run for real against a temporary root (the commands are cheap shell lines:
``mkdir``, ``stat``, ``test``); nothing starts supervisord. ``systemd-analyze`` is
used when the machine has it, as ``invoke setup`` does.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
from pathlib import Path

import pytest
from invoke import Context
from invoke.exceptions import Exit
from paramiko.hostkeys import HostKeys

from cicd.commands import systemd
from cicd.core.config import from_table
from cicd.core.errors import UsageError
from cicd.transport.runner import Runner
from cicd.pipeline.setup import run_setup
from cicd.pipeline.setup_access import Fleet
from cicd.pipeline.setup_check import (
    FIXED,
    MISSING,
    OK,
    SKIPPED,
    Options,
    SetupCheck,
    failures,
    fixes,
)
from cicd.pipeline.start import start_env
from cicd.host.target import Target
from tests.conftest import Project, git

#: A real ed25519 public key (its private half was thrown away).
HOST_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII/YD/nKKoRIN50iAd+yQa0u239adaXFQKKUPcEuNM6H"
)


def targets(project: Project, *envs: str) -> list[Target]:
    """Local Targets of the project's environments (default: both)."""
    return [project.target(env) for env in envs or ("preprod", "prod")]


def setup(
    project: Project,
    tmp_path: Path,
    *,
    envs: tuple[str, ...] = (),
    environ: dict[str, str] | None = None,
    **kw: object,
) -> list[SetupCheck]:
    """Run the checks with a unit directory in ``tmp_path``."""
    kw.setdefault("unit_dir", str(tmp_path / "units"))
    (tmp_path / "units").mkdir(exist_ok=True)
    options = Options(**kw)  # type: ignore[arg-type]
    lines: list[str] = []
    checks = run_setup(
        targets(project, *envs), (), options, environ=environ or {}, say=lines.append
    )
    assert lines == [c.line() for c in checks]
    return checks


def by_name(checks: list[SetupCheck]) -> dict[str, SetupCheck]:
    """Checks by name."""
    return {c.name: c for c in checks}


def tree(path: Path) -> list[str]:
    """Every path under ``path``, relative, sorted."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# -- the unit -----------------------------------------------------------------------


def test_unit_runs_supervisord_in_the_foreground_with_no_environment() -> None:
    text = systemd.supervisord_unit(
        "/srv/m/tool/bin/supervisord",
        "/srv/m/supervisor/supervisord.conf",
        root="/srv/m",
        user="mangetamain",
    )
    lines = text.splitlines()
    assert (
        "ExecStart=/srv/m/tool/bin/supervisord -n -c /srv/m/supervisor/supervisord.conf"
        in lines
    )
    assert "Restart=always" in lines and "User=mangetamain" in lines
    assert "WorkingDirectory=/srv/m" in lines
    assert "WantedBy=multi-user.target" in lines
    assert not any(
        line.startswith(("Environment", "PassEnvironment")) for line in lines
    )


def test_unit_without_user_has_no_user_line() -> None:
    text = systemd.supervisord_unit("/usr/bin/supervisord", "/r/c.conf", root="/r")
    assert "User=" not in text


def test_unit_quotes_words_as_systemd_reads_them() -> None:
    text = systemd.supervisord_unit(
        "'/opt/my tools/supervisord' --strip-ansi",
        "/srv/100%/$HOME/supervisord.conf",
        root="/srv/100%",
    )
    assert (
        'ExecStart="/opt/my tools/supervisord" --strip-ansi -n -c '
        '"/srv/100%%/$$HOME/supervisord.conf"' in text
    )
    assert "WorkingDirectory=/srv/100%%" in text
    assert systemd.exec_word('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'


@pytest.mark.parametrize("user", ["two words", "x;rm", "-n", ""])
def test_bad_user_is_refused(user: str) -> None:
    with pytest.raises(UsageError, match="is not a user name"):
        systemd.check_user(user)


def test_line_breaks_are_refused() -> None:
    with pytest.raises(UsageError, match="line break"):
        systemd.supervisord_unit("/bin/supervisord", "/r/c.conf", root="/r\nUser=root")


def test_install_line_and_verify_command() -> None:
    assert systemd.install_line("/srv/a b/u.service", "/etc/systemd/system") == (
        "install -m 0644 '/srv/a b/u.service' "
        "/etc/systemd/system/cicd-supervisord.service"
    )
    assert systemd.verify("/x.service").argv == (
        "systemd-analyze",
        "verify",
        "/x.service",
    )


# -- the checks ---------------------------------------------------------------------


def test_check_creates_nothing_and_reports_what_is_missing(
    project: Project, tmp_path: Path
) -> None:
    units = tmp_path / "units"
    checks = setup(project, tmp_path, check=True)
    assert not project.root.exists() and tree(units) == []
    named = by_name(checks)
    assert named["root"].status == MISSING and "does not exist" in named["root"].detail
    assert named["preprod: directories"].status == MISSING
    assert named["prod: app.env"].status == MISSING
    assert named["supervisor config"].status == MISSING
    assert named["systemd unit"].status == MISSING
    assert failures(checks, check_only=True)
    assert "invoke setup" in fixes(checks)


def test_setup_fixes_then_a_second_run_changes_nothing(
    project: Project, tmp_path: Path
) -> None:
    first = by_name(setup(project, tmp_path, user="nobody"))
    assert first["root"].status == FIXED
    for name in ("preprod: directories", "prod: app.env", "supervisor config"):
        assert first[name].status == FIXED, first[name]
    assert first["systemd unit"].status == FIXED
    assert systemd.ENABLE in " ".join(first["systemd unit"].fix)
    unit = tmp_path / "units" / systemd.UNIT_NAME
    assert "User=nobody" in unit.read_text()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    shared = project.root / "preprod" / "shared"
    assert stat.S_IMODE(shared.stat().st_mode) == 0o700
    for env in ("preprod", "prod"):
        for name in ("releases", "logs", "backups"):
            assert (project.root / env / name).is_dir()
    verify = first["systemd unit verify"]
    assert verify.status == (OK if shutil.which("systemd-analyze") else SKIPPED)
    before = {p: p.stat().st_mtime_ns for p in project.root.rglob("*")}
    second = setup(project, tmp_path, user="nobody")
    assert {c.status for c in second} == {OK}, [c.line() for c in second]
    assert {p: p.stat().st_mtime_ns for p in project.root.rglob("*")} == before
    assert not failures(second, check_only=True) and fixes(second) == []
    assert {c.status for c in setup(project, tmp_path, check=True, user="nobody")} == {
        OK
    }


def test_app_env_is_private_and_never_overwritten(
    project: Project, tmp_path: Path
) -> None:
    setup(project, tmp_path)
    app_env = project.root / "prod" / "shared" / "app.env"
    assert app_env.read_text() == ""
    assert stat.S_IMODE(app_env.stat().st_mode) == 0o600
    app_env.write_text("API_KEY=s3cret-value\n")
    app_env.chmod(0o644)
    checked = by_name(setup(project, tmp_path, check=True))["prod: app.env"]
    assert checked.status == MISSING and "mode 644" in checked.detail
    assert checked.fix == (f"chmod 0600 {app_env}",)
    assert stat.S_IMODE(app_env.stat().st_mode) == 0o644
    checks = setup(project, tmp_path)
    assert by_name(checks)["prod: app.env"].status == FIXED
    assert app_env.read_text() == "API_KEY=s3cret-value\n"
    assert stat.S_IMODE(app_env.stat().st_mode) == 0o600
    assert not any("s3cret" in c.line() for c in checks)


def test_relative_root_is_flagged_and_nothing_is_created(tmp_path: Path) -> None:
    settings = from_table({"source": "."}, project_dir=tmp_path)
    t = Target(Runner(Context()), settings, "preprod")
    checks = run_setup([t], (), Options(check=False), environ={}, say=lambda _: None)
    root = by_name(checks)["root"]
    assert root.status == MISSING and "'.cicd' is relative" in root.detail
    assert 'root = "/srv/mangetamain"' in root.fix[0]
    assert by_name(checks)["preprod: directories"].status == SKIPPED
    assert failures(checks, check_only=False) == [root]
    assert not (tmp_path / ".cicd").exists()
    named = run_setup(
        [t], (), Options(), environ={"CICD_CONFIG": "/etc/c.toml"}, say=lambda _: None
    )
    assert "the file CICD_CONFIG names" in by_name(named)["root"].fix[0]


def test_root_inside_a_checkout_or_the_workspace_is_flagged(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    git(checkout, "init", "-q")
    settings = from_table(
        {"root": str(checkout / "state" / "deep")}, project_dir=tmp_path
    )
    t = Target(Runner(Context()), settings, "preprod")
    root = run_setup([t], (), Options(), environ={}, say=lambda _: None)[0]
    assert (
        root.status == MISSING and f"inside the git checkout {checkout}" in root.detail
    )
    assert not (checkout / "state").exists()
    settings = from_table({"root": str(tmp_path / "work" / "r")}, project_dir=tmp_path)
    t = Target(Runner(Context()), settings, "preprod")
    environ = {"GITHUB_WORKSPACE": str(tmp_path / "work")}
    root = run_setup([t], (), Options(), environ=environ, say=lambda _: None)[0]
    assert root.status == MISSING and "inside the runner's workspace" in root.detail


def test_root_that_cannot_be_created_names_the_command(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings = from_table({"root": str(blocker / "root")}, project_dir=tmp_path)
    t = Target(Runner(Context()), settings, "preprod")
    options = Options(user="mangetamain", command="invoke setup --user mangetamain")
    root = run_setup([t], (), options, environ={}, say=lambda _: None)[0]
    assert root.status == MISSING and "cannot create" in root.detail
    assert root.fix == (
        f"install -d -m 0755 -o mangetamain {blocker}/root   # as root",
        "invoke setup --user mangetamain",
    )


def test_unwritable_unit_dir_is_reported_with_the_install_command(
    project: Project, tmp_path: Path
) -> None:
    checks = setup(project, tmp_path, unit_dir=str(tmp_path / "no" / "such"))
    unit = by_name(checks)["systemd unit"]
    staged = project.root / "supervisor" / systemd.UNIT_NAME
    assert unit.status == MISSING and not unit.blocking
    assert staged.is_file()
    assert unit.fix[0].startswith(f"install -m 0644 {shlex.quote(str(staged))} ")
    assert systemd.ENABLE in unit.fix[1]
    assert not failures(checks, check_only=False)
    assert failures(checks, check_only=True) == [unit]


def test_missing_supervisord_blocks(project: Project, tmp_path: Path) -> None:
    project.write(preprod='runtime = { supervisord = "/nowhere/supervisord" }')
    checks = setup(project, tmp_path, envs=("preprod",))
    supervisor = by_name(checks)["supervisor"]
    assert supervisor.status == MISSING and "/nowhere/supervisord" in supervisor.detail
    assert failures(checks, check_only=False) == [supervisor]
    assert "systemd unit" not in by_name(checks)


def test_a_unit_systemd_rejects_is_reported(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    write_fake(bin_dir, "systemd-analyze", 'echo "$2: Unknown key" >&2; exit 1\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    checks = setup(project, tmp_path)
    verify = by_name(checks)["systemd unit verify"]
    unit = tmp_path / "units" / systemd.UNIT_NAME
    assert verify.status == MISSING and not verify.blocking
    assert verify.detail == f"systemd-analyze verify {unit}: {unit}: Unknown key"
    assert not failures(checks, check_only=False)


def test_one_unit_for_one_root(project: Project, tmp_path: Path) -> None:
    project.write(preprod=f'root = "{tmp_path / "other root"}"')
    checks = setup(project, tmp_path)
    units = [c for c in checks if c.name == "systemd unit"]
    assert [c.status for c in units] == [FIXED, MISSING]
    assert "2 roots use supervisor" in units[1].detail
    assert f"{tmp_path / 'other root'}/supervisor" in (
        (tmp_path / "units" / systemd.UNIT_NAME).read_text()
    )


def write_fake(bin_dir: Path, name: str, script: str) -> None:
    """A stand-in program on PATH (here: a Docker engine that is not there)."""
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


@pytest.mark.parametrize("engine", ["up", "down"])
def test_compose_needs_an_engine_and_a_compose(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    bin_dir = tmp_path / "bin"
    if engine == "up":
        write_fake(
            bin_dir,
            "docker",
            'case "$1" in info) echo 27.0.1;; compose) echo v2.29;; esac\n',
        )
    else:
        write_fake(
            bin_dir, "docker", 'echo "Cannot connect to the daemon" >&2; exit 1\n'
        )
    # Shadow a real docker-compose of this machine (CI installs one).
    write_fake(bin_dir, "docker-compose", "exit 127\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    project.write(preprod='runtime = { kind = "compose" }')
    named = by_name(setup(project, tmp_path, envs=("preprod",)))
    if engine == "up":
        assert named["docker"].status == OK and "27.0.1" in named["docker"].detail
        assert named["compose"].status == OK
        assert named["compose"].detail == "docker compose version answers"
    else:
        assert named["docker"].status == MISSING
        assert "Cannot connect to the daemon" in named["docker"].detail
        assert named["compose"].status == MISSING
    assert "supervisor" not in named


@pytest.mark.parametrize("role", ["manager", "none"])
def test_swarm_needs_a_manager_and_nodes_that_answer(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, role: str
) -> None:
    bin_dir = tmp_path / "bin"
    answer = "active true" if role == "manager" else "inactive false"
    # A stand-in docker: the manager's engine answers, the node's does not.
    write_fake(
        bin_dir,
        "docker",
        'case "$DOCKER_HOST" in *node2*) echo "Cannot connect" >&2; exit 1;; esac\n'
        f'case "$1" in info) echo "{answer}";; '
        "node) echo 'vm1 10.0.0.1 ready active 10.0.0.1:2377';; esac\n",
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    project.write(
        preprod='runtime = { kind = "swarm", nodes = ["unix:///run/node2.sock"] }'
    )
    named = by_name(setup(project, tmp_path, envs=("preprod",)))
    if role == "manager":
        assert named["preprod: swarm"].status == OK
        assert named["preprod: swarm"].detail == "a manager answers; 1 node(s)"
        node = named["preprod: node unix:///run/node2.sock"]
        assert node.status == MISSING and node.detail == "docker info: Cannot connect"
    else:
        assert named["preprod: swarm"].status == MISSING
        assert "is not a swarm manager" in named["preprod: swarm"].detail


def test_fleet_hosts_need_a_known_host_key(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"{HostKeys.hash_host('[127.0.0.9]:2222')} {HOST_KEY}\n")
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host app1\n  HostName 127.0.0.9\n  Port 2222\n  UserKnownHostsFile {known}\n"
        f"Host *\n  UserKnownHostsFile {known}\n"
    )
    settings = from_table(
        {"root": "/srv/m", "env": {"prod": {"hosts": ["app1", "app2"]}}},
        project_dir=tmp_path,
    )
    fleet = Fleet("prod", settings.env("prod"), str(ssh_config))
    checks = run_setup([], [fleet], Options(), environ={}, say=lambda _: None)
    app1, app2 = checks
    assert app1.name == "prod@app1" and app1.status == OK
    assert "fab -H app1 setup --env prod" in app1.detail
    assert app2.status == MISSING and app2.blocking
    assert app2.fix[0].startswith(f"ssh-keyscan -H app2 >> {known}")
    assert "fingerprint" in app2.fix[0]


def test_unknown_port_shows_in_the_keyscan_line(tmp_path: Path) -> None:
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(f"Host *\n  UserKnownHostsFile {tmp_path / 'none'}\n")
    settings = from_table(
        {"env": {"prod": {"hosts": ["127.0.0.7:2200"]}}}, project_dir=tmp_path
    )
    fleet = Fleet("prod", settings.env("prod"), str(ssh_config))
    (check,) = run_setup([], [fleet], Options(), environ={}, say=lambda _: None)
    assert "127.0.0.7 port 2200" in check.detail
    assert check.fix[0].startswith("ssh-keyscan -H -p 2200 127.0.0.7 >> ")


def test_the_token_is_reported_never_shown(tmp_path: Path) -> None:
    settings = from_table(
        {"ci": {"provider": "github"}, "env": {"prod": {"hosts": ["h"]}}},
        project_dir=tmp_path,
    )
    fleet = Fleet("prod", settings.env("prod"), "/dev/null")
    secret = "github_pat_0123456789abcdef"
    _, token = run_setup(
        [], [fleet], Options(), environ={"CICD_GITHUB_TOKEN": secret}, say=print
    )
    assert token.status == OK and secret not in token.line()
    _, token = run_setup([], [fleet], Options(check=True), environ={}, say=print)
    assert token.status == MISSING and token.optional
    assert "Actions: read" in token.fix[0] and "CICD_GITHUB_TOKEN" in token.fix[0]
    assert not token.fails(check_only=True) and not token.fails(check_only=False)


def test_fixes_are_listed_once_in_order() -> None:
    checks = [
        SetupCheck("a", MISSING, "", ("one", "two")),
        SetupCheck("b", OK, ""),
        SetupCheck("c", MISSING, "", ("two", "three"), blocking=False),
    ]
    assert fixes(checks) == ["one", "two", "three"]
    assert failures(checks, check_only=False) == [checks[0]]
    assert failures(checks, check_only=True) == [checks[0], checks[2]]


def test_start_skips_a_never_deployed_environment(project: Project) -> None:
    started = start_env(project.target("prod"))
    assert started.ok is None and started.sha is None
    assert started.line == "never deployed: skipped"
    assert not project.root.exists()


def test_setup_task_refuses_bad_input_before_anything(project: Project) -> None:
    from cicd.tasks.setup import setup as setup_task

    for kwargs, message in (
        ({"env": "staging"}, "unknown environment 'staging'"),
        ({"user": "two words"}, "is not a user name"),
        ({"unit_dir": "units"}, "must be an absolute path"),
    ):
        with pytest.raises(Exit) as raised:
            setup_task(Context(), **kwargs)
        assert raised.value.code == 2 and message in str(raised.value.message)
    assert not project.root.exists()
