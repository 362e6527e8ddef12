"""LLMCompiler plan syntax: parse plan text into steps, and write steps back as plan text.

Parsing never raises and never evaluates code: arguments go through ``ast.literal_eval`` after
size and nesting checks, and every problem is returned as a ``PlanError``.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

from tinyagent_ft.catalog import JOIN, TINYAGENT, Catalog, Tool, fits_type

END_OF_PLAN = "<END_OF_PLAN>"
MAX_PLAN_CHARS = 50_000  # real plans are < 2 KB; anything longer is generation gone astray
MAX_ARG_CHARS = 5_000
MAX_NESTING = 8

_ACTION = re.compile(r"^\s*(\d+)\. (\w+)\((.*)\)(\s*#\w+)?\s*$")
_STEP_LIKE = re.compile(r"^\s*\d+\.\s")
_THOUGHT = re.compile(r"^\s*Thought: ?(.*)$")
REFERENCE = re.compile(r"\$\{?(\d+)\}?")
# Problems TinyAgent's metric never sees: a plan with only these still has a structure to score.
ARGUMENT_ERRORS = frozenset({"arg_count", "arg_type"})


@dataclass(frozen=True)
class PlanError:
    code: str  # empty | too_long | bad_step | bad_id | unknown_tool | bad_args | arg_count | arg_type | bad_reference | missing_join
    message: str
    step: int | None = None

    def __str__(self) -> str:
        where = f"step {self.step}: " if self.step is not None else ""
        return f"{self.code}: {where}{self.message}"


@dataclass(frozen=True)
class Step:
    id: int
    tool: str
    args: tuple = ()
    refs: tuple[int, ...] = ()  # ids of the steps this one consumes, sorted, unique
    thought: str | None = None


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)  # join included as the last step when present
    errors: list[PlanError] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """Parses and matches the tools' argument schema."""
        return not self.errors

    @property
    def parses(self) -> bool:
        """Steps, tools, references and join are sound; arguments may still be off in count or type."""
        return all(e.code in ARGUMENT_ERRORS for e in self.errors)

    @property
    def tools(self) -> list[str]:
        """Tool names in step order, join excluded."""
        return [s.tool for s in self.steps if s.tool != JOIN]


def find_refs(value: Any) -> list[int]:
    """Every ``$k`` / ``${k}`` inside a value, recursing into lists, tuples and dicts."""
    if isinstance(value, str):
        return [int(k) for k in REFERENCE.findall(value) if len(k) < 7]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in find_refs(v)]
    if isinstance(value, dict):
        return [r for kv in value.items() for v in kv for r in find_refs(v)]
    return []


def _nesting(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


def _parse_args(text: str) -> tuple[tuple | None, str | None]:
    if not text.strip():
        return (), None
    if len(text) > MAX_ARG_CHARS:
        return None, f"arguments longer than {MAX_ARG_CHARS} characters"
    if _nesting(text) > MAX_NESTING:
        return None, f"arguments nested deeper than {MAX_NESTING}"
    try:
        value = ast.literal_eval(f"({text},)")
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        return None, f"unparseable arguments ({type(exc).__name__})"
    return value, None


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and REFERENCE.fullmatch(value.strip()) is not None


def _type_ok(value: Any, arg) -> bool:
    if _is_reference(value):
        return True  # an earlier result stands in for a value of any type
    if value is None:
        return arg.accepts_none
    if arg.enum:
        return value in arg.enum and fits_type(value, arg.type)
    if arg.is_list:
        return isinstance(value, (list, tuple)) and all(
            fits_type(v, arg.item_type) or (_is_reference(v) and arg.item_type != "str") for v in value)
    return fits_type(value, arg.type)


def _check_schema(step: Step, tool: Tool) -> list[PlanError]:
    n, low, high = len(step.args), tool.required, len(tool.args)
    if not low <= n <= high:
        takes = f"{high}" if low == high else f"{low} to {high}"
        return [PlanError("arg_count", f"{step.tool} takes {takes} arguments, got {n}", step.id)]
    return [PlanError("arg_type", f"{step.tool} argument {a.name!r} must be {a.type}"
                      + (f" (one of {list(a.enum)})" if a.enum else "") + f", got {v!r:.40}", step.id)
            for v, a in zip(step.args, tool.args) if not _type_ok(v, a)]


def parse_plan(text: Any, catalog: Catalog = TINYAGENT) -> Plan:
    """Parse plan text into steps, checked against ``catalog``; problems are returned in ``Plan.errors``,
    never raised."""
    plan = Plan()
    if not isinstance(text, str) or not text.strip():
        plan.errors.append(PlanError("empty", "no plan text"))
        return plan
    if len(text) > MAX_PLAN_CHARS:
        plan.errors.append(PlanError("too_long", f"plan longer than {MAX_PLAN_CHARS} characters"))
        return plan
    text = text.split(END_OF_PLAN, 1)[0]
    thought: str | None = None
    seen: set[int] = set()
    last_id = 0
    for line in text.splitlines():
        m_thought = _THOUGHT.match(line)
        if m_thought:
            thought = m_thought.group(1).strip()
            continue
        m = _ACTION.match(line)
        if not m:
            if _STEP_LIKE.match(line):
                plan.errors.append(PlanError("bad_step", f"cannot read step line {line.strip()[:60]!r}"))
            continue
        sid, tool, raw = int(m.group(1)), m.group(2), m.group(3)
        if sid <= last_id:
            plan.errors.append(PlanError("bad_id", f"id {sid} does not increase after {last_id}", sid))
        last_id = max(last_id, sid)
        if tool == JOIN:
            plan.steps.append(Step(sid, JOIN, (), (), thought))
            return plan
        if tool not in catalog:
            plan.errors.append(PlanError("unknown_tool", f"unknown tool {tool!r}", sid))
        args, problem = _parse_args(raw)
        if problem:
            plan.errors.append(PlanError("bad_args", problem, sid))
            args = ()
        refs = sorted(set(find_refs(args)))
        for r in refs:
            if r not in seen:
                why = "itself" if r == sid else ("a later step" if r > sid else "a missing step")
                plan.errors.append(PlanError("bad_reference", f"${r} refers to {why}", sid))
        step = Step(sid, tool, args, tuple(refs), thought)
        if tool in catalog and not problem:
            plan.errors.extend(_check_schema(step, catalog.get(tool)))
        plan.steps.append(step)
        seen.add(sid)
        thought = None
    plan.errors.append(PlanError("missing_join", "the plan does not end with join()"))
    return plan


def format_value(value: Any) -> str:
    """Python-literal text for an argument, double-quoted strings as in the published plans."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return repr(value)


def format_plan(calls: list[tuple[str, tuple]], end: bool = True) -> str:
    """Plan text for ``(tool, args)`` calls; references inside args are written as ``$k``; join is appended."""
    lines = [f"{i}. {tool}({', '.join(format_value(a) for a in args)})" for i, (tool, args) in enumerate(calls, 1)]
    lines.append(f"{len(calls) + 1}. join()" + (END_OF_PLAN if end else ""))
    return "\n".join(lines)
