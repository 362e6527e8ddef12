import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eval.harness import run
from eval.plan import parse_plan
from tinyagent_ft.config import ConfigError, load_config
from tinyagent_ft.data import load_dataset
from tinyagent_ft.planner import Planner
from tinyagent_ft.train import optimizer_steps, run_training

CONFIGS = sorted(Path(__file__).parents[1].joinpath("configs").glob("*.yaml"))


def tiny(synth_dir, out, *extra):
    return load_config(CONFIGS[0].with_name("tiny.yaml"),
                       [f"data.path={synth_dir}", f"training.output_dir={out}", "data.max_length=2048",
                        "data.max_train=24", "eval.subset=2", "eval.max_new_tokens=24", *extra])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    load_config(path)


@pytest.mark.parametrize("name", ["adamw", "lora", "galore", "natural_galore"])
def test_a_runs_saved_config_loads_again(tmp_path, name):
    """What train writes as config.yaml leaves out the other optimizers' options, which a load would refuse."""
    import yaml
    cfg = load_config(CONFIGS[0].with_name("tiny.yaml"), [f"optimizer.name={name}"])
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    assert load_config(saved) == cfg
    assert ("history" in cfg.model_dump()["optimizer"]) == (name == "natural_galore")


@pytest.mark.parametrize("path", sorted(CONFIGS[0].parent.glob("retriever/*.yaml")), ids=lambda p: p.name)
def test_shipped_classifier_configs_validate(path):
    from retriever import ClassifierConfig
    assert load_config(path, [], ClassifierConfig).epochs > 0
    with pytest.raises(ConfigError, match=r"unknown key 'epoch'; valid keys: backbone, epochs"):
        load_config(path, ["epoch=2"], ClassifierConfig)


def test_unknown_key_lists_the_valid_ones(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optimizer:\n  name: adamw\n  lr_max: 1\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'optimizer.lr_max'; valid keys: .*optimizer.lr,"):
        load_config(f)
    with pytest.raises(ConfigError, match=r"optimizer.name: Input should be 'natural_galore', 'galore', 'adamw' or 'lora'"):
        load_config(None, ["optimizer.name=sgd"])
    with pytest.raises(ConfigError, match=r"training.batch_size: Input should be greater than or equal to 1"):
        load_config(None, ["training.batch_size=0"])
    with pytest.raises(ConfigError, match=r"optimizer: Value error, layerwise: used only by galore or natural_galore, not by adamw"):
        load_config(None, ["optimizer.name=adamw", "optimizer.layerwise=true"])
    with pytest.raises(ConfigError, match=r"lora_r: used only by lora, not by galore"):
        load_config(None, ["optimizer.name=galore", "optimizer.lora_r=8"])
    with pytest.raises(ConfigError, match=r"history, damping: used only by natural_galore, not by galore"):
        load_config(None, ["optimizer.name=galore", "optimizer.history=2", "optimizer.damping=1"])
    with pytest.raises(ConfigError, match=r"state_dtype: used only by galore or natural_galore, not by lora"):
        load_config(None, ["optimizer.name=lora", "optimizer.state_dtype=bfloat16"])
    with pytest.raises(ConfigError, match=r"unprojected_lr: used only by galore or natural_galore, not by adamw"):
        load_config(None, ["optimizer.name=adamw", "optimizer.unprojected_lr=1e-4"])
    with pytest.raises(ConfigError, match=r"optimizer.state_dtype: Input should be 'float32', 'bfloat16' or 'float8'"):
        load_config(None, ["optimizer.state_dtype=float16"])
    with pytest.raises(ConfigError, match=r"training.lr_scheduler: Input should be 'cosine', 'linear'"):
        load_config(None, ["training.lr_scheduler=cosin"])
    assert load_config(None, ["optimizer.name=adamw", "optimizer.layerwise=false"]).optimizer.name == "adamw"
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["optimizer.lr"])
    with pytest.raises(ConfigError, match="tools=classifier needs prompt.classifier"):
        load_config(None, ["prompt.tools=classifier"])
    for clash in ("training.packing=true", "model.gradient_checkpointing=true", "model.compile=true"):
        with pytest.raises(ConfigError, match="system_prompt_gradient=false reads the system prompt from a cache"):
            load_config(None, ["training.system_prompt_gradient=false", clash])
    assert load_config(None, ["optimizer.lr=3e-4", "prompt.negatives=0"]).optimizer.lr == 3e-4


def test_lean_memory_fills_in_what_is_not_set():
    lean = load_config(None, ["training.memory=lean"])
    assert (lean.model.dtype, lean.model.gradient_checkpointing, lean.optimizer.state_dtype,
            lean.optimizer.layerwise) == ("bfloat16", True, "float8", True)
    mine = load_config(None, ["training.memory=lean", "optimizer.layerwise=false", "optimizer.state_dtype=bfloat16"])
    assert (mine.optimizer.layerwise, mine.optimizer.state_dtype, mine.model.dtype) == (False, "bfloat16", "bfloat16")
    adamw = load_config(None, ["training.memory=lean", "optimizer.name=adamw"])  # its Trainer AdamW keeps fp32 weights
    assert (adamw.model.gradient_checkpointing, adamw.model.dtype, adamw.optimizer.layerwise) == (True, "auto", False)
    with pytest.raises(ConfigError, match="system_prompt_gradient=false reads the system prompt from a cache"):
        load_config(None, ["training.memory=lean", "training.system_prompt_gradient=false"])


def test_optimizer_options_reach_the_groups():
    """optimizer.side, optimizer.history and optimizer.unprojected_lr shape the groups the optimizer gets: the
    ablation cells (one- or two-sided, with or without the transform) and a separate rate for the weights the
    projection leaves out (embeddings, norms)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tinyagent_ft.train import build_optimizer
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))
    def groups(*overrides):
        projected, rest = build_optimizer(model, load_config(None, ["optimizer.rank=4", *overrides])).param_groups
        return projected, rest
    projected, rest = groups("optimizer.lr=3e-3", "optimizer.unprojected_lr=3e-4")
    assert (projected["lr"], rest["lr"], projected["side"], projected["history"]) == (3e-3, 3e-4, "two_sided", 4)
    assert any(p.shape == (64, 32) for p in rest["params"])  # the embedding takes the separate rate
    projected, rest = groups("optimizer.lr=3e-3", "optimizer.side=std", "optimizer.history=0")
    assert (projected["lr"], rest["lr"], projected["side"], projected["history"]) == (3e-3, 3e-3, "std", 0)
    projected, _ = groups("optimizer.name=galore", "optimizer.side=two_sided")
    assert (projected["side"], projected["history"]) == ("two_sided", 0)
    assert groups("optimizer.name=galore")[0]["side"] == "std"


def test_cli_config_errors_are_one_line(tmp_path):
    cmd = [sys.executable, "-m", "tinyagent_ft", "train", "-c", str(CONFIGS[0].with_name("tiny.yaml")), "training.epochz=1"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "unknown key 'training.epochz'" in res.stderr


def test_dry_run_estimates_optimizer_state(tmp_path):
    cmd = [sys.executable, "-m", "tinyagent_ft", "train", "-c", str(CONFIGS[0].with_name("tiny.yaml")), "--dry-run"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "trainable parameters: 3,2" in res.stdout and "optimizer state (natural_galore)" in res.stdout


@pytest.mark.slow
def test_train_checkpoint_resume_save_reload_plan_score(synth_dir, tmp_path):
    out = tmp_path / "run"
    first = run_training(tiny(synth_dir, out, "training.max_steps=2", "training.eval_steps=2"), show_progress=False)
    assert first["steps"] == 2 and (out / "checkpoint-2" / "optimizer.pt").is_file()
    resumed = run_training(tiny(synth_dir, out, "training.max_steps=4", "training.eval_steps=2"), resume="auto",
                           show_progress=False)
    assert resumed["steps"] == 4 and (out / "checkpoint-4").is_dir()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["step"] for r in rows if "loss" in r} >= {1, 2, 3, 4}  # the resumed run continued at step 3
    assert any("eval_success_rate" in r for r in rows) and (out / "loss.png").stat().st_size > 1000
    saved = json.loads((out / "model" / "planner.json").read_text())
    assert saved["prompt"] == {"num_examples": 0, "guidelines": True} and saved["optimizer"] == "natural_galore"

    planner = Planner.from_pretrained(out / "model")
    test = load_dataset(synth_dir, "test").examples[:3]
    results = planner.generate([e.query for e in test], [e.today for e in test], max_new_tokens=24, batch_size=2)
    assert len(results) == 3 and all(r.prompt_tokens > 100 and 0 < r.completion_tokens <= 24 for r in results)
    assert all(parse_plan(r.text).valid and r.constrained for r in results)
    assert all(r.tools == sorted(r.tools, key=list(r.tools).index) and len(r.tools) == 16 for r in results)
    report = run(planner, test, tmp_path / "eval", batch_size=2)
    assert len(report["examples"]) == 3 and (tmp_path / "eval" / "predictions.jsonl").is_file()


@pytest.mark.slow
def test_lean_memory_trains_and_resumes(synth_dir, tmp_path):
    """bf16 weights, float8 moments, layer-wise updates and checkpointing through the Trainer; the checkpoint
    keeps the moments in float8 and resumes (the Trainer loads optimizer.pt with weights_only)."""
    out = tmp_path / "lean"
    run_training(tiny(synth_dir, out, "training.memory=lean", "training.max_steps=2", "training.eval_steps=2"),
                 show_progress=False)
    state = torch.load(out / "checkpoint-2" / "optimizer.pt", weights_only=True)["state"]
    assert {v["exp_avg"].dtype for v in state.values()} == {torch.float8_e4m3fn}
    resumed = run_training(tiny(synth_dir, out, "training.memory=lean", "training.max_steps=3", "training.eval_steps=3"),
                           resume="auto", show_progress=False)
    assert resumed["steps"] == 3 and math.isfinite(resumed["train_loss"])
    from safetensors import safe_open
    with safe_open(str(out / "model" / "model.safetensors"), "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.bfloat16  # no fp32 master copy


@pytest.mark.parametrize("optimizer", ["natural_galore", "galore", "adamw", "lora"])
def test_each_optimizer_trains_a_step(synth_dir, tmp_path, optimizer):
    cfg = tiny(synth_dir, tmp_path, f"optimizer.name={optimizer}", "training.max_steps=1", "training.eval_steps=1",
               "data.max_train=8")
    from transformers import AutoModelForCausalLM

    from tinyagent_ft.models import resolve_model, shapes_only_model
    from tinyagent_ft.train import estimate_state_bytes
    summary = run_training(cfg, show_progress=False)
    assert summary["steps"] == 1
    assert Planner.from_pretrained(tmp_path / "model").generate(["Text Bob hi"], max_new_tokens=2, constrain=False)
    # measured optimizer state: AdamW holds two fp32 moments per weight (plus a step counter per tensor);
    # GaLore's projected moments are smaller, and the dry run's estimate from shapes alone is exact; LoRA's cover only
    # the adapters
    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"))
    n, tensors = sum(p.numel() for p in model.parameters()), len(list(model.parameters()))
    measured = summary["optimizer_state_bytes"]
    if optimizer == "adamw":
        assert 8 * n <= measured <= 8 * n + 8 * tensors
    else:
        assert 0 < measured < 8 * n
    if "galore" in optimizer:
        # (a checkpoint stored in bf16, as SmolLM2's, still trains with fp32 weights and fp32 projectors)
        assert measured == estimate_state_bytes(shapes_only_model("tiny-random").to(torch.bfloat16), cfg)
    expected = {"cholesky_fallbacks": 0, "nonfinite_skips": 0} if "galore" in optimizer else None
    assert summary["optimizer_fallbacks"] == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="peak memory per phase is read from CUDA's allocator")
def test_summary_reports_peak_memory_and_time_per_phase_on_cuda(synth_dir, tmp_path):
    # no fused kernels: liger-kernel patches the Llama classes for the whole process, CPU tests after it included
    summary = run_training(tiny(synth_dir, tmp_path, "training.max_steps=2", "training.eval_steps=2",
                                "model.fused_kernels=false"), show_progress=False)
    phases = summary["peak_memory_gb_by_phase"]
    assert set(phases) == {"forward", "backward", "optimizer_step", "validation"}
    assert all(v > 0 for v in phases.values()) and abs(summary["peak_memory_gb"] - max(phases.values())) < 0.01
    seconds = summary["gpu_seconds_by_phase"]  # GPU time of each phase, from start to the summary
    assert set(seconds) == set(phases) | {"other"} and all(seconds[k] > 0 for k in phases)
    assert sum(seconds.values()) <= summary["train_seconds"]


@pytest.mark.slow
def test_layerwise_mode_steps_with_the_trainer_and_reports_to_tensorboard(synth_dir, tmp_path):
    # 3 micro-batches per epoch, 2 per step: the Trainer ends a step at each epoch's last micro-batch too
    cfg = tiny(synth_dir, tmp_path, "optimizer.layerwise=true", "training.max_steps=-1", "training.epochs=2",
               "training.batch_size=1", "training.grad_accum=2", "training.packing=false", "training.eval_steps=4",
               "data.max_train=3", "training.report_to=[tensorboard]", "training.run_name=lw")
    assert run_training(cfg, show_progress=False)["steps"] == 4 == optimizer_steps(3, 1, 2, epochs=2)
    state = torch.load(tmp_path / "checkpoint-4" / "optimizer.pt", weights_only=True)["state"]
    assert {s["step"] for s in state.values()} == {4}  # every weight updated once per Trainer step
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(r["grad_norm"] > 0 for r in logged if "grad_norm" in r)  # the norm the hooks consumed
    assert list(tmp_path.rglob("events.out.tfevents*"))  # the Trainer's own TensorBoard integration wrote


def test_empty_training_split_is_named_not_max_length(synth_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.json").write_text("{}")
    (data / "validation.json").write_text((synth_dir / "validation.json").read_text())
    with pytest.raises(ConfigError, match=r"the 'train' split holds no usable example"):
        run_training(tiny(synth_dir, tmp_path / "run", f"data.path={data}"), show_progress=False)


@pytest.mark.parametrize("samples, micro, accum, world, epochs, steps", [
    (100, 1, 8, 1, 1, 13), (100, 1, 8, 2, 1, 7), (3, 1, 2, 1, 2, 4), (5, 4, 8, 1, 1, 1), (10, 2, 2, 1, 1.5, 5)])
def test_optimizer_steps_count_as_the_trainer_does(samples, micro, accum, world, epochs, steps):
    assert optimizer_steps(samples, micro, accum, world, epochs) == steps


@pytest.mark.parametrize("args, message", [
    (["train", "-c", CONFIGS[0].with_name("tiny.yaml"), "training.report_to=[tensorbored]", "--dry-run"],
     "training.report_to: Value error, unknown tracker(s) tensorbored; choose from "),
    (["train", "-c", CONFIGS[0].with_name("tiny.yaml"), "training.report_to=wandb", "--dry-run"],
     "training.report_to: Value error, tracker(s) wandb not installed (pip install wandb)"),
    (["retriever", "train", "--data", "nowhere", "--out", "x", "--report-to", "tensorboard", "--report-to", "wandb"],
     "--report-to: Value error, tracker(s) wandb not installed"),
])
def test_missing_tracker_is_one_line_before_training(args, message):
    import importlib.util
    if importlib.util.find_spec("wandb"):
        pytest.skip("wandb is installed here")
    res = subprocess.run([sys.executable, "-m", "tinyagent_ft", *map(str, args)], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and message in res.stderr, res.stderr


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(synth_dir, tmp_path):
    """Two processes (gloo) train as one does at the same effective batch: same steps, and a first loss of the
    same size (each rank's loss is over all ranks' plan tokens, scaled back as DDP averages gradients). The
    optimizer step is sharded: the checkpoint holds every weight's state, gathered from both ranks, and a
    two-process run resumes from it."""
    def train(out: Path, processes: int, grad_accum: int, *extra: str) -> list[float]:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m",
               "tinyagent_ft", "train", "-c", str(CONFIGS[0].with_name("tiny.yaml")), f"data.path={synth_dir}",
               f"training.output_dir={out}", "data.max_length=2048", "data.max_train=16", "training.max_steps=2",
               f"training.grad_accum={grad_accum}", "training.eval_steps=2", "eval.subset=2", "eval.max_new_tokens=24",
               *extra]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        return [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]

    two, one = train(tmp_path / "two", 2, 1)[0], train(tmp_path / "one", 1, 2)[0]
    assert abs(two - one) < 0.1 * one
    saved = torch.load(tmp_path / "two" / "checkpoint-2" / "optimizer.pt", weights_only=True)
    projected = saved["param_groups"][0]["params"]
    assert all(saved["state"][i]["step"] == 2 and "exp_avg" in saved["state"][i] for i in projected)
    train(tmp_path / "two", 2, 1, "training.max_steps=4", "--resume", "auto")
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["steps"] == 4


def test_one_epoch_counts_every_sample_token_once(synth_dir, tmp_path):
    """Tokens are counted on the device and summed when logged: an epoch's count is the samples' total."""
    summary = run_training(tiny(synth_dir, tmp_path, "data.max_train=12", "training.max_steps=-1", "training.epochs=1",
                                "training.logging_steps=5"),
                           show_progress=False)
    assert summary["tokens"] == summary["samples"]["tokens"] > 12 * 100


class Records(list):
    """Collects transformers' log records (its loggers do not propagate to pytest's caplog)."""

    def __enter__(self):
        import logging
        self.handler = logging.Handler()
        self.handler.emit = lambda record: self.append(record.getMessage())
        logging.getLogger("transformers").addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        import logging
        logging.getLogger("transformers").removeHandler(self.handler)


@pytest.mark.slow
def test_resume_skips_incomplete_checkpoints_and_keeps_them(synth_dir, tmp_path):
    out = tmp_path / "run"
    cfg = tiny(synth_dir, out, "data.max_train=16")  # checkpoints at steps 3 and 6
    with Records() as logs:
        assert run_training(cfg, show_progress=False)["steps"] == 6
    assert not [m for m in logs if "missing keys" in m]  # tied lm_head after loading the best checkpoint
    assert sorted(p.name for p in out.iterdir() if "checkpoint" in p.name) == ["checkpoint-3", "checkpoint-6"]

    optimizer = out / "checkpoint-6" / "optimizer.pt"
    half = optimizer.read_bytes()[:optimizer.stat().st_size // 2]
    optimizer.write_bytes(half)  # killed while saving
    lines = []
    assert run_training(cfg, resume="auto", show_progress=False, log=lines.append)["steps"] == 6
    assert [m for m in lines if "checkpoint" in m] == [
        f"resume=auto: skipping incomplete {out / 'checkpoint-6'} (optimizer.pt is truncated or corrupt); left in place"]
    assert (out / "superseded-checkpoint-6" / "optimizer.pt").read_bytes() == half  # kept, not deleted
    assert not (out / ".checkpoint-staging").exists()

    (out / "checkpoint-6" / "trainer_state.json").unlink()
    lines.clear()
    assert run_training(cfg, resume="auto", show_progress=False, log=lines.append)["steps"] == 6
    assert [m for m in lines if "checkpoint" in m] == [
        f"resume=auto: skipping incomplete {out / 'checkpoint-6'} (trainer_state.json is missing); left in place"]
    assert (out / "superseded-checkpoint-6-old" / "model.safetensors").is_file()
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and state["best_model_checkpoint"] == str(out / "checkpoint-3")


def test_tied_embeddings_stay_tied_when_the_best_checkpoint_loads(tmp_path):
    """The Trainer's best-model load reports the tied lm_head.weight as missing; the mixin re-ties quietly."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from tinyagent_ft.checkpoints import TiedWeights
    from tinyagent_ft.models import resolve_model

    class T(TiedWeights, Trainer):
        pass

    saved = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"))
    assert saved.config.tie_word_embeddings
    with torch.no_grad():
        saved.model.embed_tokens.weight.add_(1.0)
    saved.save_pretrained(tmp_path / "best")
    weights = load_file(tmp_path / "best" / "model.safetensors")
    assert "lm_head.weight" not in weights

    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"))
    trainer = T(model=model, args=TrainingArguments(str(tmp_path / "t"), report_to=[], use_cpu=True))
    with Records() as logs:
        trainer._issue_warnings_after_load(model.load_state_dict(weights, strict=False))
    assert not logs
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert torch.equal(model.lm_head.weight, weights["model.embed_tokens.weight"])
    del weights["model.norm.weight"]  # a truly missing key still warns
    with Records() as logs:
        trainer._issue_warnings_after_load(model.load_state_dict(weights, strict=False))
    assert any("missing keys" in m and "model.norm.weight" in m for m in logs)
