"""The ``tinyagent-ft`` command line."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from ..catalog_files import CATALOG_HELP, resolve_catalog
from ..console import UserError, console, print_report, progress_bar, quiet_third_party
from ..data import load_dataset
from ..errors import InputError
from ..memory import return_freed_memory
from .retriever import retriever_app
from .train import evaluate, train

API_KEY_ENV = "TINYAGENT_FT_API_KEY"
app = typer.Typer(help="Teach small language models to plan function calls.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Synthesize, inspect and validate TinyAgent-format data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(retriever_app, name="retriever")
app.command("train")(train)
app.command("eval")(evaluate)



@data_app.command("synth")
def data_synth(out: Path = typer.Option(..., help="output directory"),
               n: int = typer.Option(40_000, min=10, help="total examples over all splits"),
               seed: int = typer.Option(0), heldout: float = typer.Option(0.2, help="held-out fraction of phrasings and entities"),
               negatives: int = typer.Option(3, min=0, max=15, help="irrelevant tools in each stored prompt")):
    """Write a synthetic TinyAgent-format dataset: train.json, validation.json, test.json."""
    from ..synth.generate import SynthConfig, synthesize
    if not 0 < heldout < 1:
        raise UserError(f"--heldout must be between 0 and 1, got {heldout}")
    cfg = SynthConfig(n=n, seed=seed, heldout=heldout, negatives=negatives)
    with progress_bar() as bar:
        task = bar.add_task("synth", total=n)
        meta = synthesize(out, cfg, progress=lambda: bar.advance(task))
    console.print(f"wrote {meta['counts']} to {out} in {meta['seconds']} s")


def _table(title: str, rows: dict, total: int) -> Table:
    t = Table(title=title)
    t.add_column("key"), t.add_column("count", justify="right"), t.add_column("share", justify="right")
    for k, v in rows.items():
        t.add_row(str(k), f"{v:,}", f"{v / max(total, 1):.1%}")
    return t


@data_app.command("stats")
def data_stats(data: str = typer.Argument(..., help="dataset file, directory or hub id"),
               split: str = typer.Option("train"),
               tokenizer: str = typer.Option("smollm2-135m", help="tokenizer for lengths; 'none' to skip"),
               json_out: Path | None = typer.Option(None, "--json", help="also write the stats here"),
               catalog: Path | None = typer.Option(None, help=CATALOG_HELP)):
    """Counts by tool, number of calls and plan shape; token-length percentiles."""
    from ..stats import dataset_stats
    cat = resolve_catalog(catalog)
    loaded = load_dataset(data, split, catalog=cat)
    count = None
    if tokenizer != "none":
        from ..models import load_tokenizer
        tok = load_tokenizer(tokenizer)
        count = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    stats = dataset_stats(loaded.examples, count, cat)
    stats["skipped"] = dict(loaded.skipped)
    n = stats["examples"]
    console.print(f"[bold]{loaded.path}[/]: {n:,} examples, {sum(loaded.skipped.values())} skipped")
    console.print(_table("calls by tool", stats["by_tool"], sum(stats["by_tool"].values())))
    console.print(_table("examples by number of calls", stats["by_calls"], n))
    console.print(_table("examples by plan shape", stats["by_shape"], n))
    for key in ("prompt_tokens", "plan_tokens"):
        if key in stats:
            console.print(f"{key} ({tokenizer}): " + ", ".join(f"{q} {v:,.0f}" for q, v in stats[key].items()))
    if json_out:
        json_out.write_text(json.dumps(stats, indent=2))


@data_app.command("show")
def data_show(data: str = typer.Argument(...), split: str = typer.Option("train"),
              n: int = typer.Option(3, min=1), strict: bool = typer.Option(False),
              catalog: Path | None = typer.Option(None, help=CATALOG_HELP)):
    """Pretty-print the first N examples."""
    loaded = load_dataset(data, split, strict=strict, catalog=resolve_catalog(catalog))
    for e in loaded.examples[:n]:
        console.rule(f"{e.id}")
        console.print(f"[bold]query[/]: {e.query}")
        if e.today:
            console.print(f"[bold]today[/]: {e.today:%A %Y-%m-%d %H:%M}")
        console.print(f"[bold]tools[/]: {', '.join(sorted(e.tools)) or '(none)'}")
        console.print(e.plan, markup=False, highlight=False)


@data_app.command("validate")
def data_validate(data: str = typer.Argument(...), split: str = typer.Option("train"),
                  catalog: Path | None = typer.Option(None, help=CATALOG_HELP)):
    """Load with --strict semantics: stop at the first bad record, naming it."""
    from eval.plan import parse_plan
    cat = resolve_catalog(catalog)
    loaded = load_dataset(data, split, strict=True, catalog=cat)
    off = sum(not parse_plan(e.plan, cat).valid for e in loaded)
    console.print(f"{loaded.path}: {len(loaded):,} records, all valid"
                  + (f"; {off:,} with argument count/type problems (kept: structure is scored, strict fails)" if off else ""))


@app.command("score")
def score_cmd(gold: str = typer.Option(..., help="gold data: TinyAgent file, project JSONL, directory or hub id"),
              predictions: Path = typer.Option(..., help="JSONL with 'id' and 'plan' per line"),
              split: str = typer.Option("test", help="split to read when GOLD is a directory"),
              out: Path | None = typer.Option(None, help="REPORT.json"),
              markdown: Path | None = typer.Option(None, help="markdown report"),
              plot: Path | None = typer.Option(None, help="PNG of success by number of calls and by shape"),
              ged_timeout: float = typer.Option(0.5, help="seconds per pair for graph edit distance; 0 skips it"),
              catalog: Path | None = typer.Option(None, help=CATALOG_HELP)):
    """Score any model's plans against gold data, without loading a model."""
    from eval.report import read_predictions, score, write_outputs
    cat = resolve_catalog(catalog)
    examples = load_dataset(gold, split, catalog=cat).examples
    preds = read_predictions(predictions)
    with progress_bar() as bar:
        task = bar.add_task("score", total=len(examples))
        report = score(examples, preds, ged_timeout or None, progress=lambda: bar.advance(task), catalog=cat)
    write_outputs(report, out, markdown, plot)
    print_report(report)


