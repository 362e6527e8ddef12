from hypothesis import given, settings
from hypothesis import strategies as st

from eval.plan import format_plan, parse_plan

SPEC_PLAN = '''1. get_email_address("Sid")
2. get_email_address("Lutfi")
3. create_calendar_event("Sync", "2024-06-03 14:00:00", "2024-06-03 15:00:00", "", ["$1", "$2"], "", "")
Thought: I have created the event.
4. join()<END_OF_PLAN>'''


def codes(text):
    return [e.code for e in parse_plan(text).errors]


def test_published_example_parses():
    plan = parse_plan(SPEC_PLAN)
    assert plan.valid
    assert [s.tool for s in plan.steps] == ["get_email_address", "get_email_address", "create_calendar_event", "join"]
    assert plan.steps[2].refs == (1, 2)
    assert plan.steps[3].thought == "I have created the event."
    assert plan.steps[2].args[4] == ["$1", "$2"]


def test_tolerant_forms():
    assert parse_plan(SPEC_PLAN.replace("<END_OF_PLAN>", "")).valid  # no END_OF_PLAN
    assert parse_plan(SPEC_PLAN + "\n5. send_sms(oops\nall sorts of trailing text").valid  # text after join
    braces = parse_plan('1. get_phone_number("A")\n2. send_sms(["${1}"], "see $1 and ${1}")\n3. join()')
    assert braces.valid and braces.steps[1].refs == (1,)
    multi = parse_plan('1. get_phone_number("A")\n2. get_phone_number("B")\n3. send_sms(["$1"], "call $1 or $2")\n4. join()')
    assert multi.steps[2].refs == (1, 2)


def test_each_error_kind():
    assert codes("") == ["empty"]
    assert codes(None) == ["empty"]
    assert codes('1. fly("x")\n2. join()') == ["unknown_tool"]
    assert codes('1. get_phone_number("$2")\n2. get_phone_number("B")\n3. join()') == ["bad_reference"]
    assert codes('1. get_phone_number("$1")\n2. join()') == ["bad_reference"]
    assert codes('1. get_phone_number("$7")\n2. join()') == ["bad_reference"]
    assert codes('1. get_phone_number(__import__("os"))\n2. join()') == ["bad_args"]
    assert codes('1. get_phone_number("A", "B")\n2. join()') == ["arg_count"]
    assert codes('1. get_phone_number(["A"])\n2. join()') == ["arg_type"]
    assert codes('1. create_reminder("x", "", "", "", "high", False)\n2. join()') == ["arg_type"]
    assert codes('1. get_phone_number("A")') == ["missing_join"]
    assert codes('2. get_phone_number("A")\n1. join()') == ["bad_id"]
    assert codes('1. get_phone_number("A"\n2. join()') == ["bad_step"]
    assert codes("1. join()") == []


def test_reference_messages_say_why():
    errors = parse_plan('1. get_phone_number("$1")\n2. get_phone_number("$3")\n3. join()').errors
    assert "itself" in errors[0].message and "later" in errors[1].message


def test_bounded_inputs():
    assert codes("1. join()" + "x" * 1_000_000) == ["too_long"]
    deep = "[" * 200 + "]" * 200
    assert codes(f"1. get_phone_number({deep})\n2. join()") == ["bad_args"]
    assert codes(f'1. get_phone_number("{"a" * 6000}")\n2. join()') == ["bad_args"]


def test_truncated_plans_never_raise():
    for i in range(len(SPEC_PLAN)):
        parse_plan(SPEC_PLAN[:i])


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('0123456789. ()[]{}$"\',#\nabcdefjoinThought:_ ')), max_size=300))
def test_fuzz_plan_like_text_never_raises(text):
    plan = parse_plan(text)
    assert isinstance(plan.errors, list)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=2000))
def test_fuzz_any_text_never_raises(text):
    parse_plan(text)


def test_format_roundtrip():
    calls = [("get_phone_number", ("Zoë",)), ("send_sms", (["$1"], 'say "hi"\n')), ("create_reminder", ("a", None, "", "", 1, True))]
    plan = parse_plan(format_plan(calls))
    assert plan.valid and [s.args for s in plan.steps[:-1]] == [("Zoë",), (["$1"], 'say "hi"\n'), ("a", None, "", "", 1, True)]
