"""First-time preparation of a VM, in the manner of ``kamal setup``.

:func:`run_setup` goes through a list of checks and returns one :class:`Check` per
item, each with its name, status (``ok``, ``fixed``, ``missing`` or ``skipped``), a
detail line and the commands that fix it by hand. Every change it makes is idempotent
and goes through the target's runner, so ``fab -H HOST setup`` prepares that host:

- the root: absolute, outside any git checkout and the runner's workspace (which is
  cleaned between jobs);
- each environment's directories (``shared`` mode 0700) and ``shared/app.env``, the
  app's own secrets, created empty with mode 0600 and never overwritten nor read;
- the runtime: supervisord's programs, its config and the systemd unit that keeps it
  up across reboots (written where the unit directory is writable, verified with
  ``systemd-analyze``), or a Docker engine that answers and a compose;
- each fleet host's key in known_hosts (never added automatically);
- the long-lived token of the detached CI watcher.

The recovery after a reboot (``start``) is :mod:`cicd.pipeline.start`.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from posixpath import join
from typing import TYPE_CHECKING

from cicd.commands import cmd, files
from cicd.commands.prepare import (
    chmod,
    command_path,
    create_private_file,
    docker_server_version,
    git_toplevel,
    inspect_env,
    is_dir,
    make_env_dirs,
    writable_dir,
)
from cicd.commands import compose as compose_commands
from cicd.commands import systemd
from cicd.core.errors import CicdError

if TYPE_CHECKING:
    from cicd.core.config import EnvSettings
    from cicd.core.record import Record
    from cicd.transport.runner import Result
    from cicd.runtime.supervisor import SupervisorRuntime
    from cicd.host.target import Target

OK, FIXED, MISSING, SKIPPED = "ok", "fixed", "missing", "skipped"

#: The root the docs and the example configuration use on a VM.
VM_ROOT = "/srv/mangetamain"

#: The token variable of the detached watcher (the job's own token dies with it).
TOKEN_VARIABLE = "CICD_GITHUB_TOKEN"

#: Directories of an environment created by setup (``shared`` gets mode 0700).
ENV_DIRS = ("releases", "logs", "backups", "shared")


@dataclass(frozen=True)
class Check:
    """One item of the setup: what it is, how it stands, how to fix it.

    Attributes:
        name: What is checked, e.g. ``preprod: app.env``.
        status: ``ok``, ``fixed`` (fixed by this run), ``missing`` or ``skipped``.
        detail: One line for a person.
        fix: Commands (or instructions) to run by hand, in order.
        blocking: Whether deploys cannot work while it is missing; a missing item
            that does not block (the systemd unit: the detached supervisord is the
            fallback) does not fail a fixing run.
        optional: Advice only: reported, never a failure (the watcher's token lives
            in the repository's secrets, not on the VM).
    """

    name: str
    status: str
    detail: str
    fix: tuple[str, ...] = ()
    blocking: bool = True
    optional: bool = False

    def fails(self, *, check_only: bool) -> bool:
        """Whether this item makes the run exit 1.

        Args:
            check_only: ``--check``: anything missing but optional fails; otherwise
                only what is missing and blocks deploys.
        """
        if self.status != MISSING or self.optional:
            return False
        return check_only or self.blocking

    def line(self) -> str:
        """The line a person sees: status, name, detail."""
        return f"{self.status:<8} {self.name}: {self.detail}"


@dataclass(frozen=True)
class Options:
    """What ``invoke setup`` was asked.

    Attributes:
        check: Change nothing; report only.
        unit_dir: Where the systemd unit goes.
        user: ``User=`` of the unit (empty: none).
        command: How the run was invoked, for the "run this again" fixes.
        record: What to record for the user running setup, who is the service
            user (:mod:`cicd.host.record`); None: nothing (another user, over SSH, or
            the embedded default).
    """

    check: bool = False
    unit_dir: str = systemd.UNIT_DIR
    user: str = ""
    command: str = "invoke setup"
    record: Record | None = None


@dataclass(frozen=True)
class Fleet:
    """An environment deployed over SSH to configured hosts (``hosts = [...]``).

    Attributes:
        env: The environment's name.
        settings: Its settings.
        ssh_config: The ssh_config file the hosts are resolved with ("" = the user's).
    """

    env: str
    settings: EnvSettings
    ssh_config: str = ""


@dataclass
class _Run:
    options: Options
    say: Callable[[str], None]
    checks: list[Check] = field(default_factory=list)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        self.say(check.line())
        return check


# -- the checks ---------------------------------------------------------------------


def run_setup(
    targets: Sequence[Target],
    fleets: Sequence[Fleet] = (),
    options: Options | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
) -> list[Check]:
    """Check (and unless ``options.check``, fix) everything a VM needs.

    Args:
        targets: The environments served from the runner's host (one per env).
        fleets: The environments deployed over SSH to configured hosts: only their
            host keys are checked here (``fab -H HOST setup`` prepares each host).
        options: What was asked.
        environ: The environment variables to look at (default: this process's).
        say: Prints one line per check as it completes.

    Returns:
        Every check, in order.
    """
    options = options or Options()
    environ = os.environ if environ is None else environ
    run = _Run(options, say)
    by_root: dict[str, list[Target]] = {}
    for t in targets:
        by_root.setdefault(t.paths.root, []).append(t)
    supervised = [
        root
        for root, group in by_root.items()
        if any(t.settings.runtime.kind == "supervisor" for t in group)
    ]
    for root, group in by_root.items():
        good = _check_root(run, group[0], environ)
        for t in group:
            _check_env(run, t, good)
        sv_group = [t for t in group if t.settings.runtime.kind == "supervisor"]
        if sv_group:
            _check_supervisor(run, sv_group, good, unit=root == supervised[0])
        compose_group = [t for t in group if t.settings.runtime.kind == "compose"]
        if compose_group:
            _check_compose(run, compose_group[0])
        for t in group:
            if t.settings.runtime.kind == "swarm":
                _check_swarm(run, t)
        proxied = [t for t in group if t.settings.proxy.kind != "none"]
        if proxied:
            _check_proxy(run, proxied)
    if len(supervised) > 1:
        run.add(
            Check(
                "systemd unit",
                MISSING,
                f"one unit serves one root; {len(supervised)} roots use supervisor "
                f"({', '.join(supervised)}): only {supervised[0]} gets it",
                ("give every environment the same root",),
                blocking=False,
            )
        )
    for fleet in fleets:
        for host in fleet.settings.hosts:
            _check_host(run, fleet, host)
    settings = [t.settings for t in targets] + [f.settings for f in fleets]
    if any(s.ci.provider == "github" for s in settings):
        _check_token(run, environ)
    if options.record and targets:
        _check_record(run, targets[0], options.record)
    return run.checks


def _check_root(run: _Run, t: Target, environ: Mapping[str, str]) -> bool:
    """The root check; returns whether the root can be used."""
    configured = t.settings.root
    root = t.paths.root
    name = "root"
    where = str(t.all_settings.path or "the configuration file")
    if environ.get("CICD_CONFIG"):
        fix = f'set root = "{VM_ROOT}" in {where} (the file CICD_CONFIG names)'
    else:
        fix = (
            f"cp 30_docker/cicd-vm.toml {VM_ROOT}/cicd.toml && "
            f'export CICD_CONFIG={VM_ROOT}/cicd.toml   # with root = "{VM_ROOT}"'
        )
    if not configured.startswith("/"):
        run.add(
            Check(
                name,
                MISSING,
                f"{configured!r} is relative (here: {root}): on a VM the root must "
                "be absolute, outside the runner's workspace, which every job cleans",
                (fix,),
            )
        )
        return False
    inside = [
        os.path.normpath(environ[v])
        for v in ("GITHUB_WORKSPACE", "RUNNER_WORKSPACE")
        if environ.get(v) and not t.runner.remote
    ]
    for workspace in inside:
        if root == workspace or root.startswith(workspace.rstrip("/") + "/"):
            run.add(
                Check(
                    name,
                    MISSING,
                    f"{root} is inside the runner's workspace {workspace}, "
                    "which every job cleans",
                    (fix,),
                )
            )
            return False
    toplevel = t.runner.output(git_toplevel(root))
    if toplevel:
        run.add(
            Check(
                name,
                MISSING,
                f"{root} is inside the git checkout {toplevel}: releases and state "
                "must not live in a workspace",
                (fix,),
            )
        )
        return False
    if t.runner.ok(is_dir(root)):
        run.add(Check(name, OK, f"{root} (absolute, outside any git checkout)"))
        return True
    owner = shlex.quote(run.options.user) if run.options.user else '"$(id -un)"'
    make_root = f"install -d -m 0755 -o {owner} {shlex.quote(root)}   # as root"
    if run.options.check:
        run.add(Check(name, MISSING, f"{root} does not exist", (run.options.command,)))
        return True
    if t.runner.ok(files.mkdirs(root)):
        run.add(Check(name, FIXED, f"{root} created"))
        return True
    run.add(
        Check(
            name,
            MISSING,
            f"cannot create {root} as this user: create it for the service user",
            (make_root, run.options.command),
        )
    )
    return False


def _check_env(run: _Run, t: Target, root_ok: bool) -> None:
    """The environment's directories, then its app.env."""
    p = t.paths
    dirs_name, env_name = f"{t.env}: directories", f"{t.env}: app.env"
    if not root_ok:
        for name in (dirs_name, env_name):
            run.add(Check(name, SKIPPED, "fix the root first", blocking=False))
        return
    dirs = [join(p.dir, d) for d in ENV_DIRS]
    lines = t.runner.output(inspect_env(p.shared, p.app_env, *dirs)).splitlines()
    absent = [line.split(" ", 1)[1] for line in lines if line.startswith("missing ")]
    modes = dict(line.split(" ", 1) for line in lines if not line.startswith("miss"))
    shared_mode = modes.get("shared", "")
    listing = ", ".join(ENV_DIRS[:-1]) + ", shared (0700)"
    if not absent and shared_mode == "700":
        run.add(Check(dirs_name, OK, f"{listing} in {p.dir}"))
    elif run.options.check:
        problem = (
            "absent: " + ", ".join(os.path.basename(d) for d in absent)
            if absent
            else f"shared is mode {shared_mode}, expected 0700"
        )
        run.add(Check(dirs_name, MISSING, problem, (run.options.command,)))
    else:
        t.runner.run(make_env_dirs(p.shared, *dirs))
        done = (
            "created " + ", ".join(os.path.basename(d) for d in absent)
            if absent
            else f"shared made 0700 (was {shared_mode})"
        )
        run.add(Check(dirs_name, FIXED, f"{done} in {p.dir}"))
    mode = modes.get("app.env", "")
    secret = "its content is never read or printed"
    if mode == "600":
        run.add(Check(env_name, OK, f"{p.app_env} (0600; {secret})"))
    elif run.options.check:
        if mode:
            problem, fix = f"mode {mode}, expected 0600", f"chmod 0600 {p.app_env}"
        else:
            problem, fix = f"{p.app_env} does not exist", run.options.command
        run.add(Check(env_name, MISSING, problem, (fix,)))
    elif mode:
        t.runner.run(chmod("0600", p.app_env))
        run.add(Check(env_name, FIXED, f"{p.app_env} made 0600 (was {mode}); {secret}"))
    else:
        t.runner.run(create_private_file(p.app_env))
        run.add(
            Check(
                env_name,
                FIXED,
                f"{p.app_env} created empty (0600): the app's own secrets go there, "
                "as KEY=VALUE lines",
            )
        )


def _check_supervisor(
    run: _Run, group: list[Target], root_ok: bool, *, unit: bool
) -> None:
    """The supervisor runtime: its programs, its config, then the systemd unit."""
    first = group[0]
    runtime = _supervisor(first)
    try:
        runtime.preflight()
    except CicdError as error:
        run.add(
            Check(
                "supervisor",
                MISSING,
                str(error),
                (
                    (
                        '"$CICD_VENV/bin/python" -m pip install supervisor'
                        if first.runner.remote
                        else shlex.join([sys.executable, "-m", "pip", "install"])
                        + " supervisor"
                    ),
                ),
            )
        )
        return
    supervisord = shlex.split(runtime.supervisord)
    resolved = first.runner.output(command_path(supervisord[0])) or supervisord[0]
    program = shlex.join([resolved, *supervisord[1:]])
    run.add(Check("supervisor", OK, f"supervisord found: {resolved}"))
    if not root_ok:
        run.add(
            Check("supervisor config", SKIPPED, "fix the root first", blocking=False)
        )
        return
    envs = ", ".join(t.env for t in group)
    if run.options.check:
        wanted = [runtime.conf] + [_supervisor(t).program_path for t in group]
        absent = [path for path in wanted if not first.runner.ok(files.exists(path))]
        if absent:
            run.add(
                Check(
                    "supervisor config",
                    MISSING,
                    "absent: " + ", ".join(absent),
                    (run.options.command,),
                )
            )
        else:
            run.add(Check("supervisor config", OK, f"{runtime.conf} ({envs})"))
    else:
        written = [path for t in group for path in _supervisor(t).write_config()]
        status = FIXED if written else OK
        what = "written" if written else "up to date"
        run.add(Check("supervisor config", status, f"{what}: {runtime.conf} ({envs})"))
    if unit:
        _check_unit(run, first, program, runtime.conf)


def _supervisor(t: Target) -> SupervisorRuntime:
    from cicd.runtime.supervisor import SupervisorRuntime

    runtime = t.live_runtime()
    assert isinstance(runtime, SupervisorRuntime)
    return runtime


def _check_unit(run: _Run, t: Target, program: str, conf: str) -> None:
    """Write (or report) cicd-supervisord.service, then verify it."""
    options = run.options
    text = systemd.supervisord_unit(program, conf, root=t.paths.root, user=options.user)
    installed = systemd.unit_path(options.unit_dir)
    staged = systemd.unit_path(t.paths.supervisor)
    name = "systemd unit"
    enable = f"{systemd.ENABLE}   # as root, once"
    current = t.runner.run(files.read(installed), check=False).stdout
    as_user = f" (User={options.user})" if options.user else " (as root: see --user)"
    verify_path = ""
    if current == text:
        run.add(Check(name, OK, f"{installed} is up to date{as_user}"))
        verify_path = installed
    elif options.check:
        problem = "differs from what setup writes" if current else "not installed"
        run.add(
            Check(name, MISSING, f"{installed} {problem}", (options.command,), False)
        )
        verify_path = installed if current else ""
    elif t.runner.ok(writable_dir(options.unit_dir)):
        t.runner.run(files.write_atomic(installed, text))
        t.runner.run(chmod("0644", installed))
        run.add(Check(name, FIXED, f"{installed} written{as_user}", (enable,), False))
        verify_path = installed
    else:
        t.runner.run(files.write_atomic(staged, text))
        run.add(
            Check(
                name,
                MISSING,
                f"{options.unit_dir} is not writable here: written to {staged} "
                "for a root to install (meanwhile deploys start supervisord "
                "detached)",
                (
                    f"{systemd.install_line(staged, options.unit_dir)}   # as root",
                    enable,
                ),
                blocking=False,
            )
        )
        verify_path = staged
    if not verify_path:
        return
    verify_name = "systemd unit verify"
    if not t.runner.ok(files.which("systemd-analyze")):
        run.add(
            Check(
                verify_name,
                SKIPPED,
                "systemd-analyze not found: the unit was not verified",
                blocking=False,
            )
        )
        return
    result = t.runner.run(systemd.verify(verify_path), check=False)
    if result.ok:
        run.add(Check(verify_name, OK, f"systemd-analyze verify {verify_path}"))
        return
    run.add(
        Check(
            verify_name,
            MISSING,
            f"systemd-analyze verify {verify_path}: {_last_line(result)}",
            (f"systemd-analyze verify {shlex.quote(verify_path)}",),
            blocking=False,
        )
    )


def _check_proxy(run: _Run, proxied: list[Target]) -> None:
    """Check haproxy, for zero-downtime switches (needed by ``haproxy``).

    It is looked up where supervisord runs it (``/usr/sbin`` included, which a
    service user's PATH lacks), and the line names each environment's slot ports:
    a VM's port plan needs them.
    """
    t = proxied[0]
    program = t.settings.proxy.haproxy
    path = t.context.haproxy_path()
    found = t.runner.run(cmd(path, "-v"), check=False) if path else None
    if found is not None and found.ok:
        version = (found.stdout.strip().splitlines() or ["haproxy"])[0]
        slots = "; ".join(
            f"{p.env} {p.settings.port} -> slots {p.settings.proxy.blue_port} "
            f"(blue), {p.settings.proxy.green_port} (green)"
            for p in proxied
        )
        run.add(
            Check(
                "haproxy",
                OK,
                f"{path}: {version}: blue/green deploys, no downtime ({slots})",
            )
        )
        return
    required = t.settings.proxy.kind == "haproxy"
    run.add(
        Check(
            "haproxy",
            MISSING,
            f"{program} not found: "
            + (
                "proxy.kind = 'haproxy' needs it"
                if required
                else "deploys restart the app in place (a few seconds down)"
            ),
            ("apt-get install haproxy   # as root",),
            blocking=required,
        )
    )


#: How to get a compose, v2 (the plugin) or v1.
COMPOSE_FIX = "apt-get install docker-compose-v2   # as root (or docker-compose)"


def _last_line(result: Result) -> str:
    """What a failed command said last (stderr, else stdout), or its exit code."""
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {result.exited}"


def _check_compose(run: _Run, t: Target) -> None:
    """A Docker engine that answers and a compose, v2 or v1."""
    from cicd.runtime.compose import ComposeRuntime

    info = t.runner.run(docker_server_version(), check=False)
    if info.ok:
        run.add(
            Check("docker", OK, f"the engine answers (server {info.stdout.strip()})")
        )
    else:
        user = shlex.quote(run.options.user) if run.options.user else '"$(id -un)"'
        run.add(
            Check(
                "docker",
                MISSING,
                f"docker info: {_last_line(info)}",
                (
                    f"apt-get install docker.io && usermod -aG docker {user}"
                    "   # as root",
                ),
            )
        )
    runtime = t.live_runtime()
    assert isinstance(runtime, ComposeRuntime)
    try:
        program = " ".join(runtime.program)
    except CicdError as error:
        run.add(Check("compose", MISSING, str(error), (COMPOSE_FIX,)))
        return
    # A deploy only finds docker-compose on PATH (starting it costs 0.5 s); here
    # it is run, so a broken one is found before a deploy needs it.
    answer = t.runner.run(compose_commands.version(runtime.program), check=False)
    if not answer.ok:
        detail = f"{program} version: {_last_line(answer)}"
        run.add(Check("compose", MISSING, detail, (COMPOSE_FIX,)))
        return
    run.add(Check("compose", OK, f"{program} version answers"))


def _check_swarm(run: _Run, t: Target) -> None:
    """The swarm runtime: a swarm manager answers, and so does each listed node."""
    from cicd.commands import swarm as sw

    runtime = t.live_runtime()
    try:
        runtime.preflight()
    except CicdError as error:
        run.add(
            Check(
                f"{t.env}: swarm",
                MISSING,
                str(error),
                ("docker swarm init --advertise-addr ADDRESS   # on the manager",),
            )
        )
        return
    nodes = t.runner.run(sw.nodes(t.settings.runtime.docker_host), check=False)
    count = len([line for line in nodes.stdout.splitlines() if line.strip()])
    run.add(Check(f"{t.env}: swarm", OK, f"a manager answers; {count} node(s)"))
    for node in t.settings.runtime.nodes:
        answer = t.runner.run(sw.swarm_role(node), check=False)
        if answer.ok:
            run.add(Check(f"{t.env}: node {node}", OK, "its engine answers"))
            continue
        run.add(
            Check(
                f"{t.env}: node {node}",
                MISSING,
                f"docker info: {_last_line(answer)}",
                (f"fix runtime.nodes, or the SSH access to {node}'s engine",),
            )
        )


def _check_host(run: _Run, fleet: Fleet, host: str) -> None:
    """A fleet host's key must already be in known_hosts: it is never added here."""
    name = f"{fleet.env}@{host}"
    known = known_host(host, fleet.ssh_config)
    shown = ", ".join(str(path) for path in known.files) or "~/.ssh/known_hosts"
    if known.found:
        run.add(
            Check(
                name,
                OK,
                f"host key of {known.hostname} in {shown}; prepare the host with: "
                f"fab -H {host} setup --env {fleet.env}",
            )
        )
        return
    port = known.port
    target = str(known.files[0]) if known.files else "~/.ssh/known_hosts"
    scan = ["ssh-keyscan", "-H"] + (["-p", str(port)] if port != 22 else [])
    where = known.hostname + (f" port {port}" if port != 22 else "")
    run.add(
        Check(
            name,
            MISSING,
            f"no key for {where} in {shown}: SSH to it is refused (a key is never "
            "accepted blindly)",
            (
                f"{shlex.join([*scan, known.hostname])} >> {target}   # after "
                "checking the fingerprint against the host's own (ssh-keygen -lf)",
            ),
        )
    )


@dataclass(frozen=True)
class KnownHost:
    """Whether a host's key is in known_hosts, and where it was looked for.

    Attributes:
        hostname: The host name ssh_config resolves to.
        port: Its SSH port.
        found: Whether a key for ``hostname`` (``[hostname]:port``) is known.
        files: The known_hosts files looked in.
    """

    hostname: str
    port: int
    found: bool
    files: tuple[Path, ...]


def known_host(host: str, ssh_config: str = "") -> KnownHost:
    """Look up ``host`` (as ssh_config resolves it) in its known_hosts files.

    The files are the ones :func:`cicd.transport.ssh.harden` loads
    (``UserKnownHostsFile``,
    default ``~/.ssh/known_hosts``); hashed entries are matched too.

    Args:
        host: A host as configured (an ssh_config alias, ``user@host:port``...).
        ssh_config: The ssh_config file ("" = the user's).
    """
    from fabric import Config, Connection
    from paramiko.hostkeys import HostKeys

    from cicd.transport.ssh import known_hosts_files

    config = Config(runtime_ssh_path=ssh_config or None)
    config.load_ssh_config()
    connection = Connection(host, config=config)
    hostname, port = str(connection.host), int(connection.port)
    paths = tuple(known_hosts_files(connection.ssh_config))
    keys = HostKeys()
    for path in paths:
        if path.is_file():
            keys.load(str(path))
    entry = hostname if port == 22 else f"[{hostname}]:{port}"
    return KnownHost(hostname, port, keys.lookup(entry) is not None, paths)


#: The tool's programs linked into ``~/.local/bin`` for the service user.
TOOLS = ("cicd", "invoke", "fab")


def _check_record(run: _Run, t: Target, wanted: Record) -> None:
    """Record this machine's configuration for its user; put the tool on PATH."""
    from cicd.core.record import RECORD
    from cicd.host import record

    bin_dir = join(wanted.tool, "bin")
    recorded = t.runner.run(record.read_command()).stdout == wanted.text()
    linked = t.runner.ok(record.linked_tools_command(bin_dir, *TOOLS))
    name = "this user"
    what = (
        f"~/.local/bin/{{{','.join(TOOLS)}}} -> {bin_dir} (on PATH from the next "
        f"login); ~/{RECORD} names {wanted.config} (used without "
        "CICD_CONFIG here, and by fab -H from another machine)"
    )
    if recorded and linked:
        run.add(Check(name, OK, what))
    elif run.options.check:
        run.add(Check(name, MISSING, f"not yet: {what}", (run.options.command,)))
    else:
        t.runner.run(record.write_command(wanted))
        t.runner.run(record.link_tools_command(bin_dir, *TOOLS))
        run.add(Check(name, FIXED, what))


def _check_token(run: _Run, environ: Mapping[str, str]) -> None:
    """Whether the detached watcher has a long-lived token (its value never shown)."""
    if environ.get(TOKEN_VARIABLE):
        run.add(
            Check(
                "github token",
                OK,
                f"{TOKEN_VARIABLE} is set (the detached watcher's long-lived token)",
            )
        )
        return
    run.add(
        Check(
            "github token",
            MISSING,
            f"optional: {TOKEN_VARIABLE} is not set here: the detached watcher has "
            "only the job's token, which dies with the job (ci-verdict.yml has its "
            "own)",
            (
                f"gh secret set {TOKEN_VARIABLE}   # a fine-grained token with "
                "Actions: read on this repository, as a repository secret",
            ),
            blocking=False,
            optional=True,
        )
    )


# -- the report ---------------------------------------------------------------------


def fixes(checks: Sequence[Check]) -> list[str]:
    """The commands to run by hand, in order, each once."""
    seen: list[str] = []
    for check in checks:
        for line in check.fix:
            if line not in seen:
                seen.append(line)
    return seen


def failures(checks: Sequence[Check], *, check_only: bool) -> list[Check]:
    """The checks that make the run exit 1 (see :meth:`Check.fails`)."""
    return [c for c in checks if c.fails(check_only=check_only)]
