"""The plan grammar accepts every gold plan and rejects malformed ones; the shortest ending completes
any prefix; constrained generation writes valid plans inside its budget, even from random weights."""
import random

import pytest

from eval.plan import parse_plan
from tinyagent_ft.catalog import TINYAGENT
from tinyagent_ft.constrain import PlanConstraint, check_vocabulary
from tinyagent_ft.data import load_dataset
from tinyagent_ft.grammar import closing_text, plan_grammar
from tinyagent_ft.models import resolve_model
from tinyagent_ft.synth.generate import SynthConfig, synthesize

REAL_SCHEMA = [  # hand-written in the published TinyAgent style
    '1. get_email_address("Sid")\n2. get_email_address("Lutfi")\n'
    '3. create_calendar_event("Sync", "2024-06-03 14:00:00", "2024-06-03 15:00:00", "", ["$1", "$2"], "", "")\n'
    "Thought: I have created the event.\n4. join()<END_OF_PLAN>",
    "1. get_phone_number('Ana')\n2. send_sms(['${1}'], 'Running late, see you at 5')\n3. join()<END_OF_PLAN>",
    '1. create_reminder("Pay rent", "2024-07-01", None, "Home", 1, True)\n2. join()<END_OF_PLAN>',
    '1. get_email_address("Kim")\n2. get_zoom_meeting_link("Design review", "2024-06-04 09:30:00", 45, ["$1"])\n'
    '3. create_calendar_event("Design review", "2024-06-04 09:30:00", "2024-06-04 10:15:00", "$2", ["$1"], '
    '"Zoom link: $2", None)\n4. join()<END_OF_PLAN>',
    '1. open_and_get_file_path("Q3 report.pdf")\n2. summarize_pdf("$1")\n'
    '3. create_note("Q3 summary","$2","")\n4. join()<END_OF_PLAN>',
    '1. maps_show_directions("", "Golden Gate Park", "w")\n2. get_phone_number("Mo")\n'
    '3. send_sms(["$2"], "Directions: $1 \\"see you\\"")\n4. join()<END_OF_PLAN>',
    "Thought: No tool can order a pizza.\n1. join()<END_OF_PLAN>",
]

MALFORMED = [
    '1. send_sms(["$2"], "hi")\n2. join()<END_OF_PLAN>',  # reference to a later step
    '1. get_phone_number("Ana")\n2. send_sms(["$2"], "hi")\n3. join()<END_OF_PLAN>',  # reference to itself
    '1. order_pizza("large")\n2. join()<END_OF_PLAN>',  # unknown tool
    '1. get_phone_number("Ana", "Bo")\n2. join()<END_OF_PLAN>',  # argument count
    '1. get_zoom_meeting_link("Sync", "2024-06-04 09:30:00", "45", [])\n2. join()<END_OF_PLAN>',  # int as str
    '1. create_reminder("Pay", "next week", "", "", 0, False)\n2. join()<END_OF_PLAN>',  # date format
    '2. get_phone_number("Ana")\n3. join()<END_OF_PLAN>',  # numbering
    '1. get_phone_number("Ana")\n',  # no join
]


@pytest.fixture(scope="module")
def constraint():
    from transformers import AutoTokenizer
    return PlanConstraint.for_tokenizer(AutoTokenizer.from_pretrained(resolve_model("tiny-random")))


def accepts(constraint, tools, text: str) -> bool:
    m = constraint.matcher([TINYAGENT.get(t) if isinstance(t, str) else t for t in tools])
    return m.consume_tokens(constraint.tokens(text)) and m.is_accepting()


