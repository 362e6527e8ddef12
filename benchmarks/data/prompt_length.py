"""Median planner-prompt length in tokens: 4 tools + 2 negatives + 3 in-context examples versus all
16 tools with the same examples, over synthetic test queries.

    python benchmarks/data/prompt_length.py [--tokenizer smollm2-135m] [--n 500]

"4 tools" are the query's gold tools filled up to 4 with other tools; 2 more irrelevant tools are
added as negatives; the 3 examples are random training examples (retrieval comes with the retriever).
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile

from tinyagent_ft.catalog import TINYAGENT
from tinyagent_ft.data import load_dataset
from tinyagent_ft.models import load_tokenizer
from tinyagent_ft.prompt import Demo, build_system_prompt, render, sample_prompt_tools
from tinyagent_ft.synth.generate import SynthConfig, synthesize


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=500)
    args = ap.parse_args()
    data = tempfile.mkdtemp()
    synthesize(data, SynthConfig(n=4000, seed=0, val_fraction=0.0, test_fraction=args.n / 4000))
    train, test = load_dataset(data, "train").examples, load_dataset(data, "test").examples
    tok = load_tokenizer(args.tokenizer)
    rng = random.Random(0)
    count = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    small, full = [], []
    for e in test:
        demos = [Demo(d.query, d.plan) for d in rng.sample(train, 3)]
        gold = set(e.tools)
        filler = rng.sample([t for t in TINYAGENT.names if t not in gold], max(0, 4 - len(gold)))
        tools = sample_prompt_tools(gold | set(filler), 2, rng)
        small.append(count(render(build_system_prompt(tools, demos, e.today), e.query, tok)))
        full.append(count(render(build_system_prompt(list(TINYAGENT.names), demos, e.today), e.query, tok)))
    ms, mf = statistics.median(small), statistics.median(full)
    print(f"prompt tokens ({args.tokenizer}, chat template), median over {len(test)} test queries")
    print(f"{'prompt':<38} {'median':>7} {'x all':>6}")
    print(f"{'4 tools + 2 negatives + 3 examples':<38} {ms:>7.0f} {ms / mf:>6.2f}")
    print(f"{'all 16 tools + 3 examples':<38} {mf:>7.0f} {1.0:>6.2f}")


if __name__ == "__main__":
    main()
