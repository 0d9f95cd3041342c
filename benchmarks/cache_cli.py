"""The command line's cache: a first run into a fresh cache against reruns that read every row from it.

``embed`` (default): each of ``--repeats`` fresh cache files gets one first run (loads the model, embeds, stores)
and ``--reruns`` identical runs. Prints every first-run time, the median and minimum rerun time, the ratio of the
medians, and whether every rerun wrote the first run's vectors.

``--command cluster``: the same with ``inbedder cluster`` and no ``--cache`` option (the user cache, the default,
pointed at a fresh file with ``INBEDDER_USER_CACHE``); every rerun asks for another ``-k`` (then another
``--method``), and says whether it loaded a model (``inbedder.loading`` imported) and whether its rows equal
those of a run that computes them.

Each run is a new process, timed from start to exit, as a user sees it.

    python benchmarks/cache_cli.py -i /tmp/sts2000.txt            # 2,000 STS-B sentences, see docs/use-cases.md
    python benchmarks/cache_cli.py -i /tmp/sts2000.txt --command cluster --repeats 1 --reruns 4
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# runs the console script's entry point and says on the last stderr line whether a model was loaded
RUN = ("import sys, atexit; atexit.register(lambda: print('model loaded:', 'inbedder.loading' in sys.modules, "
       "file=sys.stderr)); sys.argv = ['inbedder', *sys.argv[1:]]; from inbedder.cli import run; run()")
INSTRUCTION = "Represent the sentence for clustering:"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--input", required=True, help="texts, one a line")
    parser.add_argument("-m", "--model", default="minilm")
    parser.add_argument("--command", choices=["embed", "cluster"], default="embed")
    parser.add_argument("--repeats", type=int, default=3, help="fresh caches (first runs)")
    parser.add_argument("--reruns", type=int, default=7, help="cached runs after each first run")
    parser.add_argument("--inbedder", default=str(Path(sys.executable).with_name("inbedder")))
    args = parser.parse_args()
    if args.command == "cluster":
        return bench_cluster(args)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    work = Path(tempfile.mkdtemp(prefix="cache-cli-"))

    def run(cache: Path, out: Path) -> float:
        start = time.perf_counter()
        subprocess.run([args.inbedder, "embed", "-m", args.model, "-i", args.input, "-o", str(out), "--cache",
                        str(cache), "--no-progress"], check=True, env=env, capture_output=True)
        return time.perf_counter() - start

    firsts, reruns, identical = [], [], True
    for r in range(args.repeats):
        cache, first = work / f"cache{r}.sqlite", work / f"first{r}.npy"
        firsts.append(run(cache, first))
        for _ in range(args.reruns):
            reruns.append(run(cache, work / "again.npy"))
            identical &= bool(np.array_equal(np.load(first), np.load(work / "again.npy")))
    shutil.rmtree(work)
    print(f"first runs (s): {', '.join(f'{t:.2f}' for t in firsts)}; cached reruns: median "
          f"{statistics.median(reruns):.3f} s, min {min(reruns):.3f} s (n={len(reruns)}); ratio of medians "
          f"{statistics.median(firsts) / statistics.median(reruns):.1f}×; identical vectors: {identical}")


def bench_cluster(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="cache-cli-cluster-"))
    base = ["cluster", "-m", args.model, "-i", args.input, "--instruction", INSTRUCTION, "-q", "--no-progress"]

    def run(env: dict[str, str], *extra: str) -> tuple[float, bool, str]:
        out = work / "rows.jsonl"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", RUN, *base, *extra, "-o", str(out)], env=env,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        return seconds, done.stderr.strip().splitlines()[-1] == "model loaded: True", out.read_text()

    reruns = [(["-k", str(k)]) for k in (6, 8, 10, 12, 15, 20)] + [["-k", "5", "--method", "agglomerative"]]
    print(f"inbedder {' '.join(base)} ...  ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f})")
    for r in range(args.repeats):
        env = dict(os.environ, HF_HUB_OFFLINE="1", INBEDDER_USER_CACHE=str(work / f"user{r}.sqlite"))
        env.pop("INBEDDER_CACHE", None)
        first, loaded, _ = run(env, "-k", "5")
        print(f"first run, -k 5, a fresh user cache: {first:.2f} s, model loaded: {loaded}")
        for extra in reruns[:args.reruns]:
            seconds, loaded, rows = run(env, *extra)
            _, _, computed = run(dict(env, INBEDDER_USER_CACHE=str(work / "other.sqlite")), *extra, "--no-cache")
            print(f"rerun {' '.join(extra)}: {seconds:.2f} s, model loaded: {loaded}, rows equal a computed run's: "
                  f"{rows == computed}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
