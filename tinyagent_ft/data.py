"""Load TinyAgent-format data: the real dataset file, the project's JSONL, or a hub dataset id.

Formats:
- TinyAgent JSON: one object keyed by uuid; ``output`` holds the plan record whose ``raw_output`` is
  the plan and whose ``raw_input`` is a Python-literal list of chat messages (``ast.literal_eval``).
  ``tinyagent-ft data synth`` writes this format.
- Project JSONL: one object per line with ``id``, ``query``, ``plan`` and optional ``today``
  (``YYYY-MM-DD HH:MM``) and ``prompt``.
A directory holds one file per split (``train``, ``validation``, ``test``) in either format.
"""
from __future__ import annotations

import ast
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from eval.plan import ARGUMENT_ERRORS, parse_plan

from .catalog import TINYAGENT, Catalog
from .errors import InputError
from .jsonio import BadFile, BadLine, jsonl, read_json

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")
HUB_FILES = {"train": "training_data.json", "test": "testing_data.json"}
_TODAY = re.compile(r"Today's date is \w+ (\d{4}-\d{2}-\d{2} \d{2}:\d{2})")


class DataError(InputError):
    """A data problem, worded as one line that names the file, record and field."""


DEFAULT_TODAY = datetime(2024, 6, 3, 9, 0)  # for records that carry no date (their plans do not use one)


@dataclass(frozen=True)
class Example:
    id: str
    query: str
    plan: str
    tools: frozenset[str]  # gold tools, join excluded
    prompt: str | None = None  # original system prompt, when the source carries one
    today: datetime | None = None

    @property
    def date(self) -> datetime:
        """The "today" the plan was written against: the record's own, else ``DEFAULT_TODAY`` (training,
        validation and evaluation agree; only a live server uses the clock)."""
        return self.today or DEFAULT_TODAY


@dataclass
class LoadedData:
    path: str
    examples: list[Example]
    skipped: Counter = field(default_factory=Counter)  # reason -> count

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)


def parse_today(text: str | None) -> datetime | None:
    if not text:
        return None
    m = _TODAY.search(text)
    if m:
        return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M")
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        return None


class _Skip(Exception):
    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


def make_example(rid: str, query, plan, prompt: str | None = None, today: datetime | None = None,
                 catalog: Catalog = TINYAGENT) -> Example:
    if not isinstance(query, str) or not query.strip():
        raise _Skip("input", "query is missing or empty")
    if not isinstance(plan, str) or not plan.strip():
        raise _Skip("raw_output", "plan is missing or empty")
    parsed = parse_plan(plan, catalog)
    if not parsed.parses:  # argument count/type problems are kept: TinyAgent's metric scores their structure
        raise _Skip("raw_output", f"plan is invalid ({next(e.code for e in parsed.errors if e.code not in ARGUMENT_ERRORS)})")
    return Example(str(rid), query.strip(), plan.strip(), frozenset(parsed.tools), prompt,
                   today or parse_today(prompt))


def _from_tinyagent(rid: str, rec, catalog: Catalog) -> Example:
    if not isinstance(rec, dict):
        raise _Skip("record", "record is not an object")
    outputs = rec.get("output")
    if not isinstance(outputs, list):
        raise _Skip("output", "output is not a list")
    plan_rec = next((o for o in outputs if isinstance(o, dict) and o.get("type") == "plan"), None)
    if plan_rec is None:
        raise _Skip("output", "no record of type 'plan'")
    prompt = None
    raw_input = plan_rec.get("raw_input")
    if raw_input is not None:
        try:
            messages = ast.literal_eval(raw_input) if isinstance(raw_input, str) else raw_input
            prompt = next(m["content"] for m in messages if m.get("role") == "system")
        except (ValueError, SyntaxError, TypeError, AttributeError, KeyError, StopIteration, MemoryError, RecursionError):
            raise _Skip("raw_input", "raw_input is not a Python literal list of chat messages") from None
    return make_example(rid, rec.get("input"), plan_rec.get("raw_output"), prompt, catalog=catalog)


def _from_jsonl_obj(rec, catalog: Catalog) -> Example:
    if not isinstance(rec, dict):
        raise _Skip("record", "line is not a JSON object")
    rid = rec.get("id")
    if rid is None:
        raise _Skip("id", "id is missing")
    return make_example(rid, rec.get("query"), rec.get("plan"), rec.get("prompt"), parse_today(rec.get("today")),
                        catalog)


def _records(path: Path) -> Iterator[tuple[str, object, str]]:
    """Yield (record id, parsed record or exception, where) for either file format."""
    if path.suffix == ".jsonl":
        for n, rec in jsonl(path):
            yield f"line {n}", _Skip("record", rec.reason) if isinstance(rec, BadLine) else rec, f"line {n}"
        return
    try:
        data = read_json(path)
    except BadFile as exc:
        raise DataError(str(exc)) from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected one JSON object keyed by record id, got {type(data).__name__}")
    for rid, rec in data.items():
        yield rid, rec, f"record {rid}"


def load_file(path: str | Path, strict: bool = False, catalog: Catalog = TINYAGENT) -> LoadedData:
    """Examples whose plans parse against ``catalog``; others are skipped and counted (an error if ``strict``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    out = LoadedData(str(path), [])
    for rid, rec, where in _records(path):
        try:
            if isinstance(rec, _Skip):
                raise rec
            out.examples.append(_from_jsonl_obj(rec, catalog) if path.suffix == ".jsonl"
                                else _from_tinyagent(rid, rec, catalog))
        except _Skip as skip:
            if strict:
                raise DataError(f"{path}: {where}, field {skip.field!r}: {skip.reason}") from None
            out.skipped[skip.reason] += 1
    if out.skipped:
        reasons = "; ".join(f"{n} {r}" for r, n in out.skipped.most_common())
        log.warning("%s: skipped %d of %d records: %s", path, sum(out.skipped.values()),
                    sum(out.skipped.values()) + len(out.examples), reasons)
    return out


def resolve(source: str | Path, split: str | None = None) -> Path:
    """A local file, a split inside a directory, or a hub dataset id (downloaded when online)."""
    path = Path(source)
    if path.is_dir():
        split = split or "train"
        for ext in (".json", ".jsonl"):
            if (path / f"{split}{ext}").is_file():
                return path / f"{split}{ext}"
        raise DataError(f"{path}: no {split}.json or {split}.jsonl in this directory")
    if path.exists() or path.suffix in (".json", ".jsonl") or str(source).count("/") != 1:
        return path
    if path.parent.is_dir():  # "data/synth" with a local data/ folder: a missing path, not a hub id
        raise DataError(f"{source}: no such file or directory")
    filename = HUB_FILES.get(split or "train")
    if filename is None:
        raise DataError(f"{source}: hub dataset has splits {sorted(HUB_FILES)}, not {split!r}")
    from huggingface_hub import hf_hub_download  # the hub viewer fails on this file: fetch it whole
    try:
        return Path(hf_hub_download(str(source), filename, repo_type="dataset"))
    except Exception as exc:  # offline, unknown repo, ...: one line for the user
        raise DataError(f"{source}: no such file or directory, and no hub dataset could be downloaded "
                        f"({type(exc).__name__})") from None


def load_dataset(source: str | Path, split: str | None = None, strict: bool = False,
                 catalog: Catalog = TINYAGENT) -> LoadedData:
    return load_file(resolve(source, split), strict, catalog)
