"""`inbedder embed --cache` from the command line: a first run into a fresh cache against fully cached reruns.

Each of ``--repeats`` fresh cache files gets one first run (loads the model, embeds, stores) and ``--reruns``
identical runs that read every row from the cache. Prints every first-run time, the median and minimum rerun
time, the ratio of the medians, and whether every rerun wrote the first run's vectors. Each run is a new process,
timed from start to exit, as a user sees it.

    python benchmarks/cache_cli.py -i /tmp/sts2000.txt            # 2,000 STS-B sentences, see docs/use-cases.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--input", required=True, help="texts, one a line")
    parser.add_argument("-m", "--model", default="minilm")
    parser.add_argument("--repeats", type=int, default=3, help="fresh caches (first runs)")
    parser.add_argument("--reruns", type=int, default=7, help="cached runs after each first run")
    parser.add_argument("--inbedder", default=str(Path(sys.executable).with_name("inbedder")))
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
