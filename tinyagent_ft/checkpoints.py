"""Checkpoints that survive a crash while saving: the Trainer writes each one into a staging folder that
is renamed into place when complete, and ``--resume auto`` takes the newest checkpoint that is complete,
naming (and keeping) any it skips."""
from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

STAGING = ".checkpoint-staging"
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin")
TORCH_FILES = ("optimizer.pt", "scheduler.pt")  # zip archives written by torch.save


def _safetensors_readable(path: Path) -> bool:
    from safetensors import safe_open
    try:
        with safe_open(str(path), "pt") as f:
            f.keys()
        return True
    except Exception:  # noqa: BLE001 - safetensors raises its own error types for a corrupt header
        return False


def incomplete_reason(folder: Path) -> str | None:
    """Why ``folder`` cannot be resumed from (a missing or unreadable file), or None when it is complete."""
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "trainer_state.json is missing"
    try:
        json.loads(state.read_text())
    except (ValueError, UnicodeDecodeError):
        return "trainer_state.json is not valid JSON"
    weights = next((folder / w for w in WEIGHTS if (folder / w).is_file()), None)
    if weights is None:
        return "no model weights"
    if weights.suffix == ".safetensors" and not _safetensors_readable(weights):
        return f"{weights.name} is unreadable"
    for name in TORCH_FILES:
        if not (folder / name).is_file():
            return f"{name} is missing"
        try:
            with zipfile.ZipFile(folder / name) as z:
                if z.testzip() is not None:
                    return f"{name} is corrupt"
        except (zipfile.BadZipFile, OSError):
            return f"{name} is truncated or corrupt"
    return None


def latest_complete(run_dir: str | Path, log=print) -> str | None:
    """The newest complete ``checkpoint-N`` in ``run_dir``; each newer incomplete one is named, never deleted."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*")
             if p.is_dir() and (m := re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", p.name))]
    for _, folder in sorted(found, reverse=True):
        reason = incomplete_reason(folder)
        if reason is None:
            return str(folder)
        log(f"resume=auto: skipping incomplete {folder} ({reason}); left in place")
    return None


class AtomicCheckpoints:
    """Trainer mixin: ``checkpoint-N`` appears only once every file is written (a rename in one folder),
    so a kill during a save leaves at most a staging folder, cleared by the next save. A folder that
    already holds ``checkpoint-N`` (say, an incomplete one skipped on resume) is moved aside to
    ``superseded-checkpoint-N``, never deleted."""

    def _save_checkpoint(self, model, trial):
        from transformers.trainer_utils import rotate_checkpoints
        run_dir = Path(self._get_output_dir(trial=trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging = run_dir / STAGING
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)
        self.args.output_dir = str(staging)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.output_dir = str(run_dir)
        if self.state.best_global_step == self.state.global_step:
            self.state.best_model_checkpoint = str(run_dir / name)  # the Trainer recorded the staging path
        if not self.args.should_save:
            return
        self.state.save_to_json(str(staging / name / "trainer_state.json"))
        final = run_dir / name
        if final.exists():
            aside = run_dir / f"superseded-{name}"
            while aside.exists():
                aside = aside.with_name(aside.name + "-old")
            final.rename(aside)
        (staging / name).rename(final)
        staging.rmdir()
        rotate_checkpoints(str(run_dir), self.args.save_total_limit, self.state.best_model_checkpoint)


class TiedWeights:
    """Trainer mixin: a tied-embedding model (SmolLM2) saves ``lm_head.weight`` once, as the embedding;
    loading the best checkpoint then reports it missing. When the missing keys are exactly tied
    duplicates, re-tie and stay quiet; any other missing key is still a warning."""

    def _issue_warnings_after_load(self, load_result):
        everything = {n for n, _ in self.model.named_parameters(remove_duplicate=False)}
        tied = everything - {n for n, _ in self.model.named_parameters()}
        if load_result.missing_keys and set(load_result.missing_keys) <= tied:
            self.model.tie_weights()
            load_result = type(load_result)([], load_result.unexpected_keys)
        super()._issue_warnings_after_load(load_result)
