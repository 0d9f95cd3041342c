"""A cache writer for tests/cache/test_cache_crash.py: ``python cache_writer.py CACHE FIRST`` writes rows FIRST,
FIRST+1, ... in batches with ``put_many``, and prints after each commit how many it has committed, until killed.
Each row's pair and vector follow from its number, so a reader can check them."""

from __future__ import annotations

import sys

import numpy as np

MODEL, DIM, BATCH = "crash-test-model", 96, 64


def pair(k: int) -> tuple[str | None, str]:
    return (None if k % 3 == 0 else f"Represent the sentence {k % 5}:", f"text number {k} " * (1 + k % 4))


def vector(k: int) -> np.ndarray:
    return np.cos(np.arange(DIM, dtype=np.float32) * np.float32(k % 9973 + 1)) + np.float32(k)


def main(path: str, first: int) -> None:
    from inbedder.cache import EmbeddingCache

    cache = EmbeddingCache(path)
    done = first
    print("ready", flush=True)
    while True:
        rows = range(done, done + BATCH)
        cache.put_many(MODEL, [pair(k) for k in rows], np.stack([vector(k) for k in rows]))
        done += BATCH
        print(done, flush=True)  # rows first .. done-1 are committed


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
