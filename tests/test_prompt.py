import os
import random
from datetime import datetime
from pathlib import Path

import pytest

from tinyagent_ft.catalog import TINYAGENT
from tinyagent_ft.prompt import Demo, build_system_prompt, render, sample_prompt_tools

SNAP = Path(__file__).parent / "snapshots"
TODAY = datetime(2024, 6, 3, 9, 30)
DEMOS = [Demo("Text Bob that I'm late", '1. get_phone_number("Bob")\n2. send_sms(["$1"], "I\'m late")\n3. join()<END_OF_PLAN>')]


def check_snapshot(name: str, text: str):
    path = SNAP / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":  # review the new file, then commit it
        path.write_text(text)
    assert text == path.read_text(), f"prompt text changed; diff against {path}"


def test_system_prompt_snapshot():
    system = build_system_prompt(["get_phone_number", "send_sms"], DEMOS, TODAY)
    check_snapshot("system_sms.txt", system)
    assert system.startswith("Given a user query") and "3. join():" in system
    assert "Today's date is Monday 2024-06-03 09:30." in system
    assert system.endswith("3. join()<END_OF_PLAN>\n###")


def test_alpaca_render_snapshot():
    system = build_system_prompt(["create_reminder"], [], TODAY)
    text = render(system, "Remind me to buy milk")
    check_snapshot("alpaca_reminder.txt", text)
    assert text.endswith("### Response:\n")


def test_chat_template_render():
    from tinyagent_ft.models import load_tokenizer
    tok = load_tokenizer("smollm2-135m")
    text = render("SYSTEM", "Remind me", tok)
    assert text == "<|im_start|>system\nSYSTEM<|im_end|>\n<|im_start|>user\nQuestion: Remind me<|im_end|>\n<|im_start|>assistant\n"


def test_rules_only_for_present_tools():
    assert "phone number with get_phone_number" not in build_system_prompt(["create_note"], [], TODAY)
    assert "phone number with get_phone_number" in build_system_prompt(["send_sms"], [], TODAY)
    with pytest.raises(ValueError, match="unknown tool 'fly'"):
        build_system_prompt(["fly"], [], TODAY)


def test_negative_sampling():
    rng = random.Random(0)
    tools = sample_prompt_tools({"send_sms", "get_phone_number"}, 2, rng)
    assert len(tools) == 4 and {"send_sms", "get_phone_number"} <= set(tools)
    assert sorted(sample_prompt_tools({"send_sms"}, None, rng)) == sorted(TINYAGENT.names)
    orders = {tuple(sample_prompt_tools({"send_sms"}, 3, random.Random(s))) for s in range(20)}
    assert len(orders) > 1  # positions are shuffled

