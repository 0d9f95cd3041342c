"""The persistent SQLite cache: only missing rows are computed, identical results, stats, clear, concurrency."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from inbedder.cache import EmbeddingCache, default_path
from inbedder.errors import InputError

INSTR = "Represent the sentence:"


def _count_calls(model, monkeypatch) -> list[int]:
    calls: list[int] = []
    original = model.encoder.embed_batch

    def spy(pairs, output, **options):
        calls.append(len(pairs))
        return original(pairs, output, **options)

    monkeypatch.setattr(model.encoder, "embed_batch", spy)
    return calls


def test_only_missing_rows_are_computed_and_results_are_identical(tiny_bert, tmp_path: Path, monkeypatch) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    texts = [f"text number {i}" for i in range(10)]
    plain = tiny_bert.encode(texts + ["new one", "text number 3"], instruction=INSTR)
    calls = _count_calls(tiny_bert, monkeypatch)
    first = tiny_bert.encode(texts, instruction=INSTR, cache=cache, batch_size=4)
    assert sum(calls) == 10
    assert cache.stats()["last_run"] == {**cache.stats()["last_run"], "hits": 0, "misses": 10}
    calls.clear()
    second = tiny_bert.encode(texts + ["new one", "text number 3"], instruction=INSTR, cache=cache, batch_size=4)
    assert sum(calls) == 1  # only "new one"
    np.testing.assert_array_equal(second[:10], first)
    np.testing.assert_allclose(second, plain, atol=1e-5)
    stats = cache.stats()
    assert stats["rows"] == 11 and stats["last_run"]["hits"] == 10 and stats["last_run"]["misses"] == 1
    assert stats["models"][0]["rows"] == 11 and stats["size_bytes"] > 0


def test_instruction_and_settings_are_part_of_the_key(tiny_bert, tiny_bert_dir, tmp_path: Path) -> None:
    from inbedder import load

    cache = EmbeddingCache(tmp_path / "c.sqlite")
    tiny_bert.encode(["a cat"], instruction=INSTR, cache=cache)
    tiny_bert.encode(["a cat"], instruction="What is the animal?", cache=cache)
    tiny_bert.encode(["a cat"], cache=cache)
    assert cache.stats()["rows"] == 3
    short = load(tiny_bert_dir, device="cpu", max_length=4)
    short.encode(["a cat"], instruction=INSTR, cache=cache)
    stats = cache.stats()
    assert stats["rows"] == 4 and stats["last_run"]["misses"] == 1 and len(stats["models"]) == 2


def test_clear_all_or_one_model(tiny_bert, tiny_t5, tiny_bert_dir, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    tiny_bert.encode(["a", "b"], cache=cache)
    tiny_t5.encode(["a"], cache=cache)
    assert cache.clear(model=str(tiny_bert_dir)) == 2
    assert cache.stats()["rows"] == 1
    with pytest.raises(InputError, match="no model named 'nope'"):
        cache.clear(model="nope")
    assert cache.clear() == 1 and cache.stats()["rows"] == 0


def test_default_path_and_bad_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("INBEDDER_CACHE", str(tmp_path / "x.sqlite"))
    assert default_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("INBEDDER_CACHE")
    monkeypatch.delenv("INBEDDER_USER_CACHE", raising=False)  # the test suite's own user cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "inbedder" / "embeddings.sqlite"
    bad = tmp_path / "bad.sqlite"
    bad.write_text("this is not a database" * 100)
    with pytest.raises(InputError, match="not a usable SQLite file"):
        EmbeddingCache(bad)


def test_cache_true_uses_the_default_file(tiny_bert, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("INBEDDER_CACHE", str(tmp_path / "default.sqlite"))
    tiny_bert.encode(["a"], cache=True)
    assert EmbeddingCache().stats()["rows"] == 1
    with pytest.raises(InputError, match="cache must be"):
        tiny_bert.encode(["a"], cache=3)
    with pytest.raises(InputError, match="sentence vectors only"):
        tiny_bert.encode(["a"], cache=True, output="token")


def _worker(model_dir: str, cache_path: str, start: int, out: str) -> None:
    import torch

    from inbedder import load

    torch.set_num_threads(1)
    model = load(model_dir, device="cpu")
    texts = [f"shared text {i}" for i in range(start, start + 60)]
    np.save(out, model.encode(texts, instruction=INSTR, cache=cache_path, batch_size=4))


def test_two_processes_share_one_cache(tiny_bert_dir: Path, tmp_path: Path, tiny_bert) -> None:
    path = str(tmp_path / "shared.sqlite")
    EmbeddingCache(path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(tiny_bert_dir), path, s, str(tmp_path / f"{s}.npy")))
             for s in (0, 30)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    a, b = np.load(tmp_path / "0.npy"), np.load(tmp_path / "30.npy")
    np.testing.assert_array_equal(a[30:], b[:30])  # the overlap agrees
    expected = tiny_bert.encode([f"shared text {i}" for i in range(90)], instruction=INSTR)
    np.testing.assert_allclose(np.concatenate([a, b[30:]]), expected, atol=1e-5)
    assert EmbeddingCache(path).stats()["rows"] == 90
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_killed_run_keeps_committed_rows_and_a_rerun_completes(tiny_bert_dir: Path, tmp_path: Path, tiny_bert) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "killed.sqlite"
    EmbeddingCache(path)
    texts = [f"row {i} " + "word " * (i % 7) for i in range(3000)]
    script = (
        "import sys, torch; torch.set_num_threads(1); from inbedder import load; "
        f"m = load({str(tiny_bert_dir)!r}, device='cpu'); "
        f"m.encode([f'row {{i}} ' + 'word ' * (i % 7) for i in range(3000)], cache={str(path)!r}, batch_size=2)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": "src"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and EmbeddingCache(path).stats()["rows"] < 50:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = EmbeddingCache(path).stats()["rows"]
    assert 50 <= done < 3000, "the run should have been killed part-way"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    resumed = tiny_bert.encode(texts, cache=str(path), batch_size=64)
    stats = EmbeddingCache(path).stats()
    assert stats["last_run"]["hits"] == done and stats["last_run"]["misses"] == 3000 - done
    np.testing.assert_allclose(resumed, tiny_bert.encode(texts, batch_size=64), atol=1e-5)
