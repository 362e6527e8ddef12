"""Reading JSON and JSONL that may be corrupt: every problem (invalid UTF-8, bad JSON, nesting deep
enough to exhaust the recursion limit, numbers too long to convert) becomes one line naming the file
and, where known, the line, instead of a traceback."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError


class BadFile(InputError):
    """A file that cannot be read as the format it should have: one line naming the file (and line)."""


class BadLine(ValueError):
    """What is wrong with a text, and the line where known (callers add the file)."""

    def __init__(self, reason: str, line: int | None = None):
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.reason, self.line = reason, line


def decode(raw: bytes) -> str:
    """UTF-8 text; BadLine naming the line and column of the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise BadLine(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {column})", line) from None


def parse(text: str) -> object:
    """``json.loads`` raising only BadLine (the line is the text's own)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadLine(f"not JSON ({exc.msg} at column {exc.colno})", exc.lineno) from None
    except RecursionError:
        raise BadLine("JSON nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer over the digit limit
        raise BadLine(f"not JSON ({str(exc).splitlines()[0]})") from None


def read_json(path: str | Path) -> object:
    """One JSON document; BadFile names the file and the line of the problem."""
    path = Path(path)
    try:
        return parse(decode(path.read_bytes()))
    except BadLine as exc:
        raise BadFile(f"{path}: {exc}") from None
    except OSError as exc:
        raise BadFile(f"{path}: cannot read ({exc.strerror or exc})") from None


def jsonl(path: str | Path) -> Iterator[tuple[int, object]]:
    """(line number, parsed object or BadLine) for every non-blank line, so that callers decide
    whether a bad line stops the load or is skipped and counted. ``str(BadLine)`` carries the file's
    line number."""
    with Path(path).open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield n, parse(decode(raw))
            except BadLine as exc:
                yield n, BadLine(exc.reason, n)
