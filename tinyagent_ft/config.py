"""Typed fine-tuning config: YAML file + ``key=value`` overrides, validated before any model loads."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from .errors import InputError
from .grammar import MIN_PLAN_TOKENS
from .jsonio import decode
from .tracking import check_trackers


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelConfig(Section):
    name: str = Field("smollm2-135m", description="preset (tinyllama-1.1b, smollm2-135m, tiny-random), hub id or path")
    # auto: fp32 weights with bf16 autocast where the device has native bf16 (CUDA, AVX512-BF16/AMX CPUs);
    # bfloat16: bf16 weights too; float32: no bf16 anywhere
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    gradient_checkpointing: bool = False
    # auto: liger-kernel's fused linear cross-entropy, RMSNorm, SwiGLU and RoPE for Llama models on CUDA when
    # installed (`pip install 'tinyagent-ft[gpu]'`); true: required (an error when missing); false: off
    fused_kernels: bool | Literal["auto"] = "auto"
    compile: bool | Literal["auto"] = Field(
        False, description="torch.compile each decoder layer for training (one compilation shared by the layers; with "
                           "gradient checkpointing the recompute runs in the compiled backward); auto: on CUDA only")


class DataConfig(Section):
    path: str = Field("data/synth", description="TinyAgent file, project JSONL, split directory or hub id")
    train_split: str = "train"
    val_split: str | None = Field("validation", description="None: hold out val_holdout training examples instead")
    val_holdout: int = Field(500, ge=1, description="validation examples taken from the end of train when val_split is None")
    max_train: int | None = Field(None, ge=1, description="use the first N training examples")
    max_length: int = Field(2048, ge=64, description="tokens per sample (prompt + plan)")
    catalog: str | None = Field(None, description="tool catalog file (OpenAI function specs JSON or project YAML); "
                                                  "None: TinyAgent's 16 tools")


class PromptConfig(Section):
    tools: Literal["gold", "classifier", "all"] = "gold"  # training prompts: gold tools plus negatives
    negatives: int = Field(3, ge=0, le=15, description="irrelevant tools added to the gold tools in training")
    num_examples: int = Field(3, ge=0, le=12, description="retrieved in-context examples per prompt")
    classifier: str | None = Field(None, description="tool classifier folder (retriever train)")
    index: str | None = Field(None, description="example index folder (retriever index)")
    guidelines: bool = Field(True, description="include the guideline block (off shortens prompts for CPU demos)")

    @model_validator(mode="after")
    def _classifier_given(self):
        if self.tools == "classifier" and not self.classifier:
            raise ValueError("tools=classifier needs prompt.classifier (a folder from `retriever train`)")
        return self


# Options only some optimizers use, and values of them that do nothing (accepted whatever the optimizer).
OWNERS = {**dict.fromkeys(("history", "damping", "damping_mode"), ("natural_galore",)),
          **dict.fromkeys(("lora_r", "lora_alpha", "lora_dropout"), ("lora",)),
          **dict.fromkeys(("layerwise", "unprojected_lr", "side", "shard_step", "state_dtype"), ("galore", "natural_galore"))}
INERT = {"layerwise": False, "shard_step": True, "state_dtype": "float32"}


class OptimizerConfig(Section):
    name: Literal["natural_galore", "galore", "adamw", "lora"] = "natural_galore"
    lr: float = Field(7e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    rank: int = Field(128, ge=1, description="GaLore projection rank")
    update_proj_gap: int = Field(200, ge=1)
    svd_method: Literal["power", "svd", "randomized"] = Field(
        "power", description="subspace refresh: warm-started subspace iteration, staggered across weights "
                             "(default; same convergence as an exact SVD at ~1/20 of its time), exact 'svd' "
                             "of every weight at once, or randomized SVD")
    scale: float = Field(0.25, gt=0)
    unprojected_lr: float | None = Field(
        None, gt=0, description="learning rate of the weights the projection leaves out (embeddings, norms; galore / "
                                "natural_galore); default: optimizer.lr")
    side: Literal["std", "two_sided"] | None = Field(
        None, description="projected side: std (the smaller dimension; galore's default) or two_sided (natural_galore's)")
    history: int = Field(4, ge=0, description="natural-gradient history length (natural_galore; 0: no transform)")
    damping: float = Field(1e-3, gt=0)
    damping_mode: Literal["absolute", "relative"] = Field(
        "absolute", description="absolute: lambda = damping; relative: damping x the history's mean squared norm")
    layerwise: bool = Field(False, description="update inside backward (single process only)")
    shard_step: bool = Field(True, description="under DDP (torchrun), each rank steps, and keeps the state of, its share "
                                               "of the weights, then broadcasts them (galore / natural_galore)")
    state_dtype: Literal["float32", "bfloat16", "float8"] = Field(
        "float32", description="Adam moments of galore / natural_galore: bfloat16 (half the bytes) or float8 with a "
                               "scale per 256 values (a quarter), both stored with stochastic rounding (README: Memory)")
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)

    @model_validator(mode="after")
    def _no_ignored_options(self):
        """Refuse options the chosen optimizer would silently ignore (those set explicitly, to a value that does
        something)."""
        ignored = [k for k, names in OWNERS.items() if k in self.model_fields_set and self.name not in names
                   and (k not in INERT or getattr(self, k) != INERT[k])]
        if ignored:
            names = OWNERS[ignored[0]]
            keys = [k for k in ignored if OWNERS[k] == names]
            raise ValueError(f"{', '.join(keys)}: used only by {' or '.join(names)}, not by {self.name}")
        return self

    @model_serializer(mode="wrap")
    def _owned_options_only(self, handler):
        """A dump (a run's config.yaml) leaves out the options of the other optimizers, so that it loads again."""
        return {k: v for k, v in handler(self).items() if self.name in OWNERS.get(k, (self.name,))}


class TrainingConfig(Section):
    output_dir: str = "runs/planner"
    epochs: float = Field(3.0, gt=0)
    max_steps: int = Field(-1, description="stop after N optimizer steps (-1: run the epochs)")
    batch_size: int = Field(4, ge=1, description="per device; with packing, documents per micro-batch on average")
    # auto: on for CUDA, off on CPUs (see README: Fine-tuning)
    packing: bool | Literal["auto"] = Field("auto", description="padding-free packing of whole documents")
    pack_tokens: int | None = Field(None, ge=64, description="tokens per packed micro-batch "
                                                             "(default: batch_size x mean sample length)")
    grad_accum: int = Field(8, ge=1)
    system_prompt_gradient: bool = Field(True, description="false: the system prompt (tools, instructions, examples) "
                                                           "runs without autograd, backward covers the query and plan "
                                                           "(an approximation; padded batches, no gradient checkpointing)")
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts",
                          "polynomial", "inverse_sqrt"] = "cosine"
    max_grad_norm: float = Field(1.0, ge=0)
    logging_steps: int = Field(10, ge=1)
    eval_steps: int | None = Field(None, ge=1, description="evaluate every N steps (default: every epoch)")
    save_total_limit: int = Field(2, ge=1)
    seed: int = 0
    report_to: list[str] = Field([], description="Trainer trackers, e.g. [tensorboard] or [wandb]; [] keeps runs offline")
    run_name: str | None = Field(None, description="run name shown by the trackers (default: output_dir)")
    memory: Literal["default", "lean"] = Field(
        "default", description="lean: gradient checkpointing and compiled layers (CUDA); for galore / "
                               "natural_galore also bf16 weights updated with stochastic rounding, float8 Adam "
                               "moments and layer-wise updates (one process); settings given explicitly win "
                               "(README: Memory)")

    _trackers = field_validator("report_to", mode="before")(check_trackers)


