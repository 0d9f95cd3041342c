"""kill -9 while the cache is being written: the file stays readable and every row a writer saw committed is
there, unchanged. A writer process prints how many rows it has committed after each ``put_many``; it is
SIGKILLed at a random moment; then the cache is opened and checked (``PRAGMA integrity_check``, every
reported row read back and compared)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.cache_writer import BATCH, MODEL, pair, vector
from inbedder.cache import EmbeddingCache

WRITER = Path(__file__).parents[1] / "helpers" / "cache_writer.py"


def kill_during_writes(path: Path, first: int, rng: random.Random) -> int:
    """One writer from row ``first``, killed with SIGKILL after a random time; the last row it reported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), *sys.path])}
    writer = subprocess.Popen([sys.executable, str(WRITER), str(path), str(first)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n", writer.stderr.read()
        time.sleep(rng.uniform(0.0, 0.25))
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == -signal.SIGKILL
    lines = writer.stdout.read().split("\n")[:-1]  # complete lines only: the last may be cut by the kill
    return int(lines[-1]) if lines else first


@pytest.mark.parametrize("rounds", [4, pytest.param(20, marks=pytest.mark.slow)])
def test_kill_9_during_writes_loses_no_committed_row(tmp_path: Path, rounds: int) -> None:
    path = tmp_path / "cache.sqlite"
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    expected: dict[tuple[str | None, str], bytes] = {}  # every row reported committed so far → its vector's bytes
    for round_ in range(rounds):
        first = round_ * 1_000_000  # each writer its own rows
        expected.update((pair(k), vector(k).tobytes()) for k in range(first, kill_during_writes(path, first, rng)))
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], f"round {round_}, seed {seed}"
        found = EmbeddingCache(path).get_many_raw(MODEL, list(expected))  # opened after the crash: WAL recovery
        lost = [p for p in expected if p not in found]
        assert not lost, f"round {round_}, seed {seed}: {len(lost)} committed rows lost, e.g. {lost[:3]}"
        changed = [p for p, vector_bytes in expected.items() if found[p][0] != vector_bytes]
        assert not changed, f"round {round_}, seed {seed}: rows changed, e.g. {changed[:3]}"
    assert len(expected) >= BATCH, f"no writer committed anything (seed {seed})"
