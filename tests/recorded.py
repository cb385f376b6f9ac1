"""The orchestration run with no process: a recording runner and a scripted host.

:class:`RecordingRunner` is the real :class:`~cicd.transport.runner.Runner` — the
same batching of round trips (``defer``, ``prefetch``, ``ahead``) as over SSH — whose
one script per round trip is answered by a :class:`ScriptedHost` instead of a shell.
It records every command it is given and which round trip carried it.

:class:`ScriptedHost` models just enough of a host to answer what deploys,
rollbacks, repairs and verdicts ask: files, directories and symlinks; git commits;
a supervisord whose programs run a release on a port; haproxy's runtime API; and the
HTTP probes a remote health check runs on the host. A command is recognised by its
structure: the constant script of a ``sh -c`` builder (found by calling the builder
itself, see :data:`_SCRIPTS`) or its program and first arguments, never by matching
rendered shell. A command it does not know fails the test, naming the command.

What needs a real process, and is left to ``tests/integration``: a local run's talk
to haproxy's unix socket (:meth:`cicd.host.proxy.Proxy.api` when not ``remote``) and
to supervisord's XML-RPC socket (only under invoke's own Context, which this runner
never is); rendered-page checks (Chromium); the compose and swarm runtimes (docker
commands, not modelled here); a local CI run (``ci.provider = "local"``).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from posixpath import basename, dirname, join, normpath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from cicd.checks.health import Fetched, FetchError, wait_ready
from cicd.commands import Command, files, git, http
from cicd.commands import haproxy as hx
from cicd.commands import supervisor as sv
from cicd.commands import venv
from cicd.core.config import from_table
from cicd.host.context import HostContext
from cicd.host.target import Target
from cicd.pipeline.deploy import DeployResult, deploy_preprod
from cicd.reporting.notify import Notifier
from cicd.transport.runner import Result, Runner

if TYPE_CHECKING:
    from cicd.core.config import Settings

#: A full sha in a path or a line, shortened in descriptions.
_SHA = re.compile(r"\b([0-9a-f]{7})[0-9a-f]{33}\b")
#: haproxy's admin state of a server the config marks ``disabled``: maintenance
#: from the config (0x04) and forced (0x01); ``state ready`` clears only the latter.
_CONFIG_DISABLED = 0x04 | 0x01


def _script(command: Command) -> str:
    return command.argv[2]


#: Each ``sh -c`` builder's constant script, by the name of what it does.
_SCRIPTS = {
    _script(files.read("p")): "read",
    _script(files.append_line("p", "l")): "append",
    _script(files.append_lines("p", "l")): "append",
    _script(files.write_atomic("p", "c")): "write",
    _script(files.readlink("p")): "readlink",
    _script(files.switch_symlink("l", "t")): "link",
    _script(files.switch_symlink("l", "t", "f", "x")): "switch",
    _script(files.list_dirs("p")): "list_dirs",
    _script(files.list_files("p")): "list_files",
    _script(files.make_lock("l", "d")): "lock",
    _script(files.sha256("p")): "sha256",
    _script(files.locate("p", "x")): "locate",
    _script(files.which("p")): "which",
    _script(files.sh_tail("p", 1)): "tail",
    _script(sv.tail_since_start("p", 1)): "tail",
    _script(files.snapshot("d")): "snapshot",
    _script(files.lock_state("l")): "lock_state",
    _script(files.read_all("p")): "read_all",
    _script(git.resolve_described("r", "v")): "resolve",
    _script(git.export("r", "s", "d")): "export",
    _script(sv.serving_dir("supervisorctl", "c", "p")): "serving_dir",
    _script(sv.daemon("supervisord", "c")): "daemon",
    _script(sv.set_autostart(("p", True))): "autostart",
}
#: Plain commands, by their first words.
_PROGRAMS = {
    ("mkdir", "-p", "--"): "mkdirs",
    ("rm", "-rf", "--"): "remove",
    ("test", "-e"): "exists",
    ("ln", "-sfn", "--"): "symlink",
    ("mv", "-T", "--"): "rename",
    ("touch",): "touch",
    ("true",): "true",
}
#: What the ``python -c`` programs run on the host are, by their constant code.
_PYTHON = {
    http.PROBE: "probe",
    hx.API_SCRIPT: "haproxy",
    venv.python_version("p").argv[2]: "python_version",
}


@dataclass(frozen=True)
class Answer:
    """What the host's shell gives back for one command, and what it changed.

    Attributes:
        stdout: What the command printed.
        exited: Its exit status.
        changed: What it changed on the host, in words ("" when it only read).
        read: What it read, in words (default: its kind and first path).
    """

    stdout: str = ""
    exited: int = 0
    changed: str = ""
    read: str = ""


@dataclass(frozen=True)
class Call:
    """One command the host answered.

    Attributes:
        trip: The round trip (0, 1, ...) that carried it.
        kind: What it is (a value of :data:`_SCRIPTS`, ``supervisorctl``...).
        text: What it changed or read, in a few words, paths relative to the root
            and shas shortened.
        changes: Whether it changed the host.
        command: The command itself.
    """

    trip: int
    kind: str
    text: str
    changes: bool
    command: Command


class ScriptedHost:
    """A host whose state is a few dicts, answering commands as a shell would.

    Args:
        root: The target root every environment lives under.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.files: dict[str, str] = {}
        self.links: dict[str, str] = {}
        self.dirs: set[str] = {"/"}
        #: sha -> (author, subject): the commits of the source repository.
        self.commits: dict[str, tuple[str, str]] = {}
        #: Releases whose app runs but answers every request with a 500.
        self.broken: set[str] = set()
        self.daemon = False
        #: Program -> the program file supervisord loaded.
        self.loaded: dict[str, str] = {}
        #: Running program -> the directory its process runs in.
        self.running: dict[str, str] = {}
        #: haproxy's backends: name -> server -> [port, admin state].
        self.backends: dict[str, dict[str, list[int]]] = {}
        #: haproxy's frontends: port -> backend.
        self.frontends: dict[int, str] = {}
        self.calls: list[Call] = []
        self.trips = 0

    # -- what the tests read ------------------------------------------------------

    def commit(self, sha: str, subject: str) -> str:
        """Add a commit to the source repository; returns its sha."""
        self.commits[sha] = ("Ada", subject)
        return sha

    def forget(self) -> None:
        """Start recording afresh (the state of the host is kept)."""
        self.calls.clear()
        self.trips = 0

    def changes(self) -> list[str]:
        """What changed the host, in order: one line per command."""
        return [call.text for call in self.calls if call.changes]

    def ledger(self, env: str) -> list[dict[str, Any]]:
        """The ledger of ``env``, parsed."""
        text = self.files.get(join(self.root, env, "ledger.jsonl"), "")
        return [json.loads(line) for line in text.splitlines() if line]

    def events(self, env: str) -> list[str]:
        """The ledger's event names, each with its outcome when not ``ok``."""
        return [
            e["event"] + ("" if e["outcome"] == "ok" else f":{e['outcome']}")
            for e in self.ledger(env)
        ]

    def release_of(self, program: str) -> str | None:
        """The sha the program's process runs, or None when it is not running."""
        cwd = self.running.get(program, "")
        found = re.search(r"/releases/([0-9a-f]{40})", cwd)
        return found.group(1) if found else None

    def read_link(self, path: str) -> str | None:
        """The sha a release symlink names, or None."""
        target = self.links.get(path)
        return basename(target.rstrip("/")) if target else None

    # -- answering ------------------------------------------------------------------

    def answer(self, command: Command, trip: int) -> Result:
        """Answer one command as the host's shell would; record it."""
        kind, args = self._recognise(command)
        answer: Answer = getattr(self, f"_on_{kind}")(args)
        path = [a for a in args[:1] if a.startswith("/")]
        text = answer.changed or answer.read or " ".join([kind, *path])
        self.calls.append(
            Call(trip, kind, self._relative(text), bool(answer.changed), command)
        )
        failed = "" if answer.exited == 0 else f"{kind} failed"
        return Result(answer.stdout, failed, answer.exited, 0.0)

    def _recognise(self, command: Command) -> tuple[str, list[str]]:
        """What a command is, by its structure, and its arguments (values only)."""
        argv = command.argv
        if argv[:2] == ("sh", "-c") and argv[2] in _SCRIPTS:
            return _SCRIPTS[argv[2]], list(argv[4:])
        for words, kind in _PROGRAMS.items():
            if argv[: len(words)] == words:
                return kind, list(argv[len(words) :])
        if len(argv) > 2 and argv[1] == "-c" and argv[2] in _PYTHON:
            return _PYTHON[argv[2]], list(argv[3:])
        if basename(argv[0]) == "supervisorctl":
            return "supervisorctl", list(argv[argv.index("-c") + 2 :])
        if argv[0] == "git" and "log" in argv:
            return "describe", [argv[-2]]
        if argv[1:3] == ("-c", "-f") and basename(argv[0]) == "haproxy":
            return "haproxy_check", []
        if argv[1:3] == ("-m", "venv") or argv[:2] == ("uv", "venv"):
            return "venv", [argv[-1]]
        raise AssertionError(f"the scripted host cannot answer: {command.render()}")

    def _relative(self, text: str) -> str:
        return _SHA.sub(r"\1", text.replace(self.root + "/", ""))

    # -- files ----------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        """Whether a file, directory or symlink is at ``path``."""
        return path in self.files or path in self.links or path in self.dirs

    def _under(self, path: str) -> list[tuple[dict[str, str] | set[str], str]]:
        """Everything at ``path`` or below it, with the store that holds it."""
        found: list[tuple[dict[str, str] | set[str], str]] = []
        for store in (self.files, self.links, self.dirs):
            found += [
                (store, p) for p in store if p == path or p.startswith(path + "/")
            ]
        return found

    def _mkdirs(self, path: str) -> None:
        while path not in self.dirs:
            self.dirs.add(path)
            path = dirname(path)

    def _children(self, path: str, store: dict[str, str] | set[str]) -> list[str]:
        """The names directly in ``path`` (hidden ones left out, as ``find`` does)."""
        names = [p[len(path) + 1 :] for p in store if dirname(p) == path]
        return sorted(n for n in names if not n.startswith("."))

    def _on_read(self, args: list[str]) -> Answer:
        return Answer(self.files.get(args[0], ""))

    def _on_read_all(self, args: list[str]) -> Answer:
        mark, paths = args[0], args[1:]
        sections = (f"{mark} {i}\n{self.files.get(p, '')}" for i, p in enumerate(paths))
        return Answer("".join(sections), read="read_all " + " ".join(paths))

    def _on_readlink(self, args: list[str]) -> Answer:
        return Answer(self.links.get(args[0], ""))

    def _on_exists(self, args: list[str]) -> Answer:
        return Answer(exited=0 if self.exists(args[0]) else 1)

    def _on_list_dirs(self, args: list[str]) -> Answer:
        return Answer("".join(f"{n}\n" for n in self._children(args[0], self.dirs)))

    def _on_list_files(self, args: list[str]) -> Answer:
        return Answer("".join(f"{n}\n" for n in self._children(args[0], self.files)))

    def _on_sha256(self, args: list[str]) -> Answer:
        if args[0] not in self.files:
            return Answer()
        return Answer(hashlib.sha256(self.files[args[0]].encode()).hexdigest() + "\n")

    def _on_snapshot(self, args: list[str]) -> Answer:
        env, mark = args
        releases = self._children(join(env, "releases"), self.dirs)
        parts = [
            ("current", self.links.get(join(env, "current"), "") + "\n"),
            ("validated", self.files.get(join(env, "validated"), "")),
            ("releases", "".join(f"{n}\n" for n in releases)),
            ("lock", self._on_lock_state([join(env, "lock")]).stdout),
            ("ledger", self.files.get(join(env, "ledger.jsonl"), "")),
        ]
        return Answer("".join(f"{mark} {name}\n{text}" for name, text in parts))

    def _on_lock_state(self, args: list[str]) -> Answer:
        if args[0] not in self.dirs:
            return Answer()
        return Answer(f"held\n{self.files.get(join(args[0], 'details'), '')}\n")

    def _on_lock(self, args: list[str]) -> Answer:
        lock, details, *made = args
        for path in made:
            self._mkdirs(path)
        if self.exists(lock):
            return Answer(exited=1, read=f"lock {lock} (held)")
        self._mkdirs(lock)
        self.files[join(lock, "details")] = details
        return Answer(changed=f"lock {lock}")

    def _on_append(self, args: list[str]) -> Answer:
        # A torn last line (a write cut short) is not modelled: none is ever torn.
        path, lines = args[0], args[1:]
        self.files[path] = self.files.get(path, "") + "".join(f"{x}\n" for x in lines)
        names = [json.loads(x).get("event", "?") for x in lines if x.startswith("{")]
        return Answer(changed=f"append {path}: {' '.join(names) or len(lines)}")

    def _on_write(self, args: list[str]) -> Answer:
        self._mkdirs(dirname(args[0]))
        self.files[args[0]] = args[1]
        return Answer(changed=f"write {args[0]}")

    def _on_link(self, args: list[str]) -> Answer:
        self.links[args[0]] = args[1]
        return Answer(changed=f"link {args[0]} -> {args[1]}")

    def _on_symlink(self, args: list[str]) -> Answer:
        return self._on_link([args[1], args[0]])  # ln -sfn TARGET LINK

    def _on_switch(self, args: list[str]) -> Answer:
        self._on_link(args[:2])
        self._on_append(args[2:])
        names = " ".join(json.loads(x)["event"] for x in args[3:])
        return Answer(changed=f"switch {args[0]} -> {args[1]}, ledger: {names}")

    def _on_mkdirs(self, args: list[str]) -> Answer:
        for path in args:
            self._mkdirs(path)
        return Answer(changed="mkdir " + " ".join(args))

    def _on_remove(self, args: list[str]) -> Answer:
        for path in args:
            for store, found in self._under(path):
                if isinstance(store, set):
                    store.discard(found)
                else:
                    store.pop(found)
        return Answer(changed="remove " + " ".join(args))

    def _on_rename(self, args: list[str]) -> Answer:
        source, destination = args
        for store, found in self._under(source):
            moved = destination + found[len(source) :]
            if isinstance(store, set):
                store.discard(found)
                store.add(moved)
            else:
                store[moved] = store.pop(found)
        return Answer(changed=f"rename {source} -> {destination}")

    def _on_touch(self, args: list[str]) -> Answer:
        self.files.setdefault(args[0], "")
        return Answer(changed=f"touch {args[0]}")

    def _on_true(self, args: list[str]) -> Answer:
        return Answer()

    # -- tools, git and the venvs ---------------------------------------------------

    def _on_which(self, args: list[str]) -> Answer:
        return Answer()  # every program is there

    def _on_locate(self, args: list[str]) -> Answer:
        return Answer(f"/usr/sbin/{args[1]}\n")

    def _on_tail(self, args: list[str]) -> Answer:
        return Answer()  # the apps write no log

    def _on_python_version(self, args: list[str]) -> Answer:
        return Answer("/usr/bin/python3 3.11.2\n")

    def _on_venv(self, args: list[str]) -> Answer:
        self._mkdirs(args[0])
        return Answer(changed=f"venv {args[0]}")

    def _on_resolve(self, args: list[str]) -> Answer:
        found = [s for s in self.commits if s.startswith(args[1].lower())]
        if len(found) != 1:
            return Answer(exited=1)
        author, subject = self.commits[found[0]]
        return Answer(f"{found[0]}\0{author}\0{subject}\n")

    def _on_describe(self, args: list[str]) -> Answer:
        author, subject = self.commits.get(args[0], ("", ""))
        return Answer(f"{author}\0{subject}\n")

    def _on_export(self, args: list[str]) -> Answer:
        _, sha, destination = args
        if sha not in self.commits:
            return Answer(exited=1)
        self._mkdirs(join(destination, "app"))
        return Answer(changed=f"export {sha} into {destination}")

    # -- supervisord ------------------------------------------------------------------

    def _program_files(self) -> dict[str, str]:
        """The program files in supervisord's ``conf.d``, by program name."""
        conf_d = join(self.root, "supervisor", "conf.d")
        return {
            basename(p)[: -len(".conf")]: text
            for p, text in self.files.items()
            if dirname(p) == conf_d and p.endswith(".conf")
        }

    def _start(self, program: str) -> None:
        """Start a loaded program: it runs in its directory, symlinks resolved."""
        directory = _setting(self.loaded[program], "directory").replace("%%", "%")
        self.running[program] = self._resolve(directory)
        if program == "proxy":
            self._load_haproxy()

    def _resolve(self, path: str) -> str:
        """The real path of ``path``, through the symlinks on the way."""
        done = "/"
        for part in path.strip("/").split("/"):
            done = join(done, part)
            if done in self.links:
                done = normpath(join(dirname(done), self.links[done]))
        return done

    def _on_daemon(self, args: list[str]) -> Answer:
        self.daemon = True
        self.loaded = self._program_files()
        for program, conf in self.loaded.items():
            if _setting(conf, "autostart") == "true":
                self._start(program)
        return Answer(changed="start supervisord")

    def _on_autostart(self, args: list[str]) -> Answer:
        said = []
        for path, value in zip(args[::2], args[1::2]):
            if path in self.files:
                self.files[path] = re.sub(
                    r"(?m)^autostart=.*$", f"autostart={value}", self.files[path]
                )
                said.append(f"{basename(path)}={value}")
        return Answer(changed="autostart " + " ".join(said))

    def _on_serving_dir(self, args: list[str]) -> Answer:
        cwd = self.running.get(args[0], "") if self.daemon else ""
        return Answer(cwd + ("\n" if cwd else ""), read=f"serving_dir {args[0]}")

    def _on_supervisorctl(self, args: list[str]) -> Answer:
        said = "supervisorctl " + " ".join(args)
        if not self.daemon:
            return Answer("unix:///supervisor.sock no such file", 7, read=said)
        action, names = args[0], args[1:]
        if action == "pid":
            return Answer("42\n", read=said)
        if action == "reread":
            return Answer(self._reread(), read=said)
        if action == "update":
            return Answer(self._update(names), changed=said)
        if action == "signal":
            self._load_haproxy()  # USR2: haproxy reloads its config
            return Answer(f"{names[1]}: signalled\n", changed=said)
        program = names[0]
        if program not in self.loaded:
            return Answer(f"{program}: ERROR (no such process)\n", 4, read=said)
        if action == "status":
            if program in self.running:
                return Answer(f"{program} RUNNING pid 7\n", read=said)
            return Answer(f"{program} STOPPED\n", 3, read=said)
        if action == "stop":
            self.running.pop(program, None)
            return Answer(f"{program}: stopped\n", changed=said)
        if action in ("start", "restart"):
            self._start(program)
            return Answer(f"{program}: started\n", changed=said)
        raise AssertionError(f"the scripted supervisord cannot: {said}")

    def _reread(self) -> str:
        wanted = self._program_files()
        lines = [f"{p}: disappeared" for p in self.loaded if p not in wanted]
        lines += [f"{p}: available" for p in wanted if p not in self.loaded]
        lines += [
            f"{p}: changed"
            for p, conf in wanted.items()
            if p in self.loaded and self.loaded[p] != conf
        ]
        return "\n".join(lines or ["No config updates to processes"]) + "\n"

    def _update(self, names: Sequence[str]) -> str:
        """Apply the program files: remove, add or restart what changed."""
        wanted = self._program_files()
        lines = []
        for program in names or sorted({*wanted, *self.loaded}):
            if program not in wanted and program in self.loaded:
                self.running.pop(program, None)
                del self.loaded[program]
                lines.append(f"{program}: removed process group")
            elif program in wanted and self.loaded.get(program) != wanted[program]:
                verb = "updated" if program in self.loaded else "added"
                self.running.pop(program, None)
                self.loaded[program] = wanted[program]
                if _setting(wanted[program], "autostart") == "true":
                    self._start(program)
                lines.append(f"{program}: {verb} process group")
        return "\n".join(lines) + "\n"

    # -- the apps, haproxy and the health probes --------------------------------------

    def get(self, url: str) -> tuple[int, str] | None:
        """Status and body of a GET of ``url``; None when nothing listens there.

        An app answers ``ok``, or a 500 when its release is :attr:`broken`;
        haproxy's frontend answers as the slot it routes to (503: none).
        """
        return self._get(urlsplit(url).port or 80)

    def _get(self, port: int) -> tuple[int, str] | None:
        if "proxy" in self.running and port in self.frontends:
            servers = self.backends[self.frontends[port]]
            for slot_port, admin in servers.values():
                answer = self._get(slot_port)
                if not admin & hx.AWAY and answer and answer[0] == 200:
                    return answer
            return 503, "no server available"
        for program in self.running:
            if program != "proxy" and self._port_of(program) == port:
                sha = self.release_of(program)
                return (500, "error") if sha in self.broken else (200, "ok")
        return None

    def _port_of(self, program: str) -> int:
        """The port a program's app listens on: the last word of its command."""
        return int(_setting(self.loaded[program], "command").split()[-1])

    def _on_probe(self, args: list[str]) -> Answer:
        answer = self.get(args[0])
        if answer is None:
            line = json.dumps({"error": "connection refused"})
        else:
            line = json.dumps(
                {"status": answer[0], "seconds": 0.001, "body": answer[1]}
            )
        return Answer(line + "\n", read=f"probe {args[0]}")

    def _load_haproxy(self) -> None:
        """Read every fragment, as haproxy does when it starts or reloads."""
        conf_d = join(self.root, "proxy", "conf.d")
        self.backends.clear()
        self.frontends.clear()
        for path, text in self.files.items():
            if dirname(path) != conf_d:
                continue
            backend = re.search(r"(?m)^backend (\S+)$", text)
            bind = re.search(r"(?m)^  bind \S+:(\d+)$", text)
            assert backend and bind, f"not a fragment: {path}"
            self.frontends[int(bind.group(1))] = backend.group(1)
            self.backends[backend.group(1)] = {
                name: [int(port), _CONFIG_DISABLED if disabled else 0]
                for name, port, disabled in re.findall(
                    r"(?m)^  server (\S+) \S+:(\d+)( disabled)?$", text
                )
            }

    def _on_haproxy_check(self, args: list[str]) -> Answer:
        return Answer("Configuration file is valid\n")

    def _on_haproxy(self, args: list[str]) -> Answer:
        """The runtime API: ``;``-separated commands, answered in turn."""
        asked = f"haproxy {args[1]}"
        if "proxy" not in self.running:
            return Answer(exited=1, read=asked)
        out, said = [], []
        for line in (part.strip() for part in args[1].split(";")):
            words = line.split()
            if line == "show info":
                out.append("Name: HAProxy\n")
            elif words[:3] == ["show", "servers", "state"]:
                out.append(self._servers_state(words[3]))
            elif words[:2] == ["set", "server"] and words[3] == "state":
                backend, server = words[2].split("/")
                self._set_state(backend, server, words[4])
                said.append(f"{server} {words[4]}")
            else:
                raise AssertionError(f"the scripted haproxy cannot: {line}")
        changed = f"haproxy {', '.join(said)}" if said else ""
        return Answer("".join(out), changed=changed, read=asked)

    def _servers_state(self, backend: str) -> str:
        """``show servers state``: a server is up when its app answers ``ok``."""
        lines = ["1", "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin"]
        for index, (name, (port, admin)) in enumerate(self.backends[backend].items()):
            up = hx.UP if (self._get(port) or (0,))[0] == 200 else 0
            lines.append(f"3 {backend} {index + 1} {name} 127.0.0.1 {up} {admin} 1")
        return "\n".join(lines) + "\n"

    def _set_state(self, backend: str, server: str, state: str) -> None:
        entry = self.backends[backend][server]
        if state == "ready":
            entry[1] &= ~(0x01 | 0x08)
        else:
            entry[1] |= 0x08 if state == "drain" else 0x01


