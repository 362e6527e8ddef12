"""The demo pipeline end to end on the tiny random model: every stage runs and reports its peak memory."""
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # a whole pipeline: `pytest -m 'not slow'` skips it


def test_demo_reports_time_and_peak_memory_per_stage(tmp_path):
    cmd = [sys.executable, "-m", "tinyagent_ft", "demo", "--out", str(tmp_path), "--n", "500", "--test-size", "2",
           "model.name=tiny-random", "data.max_train=8", "training.max_steps=2", "training.eval_steps=2",
           "eval.subset=2", "eval.max_new_tokens=24"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads((tmp_path / "demo.json").read_text())
    stages = ["data", "classifier", "index", "fine-tune", "evaluation"]
    assert list(result["timings_s"]) == stages and list(result["peak_memory_gib"]) == stages
    assert all(0.1 < gib < 4 for gib in result["peak_memory_gib"].values())
    assert "peak memory" in (tmp_path / "demo.md").read_text() and "Loading weights" not in res.stdout + res.stderr
