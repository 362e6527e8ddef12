"""Experiment tracking through the HF Trainer's own integrations (TensorBoard, W&B, MLflow, trackio, ...).
Names are checked when the config is validated, so a tracker that is not installed stops the run with
one line before any model loads; the default, none, keeps training offline."""
from __future__ import annotations


def check_trackers(names: list[str] | str | None) -> list[str]:
    """The tracker names as a list; ValueError for an unknown or uninstalled one."""
    names = [names] if isinstance(names, str) else list(names or [])
    if names in (["none"], []):
        return []
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK, get_available_reporting_integrations
    if unknown := [n for n in names if n not in INTEGRATION_TO_CALLBACK]:
        raise ValueError(f"unknown tracker(s) {', '.join(unknown)}; choose from {', '.join(sorted(INTEGRATION_TO_CALLBACK))}")
    available = get_available_reporting_integrations()
    if missing := [n for n in names if n not in available]:
        raise ValueError(f"tracker(s) {', '.join(missing)} not installed (pip install {' '.join(missing)})")
    return names
