"""Terminal output shared by the command groups: one console, one progress style, one user error.

Every long stage reports through ``progress_bar()``: on a terminal a rich bar with count, rate, elapsed
time and ETA; in a log (no terminal) one plain line per interval and one when the stage ends, never
characters drawn for a terminal. Third-party bars (transformers, datasets, the hub) are switched off."""
from __future__ import annotations

import os
import time
from datetime import timedelta

from rich.console import Console
from rich.table import Table

from .errors import InputError

console = Console()
LOG_INTERVAL_S = 30.0


class UserError(InputError):
    """Bad input from the user: printed as one line, exit code 2."""


def quiet_third_party() -> None:
    """No tqdm bars from transformers ("Loading weights", "Writing model shards"), datasets or the hub."""
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def _clock(seconds: float | None) -> str:
    return "-:--:--" if seconds is None else str(timedelta(seconds=int(seconds)))


def _rate(per_second: float) -> str:
    """Items per second, or seconds per item when slow (a CPU fine-tuning step takes minutes)."""
    return f"{1 / per_second:,.0f} s/it" if 0 < per_second < 0.1 else f"{per_second:,.2f}/s"


class LogProgress:
    """The log form of the bar: ``name: 40/100 (40%) 2.10/s, 0:00:19 elapsed, eta 0:00:28, info``, at most
    once per ``interval`` seconds per task while it runs, and once for every task when the block ends."""

    def __init__(self, interval: float = LOG_INTERVAL_S):
        self.interval, self.tasks = interval, {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        for task in self.tasks.values():
            self._print(task)
        self.tasks.clear()

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields) -> int:
        now = time.monotonic()
        self.tasks[len(self.tasks)] = {"name": description, "total": total, "completed": completed, "start": completed,
                                       "t0": now, "last": now, **fields}
        return len(self.tasks) - 1

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, completed=self.tasks[task_id]["completed"] + advance)

    def update(self, task_id: int, completed: float | None = None, **fields) -> None:
        task = self.tasks[task_id]
        task.update(fields)
        if completed is not None:
            task["completed"] = completed
        running = task["total"] is None or task["completed"] < task["total"]
        if running and time.monotonic() - task["last"] >= self.interval:
            self._print(task)

    def _print(self, task: dict) -> None:
        now = time.monotonic()
        task["last"] = now
        elapsed, done, total = now - task["t0"], task["completed"], task["total"]
        rate = (done - task["start"]) / elapsed if elapsed > 0 else 0.0
        line = f"{task['name']}: {done:,.0f}"
        if total:
            eta = (total - done) / rate if rate > 0 else None
            line += f"/{total:,.0f} ({done / total:.0%}) {_rate(rate)}, {_clock(elapsed)} elapsed, eta {_clock(eta)}"
        else:
            line += f" {_rate(rate)}, {_clock(elapsed)} elapsed"
        if task.get("info"):
            line += f", {task['info']}"
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def progress_bar(interval: float = LOG_INTERVAL_S):
    """A rich bar on a terminal, ``LogProgress`` otherwise; both take ``add_task(name, total=..., info=...)``,
    ``advance``, ``update`` and work as context managers."""
    if not console.is_terminal:
        return LogProgress(interval)
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            return Text(_rate(task.speed or 0))

    class Info(ProgressColumn):
        def render(self, task):
            return Text(task.fields.get("info", ""))

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(), TimeElapsedColumn(),
                    TextColumn("eta"), TimeRemainingColumn(), Info(), console=console)


def print_report(report: dict) -> None:
    m = report["metrics"]
    t = Table(title="plan quality")
    t.add_column("metric"), t.add_column("value", justify="right")
    for k, v in m.items():
        t.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(t)
    for name, groups in report["breakdown"].items():
        g = Table(title=name.replace("_", " "))
        for col in ("group", "count", "success", "strict", "tool F1", "edge F1"):
            g.add_column(col, justify="right")
        for k, s in groups.items():
            g.add_row(k, str(s["count"]), f"{s['success_rate']:.3f}", f"{s['success_rate_strict']:.3f}",
                      f"{s['tool_f1']:.3f}", f"{s['edge_f1']:.3f}")
        console.print(g)
    if report["missing_predictions"]:
        ids = report["missing_predictions"]
        console.print(f"[yellow]{len(ids)} gold ids without a prediction (counted as failures)[/]: "
                      + ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else ""))
    if report["unknown_prediction_ids"]:
        console.print(f"[yellow]{len(report['unknown_prediction_ids'])} prediction ids not in gold (ignored)[/]")
