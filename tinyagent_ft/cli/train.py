"""``tinyagent-ft train`` and ``tinyagent-ft eval``: fine-tune a planner, score a planner."""
from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml

from ..catalog_files import CATALOG_HELP, resolve_catalog
from ..config import TrainConfig, load_config
from ..console import UserError, console
from ..grammar import MIN_PLAN_TOKENS


def train(config: Path | None = typer.Option(None, "--config", "-c", help="YAML config (see configs/)"),
          overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. optimizer.lr=1e-4"),
          resume: str | None = typer.Option(None, help="'auto' (latest checkpoint in output_dir) or a checkpoint path"),
          dry_run: bool = typer.Option(False, "--dry-run", help="print the resolved config and estimates, then stop"),
          catalog: Path | None = typer.Option(None, help=CATALOG_HELP + " (same as data.catalog=FILE)")):
    """Fine-tune a model to write function-calling plans."""
    cfg = load_config(config, [*(overrides or []), *([f"data.catalog={catalog}"] if catalog else [])])
    if resume not in (None, "auto") and not Path(resume).is_dir():
        raise UserError(f"--resume: {resume} is not a checkpoint folder (or use 'auto')")
    if dry_run:
        return _dry_run(cfg)
    from ..train import run_training
    summary = run_training(cfg, resume)
    console.print_json(json.dumps(summary))
    console.print(f"planner saved to {Path(cfg.training.output_dir) / 'model'}")


def _dry_run(cfg: TrainConfig) -> None:
    from ..models import shapes_only_model
    from ..train import estimate_state_bytes, trainable_parameters
    console.print(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    model = shapes_only_model(cfg.model.name)
    n = trainable_parameters(model)
    console.print(f"trainable parameters: {n:,}" + (" (before LoRA adapters)" if cfg.optimizer.name == "lora" else ""))
    if cfg.optimizer.name == "lora":
        console.print("optimizer state: 8 bytes per adapter parameter (AdamW on the adapters only)")
    else:
        est = estimate_state_bytes(model, cfg)
        console.print(f"optimizer state ({cfg.optimizer.name}): {est / 2**30:.3f} GiB "
                      f"({est / (8 * n):.2f}x AdamW's {8 * n / 2**30:.3f} GiB)")


def evaluate(model: str = typer.Option(..., help="planner folder from `train`, preset name, hub id or path"),
             data: str = typer.Option(..., help="dataset file, split directory or hub id"),
             split: str = typer.Option("test"), limit: int | None = typer.Option(None, min=1),
             out: Path = typer.Option(Path("runs/eval"), help="folder for predictions and reports"),
             classifier: Path | None = typer.Option(None, help="tool classifier (default: the model folder's)"),
             index: Path | None = typer.Option(None, help="example index (default: the model folder's)"),
             num_examples: int | None = typer.Option(None, help="override the in-context example count"),
             oracle_negatives: int | None = typer.Option(None, min=0, max=15, help="show each query's gold tools plus N "
                                                         "random others instead of selecting tools (upper bound)"),
             max_new_tokens: int = typer.Option(256, min=MIN_PLAN_TOKENS, max=2048),
             constrain: bool = typer.Option(True, help="decode under the plan grammar (--no-constrain: free decoding)"),
             batch_size: int = typer.Option(8, min=1), device: str | None = typer.Option(None),
             catalog: Path | None = typer.Option(None, help=CATALOG_HELP + " (default: the model folder's)")):
    """Plan every test query and score the plans (success rate, strict success, finer metrics)."""
    from ..console import print_report
    from ..data import load_dataset
    from ..planner import Planner
    from ..steps import plan_and_score
    cat = resolve_catalog(catalog, model if Path(model).is_dir() else None)
    examples = load_dataset(data, split, catalog=cat).examples[:limit]
    try:
        planner = Planner.from_pretrained(model, device, classifier=classifier, index=index, num_examples=num_examples,
                                          catalog=cat)
    except (OSError, ValueError) as exc:
        raise UserError(f"--model {model}: {str(exc).splitlines()[0]}") from None
    planner.oracle_negatives, planner.max_new_tokens, planner.constrain = oracle_negatives, max_new_tokens, constrain
    report = plan_and_score(planner, examples, out, batch_size)
    throughput = report["throughput"]
    print_report(report)
    console.print(f"{throughput['plans_per_second']:.2f} plans/s, {throughput['prompt_tokens'] / max(throughput['plans'], 1):,.0f} "
                  f"prompt + {throughput['completion_tokens'] / max(throughput['plans'], 1):,.0f} completion tokens per plan; "
                  + (f"constrained decoding, {throughput['forced_endings']} forced endings; " if constrain else "free decoding; ")
                  + f"reports in {out}")
