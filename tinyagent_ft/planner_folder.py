"""The planner folder: what ``tinyagent-ft train`` writes and ``Planner.from_pretrained`` reads.

Weights and tokenizer (``save_pretrained``), ``planner.json`` (prompt settings and how the model was
trained), ``catalog.json`` (its tools) and, when training used them, copies of the tool classifier
(``tool_classifier/``) and the example index (``example_index/``), so one path rebuilds prompts exactly
as training did. A preset name or plain checkpoint has none of these: default settings, TinyAgent's tools.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .catalog import Catalog
from .catalog_files import save_catalog
from .jsonio import read_json
from .prompt import PromptSettings

SETTINGS_FILE, CLASSIFIER_DIR, INDEX_DIR = "planner.json", "tool_classifier", "example_index"


def save_planner_folder(model, tokenizer, settings: PromptSettings, catalog: Catalog, out: Path, info: dict,
                        classifier: str | Path | None = None, index: str | Path | None = None) -> None:
    """Write the folder; ``info`` (base model, optimizer, training summary) goes into ``planner.json``."""
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    save_catalog(catalog, out)
    (out / SETTINGS_FILE).write_text(json.dumps({"prompt": settings.model_dump(), **info}, indent=2))
    for src, name in ((classifier, CLASSIFIER_DIR), (index, INDEX_DIR)):
        if src:
            shutil.copytree(src, out / name, dirs_exist_ok=True)


def read_prompt_settings(path: Path) -> PromptSettings:
    """The folder's prompt settings; the defaults for a folder without ``planner.json``."""
    if (path / SETTINGS_FILE).is_file():
        return PromptSettings.model_validate(read_json(path / SETTINGS_FILE)["prompt"])
    return PromptSettings()


def folder_retrievers(path: Path) -> tuple[Path | None, Path | None]:
    """(classifier folder, index folder) the planner folder carries, each None when absent."""
    return tuple(path / name if (path / name).is_dir() else None for name in (CLASSIFIER_DIR, INDEX_DIR))
