"""The shell blocks a docs page marks for the newcomer tier, read from its source.

A page marks each block the suite runs with an invisible reStructuredText comment
just before it, naming the user it is for::

    .. newcomer: as mangetamain

    .. code-block:: bash

       cicd setup --user mangetamain

``.. newcomer: reboot`` stands for a power loss and a boot at that point. The page
declares, once, the substitutions a sandbox needs (a root under a temporary
directory, the VM's SSH address...), in a comment that starts with
``.. newcomer-tier:``; each of its lines ``OLD => NEW`` replaces the text OLD of
every block with NEW, whose ``{names}`` the tier fills in.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

MARK = re.compile(r"^\.\. newcomer: (?:as (?P<user>\S+)|(?P<reboot>reboot))\s*$")
RULE = re.compile(r"^\s+(?P<old>\S.*?) => (?P<new>.+?)\s*$")


@dataclass(frozen=True)
class Block:
    """One marked step of a page.

    Attributes:
        line: Its line number in the page source (1-based), for messages.
        user: Who runs it ("" for a reboot).
        script: The block's text, dedented; empty for a reboot.
    """

    line: int
    user: str
    script: str

    @property
    def reboot(self) -> bool:
        """Whether this step is a power loss followed by a boot."""
        return not self.user


def substitutions(source: str) -> list[tuple[str, str]]:
    """The ``OLD => NEW`` rules of the page's ``.. newcomer-tier:`` comment."""
    lines = source.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(".. newcomer-tier:"):
            rules = []
            for rule in lines[index + 1 :]:
                if not rule.strip():
                    break
                match = RULE.match(rule)
                if match:
                    rules.append((match["old"], match["new"]))
            return rules
    return []


def blocks(source: str) -> list[Block]:
    """Every marked step of a page, in order.

    Raises:
        ValueError: A mark is not followed by a ``code-block`` (for ``as USER``).
    """
    lines = source.splitlines()
    found: list[Block] = []
    for index, line in enumerate(lines):
        match = MARK.match(line)
        if not match:
            continue
        if match["reboot"]:
            found.append(Block(index + 1, "", ""))
            continue
        found.append(Block(index + 1, match["user"], _next_block(lines, index)))
    return found


def _next_block(lines: list[str], mark: int) -> str:
    """The body of the first ``code-block`` after line ``mark``."""
    for index in range(mark + 1, min(mark + 4, len(lines))):
        if lines[index].startswith(".. code-block::"):
            body: list[str] = []
            for line in lines[index + 1 :]:
                if line.strip() and not line.startswith(" "):
                    break
                body.append(line)
            return textwrap.dedent("\n".join(body)).strip() + "\n"
    raise ValueError(f"line {mark + 1}: a newcomer mark with no code-block after it")


def substituted(script: str, rules: list[tuple[str, str]], **values: str) -> str:
    """``script`` with every rule applied, the rules' ``{names}`` filled in."""
    for old, new in rules:
        script = script.replace(old, new.format(**values))
    return script
