"""A fully cached ``inbedder embed --cache`` run reads the rows without loading the model, and never serves
stale vectors: a changed model file makes the lookup miss and the model load again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from inbedder.cache import EmbeddingCache
from inbedder.cache.keys import file_stats, request_key
from inbedder.cli import main
from inbedder.errors import InputError
from inbedder.load_free import encode_cached

TEXTS = ["a cat sat on the mat", "the bank raised its rate", "a dog ran in the park"]
INSTR = "Represent the sentence:"


def run(*args: Any, input: str | None = None) -> Result:
    env = {name: None for name in ("INBEDDER_MODEL", "INBEDDER_CACHE", "INBEDDER_DEVICE", "INBEDDER_DTYPE")}
    result = CliRunner(env=env, catch_exceptions=False).invoke(main, [os.fspath(a) for a in args], input=input)
    assert result.exit_code == 0, result.output
    return result


def test_second_run_reads_the_cache_without_loading(model_dir: Path, tmp_path: Path, loads: list[str]) -> None:
    cache, first, second = tmp_path / "c.sqlite", tmp_path / "1.npy", tmp_path / "2.npy"
    args = ["embed", "-m", model_dir, "--device", "cpu", "--instruction", INSTR, "--cache", cache, *TEXTS]
    run(*args, "-o", first)
    assert len(loads) == 1
    run(*args, "-o", second)
    assert len(loads) == 1  # not loaded again
    np.testing.assert_array_equal(np.load(second), np.load(first))
    stats = EmbeddingCache(cache).stats()
    assert stats["last_run"]["hits"] == 3 and stats["last_run"]["misses"] == 0
    assert "last run: 3 hits, 0 misses, hit rate 100.0%" in run("cache", "stats", "--cache", cache).stdout
    # one new text: the model loads, only that row is computed
    run(*args, "a bird", "-o", second)
    assert len(loads) == 2
    last = EmbeddingCache(cache).stats()["last_run"]
    assert (last["hits"], last["misses"]) == (3, 1)


def test_normalize_per_row_instructions_and_jsonl_from_the_cache(tiny_bert: Any, model_dir: Path, tmp_path: Path,
                                                                   loads: list[str]) -> None:
    source = tmp_path / "rows.jsonl"
    instructions = ["Represent the title:", None, INSTR]
    source.write_text("".join(json.dumps({"text": t, "instruction": i}) + "\n"
                              for t, i in zip(TEXTS, instructions, strict=True)), encoding="utf-8")
    cache = tmp_path / "c.sqlite"
    args = ["embed", "-m", model_dir, "--device", "cpu", "-i", source, "--cache", cache, "--normalize"]
    first = [json.loads(line)["embedding"] for line in run(*args).stdout.splitlines()]
    second = [json.loads(line)["embedding"] for line in run(*args).stdout.splitlines()]
    assert len(loads) == 1
    want = tiny_bert.encode(TEXTS, instruction=instructions, normalize=True)
    np.testing.assert_allclose(np.array(second), want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.array(second), np.array(first), rtol=0, atol=1e-6)


def test_changed_weights_are_never_served_stale(tiny_bert: Any, model_dir: Path, tmp_path: Path,
                                                loads: list[str]) -> None:
    from safetensors.torch import load_file, save_file

    cache = tmp_path / "c.sqlite"
    args = ["embed", "-m", model_dir, "--device", "cpu", "--cache", cache, "-o", tmp_path / "v.npy", *TEXTS]
    run(*args)
    before = np.load(tmp_path / "v.npy")
    np.testing.assert_allclose(before, tiny_bert.encode(TEXTS), rtol=0, atol=1e-6)
    # new weights of the same size: the file's mtime changes, so the model is loaded again
    weights = model_dir / "model.safetensors"
    size = weights.stat().st_size
    tensors = {name: t * 1.5 if t.is_floating_point() else t for name, t in load_file(weights).items()}
    save_file(tensors, weights, metadata={"format": "pt"})
    assert weights.stat().st_size == size
    run(*args)
    assert len(loads) == 2
    after = np.load(tmp_path / "v.npy")
    assert not np.allclose(after, before, atol=1e-3)  # computed with the new weights
    from inbedder import load

    np.testing.assert_allclose(after, load(model_dir, device="cpu").encode(TEXTS), rtol=0, atol=1e-6)
    del loads[:]
    # only touching a file (same bytes, new mtime) also makes the lookup miss
    run(*args)
    assert loads == []
    os.utime(model_dir / "config.json", ns=(1, 1))
    run(*args)
    assert len(loads) == 1


def test_request_key_follows_files_and_load_arguments(model_dir: Path, tmp_path: Path) -> None:
    key = request_key(model_dir)
    assert key is not None and key == request_key(model_dir)
    assert request_key(model_dir, dtype="bfloat16") != key
    assert request_key(model_dir, device="cpu") != key
    assert request_key(model_dir, encode_options={"max_length": 8}) != key
    assert request_key(tmp_path / "no-such-model") is None  # the load reports it
    names = [name for name, _, _ in file_stats(model_dir) or []]
    assert "model.safetensors" in names and "modules.json" in names
    (model_dir / "extra.txt").write_text("x", encoding="utf-8")
    assert request_key(model_dir) != key


def test_library_helper_equals_encode(tiny_bert: Any, model_dir: Path, tmp_path: Path, loads: list[str]) -> None:
    plain = encode_cached(model_dir, TEXTS, INSTR, device="cpu")  # no cache: load and encode
    np.testing.assert_allclose(plain, tiny_bert.encode(TEXTS, instruction=INSTR), rtol=0, atol=1e-6)
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    first = encode_cached(model_dir, TEXTS, INSTR, device="cpu", cache=cache)
    again = encode_cached(model_dir, TEXTS, INSTR, device="cpu", cache=cache)
    assert len(loads) == 2
    np.testing.assert_array_equal(again, first)
    assert again.dtype == np.float32 and again.shape == (3, tiny_bert.dim)


@pytest.mark.parametrize("asked", [[], ["--instruction", "Which animal?", "--instruction", "Which place?"]])
def test_fully_cached_cli_run_imports_neither_torch_nor_numpy_nor_click(model_dir: Path, tmp_path: Path,
                                                                         asked: list[str]) -> None:
    cache = tmp_path / "c.sqlite"
    args = ["embed", "-m", str(model_dir), "--device", "cpu", "--cache", str(cache), "-o", str(tmp_path / "v.npy"),
            *asked, *TEXTS]
    run(*args)
    code = (f"import sys\nsys.argv = ['inbedder', *{args!r}]\nfrom inbedder.cli import run\nrun()\n"
            "print('torch' in sys.modules, 'numpy' in sys.modules, 'click' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBEDDER_")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False False False"


@pytest.mark.parametrize("suffix", ["npy", "jsonl", "csv", "json", "parquet"])
def test_cached_run_writes_what_the_computing_run_wrote(model_dir: Path, tmp_path: Path, suffix: str) -> None:
    """The packed (numpy-free) writer gives the same file bytes as the first run's numpy writer."""
    if suffix == "parquet":
        pytest.importorskip("pyarrow")
    cache, first, second = tmp_path / "c.sqlite", tmp_path / f"1.{suffix}", tmp_path / f"2.{suffix}"
    args = ["embed", "-m", model_dir, "--device", "cpu", "--instruction", INSTR, "--cache", cache, *TEXTS]
    run(*args, "-o", first)
    run(*args, "-o", second)
    if suffix == "parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(second).equals(pq.read_table(first))
    else:
        assert second.read_bytes() == first.read_bytes()
    stdout = [run(*args).stdout_bytes for _ in range(2)]  # jsonl on stdout, the second from the cache
    assert stdout[0] == stdout[1]


