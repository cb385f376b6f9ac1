"""The options several tasks share say one thing everywhere (:mod:`cicd.tasks.options`).

Their help was once copied from task to task and drifted (one ``--lock-wait`` said
a held lock fails with exit 3, another did not): each text now lives once.
"""

from __future__ import annotations

from collections.abc import Iterator

from invoke.collection import Collection
from invoke.tasks import Task

from cicd.tasks import ns, options

#: The help each shared option may have: one text, or one per default it states.
SHARED = {
    "lock_wait": {options.LOCK_WAIT, options.LOCK_WAIT_VERDICT},
    "plan": {options.PLAN, options.PLAN + " No --confirm needed."},
}


def every_task(collection: Collection) -> Iterator[tuple[str, Task]]:
    """Every task of the collection and its sub-collections, with its dotted name."""
    for name, each in collection.tasks.items():
        yield name, each
    for prefix, sub in collection.collections.items():
        for name, each in every_task(sub):
            yield f"{prefix}.{name}", each


def test_a_shared_option_has_the_one_help_text() -> None:
    seen = set()
    for name, each in every_task(ns):
        for option, texts in SHARED.items():
            if option in each.help:
                assert each.help[option] in texts, f"{name} --{option}"
                seen.add((name, option))
    assert ("secrets.reload", "lock_wait") in seen and ("rollback", "plan") in seen


def test_lock_wait_says_a_held_lock_fails_with_exit_3_and_its_default() -> None:
    assert "exit 3" in options.LOCK_WAIT and "default: 0" in options.LOCK_WAIT
    assert "default: ci.lock_wait" in options.LOCK_WAIT_VERDICT