def _setting(conf: str, key: str) -> str:
    """A ``key=value`` line's value in a supervisord program file."""
    found = re.search(rf"(?m)^{key}=(.*)$", conf)
    return found.group(1) if found else ""


class RecordingRunner(Runner):
    """The real runner, batching as over SSH, answered by a :class:`ScriptedHost`.

    Args:
        host: Answers every command.
        remote: Whether commands run "on another host" (health probes and haproxy's
            runtime API then go through the runner, as over SSH).
        name: The host's name, for messages and the ledger.
    """

    def __init__(self, host: ScriptedHost, *, remote: bool = True, name: str = "web1"):
        super().__init__(context=None)  # type: ignore[arg-type]
        self.scripted = host
        self._remote = remote
        self._name = name
        # Several commands per round trip, as over fabric's SSH.
        self.batches = True
        self._commands: dict[str, Command] = {}

    @property
    def remote(self) -> bool:
        """Whether commands run on another host (configurable here)."""
        return self._remote

    @property
    def host(self) -> str:
        """The scripted host's name."""
        return self._name

    def run(
        self,
        command: Command,
        *,
        check: bool = True,
        prefetch: Sequence[Command] = (),
    ) -> Result:
        """Run as the real runner does; remember each command to answer it."""
        self._remember(command, *prefetch)
        return super().run(command, check=check, prefetch=prefetch)

    def defer(
        self, command: Command, then: Callable[[Result], None] | None = None
    ) -> None:
        """Defer as the real runner does; remember the command to answer it."""
        self._remember(command)
        super().defer(command, then)

    def ahead(self, reads: Sequence[Command]) -> None:
        """Read ahead as the real runner does; remember the reads to answer them."""
        self._remember(*reads)
        super().ahead(reads)

    def _remember(self, *commands: Command) -> None:
        for command in commands:
            self._commands[command.render()] = command

    def _script(self, lines: list[str], *, stop_after: int) -> list[Result | None]:
        """One round trip: the host answers each line; a failed deferred one ends it."""
        trip = self.scripted.trips
        self.scripted.trips += 1
        results: list[Result | None] = []
        for index, line in enumerate(lines):
            result = self.scripted.answer(self._commands[line], trip)
            results.append(result)
            if index < stop_after and not result.ok:
                return results + [None] * (len(lines) - index - 1)
        return results


