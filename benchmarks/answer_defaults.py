"""Instruction awareness of a causal LM in the answer family: which pattern, output value and layer to default to.

Each dataset has two label axes on the same texts, and one instruction (a question) per axis. Every text is
embedded under each instruction, clustered with k-means (k = the number of labels of the axis the instruction
asks about) and scored with the V-measure against that axis. An embedder that follows instructions clusters an
axis better under its own instruction than under the other one:

    awareness = mean over the two axes of  V(axis | its instruction) - V(axis | the other instruction)
    aligned   = mean over the two axes of  V(axis | its instruction)

For each pattern, one greedy ``generate()`` per batch gives the states of every layer, so every output value at
every layer comes from the same run (``pool`` is the library's own pooling). The best configuration is then
recomputed through the public ``encode`` as a check. No instruction at all (the text alone, ``avg_ppt``) is the
baseline. ``--confirm`` recomputes chosen configurations through ``encode`` and repeats k-means over several
seeds, for error bars.

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

from inbedder import load
from inbedder.encoders.causal import INBEDDER_PATTERN, OutputValue, answer_keep, pool
from inbedder.training.recipe import SELECTION, selection_rows

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PATTERNS = {"inbedder": INBEDDER_PATTERN, "chat": "chat"}


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


def all_layers(model, texts: list[str], instruction: str | None, pattern: str, new_tokens: int, batch: int
               ) -> tuple[dict[tuple[str, int], np.ndarray], list[str]]:
    """Every output value at every layer, and the answers, from one greedy generate() per batch."""
    enc = model.encoder
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out: dict[tuple[str, int], list] = defaultdict(list)
    answers: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            rows = [(instruction, texts[i]) for i in order[start:start + batch]]
            ids, mask, _, _, _ = enc.prompt_ids(rows, pattern)
            gen = enc.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
                                     pad_token_id=enc.tokenizer.pad_token_id, output_hidden_states=True,
                                     return_dict_in_generate=True)
            new = gen.sequences[:, ids.shape[1]:]
            keep = answer_keep(new, enc.tokenizer)
            answers += enc.tokenizer.batch_decode(new, skip_special_tokens=True)
            for layer in range(enc.num_layers + 1):
                prompt = gen.hidden_states[0][layer].float()
                steps = [s[layer].float() for s in gen.hidden_states[1:]]
                steps_t = torch.cat(steps, dim=1) if steps else prompt[:, :0]
                for value in OutputValue:
                    out[(value.value, layer)].append(pool(value, prompt, mask, steps_t, keep).numpy())
    back = np.argsort(order)
    return {k: np.concatenate(v)[back] for k, v in out.items()}, [answers[i] for i in back]


def v_measure(vectors: np.ndarray, labels: list[str], seed: int) -> float:
    from sklearn.cluster import KMeans
    from sklearn.metrics import v_measure_score

    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
    k = len(set(labels))
    predicted = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(x)
    return float(v_measure_score(labels, predicted))


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
                    own[seed].append(v_measure(mine, data["axes"][axis], seed))
                    other[seed].append(v_measure(theirs, data["axes"][axis], seed) if pattern_name != "none"
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
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--n", type=int, default=240, help="texts per dataset")
    parser.add_argument("--new-tokens", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
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
                vectors, answers = all_layers(model, data["texts"], data["instructions"][asked], pattern,
                                              args.new_tokens, args.batch_size)
                examples[f"{data['name']}/{pattern_name}/{asked}"] = list(zip(data["texts"][:5], answers[:5],
                                                                              strict=True))
                for (value, layer), x in vectors.items():
                    for axis in axes:
                        scores[f"{pattern_name}|{value}|{layer}"][f"{data['name']}/{axis}/{asked}"] = \
                            v_measure(x, data["axes"][axis], args.seed)
            print(f"{data['name']} {pattern_name} done after {time.time() - started:.0f}s", file=sys.stderr)
            checkpoint(f"{data['name']}/{pattern_name}")
        if f"{data['name']}/none" in done:
            continue
        base, _ = all_layers(model, data["texts"], None, INBEDDER_PATTERN, 1, args.batch_size)
        for (value, layer), x in base.items():
            if value == "avg_ppt":
                for axis in axes:
                    scores[f"none|avg_ppt|{layer}"][f"{data['name']}/{axis}/none"] = \
                        v_measure(x, data["axes"][axis], args.seed)
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
    again, _ = all_layers(model, check_data["texts"], check_data["instructions"][asked], PATTERNS[pattern_name],
                          args.new_tokens, args.batch_size)
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
