"""Builders for file operations on the target: read, append, atomic write, switch.

Each returns a :class:`~cicd.commands.Command`; values reach the constant scripts only
as positional parameters.
"""

from __future__ import annotations

from cicd.commands import Command, cmd, sh


def mkdirs(*paths: str) -> Command:
    """``mkdir -p`` the given directories."""
    return cmd("mkdir", "-p", "--", *paths)


def read(path: str) -> Command:
    """Print a file's content, or nothing when it does not exist."""
    return sh('[ ! -e "$1" ] || cat -- "$1"', path)


def append_line(path: str, line: str) -> Command:
    """Append one line to a file (``O_APPEND``: appends never interleave)."""
    return sh('printf "%s\\n" "$2" >> "$1"', path, line)


def append_lines(path: str, *lines: str) -> Command:
    """Append lines to a file, in order, always starting on a fresh line.

    A last line cut short (a write killed half-way, a full disk) has no newline:
    one is added first, so the new lines are never glued onto the fragment, and
    ``torn N`` is printed (N: the fragment's line number) for the caller to report.
    """
    return sh(
        'f="$1"; shift; '
        'if [ -s "$f" ] && [ -n "$(tail -c 1 -- "$f")" ]; then '
        'printf "\\n" >> "$f" && echo "torn $(wc -l < "$f")"; fi; '
        'printf "%s\\n" "$@" >> "$f"',
        path,
        *lines,
    )


def write_atomic(path: str, content: str) -> Command:
    """Replace a file's content atomically: temp file, fsync, rename over.

    The content goes through ``tee`` rather than a shell redirection so that a
    write error names the file and the OS's reason (``tee: /srv/x.tmp.42: No space
    left on device``; the shell's ``printf`` says only ``I/O error``); a failed
    write leaves no temp file behind.
    """
    return sh(
        'tmp="$1.tmp.$$"; { printf "%s" "$2" | tee -- "$tmp" > /dev/null && '
        'sync "$tmp" && mv -f "$tmp" "$1"; } || { rm -f -- "$tmp"; exit 1; }',
        path,
        content,
    )


def readlink(path: str) -> Command:
    """Print a symlink's target, or nothing when it does not exist."""
    return sh('[ ! -L "$1" ] || readlink -- "$1"', path)


def switch_symlink(link: str, target: str, ledger: str = "", *lines: str) -> Command:
    """Point ``link`` at ``target`` atomically: a new link renamed over the old one.

    Readers see either the old or the new target, never a missing link. Ledger
    lines given are appended once the switch is done, in the same round trip.
    """
    if not ledger:
        return sh('ln -sfn -- "$2" "$1.new" && mv -Tf -- "$1.new" "$1"', link, target)
    return sh(
        'link="$1"; to="$2"; f="$3"; shift 3; '
        'ln -sfn -- "$to" "$link.new" && mv -Tf -- "$link.new" "$link" '
        '&& printf "%s\\n" "$@" >> "$f"',
        link,
        target,
        ledger,
        *lines,
    )


def remove(*paths: str) -> Command:
    """``rm -rf`` the given paths."""
    return cmd("rm", "-rf", "--", *paths)


def list_dirs(path: str) -> Command:
    """Print the names of the subdirectories of ``path``, one per line."""
    return sh(
        '[ ! -d "$1" ] || find "$1" -mindepth 1 -maxdepth 1 -type d '
        "! -name '.*' -printf '%f\\n'",
        path,
    )


def exists(path: str) -> Command:
    """Exit 0 when ``path`` exists."""
    return cmd("test", "-e", path)


def make_lock(lock_dir: str, details: str, *dirs: str) -> Command:
    """Take a lock: ``mkdir`` is atomic, so exactly one caller succeeds.

    ``dirs`` are created first (``mkdir -p``). Exits 0 when taken (and ``details``
    written into it), non-zero when held — or when the disk refuses (read-only,
    full: a lock whose details could not be written is removed again,
    full, permission denied): the caller tells them apart by whether the lock
    exists, and shows the OS's words from stderr.
    """
    return sh(
        'lock="$1"; details="$2"; shift 2; { [ $# -eq 0 ] || mkdir -p -- "$@"; } && '
        'mkdir -- "$lock" && { printf "%s" "$details" > "$lock/details" '
        '|| { rm -rf -- "$lock"; exit 1; }; }',
        lock_dir,
        details,
        *dirs,
    )


#: :func:`break_lock`'s exit code when it broke the stale lock but another run
#: took the free lock before it could.
BROKEN_BUT_TAKEN = 4


def break_lock(lock_dir: str, stale: str, details: str, grave: str) -> Command:
    """Break a stale lock whose details file reads ``stale``, and take it.

    Of several runs breaking the same stale lock, one wins: each claims the lock
    directory it finds (``mkdir lock/.breaking`` is atomic), re-checks that its
    details are still ``stale`` (not a fresh lock taken meanwhile, which is left
    alone), renames it to ``grave`` (atomic: the stale lock is gone in one step),
    removes it and takes the lock with ``details``.

    Exits 0 when broken and taken, :data:`BROKEN_BUT_TAKEN` when broken but another
    run took the free lock first, 3 when this run did not break it.
    """
    return sh(
        'lock="$1"; stale="$2"; details="$3"; grave="$4"; '
        # A breaker killed mid-way left its claim: after a minute it is void.
        'if [ -n "$(find "$lock/.breaking" -maxdepth 0 -mmin +1 2>/dev/null)" ]; '
        'then rmdir -- "$lock/.breaking" 2>/dev/null; fi; '
        'mkdir -- "$lock/.breaking" 2>/dev/null || exit 3; '
        'if [ "$(cat -- "$lock/details" 2>/dev/null)" != "$stale" ]; then '
        'rmdir -- "$lock/.breaking" 2>/dev/null; exit 3; fi; '
        'mv -T -- "$lock" "$grave" || { rmdir -- "$lock/.breaking"; exit 3; }; '
        'rm -rf -- "$grave"; '
        'mkdir -- "$lock" 2>/dev/null || exit 4; '
        'printf "%s" "$details" > "$lock/details" || { rm -rf -- "$lock"; exit 1; }',
        lock_dir,
        stale,
        details,
        grave,
    )


