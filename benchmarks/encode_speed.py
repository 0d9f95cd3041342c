"""Encoding speed: inbedder against sentence-transformers, same model, same texts, same process.

Both libraries load the same model directory, run on the same device with the same dtype, batch size and
torch threads, and embed the same list of texts (each sorts by length, as it does by default). Both are
warmed up first; then the timed runs alternate between the two, the first library swapping every repeat,
so that machine noise falls on both alike. The headline throughput is the best run of each library (its
least disturbed run: noise on a shared machine only ever adds time); the medians, the median of the
per-repeat paired ratios and the ratio of process CPU times are printed as cross-checks. On a busy
machine ``--threads 1`` gives the steadiest comparison: with more threads than free cores, the threads
of one forward pass wait (and spin) for each other, and both wall and CPU time turn to noise.

With no ``--instruction`` both compute the same vectors (mean pooling over all tokens), so the maximum
absolute difference checks that the speed is not bought with different numbers. With an instruction,
inbedder leaves the instruction tokens out of pooling and sentence-transformers (given it as ``prompt``)
does not, so the vectors differ by design.

Note: inbedder embeds identical texts once; sentence-transformers embeds every row. ``--dedupe`` passes
only distinct texts to both, to compare the work per text without that advantage.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/encode_speed.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/encode_speed.py --threads 1 --repeats 5 --json bench.json
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "stsbenchmark"
ENV_SHOWN = ("HF_HUB_OFFLINE", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "TOKENIZERS_PARALLELISM")


def read_texts(source: Path) -> list[str]:
    """Sentences of an STS file, both of each pair, in file order (duplicates kept).

    ``source`` is a directory (``sts-test.jsonl``, else ``sts-test.csv``), a ``.jsonl`` file with
    ``sentence1``/``sentence2``, an STS-B tab-separated ``.csv``, or a ``.txt`` file with one text a line.
    """
    if source.is_dir():
        found = [source / n for n in ("sts-test.jsonl", "sts-test.csv") if (source / n).exists()]
        if not found:
            raise SystemExit(f"error: no sts-test.jsonl or sts-test.csv in {source}")
        source = found[0]
    if not source.exists():
        raise SystemExit(f"error: {source} does not exist; give --data a directory or a .jsonl/.csv/.txt file")
    texts: list[str] = []
    with open(source, encoding="utf-8") as f:
        if source.suffix == ".jsonl":
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    texts += [row["sentence1"], row["sentence2"]]
        elif source.suffix in (".csv", ".tsv"):
            # STS-B: genre, file, year, id, score, s1, s2 (some rows carry extra source columns after these)
            for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(row) >= 7:
                    texts += [row[5], row[6]]
        else:
            texts = [line.rstrip("\n") for line in f if line.strip()]
    return texts


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float | None:
    """The 1-minute load average: other work on the machine slows both libraries and adds noise."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def machine(device: torch.device) -> dict[str, Any]:
    import sentence_transformers
    import transformers

    import inbedder

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "inbedder": inbedder.__version__,
    }
    return info


