"""``tinyagent-ft retriever ...``: train and evaluate the tool classifier, build and query the example index."""
from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.table import Table

from ..catalog_files import CATALOG_HELP, resolve_catalog, save_catalog
from ..config import load_config
from ..console import UserError, console

_FROM_CONFIG = "[default: retriever.ClassifierConfig]"  # one home for the defaults: the Python API's
retriever_app = typer.Typer(help="Tool classifier (ToolRAG) and in-context example index.", no_args_is_help=True)


def print_selection(report: dict, title: str) -> None:
    t = Table(title=title)
    t.add_column("metric"), t.add_column("value", justify="right")
    for k in ("examples", "recall", "mean_tools", "micro_f1", "macro_f1"):
        t.add_row(k, f"{report[k]:.4f}" if isinstance(report[k], float) else str(report[k]))
    for k, v in report.get("latency_ms", {}).items():
        t.add_row(f"latency {k.replace('_', ' ')} (ms)", f"{v:.2f}")
    console.print(t)
    low = {k: v for k, v in report["per_tool"].items() if v["recall"] < 1}
    if low:
        console.print("tools with recall < 1: " + ", ".join(f"{k} {v['recall']:.3f}" for k, v in low.items()))


@retriever_app.command("train")
def train(data: str = typer.Option(..., help="dataset directory, file or hub id"),
          out: Path = typer.Option(..., help="output folder for the classifier"),
          split: str = typer.Option("train"),
          backbone: str | None = typer.Option(None, help="minilm (offline), deberta-v3-small, tiny-deberta, hub id or path "
                                                        + _FROM_CONFIG),
          epochs: float | None = typer.Option(None, help=_FROM_CONFIG), batch_size: int | None = typer.Option(None, help=_FROM_CONFIG),
          lr: float | None = typer.Option(None, help=_FROM_CONFIG),
          pos_weight: float | None = typer.Option(None, help="BCE positive-class weight; " + _FROM_CONFIG),
          threshold: float | None = typer.Option(None, help=_FROM_CONFIG), keep_top1: bool | None = typer.Option(None, help=_FROM_CONFIG),
          max_examples: int | None = typer.Option(None, help="train on the first N examples"),
          eval_split: str = typer.Option("validation", help="split to report on after training; 'none' skips"),
          target_recall: float | None = typer.Option(None, help="lower the threshold on EVAL_SPLIT until recall reaches this"),
          report_to: list[str] = typer.Option([], help="Trainer tracker (repeatable): tensorboard, wandb, mlflow, trackio, ..."),
          run_name: str | None = typer.Option(None, help="run name for the trackers"),
          catalog: Path | None = typer.Option(None, help=CATALOG_HELP),
          config: Path | None = typer.Option(None, "--config", "-c", help="YAML of retriever.ClassifierConfig fields; "
                                             "flags given here override it")):
    """Fine-tune the multi-label tool classifier; saves model, tokenizer, label map, threshold and catalog."""
    from retriever import ClassifierConfig, load_labelled, train_classifier
    from retriever.tool_classifier import calibrate_threshold, evaluate_classifier
    if target_recall is not None and eval_split == "none":
        raise UserError("--target-recall needs an --eval-split to calibrate on")
    base = load_config(config, [], ClassifierConfig).model_dump() if config else {}
    try:
        given = dict(backbone=backbone, epochs=epochs, batch_size=batch_size, lr=lr, pos_weight=pos_weight,
                     threshold=threshold, keep_top1=keep_top1, max_examples=max_examples, report_to=report_to or None,
                     run_name=run_name)
        cfg = ClassifierConfig(**{**base, **{k: v for k, v in given.items() if v is not None}})
    except ValidationError as exc:
        raise UserError("; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}"
                                 for e in exc.errors())) from None
    cat = resolve_catalog(catalog)
    pairs = load_labelled(data, split, cat)
    clf = train_classifier(pairs, cfg, out, catalog=cat)
    save_catalog(cat, out)  # `retriever eval/search` and planners read the tools from the folder
    console.print(f"saved classifier to {out}")
    if eval_split != "none":
        held_out = load_labelled(data, eval_split, cat)
        if target_recall is not None:
            chosen = calibrate_threshold(clf, held_out, target_recall)
            if chosen is None:
                console.print(f"[yellow]no threshold reaches recall {target_recall} on {eval_split}; kept {clf.threshold}[/]")
            else:
                clf.threshold = chosen
                clf.save_pretrained(out, extra={"calibrated_on": eval_split, "target_recall": target_recall})
                console.print(f"threshold calibrated on {eval_split}: {chosen}")
        report = evaluate_classifier(clf, held_out)
        (out / "eval.json").write_text(json.dumps(report, indent=2))
        print_selection(report, f"{eval_split} split")


