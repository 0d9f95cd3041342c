"""Instruction awareness of a causal LM in the answer family: which pattern, output value and layer to default to.

Each dataset has two label axes on the same texts, and one instruction (a question) per axis. Every text is
embedded under each instruction, clustered with k-means (k = the number of labels of the axis the instruction
asks about) and scored with the V-measure against that axis. An embedder that follows instructions clusters an
axis better under its own instruction than under the other one:

    awareness = mean over the two axes of  V(axis | its instruction) - V(axis | the other instruction)
    aligned   = mean over the two axes of  V(axis | its instruction)

For each pattern, every output value at every layer is read through the public ``encode`` (``output_value=``,
``layer=``, greedy answers), one call each (``common.readouts``): the library has no call yet that gives every
readout from one ``generate()``, so a sweep costs one pass or one ``generate()`` per value and layer (155 calls
for SmolLM2-135M's 5 values × 31 hidden states, where one ``generate()`` could serve them all; ``--n`` smaller for a
quick look). The best configuration is then recomputed with a direct ``encode`` call as a check. No
instruction at all (the text alone, ``avg_ppt``) is the baseline. ``--confirm`` recomputes chosen configurations
through ``encode`` and repeats k-means over several seeds, for error bars.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/answer_defaults.py --json answer_defaults.json
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/answer_defaults.py --confirm inbedder/avg_ppt/30 none/avg_ppt/30
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import platform
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from common import PATTERNS, answer_options, readouts

from inbedder import load
from inbedder.evaluation.clustering import kmeans, v_measure
from inbedder.prompts import INBEDDER_PATTERN
from inbedder.training.recipe import SELECTION, selection_rows


def semeval(root: Path, n: int, rng: random.Random) -> dict:
    """SemEval-14 restaurant sentences with one aspect category: aspect (5) × sentiment (pos/neg/neutral)."""
    with open(root / "semeval14_absa" / "restaurants_test_single_category.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["polarity"] in ("positive", "negative", "neutral")]
    rng.shuffle(rows)
    rows = rows[:n]
    return {"name": "semeval14", "texts": [r["text"] for r in rows],
            "axes": {"aspect": [r["category"] for r in rows], "sentiment": [r["polarity"] for r in rows]},
            "instructions": {"aspect": "Which aspect of the restaurant does this review talk about?",
                             "sentiment": "What is the sentiment of this review?"}}


def clinc(root: Path, n: int, rng: random.Random) -> dict:
    """The recipe's selection set (CLINC150 queries from five domains, four intents each): domain (5) × intent (20)."""
    rows = selection_rows(root)
    rng.shuffle(rows)
    rows = rows[:n]
    return {"name": "clinc150", "texts": [t for t, _, _ in rows],
            "axes": {"domain": [d for _, d, _ in rows], "intent": [i for _, _, i in rows]},
            "instructions": dict(SELECTION)}


def clustered_v(vectors: np.ndarray, labels: list[str], seed: int) -> float:
    """V-measure of k-means (k = the number of labels, 3 restarts) on the unit vectors against the labels."""
    return v_measure(labels, kmeans(vectors, len(set(labels)), seed, n_init=3))


