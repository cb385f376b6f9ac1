"""``setup``: first-time preparation of a VM; ``start``: the recovery after a reboot."""

from __future__ import annotations

import getpass
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.exceptions import Exit
from invoke.tasks import task

from cicd.tasks.boundary import reported
from cicd.tasks.hosts import env_names, target, targets

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cicd.core.record import Record
    from cicd.core.settings import EnvSettings, Settings
    from cicd.host.target import Target
    from cicd.pipeline.setup_access import Fleet
    from cicd.pipeline.setup_check import Options, SetupCheck
    from cicd.transport.runner import Runner


@task(
    help={
        "env": "One environment (default: every configured one).",
        "check": "Change nothing at all; exit 1 when something is missing.",
        "unit-dir": "Where the systemd unit goes (default: /etc/systemd/system). "
        "Not writable here: the unit is written under <root>/supervisor and the "
        "command that installs it is printed.",
        "user": "The account the systemd unit runs supervisord and the apps as "
        "(User=); give the service user. Run as that user, setup also links "
        "cicd, invoke and fab into ~/.local/bin and records this configuration "
        "in ~/.config/cicd/config.toml (used without CICD_CONFIG, and by fab -H "
        "from another machine).",
    }
)
def setup(
    c: Any,
    env: str = "",
    check: bool = False,
    unit_dir: str = "/etc/systemd/system",
    user: str = "",
) -> None:
    """Prepare this machine for deploys, once; idempotent, like kamal setup.

    Prints one line per check (``ok``, ``fixed``, ``missing`` or ``skipped``), then the
    commands left to run by hand:

    - the root is absolute and outside any git checkout or runner workspace (the
      embedded ``.cicd`` is not: set ``root = "/srv/mangetamain"`` in the file
      ``CICD_CONFIG`` names); each environment's ``releases``, ``logs``,
      ``backups`` and ``shared`` (mode 0700) directories; ``shared/app.env``, the
      app's own secrets, created empty with mode 0600 and never overwritten nor
      printed;
    - supervisor runtime: supervisord is found, its config is written, and the
      systemd unit ``cicd-supervisord.service`` (supervisord in the foreground,
      ``Restart=always``, no job environment) goes to ``--unit-dir`` and is checked
      with ``systemd-analyze verify``; systemctl is never run: the next command,
      ``systemctl daemon-reload && systemctl enable --now cicd-supervisord``, is
      printed for a root. Compose runtime: ``docker info`` answers and a compose
      (v2 or v1) exists;
    - each fleet host (``hosts = [...]``) has a key in known_hosts (never added
      automatically: the ``ssh-keyscan`` line is printed);
    - with the GitHub provider, whether ``CICD_GITHUB_TOKEN`` is set (its value is
      never shown). This one is advice: it never changes the exit code.

    With ``--check`` nothing is created or written, and the exit code is 1 when
    anything is missing. Without it, what can be fixed is fixed and the exit code is
    1 only when something that deploys need is still missing (a root that cannot be
    created, supervisord or docker absent, an unknown host key). A unit that cannot
    be installed from this account is not a failure: the detached supervisord that
    deploys start is the fallback, and the install command is printed. Bad input
    (an unknown environment, a bad --user) exits 2 with nothing changed.
    """
    with reported():
        from cicd.core import config
        from cicd.core.redact import redact
        from cicd.pipeline.setup import run_setup
        from cicd.transport.runner import Runner

        settings = config.load()
        names = [env] if env else sorted(settings.envs)
        envs = {name: settings.env(name) for name in names}
        runner = Runner(c)
        options = _options(runner, settings, env, check, unit_dir, user)
        local, fleets = _by_reach(c, settings, envs, remote=runner.remote)
        checks = run_setup(
            local, fleets, options, say=lambda line: print(redact(line), flush=True)
        )
        _report(checks, check_only=check)


def _options(
    runner: Runner, settings: Settings, env: str, check: bool, unit_dir: str, user: str
) -> Options:
    """What setup was asked, checked: exits 2 on a bad --user or --unit-dir.

    The command in the fixes runs setup again as asked: ``fab -H HOST setup`` over
    SSH, else this tool's own path (see :func:`_this_program`).
    """
    from cicd.commands import systemd
    from cicd.core.errors import UsageError
    from cicd.pipeline.setup_check import Options

    if user:
        systemd.check_user(user)
    if not unit_dir.startswith("/"):
        raise UsageError(f"--unit-dir {unit_dir!r} must be an absolute path")
    again = ["fab", "-H", runner.host, "setup"] if runner.remote else _this_program()
    for flag, value in (("--env", env), ("--unit-dir", unit_dir), ("--user", user)):
        if value and not (flag == "--unit-dir" and value == systemd.UNIT_DIR):
            again += [flag, value]
    wanted = None
    if not runner.remote and user and user == getpass.getuser():
        wanted = _record(settings)
    return Options(check, unit_dir, user, shlex.join(again), wanted)


