"""``setup``'s checks of access: fleet host keys, the watcher's token, this user.

Each fleet host's key must be in known_hosts (never added automatically); the
detached CI watcher wants a long-lived token (its value is never shown); the
service user running setup gets the tool on PATH and a record of its configuration.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from posixpath import join
from typing import TYPE_CHECKING

from cicd.pipeline.setup_check import MISSING, SetupCheck, SetupRun

if TYPE_CHECKING:
    from cicd.core.settings import EnvSettings
    from cicd.core.record import Record
    from cicd.host.target import Target

#: The token variable of the detached watcher (the job's own token dies with it).
TOKEN_VARIABLE = "CICD_GITHUB_TOKEN"

#: The tool's programs linked into ``~/.local/bin`` for the service user.
TOOLS = ("cicd", "invoke", "fab")


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


def check_host(run: SetupRun, fleet: Fleet, host: str) -> None:
    """A fleet host's key must already be in known_hosts: it is never added here."""
    name = f"{fleet.env}@{host}"
    known = known_host(host, fleet.ssh_config)
    shown = ", ".join(str(path) for path in known.files) or "~/.ssh/known_hosts"
    if known.found:
        run.ok(
            name,
            f"host key of {known.hostname} in {shown}; prepare the host with: "
            f"fab -H {host} setup --env {fleet.env}",
        )
        return
    port = known.port
    target = str(known.files[0]) if known.files else "~/.ssh/known_hosts"
    scan = ["ssh-keyscan", "-H"] + (["-p", str(port)] if port != 22 else [])
    where = known.hostname + (f" port {port}" if port != 22 else "")
    run.missing(
        name,
        f"no key for {where} in {shown}: SSH to it is refused (a key is never "
        "accepted blindly)",
        f"{shlex.join([*scan, known.hostname])} >> {target}   # after "
        "checking the fingerprint against the host's own (ssh-keygen -lf)",
    )


def check_token(run: SetupRun, environ: Mapping[str, str]) -> None:
    """Whether the detached watcher has a long-lived token (its value never shown)."""
    if environ.get(TOKEN_VARIABLE):
        run.ok(
            "github token",
            f"{TOKEN_VARIABLE} is set (the detached watcher's long-lived token)",
        )
        return
    run.add(
        SetupCheck(
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


def check_record(run: SetupRun, t: Target, wanted: Record) -> None:
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
        run.ok(name, what)
    elif run.options.check:
        run.missing_until_run(name, f"not yet: {what}")
    else:
        t.runner.run(record.write_command(wanted))
        t.runner.run(record.link_tools_command(bin_dir, *TOOLS))
        run.fixed(name, what)
