"""Score prediction sets against gold data and write the report (JSON, markdown, plot)."""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tinyagent_ft.catalog import TINYAGENT, Catalog
from tinyagent_ft.errors import InputError
from tinyagent_ft.jsonio import BadLine, jsonl

from .metrics import aggregate, score_pair


class PredictionError(InputError):
    """A bad predictions file, worded as one line naming the file and line."""


def read_predictions(path: str | Path) -> dict[str, str]:
    """JSONL with ``id`` and ``plan`` per line (other keys ignored); every bad line is an error."""
    path = Path(path)
    if not path.is_file():
        raise PredictionError(f"{path}: no such file")
    preds: dict[str, str] = {}
    for n, obj in jsonl(path):
        if isinstance(obj, BadLine):
            raise PredictionError(f"{path}: {obj}")
        if not isinstance(obj, dict) or "id" not in obj or "plan" not in obj:
            raise PredictionError(f"{path}: line {n}: expected an object with 'id' and 'plan'")
        if not isinstance(obj["plan"], str):
            raise PredictionError(f"{path}: line {n}: field 'plan' must be a string")
        rid = str(obj["id"])
        if rid in preds:
            raise PredictionError(f"{path}: line {n}: duplicate id {rid!r}")
        preds[rid] = obj["plan"]
    return preds


def score(gold: Iterable, predictions: dict[str, str], ged_timeout: float | None = None, progress=None,
          catalog: Catalog = TINYAGENT) -> dict:
    """Report over gold examples (objects with ``id`` and ``plan``), plans checked against ``catalog``.
    A missing prediction fails."""
    rows, examples, gold_ids = [], [], set()
    for ex in gold:
        gold_ids.add(ex.id)
        row = score_pair(ex.plan, predictions.get(ex.id), ged_timeout, catalog)
        rows.append(row)
        examples.append({"id": ex.id, "success": row["success"], "success_strict": row["success_strict"],
                         "errors": row["errors"], "n_calls": row["n_calls"], "shape": row["shape"],
                         "argument_problems": row["argument_problems"], "gold_argument_problems": row["gold_argument_problems"],
                         **({"ged": row["ged"]} if "ged" in row else {})})
        if progress:
            progress()
    metrics, breakdown = aggregate(rows)
    return {"metrics": metrics, "breakdown": breakdown, "examples": examples,
            "missing_predictions": [e["id"] for e in examples if e["errors"][:1] == ["missing: no prediction"]],
            # plans scored for structure despite argument count/type problems (they fail strict)
            "argument_problem_predictions": [e["id"] for e in examples if e["argument_problems"]],
            "gold_argument_problems": [e["id"] for e in examples if e["gold_argument_problems"]],
            "unknown_prediction_ids": sorted(set(predictions) - gold_ids)}


def to_markdown(report: dict) -> str:
    m = report["metrics"]
    keys = [k for k in ("success_rate", "success_rate_strict", "parse_rate", "tool_f1_micro", "tool_f1_macro",
                        "edge_f1", "arg_f1", "ged") if k in m]
    lines = ["| metric | value |", "|---|---|", f"| examples | {m['count']} |"]
    lines += [f"| {k} | {m[k]:.4f} |" for k in keys]
    if "ged_timeouts" in m:
        lines.append(f"| ged_timeouts | {m['ged_timeouts']} |")
    lines.append(f"| predictions with argument problems (structure scored, strict failed) | {m['argument_problems']} |")
    if report.get("gold_argument_problems"):
        lines.append(f"| gold plans with argument problems | {len(report['gold_argument_problems'])} |")
    if "forced_endings" in report.get("throughput", {}):
        lines.append(f"| constrained decoding: forced endings | {report['throughput']['forced_endings']} |")
    for name, groups in report["breakdown"].items():
        lines += ["", f"**{name.replace('_', ' ')}**", "",
                  "| group | count | success | strict | parse | tool F1 | edge F1 |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {g} | {s['count']} | {s['success_rate']:.3f} | {s['success_rate_strict']:.3f} | "
                  f"{s['parse_rate']:.3f} | {s['tool_f1']:.3f} | {s['edge_f1']:.3f} |" for g, s in groups.items()]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: str | Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (name, groups) in zip(axes, report["breakdown"].items()):
        labels = list(groups)
        x = range(len(labels))
        ax.bar([i - 0.2 for i in x], [groups[g]["success_rate"] for g in labels], 0.4, label="structure")
        ax.bar([i + 0.2 for i in x], [groups[g]["success_rate_strict"] for g in labels], 0.4, label="strict")
        ax.set_xticks(list(x), [f"{g}\n(n={groups[g]['count']})" for g in labels])
        ax.set_ylim(0, 1)
        ax.set_title(f"success {name.replace('_', ' ')}")
        ax.legend()
    fig.suptitle(f"success rate {report['metrics']['success_rate']:.1%} "
                 f"(strict {report['metrics']['success_rate_strict']:.1%})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(report: dict, out: str | Path | None = None, markdown: str | Path | None = None,
                  png: str | Path | None = None) -> None:
    if out:
        Path(out).write_text(json.dumps(report, indent=2))
    if markdown:
        Path(markdown).write_text(to_markdown(report))
    if png:
        plot(report, png)