@app.command("demo")
def demo(out: Path = typer.Option(Path("runs/demo"), help="folder for data, models and reports"),
         config: Path | None = typer.Option(None, help="fine-tuning config (default configs/demo.yaml)"),
         n: int = typer.Option(8000, min=500, help="synthetic examples"),
         test_size: int = typer.Option(100, min=1, help="held-out test queries to plan with each model"),
         seed: int = typer.Option(0),
         overrides: list[str] = typer.Argument(None, help="config overrides, e.g. data.max_train=64")):
    """The whole pipeline offline on a CPU: data, classifier, index, Natural GaLore fine-tune, base vs tuned."""
    from ..demo import DEMO_CONFIG, run_demo, to_markdown
    config = config or DEMO_CONFIG
    if not config.is_file():
        raise UserError(f"--config: {config} not found (run from a checkout, or pass configs/demo.yaml explicitly)")
    result = run_demo(out, config, n, test_size, seed, overrides or [])
    console.rule("tinyagent-ft demo")
    console.print(to_markdown(result), markup=False)
    console.print(f"reports in {out}: demo.json, demo.md, demo.png, eval-*/report.md, planner/loss.png")


@app.command("serve")
def serve(model: str = typer.Option(..., help="planner folder from `train`, preset name, hub id or path"),
          host: str = typer.Option("127.0.0.1", help="interface to bind; loopback by default"),
          port: int = typer.Option(8000, min=1, max=65535),
          classifier: str | None = typer.Option(None, help="tool classifier (default: the model folder's)"),
          index: str | None = typer.Option(None, help="example index (default: the model folder's)"),
          timeout: float = typer.Option(60.0, min=1, help="seconds one generation may take"),
          device: str | None = typer.Option(None),
          catalog: Path | None = typer.Option(None, help=CATALOG_HELP + " (default: the model folder's)"),
          api_key: str | None = typer.Option(None, envvar=API_KEY_ENV, show_envvar=True,
                                             help="require 'Authorization: Bearer KEY' (all but /healthz, /readyz)")):
    """Serve plans over REST (FastAPI + uvicorn): /v1/plan, /v1/chat/completions, /v1/tools, /healthz, /readyz."""
    import uvicorn

    from serve import planner_app
    from serve.app import ApiKey
    if not api_key and not _loopback(host):
        print(f"warning: serving on {host} without an API key: anyone who reaches port {port} can use it "
              f"(pass --api-key or set {API_KEY_ENV})", file=sys.stderr)
    app = planner_app(model, device, classifier, index, timeout, resolve_catalog(catalog) if catalog else None)
    if api_key:
        app.add_middleware(ApiKey, key=api_key)
    uvicorn.run(app, host=host, port=port, log_level="info")


def _loopback(host: str) -> bool:
    import ipaddress
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


@app.command("env")
def env():
    """Versions of python, torch (and CUDA), transformers and the other key packages, for bug reports."""
    import platform
    from importlib.metadata import PackageNotFoundError, version
    rows = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("tinyagent-ft", "torch", "transformers", "datasets", "accelerate", "peft", "networkx",
                "sentence-transformers", "fastapi", "uvicorn", "pydantic", "typer", "galore-torch"):
        try:
            rows[pkg] = version(pkg)
        except PackageNotFoundError:
            rows[pkg] = "not installed"
    try:
        import torch
        rows["cuda"] = torch.version.cuda or "none (CPU build)"
        rows["gpus"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or "none"
        rows["torch threads"] = str(torch.get_num_threads())
    except ImportError:
        pass
    t = Table(title="tinyagent-ft environment")
    t.add_column("item"), t.add_column("version")
    for k, v in rows.items():
        t.add_row(k, v)
    console.print(t)


def main() -> None:
    quiet_third_party()
    return_freed_memory()
    try:
        app()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)  # one unwrapped line, whatever the terminal width
        sys.exit(2)
    except (RecursionError, UnicodeDecodeError) as exc:  # corrupt input a loader did not name: still one line
        print(f"error: unreadable input ({type(exc).__name__}: {str(exc).splitlines()[0]})", file=sys.stderr)
        sys.exit(2)
