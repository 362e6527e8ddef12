import json

import pytest

from tinyagent_ft.data import DataError, load_dataset, load_file

SYSTEM = "Given a user query...\nCustom instructions:\n 1. Today's date is Monday 2024-06-03 09:30."


def record(rid, query, plan, raw_input=None):
    raw_input = raw_input if raw_input is not None else repr(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Question: {query}"}])
    return {"input": query, "output": [
        {"type": "plan", "raw_input": raw_input, "raw_output": plan, "parsed_output": [], "id": rid, "index": 0},
        {"type": "join", "raw_input": "[]", "raw_output": "Thought: done", "parsed_output": {}, "id": rid, "index": 1}]}


GOOD = ('1. get_email_address("Sid")\n2. get_email_address("Lutfi")\n'
        '3. create_calendar_event("Sync", "2024-06-03 14:00:00", "2024-06-03 15:00:00", "", ["$1", "$2"], "", "")\n'
        'Thought: I have created the event.\n4. join()')


@pytest.fixture
def real_file(tmp_path):
    data = {
        "a1": record("a1", "Meet Sid and Lutfi at 2pm", GOOD),
        "b2": record("b2", "Text Bob", '1. get_phone_number("Bob")\n2. send_sms(["$1"], "hi")\n3. join()<END_OF_PLAN>'),
        "bad-literal": record("bad-literal", "Hi", GOOD, raw_input="[{'role': 'system', 'content': os.system('x')}]"),
        "bad-plan": record("bad-plan", "Hi", '1. fly_to_moon("now")\n2. join()'),
        "no-input": {"output": record("x", "q", GOOD)["output"]},
    }
    path = tmp_path / "testing_data.json"
    path.write_text(json.dumps(data))
    return path


def test_real_schema_loads_and_skips_bad_records(real_file, caplog):
    loaded = load_file(real_file)
    assert [e.id for e in loaded] == ["a1", "b2"]
    a1 = loaded.examples[0]
    assert a1.tools == {"get_email_address", "create_calendar_event"}
    assert a1.prompt == SYSTEM and a1.today.isoformat() == "2024-06-03T09:30:00"
    assert sum(loaded.skipped.values()) == 3
    assert "skipped 3 of 5 records" in caplog.text


def test_strict_names_file_record_and_field(real_file):
    with pytest.raises(DataError, match=r"testing_data.json: record bad-literal, field 'raw_input'"):
        load_file(real_file, strict=True)


def test_malformed_file_is_one_line_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"a": {"input": "x",')
    with pytest.raises(DataError, match=r"broken.json: line 1: not JSON"):
        load_file(path)
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="expected one JSON object keyed by record id"):
        load_file(path)


def test_jsonl_format_and_bad_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"id": "q1", "query": "Find Sid's email", "plan": '1. get_email_address("Sid")\n2. join()',
                                "today": "2024-06-03 09:30"}) + "\nnot json\n")
    loaded = load_file(path)
    assert len(loaded) == 1 and loaded.examples[0].tools == {"get_email_address"}
    assert loaded.examples[0].today.hour == 9
    with pytest.raises(DataError, match=r"line 2, field 'record': not JSON"):
        load_file(path, strict=True)


def test_directory_splits_and_missing(synth_dir, tmp_path):
    assert len(load_dataset(synth_dir, "test")) == 50
    with pytest.raises(DataError, match="no train.json or train.jsonl"):
        load_dataset(tmp_path, "train")
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "nope.json")


def test_missing_local_folder_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match=r"^data/synht: no such file or directory$"):  # a typo, not a hub dataset
        load_dataset("data/synht", "train")


def test_gold_with_argument_problems_is_kept(tmp_path):
    """TinyAgent's own example has a 4-argument compose_new_email ("Meeting Postponed," "" concatenates):
    its structure is scored like any other gold plan, so the loader keeps it; bad tools still skip."""
    four = ('1. get_email_address("Sid")\n2. compose_new_email(["$1"], [], "Meeting Postponed," "", [])\n'
            '3. join()<END_OF_PLAN>')
    path = tmp_path / "test.json"
    path.write_text(json.dumps({"p": record("p", "Tell Sid the meeting is postponed", four),
                                "u": record("u", "Hi", '1. fly_to_moon("now")\n2. join()')}))
    loaded = load_file(path)
    assert [e.id for e in loaded] == ["p"] and loaded.examples[0].tools == {"get_email_address", "compose_new_email"}
    assert sum(loaded.skipped.values()) == 1
