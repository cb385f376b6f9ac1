"""The one place where built commands run: through the task's Context.

Under ``invoke`` the context is an :class:`invoke.Context` and commands run locally;
under ``fab -H HOST`` it is a :class:`fabric.Connection` and the same commands run over
SSH. Nothing else in :mod:`cicd` spawns a process on the target.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from invoke.context import Context as InvokeContext

from cicd.commands import Command
from cicd.errors import CommandFailed, ConnectionLost
from cicd.redact import redact


class ContextLike(Protocol):
    """What the runner needs of an invoke Context or a fabric Connection."""

    def run(self, command: str, **kwargs: Any) -> Any:
        """Run a shell line."""


@dataclass(frozen=True)
class Result:
    """What a command printed and how it exited."""

    stdout: str
    stderr: str
    exited: int
    seconds: float

    @property
    def ok(self) -> bool:
        """Whether the command exited 0."""
        return self.exited == 0


class Runner:
    """Run :class:`~cicd.commands.Command` values through a Context or Connection.

    Args:
        context: The task's ``c``: an invoke Context or a fabric Connection.
        verbose: Echo each command line (redacted) before running it.
    """

    def __init__(self, context: ContextLike, *, verbose: bool = False) -> None:
        self.context = context
        self.verbose = verbose
        #: Facts about the host that do not change during a run (which compose
        #: program works, whether haproxy is there), asked once per runner.
        self.facts: dict[str, object] = {}
        # A plain invoke Context runs a captured command in ~7 ms (reader
        # threads, pty and watcher machinery we never use); the same shell line
        # through subprocess costs ~1 ms. Anything else (a fabric Connection, a
        # test's recording context) keeps its own run().
        # Exactly invoke's Context: a fabric Connection is a subclass of it.
        self._direct = type(context) is InvokeContext
        self._shell = "/bin/bash"
        if self._direct:
            run_config = getattr(getattr(context, "config", None), "run", None)
            self._shell = str(getattr(run_config, "shell", "") or self._shell)

    @property
    def remote(self) -> bool:
        """Whether commands run on another host (a fabric Connection)."""
        return hasattr(self.context, "host") and hasattr(self.context, "open")

    @property
    def here(self) -> bool:
        """Whether commands run on this machine as plain processes (invoke's Context).

        Then a runtime may also talk to a local daemon's socket itself, as the
        command it would run does (supervisorctl), without spawning it.
        """
        return self._direct

    @property
    def host(self) -> str:
        """A short name of where commands run, for messages and the ledger."""
        if self.remote:
            name = getattr(self.context, "original_host", None)
            return str(name or getattr(self.context, "host"))
        import socket

        return socket.gethostname()

    def run(self, command: Command, *, check: bool = True) -> Result:
        """Run one command and return its result.

        Args:
            command: The built command.
            check: Raise :class:`~cicd.errors.CommandFailed` on a non-zero exit.

        Returns:
            The command's output and exit status.

        Raises:
            CommandFailed: The command exited non-zero and ``check`` is true.
        """
        line = command.render()
        if self.verbose:
            print(f"$ {redact(line)}", flush=True)
        started = time.monotonic()
        try:
            if self.remote:
                from cicd.ssh import tune

                tune(self.context)
            if self._direct:
                raw = _run_here(line, self._shell)
            else:
                raw = self.context.run(
                    line, hide=True, warn=True, in_stream=False, pty=False
                )
        except Exception as error:
            if not self.remote:
                raise
            # paramiko and socket errors: an unknown host key, a refused or dropped
            # connection. One clear line instead of a traceback.
            from cicd.ssh import describe_failure

            raise ConnectionLost(describe_failure(self.host, error)) from None
        result = Result(
            stdout=raw.stdout,
            stderr=raw.stderr,
            exited=int(raw.exited),
            seconds=time.monotonic() - started,
        )
        if check and not result.ok:
            raise CommandFailed(redact(line), result.exited, redact(result.stderr))
        return result

    def stream(self, command: Command, out: TextIO | None = None) -> int:
        """Run a command whose output goes to ``out`` as it comes, until it ends.

        For output that never ends by itself (``tail -F``): Ctrl-C stops it. Over
        SSH the command gets a pseudo-terminal, so that Ctrl-C reaches it and ends it
        on the host too, instead of leaving it behind. Every line is redacted.

        Args:
            command: The built command.
            out: Where its output goes (default: stdout); stderr goes to stderr.

        Returns:
            Its exit code; 0 when it was interrupted with Ctrl-C.
        """
        writer = _Redacting(out or sys.stdout)
        errors = _Redacting(sys.stderr)
        try:
            raw = self.context.run(
                command.render(),
                hide=False,
                warn=True,
                in_stream=False,
                pty=self.remote,
                out_stream=writer,
                err_stream=errors,
            )
        except KeyboardInterrupt:
            return 0
        finally:
            writer.close()
            errors.close()
        exited = int(raw.exited)
        # Ctrl-C in a terminal signals the local command too: that is its way out.
        return 0 if exited in (-signal.SIGINT, 128 + signal.SIGINT) else exited

    def ok(self, command: Command) -> bool:
        """Run a command and tell whether it exited 0 (never raises on failure)."""
        return self.run(command, check=False).ok

    def output(self, command: Command) -> str:
        """Run a command that must succeed and return its stripped stdout."""
        return self.run(command).stdout.strip()


@dataclass(frozen=True)
class _Raw:
    stdout: str
    stderr: str
    exited: int


def _run_here(line: str, shell: str) -> _Raw:
    """Run a shell line on this machine, as invoke would, with output captured.

    Returns:
        Its output and exit status (a signal's death as ``-N``, as invoke says).
    """
    done = subprocess.run(
        [shell, "-c", line],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
    )
    return _Raw(done.stdout, done.stderr, done.returncode)


class _Redacting:
    """A stream that writes whole lines through :func:`~cicd.redact.redact`.

    A line is held until it ends, so a secret split across two writes is still
    masked.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.held = ""

    def write(self, text: str) -> int:
        """Write every complete line now; keep the rest for the next write."""
        self.held += text
        if "\n" in self.held:
            lines, self.held = self.held.rsplit("\n", 1)
            self.out.write(redact(lines + "\n"))
            self.out.flush()
        return len(text)

    def flush(self) -> None:
        """Lines are flushed as they end; a partial line waits for its end."""

    def close(self) -> None:
        """Write what is left (a last line without its newline)."""
        if self.held:
            self.out.write(redact(self.held))
            self.held = ""
        self.out.flush()
