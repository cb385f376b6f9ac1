"""The one place where built commands run: through the task's Context.

Under ``invoke`` the context is an :class:`invoke.Context` and commands run locally;
under ``fab -H HOST`` it is a :class:`fabric.Connection` and the same commands run over
SSH. Nothing else in :mod:`cicd` spawns a process on the target.

Round trips. Over SSH a command costs a round trip and a shell on the host, so the
runner sends several commands as one script when it can, still one command each,
with its own output and exit status:

- :meth:`Runner.defer` queues a command whose result nobody waits for (a mkdir, an
  intent file): it runs just before the next command, in the same script. A
  deferred command that fails raises there, naming itself, and nothing after it
  runs.
- ``run(command, prefetch=[...])`` runs read-only commands right after the one
  asked for, in the same script, and keeps their results: the next ``run`` of one
  of them is answered from there, once, unless another command ran in between.
  :meth:`Runner.ahead` does the same with whatever command runs next.
"""

from __future__ import annotations

import atexit
import secrets
import shlex
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from invoke.context import Context as InvokeContext

from cicd.commands import Command
from cicd.core.errors import CommandFailed, ConnectionLost
from cicd.core.redact import redact


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


#: Every runner of this process, for :func:`flush_all`.
_RUNNERS: weakref.WeakSet[Runner] = weakref.WeakSet()


def flush_all() -> None:
    """Run every runner's deferred commands (a task does this before it ends)."""
    for runner in list(_RUNNERS):
        runner.flush()


