"""Named points where a test can kill this process, to prove crash safety.

``CICD_FAILPOINT=NAME`` makes the process ``SIGKILL`` itself when it reaches the
point ``NAME`` — the nearest thing to pulling the plug at an exact step, the way
etcd's gofail or FreeBSD's fail points do. Unset (always, outside the fault tests)
a point costs one dictionary lookup. The points:

``exported``   a deploy exported its release, before any switch;
``switched``   ``current`` was switched, the app not yet restarted;
``restarted``  the app was restarted, readiness not yet checked;
``ready``      readiness passed, the intent not yet cleared;
``verdict``    the watcher journaled a verdict, before acting on it.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "CICD_FAILPOINT"
POINTS = ("exported", "switched", "restarted", "ready", "verdict")


def hit(name: str) -> None:
    """Die at once (``SIGKILL``) when ``$CICD_FAILPOINT`` names this point."""
    if os.environ.get(VARIABLE) == name:
        # The point is after the step it names: what the step sent to go with
        # the next command is on the host first (a crash before that is a crash
        # at the point before).
        from cicd.transport.runner import flush_all

        flush_all()
        os.kill(os.getpid(), signal.SIGKILL)
