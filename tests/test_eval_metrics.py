import json
import subprocess
import sys

from eval.dag import build_graph, plan_shape, strict_match, structure_match
from eval.metrics import aggregate, score_pair
from eval.plan import parse_plan

GOLD = '''1. get_email_address("Sid")
2. get_email_address("Lutfi")
3. create_calendar_event("Sync", "2024-06-03 14:00:00", "2024-06-03 15:00:00", "", ["$1", "$2"], "", "")
4. join()<END_OF_PLAN>'''


def both(gold, pred):
    g, p = parse_plan(gold), parse_plan(pred)
    return structure_match(g, p), strict_match(g, p)


def test_graph_has_join_node_and_edges():
    g = build_graph(parse_plan(GOLD))
    assert set(g.nodes) == {1, 2, 3, 4} and set(g.edges) == {(1, 3), (2, 3)}
    assert g.nodes[4]["tool"] == "join"


def test_reordered_independent_steps_succeed():
    pred = GOLD.replace('"Sid"', "TMP").replace('"Lutfi"', '"Sid"').replace("TMP", '"Lutfi"')
    assert both(GOLD, pred) == (True, True)


def test_changed_dependency_fails():
    pred = GOLD.replace('["$1", "$2"]', '["$1"]')
    assert both(GOLD, pred) == (False, False)
    chain = '1. get_email_address("Sid")\n2. get_email_address("$1")\n3. create_calendar_event("Sync", "a", "b", "", ["$2"], "", "")\n4. join()'
    assert both(GOLD, chain) == (False, False)


def test_strict_vs_structure():
    pred = GOLD.replace('"Sync"', '"Standup"')
    assert both(GOLD, pred) == (True, False)
    cased = GOLD.replace('"Sync"', '"  sync "').replace('["$1", "$2"]', '["$2", "$1"]').replace('""', "None", 1)
    assert both(GOLD, cased) == (True, True)  # casefold, strip, list as multiset, None == ""
    swapped = GOLD.replace('("Sid")', '("Lutfi")', 1)  # Lutfi twice, Sid never
    assert both(GOLD, swapped) == (True, False)


def test_fixed_quirks_brace_and_every_reference():
    gold = '1. get_phone_number("A")\n2. get_phone_number("B")\n3. send_sms(["$1", "$2"], "hi")\n4. join()'
    assert both(gold, gold.replace('["$1", "$2"]', '["${1}", "${2}"]')) == (True, True)
    one_string = gold.replace('["$1", "$2"]', '["$1 $2"]')
    assert structure_match(parse_plan(gold), parse_plan(one_string))  # both refs count, even in one string


def test_invalid_plans_fail_both():
    assert both(GOLD, GOLD.replace("get_email_address", "email_lookup")) == (False, False)
    assert both(GOLD, GOLD.replace('["$1", "$2"]', '["$1", "$5"]')) == (False, False)
    assert both(GOLD, "") == (False, False)


def test_extra_step_fails():
    pred = GOLD.replace("4. join()", '4. get_phone_number("Sid")\n5. join()')
    assert both(GOLD, pred) == (False, False)


def test_shapes():
    assert plan_shape(parse_plan("1. join()")) == "empty"
    assert plan_shape(parse_plan('1. get_phone_number("A")\n2. join()')) == "single"
    assert plan_shape(parse_plan('1. get_phone_number("A")\n2. get_phone_number("B")\n3. join()')) == "parallel"
    assert plan_shape(parse_plan('1. open_and_get_file_path("a")\n2. summarize_pdf("$1")\n3. join()')) == "chain"
    assert plan_shape(parse_plan(GOLD)) == "dag"


def test_finer_metrics():
    row = score_pair(GOLD, GOLD.replace('2. get_email_address("Lutfi")', '2. get_phone_number("Lutfi")'))
    assert row["tools"] == (2, 3, 3)
    assert row["edges"] == (1, 2, 2)
    metrics, breakdown = aggregate([row, score_pair(GOLD, GOLD)])
    assert metrics["success_rate"] == 0.5 and metrics["parse_rate"] == 1.0
    assert abs(metrics["tool_f1_micro"] - 5 / 6) < 1e-9
    assert breakdown["by_shape"]["dag"]["count"] == 2
    ged = score_pair(GOLD, GOLD, ged_timeout=1.0)
    assert ged["ged"] == 0.0 and not ged["ged_timed_out"]


def test_score_cli(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps({"id": i, "query": "q", "plan": GOLD}) for i in ("a", "b", "c")))
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"id": "a", "plan": GOLD}) + "\n" + json.dumps({"id": "b", "plan": "1. join()"})
                    + "\n" + json.dumps({"id": "x", "plan": GOLD}) + "\n")
    report_path = tmp_path / "r.json"
    cmd = [sys.executable, "-m", "tinyagent_ft", "score", "--gold", str(gold), "--predictions", str(pred),
           "--out", str(report_path), "--markdown", str(tmp_path / "r.md"), "--plot", str(tmp_path / "r.png")]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    report = json.loads(report_path.read_text())
    assert abs(report["metrics"]["success_rate"] - 1 / 3) < 1e-9
    assert report["missing_predictions"] == ["c"] and report["unknown_prediction_ids"] == ["x"]
    assert {"id", "success", "success_strict", "errors"} <= set(report["examples"][0])
    assert (tmp_path / "r.png").stat().st_size > 1000
    pred.write_text(json.dumps({"id": "a", "plan": GOLD}) + "\n{broken\n")
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0 and "pred.jsonl: line 2: not JSON" in res.stderr
