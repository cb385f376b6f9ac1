"""Builder for an HTTP probe that runs on the target host (stdlib Python only).

Over SSH the app listens on the host's loopback, so health checks are made there:
the probe prints one JSON line with the status, body and time, or an error.
"""

from __future__ import annotations

from cicd.commands import Command, cmd

#: Body bytes kept: enough for "body contains" and JSON health documents.
BODY_LIMIT = 65536

PROBE = """\
import json, socket, sys, time, urllib.error, urllib.request
url, timeout, limit = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
started = time.monotonic()
try:
    with opener.open(url, timeout=timeout) as answer:
        status, body = answer.status, answer.read(limit)
except urllib.error.HTTPError as error:
    status, body = error.code, error.read(limit)
except Exception as error:
    reason = getattr(error, "reason", error)
    if isinstance(reason, ConnectionRefusedError):
        text = "connection refused"
    elif isinstance(reason, (socket.timeout, TimeoutError)):
        text = "timed out"
    else:
        text = "cannot connect"
    print(json.dumps({"error": text}))
    sys.exit(0)
seconds = time.monotonic() - started
print(json.dumps({"status": status, "seconds": seconds,
                  "body": body.decode("utf-8", "replace")}))
"""


def probe(python: str, url: str, timeout: float) -> Command:
    """GET ``url`` on the host with its ``python``; prints one JSON line."""
    return cmd(python, "-c", PROBE, url, f"{timeout:g}", str(BODY_LIMIT))
