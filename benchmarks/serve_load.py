"""Load test of ``inbedder serve``: concurrent clients against in-process ``encode``, same texts, same run.

The server runs in its own process (``inbedder serve -m MODEL --no-cache``, so the model does every row);
``--clients`` asyncio clients send ``--per-request`` texts per ``POST /v1/embeddings`` (base64, as the
openai client does) until the texts are used up, or with ``--duration S`` over and over for S seconds.
The same texts are embedded in this process with ``model.encode`` (batch size 32, same torch threads).
Rounds alternate in-process / server so machine noise falls on both alike. Printed: texts/s of each, their
ratio, p50/p99/max request latency, errors (any non-200 or transport failure), the mean batch
size from the server's /metrics, and the largest difference between served and in-process vectors.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/serve_load.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/serve_load.py --texts 1000 --clients 32 --per-request 8 --rounds 2
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/serve_load.py --clients 64 --duration 60 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import itertools
import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from common import STS_TEST
from common import read_texts as sts_texts

INSTRUCTION = "Represent the sentence for similarity:"


def read_texts(path: Path, n: int) -> list[str]:
    """Distinct sentences of an STS-B .jsonl (sentence1, sentence2) or of a .txt file (one a line)."""
    distinct = list(dict.fromkeys(sts_texts(path)))
    if len(distinct) < n:
        print(f"note: {path} has {len(distinct)} distinct texts; using all of them", file=sys.stderr)
    return distinct[:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "inbedder", "serve", "-m", args.model, "--port", str(port), "--no-cache",
               "--max-wait-ms", str(args.max_wait_ms), "--batch-size", str(args.batch_size),
               "--max-batch-rows", str(args.max_batch_rows), "--log-level", "warning"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            err = process.stderr.read().decode() if process.stderr else ""
            raise SystemExit(f"error: the server did not start:\n{err[-3000:]}")
        time.sleep(0.25)


async def load(url: str, texts: list[str], clients: int, per_request: int,
               duration: float | None = None) -> dict[str, Any]:
    """Each text once (``duration`` None), or the texts over and over for ``duration`` seconds."""
    chunks = [list(range(i, min(i + per_request, len(texts)))) for i in range(0, len(texts), per_request)]
    turn = itertools.count()
    latencies: list[float] = []
    errors: list[str] = []
    vectors: dict[int, np.ndarray] = {}
    counts = {"requests": 0, "texts": 0}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient, deadline: float) -> None:
        while True:
            n = next(turn)
            if duration is None and n >= len(chunks) or duration is not None and time.perf_counter() > deadline:
                return
            chunk = chunks[n % len(chunks)]
            start = time.perf_counter()
            counts["requests"] += 1
            try:
                r = await http.post("/v1/embeddings", json={"input": [texts[i] for i in chunk],
                                                            "instruction": INSTRUCTION, "encoding_format": "base64"})
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - start)
            if r.status_code != 200:
                errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
                continue
            counts["texts"] += len(chunk)
            for row in r.json()["data"]:
                vectors[chunk[row["index"]]] = np.frombuffer(base64.b64decode(row["embedding"]), dtype="<f4")

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        start = time.perf_counter()
        deadline = start + (duration or 0.0)
        await asyncio.gather(*(client(http, deadline) for _ in range(clients)))
        wall = time.perf_counter() - start
    return {"wall": wall, "latencies": latencies, "errors": errors, "vectors": vectors, **counts}


def metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=STS_TEST, help="STS-B .jsonl (default: %(default)s)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--per-request", type=int, default=8, help="texts per request")
    parser.add_argument("--rounds", type=int, default=2, help="in-process / server rounds, alternating")
    parser.add_argument("--duration", type=float, help="seconds of load per server round, the texts sent over and "
                        "over (default: each text once)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-batch-rows", type=int, default=256)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads, both sides")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    from inbedder import load as load_model

    torch.set_num_threads(args.threads)
    texts = read_texts(args.data, args.texts)
    model = load_model(args.model, device="cpu")
    model.encode(texts[:64], instruction=INSTRUCTION)  # warm-up
    port = free_port()
    server = start_server(args, port)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(load(url, texts[:64], 4, 8))  # warm-up
        local, served, runs = [], [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            expected = model.encode(texts, instruction=INSTRUCTION, batch_size=args.batch_size, show_progress_bar=False)
            local.append(len(texts) / (time.perf_counter() - start))
            run = asyncio.run(load(url, texts, args.clients, args.per_request, args.duration))
            served.append(run["texts"] / run["wall"])
            runs.append(run)
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
    finally:
        server.terminate()
        server.wait(60)
    latencies = sorted(x for run in runs for x in run["latencies"])
    errors = [e for run in runs for e in run["errors"]]
    last = runs[-1]["vectors"]
    diff = max((float(np.abs(last[i] - expected[i]).max()) for i in last), default=float("nan"))
    missing = len(texts) - len(last)
    ratios = [s / x for s, x in zip(served, local, strict=True)]
    result = {
        "date": dt.date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, threads {args.threads}",
        "command": "HF_HUB_OFFLINE=1 .venv/bin/python " + shlex.join(sys.argv),
        "texts": len(texts), "clients": args.clients, "per_request": args.per_request,
        "server_seconds_per_round": [round(run["wall"], 1) for run in runs],
        "requests": sum(run["requests"] for run in runs), "texts_served": sum(run["texts"] for run in runs),
        "in_process_texts_per_s": [round(x, 1) for x in local], "served_texts_per_s": [round(x, 1) for x in served],
        "ratio_per_round": [round(r, 3) for r in ratios], "ratio_median": round(statistics.median(ratios), 3),
        "latency_p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1) if latencies else None,
        "latency_p99_ms": round(1000 * float(np.percentile(latencies, 99)), 1) if latencies else None,
        "latency_max_ms": round(1000 * latencies[-1], 1) if latencies else None,
        "errors": len(errors), "rows_missing": missing, "max_abs_diff": diff,
        "mean_batch_rows": round(metric(metrics, "inbedder_batch_rows_sum") /
                                 max(1.0, metric(metrics, "inbedder_batch_rows_count")), 1),
        "mean_requests_per_batch": round(metric(metrics, "inbedder_batch_requests_sum") /
                                         max(1.0, metric(metrics, "inbedder_batch_requests_count")), 1),
    }
    for key, value in result.items():
        print(f"{key:>24}: {value}")
    for e in errors[:5]:
        print("error:", e, file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