class VirtualClock:
    """The time of readiness polls: a sleep only moves it on, at once.

    :func:`~cicd.checks.health.wait_ready` takes its clock and sleep as defaults;
    installed, a readiness that never comes fails after the same rounds as with a
    real clock, in no time.
    """

    def __init__(self) -> None:
        #: Seconds slept since the clock was made.
        self.elapsed = 0.0

    def monotonic(self) -> float:
        """Seconds on the virtual clock."""
        return 1000.0 + self.elapsed

    def sleep(self, seconds: float) -> None:
        """Move the clock on by ``seconds``."""
        self.elapsed += seconds


class ScriptedFetcher:
    """The health requests of a local run (``remote=False``), answered by the host.

    Over SSH the probes are commands the host answers; here they are what a
    :class:`~cicd.checks.health.LocalFetcher` would get, with no socket opened.
    """

    remote = False

    def __init__(self, host: ScriptedHost) -> None:
        self.host = host
        self.urls: list[str] = []

    def fetch(self, url: str, timeout: float) -> Fetched:
        """GET ``url`` from the scripted host's apps."""
        self.urls.append(url)
        answer = self.host.get(url)
        if answer is None:
            raise FetchError("connection refused")
        return Fetched(answer[0], answer[1], 0.001)


ROOT = "/srv/app"
ENV = "preprod"


