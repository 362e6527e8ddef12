"""What a user sees in a log (no terminal): the project's plain progress lines, no third-party bars,
no raw Trainer dictionaries, no tied-weights scare."""
import subprocess
import sys
from pathlib import Path

from tinyagent_ft.console import LogProgress

TINY = Path(__file__).parents[1] / "configs" / "tiny.yaml"
NOISE = ("Loading weights", "Writing model shards", "it/s]", "\r", "{'loss'", "missing keys", "Traceback")


def cli(*args):
    res = subprocess.run([sys.executable, "-m", "tinyagent_ft", *map(str, args)], capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout + res.stderr


def test_classifier_training_log_is_plain_lines(synth_dir, tmp_path):
    out = cli("retriever", "train", "--data", synth_dir, "--out", tmp_path, "--backbone", "tiny-deberta",
              "--max-examples", "64", "--batch-size", "16", "--epochs", "1", "--eval-split", "none")
    assert not [n for n in NOISE if n in out], out
    assert "classifier: 4/4 (100%)" in out and "loss " in out


def test_fine_tune_log_is_plain_lines(synth_dir, tmp_path):
    out = cli("train", "-c", TINY, f"data.path={synth_dir}", f"training.output_dir={tmp_path}", "data.max_length=2048",
              "data.max_train=8", "training.max_steps=2", "training.eval_steps=1", "eval.subset=2", "eval.max_new_tokens=24")
    assert not [n for n in NOISE if n in out], out
    assert "prompts: 8/8 (100%)" in out and "train: 2/2 (100%)" in out and "step 2: validation success" in out


def test_log_progress_prints_per_interval_and_at_the_end(capsys):
    with LogProgress(interval=3600) as bar:
        task = bar.add_task("embed", total=10)
        for _ in range(4):
            bar.advance(task)
        bar.add_task("plan", total=5, info="x")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["embed", "plan"]  # nothing per step, one line each at the end
    assert lines[0].startswith("embed: 4/10 (40%) ") and "eta " in lines[0] and lines[1].endswith(", x")
    with LogProgress(interval=0) as bar:
        task = bar.add_task("train", total=2)
        bar.advance(task), bar.advance(task)
    assert [line.split(" (")[0] for line in capsys.readouterr().out.splitlines()] == ["train: 1/2", "train: 2/2"]