def archive(archive_path: str, base: str, *members: str) -> Command:
    """Create a gzip tar of ``members`` (relative to ``base``), written atomically.

    A failed archive (a full or read-only disk) leaves no partial file behind.
    """
    return sh(
        'out="$1"; base="$2"; shift 2; tmp="$out.tmp.$$"; '
        '{ tar -czf "$tmp" -C "$base" -- "$@" && mv -f "$tmp" "$out"; } || '
        '{ rm -f -- "$tmp"; exit 1; }',
        archive_path,
        base,
        *members,
    )


def sha256(path: str) -> Command:
    """Print the SHA-256 of a file, or nothing when it does not exist."""
    # Read through stdin: sha256sum escapes names with backslashes or newlines.
    return sh('[ ! -f "$1" ] || sha256sum < "$1" | cut -d" " -f1', path)


def locate(program: str, extra_path: str) -> Command:
    """Print the full path of ``program``, looked up on PATH then ``extra_path``.

    Debian installs daemons such as haproxy in /usr/sbin, which is not on a
    non-root user's PATH; exit 1 when it is found nowhere.
    """
    return sh('PATH="$PATH:$1"; command -v -- "$2"', extra_path, program)


def which(*programs: str) -> Command:
    """Exit 0 when every program is an executable path or on ``PATH``.

    Otherwise exit 1 and print the first one missing.
    """
    return sh(
        'for p; do command -v -- "$p" >/dev/null 2>&1 || { echo "$p"; exit 1; }; '
        "done",
        *programs,
    )


def sh_tail(path: str, lines: int) -> Command:
    """Print the last ``lines`` lines of a file, or nothing when it does not exist."""
    return sh('[ ! -f "$1" ] || tail -n "$2" -- "$1"', path, str(lines))


def follow(path: str, lines: int) -> Command:
    """Print the last ``lines`` lines of a file, then every new one until stopped.

    ``-F`` follows the name, not the open file: it goes on across supervisord's log
    rotation and waits for a file that does not exist yet.
    """
    return cmd("tail", "-n", str(lines), "-F", "--", path)


def link(target: str, link_path: str) -> Command:
    """Create a symlink ``link_path`` -> ``target`` (replacing one that exists)."""
    return cmd("ln", "-sfn", "--", target, link_path)


def rename(source: str, destination: str) -> Command:
    """Rename ``source`` to ``destination`` atomically (``mv -T``: never into it)."""
    return cmd("mv", "-T", "--", source, destination)


def list_files(path: str) -> Command:
    """Print the names of the regular files in ``path``, one per line."""
    return sh(
        '[ ! -d "$1" ] || find "$1" -mindepth 1 -maxdepth 1 -type f -printf "%f\\n"',
        path,
    )


#: Separates the sections of :func:`snapshot`'s output; never in a ledger line.
SECTION = "@@cicd-section@@"


def snapshot(env_dir: str) -> Command:
    """Print everything an environment's state is computed from, in one round trip.

    Sections, in order: current's link target, validated, release names, lock
    details (or nothing), the ledger. Each starts with a ``SECTION NAME`` line.
    """
    return sh(
        'd="$1"; m="$2"; '
        'echo "$m current"; [ ! -L "$d/current" ] || readlink -- "$d/current"; '
        'echo "$m validated"; [ ! -f "$d/validated" ] || cat -- "$d/validated"; '
        'echo "$m releases"; [ ! -d "$d/releases" ] || find "$d/releases" '
        "-mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%f\\n'; "
        'echo "$m lock"; if [ -d "$d/lock" ]; then echo held; '
        '[ ! -f "$d/lock/details" ] || cat -- "$d/lock/details"; echo; fi; '
        'echo "$m ledger"; [ ! -f "$d/ledger.jsonl" ] || cat -- "$d/ledger.jsonl"',
        env_dir,
        SECTION,
    )


def lock_state(lock_dir: str) -> Command:
    """Print ``held`` and the lock's details when ``lock_dir`` exists, else nothing.

    The same text as :func:`snapshot`'s ``lock`` section.
    """
    return sh(
        'if [ -d "$1" ]; then echo held; '
        '[ ! -f "$1/details" ] || cat -- "$1/details"; echo; fi',
        lock_dir,
    )


def read_all(*paths: str) -> Command:
    """Print several files (missing ones as empty), each after a ``SECTION i`` line."""
    return sh(
        'm="$1"; shift; i=0; for f; do echo "$m $i"; [ ! -f "$f" ] || cat -- "$f"; '
        "i=$((i+1)); done",
        SECTION,
        *paths,
    )


def parse_snapshot(text: str) -> dict[str, str]:
    """Split :func:`snapshot` output into its sections by name."""
    sections: dict[str, list[str]] = {}
    name = ""
    for line in text.split("\n"):
        if line.startswith(SECTION + " "):
            name = line[len(SECTION) + 1 :].strip()
            sections[name] = []
        elif name:
            sections[name].append(line)
    return {key: "\n".join(lines).strip("\n") for key, lines in sections.items()}
