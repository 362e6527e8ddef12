import json

from eval.harness import run
from tinyagent_ft.data import load_dataset


class LookupPlanner:
    """Answers from a table of known plans, and join() for anything else: checks the harness wiring."""

    def __init__(self, table):
        self.table, self.seen_dates = table, []

    def plan(self, queries, dates=None):
        self.seen_dates += list(dates or [])
        return [self.table.get(q, "1. join()<END_OF_PLAN>") for q in queries]


def test_harness_writes_predictions_and_report(synth_dir, tmp_path):
    examples = load_dataset(synth_dir, "test").examples
    known = {e.query: e.plan for e in examples[:30]}
    planner = LookupPlanner(known)
    report = run(planner, examples, tmp_path, batch_size=7)
    lines = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    planned = sorted(examples, key=lambda e: len(e.query))  # shortest queries first, ties in dataset order
    assert [x["id"] for x in lines] == [e.id for e in planned]
    expected = sum(e.query in known or not e.tools for e in examples) / len(examples)
    assert abs(report["metrics"]["success_rate"] - expected) < 1e-9
    assert planner.seen_dates == [e.date for e in planned]
    assert [x["id"] for x in report["examples"]] == [e.id for e in examples]
    for name in ("report.json", "report.md", "report.png"):
        assert (tmp_path / name).stat().st_size > 0
