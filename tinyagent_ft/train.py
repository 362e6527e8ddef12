"""Fine-tune a causal LM to write plans: HF Trainer with Natural GaLore (or GaLore, AdamW, LoRA),
plan-only loss, validation by generation + success rate, best checkpoint kept, planner folder out."""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from transformers import Trainer, TrainerCallback

from eval.report import score

from .catalog import Catalog
from .catalog_files import load_catalog
from .checkpoints import AtomicCheckpoints, TiedWeights, latest_complete
from .config import ConfigError, TrainConfig
from .console import progress_bar
from .data import load_dataset
from .devices import bf16_supported, pick_device, pick_dtype
from .memory import CudaPhases, PlanOnlyLoss, trim_heap
from .monitor import TrainingMonitor
from .optim import LayerwiseOptimizer, ShardedNaturalGaLore, fallback_counts, state_bytes
from .packing import PackedCollator, default_pack_tokens, pack_samples, register_varlen_attention, varlen_available
from .planner import Planner
from .planner_folder import save_planner_folder
from .prompt import PromptBuilder, PromptSettings, sample_prompt_tools
from .samples import build_samples, training_tools

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MODEL_DIR, METRICS_FILE = "model", "metrics.jsonl"


def world_size() -> int:
    """Processes training together (torchrun's WORLD_SIZE, readable before the process group starts)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def optimizer_steps(samples: int, micro_batch: int, grad_accum: int, world: int = 1, epochs: float = 1.0) -> int:
    """Optimizer steps as the HF Trainer counts them: each process takes its share of the micro-batches,
    and an epoch's last micro-batch always ends a step."""
    per_process = math.ceil(samples / (micro_batch * world))
    return math.ceil(epochs * max(math.ceil(per_process / grad_accum), 1))


def projection_options(cfg: TrainConfig) -> dict:
    o = cfg.optimizer
    common = dict(update_proj_gap=o.update_proj_gap, scale=o.scale, svd_method=o.svd_method,
                  stagger_refresh=o.svd_method == "power")
    if o.side:
        common["side"] = o.side
    if o.name == "galore":
        return dict(side="std") | common | dict(history=0)
    return common | dict(history=o.history, damping=o.damping, damping_mode=o.damping_mode)


def trainable_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def master_dtype(cfg: TrainConfig) -> torch.dtype:
    """The dtype full fine-tuning keeps the weights in (and with them GaLore's projectors): fp32 master weights,
    with bf16 autocast doing the math, unless ``model.dtype`` asks for bf16 weights."""
    return torch.bfloat16 if cfg.model.dtype == "bfloat16" else torch.float32


def estimate_state_bytes(model, cfg: TrainConfig) -> int:
    """Optimizer-state bytes (Adam moments, projectors in the weights' training dtype, history and its Gram
    matrix) without building the optimizer: ``model`` may be on the meta device, in any dtype."""
    from .optim.groups import build_param_groups
    from .optim.lowbit import moment_bytes
    from .optim.natural_galore import PROJECTION_DEFAULTS
    from .optim.projector import sides_for
    o = cfg.optimizer
    if o.name == "lora":
        return 0  # LoRA adapters are built later; their state is 2 x 4 bytes x adapter parameters
    if o.name == "adamw":
        return 8 * trainable_parameters(model)
    opts = projection_options(cfg)
    side, weight_bytes = opts.get("side", PROJECTION_DEFAULTS["side"]), master_dtype(cfg).itemsize
    projected, *rest = build_param_groups(model, o.rank, **opts)
    total = sum(moment_bytes(p.numel(), o.state_dtype) for g in rest for p in g["params"])
    for p in projected["params"]:
        m, n = p.shape
        left, right = sides_for((m, n), side, o.rank)
        rm, rn = (o.rank if left else m), (o.rank if right else n)
        total += moment_bytes(rm * rn, o.state_dtype) + weight_bytes * (m * rm * left + n * rn * right)
        if (left or right) and opts["history"]:  # bf16 history of past projected gradients, fp32 Gram matrix
            total += 2 * opts["history"] * rm * rn + 4 * opts["history"] ** 2
    return total


