"""Corrupt files through the real CLI: one line naming the file (and line), exit 2, no traceback."""
import json
import subprocess
import sys

import pytest

GOOD = json.dumps({"id": "q1", "query": "Find Sid's email", "plan": '1. get_email_address("Sid")\n2. join()'})
DEEP = "[" * 100_000
BAD_UTF8 = b'{"id": "q2", "query": "caf\xe9", "plan": "1. join()"}'


def cli(*args):
    res = subprocess.run([sys.executable, "-m", "tinyagent_ft", *map(str, args)], capture_output=True, text=True)
    return res.returncode, res.stderr.strip()


def one_line_error(rc, err, *parts):
    assert rc == 2 and "Traceback" not in err, err
    assert err.count("\n") == 0 and err.startswith("error: "), err
    for p in parts:
        assert p in err, err


@pytest.mark.parametrize("name, content, expected", [
    ("bad.jsonl", GOOD.encode() + b"\n" + BAD_UTF8 + b"\n", ["bad.jsonl: line 2", "not UTF-8 text (byte 0xe9"]),
    ("deep.jsonl", GOOD.encode() + b"\n\n" + DEEP.encode() + b"\n", ["deep.jsonl: line 3", "nested too deeply"]),
    ("deep.json", DEEP.encode(), ["deep.json: ", "nested too deeply"]),
    ("bad.json", b'{"a":\n {"input": "caf\xe9"}}', ["bad.json: line 2: not UTF-8 text (byte 0xe9 at column 16)"]),
    ("long.jsonl", b'{"id": ' + b"9" * 100_000 + b"}\n", ["long.jsonl: line 1", "not JSON"]),
])
def test_data_validate_names_file_and_line(tmp_path, name, content, expected):
    (tmp_path / name).write_bytes(content)
    one_line_error(*cli("data", "validate", tmp_path / name), *expected)


def test_lenient_load_skips_and_counts_bad_lines(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(GOOD.encode() + b"\n" + BAD_UTF8 + b"\n" + DEEP.encode() + b"\n")
    rc, err = cli("data", "show", path, "--n", "1")
    assert rc == 0 and "Traceback" not in err
    assert "skipped 2 of 3 records" in err and "not UTF-8 text" in err and "nested too deeply" in err


@pytest.mark.parametrize("content, expected", [
    (b'{"id": "q1", "plan": "1. join()"}\n' + BAD_UTF8 + b"\n", "preds.jsonl: line 2: not UTF-8 text"),
    (DEEP.encode(), "preds.jsonl: line 1: JSON nested too deeply"),
])
def test_score_predictions(tmp_path, content, expected):
    (tmp_path / "gold.jsonl").write_text(GOOD + "\n")
    (tmp_path / "preds.jsonl").write_bytes(content)
    one_line_error(*cli("score", "--gold", tmp_path / "gold.jsonl", "--predictions", tmp_path / "preds.jsonl"), expected)


@pytest.mark.parametrize("content, expected", [
    (b'{"query": "text Bob", "tools": ["send_sms"]}\n{"query": "\xff", "tools": []}\n', "sel.jsonl:2: not UTF-8 text"),
    (b'{"query": "text Bob", "tools": ["send_sms"]}\n' + DEEP.encode() + b"\n", "sel.jsonl:2: JSON nested too deeply"),
])
def test_retriever_eval_query_file(tmp_path, content, expected):
    (tmp_path / "sel.jsonl").write_bytes(content)  # read before the model loads: no classifier needed
    one_line_error(*cli("retriever", "eval", "--model", tmp_path, "--data", tmp_path / "sel.jsonl"), expected)


@pytest.mark.parametrize("content, expected", [
    (b"model:\n  name: caf\xe9\n", "c.yaml: line 2: not UTF-8 text (byte 0xe9 at column 12)"),
    (DEEP.encode(), "c.yaml: YAML nested too deeply"),
    (b"model: [1,\n  name", "c.yaml: line 2, column 7: not valid YAML"),
])
def test_config_file(tmp_path, content, expected):
    (tmp_path / "c.yaml").write_bytes(content)
    one_line_error(*cli("train", "-c", tmp_path / "c.yaml", "--dry-run"), expected)


def test_config_override_nested_too_deeply():
    one_line_error(*cli("train", f"model.name={DEEP}", "--dry-run"), "override model.name: YAML nested too deeply")


def test_corrupt_example_index(tmp_path):
    (tmp_path / "index.json").write_text(json.dumps({"encoder": "x", "count": 1}))
    (tmp_path / "records.jsonl").write_bytes(b'{"id": "a"\n')
    one_line_error(*cli("retriever", "search", "--index", tmp_path, "--query", "hi", "--tools", "send_sms"),
                   "records.jsonl: line 1: not JSON")