CLUSTER_TEXTS = ["a cat sat on the mat", "the bank raised its rate", "a dog ran in the park", "rates fell again",
                 "my cat sleeps all day", "the bank cut its fees"]


@pytest.mark.parametrize("which", ["encoder", "answers"])
def test_cluster_rerun_reads_the_cache_without_loading(model_dir: Path, llama_dir: Path, tmp_path: Path,
                                                       loads: list[str], which: str) -> None:
    """A rerun (another k) clusters the cached vectors; rows and cluster names (answers for an answer family)
    are those of a run that computes them. Rows cached by `embed` serve an encoder's clustering, but not an
    answer family's: `embed` (a one-pass readout) cached no answers to name the clusters with."""
    model = model_dir if which == "encoder" else llama_dir
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps({"text": t, "topic": i % 2}) + "\n" for i, t in enumerate(CLUSTER_TEXTS)),
                      encoding="utf-8")
    cache = tmp_path / "c.sqlite"
    args = ["cluster", "-m", model, "--device", "cpu", "-i", source, "--instruction", INSTR, "--label-column",
            "topic", "-q"]
    computed = [run(*args, "-k", k, "--no-cache", "--summary", tmp_path / f"computed{k}.json").stdout
                for k in ("2", "3")]
    assert len(loads) == 2  # no cache: loaded each time
    run("embed", "-m", model, "--device", "cpu", "-i", source, "--instruction", INSTR, "--cache", cache,
        "-o", tmp_path / "v.npy")
    assert len(loads) == 3
    run(*args, "-k", "2", "--cache", cache)
    assert len(loads) == (3 if which == "encoder" else 4)
    for k, want in zip(("2", "3"), computed, strict=True):
        assert run(*args, "-k", k, "--cache", cache, "--summary", tmp_path / f"cached{k}.json").stdout == want
        summaries = [json.loads((tmp_path / f"{kind}{k}.json").read_text()) for kind in ("computed", "cached")]
        silhouettes = [s.pop("silhouette") for s in summaries]  # float32 noise: vectors cached by `embed` and
        # recomputed with answers differ in it (by 1.2e-5 on an AVX-512 CPU, less on AVX2: kernels round apart)
        assert silhouettes[1] == pytest.approx(silhouettes[0], abs=1e-4)
        for summary in summaries:  # and two examples about as near to their centroid may swap places
            for c in summary["clusters"]:
                c["examples"] = sorted(c["examples"])
        assert summaries[1] == summaries[0]
    assert len(loads) == (3 if which == "encoder" else 4)  # both reruns served from the cache
    assert all(bool(c["answers"]) == (which == "answers") for c in summaries[1]["clusters"])
    run(*args, "-k", "2", "--cache", cache, "--instruction", "Represent the topic:")  # another instruction: computed
    assert len(loads) == (4 if which == "encoder" else 5)


