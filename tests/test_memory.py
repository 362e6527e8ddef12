"""Host memory: the plan-only loss is exact, and per-stage peaks are measured."""
import contextlib
import time

import torch
from transformers import Trainer

from tinyagent_ft.data import load_dataset
from tinyagent_ft.memory import PeakRSS, PlanOnlyLoss, release


def _tiny_batch(synth_dir, n: int) -> tuple[str, dict]:
    """The tiny-random model's path and a padded training batch of ``n`` synthetic samples."""
    from transformers import AutoTokenizer, DataCollatorForSeq2Seq

    from tinyagent_ft.models import resolve_model
    from tinyagent_ft.prompt import PromptBuilder, PromptSettings
    from tinyagent_ft.samples import build_samples
    path = resolve_model("tiny-random")
    tok = AutoTokenizer.from_pretrained(path)
    examples = load_dataset(synth_dir, "train").examples[:n]
    samples, _ = build_samples(examples, tok, PromptBuilder(PromptSettings(num_examples=0)),
                               [sorted(e.tools) for e in examples], 2048)
    return path, DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)(samples)


class Lean(PlanOnlyLoss, Trainer):
    """The Trainer with the plan-only loss, as the fine-tune uses it."""


@contextlib.contextmanager
def _one_process_group():
    """A gloo group of one process, so that a model can be wrapped in DDP as torchrun wraps it."""
    import socket

    import torch.distributed as dist
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_plan_only_loss_matches_the_stock_loss_and_gradients(synth_dir, tmp_path):
    """Logits for labelled positions only (decoder and head in turn, or under DDP the positions any row needs
    as ``logits_to_keep``): same loss and gradients as the full-vocabulary path."""
    from transformers import AutoModelForCausalLM, TrainingArguments

    path, batch = _tiny_batch(synth_dir, 3)
    assert (batch["labels"] == -100).float().mean() > 0.5  # most positions are prompt or padding
    n = (batch["labels"][:, 1:] != -100).sum()
    results = []
    for cls, way in ((Trainer, None), (Lean, None), (Lean, "checkpointing"), (Lean, "ddp")):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        if way == "checkpointing":  # as configs/demo.yaml trains
            model.activation_checkpointing_enable()
        projected = []  # positions the head projects onto the vocabulary
        model.lm_head.register_forward_hook(lambda m, i, o: projected.append(o.shape[:-1].numel()))
        trainer = cls(model=model, args=TrainingArguments(str(tmp_path), report_to=[], use_cpu=True))
        with _one_process_group() if way == "ddp" else contextlib.nullcontext():
            wrapped = torch.nn.parallel.DistributedDataParallel(model) if way == "ddp" else model
            loss = trainer.compute_loss(wrapped, dict(batch), num_items_in_batch=n)
            loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
        assert (projected[0] == batch["input_ids"].numel()) == (cls is Trainer)
    (stock, stock_grads), *lean = results
    assert stock > 1
    for loss, grads in lean:
        assert torch.allclose(stock, loss, rtol=1e-5)
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(stock_grads, grads))


def test_system_prompt_without_gradient_keeps_the_loss(synth_dir, tmp_path):
    """system_prompt_gradient=False: the system prompt comes from a no-grad cache and backward starts at
    the user's turn; the loss is the same number, every weight still gets a gradient, a different one
    (the part through the system prompt's activations is gone), and it still points downhill."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, TrainingArguments

    from tinyagent_ft.models import resolve_model
    from tinyagent_ft.prompt import PromptBuilder, PromptSettings
    from tinyagent_ft.samples import build_samples
    path = resolve_model("tiny-random")
    tok = AutoTokenizer.from_pretrained(path)
    examples = load_dataset(synth_dir, "train").examples[:3]
    samples, _ = build_samples(examples, tok, PromptBuilder(PromptSettings(num_examples=1)),
                               [sorted(e.tools) for e in examples], 2048, mark_query=True)
    for s in samples:  # the user's turn starts with its "Question:" line, after the system prompt
        assert tok.decode(s["input_ids"][s["query_start"]:]).lstrip().startswith("Question: ")
        assert s["labels"][s["query_start"]] == -100 and 0 < s["query_start"]
    batch = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)(samples)
    n = (batch["labels"][:, 1:] != -100).sum()
    results = []
    for system_prompt_gradient in (True, False):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        trainer = Lean(model=model, args=TrainingArguments(str(tmp_path), report_to=[], use_cpu=True))
        trainer.system_prompt_gradient = system_prompt_gradient
        loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=n)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (full, full_grads), (cached, cached_grads) = results
    assert torch.allclose(full, cached, rtol=1e-5)
    assert all(g.abs().sum() > 0 for g in cached_grads)
    assert not all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(full_grads, cached_grads))
    flat = lambda gs: torch.cat([g.flatten() for g in gs])  # noqa: E731
    assert torch.dot(flat(full_grads), flat(cached_grads)) > 0


def test_plan_only_loss_runs_under_the_trainers_mixed_precision(synth_dir, tmp_path):
    """The Trainer's bf16 autocast wraps model.forward, which the plan-only path skips: the decoder must
    still compute in bf16 (fp32 on CPU is 2-3x slower; on CUDA bf16 attention kernels met fp32 weights)."""
    from transformers import AutoModelForCausalLM, TrainingArguments

    path, batch = _tiny_batch(synth_dir, 2)
    losses = {}
    for bf16 in (False, True):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        seen = []
        model.model.layers[0].mlp.down_proj.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        trainer = Lean(model=model, args=TrainingArguments(str(tmp_path), report_to=[], use_cpu=True, bf16=bf16))
        losses[bf16] = float(trainer.compute_loss(model, dict(batch)))
        assert seen == [torch.bfloat16 if bf16 else torch.float32]
    assert abs(losses[True] - losses[False]) < 0.05 * losses[False]


def test_peak_rss_sees_a_short_allocation_and_resets():
    peak = PeakRSS(interval_s=0.01)
    before = peak.take()
    block = torch.ones(256 * 2**20 // 4)  # 256 MiB, touched
    time.sleep(0.2)
    del block
    release()
    assert peak.take() >= before + 0.2
    time.sleep(0.1)
    assert peak.take() < before + 0.2  # the next period starts from the current size
