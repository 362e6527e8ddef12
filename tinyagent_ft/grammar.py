"""The plan grammar: which texts a planner may write for the tools in its prompt, and the shortest way
to finish a plan that has been started.

``plan_grammar`` writes a Lark grammar (llguidance's dialect) for LLMCompiler plans over the tools shown
in one prompt: steps numbered 1, 2, 3, ... in order, each calling a shown tool with exactly its
positional arguments, each of its declared type; references ``$k`` / ``${k}`` only to earlier steps
(one rule set per step number keeps this finite), optional ``Thought:`` lines, and a final
``k. join()<END_OF_PLAN>``. ``closing_text`` completes any prefix the grammar allows with a short
valid ending, so a decoder can always stop inside its token budget.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from eval.plan import END_OF_PLAN

from .catalog import JOIN, Arg, Tool


@dataclass(frozen=True)
class GrammarLimits:
    """Bounds that keep every derivation finite. The synthetic data's longest plan has 7 steps, its
    longest list 3 items and its longest string 33 characters: the defaults leave room for real data."""
    max_steps: int = 12  # join included
    max_string: int = 160  # units: a character, an escape or a reference
    max_list: int = 8
    max_thought: int = 200


# The smallest generation budget constrained decoding accepts: a join-only plan, "1. join()<END_OF_PLAN>",
# fits in this many tokens with any tokenizer.
MIN_PLAN_TOKENS = 24

_ESCAPE = r"""\\(["'\\/bfnrt]|u[0-9a-fA-F]{4})"""
_DAY = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_DATE = _DAY + "( ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])?"
_DATE_FILL = "2000-01-01 00:00:00"  # each prefix of a valid date + the rest of this stays valid
_INT, _NUMBER, _BOOL = "-?[0-9]{1,9}", r"-?[0-9]{1,9}(\.[0-9]{1,9})?", "True|False"


def _ids(k: int) -> str:
    return "(" + "|".join(str(i) for i in range(1, k)) + ")"


def _string(q: str, k: int, limit: int) -> str:
    """A string in quote ``q``: plain characters and escapes; ``$`` only as a reference to steps
    1..k-1, and a bare ``$j`` not followed by a digit (``$1`` then ``0`` would read as ``$10``).
    No ``<``: the end marker ``<END_OF_PLAN>`` written inside a string would end the plan there."""
    plain = rf"([^{q}\\$<\n]|{_ESCAPE})"
    if k == 1:
        return rf"{q}{plain}{{0,{limit}}}{q}"
    no_digit = rf"([^{q}\\$<\n0-9]|{_ESCAPE})"
    ref = rf"\${_ids(k)}"
    return rf"{q}({plain}|{ref}{no_digit}|\$\{{{_ids(k)}\}}){{0,{limit}}}({ref})?{q}"


def _quoted(body) -> str:
    """``body(q)`` in double or single quotes."""
    return f"({body(chr(34))}|{body(chr(39))})"


def _terminal(name: str, pattern: str) -> str:
    return f"{name}: /" + pattern.replace("/", r"\/") + "/"


def _literal(value) -> str:
    """A Lark string literal matching ``value`` as a plan writes it (strings in either quote)."""
    if isinstance(value, str):
        return "(" + " | ".join(json.dumps(q + value.replace("\\", "\\\\").replace(q, "\\" + q) + q) for q in "\"'") + ")"
    return json.dumps(repr(value))


_SCALAR = {"int": "INT", "float": "NUMBER", "bool": "BOOL"}


def _arg(arg: Arg, k: int) -> str:
    """Grammar alternatives for one argument at step k (terminals defined in ``plan_grammar``)."""
    if arg.enum:
        alts = [_literal(v) for v in arg.enum]
    elif arg.format:
        alts = [("DATE" if arg.format == "datetime" else "DAY") + ("_OR_EMPTY" if arg.nullable else "")]
    elif arg.is_list:
        alts = [f"LIST{k}" if arg.item_type == "str" else f"LIST_{_SCALAR[arg.item_type]}{k}"]
    else:
        alts = [f"STR{k}" if arg.type == "str" else _SCALAR[arg.type]]
    if k > 1 and alts[0] != f"STR{k}":  # a whole-argument reference; plain strings admit one already
        alts.append(f"REF{k}")
    if arg.accepts_none:
        alts.append('"None"')
    return alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"


def _call(tool: Tool, k: int) -> str:
    """``name(`` the required arguments, then each optional one only after the one before it ``)``."""
    args = [_arg(a, k) for a in tool.args]
    r = tool.required
    text = " SEP ".join(args[:r])
    tail = ""
    for i in range(len(args) - 1, r - 1, -1):
        sep = "SEP " if i > 0 else ""
        tail = f"({sep}{args[i]} {tail})?" if tail else f"({sep}{args[i]})?"
    return f'"{tool.name}(" {text} {tail} ")"'.replace("  ", " ")


def join_line(k: int) -> str:
    return f"{k}. {JOIN}(){END_OF_PLAN}"


def plan_grammar(tools: Sequence[Tool], limits: GrammarLimits = GrammarLimits()) -> str:
    """Lark text for plans over ``tools``; join is always allowed, so a join-only plan stays possible."""
    n = limits.max_steps if tools else 1
    rules = ["start: s1", "thought: THOUGHT"]
    for k in range(1, n + 1):
        join = f'"{join_line(k)}"'
        if k == n:
            rules.append(f"s{k}: thought? {join}")
            continue
        rules.append(f's{k}: thought? ("{k}. " call{k} "\\n" s{k + 1} | {join})')
        rules.append(f"call{k}: " + " | ".join(f"tool{i}_{k}" for i in range(len(tools))))
        rules += [f"tool{i}_{k}: {_call(t, k)}" for i, t in enumerate(tools)]
    terminals = [_terminal("THOUGHT", rf"Thought: [^\n<]{{0,{limits.max_thought}}}\n"),
                 _terminal("SEP", ", ?"), _terminal("INT", _INT), _terminal("NUMBER", _NUMBER),
                 _terminal("BOOL", _BOOL),
                 _terminal("DATE", _quoted(lambda q: f"{q}{_DATE}{q}")),
                 _terminal("DATE_OR_EMPTY", _quoted(lambda q: f"{q}({_DATE})?{q}")),
                 _terminal("DAY", _quoted(lambda q: f"{q}{_DAY}{q}")),
                 _terminal("DAY_OR_EMPTY", _quoted(lambda q: f"{q}({_DAY})?{q}"))]
    for k in range(1, n):
        s = _quoted(lambda q: _string(q, k, limits.max_string))
        terminals.append(_terminal(f"STR{k}", s))
        terminals.append(_terminal(f"LIST{k}", rf"\[({s}(, ?{s}){{0,{limits.max_list - 1}}})?\]"))
        ref = _quoted(lambda q: rf"{q}\$({_ids(k)}|\{{{_ids(k)}\}}){q}") if k > 1 else None
        if ref:
            terminals.append(_terminal(f"REF{k}", ref))
        for name, item in (("INT", _INT), ("NUMBER", _NUMBER), ("BOOL", _BOOL)):
            one = f"({item}|{ref})" if ref else f"({item})"
            terminals.append(_terminal(f"LIST_{name}{k}", rf"\[({one}(, ?{one}){{0,{limits.max_list - 1}}})?\]"))
    return "\n".join(rules + terminals) + "\n"


# --- finishing a started plan -------------------------------------------------------------------

_STEP_LINE = re.compile(r"^\d+\. ")
_PARTIAL_REF = re.compile(r"\$(\{?)(\d*)$")


def _enum_text(value) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def minimal_value(arg: Arg) -> str:
    """The shortest value of an argument's type (a date where one is required)."""
    if arg.enum:
        return min(map(_enum_text, arg.enum), key=len)
    if arg.format and not arg.nullable:
        return f'"{_DATE_FILL[:10]}"'
    return "[]" if arg.is_list else {"str": '""', "int": "0", "float": "0", "bool": "False"}[arg.type]


def _finish_string(content: str, quote: str, escape: str | None, arg: Arg) -> str:
    """Text that closes an open string whose characters so far are ``content``."""
    if escape is not None:  # a backslash, or a \\u escape with fewer than four hex digits
        return ("\\" if escape == "" else "0" * (5 - len(escape))) + quote
    ref = _PARTIAL_REF.search(content)
    if ref and (ref.group(1) or not ref.group(2)):
        return ("" if ref.group(2) else "1") + ("}" if ref.group(1) else "") + quote
    if arg.enum and not ref:
        return min((v for v in arg.enum if isinstance(v, str) and v.startswith(content)), key=len)[len(content):] + quote
    if arg.format and not ref and (content or not arg.nullable):
        return _DATE_FILL[len(content):10 if len(content) <= 10 else None] + quote
    return quote


def _finish_call(tool: Tool, args_text: str) -> str | None:
    """Text that completes the argument list of ``tool(`` + ``args_text`` and closes the call; None
    when the call is already closed."""
    index, depth, quote, escape, content, current = 0, 0, None, None, "", ""
    for ch in args_text:
        if quote:
            if escape is not None:
                escape += ch
                if not (escape.startswith("u") and len(escape) < 5):
                    escape = None
            elif ch == "\\":
                escape = ""
            elif ch == quote:
                quote = None
            content += ch if quote else ""
            current += ch
        elif ch in "\"'":
            quote, content, current = ch, "", current + ch
        elif ch == "," and depth == 0:
            index, current = index + 1, ""
        elif ch == ")" and depth == 0:
            return None
        else:
            depth += (ch == "[") - (ch == "]")
            current += ch
    if index >= len(tool.args):
        return None
    arg = tool.args[index]
    out = ""
    if quote:
        out = _finish_string(content, quote, escape, arg)
        current += out
    token = current.strip()
    if depth > 0:
        out += '""]' if token.endswith(",") else "]"
    elif not token:
        out += minimal_value(arg) if index or args_text.strip() or index < tool.required else ""
    elif not quote:
        out += _finish_word(token, arg)
    rest = "".join(", " + minimal_value(a) for a in tool.args[index + 1:tool.required])
    return out + rest + ")"


def _finish_word(token: str, arg: Arg) -> str:
    """The rest of an unquoted value: True/False/None, an enum number, or a number ending in '-' or '.'."""
    words = [_enum_text(v) for v in arg.enum if not isinstance(v, str)] + ["True", "False", "None"]
    for word in sorted(words, key=len):
        if word.startswith(token):
            return word[len(token):]
    return "0" if token.endswith(("-", ".")) else ""


def closing_text(text: str, tools: Mapping[str, Tool]) -> str:
    """A short text that completes ``text`` (a prefix that the grammar for ``tools`` allows) into a
    whole plan: the open step is finished with the shortest argument values, then join."""
    if END_OF_PLAN in text:
        return ""
    *done, line = text.split("\n")
    k = 1 + sum(bool(_STEP_LINE.match(d)) for d in done)
    if line.startswith("Thought: ") or "Thought: ".startswith(line) and line:
        return "Thought: "[len(line):] + "\n" + join_line(k)
    head = f"{k}. "
    if len(line) < len(head):
        return head[len(line):] + join_line(k)[len(head):]
    rest = line[len(head):]
    name, paren, args_text = rest.partition("(")
    full_join = join_line(k)[len(head):]
    if full_join.startswith(rest):
        return full_join[len(rest):]
    if not paren:
        tool = min((t for t in tools.values() if t.name.startswith(name)),
                   key=lambda t: len(t.name) + sum(len(minimal_value(a)) + 2 for a in t.args[:t.required]))
        return (tool.name[len(name):] + "(" + ", ".join(minimal_value(a) for a in tool.args[:tool.required]) + ")\n"
                + join_line(k + 1))
    finish = _finish_call(tools[name], args_text)
    return (finish or "") + "\n" + join_line(k + 1)
