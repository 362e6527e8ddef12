"""The main job, offline on a laptop-class CPU: data -> tool classifier -> example index -> Natural GaLore
fine-tune of SmolLM2-135M -> base versus fine-tuned on held-out test queries."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .config import load_config
from .console import console
from .memory import PeakRSS, release

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
METRICS = ("success_rate", "success_rate_strict", "parse_rate", "tool_f1_micro", "edge_f1", "arg_f1")


def _evaluate(name: str, model: str, examples, out: Path, classifier: Path, index: Path, num_examples: int) -> dict:
    from .planner import Planner
    from .steps import plan_and_score
    planner = Planner.from_pretrained(model, classifier=classifier, index=index, num_examples=num_examples)
    planner.max_new_tokens = 200  # a base model that never stops costs the most here
    # rows leave a batch as their plans end, so a larger batch mostly saves per-step overhead (64 test
    # queries on 2 cores: 82 s in batches of 32, 97 s in batches of 16)
    report = plan_and_score(planner, examples, out, batch_size=32, ged_timeout=None, label=f"plan ({name})")
    return {**{k: report["metrics"][k] for k in METRICS}, **report["throughput"]}


def _plot(rows: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.38
    for i, (name, row) in enumerate(rows.items()):
        ax.bar([j + i * width for j in range(len(METRICS))], [row[m] for m in METRICS], width, label=name)
    ax.set_xticks([j + width / 2 for j in range(len(METRICS))], [m.replace("_", " ") for m in METRICS], fontsize=8)
    ax.set_ylim(0, 1), ax.legend(), ax.set_title("SmolLM2-135M planner: base vs fine-tuned (test, constrained decoding)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_demo(out: Path, config: Path = DEMO_CONFIG, n: int = 8000, test_size: int = 100, seed: int = 0,
             overrides: list[str] = ()) -> dict:
    from retriever import ClassifierConfig, Labelled, load_labelled, train_classifier
    from retriever.tool_classifier import calibrate_threshold, evaluate_classifier

    from .data import load_dataset
    from .steps import build_index
    from .synth.generate import SynthConfig, synthesize
    from .train import run_training
    out.mkdir(parents=True, exist_ok=True)
    data, clf_dir, index_dir, run_dir = out / "data", out / "tool-classifier", out / "example-index", out / "planner"
    cfg = load_config(config, [f"data.path={data}", f"prompt.classifier={clf_dir}", f"prompt.index={index_dir}",
                               f"training.output_dir={run_dir}", f"training.seed={seed}", *overrides])
    timings, memory, peak, begin = {}, {}, PeakRSS(), time.perf_counter()

    def stage(name: str) -> None:
        release()  # the stage's models and Trainer go before the next stage loads its own
        timings[name] = round(time.perf_counter() - begin - sum(timings.values()), 1)
        memory[name] = peak.take()
        console.print(f"[bold green]done[/] {name} in {timings[name]:.0f} s, peak memory {memory[name]:.2f} GiB")

    console.rule("1/5 synthesize data")
    synthesize(data, SynthConfig(n=n, seed=seed))
    stage("data")

    console.rule("2/5 tool classifier (MiniLM backbone)")
    val = load_labelled(data, "validation")
    clf = train_classifier(load_labelled(data, "train"), ClassifierConfig(max_examples=3000, seed=seed), clf_dir)
    clf.threshold = calibrate_threshold(clf, val, 0.99) or clf.threshold  # few tools: short prompts, fewer distractors
    clf.save_pretrained(clf_dir, extra={"calibrated_on": "validation", "target_recall": 0.99})
    test = load_dataset(data, "test").examples[:test_size]
    selection = evaluate_classifier(clf, [Labelled(e.query, e.tools) for e in test])
    threshold = clf.threshold
    del clf, val
    stage("classifier")

    console.rule("3/5 example index")
    build_index(load_dataset(data, "train").examples, index_dir)
    stage("index")

    console.rule(f"4/5 fine-tune {cfg.model.name} with {cfg.optimizer.name}")
    training = run_training(cfg)
    stage("fine-tune")

    console.rule("5/5 base vs fine-tuned on held-out test queries")
    k = cfg.plan_examples
    rows = {"base": _evaluate("base", cfg.model.name, test, out / "eval-base", clf_dir, index_dir, k),
            "fine-tuned": _evaluate("fine-tuned", str(run_dir / "model"), test, out / "eval-tuned", clf_dir, index_dir, k)}
    stage("evaluation")
    result = {"rows": rows, "timings_s": timings, "total_s": round(time.perf_counter() - begin, 1),
              "test_queries": len(test), "tool_selection": {k: selection[k] for k in ("recall", "mean_tools")},
              "peak_memory_gib": memory, "classifier_threshold": threshold, "training": training, "config": cfg.model_dump()}
    (out / "demo.json").write_text(json.dumps(result, indent=2))
    (out / "demo.md").write_text(to_markdown(result))
    _plot(rows, out / "demo.png")
    return result


def to_markdown(result: dict) -> str:
    rows = result["rows"]
    lines = ["| metric | base | fine-tuned |", "|---|---|---|"]
    lines += [f"| {m.replace('_', ' ')} | {rows['base'][m]:.3f} | {rows['fine-tuned'][m]:.3f} |" for m in METRICS]
    lines.append(f"| plans/s | {rows['base']['plans_per_second']:.2f} | {rows['fine-tuned']['plans_per_second']:.2f} |")
    lines.append(f"| forced endings (budget ran out) | {rows['base']['forced_endings']} | {rows['fine-tuned']['forced_endings']} |")
    t = result["timings_s"]
    lines += ["", f"{result['test_queries']} held-out test queries; tools by the classifier (recall "
              f"{result['tool_selection']['recall']:.3f}, {result['tool_selection']['mean_tools']:.2f} tools/query); "
              f"wall time {result['total_s'] / 60:.1f} min (" + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()) + ")"]
    if memory := result.get("peak_memory_gib"):
        lines[-1] += (f"; peak memory {max(memory.values()):.2f} GiB ("
                      + ", ".join(f"{k} {v:.2f}" for k, v in memory.items()) + ")")
    lines[-1] += "."
    return "\n".join(lines) + "\n"
