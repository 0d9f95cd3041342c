"""Encoding speed: inbedder in each dtype against sentence-transformers float32, same model, texts and process.

inbedder loads the model once per variant (float32, bfloat16, int8 by default) and sentence-transformers loads the
same model directory in float32; all embed the same list of texts with the same batch size and torch threads.
Each is warmed up, then the timed runs alternate (A, B, C, D, then D, C, B, A, ...) so that machine noise falls
on all alike; the headline is the **median** run of each, and the best run is printed as a cross-check.

Fidelity: each variant's cosine to inbedder float32, row by row (min and mean), and, on STS-B (texts read as
the pairs of ``sts-test.jsonl``), the Spearman correlation of the pair cosines with the gold scores (x100).
Roofline: useful FLOPs per second (real tokens; ``2 x linear weights + 4 x layers x seq x hidden`` per token)
against the FLOP/s of one large float32 and bfloat16 ``torch.matmul`` timed in the same run.

With no ``--instruction`` sentence-transformers and inbedder float32 compute the same vectors (max abs
difference printed). inbedder embeds identical texts once; sentence-transformers embeds every row
(``--dedupe`` gives both only the distinct texts).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/encode_speed.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/encode_speed.py --threads 1 --rounds 5 --json bench.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import STS_DIR, command, machine, read_texts, sts_scores, sts_spearman
from tqdm.auto import tqdm


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[list[str]], np.ndarray], texts: list[str], device: torch.device
          ) -> tuple[float, float, np.ndarray]:
    """Wall seconds, process CPU seconds (all threads) and the output of ``fn(texts)``."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(texts)
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="minilm", help="inbedder name: alias, directory or hub id")
    p.add_argument("--data", type=Path, default=STS_DIR,
                   help="STS-B directory, .jsonl/.csv file, or a .txt file with one text a line")
    p.add_argument("--instruction", default=None,
                   help="instruction for inbedder (prompt for sentence-transformers); vectors then differ")
    p.add_argument("--variants", default="float32,bfloat16,int8", help="inbedder variants (comma-separated)")
    p.add_argument("--no-st", action="store_true", help="leave sentence-transformers out")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-tokens-per-batch", type=int, default=None, help="inbedder's token budget per batch")
    p.add_argument("--rounds", "--repeats", type=int, default=3, help="alternating timed rounds (median reported)")
    p.add_argument("--limit", type=int, default=None, help="use the first N texts")
    p.add_argument("--dedupe", action="store_true", help="pass only distinct texts to both libraries")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--warmup", type=int, default=4, help="batches each runner embeds before timing")
    p.add_argument("--json", type=Path, default=None, help="write the results to this file")
    args = p.parse_args(argv)
    for name in ("batch_size", "rounds", "limit", "threads", "max_tokens_per_batch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1; got {value}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0; got {args.warmup}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    texts = read_texts(args.data)
    scores = sts_scores(args.data)
    if args.dedupe:
        texts = list(dict.fromkeys(texts))
    if args.limit is not None:
        texts = texts[:args.limit]
    if not texts:
        raise SystemExit(f"error: no texts read from {args.data}")
    if scores is not None and len(texts) != 2 * len(scores):
        scores = None  # --dedupe / --limit: the texts are no longer the pairs

    import inbedder
    from inbedder.apps.benchmark import bench_encoder
    from inbedder.registry import resolve

    path = resolve(args.model).path
    competitors: dict[str, Callable[[list[str]], np.ndarray]] = {}
    if not args.no_st:
        from sentence_transformers import SentenceTransformer

        theirs = SentenceTransformer(str(path), device="cpu")
        theirs.eval()

        def run_st(batch: list[str]) -> np.ndarray:
            return np.asarray(theirs.encode(batch, prompt=args.instruction, batch_size=args.batch_size,
                                            show_progress_bar=False, convert_to_numpy=True))

        competitors["sentence-transformers float32"] = run_st
    print(f"loading {args.model} ({path}) on cpu, {args.variants}", file=sys.stderr)
    with tqdm(desc="benchmark", unit="step", file=sys.stderr) as bar:
        def progress(message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(1)

        res = bench_encoder(args.model, texts, args.variants, instruction=args.instruction,
                            batch_size=args.batch_size, max_tokens_per_batch=args.max_tokens_per_batch,
                            rounds=args.rounds, warmup=args.warmup, competitors=competitors, progress=progress)
    vectors = res.pop("vectors")
    st_name = "sentence-transformers float32"
    for name, row in res["variants"].items():
        row["best_texts_per_s"] = len(texts) / min(row["seconds"])
        if st_name in res["variants"]:
            st = res["variants"][st_name]
            row["vs_st"] = row["texts_per_s"] / st["texts_per_s"]
            row["vs_st_paired_median"] = statistics.median(
                b / a for a, b in zip(row["seconds"], st["seconds"], strict=True))
        if scores is not None:
            row["sts_spearman"] = sts_spearman(vectors[name], scores)
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command(),
        "machine": {**machine(torch.device("cpu")), "load_average": res.pop("load_average")},
        "settings": {"model": args.model, "model_path": str(path), "data": str(args.data), "dedupe": args.dedupe,
                     "warmup_batches": args.warmup, "statistic": "median",
                     **{k: res.pop(k) for k in ("texts", "distinct_texts", "tokens", "flops", "batch_size",
                                                 "max_tokens_per_batch", "rounds", "instruction")}},
        **res,
        "inbedder_version": inbedder.__version__,
        "max_abs_diff_fp32_vs_st": (float(np.abs(vectors["inbedder float32"].astype(np.float64)
                                                 - vectors[st_name]).max()) if st_name in vectors else None),
        "same_computation": args.instruction is None,
    }
    report(results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return results


def report(res: dict[str, Any]) -> None:
    m, s = res["machine"], res["settings"]
    hw = m["gpu"] or f"{m['cpu']}, {m['cores_usable']} of {m['cores']} cores"
    print()
    print(f"date     {res['date']}")
    print(f"machine  {hw}; torch {m['torch']} (threads: {m['torch_threads']}), transformers {m['transformers']}, "
          f"sentence-transformers {m['sentence_transformers']}, inbedder {m['inbedder']}, python {m['python']}")
    if None not in m["load_average"]:
        print("load     1-minute load average {:.2f} before the timed runs, {:.2f} after".format(*m["load_average"]))
    peaks = res["peak_flops_per_s"]
    print("matmul   " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()))
    print(f"setup    {s['model']} on cpu, {s['texts']} texts ({s['distinct_texts']} distinct, {s['tokens']} tokens), "
          f"batch {s['batch_size']}, token budget {s['max_tokens_per_batch']}, instruction {s['instruction']!r}, "
          f"{s['rounds']} alternating rounds, warm-up batches: {s['warmup_batches']}")
    print()
    print(f"{'runner':<32}{'median/s':>9}{'best/s':>9}{'vs ST':>7}{'paired':>8}{'min cos':>9}{'mean cos':>10}"
          f"{'STS rho':>8}{'%fp32pk':>8}{'%bf16pk':>8}")
    nan = float("nan")
    for name, row in res["variants"].items():
        cells = [f"{name:<32}", f"{row['texts_per_s']:>9.1f}", f"{row['best_texts_per_s']:>9.1f}",
                 f"{row.get('vs_st', nan):>7.2f}", f"{row.get('vs_st_paired_median', nan):>8.2f}",
                 f"{row['min_cosine']:>9.5f}", f"{row['mean_cosine']:>10.5f}", f"{row.get('sts_spearman', nan):>8.2f}",
                 f"{100 * row.get('roofline_float32', nan):>8.1f}", f"{100 * row.get('roofline_bfloat16', nan):>8.1f}"]
        print("".join(cells))
    print("  texts/s per run: " + "; ".join(f"{n}: " + ", ".join(f"{s['texts'] / x:.0f}" for x in r["seconds"])
                                         for n, r in res["variants"].items()))
    if res["max_abs_diff_fp32_vs_st"] is not None:
        note = "" if res["same_computation"] else " (differs by design: instruction tokens left out of pooling)"
        diff = res["max_abs_diff_fp32_vs_st"]
        print(f"max abs difference inbedder float32 vs sentence-transformers: {diff:.2e}{note}")
    print(f"command: {res['command']}")


if __name__ == "__main__":
    main()
