"""One redaction filter for every secret, applied before anything is printed.

Secrets come only from environment variables. requests' own error messages contain
the URL they were sending to, and a Discord webhook URL *is* a credential, so every
log line, exception message and notification passes through :func:`redact`.

Our own messages call :func:`redact` themselves. What other code prints — the
debug logs of urllib3, requests, paramiko, invoke and fabric (``invoke -d``,
``fab -d``, ``INVOKE_DEBUG``), warnings, and the traceback of an exception nobody
caught — is routed through it by :func:`install`, which the task collection calls
when it is imported, so it holds under ``invoke``, ``fab`` and ``cicd`` alike.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
import warnings
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

SECRET_VARIABLES = (
    "DISCORD_WEBHOOK_URL",
    "GITHUB_TOKEN",
    "CICD_GITHUB_TOKEN",
    "CICD_JOB_TOKEN",
)
MASK = "***"

_installed = False


def secrets() -> list[str]:
    """Return the secret values in the environment, longest first.

    A webhook URL is also masked by its path, which holds the token, so a message
    that quotes only part of the URL is still safe.
    """
    found: set[str] = set()
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "").strip()
        if len(value) < 6:
            continue
        found.add(value)
        parts = urlsplit(value)
        if parts.scheme and len(parts.path) > 8:
            found.add(parts.path)
    return sorted(found, key=len, reverse=True)


def redact(text: str) -> str:
    """Return ``text`` with every known secret replaced by ``***``."""
    for secret in secrets():
        text = text.replace(secret, MASK)
    return text


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask the secrets of a log record, in place, before any handler formats it.

    The message is formatted here (``msg % args``) because a secret is usually an
    argument (urllib3 logs the request line as ``"%s %s %s"``); a record without a
    secret keeps its lazy ``msg`` and ``args``. The traceback and stack a record
    carries are formatted and masked here too: a handler would print them as is.

    Args:
        record: A record just made by a logger.

    Returns:
        The same record.
    """
    if not secrets():
        return record
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: the handler would print msg and args
        message = f"{record.msg!r} with arguments {record.args!r}"
    masked = redact(message)
    if masked != message:
        record.msg, record.args = masked, ()
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


def print_exception(
    kind: type[BaseException],
    value: BaseException | None,
    trace: TracebackType | None,
    *,
    header: str = "",
) -> None:
    """Print a traceback to stderr as Python would, with every secret masked.

    Args:
        kind: The exception's class.
        value: The exception.
        trace: Its traceback.
        header: A first line (the thread it happened in).
    """
    text = header + "".join(traceback.format_exception(kind, value, trace))
    sys.stderr.write(redact(text))
    sys.stderr.flush()


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    """A thread's uncaught exception, printed as Python does, masked."""
    if args.exc_type is SystemExit:
        return  # Python ignores it in a thread too
    name = args.thread.name if args.thread is not None else threading.get_ident()
    print_exception(
        args.exc_type,
        args.exc_value,
        args.exc_traceback,
        header=f"Exception in thread {name}:\n",
    )


def install() -> None:
    """Route every output path of this process that we do not write through redact.

    - log records, whatever the logger (urllib3, requests, paramiko, invoke,
      fabric) and whatever handler prints them later: masked when made, by a log
      record factory, since a filter on the root logger never sees the records its
      children propagate;
    - tracebacks of uncaught exceptions, in the main thread and in others;
    - warnings, shown or logged.

    Idempotent: the collection's import calls it, and a test may import twice.
    """
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(make_record(*args, **kwargs))

    logging.setLogRecordFactory(redacting_factory)
    sys.excepthook = print_exception
    threading.excepthook = _thread_hook
    format_warning = warnings.formatwarning

    def redacting_formatwarning(*args: Any, **kwargs: Any) -> str:
        return redact(format_warning(*args, **kwargs))

    warnings.formatwarning = redacting_formatwarning
