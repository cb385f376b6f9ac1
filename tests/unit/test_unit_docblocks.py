"""The newcomer tier's reading of a page: marks, substitutions, shown output."""

from __future__ import annotations

import pytest

from tests import docblocks

PAGE = """\
Title
=====

.. newcomer-tier: the suite runs the marked blocks, with:
   /srv/app => {sandbox}/srv/app
   $API_URL => {api}

.. newcomer: as root

.. code-block:: bash

   install -d /srv/app
   echo done

Prose.

.. newcomer: push, CI fails

.. newcomer: as app, exits 2

.. code-block:: bash

   cicd deploy.prod --confirm NOPE

.. newcomer: output

.. code-block:: text

   error: ... nothing was changed

.. newcomer: reboot

.. newcomer: runbook

.. code-block:: bash

   not marked: never run
"""


def test_the_marked_steps_come_in_page_order_with_their_kind() -> None:
    steps = docblocks.blocks(PAGE)
    assert [(b.user, b.exits, b.push, b.page, b.reboot) for b in steps] == [
        ("root", 0, "", "", False),
        ("", 0, "failure", "", False),
        ("app", 2, "", "", False),
        ("", 0, "", "", False),
        ("", 0, "", "", True),
        ("", 0, "", "runbook", False),
    ]
    assert steps[0].script == "install -d /srv/app\necho done\n"
    assert steps[3].output == "error: ... nothing was changed\n"


def test_substitutions_replace_text_and_set_the_environment() -> None:
    rules = docblocks.substitutions(PAGE)
    script = docblocks.substituted(
        "install -d /srv/app\n", rules, sandbox="/tmp/s", api="http://127.0.0.1:1"
    )
    assert script == "export API_URL=http://127.0.0.1:1\ninstall -d /tmp/s/srv/app\n"


def test_a_mark_without_its_block_is_an_error() -> None:
    with pytest.raises(ValueError, match="line 1: a newcomer mark with no code-block"):
        docblocks.blocks(".. newcomer: as root\n\nProse only.\n")


@pytest.mark.parametrize(
    "output, missing",
    [
        ("prod: 8a01b7c started, ready after 2.9s\nsetup: done\n", []),
        ("prod: 1234abcd started, ready after 12s\nsetup: done\n", []),
        ("setup: done\nprod: 8a01b7c started, ready after 2.9s\n", ["setup: done"]),
        ("prod: 8a01b7c stopped\nsetup: done\n", ["prod: 3f9c2e1 started, ..."]),
    ],
)
def test_shown_output_is_compared_in_substance_and_in_order(
    output: str, missing: list[str]
) -> None:
    shown = "prod: 3f9c2e1 started, ...\nsetup: done\n"
    assert docblocks.shows(shown, output) == missing
