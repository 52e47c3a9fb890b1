"""docs/scaling.md's code blocks, read the way the tests that run them need them.

Every fenced block of the page is a ``Block`` (its language, text and the heading above it);
``commands`` turns a shell block into its commands (backslash continuations joined,
comments and a trailing ``&`` dropped), and ``environment`` reads the ``VAR=value``
assignments in front of a command. tests/unit/test_scaling_docs.py checks that each block
is one a test runs; tests/scale/ runs them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "scaling.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Block:
    language: str  # "" for the picture
    text: str
    heading: str  # the nearest "## " heading above it
    after: str  # the 300 characters of prose before it


def blocks(page: Path = PAGE) -> list[Block]:
    text = page.read_text()
    found = []
    for match in _FENCE.finditer(text):
        before = text[:match.start()]
        headings = re.findall(r"^## (.+)$", before, re.M)
        found.append(Block(match[1], match[2], headings[-1] if headings else "",
                           before[-300:]))
    return found


def block_after(phrase: str, language: str = "bash") -> Block:
    """The first ``language`` block whose preceding prose contains ``phrase``."""
    for block in blocks():
        if block.language == language and phrase in block.after:
            return block
    raise AssertionError(f"docs/scaling.md has no {language} block after {phrase!r}")


def commands(text: str) -> list[str]:
    """The shell commands of a block, one string each."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[-1] == "&":  # started in the background
            words.pop()
        if "|" in words:  # a pipeline: for bash -c, as written
            found.append(line.split(" #")[0].strip())
        elif words:
            found.append(shlex.join(words))
    return found


def environment(command: str) -> dict[str, str]:
    """The ``NAME=value`` words in front of a command."""
    env = {}
    for word in shlex.split(command):
        name, eq, value = word.partition("=")
        if not eq or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            break
        env[name] = value
    return env


def program(command: str) -> list[str]:
    """A command's words after its ``NAME=value`` assignments."""
    words = shlex.split(command)
    return words[len(environment(command)):]
