"""Grammar engines for constrained plan decoding, llguidance (what ``tinyagent_ft.constrain`` uses) versus
xgrammar, on the same plan grammar, on the CPU.

Why: the mask for the next token is computed on the CPU for every generated token of every row, so the
grammar engine's compile time per tool set and mask time per token bound what constraining costs. This
script answers, on the project's own grammar and data, whether switching engine would pay.

What it does, for the first N test examples (grammar = the example's gold tools + 2 fixed other tools):

1. translates the Lark grammar of ``grammar.plan_grammar`` into xgrammar's EBNF (``lark_to_ebnf``) and
   checks that both engines accept every gold plan token by token;
2. times grammar compilation per tool set (first compile and the cached path of each engine);
3. for the first ``--mask-cases`` examples, times the mask per token while walking the gold plan (one
   row) and for batches of 8 rows filled together (llguidance ``fill_next_token_bitmask_par`` with an
   ``LLExecutor``, xgrammar ``BatchGrammarMatcher``), and compares the two engines' masks step by step;
   xgrammar can take 0.1-0.3 s for one mask inside this grammar's strings, hence the separate count;
4. times applying an (8, vocab) mask to float32 CPU logits with each engine's own apply function and with
   the numpy path that ``constrain.py`` uses (llguidance's is torch.compile'd: it needs a C++ compiler at
   run time and tens of CPU-seconds for its first call; ``--no-torch-compile`` skips it).

    nice -n 15 python benchmarks/eval/engines.py --n 200 --mask-cases 8 --no-torch-compile \
        --out benchmarks/eval/results/engines_cpu.json   # ~45 CPU-seconds on a 2-core machine

xgrammar is not a project dependency: install it by hand (``pip install --no-deps xgrammar`` plus
``apache-tvm-ffi``; triton, which its metadata declares on Linux, is only for GPU mask kernels).
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

# --- Lark (llguidance dialect) -> xgrammar EBNF --------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "0": "\0"}
_CLASS_ESCAPES = {"d": [("0", "9")], "w": [("a", "z"), ("A", "Z"), ("0", "9"), ("_", "_")],
                  "s": [(" ", " "), ("\t", "\r")]}


def ebnf_char(ch: str, in_class: bool) -> str:
    """One character written for an EBNF string literal or character class."""
    named = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}
    if ch in named:
        return named[ch]
    if in_class and ch in "]-^[":
        return "\\" + ch
    if not in_class and ch == '"':
        return '\\"'
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\x{ord(ch):02x}"
    return ch


def ebnf_string(text: str) -> str:
    return '"' + "".join(ebnf_char(c, False) for c in text) + '"'


def ebnf_class(ranges: Sequence[tuple[str, str]], negated: bool) -> str:
    body = "".join(ebnf_char(lo, True) + ("" if lo == hi else "-" + ebnf_char(hi, True)) for lo, hi in ranges)
    return "[" + ("^" if negated else "") + body + "]"


class _Regex:
    """A recursive-descent reader of the regex subset Lark terminals use (groups, alternation, classes,
    escapes, ``? * + {m} {m,} {m,n}``), written straight out as an EBNF expression."""

    def __init__(self, pattern: str):
        self.s, self.i = pattern, 0

    def error(self, what: str) -> ValueError:
        return ValueError(f"regex {self.s!r} at {self.i}: {what}")

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def take(self) -> str:
        ch = self.peek()
        if not ch:
            raise self.error("unexpected end")
        self.i += 1
        return ch

    def parse(self) -> str:
        out = self.alternation()
        if self.i != len(self.s):
            raise self.error("unbalanced ')'")
        return out

    def alternation(self) -> str:
        alts = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            alts.append(self.sequence())
        return alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"

    def sequence(self) -> str:
        items: list[tuple[str, str | None]] = []  # (ebnf, literal text when an unquantified literal)
        while self.peek() not in ("", "|", ")"):
            atom, literal = self.atom()
            quant = self.quantifier()
            items.append((atom + quant, None if quant else literal))
        parts: list[str] = []
        run = ""
        for ebnf, literal in items:  # merge adjacent literal characters into one string
            if literal is not None:
                run += literal
                continue
            if run:
                parts.append(ebnf_string(run))
                run = ""
            parts.append(ebnf)
        if run:
            parts.append(ebnf_string(run))
        return " ".join(parts) if parts else '""'

    def atom(self) -> tuple[str, str | None]:
        ch = self.take()
        if ch == "(":
            if self.s.startswith("?:", self.i):
                self.i += 2
            elif self.peek() == "?":
                raise self.error("lookaround and named groups are not supported")
            inner = self.alternation()
            if self.take() != ")":
                raise self.error("expected ')'")
            return "(" + inner + ")", None
        if ch == "[":
            return self.char_class(), None
        if ch == ".":
            return ebnf_class([("\n", "\n")], negated=True), None
        if ch == "\\":
            esc = self.take()
            if esc in _CLASS_ESCAPES:
                return ebnf_class(_CLASS_ESCAPES[esc], negated=False), None
            if esc.upper() in _CLASS_ESCAPES and esc.isupper():
                return ebnf_class(_CLASS_ESCAPES[esc.lower()], negated=True), None
            lit = self.escaped(esc)
            return ebnf_string(lit), lit
        if ch in "*+?{":
            raise self.error(f"nothing to repeat before {ch!r}")
        return ebnf_string(ch), ch

    def escaped(self, esc: str) -> str:
        if esc in _ESCAPES:
            return _ESCAPES[esc]
        if esc in "xu":
            width = 2 if esc == "x" else 4
            digits = self.s[self.i:self.i + width]
            self.i += width
            return chr(int(digits, 16))
        if esc.isalnum():
            raise self.error(f"unsupported escape \\{esc}")
        return esc  # an escaped punctuation character stands for itself

    def char_class(self) -> str:
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        ranges: list[tuple[str, str]] = []
        first = True
        while first or self.peek() != "]":
            first = False
            ch = self.take()
            if ch == "\\":
                esc = self.take()
                if esc in _CLASS_ESCAPES:
                    ranges += _CLASS_ESCAPES[esc]
                    continue
                ch = self.escaped(esc)
            if self.peek() == "-" and self.s[self.i + 1:self.i + 2] not in ("]", ""):
                self.i += 1
                hi = self.take()
                if hi == "\\":
                    hi = self.escaped(self.take())
                ranges.append((ch, hi))
            else:
                ranges.append((ch, ch))
        self.i += 1
        return ebnf_class(ranges, negated)

    def quantifier(self) -> str:
        ch = self.peek()
        if ch in ("*", "+", "?"):
            self.i += 1
            quant = ch
        elif ch == "{" and self.s[self.i + 1:self.i + 2].isdigit():
            end = self.s.index("}", self.i)
            quant = "{" + self.s[self.i + 1:end].replace(" ", "") + "}"
            self.i = end + 1
        else:
            return ""
        if self.peek() in ("?", "+"):
            raise self.error("lazy and possessive quantifiers are not supported")
        return quant


def regex_to_ebnf(pattern: str) -> str:
    """A regex (Lark ``/.../`` body, slashes unescaped) as one EBNF expression."""
    return _Regex(pattern).parse()


def _lark_tokens(body: str) -> Iterable[tuple[str, str]]:
    """Tokens of a Lark rule body: ('str', text), ('re', pattern), ('name', n) or ('op', c)."""
    i = 0
    while i < len(body):
        ch = body[i]
        if ch.isspace():
            i += 1
        elif ch == '"':
            j = i + 1
            while body[j] != '"':
                j += 2 if body[j] == "\\" else 1
            yield "str", ast.literal_eval(body[i:j + 1])
            i = j + 1
            if body[i:i + 1] == "i":
                raise ValueError("case-insensitive literals are not supported")
        elif ch == "/":
            j = i + 1
            while body[j] != "/":
                j += 2 if body[j] == "\\" else 1
            yield "re", body[i + 1:j].replace("\\/", "/")
            i = j + 1
            if body[i:i + 1].isalpha():
                raise ValueError(f"regex flags are not supported: {body[i:]!r}")
        elif ch.isalnum() or ch == "_":
            j = i
            while j < len(body) and (body[j].isalnum() or body[j] == "_"):
                j += 1
            yield "name", body[i:j]
            i = j
        elif ch in "()|?*+[]":
            yield "op", ch
            i += 1
        else:
            raise ValueError(f"unsupported Lark syntax at {body[i:]!r}")


def lark_expr_to_ebnf(body: str) -> str:
    out = []
    for kind, value in _lark_tokens(body):
        if kind == "str":
            out.append(ebnf_string(value))
        elif kind == "re":
            out.append("(" + regex_to_ebnf(value) + ")")
        elif kind == "name":
            out.append(value)
        elif value == "[":  # Lark's [x] is an optional x
            out.append("(")
        elif value == "]":
            out.append(")?")
        else:
            out.append(value)
    return " ".join(out)


def lark_rules(lark: str) -> list[tuple[str, str]]:
    """(name, body) per rule or terminal definition; ``|`` continuation lines join the previous one."""
    rules: list[tuple[str, str]] = []
    for line in lark.splitlines():
        text = line.strip()
        if not text or text.startswith("//"):
            continue
        if text.startswith("|"):
            name, body = rules[-1]
            rules[-1] = (name, body + " " + text)
            continue
        if text.startswith("%"):
            raise ValueError(f"Lark directive not supported: {text}")
        name, sep, body = text.partition(":")
        name = name.strip().lstrip("?!")
        if not sep or not name.replace("_", "a").isalnum():
            raise ValueError(f"not a rule: {text}")
        rules.append((name, body.strip()))
    return rules


def lark_to_ebnf(lark: str, start: str = "start") -> str:
    """xgrammar EBNF (root rule ``root``) for a Lark grammar: rules keep their names; each terminal
    (UPPERCASE, a regex or a literal) becomes a rule of the same language. Character-level EBNF has
    no lexer, so this is the same language as the lexer-based Lark grammar when, as in the plan
    grammar, nothing is ``%ignore``d and terminals are not ambiguous at their boundaries."""
    names = {name for name, _ in lark_rules(lark)}
    if "root" in names:
        raise ValueError("a Lark rule named 'root' would clash with EBNF's root")
    lines = [f"root ::= {start}"]
    lines += [f"{name} ::= {lark_expr_to_ebnf(body)}" for name, body in lark_rules(lark)]
    return "\n".join(lines) + "\n"


# --- the engines, behind one small interface ------------------------------------------------------

class Llguidance:
    """llguidance as ``constrain.PlanConstraint`` uses it: the project's tokenizer view (with its token
    slices), a matcher compiled once per tool set and deep-copied per row (the project's cache), masks
    of a batch filled in parallel by an ``LLExecutor``."""

    name = "llguidance"

    def __init__(self, tokenizer, threads: int):
        import llguidance
        import llguidance.torch as llt

        from tinyagent_ft.constrain import PlanConstraint
        self.llg, self.llt = llguidance, llt
        self.tokenizer = PlanConstraint(tokenizer).tokenizer
        self.vocab_size = self.tokenizer.vocab_size
        self.executor = llguidance.LLExecutor(num_threads=threads)
        self.version = metadata.version("llguidance")

    def source(self, lark: str) -> str:
        return lark

    def compile(self, source: str):
        m = self.llg.LLMatcher(self.tokenizer, self.llg.LLMatcher.grammar_from_lark(source), log_level=0)
        if m.is_error():
            raise ValueError(m.get_error())
        return m

    def cached(self, source: str, compiled):
        return compiled.deep_copy()  # no engine cache: the project keeps compiled matchers and copies them

    def matcher(self, compiled):
        return compiled.deep_copy()

    def fill(self, matcher, bitmask, row: int) -> None:
        self.llt.fill_next_token_bitmask(matcher, bitmask, row)

    def fill_batch(self, matchers: Sequence, rows: Sequence[int], bitmask) -> None:
        self.llt.fill_next_token_bitmask_par(self.executor, list(zip(matchers, rows)), bitmask)

    def consume(self, matcher, token: int) -> bool:
        return matcher.consume_token(token)

    def accepting(self, matcher) -> bool:
        return matcher.is_accepting()

    def forced_bytes(self, matcher) -> bytes:
        return matcher.compute_ff_bytes()

    def apply(self, logits, bitmask) -> None:
        self.llt.apply_token_bitmask_inplace(logits, bitmask)  # torch.compile'd: inductor builds C++ on CPU


class Xgrammar:
    """xgrammar with its caching ``GrammarCompiler``. ``reader`` 'ebnf' compiles ``lark_to_ebnf``'s
    output; 'lark' hands the Lark text to xgrammar's own Lark reader (a cross-check of the translation)."""

    def __init__(self, tokenizer, threads: int, reader: str = "ebnf"):
        import xgrammar as xg
        self.xg, self.reader = xg, reader
        self.name = "xgrammar" if reader == "ebnf" else "xgrammar (own Lark reader)"
        self.info = xg.TokenizerInfo.from_huggingface(tokenizer, vocab_size=len(tokenizer))
        self.vocab_size = self.info.vocab_size
        self.compiler = xg.GrammarCompiler(self.info, max_threads=threads, cache_enabled=True)
        self.batch = xg.BatchGrammarMatcher(max_threads=threads)
        self.version = metadata.version("xgrammar")

    def source(self, lark: str) -> str:
        return lark_to_ebnf(lark) if self.reader == "ebnf" else lark

    def compile(self, source: str):
        return self.compiler.compile_grammar(source) if self.reader == "ebnf" else self.compiler.compile_lark(source)

    def cached(self, source: str, compiled):
        return self.xg.GrammarMatcher(self.compile(source))  # compiler cache hit, then a fresh matcher

    def matcher(self, compiled):
        return self.xg.GrammarMatcher(compiled)

    def fill(self, matcher, bitmask, row: int) -> None:
        matcher.fill_next_token_bitmask(bitmask, row)

    def fill_batch(self, matchers: Sequence, rows: Sequence[int], bitmask) -> None:
        self.batch.batch_fill_next_token_bitmask(list(matchers), bitmask, list(rows))

    def consume(self, matcher, token: int) -> bool:
        return matcher.accept_token(token)

    def accepting(self, matcher) -> bool:
        return matcher.is_completed()

    def apply(self, logits, bitmask) -> None:
        self.xg.apply_token_bitmask_inplace(logits, bitmask)  # native CPU kernel for CPU tensors


# --- data and statistics --------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    tools: tuple[str, ...]  # gold tools + the fixed extra tools, sorted
    plan: str
    tokens: tuple[int, ...]


def tool_set(gold: Iterable[str], extra: Sequence[str], n_extra: int = 2) -> tuple[str, ...]:
    """Gold tools plus the first ``n_extra`` of ``extra`` that are not gold."""
    gold = set(gold)
    return tuple(sorted(gold | set([t for t in extra if t not in gold][:n_extra])))


def load_cases(data: str, n: int, tokenizer, extra: Sequence[str]) -> list[Case]:
    from tinyagent_ft.data import load_dataset
    examples = load_dataset(data, "test").examples[:n]
    return [Case(e.id, tool_set(e.tools, extra), e.plan, tuple(tokenizer.encode(e.plan, add_special_tokens=False)))
            for e in examples]


def summary_us(ns: Sequence[float]) -> dict:
    """Count, median, p95, mean and max in microseconds of durations in nanoseconds."""
    if not ns:
        return {"n": 0}
    a = np.asarray(ns, dtype=np.float64) / 1000
    return {"n": int(a.size), "median_us": round(float(np.median(a)), 2), "p95_us": round(float(np.percentile(a, 95)), 2),
            "mean_us": round(float(a.mean()), 2), "max_us": round(float(a.max()), 2)}


def token_counts(cases: Sequence[Case]) -> dict:
    n = np.array([len(c.tokens) for c in cases])
    return {"total": int(n.sum()), "median": float(np.median(n)), "p95": float(np.percentile(n, 95)), "max": int(n.max())}


def timed(fn: Callable, *args) -> tuple[object, int]:
    start = time.perf_counter_ns()
    out = fn(*args)
    return out, time.perf_counter_ns() - start


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def new_bitmask(rows: int, vocab_size: int):
    import torch
    return torch.full((rows, (vocab_size + 31) // 32), -1, dtype=torch.int32)


def allowed(bitmask_row) -> np.ndarray:
    return np.unpackbits(bitmask_row.numpy().view(np.uint8), bitorder="little").astype(bool)


# --- measurements ---------------------------------------------------------------------------------

def measure_compile(engine, sources: dict[tuple[str, ...], str], warmup: str) -> tuple[dict, dict]:
    """Compile every tool set's grammar once (first compile), then again through the engine's cache path."""
    _, warm_ns = timed(engine.compile, warmup)  # the first grammar of a process pays one-off setup
    before = rss_bytes()
    compiled, first, again = {}, [], []
    for key, source in sources.items():
        compiled[key], ns = timed(engine.compile, source)
        first.append(ns)
    grown = rss_bytes() - before
    for key, source in sources.items():
        again.append(timed(engine.cached, source, compiled[key])[1])
    stats = {"tool_sets": len(sources), "warmup_first_grammar_ms": round(warm_ns / 1e6, 1),
             "first_compile": summary_us(first), "cached": summary_us(again),
             "rss_growth_mb_all_tool_sets": round(grown / 2**20, 1)}
    if hasattr(next(iter(compiled.values())), "memory_size_bytes"):
        stats["compiled_grammar_mb_mean"] = round(float(np.mean([c.memory_size_bytes for c in compiled.values()])) / 2**20, 1)
    return compiled, stats


def check_gold(engine, cases: Sequence[Case], compiled: dict) -> dict[str, str]:
    """Per case: 'ok' when every gold token is accepted and the plan is complete after the last one,
    else where it failed. No masks: cheap enough for every case."""
    verdicts = {}
    for case in cases:
        m = engine.matcher(compiled[case.tools])
        bad = next((i for i, t in enumerate(case.tokens) if not engine.consume(m, t)), None)
        verdicts[case.id] = "ok" if bad is None and engine.accepting(m) else \
            ("not complete at end" if bad is None else f"rejected token {bad}")
    return verdicts


def walk_single(engine, cases: Sequence[Case], compiled: dict, reference: dict | None = None) -> tuple[dict, dict]:
    """Mask then consume, token by token along each gold plan, one row. Returns timings and each step's
    mask (allowed-token booleans), or, given the reference engine's masks, compares against them."""
    bitmask = new_bitmask(1, engine.vocab_size)
    fill_ns, consume_ns, masks = [], [], {}
    for case in cases:
        m = engine.matcher(compiled[case.tools])
        for step, token in enumerate(case.tokens):
            fill_ns.append(timed(engine.fill, m, bitmask, 0)[1])
            masks[case.id, step] = allowed(bitmask[0])
            ok, ns = timed(engine.consume, m, token)
            consume_ns.append(ns)
            if not ok:
                break
    return {"cases": len(cases), "mask": summary_us(fill_ns), "consume": summary_us(consume_ns)}, masks


def walk_batch(engine, cases: Sequence[Case], compiled: dict, batch: int) -> dict:
    """Rows of ``batch`` plans walked together; one batched mask fill per step for the rows still going."""
    bitmask = new_bitmask(batch, engine.vocab_size)
    step_ns, row_steps = [], 0
    for i in range(0, len(cases), batch):
        group = cases[i:i + batch]
        matchers = [engine.matcher(compiled[c.tools]) for c in group]
        for step in range(max(len(c.tokens) for c in group)):
            rows = [r for r, c in enumerate(group) if step < len(c.tokens)]
            bitmask.fill_(-1)
            step_ns.append(timed(engine.fill_batch, [matchers[r] for r in rows], rows, bitmask)[1])
            row_steps += len(rows)
            for r in rows:
                engine.consume(matchers[r], group[r].tokens[step])
    return {"batch": batch, "cases": len(cases), "step": summary_us(step_ns),
            "mean_us_per_row_step": round(sum(step_ns) / max(row_steps, 1) / 1000, 2), "row_steps": row_steps}


def compare_masks(ref: dict, other: dict, cases: Sequence[Case], tokenizer, forced: Callable[[Case, int], bytes],
                  show: int = 6) -> dict:
    """Steps where two engines' masks differ, split by which side allows more; a few described. ``forced``
    gives the reference engine's forced bytes at a step (where the grammar allows one continuation)."""
    by_id = {c.id: c for c in cases}
    out = {"steps_compared": 0, "differing_steps": 0, "ref_allows_extra": 0, "other_allows_extra": 0,
           "differing_at_forced_bytes": 0, "cases_with_difference": 0, "examples": []}
    differing_cases = set()
    for key in sorted(set(ref) & set(other)):
        want, got = ref[key], other[key]
        out["steps_compared"] += 1
        if np.array_equal(want, got):
            continue
        case, step = by_id[key[0]], key[1]
        only_ref, only_other = np.flatnonzero(want & ~got), np.flatnonzero(got & ~want)
        is_forced = bool(forced(case, step))
        out["differing_steps"] += 1
        out["ref_allows_extra"] += bool(only_ref.size)
        out["other_allows_extra"] += bool(only_other.size)
        out["differing_at_forced_bytes"] += is_forced
        differing_cases.add(case.id)
        if len(out["examples"]) < show:
            out["examples"].append({"id": case.id, "step": step, "text_so_far": tokenizer.decode(case.tokens[:step])[-50:],
                                    "forced_next_bytes": forced(case, step).decode(errors="replace"),
                                    "only_reference": [tokenizer.decode([t]) for t in only_ref[:8]],
                                    "only_other": [tokenizer.decode([t]) for t in only_other[:8]],
                                    "only_reference_count": int(only_ref.size), "only_other_count": int(only_other.size)})
    out["cases_with_difference"] = len(differing_cases)
    return out


def forced_at(engine, compiled: dict) -> Callable[[Case, int], bytes]:
    def forced(case: Case, step: int) -> bytes:
        m = engine.matcher(compiled[case.tools])
        for t in case.tokens[:step]:
            engine.consume(m, t)
        return engine.forced_bytes(m)
    return forced


def measure_apply(engines: Sequence, bitmask, repeats: int, skip: Sequence[str] = ()) -> dict:
    """Time each engine's in-place apply, and the numpy path of ``constrain.py``, on (rows, vocab)
    float32 CPU logits; check each against the expected result."""
    import torch
    torch.manual_seed(0)
    base = torch.randn(bitmask.shape[0], engines[0].vocab_size, dtype=torch.float32)
    bits = np.unpackbits(bitmask.numpy().view(np.uint8), axis=1, bitorder="little")[:, :base.shape[1]] == 0
    expected = base.clone()
    expected[torch.from_numpy(bits)] = float("-inf")

    def numpy_apply(logits, mask):
        b = np.unpackbits(mask.numpy().view(np.uint8), axis=1, bitorder="little")
        np.copyto(logits.numpy(), -np.inf, where=b[:, :logits.shape[1]] == 0)

    fns = [(f"{e.name}.apply_token_bitmask_inplace", e.apply) for e in engines] + [("numpy (constrain.py)", numpy_apply)]
    out = {}
    for label, fn in fns:
        if any(s in label for s in skip):
            out[label] = {"works": None, "error": "not run (--no-torch-compile)"}
            continue
        logits = base.clone()
        try:
            _, first_ns = timed(fn, logits, bitmask)
        except Exception as exc:  # e.g. torch.compile without a working compiler
            out[label] = {"works": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
            continue
        correct = bool(torch.equal(logits, expected))
        ns = []
        for _ in range(repeats):
            logits.copy_(base)
            ns.append(timed(fn, logits, bitmask)[1])
        out[label] = {"works": True, "correct": correct, "first_call_ms": round(first_ns / 1e6, 1), **summary_us(ns)}
    return out


def batch_bitmask(engine, cases: Sequence[Case], compiled: dict, rows: int, at: int):
    """A realistic (rows, words) mask: each row's state after ``at`` tokens of its gold plan."""
    bitmask = new_bitmask(rows, engine.vocab_size)
    for r, case in enumerate(cases[:rows]):
        m = engine.matcher(compiled[case.tools])
        for token in case.tokens[:min(at, len(case.tokens) - 1)]:
            engine.consume(m, token)
        engine.fill(m, bitmask, r)
    return bitmask


# --- install footprint ----------------------------------------------------------------------------

def dist_info(name: str) -> dict:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return {"installed": False}
    size = sum((f.size or 0) for f in dist.files or [])
    return {"installed": True, "version": dist.version, "installed_mb": round(size / 2**20, 1),
            "requires": [r for r in dist.requires or [] if "extra ==" not in r]}


def footprint(wheel_sizes: Sequence[str], notes: Sequence[str]) -> dict:
    sizes = {}
    for item in wheel_sizes:
        name, _, value = item.partition("=")
        sizes[name] = round((os.path.getsize(value) if os.path.isfile(value) else int(value)) / 2**20, 2)
    return {"dists": {n: dist_info(n) for n in ("llguidance", "xgrammar", "apache-tvm-ffi", "triton")},
            "wheel_mb": sizes, "notes": list(notes)}


# --- report ---------------------------------------------------------------------------------------

HEADER = ["engine", "compile ms med/p95", "cache hit us", "MB/grammar", "mask us med/p95/mean (1 row)",
          "batch step us med/p95", "gold accepted", "mask diff steps"]


def table_rows(result: dict) -> list[list[str]]:
    rows = []
    for name, r in result["engines"].items():
        c, s, b = r["compile"], r["single"]["mask"], r["batch"]["step"]
        diff = result["mask_comparison"].get(name)
        rows.append([name, f"{c['first_compile']['median_us'] / 1000:.1f} / {c['first_compile']['p95_us'] / 1000:.1f}",
                     f"{c['cached']['median_us']:.1f}", str(c.get("compiled_grammar_mb_mean", "-")),
                     f"{s['median_us']:.1f} / {s['p95_us']:.1f} / {s['mean_us']:.1f}",
                     f"{b['median_us']:.1f} / {b['p95_us']:.1f}", f"{r['gold_accepted']}/{result['cases']}",
                     f"{diff['differing_steps']}/{diff['steps_compared']}" if diff else "(reference)"])
    return rows


def print_table(result: dict) -> None:
    rows = table_rows(result)
    try:
        from rich.console import Console
        from rich.table import Table
        t = Table(title=f"grammar engines on the CPU: {result['cases']} test plans, masks timed on "
                        f"{result['mask_cases']}, batch {result['batch']}, {result['threads']} threads")
        for h in HEADER:
            t.add_column(h)
        for r in rows:
            t.add_row(*r)
        Console(width=200).print(t)
    except ImportError:
        print(" | ".join(HEADER))
        for r in rows:
            print(" | ".join(r))
    for name, r in result["engines"].items():
        if "single_all_cases" in r:
            a, b = r["single_all_cases"]["mask"], r["batch_all_cases"]["step"]
            print(f"{name} on all {result['cases']} plans: mask {a['median_us']} / {a['p95_us']} us (median / p95), "
                  f"batch step {b['median_us']} / {b['p95_us']} us")
    print(f"verdict disagreements on gold plans: {result['gold_verdict_disagreements']}")
    for label, a in result["apply"].items():
        print(f"apply {label}: " + (f"median {a['median_us']} us, p95 {a['p95_us']} us, first call {a['first_call_ms']} ms, "
                                    f"correct={a['correct']}" if a["works"] else f"{a['error']}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/demo/data")
    ap.add_argument("--n", type=int, default=200, help="test examples: compile and gold-acceptance checks")
    ap.add_argument("--mask-cases", type=int, default=200,
                    help="the first this many also get masks timed and compared (xgrammar's masks can take 0.1 s a step)")
    ap.add_argument("--model", default="smollm2-135m", help="whose tokenizer (tinyagent_ft.models name or path)")
    ap.add_argument("--extra-tools", nargs="+", default=["get_phone_number", "summarize_pdf", "open_note", "maps_open_location"],
                    help="the first 2 of these not among an example's gold tools join its grammar")
    ap.add_argument("--threads", type=int, default=2, help="LLExecutor, xgrammar compiler and batch-matcher threads")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--apply-repeats", type=int, default=200)
    ap.add_argument("--xgrammar-lark", action="store_true", help="also run xgrammar's own Lark reader")
    ap.add_argument("--no-torch-compile", action="store_true", help="skip llguidance's torch.compile'd apply")
    ap.add_argument("--wheel-size", action="append", default=[], help="NAME=PATH_OR_BYTES, recorded in the JSON")
    ap.add_argument("--note", action="append", default=[], help="install notes recorded in the JSON")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import torch
    from transformers import AutoTokenizer

    from tinyagent_ft.catalog import TINYAGENT
    from tinyagent_ft.grammar import plan_grammar
    from tinyagent_ft.models import resolve_model
    cpu_start = time.process_time()
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model))
    cases = load_cases(args.data, args.n, tokenizer, args.extra_tools)
    mask_cases = cases[:args.mask_cases]
    grammars = {key: plan_grammar([TINYAGENT.get(t) for t in key]) for key in dict.fromkeys(c.tools for c in cases)}
    warmup = plan_grammar([TINYAGENT.get(t) for t in args.extra_tools[:1]])

    makers = [lambda: Llguidance(tokenizer, args.threads), lambda: Xgrammar(tokenizer, args.threads, "ebnf")]
    if args.xgrammar_lark:
        makers.append(lambda: Xgrammar(tokenizer, args.threads, "lark"))
    result = {"cases": len(cases), "mask_cases": len(mask_cases), "threads": args.threads, "batch": args.batch,
              "tool_sets": len(grammars), "extra_tools": args.extra_tools,
              "plan_tokens": token_counts(cases),
              "engines": {}, "mask_comparison": {}}
    engines, compiled, masks, verdicts = [], {}, {}, {}
    for make in makers:
        engine, setup_ns = timed(make)
        engines.append(engine)
        sources, translate_ns = {}, []
        for key, lark in grammars.items():
            sources[key], ns = timed(engine.source, lark)
            translate_ns.append(ns)
        compiled[engine.name], cstats = measure_compile(engine, sources, engine.source(warmup))
        verdicts[engine.name] = check_gold(engine, cases, compiled[engine.name])
        single, masks[engine.name] = walk_single(engine, mask_cases, compiled[engine.name])
        result["engines"][engine.name] = {
            "version": engine.version, "tokenizer_setup_ms": round(setup_ns / 1e6, 1),
            "grammar_source": summary_us(translate_ns), "compile": cstats,
            "gold_accepted": sum(v == "ok" for v in verdicts[engine.name].values()),
            "gold_failures": {k: v for k, v in verdicts[engine.name].items() if v != "ok"},
            "single": single, "batch": walk_batch(engine, mask_cases, compiled[engine.name], args.batch)}
        if not engines[1:] and len(mask_cases) < len(cases):  # the reference is cheap: also time it on every case
            result["engines"][engine.name]["single_all_cases"] = walk_single(engine, cases, compiled[engine.name])[0]
            result["engines"][engine.name]["batch_all_cases"] = walk_batch(engine, cases, compiled[engine.name], args.batch)
    ref = engines[0]
    result["gold_verdict_disagreements"] = {
        e.name: sum(verdicts[e.name][c.id] != verdicts[ref.name][c.id] for c in cases) for e in engines[1:]}
    forced = forced_at(ref, compiled[ref.name])
    for e in engines[1:]:
        result["mask_comparison"][e.name] = compare_masks(masks[ref.name], masks[e.name], mask_cases, tokenizer, forced)

    bitmask = batch_bitmask(ref, cases, compiled[ref.name], args.batch, at=6)
    result["apply"] = measure_apply(engines[:2], bitmask, args.apply_repeats,
                                    skip=["llguidance"] if args.no_torch_compile else [])
    result["environment"] = {"python": platform.python_version(), "torch": torch.__version__,
                             "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
                             "cores": os.cpu_count(), "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
                             "niceness": os.nice(0), "process_cpu_s": round(time.process_time() - cpu_start, 1)}
    result["footprint"] = footprint(args.wheel_size, args.note)
    print_table(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
