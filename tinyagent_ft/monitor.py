"""Training telemetry: one JSON line per log event and the project's progress bar (loss, lr, grad norm,
tokens/s, ETA; plain lines in a log)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback

from .console import console, progress_bar


class TrainingMonitor(TrainerCallback):
    """Replaces the Trainer's tqdm bar and printed log dicts (main process only)."""

    def __init__(self, metrics_file: Path, show_progress: bool = True, name: str = "train"):
        self.file, self.show, self.name = Path(metrics_file), show_progress, name
        self.bar = self.task = None
        self.last = (time.perf_counter(), 0)

    def on_train_begin(self, args, state, control, **kw):
        if not state.is_world_process_zero or not self.show:
            return
        self.bar = progress_bar()
        self.task = self.bar.add_task(self.name, total=state.max_steps, completed=state.global_step, info="")
        self.bar.start()
        self.last = (time.perf_counter(), state.num_input_tokens_seen)

    def on_step_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kw):
        if not state.is_world_process_zero or not logs:
            return
        now, seen = time.perf_counter(), state.num_input_tokens_seen
        row = {"step": state.global_step, "epoch": state.epoch, **logs}
        if "loss" in logs and now > self.last[0] and seen > self.last[1]:
            row["tokens_per_second"] = (seen - self.last[1]) / (now - self.last[0])
            self.last = (now, seen)
        with self.file.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.bar is None:
            return
        if "loss" in row:
            info = f"loss {row['loss']:.4f}  lr {row.get('learning_rate', 0):.2e}  gnorm {row.get('grad_norm') or 0:.2f}"
            if "tokens_per_second" in row:
                info += f"  {row['tokens_per_second']:,.0f} tok/s"
            self.bar.update(self.task, info=info)
        if "eval_success_rate" in row:
            console.print(f"step {state.global_step}: validation success {row['eval_success_rate']:.3f} "
                                   f"(strict {row['eval_success_rate_strict']:.3f}, parse {row['eval_parse_rate']:.3f})")

    def on_train_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