def test_similarity_rerun_reads_the_cache_without_loading(tiny_bert: Any, model_dir: Path, tmp_path: Path,
                                                          loads: list[str]) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\n".join(TEXTS[:2]) + "\n", encoding="utf-8")
    b.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    cache = tmp_path / "c.sqlite"
    args = ["similarity", "-m", model_dir, "--device", "cpu", "-a", a, "-b", b, "--instruction", INSTR,
            "--instruction-b", "Represent the title:", "--cache", cache]
    run(*args, "-o", tmp_path / "1.npy")
    run(*args, "-o", tmp_path / "2.npy")
    assert len(loads) == 1
    np.testing.assert_allclose(np.load(tmp_path / "2.npy"), np.load(tmp_path / "1.npy"), rtol=0, atol=1e-6)
    x = tiny_bert.encode(TEXTS[:2], instruction=INSTR, normalize=True)
    y = tiny_bert.encode(TEXTS, instruction="Represent the title:", normalize=True)
    np.testing.assert_allclose(np.load(tmp_path / "2.npy"), x @ y.T, rtol=0, atol=1e-5)
    b.write_text("\n".join([*TEXTS, "a bird"]) + "\n", encoding="utf-8")  # one row of -b is new: computed
    run(*args, "-o", tmp_path / "3.npy")
    assert len(loads) == 2
    np.testing.assert_allclose(np.load(tmp_path / "3.npy")[:, :3], np.load(tmp_path / "1.npy"), rtol=0, atol=1e-6)


def test_a_bad_batch_size_is_refused_even_when_every_row_is_cached(model_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    encode_cached(model_dir, TEXTS, INSTR, device="cpu", cache=cache)
    for bad in (0, True, "8"):
        with pytest.raises(InputError, match=f"batch_size must be a positive int; got {bad!r}"):
            encode_cached(model_dir, TEXTS, INSTR, device="cpu", cache=cache, batch_size=bad)
    from inbedder.cli.fast import serve_cached

    args = ["embed", "-m", str(model_dir), "--device", "cpu", "--instruction", INSTR, "--cache", str(cache), "-o",
            str(tmp_path / "v.npy"), *TEXTS]
    assert not serve_cached([*args, "--batch-size", "0"])  # the click command reports it
    assert serve_cached([*args, "--batch-size", "4"])
