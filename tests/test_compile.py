"""``model.compile``: each decoder layer compiled on its own (inductor, on this CPU), gradient checkpointing inside."""
import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tinyagent_ft.config import ConfigError, load_config
from tinyagent_ft.kernels import compile_layers, compile_mode
from tinyagent_ft.train import run_training

from test_train import tiny


def test_compile_setting():
    assert load_config(None, ["training.memory=lean"]).model.compile == "auto"
    assert load_config(None, ["training.memory=lean", "model.compile=false"]).model.compile is False
    assert load_config(None, []).model.compile is False
    from torch.utils._triton import has_triton
    assert compile_mode("auto", "cuda") == has_triton()  # CUDA kernels are Triton's
    assert (compile_mode("auto", "cpu"), compile_mode(True, "cpu")) == (False, True)
    with pytest.raises(ConfigError, match="has no decoder layers to compile"):
        compile_layers(torch.nn.Linear(2, 2))


def test_compile_without_a_compiler_is_a_one_line_error(monkeypatch):
    import shutil
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"^model.compile=true needs a C\+\+ compiler on a CPU .*; use auto or false$"):
        compile_mode(True, "cpu")
    assert compile_mode(False, "cpu") is False


@pytest.mark.slow
def test_compiled_checkpointed_layers_match_eager():
    """Loss and gradients as in eager mode, with checkpointing's recompute inside the compiled backward; the layers
    share one compilation (a second sequence length compiles once more, then shapes are dynamic)."""
    torch.manual_seed(0)
    eager = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                                         num_attention_heads=4, num_key_value_heads=2))
    compiled = copy.deepcopy(eager)
    compiled.activation_checkpointing_enable()
    assert compile_layers(compiled) == 3
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()  # graphs other tests compiled in this process
    for length in (24, 40):
        ids = torch.randint(0, 256, (2, length))
        losses = [m(input_ids=ids, labels=ids).loss for m in (eager, compiled)]
        for loss in losses:
            loss.backward()
        assert torch.allclose(*losses, atol=1e-5)
        for a, b in zip(eager.parameters(), compiled.parameters()):
            assert torch.allclose(a.grad, b.grad, atol=1e-5), a.shape
            a.grad = b.grad = None
    frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert frames <= 2, f"{frames} graphs compiled for 3 layers and 2 lengths"


@pytest.mark.slow
def test_compiled_layers_train_and_validate(synth_dir, tmp_path):
    """Through the Trainer: the layers compiled for training, validation generates eagerly."""
    summary = run_training(tiny(synth_dir, tmp_path, "model.compile=true", "training.max_steps=2",
                                "training.eval_steps=2", "data.max_train=8"), show_progress=False)
    assert summary["compiled_layers"] == 2 and summary["steps"] == 2 and summary["validation"]["runs"] == 1