def apply_lora(model, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model
    o = cfg.optimizer
    return get_peft_model(model, LoraConfig(r=o.lora_r, lora_alpha=o.lora_alpha, lora_dropout=o.lora_dropout,
                                            target_modules=LORA_TARGETS, task_type="CAUSAL_LM"))


def load_model(cfg: TrainConfig, device: str, attn_implementation: str | None = None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .models import resolve_model
    path = resolve_model(cfg.model.name)
    dtype = pick_dtype(cfg.model.dtype, device) if cfg.optimizer.name == "lora" else master_dtype(cfg)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attn_implementation)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if cfg.optimizer.name == "lora":
        model = apply_lora(model, cfg)
    if cfg.model.gradient_checkpointing:
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()  # renamed in 5.x
        model.config.use_cache = False
    return model, tok


def build_optimizer(model, cfg: TrainConfig):
    """The optimizer the config names, or None to let the Trainer build AdamW (adamw, lora). Under DDP the
    step is sharded over the ranks unless ``optimizer.shard_step=false`` (the model on this rank's device)."""
    from .optim import NaturalGaLoreAdamW, build_param_groups
    o = cfg.optimizer
    if o.name in ("adamw", "lora"):
        return None
    groups = build_param_groups(model, o.rank, **projection_options(cfg))
    if o.unprojected_lr is not None:
        for group in groups[1:]:
            group["lr"] = o.unprojected_lr
    options = dict(lr=o.lr, weight_decay=o.weight_decay, state_dtype=o.state_dtype)
    if o.layerwise:
        return LayerwiseOptimizer(NaturalGaLoreAdamW(groups, **options), cfg.training.grad_accum,
                                  cfg.training.max_grad_norm or None)
    if o.shard_step and world_size() > 1:
        return ShardedNaturalGaLore(groups, **options)
    return NaturalGaLoreAdamW(groups, **options)


def load_retrievers(cfg: TrainConfig, catalog: Catalog):
    from retriever import ExampleIndex, ToolClassifier
    p = cfg.prompt
    try:
        clf = ToolClassifier.from_pretrained(p.classifier, catalog=catalog) if p.classifier else None
        index = ExampleIndex.load(p.index) if p.index else None
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise ConfigError(f"prompt.classifier/prompt.index: {exc}") from None
    return clf, index


def validation_tools(examples, builder: PromptBuilder, negatives: int, seed: int) -> list[list[str] | None]:
    """With a classifier, validation sees its choice (as at test time); without one, gold + negatives."""
    if builder.classifier is not None:
        return [None] * len(examples)
    rng = random.Random(seed)
    return [sample_prompt_tools(e.tools, negatives, rng, builder.catalog) for e in examples]


def plot_loss(metrics_file: Path, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["eval_success_rate"]) for r in rows if "eval_success_rate" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss")
    ax.set_xlabel("optimizer step"), ax.set_ylabel("loss")
    if val:
        ax2 = ax.twinx()
        ax2.plot(*zip(*val), "o-", color="tab:green", label="validation success rate")
        ax2.set_ylabel("success rate"), ax2.set_ylim(0, 1)
        ax2.legend(loc="upper right")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def save_planner(model, tokenizer, cfg: TrainConfig, settings: PromptSettings, catalog: Catalog, out: Path,
                 extra: dict) -> None:
    """The planner folder (``planner_folder``), LoRA adapters merged into the weights first."""
    if cfg.optimizer.name == "lora":
        model = model.merge_and_unload()
    save_planner_folder(model, tokenizer, settings, catalog, out,
                        {"base_model": cfg.model.name, "optimizer": cfg.optimizer.name, **extra},
                        cfg.prompt.classifier, cfg.prompt.index)


@dataclass
class Validation:
    """What the trainer's evaluation plans: validation queries (ordered by prompt length, so generation
    batches carry little left padding), the tools each shows, and how to decode."""
    tokenizer: object
    builder: PromptBuilder
    examples: list
    tools: list
    max_new_tokens: int
    batch_size: int
    constrain: bool
    seconds: float = 0.0
    runs: int = 0

    def __post_init__(self):
        order = sorted(range(len(self.examples)), key=lambda i: (len(self.tools[i] or ()), len(self.examples[i].query)))
        self.examples, self.tools = [self.examples[i] for i in order], [self.tools[i] for i in order]


class PlannerTrainer(PlanOnlyLoss, AtomicCheckpoints, TiedWeights, Trainer):
    """The HF Trainer for planners: loss on plan tokens only, atomic checkpoints, tied weights kept tied,
    evaluation that plans the validation queries and scores them (``eval_success_rate`` picks the best
    checkpoint), the layer-wise optimizer's own gradient norm in the logs, on CUDA the peak memory and GPU time of
    each phase (forward here, backward after ``training_step``, the rest in ``OptimizerStepPhases``), and input
    tokens counted without a host sync per micro-batch."""

    def __init__(self, *args, validation: Validation, system_prompt_gradient: bool = True,
                 phases: CudaPhases | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.validation, self.system_prompt_gradient, self.phases = validation, system_prompt_gradient, phases
        self._uncounted_tokens: int | torch.Tensor = 0
        optimizer = (kwargs.get("optimizers") or (None,))[0]
        self.layerwise = optimizer if isinstance(optimizer, LayerwiseOptimizer) else None
        if self.layerwise is not None:  # the Trainer also ends a step at an epoch's last micro-batch
            self.layerwise.ends_step = lambda: self.accelerator.sync_gradients

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.phases is not None:
            self.phases.end("forward")
        return out

    def training_step(self, *args, **kwargs):
        loss = super().training_step(*args, **kwargs)
        if self.phases is not None:
            self.phases.end("backward")
        return loss

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        v, model = self.validation, self.model
        if self.phases is not None:
            self.phases.end(None)
        was_training = model.training
        start = time.perf_counter()
        with torch.compiler.set_stance("force_eager"):  # compiled layers: each decode length would compile anew
            results = Planner(model, v.tokenizer, v.builder).generate(
                [e.query for e in v.examples], [e.date for e in v.examples], v.tools, v.max_new_tokens, v.batch_size,
                constrain=v.constrain)
        model.train(was_training)
        report = score(v.examples, {e.id: r.text for e, r in zip(v.examples, results)}, catalog=v.builder.catalog)
        metrics = {f"{metric_key_prefix}_{k}": report["metrics"][k]
                   for k in ("success_rate", "success_rate_strict", "parse_rate", "tool_f1_micro", "edge_f1")}
        seconds = time.perf_counter() - start
        v.seconds, v.runs = v.seconds + seconds, v.runs + 1
        metrics[f"{metric_key_prefix}_seconds"] = round(seconds, 1)
        if self.phases is not None:
            self.phases.end("validation")
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _track_num_input_tokens(self, inputs):
        """The Trainer gathers each micro-batch's token count across ranks and reads it back, a host sync that
        kept the CPU from queuing the next micro-batch: here counts add up on the device and are summed over
        the ranks when logged or saved (both run on every rank)."""
        mode = self.args.include_num_input_tokens_seen
        if mode == "no":
            return
        ids, mask = inputs["input_ids"], inputs.get("attention_mask")
        if mode == "non_padding":
            count = mask.sum() if mask is not None else (ids != self.processing_class.pad_token_id).sum()
        else:
            count = ids.numel()
        self._uncounted_tokens = self._uncounted_tokens + count

    def _add_counted_tokens(self) -> None:
        count = torch.as_tensor(self._uncounted_tokens, device=self.args.device, dtype=torch.int64)
        if self.args.world_size > 1:
            count = self.accelerator.reduce(count, reduction="sum")
        self.state.num_input_tokens_seen += int(count)
        self._uncounted_tokens = 0

    def log(self, logs, start_time=None):
        self._add_counted_tokens()
        super().log(logs, start_time)

    def _save_checkpoint(self, model, trial):
        self._add_counted_tokens()
        super()._save_checkpoint(model, trial)
        if self.phases is not None:
            self.phases.end(None)  # saving counts as "other"

    def _save_optimizer_and_scheduler(self, output_dir):
        sharded = getattr(self.optimizer, "optimizer", self.optimizer)  # inside accelerate's wrapper
        if isinstance(sharded, ShardedNaturalGaLore):  # every rank sends its share; rank 0 then saves the whole state
            sharded.consolidate_state_dict(to=0)
        super()._save_optimizer_and_scheduler(output_dir)

    def _get_grad_norm(self, model, grad_norm=None):
        if self.layerwise is not None:  # gradients were consumed, and clipped, in backward
            return self.layerwise.grad_norm()
        return super()._get_grad_norm(model, grad_norm)


class OptimizerStepPhases(TrainerCallback):
    """Closes the phases the Trainer runs between its callbacks: clipping ends backward, then the step."""

    def __init__(self, phases: CudaPhases):
        self.phases = phases

    def on_train_begin(self, args, state, control, **kw):
        self.phases.end(None)  # model loading and set-up: the clock starts here

    def on_pre_optimizer_step(self, args, state, control, **kw):
        self.phases.end("backward")

    def on_optimizer_step(self, args, state, control, **kw):
        self.phases.end("optimizer_step")


class TrimHeapEachStep(TrainerCallback):
    """CPU training: samples of many lengths leave the heap fragmented, and its free pages stay resident
    until trimmed (SmolLM2-135M, micro-batches of 500-950 tokens: trimming after each one kept resident
    memory ~0.5 GiB lower over 30 of them; one libc call per micro-batch of seconds)."""

    def on_substep_end(self, args, state, control, **kw):  # after each micro-batch but an optimizer step's last
        trim_heap()

    def on_step_end(self, args, state, control, **kw):
        trim_heap()


def load_splits(cfg: TrainConfig, catalog: Catalog) -> tuple[list, list]:
    """(training examples, validation examples) as the config selects them."""
    train = load_dataset(cfg.data.path, cfg.data.train_split, catalog=catalog).examples
    if cfg.data.val_split:
        val = load_dataset(cfg.data.path, cfg.data.val_split, catalog=catalog).examples
    else:  # e.g. the TinyAgent release, which has train and test only
        train, val = train[:-cfg.data.val_holdout], train[-cfg.data.val_holdout:]
    train = train[:cfg.data.max_train] if cfg.data.max_train else train
    if not train:
        raise ConfigError(f"data.path={cfg.data.path}: the {cfg.data.train_split!r} split holds no usable example")
    return train, val[:cfg.eval.subset]


def make_batches(samples: list[dict], cfg: TrainConfig, tok, packing: bool, varlen: bool, log):
    """(dataset, micro-batch size, collator, packing report): packs of whole documents (batch size 1 to
    the Trainer) or padded micro-batches."""
    from transformers import DataCollatorForSeq2Seq
    t = cfg.training
    if not packing:
        return samples, t.batch_size, DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100), None
    budget = t.pack_tokens or default_pack_tokens([len(s["input_ids"]) for s in samples], t.batch_size)
    packs = pack_samples(samples, budget, t.seed)
    tokens = sum(len(s["input_ids"]) for s in samples)
    info = {"pack_tokens": budget, "packs": len(packs), "attention": "varlen" if varlen else "sdpa",
            "fill": round(tokens / (budget * len(packs)), 3)}
    log(f"packing: {len(samples)} samples into {len(packs)} micro-batches of <= {budget} tokens ({info['fill']:.0%} full)")
    return packs, 1, PackedCollator(varlen), info


def training_arguments(cfg: TrainConfig, out: Path, micro_batch: int, eval_every: int, device: str, packing: bool):
    from transformers import TrainingArguments
    t = cfg.training
    return TrainingArguments(
        output_dir=str(out), num_train_epochs=t.epochs, max_steps=t.max_steps, per_device_train_batch_size=micro_batch,
        gradient_accumulation_steps=t.grad_accum, learning_rate=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay,
        lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_ratio, max_grad_norm=t.max_grad_norm,
        logging_steps=t.logging_steps, logging_first_step=True, eval_strategy="steps", eval_steps=eval_every,
        save_strategy="steps", save_steps=eval_every, save_total_limit=t.save_total_limit,
        load_best_model_at_end=True, metric_for_best_model="success_rate", greater_is_better=True,
        bf16=cfg.model.dtype != "float32" and bf16_supported(device),  # mixed precision over fp32 weights
        seed=t.seed, report_to=t.report_to, run_name=t.run_name, remove_unused_columns=False,
        disable_tqdm=True, include_num_input_tokens_seen="all" if packing else "non_padding",  # packs hold no padding
        logging_nan_inf_filter=False,  # its per-micro-batch check of the loss is a host sync
        train_sampling_strategy="random" if packing else "group_by_length", dataloader_pin_memory=device == "cuda",
        ddp_find_unused_parameters=False, use_cpu=device == "cpu")


def run_training(cfg: TrainConfig, resume: str | None = None, show_progress: bool = True, log=print) -> dict:
    """Train per ``cfg``; returns a summary. ``resume``: None, "auto" (latest checkpoint) or a path."""
    from transformers import AutoConfig, set_seed

    from .kernels import apply_fused_kernels, compile_layers, compile_mode
    from .models import resolve_model

    t, out = cfg.training, Path(cfg.training.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    set_seed(t.seed)
    catalog = load_catalog(cfg.data.catalog)
    device = pick_device()
    if device == "cuda" and torch.cuda.device_count() > 1 and "WORLD_SIZE" not in os.environ:
        # the Trainer would fall back to nn.DataParallel, whose replica threads lose the bf16 autocast
        raise ConfigError(f"{torch.cuda.device_count()} GPUs visible: launch with `torchrun --nproc_per_node "
                          f"{torch.cuda.device_count()} -m tinyagent_ft train ...`, or pick one with CUDA_VISIBLE_DEVICES=0")
    compiled = compile_mode(cfg.model.compile, device)
    kernels = apply_fused_kernels(cfg.model.fused_kernels, device,  # before any model is built
                                  AutoConfig.from_pretrained(resolve_model(cfg.model.name)).model_type, compiled)
    train_examples, val_examples = load_splits(cfg, catalog)
    classifier, index = load_retrievers(cfg, catalog)
    settings = PromptSettings(num_examples=cfg.prompt.num_examples if index else 0, guidelines=cfg.prompt.guidelines)
    builder = PromptBuilder(settings, classifier if cfg.prompt.tools == "classifier" else None, index, catalog)
    planning = builder
    if index and cfg.plan_examples != cfg.prompt.num_examples:  # planning may show more examples than training
        settings = settings.model_copy(update={"num_examples": cfg.plan_examples})
        planning = PromptBuilder(settings, builder.classifier, index, catalog)
    packing = device == "cuda" if t.packing == "auto" else t.packing
    if packing and not t.system_prompt_gradient:
        raise ConfigError("training.system_prompt_gradient=false needs padded batches: set training.packing=false")
    varlen = packing and device == "cuda" and varlen_available()
    model, tok = load_model(cfg, device, register_varlen_attention() if varlen else None)
    tok.padding_side = "right"  # training batches; the planner left-pads on its own
    compiled_layers = compile_layers(model) if compiled else 0
    if compiled_layers:
        log(f"compiling {compiled_layers} decoder layers (torch.compile): the first steps include the compilation")

    tools = training_tools(train_examples, cfg.prompt.tools, cfg.prompt.negatives, builder, random.Random(t.seed))
    with progress_bar() as bar:
        task = bar.add_task("prompts", total=len(train_examples))
        samples, stats = build_samples(train_examples, tok, builder, tools, cfg.data.max_length,
                                       lambda n: bar.advance(task, n), mark_query=not t.system_prompt_gradient)
    log(f"samples: {stats.summary()}")
    if not samples:
        raise ConfigError(f"data.max_length={cfg.data.max_length}: no training sample fits; raise it")
    train_data, micro_batch, collator, packing_info = make_batches(samples, cfg, tok, packing, varlen, log)
    eval_every = t.eval_steps or optimizer_steps(len(train_data), micro_batch, t.grad_accum, world_size())
    validation = Validation(tok, planning, val_examples,
                            validation_tools(val_examples, builder, cfg.prompt.negatives, t.seed),
                            cfg.eval.max_new_tokens, cfg.eval.batch_size, cfg.eval.constrain)

    args = training_arguments(cfg, out, micro_batch, eval_every, device, packing)
    if world_size() > 1:
        model.to(args.device)  # a sharded optimizer's collectives run on the rank's device
    optimizer, scheduler = build_optimizer(model, cfg), None
    if cfg.optimizer.layerwise:  # the scheduler drives the wrapped optimizer, whose lr the hooks read
        from transformers import get_scheduler
        total = t.max_steps if t.max_steps > 0 else optimizer_steps(len(train_data), micro_batch, t.grad_accum,
                                                                     world_size(), t.epochs)
        scheduler = get_scheduler(t.lr_scheduler, optimizer.optimizer, int(t.warmup_ratio * total), total)
    phases = CudaPhases() if device == "cuda" else None
    trainer = PlannerTrainer(model=model, args=args,
                             train_dataset=train_data, eval_dataset=val_examples, data_collator=collator,
                             optimizers=(optimizer, scheduler), validation=validation,
                             system_prompt_gradient=t.system_prompt_gradient, phases=phases,
                             callbacks=[TrainingMonitor(out / METRICS_FILE, show_progress)]
                             + ([TrimHeapEachStep()] if device == "cpu" else [])
                             + ([OptimizerStepPhases(phases)] if phases else []))
    from transformers.trainer_callback import PrinterCallback
    trainer.remove_callback(PrinterCallback)  # TrainingMonitor logs instead
    checkpoint = latest_complete(out, log) if resume == "auto" else resume
    if resume == "auto" and checkpoint is None:
        log("resume=auto: no checkpoint yet, starting fresh")
    start_tokens = json.loads((Path(checkpoint) / "trainer_state.json").read_text()).get(
        "num_input_tokens_seen", 0) if checkpoint else 0
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    step_seconds = seconds - validation.seconds  # checkpoint saving included
    tokens = trainer.state.num_input_tokens_seen - start_tokens
    summary = {"train_seconds": round(seconds, 1), "steps": trainer.state.global_step,
               "train_loss": result.training_loss, "best_checkpoint": trainer.state.best_model_checkpoint,
               "best_success_rate": trainer.state.best_metric, "samples": stats.summary(),
               "tokens": tokens, "tokens_per_second": round(tokens / step_seconds) if step_seconds > 0 else None,
               "validation": {"runs": validation.runs, "seconds": round(validation.seconds, 1),
                              "share_of_train_time": round(validation.seconds / seconds, 3) if seconds else None},
               "optimizer_state_bytes": state_bytes(trainer.optimizer),
               "optimizer_fallbacks": fallback_counts(trainer.optimizer), "packing": packing_info, "fused_kernels": kernels,
               "compiled_layers": compiled_layers,
               "peak_memory_gb": phases.peak if phases else None,
               "peak_memory_gb_by_phase": {k: round(v, 2) for k, v in phases.gib.items()} if phases else None,
               "gpu_seconds_by_phase": {k: round(v, 2) for k, v in phases.seconds.items()} if phases else None}
    if trainer.is_world_process_zero():
        save_planner(trainer.model, tok, cfg, settings, catalog, out / MODEL_DIR, {"training": summary})
        if (out / METRICS_FILE).is_file():
            plot_loss(out / METRICS_FILE, out / "loss.png")
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
