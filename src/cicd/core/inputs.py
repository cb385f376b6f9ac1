"""One rule for every value a task is handed: its options and the environment.

Every task of the collection checks its options and the environment variables
cicd reads before its body runs (:func:`check_options`, :func:`check_environment`,
wired in :mod:`cicd.tasks`): a bad value is one line, exit 2, and nothing changed,
whatever the task. The rule is the same for every value; only the :class:`Kind`
differs — how long it may be, whether it may hold several lines or only what an
HTTP header can carry, and its shape. A value is echoed at most clipped, and a
secret (a token, the webhook URL) never.

What a value means (a known environment, a commit of the source, a kept release) is
checked later by the code that uses it; this rule only keeps out what nothing
could mean: a number that is not one, a line with a carriage return, 10 kB where a
sha goes, a token a request header cannot carry.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from cicd.core.errors import UsageError, clip

#: Characters that may reorder or hide what a terminal shows (bidi overrides and
#: isolates), refused as control characters are.
_HIDDEN = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Unicode categories refused everywhere: controls, surrogates, line and paragraph
#: separators.
_REFUSED = frozenset({"Cc", "Cs", "Zl", "Zp"})
#: How much of a refused value a message shows.
SHOWN = 40


@dataclass(frozen=True)
class Kind:
    """What one kind of value may be.

    Attributes:
        expected: What it must be, for the message ("a number of seconds").
        limit: Its longest accepted length, in characters (in bytes for a path).
        pattern: What the whole value must match, when its shape is known.
        lines: It may hold several lines (a message); else one line.
        ascii: Printable ASCII only: it goes into an HTTP header or a URL.
        secret: Never echoed, not even clipped.
        part: The longest "/"-separated part, in bytes (a file name: 255 on
            Linux); 0 for no such limit.
    """

    expected: str
    limit: int = 200
    pattern: re.Pattern[str] | None = None
    lines: bool = False
    ascii: bool = False
    secret: bool = False
    part: int = 0


#: What a revision from the user may look like (a sha, HEAD, a branch, a tag, with
#: git's ``~ ^ @{}`` suffixes); it reaches git only as one argument after
#: ``--end-of-options``, and a leading ``-`` is refused before that.
REVISION_PATTERN = re.compile(r"^[A-Za-z0-9_@][A-Za-z0-9._/@{}^~+-]{0,199}$")

# Where the task itself reads the value's meaning (a number, a revision, a user),
# the kind bounds only its length and characters, and the task's own message says
# what was expected; a pattern is given where nothing later would look.
SECONDS = Kind("a number of seconds", 32)
COUNT = Kind("a whole number", 12)
DIGITS = Kind("a number (digits only)", 20, re.compile(r"\d+"))
NAME = Kind(
    "a name (letters, digits, _ . -)", 64, re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
)
WORD = Kind("one word", 40)
REVISION = Kind("a sha, HEAD, a branch or a tag", 200)
LINE = Kind("one line of text", 500)
TEXT = Kind("a message of at most 2000 characters", 2000, lines=True)
PATH = Kind("a file path", 4096, part=255)
USER = Kind("a user name or a uid", 64)
URLS = Kind("http(s) URLs separated by commas or spaces", 4096, ascii=True)
URL = Kind(
    "a URL (scheme://...) of printable ASCII characters",
    2048,
    re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[!-~]+"),
    ascii=True,
)
WEBHOOK = Kind(
    "an http(s) URL of printable ASCII characters",
    2048,
    re.compile(r"https?://[!-~]+"),
    ascii=True,
    secret=True,
)
TOKEN = Kind(
    "a token of printable ASCII characters, no spaces",
    1024,
    re.compile(r"[!-~]+"),
    ascii=True,
    secret=True,
)
REPOSITORY = Kind(
    "owner/name", 200, re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+"), ascii=True
)
ACTOR = Kind(
    "a user name", 100, re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@/+\[\]-]*"), ascii=True
)
SHA = Kind("a sha, HEAD, a branch or a tag", 200, REVISION_PATTERN, ascii=True)

#: A host as ``fab -H`` takes it: [user@]name-or-address[:port], nothing a shell
#: or ssh would read as more (no spaces, quotes, ``$``, ``;``, leading ``-``).
HOST = re.compile(
    r"^(?:[A-Za-z0-9._-]+@)?"
    r"(?:[A-Za-z0-9_][A-Za-z0-9._-]{0,252}|\[[0-9A-Fa-f:.]+\])"
    r"(?::\d{1,5})?$"
)

#: Each option's kind, by its parameter name: one name means one kind in every
#: task. An option not listed here is one line of text (:data:`LINE`); booleans
#: are parsed by invoke and never reach the rule.
OPTIONS: dict[str, Kind] = {
    "confirm": Kind("exactly DEPLOY", 40, re.compile(r"[A-Za-z0-9_.-]+")),
    "days": COUNT,
    "env": NAME,
    "html": PATH,
    "lines": COUNT,
    "lock_wait": SECONDS,
    "outcome": WORD,
    "patience": SECONDS,
    "reason": LINE,
    "run_id": DIGITS,
    "since": Kind("a date, a time or a duration", 64),
    "sha": REVISION,
    "text": TEXT,
    "to": REVISION,
    "unit_dir": PATH,
    "url": URLS,
    "user": USER,
}

#: Every environment variable cicd reads, and its kind. An empty value is unset.
#: (``CICD_FAILPOINT`` and ``CICD_DEV_TASKS`` are only ever compared with fixed
#: names, so no value of theirs can do harm: not listed.)
ENVIRONMENT: dict[str, Kind] = {
    "CICD_CHROMIUM": PATH,
    "CICD_CONFIG": PATH,
    "CICD_GITHUB_TOKEN": TOKEN,
    "CICD_JOB_TOKEN": TOKEN,
    "DISCORD_WEBHOOK_URL": WEBHOOK,
    "GITHUB_ACTOR": ACTOR,
    "GITHUB_API_URL": URL,
    "GITHUB_REPOSITORY": REPOSITORY,
    "GITHUB_RUN_ID": DIGITS,
    "GITHUB_SERVER_URL": URL,
    "GITHUB_SHA": SHA,
    "GITHUB_TOKEN": TOKEN,
}


def check(name: str, value: str, kind: Kind) -> str:
    """Return ``value`` when it is a value of ``kind``; the one rule for all.

    An empty value is "not given" and always passes: what a task does without
    it is the task's business.

    Args:
        name: How the user gave it: ``--lock-wait`` or ``GITHUB_TOKEN``.
        value: What was given.
        kind: What it may be.

    Raises:
        UsageError: Too long, a control character (or anything but printable
            ASCII where a header or URL carries it), or not of the kind's shape;
            the message shows the value clipped, or not at all for a secret.
    """
    if not value:
        return value
    # A path's limits are the kernel's, in bytes (PATH_MAX, NAME_MAX): a name in
    # Cyrillic takes two bytes a character.
    size = len(value.encode(errors="surrogateescape")) if kind.part else len(value)
    unit = "bytes" if kind.part else "characters"
    if size > kind.limit:
        problem = f"{size} {unit} (at most {kind.limit})"
    elif bad := _unprintable(value, kind):
        problem = f"a character {_shown(bad, kind)} at position {value.index(bad) + 1}"
        if kind.ascii and bad.isprintable() and not kind.secret:
            problem += " (only printable ASCII goes into a URL or a header)"
    elif kind.pattern is not None and not kind.pattern.fullmatch(value):
        problem = "" if kind.secret else repr(clip(value, SHOWN))
    elif kind.part and (long := _longest_part(value)) > kind.part:
        problem = (
            f"a name of {long} bytes (at most {kind.part}) in {clip(value, SHOWN)!r}"
        )
    else:
        return value
    if kind.secret:
        said = f": it has {problem}" if problem else ""
        raise UsageError(
            f"{name} must be {kind.expected}{said} (a secret: its value is not shown)"
        )
    raise UsageError(f"{name} must be {kind.expected}, got {problem}")


def check_host(name: str) -> str:
    """Refuse a host that is not a host name, address or ssh_config alias.

    Raises:
        UsageError: Shell metacharacters, spaces, a leading dash...; exit 2.
    """
    if not HOST.match(name) or name.startswith("-"):
        raise UsageError(
            f"not a valid host: {clip(name, 60)!r} (expected [user@]host[:port] "
            "or an ssh_config alias)"
        )
    return name


def check_options(options: Mapping[str, object]) -> None:
    """Check every string option a task was given (``lock_wait`` → ``--lock-wait``).

    Raises:
        UsageError: The first bad option, in the task's order.
    """
    for key, value in options.items():
        if isinstance(value, str):
            flag = "--" + key.replace("_", "-")
            check(flag, value, OPTIONS.get(key, LINE))


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Check every environment variable cicd reads that is set.

    Surrounding whitespace is allowed (the code strips it); what is inside is not.

    Args:
        environ: The variables (default: this process's).

    Raises:
        UsageError: The first bad variable, in alphabetical order.
    """
    environ = os.environ if environ is None else environ
    for name, kind in ENVIRONMENT.items():
        check(name, environ.get(name, "").strip(), kind)


def _unprintable(value: str, kind: Kind) -> str:
    """The first character of ``value`` the kind refuses whatever its shape, or ``""``.

    Control characters (a carriage return, an escape sequence's ESC, NUL), line and
    paragraph separators, bidi overrides, and lone surrogates (bytes that were not
    UTF-8, which no output could print) are refused everywhere; a newline or tab
    only where several lines are allowed.
    """
    for char in value:
        if char in "\n\t" and kind.lines:
            continue
        if kind.ascii and not " " <= char <= "~":
            return char
        if unicodedata.category(char) in _REFUSED or char in _HIDDEN:
            return char
    return ""


def _longest_part(path: str) -> int:
    """The length in bytes of the longest name in ``path``."""
    return max(len(part.encode(errors="surrogateescape")) for part in path.split("/"))


def _shown(char: str, kind: Kind) -> str:
    """A refused character as a message can show it: its code, never a secret's."""
    if kind.secret:
        return "that is not printable ASCII"
    if " " < char <= "~" or (char.isprintable() and char not in _HIDDEN):
        return repr(char)
    return repr(char) if ord(char) < 0x80 else f"U+{ord(char):04X}"