class EvalConfig(Section):
    subset: int = Field(200, ge=1, description="validation queries generated at each evaluation")
    batch_size: int = Field(16, ge=1)
    max_new_tokens: int = Field(256, ge=MIN_PLAN_TOKENS)
    constrain: bool = Field(True, description="validation plans decoded under the plan grammar")
    num_examples: int | None = Field(None, ge=0, le=12, description="in-context examples when planning: validation "
                                     "and the saved planner's default (None: prompt.num_examples, as in training)")


class TrainConfig(Section):
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    prompt: PromptConfig = PromptConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    training: TrainingConfig = TrainingConfig()
    eval: EvalConfig = EvalConfig()

    @property
    def plan_examples(self) -> int:
        """In-context examples when planning (validation, the saved planner, the demo's evaluation)."""
        return self.prompt.num_examples if self.eval.num_examples is None else self.eval.num_examples

    @model_validator(mode="after")
    def _lean_memory(self):
        """Fill in what ``training.memory=lean`` implies wherever the config does not say otherwise."""
        if self.training.memory != "lean":
            return self
        lean = [(self.model, "gradient_checkpointing", True), (self.model, "compile", "auto")]
        if self.optimizer.name in ("galore", "natural_galore"):  # the Trainer's AdamW would round bf16 weights
            lean += [(self.model, "dtype", "bfloat16"), (self.optimizer, "state_dtype", "float8"),
                     (self.optimizer, "layerwise", True)]
        for section, key, value in lean:
            if key not in section.model_fields_set:
                setattr(section, key, value)
        return self

    @model_validator(mode="after")
    def _pack_fits_a_sample(self):
        t = self.training
        if t.pack_tokens is not None and t.pack_tokens < self.data.max_length:
            raise ValueError(f"training.pack_tokens ({t.pack_tokens}) must be at least data.max_length "
                             f"({self.data.max_length}) so that every sample fits in a micro-batch")
        if not t.system_prompt_gradient and (t.packing is True or self.model.gradient_checkpointing
                                             or self.model.compile is not False):
            raise ValueError("training.system_prompt_gradient=false reads the system prompt from a cache: it needs "
                             "padded batches (training.packing=false), model.gradient_checkpointing=false and "
                             "model.compile=false")
        return self


class ConfigError(InputError):
    """A config problem, worded as one line naming the file and key."""


def _valid_keys(model: type[BaseModel] = TrainConfig, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys += _valid_keys(sub, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _set(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = tree.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {p} is not a section")
        tree = node
    tree[leaf] = value


def _yaml(text: str):
    """``yaml.safe_load`` raising one-line ValueErrors, deep nesting included."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ValueError(f"{where}not valid YAML ({problem})") from None
    except RecursionError:
        raise ValueError("YAML nested too deeply to read") from None


def load_config(path: str | Path | None = None, overrides: list[str] = (), model: type[BaseModel] = TrainConfig):
    """Read YAML (optional), apply ``a.b=value`` overrides (values parsed as YAML), validate as ``model``
    (the fine-tune's ``TrainConfig`` by default; the tool classifier's ``ClassifierConfig`` too)."""
    where = str(path) if path else "defaults"
    tree: dict = {}
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            tree = _yaml(decode(path.read_bytes())) or {}
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: expected a mapping of sections")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. optimizer.lr=1e-4")
        try:
            value = _yaml(raw) if raw.strip() else None
        except ValueError as exc:
            raise ConfigError(f"override {key}: {exc}") from None
        _set(tree, key.strip(), value)
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(map(str, err["loc"]))
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"{where}: unknown key {key!r}; valid keys: {', '.join(_valid_keys(model))}") from None
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{where}: {key}: {err['msg']} (got {err.get('input')!r}){more}") from None
