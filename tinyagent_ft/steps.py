"""Pipeline steps with the project's progress bars, shared by the CLI and the demo (no CLI imports)."""
from __future__ import annotations

from pathlib import Path

from .console import progress_bar


def build_index(examples, out: Path, encoder: str | None = None):
    """Embed ``examples`` (one bar step per distinct query) and save the example index to ``out``."""
    from retriever import ExampleIndex
    with progress_bar() as bar:
        task = bar.add_task("embed", total=len({e.query for e in examples}))
        idx = ExampleIndex.build(examples, encoder, progress=lambda n: bar.advance(task, n))
    idx.save(out)
    return idx


def plan_and_score(planner, examples, out: Path, batch_size: int, ged_timeout: float | None = 0.5,
                   label: str = "plan") -> dict:
    """``eval.harness.run`` with a progress bar: predictions and reports (with throughput) in ``out``."""
    from eval.harness import run
    with progress_bar() as bar:
        task = bar.add_task(label, total=len(examples))
        return run(planner, examples, out, batch_size, ged_timeout, progress=lambda n: bar.advance(task, n))