def settings(proxy: str = "none") -> Settings:
    """A configuration like the integration tests' (``tests/conftest.py``).

    Args:
        proxy: ``proxy.kind``: in-place restarts (``none``) or blue/green behind
            haproxy (``haproxy``).
    """
    table = {
        "root": ROOT,
        "source": "/srv/source",
        "app_dir": "app",
        "keep": 3,
        "runtime": {"command": "python server.py {port}"},
        "health": {"checks": [{"path": "/", "body_contains": "ok"}]},
        "proxy": {"kind": proxy},
        # The stand-in app has no pages to open in a browser.
        "smoke": {"on_deploy": False},
        "env": {ENV: {"port": 8501, "proxy": {"blue_port": 9001, "green_port": 9002}}},
    }
    return from_table(table, project_dir=Path("/nonexistent"))


class Stage:
    """One environment on a scripted host, and how a task reaches it.

    Each :meth:`target` is a new runner and Target, as each task invocation makes
    its own; the host and its recording are shared.

    Args:
        monkeypatch: Puts the virtual clock in readiness polls, and (``remote``
            False) the scripted fetcher in the host context.
        proxy: ``proxy.kind`` (see :func:`settings`).
        remote: Whether the runner reaches the host "over SSH".
    """

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, proxy: str = "none", remote: bool = True
    ) -> None:
        self.host = ScriptedHost(ROOT)
        self.settings = settings(proxy)
        self.remote = remote
        self.console = io.StringIO()
        self.clock = VirtualClock()
        defaults = wait_ready.__kwdefaults__
        monkeypatch.setitem(defaults, "clock", self.clock.monotonic)
        monkeypatch.setitem(defaults, "sleep", self.clock.sleep)
        self.fetcher = ScriptedFetcher(self.host)
        if not remote:
            monkeypatch.setattr(HostContext, "fetcher", lambda _: self.fetcher)
        # What GitHub's CI sets for a job: no summary, no deployments here.
        for name in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS", "GITHUB_REPOSITORY"):
            monkeypatch.delenv(name, raising=False)

    def target(self) -> Target:
        """The environment as a new task invocation reaches it."""
        runner = RecordingRunner(self.host, remote=self.remote)
        return Target(runner, self.settings, ENV)

    def notifier(self, target: Target) -> Notifier:
        """Messages to :attr:`console` only."""
        return Notifier(target, console=self.console)

    def deploy(self, revision: str) -> DeployResult:
        """``invoke deploy --sha REVISION``."""
        target = self.target()
        return deploy_preprod([target], revision, self.notifier(target))

    def validate(self, sha: str) -> None:
        """Record a CI success for ``sha``, as the watcher does."""
        target = self.target()
        target.set_validated(sha)
        target.event("validated", sha=sha)

    def path(self, *parts: str) -> str:
        """A path in the environment's directory."""
        return join(ROOT, ENV, *parts)

    def interrupt_switch(self, running: str, sha: str) -> None:
        """Leave what a deploy of ``sha`` killed right after its switch leaves.

        Its intent, ``current`` on ``sha`` and the ledger's start and switch, while
        the app still runs ``running`` (the failpoint ``switched``). Not recorded.
        """
        target = self.target()
        target.event("deploy", sha=sha, previous=running, outcome="started")
        target.event("switch", sha=sha, previous=running)
        details = {"from": running, "to": sha, "why": "deploy", "pid": 1, "time": "t"}
        self.host.files[self.path("intent")] = json.dumps(details)
        self.host.links[self.path("current")] = f"releases/{sha}"
        self.host.forget()
