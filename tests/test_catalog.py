import json

import pytest

from eval.plan import parse_plan
from tinyagent_ft.catalog import TINYAGENT, Catalog
from tinyagent_ft.catalog_files import CatalogError, load_catalog, save_catalog


def test_sixteen_tools_in_label_order():
    assert len(TINYAGENT) == 16
    assert TINYAGENT.names[0] == "create_calendar_event" and TINYAGENT.names[15] == "get_zoom_meeting_link"


def test_signature_matches_schema():
    for t in TINYAGENT.tools:
        assert t.signature.startswith(f"{t.name}(") and t.signature.endswith(") -> str")
        inner = t.signature[len(t.name) + 1: t.signature.rindex(")")]
        names = [p.split(":")[0].strip() for p in inner.split(", ")] if inner else []
        assert names == [a.name for a in t.args], t.name


def test_description_is_signature_then_bullets():
    lines = TINYAGENT.get("send_sms").description.splitlines()
    assert lines[0] == "send_sms(recipients: list[str], message: str) -> str"
    assert all(line.startswith(" - ") for line in lines[1:]) and len(lines) > 1


def test_app_groups():
    assert TINYAGENT.groups["contacts"] == ("get_phone_number", "get_email_address")
    assert TINYAGENT.groups["mail"] == ("compose_new_email", "reply_to_email", "forward_email")
    assert sum(len(v) for v in TINYAGENT.groups.values()) == 16


def test_rules_follow_tools():
    assert TINYAGENT.rules_for({"create_reminder"}) == []
    sms_rules = TINYAGENT.rules_for({"send_sms"})
    assert any("get_phone_number" in r for r in sms_rules)
    assert not any("get_email_address" in r for r in sms_rules)


def test_unknown_tool_lists_valid_names():
    with pytest.raises(KeyError, match="valid tools: create_calendar_event"):
        TINYAGENT.get("book_flight")


def test_saved_catalog_round_trips(tmp_path):
    save_catalog(TINYAGENT, tmp_path)
    assert load_catalog(tmp_path) == TINYAGENT
    assert Catalog.from_dict(json.loads((tmp_path / "catalog.json").read_text())).names == TINYAGENT.names


def _fn(name, props, required=(), description="Does a thing."):
    return {"type": "function", "function": {"name": name, "description": description,
                                             "parameters": {"type": "object", "properties": props,
                                                            "required": list(required)}}}


SPECS = [
    _fn("find_device", {"room": {"type": "string", "description": "Room name"}}, ["room"],
        "Find a device.\nReturns its id."),
    _fn("set_level", {"device": {"type": "string"}, "level": {"type": "number"},
                      "mode": {"type": "string", "enum": ["eco", "boost"]},
                      "when": {"type": "string", "format": "date-time"},
                      "tags": {"type": "array", "items": {"type": "integer"}, "default": []}},
        ["device", "level", "mode"]),
]


def test_openai_specs_map_to_typed_positional_arguments(tmp_path):
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(SPECS))
    cat = load_catalog(path)
    assert cat.names == ("find_device", "set_level")
    find, level = cat.get("find_device"), cat.get("set_level")
    assert find.signature == "find_device(room: str)"
    assert find.bullets == ("Find a device.", "Returns its id.", "room: Room name")
    assert [(a.name, a.type, a.optional) for a in level.args] == [
        ("device", "str", False), ("level", "float", False), ("mode", "str", False),
        ("when", "str", True), ("tags", "list[int]", True)]
    assert level.args[2].enum == ("eco", "boost") and level.args[3].format == "datetime"
    assert level.required == 3
    # trailing optional arguments may be left out or passed None; an enum value must be one of its values
    assert parse_plan('1. find_device("hall")\n2. set_level("$1", 0.5, "eco")\n3. join()', cat).valid
    assert parse_plan('1. set_level("x", 2, "boost", None, [1, 2])\n2. join()', cat).valid
    assert [e.code for e in parse_plan('1. set_level("x", 2)\n2. join()', cat).errors] == ["arg_count"]
    assert [e.code for e in parse_plan('1. set_level("x", 2, "max")\n2. join()', cat).errors] == ["arg_type"]
    assert [e.code for e in parse_plan('1. send_sms(["1"], "hi")\n2. join()', cat).errors] == ["unknown_tool"]


def test_project_yaml_adds_groups_rules_and_order(tmp_path):
    (tmp_path / "tools.json").write_text(json.dumps(SPECS))
    (tmp_path / "home.yaml").write_text(
        "functions: tools.json\nname: home\ngroups:\n  lights: [find_device, set_level]\n"
        "order:\n  find_device: [room]\nrules:\n  - groups: [lights]\n    text: Find a device before setting it.\n"
        "instructions:\n  - Pass every argument positionally.\n")
    cat = load_catalog(tmp_path / "home.yaml")
    assert cat.name == "home" and cat.groups == {"lights": ("find_device", "set_level")}
    assert cat.rules_for({"set_level"}) == ["Find a device before setting it."]
    assert cat.instructions == ("Pass every argument positionally.",)


@pytest.mark.parametrize("specs, message", [
    ([_fn("join", {})], r"tool 'join': 'join' is reserved"),
    ([_fn("a", {}), _fn("a", {})], r"tool 'a': defined twice"),
    ([_fn("a", {}, description="")], r"tool 'a': missing description"),
    ([_fn("a", {"x": {"type": "object", "properties": {}}})], r"tool 'a', argument 'x': unsupported schema feature"),
    ([_fn("a", {"x": {"type": "array", "items": {"type": "array"}}})], r"tool 'a', argument 'x': arrays of array"),
    ([_fn("a", {"x": {"anyOf": [{"type": "string"}]}})], r"tool 'a', argument 'x': unsupported schema feature\(s\) anyOf"),
    ([_fn("a", {}, ["y"])], r"tool 'a': required argument\(s\) 'y' not in properties"),
    ([_fn("a", {"x": {"type": "integer", "enum": [1, True]}})], r"tool 'a', argument 'x': 'enum' must be a list of int"),
    ({"not": "a list"}, r"expected a non-empty JSON list"),
])
def test_bad_catalog_is_one_line_naming_file_and_tool(tmp_path, specs, message):
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(specs))
    with pytest.raises(CatalogError, match=message) as info:
        load_catalog(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
