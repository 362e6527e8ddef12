"""In-context example retrieval: embed solved queries once, then find the most similar ones whose tools
fit the tools chosen for a new query (TinyAgent's filter: example tools must be a subset)."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from tinyagent_ft.data import Example
from tinyagent_ft.jsonio import BadFile, BadLine, jsonl, read_json

from .tool_classifier import minilm_path

META_FILE, RECORDS_FILE, EMBEDDINGS_FILE = "index.json", "records.jsonl", "embeddings.safetensors"


@dataclass(frozen=True)
class Hit:
    """A retrieved example; has ``query`` and ``plan`` as the prompt builder expects."""
    id: str
    query: str
    plan: str
    tools: frozenset[str]
    score: float


def _norm(query: str) -> str:
    return " ".join(query.lower().split())


def load_encoder(name_or_path: str | None = None, device: str | None = None):
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(name_or_path or minilm_path(), device=device or "cpu")


class ExampleIndex:
    def __init__(self, records: list[dict], embeddings: torch.Tensor, encoder_name: str, encoder=None):
        if len(records) != len(embeddings):
            raise ValueError(f"{len(records)} records but {len(embeddings)} embeddings")
        self.records, self.encoder_name, self._encoder = records, encoder_name, encoder
        self.embeddings = embeddings.float()
        # which tools each record uses, over the tools the records name (any catalog, any size)
        self.tool_ids = {t: i for i, t in enumerate(sorted({t for r in records for t in r["tools"]}))}
        self.uses = torch.zeros(len(records), len(self.tool_ids), dtype=torch.bool)
        for row, r in enumerate(records):
            self.uses[row, [self.tool_ids[t] for t in r["tools"]]] = True
        self.position = {r["id"]: i for i, r in enumerate(records)}
        self._norms = [_norm(r["query"]) for r in records]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = load_encoder(self.encoder_name)
        return self._encoder

    def encode(self, queries: Sequence[str], batch_size: int = 128, progress: Callable[[int], None] | None = None
               ) -> torch.Tensor:
        """Unit-norm embeddings, (len(queries), dim). Each distinct text is embedded once."""
        unique = list(dict.fromkeys(queries))
        out, chunk = [], 8 * batch_size  # the encoder sorts each chunk by length, so padding stays low
        for i in range(0, len(unique), chunk):
            part = unique[i:i + chunk]
            out.append(self.encoder.encode(part, convert_to_tensor=True, normalize_embeddings=True,
                                           show_progress_bar=False, batch_size=batch_size).float().cpu())
            if progress:
                progress(len(part))
        if not out:
            return torch.empty(0, self.embeddings.shape[1] if len(self) else 384)
        row = {q: i for i, q in enumerate(unique)}
        return torch.cat(out)[[row[q] for q in queries]]

    @classmethod
    def build(cls, examples: Sequence[Example], encoder: str | None = None, batch_size: int = 128,
              progress: Callable[[int], None] | None = None) -> ExampleIndex:
        records = [{"id": e.id, "query": e.query, "plan": e.plan, "tools": sorted(e.tools)} for e in examples]
        if len({r["id"] for r in records}) != len(records):
            raise ValueError("example ids must be unique to index them")
        index = cls(records, torch.empty(len(records), 0), encoder or minilm_path())
        index.embeddings = index.encode([r["query"] for r in records], batch_size, progress)
        return index

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({"embeddings": self.embeddings.half().contiguous()}, str(path / EMBEDDINGS_FILE))
        with (path / RECORDS_FILE).open("w", encoding="utf-8") as f:
            for r in self.records:
                f.write(json.dumps(r) + "\n")
        (path / META_FILE).write_text(json.dumps({"encoder": self.encoder_name, "count": len(self),
                                                  "dim": int(self.embeddings.shape[1])}, indent=2))

    @classmethod
    def load(cls, path: str | Path, encoder=None) -> ExampleIndex:
        from safetensors.torch import load_file
        path = Path(path)
        if not (path / META_FILE).is_file():
            raise FileNotFoundError(f"{path} is not an example index (no {META_FILE})")
        meta, records = read_json(path / META_FILE), []
        for n, rec in jsonl(path / RECORDS_FILE):
            if not isinstance(rec, dict) or not {"id", "query", "plan", "tools"} <= set(rec):
                raise BadFile(f"{path / RECORDS_FILE}: line {n}: "
                              + (rec.reason if isinstance(rec, BadLine) else "expected an object with id, query, plan, tools"))
            records.append(rec)
        if not isinstance(meta, dict) or "encoder" not in meta:
            raise BadFile(f"{path / META_FILE}: expected an object with 'encoder'")
        try:
            embeddings = load_file(str(path / EMBEDDINGS_FILE))["embeddings"]
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a corrupt file
            raise BadFile(f"{path / EMBEDDINGS_FILE}: cannot read ({str(exc).splitlines()[0]})") from None
        return cls(records, embeddings, meta["encoder"], encoder)

    def search(self, query: str, tools: Iterable[str], k: int = 6, exclude_id: str | None = None,
               embedding: torch.Tensor | None = None) -> list[Hit]:
        """Top-k examples by cosine similarity among those whose tools are a subset of ``tools``.

        With ``exclude_id`` (a training query looking up its neighbours), neither that record nor any record
        with the same query text comes back, so a training prompt never contains its own answer."""
        if embedding is None:
            embedding = self.encode([query])[0]
        return self._rank(embedding, self._outside(tools), k, exclude_id, query)

    def search_batch(self, queries: Sequence[str], tool_sets: Sequence[Iterable[str]], k: int = 6,
                     exclude_ids: Sequence[str | None] | None = None, batch_size: int = 128) -> list[list[Hit]]:
        """``search`` for many queries; indexed queries reuse their stored embeddings."""
        exclude_ids = exclude_ids or [None] * len(queries)
        missing = [i for i, x in enumerate(exclude_ids) if x not in self.position]
        fresh = dict(zip(missing, self.encode([queries[i] for i in missing], batch_size))) if missing else {}
        tool_sets = [frozenset(t) for t in tool_sets]
        outside = {t: self._outside(t) for t in set(tool_sets)}  # queries share few tool sets: filter each once
        return [self._rank(fresh[i] if i in fresh else self.embeddings[self.position[x]], outside[tools], k, x, q)
                for i, (q, tools, x) in enumerate(zip(queries, tool_sets, exclude_ids))]

    def _outside(self, tools: Iterable[str]) -> torch.Tensor:
        """Records that use a tool not in ``tools``: TinyAgent's filter keeps them out of the prompt."""
        allowed = torch.zeros(len(self.tool_ids), dtype=torch.bool)
        allowed[[self.tool_ids[t] for t in set(tools) if t in self.tool_ids]] = True
        return (self.uses & ~allowed).any(dim=1)

    def _rank(self, embedding: torch.Tensor, outside: torch.Tensor, k: int, exclude_id: str | None, query: str
              ) -> list[Hit]:
        skip_text = _norm(query) if exclude_id is not None else None
        if k <= 0:
            return []
        scores = self.embeddings @ embedding.float()
        scores[outside] = float("-inf")
        eligible = int(torch.isfinite(scores).sum())
        window = min(eligible, k + 8)
        while True:  # widen only when duplicates of the query filled the window (rare)
            hits = []
            for i in torch.topk(scores, window).indices.tolist():
                r = self.records[i]
                if exclude_id is None or (r["id"] != exclude_id and self._norms[i] != skip_text):
                    hits.append(Hit(r["id"], r["query"], r["plan"], frozenset(r["tools"]), float(scores[i])))
                    if len(hits) == k:
                        return hits
            if window == eligible:
                return hits
            window = eligible