@retriever_app.command("eval")
def evaluate(model: Path = typer.Option(..., help="classifier folder"),
             data: str = typer.Option(..., help="dataset in any loader format, or JSONL with 'query' and 'tools'"),
             split: str = typer.Option("test", help="split to read when DATA is a directory"),
             threshold: float | None = typer.Option(None, help="override the saved threshold"),
             out: Path | None = typer.Option(None, help="write the JSON report here"),
             catalog: Path | None = typer.Option(None, help=CATALOG_HELP + " (default: the classifier folder's)")):
    """Recall, mean tools, micro/macro F1, per-tool recall and latency of a saved classifier."""
    from retriever import ToolClassifier, load_labelled
    from retriever.tool_classifier import evaluate_classifier
    cat = resolve_catalog(catalog, model)
    pairs = load_labelled(data, split, cat)
    try:
        clf = ToolClassifier.from_pretrained(model, catalog=cat)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    if threshold is not None:
        clf.threshold = threshold
    report = evaluate_classifier(clf, pairs)
    if out:
        out.write_text(json.dumps(report, indent=2))
    print_selection(report, str(data))


@retriever_app.command("index")
def index(data: str = typer.Option(..., help="dataset directory, file or hub id"),
          out: Path = typer.Option(..., help="output folder"), split: str = typer.Option("train"),
          encoder: str | None = typer.Option(None, help="sentence-transformers model; default the packaged MiniLM"),
          catalog: Path | None = typer.Option(None, help=CATALOG_HELP)):
    """Embed the solved examples once and save the index (embeddings + records)."""
    from tinyagent_ft.data import load_dataset

    from ..steps import build_index
    start = time.perf_counter()
    idx = build_index(load_dataset(data, split, catalog=resolve_catalog(catalog)).examples, out, encoder)
    console.print(f"indexed {len(idx):,} examples in {time.perf_counter() - start:.1f} s -> {out}")


@retriever_app.command("search")
def search(index_dir: Path = typer.Option(..., "--index", help="example index folder"),
           query: str = typer.Option(...), tools: str | None = typer.Option(None, help="comma-separated tool names"),
           model: Path | None = typer.Option(None, help="classifier folder, used when --tools is not given"),
           k: int = typer.Option(6, min=0),
           catalog: Path | None = typer.Option(None, help=CATALOG_HELP + " (default: the classifier folder's)")):
    """Show the examples a prompt would get for QUERY."""
    from retriever import ExampleIndex, ToolClassifier
    if not query.strip():
        raise UserError("--query must not be empty")
    cat = resolve_catalog(catalog, model)
    if tools is not None:
        chosen = {t.strip() for t in tools.split(",") if t.strip()}
        if unknown := sorted(chosen - set(cat.names)):
            raise UserError(f"--tools: unknown tool(s) {', '.join(unknown)}")
    elif model is not None:
        try:
            chosen = ToolClassifier.from_pretrained(model, catalog=cat).predict([query])[0]
        except (FileNotFoundError, ValueError) as exc:
            raise UserError(f"--model: {exc}") from None
    else:
        chosen = set(cat.names)
    idx = ExampleIndex.load(index_dir)
    console.print(f"tools: {', '.join(sorted(chosen))}")
    for hit in idx.search(query, chosen, k):
        console.rule(f"{hit.id}  score {hit.score:.3f}")
        console.print(hit.query, markup=False)
        console.print(hit.plan, markup=False, highlight=False)
