"""`inbedder search query` latency, as a user sees it: one new process per query, timed from start to exit.

Builds an index (``inbedder search index``; the 48 texts of the package's showcase corpus unless ``-i FILE``) with
a fresh cache, then times, each ``--repeats`` times (the cheap repeated query twice as often, plus one):

* repeated query: the same query again, its vector in the cache (no model load);
* new query: a query never asked before, with the cache (loads the model);
* without a cache (``--no-cache``), the behaviour before query vectors were cached: every query loads the model;
* the floor of a model load: a process that only imports what loading the model imports (torch, transformers'
  model code, inbedder's loader) and exits.

Prints each median (and min), the machine, the load average before and after, and whether the goal (a query in at
most ``--goal`` seconds) holds for a repeated and for a new query. About a minute with MiniLM on 2 quiet cores
(four on 2 cores shared with a load average of 7).

    python benchmarks/search_latency.py                        # minilm, showcase corpus, 3 repeats
    python benchmarks/search_latency.py -i /tmp/corpus5000.jsonl --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, cpu_model

QUERY = "how do I get my money back for a cold meal"
NEW = ["is the train faster than the plane", "which phone has the best camera", "a film that made me cry",
       "the weather ruined our picnic", "my package never arrived", "a great pizza place downtown",
       "the concert was too loud", "how long is the hike to the lake", "the hotel room was noisy",
       "new battery lasts two days", "the match went to extra time", "a recipe with lentils"]
FLOOR = ("import torch, transformers.models.bert.modeling_bert, transformers.models.t5.modeling_t5, "
         "inbedder.loading, inbedder.engine")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", default="minilm")
    parser.add_argument("-i", "--input", help="documents to index (any `inbedder search index -i` file) "
                        "[default: the showcase corpus]")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each kind (at most 12 new queries)")
    parser.add_argument("--goal", type=float, default=2.0, help="seconds a query may take")
    parser.add_argument("--inbedder", default=str(Path(sys.executable).with_name("inbedder")))
    args = parser.parse_args()
    repeats = max(1, min(args.repeats, len(NEW)))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("INBEDDER_CACHE", None)
    work = Path(tempfile.mkdtemp(prefix="search-latency-"))
    docs = args.input or str(REPO / "src" / "inbedder" / "data" / "showcase.jsonl")
    index, cache = work / "idx", work / "cache.sqlite"
    load_before = os.getloadavg()

    def timed(command: list[str]) -> tuple[float, str]:
        start = time.perf_counter()
        done = subprocess.run(command, check=True, env=env, capture_output=True, text=True)
        return time.perf_counter() - start, done.stdout

    def query(text: str, *options: str) -> tuple[float, str]:
        return timed([args.inbedder, "search", "query", "--index", str(index), "-k", "5", *options, text])

    try:
        built, _ = timed([args.inbedder, "search", "index", "-m", args.model, "-i", docs, "--index", str(index),
                          "--cache", str(cache), "--no-progress"])
        _, first = query(QUERY, "--cache", str(cache))  # embeds the query once
        repeated = [query(QUERY, "--cache", str(cache)) for _ in range(2 * repeats + 1)]
        new = [query(text, "--cache", str(cache))[0] for text in NEW[:repeats]]
        uncached = [query(QUERY, "--no-cache") for _ in range(repeats)]
        floor = [timed([sys.executable, "-c", FLOOR])[0] for _ in range(repeats)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    same = all(out == first for _, out in repeated)
    scores = [[round(r["score"], 5) for r in json.loads(line)["results"]] for line in first.splitlines()]
    same_ranking = all([[round(r["score"], 5) for r in json.loads(line)["results"]] for line in out.splitlines()]
                       == scores for _, out in uncached)

    def show(name: str, times: list[float]) -> float:
        median = statistics.median(times)
        print(f"  {name:<44} median {median:6.2f} s  min {min(times):6.2f} s  "
              f"({', '.join(f'{t:.2f}' for t in times)})")
        return median

    print(f"search query latency, {args.model}, index of {docs} (built in {built:.1f} s)")
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
          f"before {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}, after "
          f"{load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f}")
    print(f"command: {args.inbedder} search query --index IDX -k 5 --cache FILE 'query'")
    again = show("repeated query (vector cached, no model load)", [t for t, _ in repeated])
    fresh = show("new query (cache, loads the model)", new)
    before = show("any query with --no-cache (every query loads)", [t for t, _ in uncached])
    show("floor of a load: importing torch + transformers", floor)
    print(f"repeated query vs --no-cache: {before / again:.1f}x faster; output identical to the first run: {same}; "
          f"--no-cache ranks and scores the same: {same_ranking}")
    for name, median in (("repeated query", again), ("new query", fresh)):
        print(f"goal <= {args.goal:g} s for a {name}: {'met' if median <= args.goal else 'NOT met'} "
              f"(median {median:.2f} s)")


if __name__ == "__main__":
    main()
