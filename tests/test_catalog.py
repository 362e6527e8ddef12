from tinyagent_ft.catalog import APPS, BY_NAME, TOOL_NAMES, TOOLS, get_tool, rules_for

import pytest


def test_sixteen_tools_in_label_order():
    assert len(TOOLS) == 16
    assert [t.id for t in TOOLS] == list(range(16))
    assert TOOL_NAMES[0] == "create_calendar_event" and TOOL_NAMES[15] == "get_zoom_meeting_link"


def test_signature_matches_schema():
    for t in TOOLS:
        assert t.signature.startswith(f"{t.name}(") and t.signature.endswith(") -> str")
        inner = t.signature[len(t.name) + 1: t.signature.rindex(")")]
        names = [p.split(":")[0].strip() for p in inner.split(", ")] if inner else []
        assert names == [a.name for a in t.args], t.name


def test_description_is_signature_then_bullets():
    lines = BY_NAME["send_sms"].description.splitlines()
    assert lines[0] == "send_sms(recipients: list[str], message: str) -> str"
    assert all(line.startswith(" - ") for line in lines[1:]) and len(lines) > 1


def test_app_groups():
    assert APPS["contacts"] == ("get_phone_number", "get_email_address")
    assert APPS["mail"] == ("compose_new_email", "reply_to_email", "forward_email")
    assert sum(len(v) for v in APPS.values()) == 16


def test_rules_follow_tools():
    assert rules_for({"create_reminder"}) == []
    sms_rules = rules_for({"send_sms"})
    assert any("get_phone_number" in r for r in sms_rules)
    assert not any("get_email_address" in r for r in sms_rules)


def test_unknown_tool_lists_valid_names():
    with pytest.raises(KeyError, match="valid tools: create_calendar_event"):
        get_tool("book_flight")
