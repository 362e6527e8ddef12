"""Tool selection for prompts, as TinyAgent's table compares it: all tools, embedding top-k RAG, classifier.

For each method on the test split: tool recall (all gold tools selected), mean tools, and mean prompt
tokens of the planner prompt built with those tools plus retrieved in-context examples. Also times
example search. Needs a trained classifier and a built index:

    tinyagent-ft data synth --out data/synth
    tinyagent-ft retriever train --data data/synth --out runs/tool-classifier
    tinyagent-ft retriever index --data data/synth --out runs/example-index
    python benchmarks/retriever/compare.py --data data/synth --model runs/tool-classifier --index runs/example-index
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from retriever import ExampleIndex, ToolClassifier, selection_metrics
from tinyagent_ft.catalog import TINYAGENT
from tinyagent_ft.data import load_dataset
from tinyagent_ft.models import load_tokenizer
from tinyagent_ft.prompt import build_system_prompt, render


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True), ap.add_argument("--split", default="test")
    ap.add_argument("--model", required=True), ap.add_argument("--index", required=True)
    ap.add_argument("--examples", type=int, default=3, help="in-context examples per prompt")
    ap.add_argument("--rag-k", type=int, default=3, help="examples whose tools the embedding RAG unions")
    ap.add_argument("--tokenizer", default="smollm2-135m"), ap.add_argument("--out")
    args = ap.parse_args()

    examples = load_dataset(args.data, args.split).examples
    queries = [e.query for e in examples]
    index, clf, tok = ExampleIndex.load(args.index), ToolClassifier.from_pretrained(args.model), load_tokenizer(args.tokenizer)
    embeddings = index.encode(queries)

    start = time.perf_counter()
    rag_hits = [index.search(q, TINYAGENT.names, args.rag_k, embedding=v) for q, v in zip(queries, embeddings)]
    search_ms = 1000 * (time.perf_counter() - start) / len(queries)
    methods = {"all tools": [set(TINYAGENT.names)] * len(examples),
               f"embedding top-{args.rag_k} RAG": [set().union(*(h.tools for h in hits)) for hits in rag_hits],
               "classifier": clf.predict(queries)}

    rows = {}
    for name, selected in methods.items():
        m = selection_metrics([e.tools for e in examples], selected)
        tokens = []
        for e, tools, v in zip(examples, selected, embeddings):
            demos = index.search(e.query, tools, args.examples, embedding=v)
            ordered = [t for t in TINYAGENT.names if t in tools]
            system = build_system_prompt(ordered, demos, e.date)
            tokens.append(len(tok(render(system, e.query, tok), add_special_tokens=False)["input_ids"]))
        rows[name] = {"recall": m["recall"], "mean_tools": m["mean_tools"], "prompt_tokens_mean": statistics.mean(tokens),
                      "prompt_tokens_median": statistics.median(tokens)}
    base = rows["all tools"]["prompt_tokens_mean"]
    print(f"{len(examples)} {args.split} queries, {args.examples} in-context examples per prompt, "
          f"index of {len(index):,}; example search {search_ms:.2f} ms/query")
    print("| method | tool recall | mean tools | mean prompt tokens | vs all tools |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['recall']:.4f} | {r['mean_tools']:.2f} | {r['prompt_tokens_mean']:,.0f} | "
              f"{r['prompt_tokens_mean'] / base:.2f}x |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"rows": rows, "search_ms_per_query": search_ms, "queries": len(examples)}, f, indent=2)


if __name__ == "__main__":
    main()
