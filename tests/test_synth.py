import json
import re
from datetime import datetime

from eval.dag import plan_shape
from eval.plan import parse_plan
from tinyagent_ft.catalog import TINYAGENT
from tinyagent_ft.data import load_dataset
from tinyagent_ft.synth import pools
from tinyagent_ft.synth.generate import SPLIT_POOLS, Generator, Slots, SynthConfig, split_heldout
from tinyagent_ft.synth.intents import INTENTS


def test_variety_requirements():
    assert len(INTENTS) >= 60 and min(len(i.phrasings) for i in INTENTS) >= 5
    assert len(pools.PEOPLE) >= 300 and len(pools.FILES) >= 100 and len(pools.PLACES) >= 100
    assert len(set(pools.PEOPLE)) == len(pools.PEOPLE)


def test_large_sample_is_valid_and_covers_everything():
    gen = Generator(SynthConfig(seed=3))
    tools, shapes, sizes = set(), set(), set()
    for i in range(6000):
        _, query, _, calls = gen.sample(heldout=i % 2 == 0)
        assert "{" not in query and "}" not in query
        from eval.plan import format_plan
        plan = parse_plan(format_plan(calls))
        assert plan.valid, (query, plan.errors)
        tools.update(plan.tools)
        shapes.add(plan_shape(plan))
        sizes.add(len(plan.tools))
    assert tools == set(TINYAGENT.names)
    assert shapes == {"empty", "single", "parallel", "chain", "dag"}
    assert sizes == set(range(0, 7))


def test_every_intent_states_what_its_plan_uses():
    # Slots are frozen after the query is written: a plan value the query never stated raises KeyError.
    gen = Generator(SynthConfig(seed=5))
    for intent in INTENTS:
        for side in (False, True):
            for _ in range(10):
                gen.sample(side, intent)


def test_deterministic_per_seed(tmp_path):
    a, b = Generator(SynthConfig(n=200, seed=7)).generate(), Generator(SynthConfig(n=200, seed=7)).generate()
    assert json.dumps(a) == json.dumps(b)
    c = Generator(SynthConfig(n=200, seed=8)).generate()
    assert json.dumps(a) != json.dumps(c)


def test_heldout_split_property(synth_dir):
    train = load_dataset(synth_dir, "train").examples
    test = load_dataset(synth_dir, "test").examples + load_dataset(synth_dir, "validation").examples
    assert len(train) == 1900 and len(test) == 100
    train_people, held_people = split_heldout(SPLIT_POOLS["person"], 0.2)
    assert not set(train_people) & set(held_people)
    train_text = "\n".join(e.query for e in train)
    # no held-out person or file ever appears in a training query
    for name in held_people:
        assert not re.search(rf"\b{re.escape(name)}\b(?! [A-Z])", train_text), name
    for f in split_heldout(SPLIT_POOLS["file"], 0.2)[1]:
        assert f not in train_text
    # test phrasings are not train phrasings: compare queries with entities masked by their templates
    gen = Generator(SynthConfig(heldout=0.2))
    for intent in INTENTS:
        tr, ho = gen.phrasings[intent.name]
        assert tr and ho and not set(tr) & set(ho)


def test_dates_resolve_against_today():
    import random
    slots = Slots(random.Random(0), Generator(SynthConfig()).pools[False], datetime(2024, 6, 3, 9, 30))  # a Monday
    for _ in range(200):
        slots.clear()
        phrase, start = slots["when"], slots["_start"]
        if phrase.startswith("tomorrow at 3pm"):
            assert start == datetime(2024, 6, 4, 15, 0)
        if phrase == "next Tuesday at 3pm":
            assert start == datetime(2024, 6, 4, 15, 0)
        if phrase.startswith("on Monday"):
            assert start.date() == datetime(2024, 6, 10).date()
        assert start > datetime(2024, 6, 3, 9, 30)
    assert slots["end"] > slots["start"]


def test_synth_files_have_real_schema(synth_dir):
    records = json.loads((synth_dir / "test.json").read_text())
    rid, rec = next(iter(records.items()))
    assert [o["type"] for o in rec["output"]] == ["plan", "join"]
    assert rec["output"][0]["id"] == rid and rec["output"][0]["raw_input"].startswith("[{'role': 'system'")
    assert rec["output"][0]["raw_output"].endswith("join()<END_OF_PLAN>")
