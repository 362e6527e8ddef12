"""A team's own tools, end to end through the CLI: the smart-home catalog and hand-written data in
examples/ go through validation, the tool classifier, the example index, a fine-tune, evaluation,
scoring and a real server process, with no TinyAgent tool anywhere."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import serve_process

from eval.plan import parse_plan
from tinyagent_ft.catalog_files import load_catalog

pytestmark = pytest.mark.slow  # a whole pipeline: `pytest -m 'not slow'` skips it

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / "examples" / "smart-home"
CATALOG = HOME / "catalog.yaml"
DATA = HOME / "data"


def cli(*args) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "tinyagent_ft", *map(str, args)], capture_output=True, text=True,
                         cwd=ROOT, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Classifier, index and a two-step fine-tune of the tiny-random model on the smart-home data."""
    out = tmp_path_factory.mktemp("home")
    cli("retriever", "train", "--data", DATA, "--out", out / "clf", "--config", ROOT / "configs/retriever/tiny-deberta.yaml",
        "--catalog", CATALOG)
    cli("retriever", "index", "--data", DATA, "--out", out / "index", "--catalog", CATALOG)
    cli("train", "-c", ROOT / "configs" / "tiny.yaml", "--catalog", CATALOG, f"data.path={DATA}",
        f"prompt.classifier={out / 'clf'}", f"prompt.index={out / 'index'}", f"training.output_dir={out / 'run'}",
        "training.max_steps=2", "training.eval_steps=2", "eval.subset=4", "eval.max_new_tokens=48",
        "eval.num_examples=2")  # training prompts show 1 example (tiny.yaml), planning 2
    return out


def test_data_validates_against_its_catalog_only():
    assert "46 records, all valid" in cli("data", "validate", DATA, "--catalog", CATALOG).stdout
    res = subprocess.run([sys.executable, "-m", "tinyagent_ft", "data", "validate", str(DATA)],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2 and "unknown_tool" in res.stderr and res.stderr.count("\n") == 1


def test_classifier_and_planner_folders_carry_the_catalog(pipeline):
    catalog = load_catalog(CATALOG)
    saved = json.loads((pipeline / "clf" / "retriever.json").read_text())
    assert saved["labels"] == list(catalog.names)
    assert saved["train"]["backbone"] == "tiny-deberta" and saved["train"]["epochs"] == 1  # from the YAML
    assert load_catalog(pipeline / "clf") == catalog == load_catalog(pipeline / "run" / "model")
    assert json.loads((pipeline / "run" / "model" / "planner.json").read_text())["prompt"]["num_examples"] == 2
    report = pipeline / "clf-eval.json"
    cli("retriever", "eval", "--model", pipeline / "clf", "--data", DATA, "--split", "test", "--out", report)
    assert set(json.loads(report.read_text())["per_tool"]) <= set(catalog.names)


def test_eval_and_score_use_the_folder_catalog(pipeline):
    catalog = load_catalog(CATALOG)
    cli("eval", "--model", pipeline / "run" / "model", "--data", DATA, "--split", "test", "--out", pipeline / "eval",
        "--max-new-tokens", 64)
    report = json.loads((pipeline / "eval" / "report.json").read_text())
    assert report["metrics"]["count"] == 10 and report["metrics"]["parse_rate"] == 1.0  # constrained decoding
    for line in (pipeline / "eval" / "predictions.jsonl").read_text().splitlines():
        plan = parse_plan(json.loads(line)["plan"], catalog)
        assert plan.valid and set(plan.tools) <= set(catalog.names)
    cli("score", "--gold", DATA, "--predictions", pipeline / "eval" / "predictions.jsonl", "--catalog", CATALOG,
        "--out", pipeline / "score.json")
    scored = json.loads((pipeline / "score.json").read_text())["metrics"]
    keys = ("success_rate", "success_rate_strict", "parse_rate", "tool_f1_micro", "arg_f1")
    assert {k: scored[k] for k in keys} == {k: report["metrics"][k] for k in keys}


def test_server_plans_with_the_folder_catalog(pipeline):
    import httpx2 as httpx
    catalog = load_catalog(CATALOG)
    for url in serve_process(str(pipeline / "run" / "model")):
        tools = httpx.get(url + "/v1/tools").json()
        assert [t["name"] for t in tools] == list(catalog.names)
        kind = next(a for a in tools[0]["args"] if a["name"] == "kind")
        assert kind["enum"][:2] == ["light", "thermostat"] and tools[0]["app"] == "devices"
        body = httpx.post(url + "/v1/plan", json={"query": "Lock the front door.", "max_new_tokens": 64}, timeout=60).json()
        assert body["valid"] and body["constrained"] and set(body["selected_tools"]) <= set(catalog.names)
        shown = httpx.post(url + "/v1/plan", json={"query": "Lock the front door.", "tools": ["find_device", "lock_door"],
                                                   "max_new_tokens": 64}, timeout=60).json()
        assert shown["selected_tools"] == ["find_device", "lock_door"]
        assert {s["tool"] for s in shown["steps"]} <= {"find_device", "lock_door", "join"}
        r = httpx.post(url + "/v1/plan", json={"query": "Text Bob", "tools": ["send_sms"]})
        assert r.status_code == 422 and "unknown tool(s) 'send_sms'" in r.json()["error"]["message"]
        chat = httpx.post(url + "/v1/chat/completions", timeout=60, json={
            "messages": [{"role": "user", "content": "What is the weather in Oslo?"}], "max_tokens": 64,
            "tools": [{"type": "function", "function": {"name": "get_weather"}}]}).json()
        calls = chat["choices"][0]["message"].get("tool_calls") or []
        assert all(c["function"]["name"] == "get_weather" for c in calls) and chat["plan"]["valid"]
