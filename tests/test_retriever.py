import json
import subprocess
import sys

import pytest
import torch

from retriever import ClassifierConfig, ExampleIndex, ToolClassifier, load_labelled, selection_metrics, train_classifier
from tinyagent_ft.catalog import TINYAGENT
from tinyagent_ft.data import DataError, load_dataset


@pytest.fixture(scope="module")
def tiny_classifier(synth_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("clf")
    pairs = load_labelled(synth_dir, "train")
    cfg = ClassifierConfig(backbone="tiny-deberta", epochs=1, batch_size=16, max_examples=64, threshold=0.4)
    train_classifier(pairs, cfg, out)
    return out


def test_tiny_deberta_classifier_saves_loads_and_predicts(tiny_classifier, synth_dir):
    clf = ToolClassifier.from_pretrained(tiny_classifier)
    assert type(clf.model).__name__ == "DebertaV2ForSequenceClassification"
    assert [clf.model.config.id2label[i] for i in range(16)] == list(TINYAGENT.names)
    saved = json.loads((tiny_classifier / "retriever.json").read_text())
    assert saved["labels"] == list(TINYAGENT.names) and saved["threshold"] == 0.4 and saved["train_examples"] == 64
    queries = [p.query for p in load_labelled(synth_dir, "test")[:5]]
    probs = clf.probabilities(queries)
    assert probs.shape == (5, 16) and bool(((probs >= 0) & (probs <= 1)).all())
    picked = clf.predict(queries)
    assert len(picked) == 5 and all(p and p <= set(TINYAGENT.names) for p in picked)  # keep_top1: never empty
    clf.threshold, clf.keep_top1 = 0.999999, False
    assert clf.predict(queries) == [set()] * 5
    with pytest.raises(ValueError, match="non-empty"):
        clf.predict(["  "])


def test_minilm_backbone_learns_a_few_steps(synth_dir, tmp_path):
    pairs = load_labelled(synth_dir, "train")
    cfg = ClassifierConfig(epochs=1, batch_size=16, max_examples=48, lr=1e-3)
    logs = []
    clf = train_classifier(pairs, cfg, tmp_path, on_log=logs.append)
    assert type(clf.model).__name__ == "BertForSequenceClassification"
    assert not clf.model.get_input_embeddings().weight.requires_grad  # frozen by default
    again = ToolClassifier.from_pretrained(tmp_path)
    q = [pairs[0].query, pairs[1].query]
    assert torch.allclose(again.probabilities(q), clf.probabilities(q), atol=1e-5)


def test_selection_metrics_by_hand():
    gold = [frozenset({"send_sms", "get_phone_number"}), frozenset({"create_note"}), frozenset()]
    picked = [{"send_sms", "get_phone_number", "create_note"}, {"open_note"}, {"create_note"}]
    m = selection_metrics(gold, picked)
    assert m["recall"] == pytest.approx(2 / 3)  # third example: nothing to find
    assert m["mean_tools"] == pytest.approx(5 / 3)
    assert m["micro_precision"] == pytest.approx(2 / 5) and m["micro_recall"] == pytest.approx(2 / 3)
    assert m["per_tool"]["create_note"] == {"recall": 0.0, "support": 1}
    assert "open_note" not in m["per_tool"]


@pytest.fixture(scope="module")
def index(synth_dir, tmp_path_factory):
    examples = load_dataset(synth_dir, "train").examples[:300]
    idx = ExampleIndex.build(examples)
    path = tmp_path_factory.mktemp("index")
    idx.save(path)
    return idx, path, examples


def test_index_persists_and_reloads_without_encoding(index):
    idx, path, examples = index
    loaded = ExampleIndex.load(path, encoder=object())  # a dummy encoder would fail if used
    assert len(loaded) == len(examples) and loaded.records == idx.records
    assert torch.allclose(loaded.embeddings, idx.embeddings, atol=2e-3)
    e = examples[7]
    [hits] = loaded.search_batch([e.query], [e.tools | {"send_sms"}], k=3, exclude_ids=[e.id])
    assert [h.id for h in hits] == [h.id for h in idx.search(e.query, e.tools | {"send_sms"}, 3, exclude_id=e.id)]


def test_search_keeps_examples_whose_tools_fit_and_never_returns_itself(index):
    idx, _, examples = index
    for e in examples[:40]:
        allowed = set(e.tools) | {"create_reminder"}
        hits = idx.search(e.query, allowed, k=6, exclude_id=e.id)
        assert all(h.tools <= allowed for h in hits)
        assert all(h.id != e.id and h.query.lower() != e.query.lower() for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    e = examples[0]
    unfiltered = idx.search(e.query, TINYAGENT.names, k=1)
    assert unfiltered[0].id == e.id and unfiltered[0].score > 0.99  # without exclusion it would leak
    assert idx.search(e.query, [], k=6) == [h for h in idx.search(e.query, [], k=6) if not h.tools]


def test_tools_jsonl_errors_name_file_line_and_field(tmp_path):
    f = tmp_path / "sel.jsonl"
    f.write_text(json.dumps({"query": "text Bob", "tools": ["send_sms"]}) + "\n"
                 + json.dumps({"query": "mail Al", "tools": ["send_email"]}) + "\n")
    with pytest.raises(DataError, match=r"sel.jsonl:2: field 'tools' names unknown tool\(s\) 'send_email'"):
        load_labelled(f)
    f.write_text(json.dumps({"query": " ", "tools": []}) + "\n")
    with pytest.raises(DataError, match=r"sel.jsonl:1: field 'query' must be a non-empty string"):
        load_labelled(f)
    f.write_text(json.dumps({"query": "text Bob", "tools": ["send_sms"]}) + "\n")
    assert load_labelled(f)[0].tools == {"send_sms"}


def test_retriever_eval_cli(tiny_classifier, tmp_path):
    f = tmp_path / "sel.jsonl"
    f.write_text(json.dumps({"query": "Text Bob that I am late", "tools": ["get_phone_number", "send_sms"]}) + "\n")
    cmd = [sys.executable, "-m", "tinyagent_ft", "retriever", "eval", "--model", str(tiny_classifier),
           "--data", str(f), "--out", str(tmp_path / "r.json")]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["examples"] == 1 and report["latency_ms"]["single_query_p50"] > 0
    f.write_text(json.dumps({"query": "Text Bob", "tools": ["sms"]}) + "\n")
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == f"error: {f}:1: field 'tools' names unknown tool(s) 'sms'"
