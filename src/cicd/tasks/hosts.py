"""Where a task acts: its settings, resolved once, and the Targets of an environment.

A task resolves its configuration once (:func:`task_settings`: this machine's, or
the host's under ``fab -H``) and hands it to :func:`targets`, which gives one
Target per configured host, or the context's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cicd.core.errors import UsageError, clip
from cicd.core.inputs import check_host

if TYPE_CHECKING:
    from cicd.core.settings import Settings
    from cicd.host.target import Target
    from cicd.reporting.notify import Notifier
    from cicd.transport.runner import Runner


def task_settings(c: Any) -> Settings:
    """The configuration a task runs with: resolved once, then handed down.

    On this machine it is the project's (:func:`cicd.core.config.load`); under
    ``fab -H HOST``, the host's (:func:`host_settings`), which may take a round trip
    over SSH: a task resolves it once and passes it to :func:`targets`,
    :func:`target` and :func:`env_names`.
    """
    from cicd.core import config

    runner = _runner(c)
    return host_settings(runner) if runner.remote else config.load()


def host_settings(runner: Runner) -> Settings:
    """The configuration of a task run on a host over SSH (``fab -H HOST``).

    The configuration here, when there is one (``CICD_CONFIG``, or a
    ``[tool.cicd]`` table); otherwise the one the host's setup recorded
    (:mod:`cicd.host.record`). The root must be absolute either way: a relative one
    would be a directory guessed in the SSH user's home.

    Raises:
        UsageError: No configuration here nor recorded there, or a relative root;
            nothing was done on the host.
    """
    from cicd.core import config
    from cicd.host.record import remote_settings

    settings = config.load()
    if not settings.explicit:
        settings = remote_settings(runner)
    for name in sorted(settings.envs):
        root = settings.env(name, runner.host).root
        if not root.startswith("/"):
            raise UsageError(
                f"tool.cicd.env.{name}: root {clip(root, 60)!r} is relative: over SSH "
                f"it would be a directory guessed on {runner.host}; set an absolute "
                "root; nothing was done"
            )
    return settings


def _runner(c: Any) -> Runner:
    """The runner of this task's context; over SSH, checking the host's key first."""
    from cicd.transport.runner import Runner

    runner = Runner(c)
    if runner.remote:
        from cicd.transport.ssh import harden

        check_host(runner.host)
        harden(c)
    return runner


def targets(c: Any, env: str, settings: Settings | None = None) -> list[Target]:
    """The Targets of ``env``: one per configured host, or this context's only.

    Under ``fab -H HOST`` (or with no ``hosts`` configured) it is the context's own
    host; under ``invoke`` with ``hosts = [...]`` it is every host, over SSH.
    ``settings`` are the task's :func:`task_settings` (resolved here when not given).
    """
    from cicd.host.target import Target
    from cicd.transport.runner import Runner

    if settings is None:
        settings = task_settings(c)
    runner = _runner(c)
    if runner.remote:
        return [Target(runner, settings, env)]
    chosen = settings.env(env)
    if not chosen.hosts:
        return [Target(runner, settings, env)]
    from cicd.transport.ssh import connect

    ssh_config = chosen.ssh_config
    if ssh_config and not ssh_config.startswith(("/", "~")):
        ssh_config = str(settings.project_dir / ssh_config)
    return [
        Target(Runner(connect(check_host(name), ssh_config)), settings, env)
        for name in chosen.hosts
    ]


def target(c: Any, env: str, settings: Settings | None = None) -> Target:
    """Build the Target of ``env`` for this task's context (local or SSH).

    ``settings`` are the task's :func:`task_settings` (resolved here when not given).
    """
    from cicd.host.target import Target

    runner = _runner(c)
    return Target(runner, task_settings(c) if settings is None else settings, env)


def env_targets(
    c: Any, env: str = "", settings: Settings | None = None
) -> list[Target]:
    """The Targets of ``env``, or of every configured environment when it is empty.

    ``settings`` are the task's :func:`task_settings` (resolved here when not given),
    the same for them all.
    """
    if settings is None:
        settings = task_settings(c)
    names = env_names(settings, only=env)
    return [t for name in names for t in targets(c, name, settings)]


def env_names(settings: Settings | None = None, only: str = "") -> list[str]:
    """The configured environments' names, or just ``only``: the ``--env`` given.

    ``settings`` are the task's :func:`task_settings` (this machine's when not given).
    """
    from cicd.core import config

    if only:
        return [only]
    return sorted((config.load() if settings is None else settings).envs)


def first_env_target(c: Any) -> Target:
    """The first configured environment's Target, for a task about the host itself.

    ``down`` and ``health --url`` act on no environment of their own: the first
    one's settings (the runtime, the monitor's rules, the notifier) are the host's.
    """
    settings = task_settings(c)
    return target(c, env_names(settings)[0], settings)


def configured_fleet(c: Any, hosts: list[Target]) -> list[Target] | None:
    """``hosts`` when they come from the configuration (not ``fab -H``), else None."""
    from cicd.transport.runner import Runner

    remote_context = Runner(c).remote
    return hosts if hosts[0].runner.remote and not remote_context else None


def host_label(t: Target) -> str:
    """``env`` on this machine, ``env@host`` over SSH: how a task's lines name it."""
    return t.env if not t.runner.remote else f"{t.env}@{t.runner.host}"


def notifier(t: Target, hosts: list[Target] | None = None) -> Notifier:
    """The notifier of an environment; its messages name ``hosts`` (over SSH)."""
    from cicd.reporting.notify import Notifier

    if hosts is None:
        return Notifier(t)
    return Notifier(t, hosts=[h.runner.host for h in hosts if h.runner.remote])


def resume_watches(c: Any, hosts: list[Target], n: Notifier) -> list[str]:
    """Resume the environment's interrupted CI watches, in the background.

    A watch stopped by a kill, a reboot or a freeze is picked up by the next task
    that can: here, for this machine or the configured hosts; under ``fab -H``,
    ``invoke watch --resume`` on the host does it instead.

    Returns:
        The shas whose watch was resumed.
    """
    fleet = configured_fleet(c, hosts)
    if fleet is None and hosts[0].runner.remote:
        return []
    from cicd.pipeline import watch as ci_watch

    return ci_watch.resume(hosts, n, detach=True, configured=fleet is not None)
