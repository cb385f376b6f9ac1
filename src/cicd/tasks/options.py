"""The help of the options several tasks share, written once.

``invoke TASK --help`` and the task reference (generated from the collection) show
these texts; a task names what it alone means next to them, in its own ``help=``.
"""

#: ``--json`` on every task that reports state (one document of one shape).
JSON = "Print the result as JSON on stdout."

#: ``--env`` on the tasks that cover every environment unless one is named.
ENV_ONE_OR_ALL = "One environment (default: all)."

#: ``--env`` on the tasks that read one environment, preprod unless named.
ENV_PREPROD = "Environment (default: preprod)."

#: ``--env`` on the tasks that act on a deployed sha's CI verdict.
ENV_DEPLOYED = "Environment the sha was deployed to (default: preprod)."

#: ``--plan`` on the tasks that change a release (deploy.*, rollback).
PLAN = (
    "Print what would happen, step by step and host by host, and change nothing "
    "(no lock, no ledger line, no message)."
)

#: ``--sha`` of a deploy: any revision git resolves, recorded as the full sha.
SHA = (
    "Revision to deploy: a sha (7-40 hex digits), HEAD, a branch or a tag of "
    "the source, resolved once and recorded as the full sha"
)


def _lock_wait(default: str) -> str:
    """The help of ``--lock-wait`` for a task whose wait is ``default`` unless given.

    A lock still held when the wait ends is :class:`~cicd.core.errors.LockHeld`,
    exit 3, and so is a freeze (:class:`~cicd.host.lock.ManualLockHeld`) at once.
    """
    return (
        "Seconds to wait for another run's lock on the environment (a deploy's, "
        "a rollback's, a verdict's) to be released; still held then, the task "
        f"fails with exit 3 (default: {default}). A manual lock (lock.acquire) is "
        "never waited for."
    )


#: ``--lock-wait`` on deploy.*, rollback and secrets.reload.
LOCK_WAIT = _lock_wait("0, fail at once")

#: ``--lock-wait`` on watch and watch.verdict, which wait ``ci.lock_wait`` unless told.
LOCK_WAIT_VERDICT = _lock_wait("ci.lock_wait")