def command() -> str:
    env = [f"{k}={shlex.quote(os.environ[k])}" for k in ENV_SHOWN if k in os.environ]
    exe = Path(sys.executable)
    try:
        exe = exe.relative_to(Path.cwd())
    except ValueError:
        pass
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return " ".join([*env, shlex.join([str(exe), str(script), *sys.argv[1:]])])


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
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="STS-B directory, .jsonl/.csv file, or a .txt file with one text a line")
    p.add_argument("--instruction", default=None,
                   help="instruction for inbedder (prompt for sentence-transformers); vectors then differ")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per library (best, median reported)")
    p.add_argument("--limit", type=int, default=None, help="use the first N texts")
    p.add_argument("--dedupe", action="store_true", help="pass only distinct texts to both libraries")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--warmup", type=int, default=4, help="batches each library embeds before timing")
    p.add_argument("--json", type=Path, default=None, help="write the results to this file")
    args = p.parse_args(argv)
    for name in ("batch_size", "repeats", "limit", "threads"):
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
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype)

    texts = read_texts(args.data)
    if args.dedupe:
        texts = list(dict.fromkeys(texts))
    if args.limit is not None:
        texts = texts[:args.limit]
    if not texts:
        raise SystemExit(f"error: no texts read from {args.data}")

    from sentence_transformers import SentenceTransformer

    import inbedder
    from inbedder.registry import resolve

    path = resolve(args.model).path
    print(f"loading {args.model} ({path}) on {device}, {args.dtype}", file=sys.stderr)
    ours = inbedder.load(args.model, device=device, dtype=args.dtype)
    theirs = SentenceTransformer(str(path), device=str(device), model_kwargs={"dtype": dtype})
    theirs.eval()

    def run_inbedder(batch: list[str]) -> np.ndarray:
        return ours.encode(batch, instruction=args.instruction, batch_size=args.batch_size, show_progress_bar=False)

    def run_st(batch: list[str]) -> np.ndarray:
        return theirs.encode(batch, prompt=args.instruction, batch_size=args.batch_size, show_progress_bar=False,
                             convert_to_numpy=True)

    runners = {"inbedder": run_inbedder, "sentence-transformers": run_st}

    if args.warmup:
        # the longest texts go first in both libraries: warm up on a spread of lengths
        by_length = sorted(texts, key=len, reverse=True)
        step = max(1, len(by_length) // (args.warmup * args.batch_size))
        sample = by_length[::step][:args.warmup * args.batch_size]
        for name, run in runners.items():
            print(f"warming up {name} on {len(sample)} texts", file=sys.stderr)
            run(sample)

    load_before = load_average()
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in runners}
    vectors: dict[str, np.ndarray] = {}
    names = list(runners)
    with tqdm(total=len(names) * args.repeats, desc="timed runs", unit="run", file=sys.stderr) as bar:
        for r in range(args.repeats):
            for name in names if r % 2 == 0 else names[::-1]:
                bar.set_postfix_str(f"repeat {r + 1}: {name}")
                wall, cpu, vectors[name] = timed(runners[name], texts, device)
                seconds[name].append(wall)
                cpu_seconds[name].append(cpu)
                bar.update(1)

    diff = float(np.abs(vectors["inbedder"].astype(np.float64) - vectors["sentence-transformers"]).max())
    rate = {n: {"best": len(texts) / min(s), "median": len(texts) / statistics.median(s)} for n, s in seconds.items()}
    paired = [b / a for a, b in zip(seconds["inbedder"], seconds["sentence-transformers"], strict=True)]
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command(),
        "machine": {**machine(device), "load_average": [load_before, load_average()]},
        "settings": {"model": args.model, "model_path": str(path), "data": str(args.data), "texts": len(texts),
                     "distinct_texts": len(set(texts)), "instruction": args.instruction,
                     "batch_size": args.batch_size, "repeats": args.repeats, "dtype": args.dtype,
                     "dedupe": args.dedupe, "warmup_batches": args.warmup, "statistic": "best"},
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "texts_per_s": rate,
        "ratio": rate["inbedder"]["best"] / rate["sentence-transformers"]["best"],
        "ratio_median": rate["inbedder"]["median"] / rate["sentence-transformers"]["median"],
        "ratio_paired_median": statistics.median(paired),
        "ratio_cpu_time": min(cpu_seconds["sentence-transformers"]) / min(cpu_seconds["inbedder"]),
        "max_abs_diff": diff,
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
    print(f"setup    {s['model']} on {m['device']} {s['dtype']}, {s['texts']} texts ({s['distinct_texts']} distinct), "
          f"batch {s['batch_size']}, instruction {s['instruction']!r}, repeats: {s['repeats']} (alternating), "
          f"warm-up batches: {s['warmup_batches']}")
    print()
    print(f"{'library':<22} {'best texts/s':>13} {'median texts/s':>15} {'best CPU s':>11}   wall seconds per run")
    for name, rate in res["texts_per_s"].items():
        runs = ", ".join(f"{x:.2f}" for x in res["seconds"][name])
        cpu = min(res["cpu_seconds"][name])
        print(f"{name:<22} {rate['best']:>13.1f} {rate['median']:>15.1f} {cpu:>11.2f}   {runs}")
    print()
    print(f"ratio inbedder / sentence-transformers (best runs): {res['ratio']:.3f}")
    print(f"  cross-checks: medians {res['ratio_median']:.3f}, median of paired repeats "
          f"{res['ratio_paired_median']:.3f}, CPU time {res['ratio_cpu_time']:.3f}")
    note = "" if res["same_computation"] else "  (differs by design: inbedder leaves instruction tokens out of pooling)"
    print(f"max abs difference of the vectors: {res['max_abs_diff']:.2e}{note}")
    print(f"command: {res['command']}")


if __name__ == "__main__":
    main()
