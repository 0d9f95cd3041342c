"""How much faster a repeated call is with ``cache_dir=`` (directory cache) and ``cache=`` (SQLite cache).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/cache_speed.py -m smollm2-135m-instruct -n 64

Texts: the first N STS-B test sentences (../shared/data/stsbenchmark/sts-test.jsonl by default). Each cache
starts empty; the first call computes and stores, the second reads. Prints both times, the ratio and whether the
vectors are identical. Model loading is not timed.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from common import STS_TEST, read_texts

from inbedder import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", default="smollm2-135m-instruct")
    parser.add_argument("-n", type=int, default=64, help="number of texts")
    parser.add_argument("--instruction", default="What is the main topic of this sentence?")
    parser.add_argument("--data", type=Path, default=STS_TEST)
    args = parser.parse_args()
    model = load(args.model)
    texts = read_texts(args.data)[:args.n]
    print(f"{platform.processor() or platform.machine()}, model {args.model}, {len(texts)} texts")
    with tempfile.TemporaryDirectory() as tmp:
        for name, kwargs in (("cache_dir", {"cache_dir": Path(tmp) / "dir"}),
                             ("cache (SQLite)", {"cache": Path(tmp) / "c.sqlite"})):
            times, outs = [], []
            for _ in range(2):
                start = time.perf_counter()
                outs.append(model.encode(texts, instruction=args.instruction, **kwargs))
                times.append(time.perf_counter() - start)
            same = np.array_equal(outs[0], outs[1])
            print(f"{name:<15} first {times[0]:8.3f} s   second {times[1]:8.4f} s   "
                  f"ratio {times[0] / times[1]:8.1f}x   identical: {same}")


if __name__ == "__main__":
    main()