def confirm(model, datasets: list[dict], configs: list[str], seeds: int, new_tokens: int, batch: int) -> dict:
    """aligned / awareness (mean and std over k-means seeds) of ``pattern/value/layer`` configs, via ``encode``."""
    results = {}
    for config in configs:
        pattern_name, value, layer = config.split("/")
        own: list[list[float]] = [[] for _ in range(seeds)]
        other: list[list[float]] = [[] for _ in range(seeds)]
        for data in datasets:
            axes = list(data["axes"])
            vectors = {}
            for asked in axes if pattern_name != "none" else [None]:
                instruction = data["instructions"][asked] if asked else None
                vectors[asked] = model.encode(data["texts"], instruction=instruction, output_value=value,
                                              layer=int(layer), pattern=PATTERNS.get(pattern_name, INBEDDER_PATTERN),
                                              max_new_tokens=new_tokens, batch_size=batch)
            for axis, other_axis in ((axes[0], axes[1]), (axes[1], axes[0])):
                for seed in range(seeds):
                    mine = vectors.get(axis, vectors.get(None))
                    theirs = vectors.get(other_axis, vectors.get(None))
                    own[seed].append(clustered_v(mine, data["axes"][axis], seed))
                    other[seed].append(clustered_v(theirs, data["axes"][axis], seed) if pattern_name != "none"
                                       else own[seed][-1])
        aligned = [float(np.mean(o)) for o in own]
        aware = [float(np.mean(o) - np.mean(t)) for o, t in zip(own, other, strict=True)]
        results[config] = {"aligned": float(np.mean(aligned)), "aligned_std": float(np.std(aligned)),
                           "awareness": float(np.mean(aware)), "awareness_std": float(np.std(aware))}
        r = results[config]
        print(f"{config:<24} aligned {r['aligned']:.4f} ± {r['aligned_std']:.4f}  "
              f"awareness {r['awareness']:+.4f} ± {r['awareness_std']:.4f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    answer_options(parser, texts=240, new_tokens=3, batch_size=16)
    parser.add_argument("--json", type=Path, help="report; progress is kept next to it and a rerun resumes")
    parser.add_argument("--confirm", nargs="+", metavar="PATTERN/VALUE/LAYER",
                        help="only recompute these configurations (pattern inbedder, chat or none) over seeds")
    parser.add_argument("--seeds", type=int, default=5, help="k-means seeds for --confirm")
    args = parser.parse_args()
    import warnings

    warnings.filterwarnings("ignore", message="Number of distinct clusters")
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    datasets = [semeval(args.data, args.n, rng), clinc(args.data, args.n, rng)]
    model = load(args.model, device="cpu")
    if args.confirm:
        results = confirm(model, datasets, args.confirm, args.seeds, args.new_tokens, args.batch_size)
        if args.json:
            args.json.write_text(json.dumps({"date": dt.date.today().isoformat(), "command": " ".join(sys.argv),
                                             "n": args.n, "results": results}, indent=1), encoding="utf-8")
        return
    started = time.time()
    scores: dict[str, dict] = defaultdict(dict)  # config -> {dataset/axis/instruction: V}
    examples: dict[str, list] = {}
    partial = args.json.with_suffix(".partial.json") if args.json else None
    done: list[str] = []
    if partial is not None and partial.exists():  # resume a run that was stopped
        saved = json.loads(partial.read_text(encoding="utf-8"))
        scores.update(saved["scores"])
        examples, done = saved["examples"], saved["done"]

    def checkpoint(stage: str) -> None:
        done.append(stage)
        if partial is not None:
            partial.write_text(json.dumps({"scores": scores, "examples": examples, "done": done}), encoding="utf-8")

    for data in datasets:
        axes = list(data["axes"])
        for pattern_name, pattern in PATTERNS.items():
            if f"{data['name']}/{pattern_name}" in done:
                continue
            for asked in axes:
                vectors, answers = readouts(model, data["texts"], data["instructions"][asked], pattern=pattern,
                                            new_tokens=args.new_tokens, batch_size=args.batch_size)
                examples[f"{data['name']}/{pattern_name}/{asked}"] = list(zip(data["texts"][:5], answers[:5],
                                                                              strict=True))
                for (value, layer), x in vectors.items():
                    for axis in axes:
                        scores[f"{pattern_name}|{value}|{layer}"][f"{data['name']}/{axis}/{asked}"] = \
                            clustered_v(x, data["axes"][axis], args.seed)
            print(f"{data['name']} {pattern_name} done after {time.time() - started:.0f}s", file=sys.stderr)
            checkpoint(f"{data['name']}/{pattern_name}")
        if f"{data['name']}/none" in done:
            continue
        base, _ = readouts(model, data["texts"], None, pattern=INBEDDER_PATTERN, new_tokens=1,
                           batch_size=args.batch_size, values=["avg_ppt"], answers=False)
        for (_, layer), x in base.items():
            for axis in axes:
                scores[f"none|avg_ppt|{layer}"][f"{data['name']}/{axis}/none"] = \
                    clustered_v(x, data["axes"][axis], args.seed)
        checkpoint(f"{data['name']}/none")

    def summary(config: str) -> dict[str, float]:
        s, own, other = scores[config], [], []
        for data in datasets:
            a, b = list(data["axes"])
            for axis, other_axis in ((a, b), (b, a)):
                own.append(s.get(f"{data['name']}/{axis}/{axis}", s.get(f"{data['name']}/{axis}/none", 0.0)))
                other.append(s.get(f"{data['name']}/{axis}/{other_axis}", own[-1]))
        return {"aligned": float(np.mean(own)), "awareness": float(np.mean(own) - np.mean(other))}

    table = sorted(((summary(c), c) for c in scores), key=lambda r: (-r[0]["awareness"], -r[0]["aligned"]))
    print(f"{'pattern|value|layer':<26} awareness  aligned")
    for row, config in table[:25]:
        print(f"{config:<26} {row['awareness']:9.4f} {row['aligned']:8.4f}")
    best = next(c for _, c in table if not c.startswith("none|"))
    pattern_name, value, layer = best.split("|")
    check_data = datasets[0]
    asked = list(check_data["axes"])[0]
    public = model.encode(check_data["texts"], instruction=check_data["instructions"][asked],
                          pattern=PATTERNS[pattern_name], output_value=value, layer=int(layer),
                          max_new_tokens=args.new_tokens, batch_size=args.batch_size)
    again, _ = readouts(model, check_data["texts"], check_data["instructions"][asked], pattern=PATTERNS[pattern_name],
                        new_tokens=args.new_tokens, batch_size=args.batch_size, values=[value], layers=[int(layer)],
                        answers=False)
    diff = float(np.abs(public - again[(value, int(layer))]).max())
    print(f"best: {best}; public encode() vs this script: max abs diff {diff:.2e}")
    report = {"date": dt.date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
              f"{args.threads} threads, torch {torch.__version__}", "command": " ".join(sys.argv), "model": args.model,
              "n": args.n, "new_tokens": args.new_tokens, "best": best, "check_max_abs_diff": diff,
              "summary": {c: r for r, c in table}, "scores": scores, "examples": examples,
              "seconds": time.time() - started}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
