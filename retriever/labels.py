"""Labelled queries for the tool classifier: (query, gold tools) pairs from any dataset the loader reads,
or from JSONL lines ``{"query": ..., "tools": [names]}``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyagent_ft.catalog import TINYAGENT, Catalog
from tinyagent_ft.data import DataError, load_dataset
from tinyagent_ft.jsonio import BadLine, jsonl


@dataclass(frozen=True)
class Labelled:
    query: str
    tools: frozenset[str]


def _is_tools_jsonl(path: Path) -> bool:
    if not path.is_file() or path.suffix != ".jsonl":
        return False
    first = next((rec for _, rec in jsonl(path) if not isinstance(rec, BadLine)), None)  # the first readable line decides
    return isinstance(first, dict) and "tools" in first and "plan" not in first


def _read_tools_jsonl(path: Path, catalog: Catalog) -> list[Labelled]:
    out = []
    for n, rec in jsonl(path):
        where = f"{path}:{n}"
        if isinstance(rec, BadLine):
            raise DataError(f"{where}: {rec.reason}")
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected an object with 'query' and 'tools'")
        query, tools = rec.get("query"), rec.get("tools")
        if not isinstance(query, str) or not query.strip():
            raise DataError(f"{where}: field 'query' must be a non-empty string")
        if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
            raise DataError(f"{where}: field 'tools' must be a list of tool names")
        unknown = [t for t in tools if t not in catalog]
        if unknown:
            raise DataError(f"{where}: field 'tools' names unknown tool(s) {', '.join(map(repr, unknown))}")
        out.append(Labelled(query.strip(), frozenset(tools)))
    if not out:
        raise DataError(f"{path}: no records")
    return out


def load_labelled(source: str | Path, split: str | None = None, catalog: Catalog = TINYAGENT) -> list[Labelled]:
    """Pairs from a ``query``/``tools`` JSONL file, else from any format ``load_dataset`` reads; tools
    must be ``catalog``'s."""
    path = Path(source)
    if _is_tools_jsonl(path):
        return _read_tools_jsonl(path, catalog)
    data = load_dataset(source, split, catalog=catalog)
    if not data.examples:
        raise DataError(f"{data.path}: no usable examples")
    return [Labelled(e.query, e.tools) for e in data.examples]