@atexit.register
def _flush_at_exit() -> None:
    # The last resort of a task that ended without flush_all (a bug): the
    # deferred commands still run, or the user hears that they did not.
    try:
        flush_all()
    except Exception as error:  # at exit, a traceback would help no one
        print(f"warning: deferred commands not run: {error}", file=sys.stderr)


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
        # Scripts of several commands: on this machine and over fabric's SSH. A
        # test's recording context sees every command on its own, as before.
        self.batches = self._direct or type(context).__module__.startswith("fabric.")
        self._queue: list[tuple[Command, Callable[[Result], None] | None]] = []
        self._kept: dict[str, Result] = {}
        self._ahead: list[Command] = []
        #: Frames each command's output in a script; random, so no output forges it.
        self._mark = f"@@cicd-{secrets.token_hex(6)}@@"
        _RUNNERS.add(self)

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

    def run(
        self,
        command: Command,
        *,
        check: bool = True,
        prefetch: Sequence[Command] = (),
    ) -> Result:
        """Run one command (after any deferred ones) and return its result.

        Args:
            command: The built command.
            check: Raise :class:`~cicd.core.errors.CommandFailed` on a non-zero exit.
            prefetch: Read-only commands this run will ask for next: they run in
                the same script, right after ``command``, and their results are
                kept for those next asks (see the module docstring).

        Returns:
            The command's output and exit status.

        Raises:
            CommandFailed: The command exited non-zero and ``check`` is true, or a
                deferred command failed (then ``command`` did not run).
        """
        line = command.render()
        kept = self._kept.pop(line, None)
        if kept is not None and not self._queue:
            result = kept
        else:
            self._kept.clear()
            queued, self._queue = self._queue, []
            extra = [*prefetch, *self._ahead] if self.batches else []
            self._ahead = []
            lines = (
                [c.render() for c, _ in queued] + [line] + [c.render() for c in extra]
            )
            results = self._script(lines, stop_after=len(queued))
            for (deferred, then), done in zip(queued, results):
                if done is None or not done.ok:
                    failed = done or Result("", "did not run", -1, 0.0)
                    raise CommandFailed(
                        redact(deferred.render()),
                        failed.exited,
                        redact(failed.stderr),
                    )
                if then is not None:
                    then(done)
            result = results[len(queued)] or Result("", "did not run", -1, 0.0)
            for read, done in zip(extra, results[len(queued) + 1 :]):
                if done is not None:
                    self._kept[read.render()] = done
        if check and not result.ok:
            raise CommandFailed(redact(line), result.exited, redact(result.stderr))
        return result

    def defer(
        self, command: Command, then: Callable[[Result], None] | None = None
    ) -> None:
        """Run ``command`` just before the next one, in the same script.

        For commands whose result nobody waits for. Where the runner cannot send a
        script (a test's recording context), the command runs now, as ``run``
        would.

        Args:
            command: The built command; it must succeed.
            then: Called with its result once it ran.

        Raises:
            CommandFailed: Only when it runs now and fails.
        """
        self._kept.clear()
        if not self.batches:
            done = self.run(command)
            if then is not None:
                then(done)
            return
        self._queue.append((command, then))

    def ahead(self, reads: Sequence[Command]) -> None:
        """Read these right after the next command that runs, whatever it is.

        For reads a caller knows will follow a command it does not build itself
        (the first health probes after a runtime's restart). Kept as ``prefetch``
        keeps them: used once, and forgotten if another command runs first.
        """
        if self.batches:
            self._ahead.extend(reads)

    def flush(self) -> None:
        """Run the deferred commands now, before anything that bypasses the runner.

        A runtime that talks to a daemon's socket itself, for example, flushes
        first, so the files a deferred command writes are there.
        """
        if self._queue:
            self.run(Command(("true",)))

    @property
    def pending(self) -> int:
        """How many deferred commands wait for the next command."""
        return len(self._queue)

    def _script(self, lines: list[str], *, stop_after: int) -> list[Result | None]:
        """Run ``lines`` in one shell; each one's result, None for those not run.

        The first ``stop_after`` lines end the script when they fail; the others
        run whatever came before them.
        """
        if len(lines) == 1:
            return [self.execute(lines[0])]
        mark = self._mark
        parts = []
        for index, line in enumerate(lines):
            begin, end = f"{mark} {index}<", f"{mark} {index}>"
            parts.append(
                f"printf '%s\\n' '{begin}'; printf '\\n%s\\n' '{begin}' >&2\n"
                f"{line}\n"
                f"s=$?; printf '\\n%s %s\\n' '{end}' \"$s\"; "
                f"printf '\\n%s\\n' '{end}' >&2\n"
            )
            if index < stop_after:
                parts.append('[ "$s" -eq 0 ] || exit "$s"\n')
        script = "".join(parts)
        if self.remote:
            # The login shell on the host may not be a POSIX one (fish, csh):
            # it only has to start sh, as for any single command.
            script = shlex.join(["sh", "-c", script])
        whole = self.execute(script, shown=lines)
        return [_framed(whole, mark, index) for index in range(len(lines))]

    def execute(self, line: str, *, shown: Sequence[str] = ()) -> Result:
        """Send one shell line where commands run: one process, or one round trip.

        Args:
            line: The shell line (a script of several commands, or one).
            shown: The commands it is made of, for ``verbose`` (default: ``line``).
        """
        if self.verbose:
            for each in shown or [line]:
                print(f"$ {redact(each)}", flush=True)
        started = time.monotonic()
        try:
            if self.remote:
                from cicd.transport.ssh import tune

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
            from cicd.transport.ssh import describe_failure

            raise ConnectionLost(describe_failure(self.host, error)) from None
        return Result(
            stdout=raw.stdout,
            stderr=raw.stderr,
            exited=int(raw.exited),
            seconds=time.monotonic() - started,
        )

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
        self.flush()
        self._kept.clear()
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


def _framed(whole: Result, mark: str, index: int) -> Result | None:
    """Command ``index``'s part of a script's result; None when it did not run."""
    begin = f"{mark} {index}<\n"
    start = whole.stdout.find(begin)
    if start < 0:
        return None
    start += len(begin)
    end = whole.stdout.find(f"\n{mark} {index}> ", start)
    errors = whole.stderr.partition(f"\n{begin}")[2]
    errors = errors.partition(f"\n{mark} {index}>\n")[0]
    if end < 0:  # the script itself ended inside this command (its own exit)
        return Result(whole.stdout[start:], errors, whole.exited or -1, whole.seconds)
    status = whole.stdout[end:].split("\n", 2)[1].rsplit(" ", 1)[1]
    return Result(whole.stdout[start:end], errors, int(status), whole.seconds)


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
    """A stream that writes whole lines through :func:`~cicd.core.redact.redact`.

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