@pytest.fixture(scope="module")
def gold(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth6k")
    synthesize(out, SynthConfig(n=6000, seed=3))
    return [e for split in ("train", "validation", "test") for e in load_dataset(out, split)]


def test_grammar_accepts_every_gold_plan(constraint, gold):
    assert len(gold) >= 5000
    rejected = [e.plan for e in gold if not accepts(constraint, sorted(e.tools), e.plan)]
    assert rejected == []
    assert all(accepts(constraint, TINYAGENT.tools, e.plan) for e in gold[:500])


def test_real_schema_fixtures_accepted(constraint):
    for plan in REAL_SCHEMA:
        assert parse_plan(plan).valid, plan
        assert accepts(constraint, TINYAGENT.tools, plan), plan


def test_malformed_plans_rejected(constraint):
    for plan in MALFORMED:
        assert not accepts(constraint, TINYAGENT.tools, plan), plan


def test_only_shown_tools_and_join_only_plans(constraint):
    plan = '1. get_phone_number("Ana")\n2. send_sms(["$1"], "hi")\n3. join()<END_OF_PLAN>'
    assert accepts(constraint, ["get_phone_number", "send_sms"], plan)
    assert not accepts(constraint, ["get_phone_number", "create_note"], plan)
    assert accepts(constraint, [], "1. join()<END_OF_PLAN>")
    assert accepts(constraint, ["send_sms"], "1. join()<END_OF_PLAN>")
    assert "s2:" not in plan_grammar([])  # with no tools, join is the only step


def test_closing_text_completes_every_prefix(constraint, gold):
    rng = random.Random(0)
    plans = [e.plan for e in rng.sample(gold, 150)] + REAL_SCHEMA
    for plan in plans:
        for cut in range(len(plan)):
            prefix = plan[:cut]
            full = prefix + closing_text(prefix, TINYAGENT.by_name)
            assert parse_plan(full).valid, (prefix, full)
            assert accepts(constraint, TINYAGENT.tools, full), (prefix, full)


def test_random_model_writes_valid_plans(gold):
    """Random weights under the grammar: every plan parses and validates, references only point back,
    and a tight budget forces endings rather than cutting plans."""
    from tinyagent_ft.planner import Planner
    planner = Planner.from_pretrained("tiny-random", device="cpu")
    queries = [e.query for e in gold[:50]]
    results = planner.generate(queries, max_new_tokens=64, batch_size=25)
    for r in results:
        plan = parse_plan(r.text)
        assert plan.valid, (r.text, plan.errors)
        assert all(ref < s.id for s in plan.steps for ref in s.refs)
        assert r.constrained and r.completion_tokens <= 64
    assert any(r.forced_end for r in results)  # random weights never stop on their own
    assert planner.stats["forced_endings"] == sum(r.forced_end for r in results)
    assert planner.stats["ending_failures"] == 0  # every forced ending was one the grammar accepts
    free = planner.generate(queries[:4], max_new_tokens=24, constrain=False)
    assert not any(r.constrained for r in free)


def test_end_marker_never_inside_a_string(constraint):
    """The base model once wrote `"); 2. join()<END_OF_PLAN>` inside a string, and the stop string ended
    the plan there: strings may not hold "<", so the marker only ever ends a plan."""
    m = constraint.matcher(TINYAGENT.tools)
    prefix = '1. create_reminder("review", "2024-06-09 15:00:00", "", "'
    assert m.consume_tokens(constraint.tokens(prefix))
    inside = constraint.tokens("); 2. join()<END_OF_PLAN>")
    assert m.validate_tokens(inside) < len(inside)
    assert not accepts(constraint, ["send_sms"], "Thought: done <END_OF_PLAN>\n1. join()<END_OF_PLAN>")


def test_a_vocabulary_the_engine_misreads_is_refused(constraint):
    from transformers import AutoTokenizer

    from retriever.tool_classifier import minilm_path
    planner_tokens = AutoTokenizer.from_pretrained(resolve_model("tiny-random"))
    check_vocabulary(planner_tokens, constraint.tokenizer)  # the engine reads the planner's own tokens back
    with pytest.raises(ValueError, match=r"the grammar engine reads the tokens of .* as b"):
        check_vocabulary(AutoTokenizer.from_pretrained(minilm_path()), constraint.tokenizer)  # ids of another vocabulary


HOME = "examples/smart-home"


@pytest.fixture(scope="module")
def home():
    from tinyagent_ft.catalog_files import load_catalog
    catalog = load_catalog(f"{HOME}/catalog.yaml")
    return catalog, [e for s in ("train", "validation", "test") for e in load_dataset(f"{HOME}/data", s, catalog=catalog)]


def test_grammar_follows_a_custom_catalog(constraint, home):
    """Enums, numbers, booleans, optional trailing arguments and dates of a user's own catalog: every gold
    plan is accepted, every prefix completes to a valid plan, and values outside the schema are refused."""
    catalog, examples = home
    assert len(examples) == 66
    for e in examples:
        assert accepts(constraint, [catalog.get(t) for t in e.tools], e.plan), e.plan
        for cut in range(len(e.plan)):
            full = e.plan[:cut] + closing_text(e.plan[:cut], catalog.by_name)
            assert parse_plan(full, catalog).valid and accepts(constraint, catalog.tools, full), (e.plan[:cut], full)
    for bad in ['1. find_device("hall", "toaster")\n2. join()<END_OF_PLAN>',  # not in the enum
                '1. set_light("x")\n2. join()<END_OF_PLAN>',  # a required argument left out
                '1. set_blinds("x", 50.5)\n2. join()<END_OF_PLAN>',  # a number where an integer is due
                '1. get_weather("Rome", "March 12")\n2. join()<END_OF_PLAN>']:  # not a date
        assert not accepts(constraint, catalog.tools, bad), bad
    assert accepts(constraint, catalog.tools, '1. set_thermostat("x", 21.5, None)\n2. join()<END_OF_PLAN>')


def test_random_model_plans_over_a_custom_catalog(home):
    from tinyagent_ft.planner import Planner
    catalog, examples = home
    planner = Planner.from_pretrained("tiny-random", device="cpu", catalog=catalog)
    results = planner.generate([e.query for e in examples[:20]], max_new_tokens=64, batch_size=10)
    assert all(r.tools == list(catalog.names) for r in results)  # no classifier: the whole catalog is shown
    for r in results:
        plan = parse_plan(r.text, catalog)
        assert plan.valid and set(plan.tools) <= set(catalog.names), (r.text, plan.errors)