def _by_reach(
    c: Any, settings: Settings, envs: dict[str, EnvSettings], *, remote: bool
) -> tuple[list[Target], list[Fleet]]:
    """The environments served from here, and those deployed over SSH (fleets).

    Over SSH (``fab -H``) every environment is served from the host reached. A
    fleet's relative ``ssh_config`` is relative to the project, as deploys read it.
    """
    from cicd.pipeline.setup_access import Fleet

    local, fleets = [], []
    for name, env_settings in envs.items():
        if not env_settings.hosts or remote:
            local.append(target(c, name))
            continue
        ssh_config = env_settings.ssh_config
        if ssh_config and not ssh_config.startswith(("/", "~")):
            ssh_config = str(settings.project_dir / ssh_config)
        fleets.append(Fleet(name, env_settings, ssh_config))
    return local, fleets


def _report(checks: Sequence[SetupCheck], *, check_only: bool) -> None:
    """Print what is left to do by hand; exit 1 if anything still fails."""
    from cicd.core.redact import redact
    from cicd.pipeline.setup_check import failures, fixes

    todo = fixes(checks)
    if todo:
        print("\nto do by hand:")
        for line in todo:
            print(f"  {redact(line)}")
    failed = failures(checks, check_only=check_only)
    if failed:
        raise Exit(f"setup: missing: {', '.join(c.name for c in failed)}", code=1)
    print("\nsetup: " + ("everything is in place" if check_only else "done"))


def _this_program() -> list[str]:
    """``setup`` as a command that works for whoever reads it: this tool's path.

    The service user's PATH may have neither ``invoke`` nor ``cicd`` on it yet.
    """
    program = Path(sys.executable).parent / "cicd"
    if program.is_file():
        return [str(program), "setup"]
    return [sys.executable, "-m", "cicd", "setup"]


def _record(settings: Settings) -> Record | None:
    """What setup records for its user, or None for the embedded default."""
    from cicd.core.record import Record

    roots = {e.root for e in settings.envs.values()}
    if not settings.explicit or settings.path is None:
        return None
    if not all(root.startswith("/") for root in roots):
        return None
    return Record(str(settings.path), sys.prefix)


@task(
    help={
        "env": "One environment (default: every configured one; those never "
        "deployed are skipped)."
    }
)
def start(c: Any, env: str = "") -> None:
    """Start what serves again after a reboot or a killed supervisord; wait until ready.

    For each environment that has a ``current`` release (or the one given), under
    its lock: a switch a killed run left unfinished is completed or undone first;
    then what served starts again, and only that. In place: the app, on the release
    ``current`` names. Behind haproxy: haproxy, the live slot (the release
    ``current`` names) and, while its window lasts, the previous release kept warm
    on the other slot; a slot holding a release CI rejected, one rolled back or one
    whose warm window ended is left stopped (stopped if found running). Then the
    environment's readiness checks are polled as a deploy does. One line per
    environment says what was started and what was left stopped, e.g.::

        prod: 8a01b7c started on the blue slot (was DOWN), ready after 2.9s; the
        green slot (3f9c2e1, rolled back) left stopped

    A never-deployed environment is skipped with a line saying so. Nothing is
    switched, but to settle an unfinished switch or to put ``current`` back on the
    live slot after a hand edit. Exits 1 if an environment does not get ready or
    cannot be started (locked by another run, supervisord missing...): its line
    says why.
    With the systemd unit of ``invoke setup`` supervisord starts at boot by itself,
    and with it what serves (only the live slot: the program files say so); run
    ``start`` then to bring back a warm previous release and check readiness.
    """
    with reported():
        from cicd.core.errors import CicdError
        from cicd.core.redact import redact
        from cicd.pipeline.start import observe, start_env

        names = [env] if env else env_names()
        hosts = [(name, t) for name in names for t in targets(c, name)]
        # Before anything starts: one supervisord runs every environment's apps.
        seen = {}
        for _, t in hosts:
            try:
                seen[t] = observe(t)
            except CicdError:
                pass  # said on its own line below
        failed = []
        for name, t in hosts:
            label = f"{name}@{t.runner.host}" if t.runner.remote else name
            try:
                line = start_env(t, before=seen.get(t))
            except CicdError as error:
                print(f"{label}: error: {redact(str(error))}", flush=True)
                failed.append(label)
                continue
            print(f"{label}: {redact(line.line)}", flush=True)
            if line.ok is False:
                failed.append(label)
        if failed:
            raise Exit(f"not ready: {', '.join(failed)}", code=1)
