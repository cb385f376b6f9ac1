"""The shell blocks a docs page marks for the newcomer tier, read from its source.

A page marks each block the suite runs with an invisible reStructuredText comment
just before it, naming the user it is for::

    .. newcomer: as mangetamain

    .. code-block:: bash

       cicd setup --user mangetamain

``.. newcomer: as USER, exits N`` expects that exit code instead of 0.
``.. newcomer: runbook`` runs the runbook page's marked steps at that point.
``.. newcomer: output`` before a ``code-block:: text`` says that the block before it
prints those lines (see :func:`shows`). ``.. newcomer: reboot`` stands for a power
loss and a boot at that point, and
``.. newcomer: push, CI passes`` (or ``fails``) for a new commit on ``main`` whose
CI run ends that way. The page declares, once, the substitutions a sandbox needs
(the repository's URL, the VM's SSH address...), in a comment that starts with
``.. newcomer-tier:``; each of its lines ``OLD => NEW`` replaces the text OLD of
every block with NEW, whose ``{names}`` the tier fills in, and ``$NAME => NEW``
sets an environment variable for every block.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass

MARK = re.compile(
    r"^\.\. newcomer: (?:as (?P<user>[a-z][a-z0-9-]*)(?:, exits (?P<exits>\d+))?"
    r"|(?P<reboot>reboot)|(?P<output>output)|(?P<page>runbook)"
    r"|push, CI (?P<push>passes|fails))\s*$"
)
RULE = re.compile(r"^\s+(?P<old>\S.*?) => (?P<new>.+?)\s*$")


@dataclass(frozen=True)
class Block:
    """One marked step of a page.

    Attributes:
        line: Its line number in the page source (1-based), for messages.
        user: Who runs it ("" for a reboot or a push).
        script: The block's text, dedented; empty for a reboot or a push.
        exits: The exit code the block must end with.
        push: For a push: how its CI run ends (``success`` or ``failure``).
        output: For shown output: the lines the block before prints.
        page: Another page whose marked steps run here (``runbook``).
    """

    line: int
    user: str
    script: str
    exits: int = 0
    push: str = ""
    output: str = ""
    page: str = ""

    @property
    def reboot(self) -> bool:
        """Whether this step is a power loss followed by a boot."""
        return not (self.user or self.push or self.output or self.page)


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
        elif match["page"]:
            found.append(Block(index + 1, "", "", page=match["page"]))
        elif match["output"]:
            found.append(Block(index + 1, "", "", output=_next_block(lines, index)))
        elif match["push"]:
            conclusion = "success" if match["push"] == "passes" else "failure"
            found.append(Block(index + 1, "", "", push=conclusion))
        else:
            script = _next_block(lines, index)
            exits = int(match["exits"] or 0)
            found.append(Block(index + 1, match["user"], script, exits))
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
    """``script`` with every text rule applied, the rules' ``{names}`` filled in.

    The environment rules (``$NAME => value``) become ``export`` lines at its top.
    """
    exports = ""
    for old, new in rules:
        if old.startswith("$"):
            exports += f"export {old[1:]}={shlex.quote(new.format(**values))}\n"
        else:
            script = script.replace(old, new.format(**values))
    return exports + script


#: What varies from run to run in shown output: shas and numbers (times, ports).
_SHA = re.compile(r"\b[0-9a-f]{7,40}\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _normal(line: str) -> str:
    return _NUMBER.sub("N", _SHA.sub("SHA", line.strip()))


def shows(expected: str, output: str) -> list[str]:
    """The lines of ``expected`` that ``output`` does not print, in substance.

    Shas and numbers may differ, ``...`` stands for anything, and the lines must
    come in the page's order (other lines may come between them).
    """
    printed = [_normal(line) for line in output.splitlines()]
    missing = []
    at = 0
    for line in expected.splitlines():
        if not line.strip():
            continue
        pattern = re.compile(re.escape(_normal(line)).replace(r"\.\.\.", ".*"))
        for index in range(at, len(printed)):
            if pattern.fullmatch(printed[index]):
                at = index + 1
                break
        else:
            missing.append(line.strip())
    return missing
