"""The examples of the documentation pages and the README, read as the tests run them.

The conventions (docs/index.md, "Examples that run"):

* a ``pycon`` block is a doctest: its printed output is checked (``...`` elides, whitespace
  is normalised);
* a ``python`` block is a script, run as a file in the page's folder;
* a ``console`` block holds commands after ``$ `` (a trailing backslash continues a command),
  each followed by the output it prints. Numbers in that output may differ from run to run
  (timings, floating point); the words may not. A line ``...`` stands for any number of lines.
  Output that begins with ``ntklc: error`` is an error: exit 2, that one line on stderr;
  ``ntklc: `` and anything else a failed run: exit 1;
* ``<!-- not-run: reason -->`` right before a block shows it without running it;
* ``<!-- file: NAME -->`` right before a block writes it to ``NAME`` in the page's folder
  instead of running it (a sweep spec a later command reads).

The blocks of a page run in page order in one folder, so a command can read what an earlier
block wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = ("python", "pycon", "console")
_FENCE = re.compile(r"^(?:<!-- (not-run|file): (.*?) -->\n)?```(\w*)\n(.*?)^```", re.S | re.M)
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


@dataclass(frozen=True)
class Block:
    """One fenced block of a page."""

    page: Path
    line: int
    language: str
    text: str
    not_run: str | None = None  # the reason, when the page marks the block not-run
    file: str | None = None  # the name to write the block to, when the page says so

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class Command:
    """One ``$ `` command of a console block and the output the page shows for it."""

    line: str
    shown: list[str]

    @property
    def error_line(self) -> str | None:
        """The page's one stderr line when it shows a failure, else None."""
        return self.shown[0] if self.shown and self.shown[0].startswith("ntklc: ") else None

    @property
    def exit_code(self) -> int:
        if self.error_line is None:
            return 0
        return 2 if self.error_line.startswith("ntklc: error") else 1


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page`` whose language the tests run or that is marked."""
    text = page.read_text()
    found = []
    for match in _FENCE.finditer(text):
        marker, argument, language, body = match.groups()
        if language not in LANGUAGES and marker is None:
            continue
        line = text.count("\n", 0, match.start()) + 1 + (marker is not None)
        found.append(Block(page, line, language, body,
                           not_run=argument if marker == "not-run" else None,
                           file=argument if marker == "file" else None))
    return found


def commands(block: Block) -> list[Command]:
    """The ``$ `` commands of a console block with the output lines shown after each."""
    found: list[Command] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise ValueError(f"{block.name}: console line {lines[i]!r} is neither a `$ ` "
                             "command nor the output of one")
        command = lines[i][2:]
        while command.endswith("\\"):
            i += 1
            command = command[:-1] + " " + lines[i].strip()
        i += 1
        shown = []
        while i < len(lines) and not lines[i].startswith("$ "):
            if lines[i].strip():
                shown.append(lines[i])
            i += 1
        found.append(Command(command, shown))
    return found


def output_pattern(shown: list[str]) -> re.Pattern:
    """A regular expression for printed output like ``shown``: numbers are any numbers, runs of
    spaces any runs of spaces, a line ``...`` any lines; the rest is literal."""
    parts = []
    for line in shown:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        pieces = re.split(f"({_NUMBER})", line.strip())
        literal = [re.sub(r"\\\s+|\s+", r"\\s+", re.escape(p)) if k % 2 == 0 else _NUMBER
                   for k, p in enumerate(pieces)]
        parts.append(r"[ \t]*" + "".join(literal) + r"[ \t]*\n")
    return re.compile("".join(parts))
