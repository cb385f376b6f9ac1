"""One environment on one host, as everything that acts there needs it.

A :class:`HostContext` is made once per environment and host, from settings the task
layer resolved once, and handed down: the slots, the haproxy front and the runtimes
take it instead of reaching back through :class:`~cicd.host.target.Target`.
Anything here that asks the host something is a method, and is asked once per run
(the runner's facts keep the answer).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cicd.checks.health import Fetcher, LocalFetcher
from cicd.commands import files

if TYPE_CHECKING:
    from cicd.core.settings import EnvSettings
    from cicd.core.layout import EnvPaths
    from cicd.transport.runner import Runner


@dataclass(frozen=True, eq=False)
class HostContext:
    """Who runs commands on the host, the environment's settings and its paths.

    Attributes:
        runner: Runs commands locally or over SSH.
        settings: The environment's settings, resolved for this host.
        paths: The environment's directories on the host.
    """

    runner: Runner
    settings: EnvSettings
    paths: EnvPaths

    @property
    def env(self) -> str:
        """The environment's name."""
        return self.paths.env

    @property
    def python(self) -> str:
        """Interpreter that builds the app's venvs and runs probes on the host."""
        if self.settings.python:
            return self.settings.python
        return "python3" if self.runner.remote else sys.executable

    def fetcher(self) -> Fetcher:
        """Who makes this environment's health requests: here, or on its host."""
        if not self.runner.remote:
            return LocalFetcher()
        from cicd.checks.probe import RemoteFetcher

        return RemoteFetcher(self.runner, self.python)

    def haproxy_path(self) -> str:
        """The full path of haproxy on the host, or "" (asked once per host and run).

        Looked up on PATH and then supervisord's own PATH (/usr/sbin included),
        so the program detected is the one supervisord will run.
        """
        from cicd.commands.supervisor import CLEAN_PATH

        program = self.settings.proxy.haproxy
        key = f"which {program}"
        if key not in self.runner.facts:
            found = self.runner.run(files.locate(program, CLEAN_PATH), check=False)
            lines = found.stdout.strip().splitlines()
            self.runner.facts[key] = lines[-1] if found.ok and lines else ""
        value = self.runner.facts[key]
        return value if isinstance(value, str) else ""
