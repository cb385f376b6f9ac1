"""The options several tasks share say one thing everywhere (:mod:`cicd.tasks.options`).

Their help was once copied from task to task and drifted (one ``--lock-wait`` said
a held lock fails with exit 3, another did not): each text now lives once.
"""

from __future__ import annotations

import json
import subprocess
import sys

from cicd.tasks import options

#: The help each shared option may have: one text, or one per default it states.
SHARED = {
    "lock_wait": {options.LOCK_WAIT, options.LOCK_WAIT_VERDICT},
    "plan": {options.PLAN, options.PLAN + " No --confirm needed."},
}


#: Every task's option help, read in a process of its own: invoke pops a task's
#: ``help`` entries when a program in this process parses its arguments.
HELP_OF_EVERY_TASK = """
import json
from cicd.tasks import ns

def every(collection, prefix=""):
    for name, task in collection.tasks.items():
        yield prefix + name, dict(task.help)
    for sub, inner in collection.collections.items():
        yield from every(inner, prefix + sub + ".")

print(json.dumps(dict(every(ns))))
"""


def help_of_every_task() -> dict[str, dict[str, str]]:
    """Each task's dotted name and its options' help, as a fresh process sees it."""
    done = subprocess.run(
        [sys.executable, "-c", HELP_OF_EVERY_TASK],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    found: dict[str, dict[str, str]] = json.loads(done.stdout)
    return found


def test_a_shared_option_has_the_one_help_text() -> None:
    seen = set()
    for name, helps in help_of_every_task().items():
        for option, texts in SHARED.items():
            if option in helps:
                assert helps[option] in texts, f"{name} --{option}"
                seen.add((name, option))
    assert ("secrets.reload", "lock_wait") in seen and ("rollback", "plan") in seen


def test_lock_wait_says_a_held_lock_fails_with_exit_3_and_its_default() -> None:
    assert "exit 3" in options.LOCK_WAIT and "default: 0" in options.LOCK_WAIT
    assert "default: ci.lock_wait" in options.LOCK_WAIT_VERDICT
