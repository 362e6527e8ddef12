"""Generate a TinyAgent-format dataset (train / validation / test) without any hub access.

TinyAgent-specific: its intents and entity pools are written for the 16 desktop tools of the default
catalog. A team with its own tools brings its own data (TinyAgent JSON or the project JSONL, see
``tinyagent_ft.data``), validated against its catalog.

Held-out design: a fraction of every intent's phrasings and of every entity pool is reserved for
validation and test, so their success rate measures generalisation rather than memorisation.
Dates are said in natural language ("next Tuesday at 3pm") and resolved against the "today" stated
in the prompt. Conventions: "on/next/this <weekday>" is the first such day after today;
"morning" 09:00, "afternoon" 14:00, "evening" 18:00.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from eval.plan import format_plan
from tinyagent_ft.prompt import build_system_prompt, sample_prompt_tools, user_message

from . import pools as P
from .intents import INTENTS, Intent

SPLIT_POOLS = {"person": P.PEOPLE, "file": P.FILES, "place": P.PLACES, "title": P.MEETING_TITLES,
               "subject": P.SUBJECTS, "note": P.NOTE_NAMES, "task": P.TASKS, "text": P.NOTE_TEXTS,
               "message": P.MESSAGES, "topic": P.TOPICS}
SHARED_POOLS = {"folder": P.FOLDERS, "list": P.LISTS}
_LEVELS = {"high": 1, "medium": 5, "low": 9}
_HOURS = ((9, 0, "9am"), (10, 0, "10am"), (10, 30, "10:30am"), (11, 0, "11am"), (12, 0, "noon"),
          (13, 0, "1pm"), (14, 0, "2pm"), (14, 30, "2:30pm"), (15, 0, "3pm"), (16, 0, "4pm"),
          (16, 45, "4:45pm"), (17, 0, "5pm"), (18, 30, "6:30pm"), (19, 0, "7pm"))
_PARTS = (("morning", 9), ("afternoon", 14), ("evening", 18))
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DURATIONS = (15, 20, 30, 45, 90, 120)
ISO = "%Y-%m-%d %H:%M:%S"


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def split_heldout(values, fraction: float) -> tuple[tuple, tuple]:
    """(train values, held-out values): the ``fraction`` with the lowest stable hash is held out."""
    ordered = sorted(values, key=_stable_hash)
    k = min(len(ordered) - 1, max(1, math.ceil(fraction * len(ordered))))
    return tuple(ordered[k:]), tuple(ordered[:k])


def _day_phrase(rng: random.Random, today: datetime) -> tuple[str, datetime]:
    kind = rng.randrange(5)
    if kind == 0:
        return "tomorrow", today + timedelta(days=1)
    if kind == 1:
        return "the day after tomorrow", today + timedelta(days=2)
    if kind == 2:
        wd = rng.randrange(7)
        ahead = (wd - today.weekday()) % 7 or 7
        word = rng.choice(("on", "next", "this"))
        return f"{word} {_WEEKDAYS[wd]}", today + timedelta(days=ahead)
    if kind == 3:
        n = rng.randrange(3, 10)
        return f"in {n} days", today + timedelta(days=n)
    day = today + timedelta(days=rng.randrange(10, 120))
    return f"on {day.strftime('%B')} {day.day}", day


def _when_phrase(rng: random.Random, today: datetime) -> tuple[str, datetime]:
    if rng.random() < 0.2:
        part, hour = rng.choice(_PARTS)
        day = today + timedelta(days=1)
        return f"tomorrow {part}", day.replace(hour=hour, minute=0)
    phrase, day = _day_phrase(rng, today)
    hour, minute, label = rng.choice(_HOURS)
    at = "at noon" if label == "noon" else f"at {label}"
    return f"{phrase} {at}", day.replace(hour=hour, minute=minute)


class Slots(dict):
    """Slot values drawn on first use; after ``freeze()`` only derived values may still be drawn."""

    def __init__(self, rng: random.Random, pools: dict[str, tuple], today: datetime):
        super().__init__()
        self.rng, self.pools, self.today, self.frozen = rng, pools, today, False

    def freeze(self) -> None:
        self.frozen = True

    def _distinct(self, base: str, key: str):
        taken = {self[k] for k in (base, base + "2", base + "3") if k != key and k in self}
        while True:
            value = self.rng.choice(self.pools[base])
            if value not in taken:
                return value

    def __missing__(self, key: str):
        derived = {"start": lambda: self["_start"].strftime(ISO),
                   "end": lambda: (self["_start"] + timedelta(minutes=self["minutes"])).strftime(ISO),
                   "minutes": lambda: self.get("duration", 60),
                   "priority": lambda: _LEVELS[self["level"]],
                   "day_start": lambda: self["_day"].strftime(ISO)}
        if key in derived:
            value = derived[key]()
        elif self.frozen:
            raise KeyError(f"slot {key!r} is used by the plan but not said in the query")
        elif key.rstrip("23") in self.pools:
            value = self._distinct(key.rstrip("23"), key)
        elif key in ("when", "_start"):
            self["when"], self["_start"] = _when_phrase(self.rng, self.today)
            return self[key]
        elif key in ("day", "_day"):
            phrase, day = _day_phrase(self.rng, self.today)
            self["day"], self["_day"] = phrase, day.replace(hour=0, minute=0)
            return self[key]
        elif key == "duration":
            value = self.rng.choice(_DURATIONS)
        elif key == "level":
            value = self.rng.choice(tuple(_LEVELS))
        elif key == "email":
            name = self.rng.choice(self.pools["person"]).lower().replace(" ", ".")
            value = f"{name}@{self.rng.choice(P.DOMAINS)}"
        elif key == "phone":
            value = f"+1 {self.rng.randrange(200, 999)}-555-{self.rng.randrange(10000):04d}"
        else:
            raise KeyError(f"unknown slot {key!r}")
        self[key] = value
        return value


@dataclass(frozen=True)
class SynthConfig:
    n: int = 40_000
    seed: int = 0
    heldout: float = 0.2  # fraction of phrasings and entity values reserved for validation/test
    val_fraction: float = 0.025
    test_fraction: float = 0.025
    negatives: int = 3  # irrelevant tools added to each stored prompt


class Generator:
    def __init__(self, cfg: SynthConfig):
        if not 0 < cfg.heldout < 1:
            raise ValueError(f"heldout must be in (0, 1), got {cfg.heldout}")
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        split = {k: split_heldout(v, cfg.heldout) for k, v in SPLIT_POOLS.items()}
        self.pools = {False: {**SHARED_POOLS, **{k: v[0] for k, v in split.items()}},
                      True: {**SHARED_POOLS, **{k: v[1] for k, v in split.items()}}}
        self.phrasings = {i.name: split_heldout(i.phrasings, cfg.heldout) for i in INTENTS}
        self.weights = [i.weight for i in INTENTS]

    def _today(self) -> datetime:
        start = datetime(2024, 1, 1)
        return start + timedelta(days=self.rng.randrange(3 * 365), hours=self.rng.randrange(7, 22),
                                 minutes=5 * self.rng.randrange(12))

    def sample(self, heldout: bool, intent: Intent | None = None) -> tuple[Intent, str, datetime, list]:
        """One (intent, query, today, calls) drawn from the train or the held-out side."""
        intent = intent or self.rng.choices(INTENTS, self.weights)[0]
        today = self._today()
        slots = Slots(self.rng, self.pools[heldout], today)
        phrasing = self.rng.choice(self.phrasings[intent.name][heldout])
        query = phrasing.format_map(slots)
        slots.freeze()
        return intent, query, today, intent.build(slots)

    def record(self, heldout: bool) -> tuple[str, dict]:
        intent, query, today, calls = self.sample(heldout)
        rid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        tools = sample_prompt_tools({t for t, _ in calls}, self.cfg.negatives + (0 if calls else 1), self.rng)
        system = build_system_prompt(tools, [], today)
        user = user_message(query)
        plan = format_plan(calls)
        done = "I have completed the requested actions." if calls else "The available tools cannot handle this query."
        return rid, {
            "input": query,
            "intent": intent.name,
            "output": [
                {"type": "plan", "raw_input": repr([{"role": "system", "content": system},
                                                    {"role": "user", "content": user}]),
                 "raw_output": plan,
                 "parsed_output": [{"tool_name": t, "tool_args": list(a)} for t, a in calls],
                 "id": rid, "index": 0},
                {"type": "join", "raw_input": repr([{"role": "user", "content": user}]),
                 "raw_output": f"Thought: {done}\nAction: Finish({done})",
                 "parsed_output": {"thought": done, "action": "Finish", "message": done},
                 "id": rid, "index": 1},
            ],
        }

    def split_sizes(self) -> dict[str, int]:
        n_val = round(self.cfg.n * self.cfg.val_fraction)
        n_test = round(self.cfg.n * self.cfg.test_fraction)
        return {"train": self.cfg.n - n_val - n_test, "validation": n_val, "test": n_test}

    def generate(self, progress=None) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for split, size in self.split_sizes().items():
            records = {}
            for _ in range(size):
                rid, rec = self.record(heldout=split != "train")
                records[rid] = rec
                if progress:
                    progress()
            out[split] = records
        return out


def synthesize(out_dir: str | Path, cfg: SynthConfig, progress=None) -> dict:
    """Write ``train.json``, ``validation.json``, ``test.json`` and ``meta.json``; returns the meta."""
    t0 = time.perf_counter()
    data = Generator(cfg).generate(progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for split, records in data.items():
        with (out / f"{split}.json").open("w", encoding="utf-8") as fh:
            json.dump(records, fh, ensure_ascii=False)
    meta = {"config": cfg.__dict__, "counts": {k: len(v) for k, v in data.items()},
            "intents": len(INTENTS), "seconds": round(time.perf_counter() - t0, 2)}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta
