"""Ray Data: ``embed_dataset`` and ``inbedder embed --ray`` give the vectors of single-process ``encode``.

Ray's start and its actors' imports take tens of seconds on a busy machine: the tests that start Ray are in
this file; the one that kills a run in a subprocess is marked ``slow``, as is the run over a few thousand texts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("ray.data")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from inbedder.cache import EmbeddingCache  # noqa: E402
from inbedder.cli import main  # noqa: E402
from inbedder.distributed import EmbedBatch, actor_pool, embed_dataset  # noqa: E402
from inbedder.distributed.shards import MANIFEST, SHARD_ROWS_ENV, input_files, plan, read_rows  # noqa: E402
from inbedder.errors import InputError, InputTypeError  # noqa: E402

DEFAULT = "Represent the sentence:"
OWN = "Represent the Science title:"


def corpus(n: int) -> tuple[list[int], list[str], list[str | None]]:
    ids = [1000 + 7 * i for i in range(n)]
    texts = [f"text {i}: the Federal Reserve raised rates" + " and cats sat" * (i % 4) for i in range(n)]
    instructions = [OWN if i % 3 == 0 else None for i in range(n)]
    return ids, texts, instructions


def expected(model, texts: list[str], instructions: list[str | None]) -> np.ndarray:
    return model.encode(texts, instruction=[DEFAULT if i is None else i for i in instructions], batch_size=64)


@pytest.fixture(scope="module")
def local_ray():
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    if started:
        ray.shutdown()


def _embedding_actors(ray) -> int:
    """Embedding actors started in this Ray session, alive or finished. Read from the GCS (``ray.util.state``
    needs the dashboard, which these tests do not start)."""
    from ray._private import state

    return sum("EmbedBatch" in str(a.get("ActorClassName")) for a in state.actors().values())


def _check_dataset(local_ray, model, model_dir: Path, n: int, rows_per_call: int) -> None:
    ids, texts, instructions = corpus(n)
    ds = local_ray.data.from_items([{"id": i, "text": t, "instruction": s}
                                    for i, t, s in zip(ids, texts, instructions, strict=True)],
                                   override_num_blocks=8)
    out = embed_dataset(ds, str(model_dir), DEFAULT, instruction_column="instruction", concurrency=2,
                        rows_per_call=rows_per_call, batch_size=64, device="cpu")
    rows = out.take_all()
    assert [r["id"] for r in rows] == ids  # row order and ids kept
    assert [r["text"] for r in rows] == texts
    got = np.stack([np.asarray(r["embedding"], dtype=np.float32) for r in rows])
    np.testing.assert_allclose(got, expected(model, texts, instructions), atol=1e-5)
    assert _embedding_actors(local_ray) >= 2


@pytest.mark.slow  # Ray start + 2 actors: ~55 s on the shared 2-core machine
def test_embed_dataset_matches_encode(local_ray, tiny_bert, tiny_bert_dir):
    _check_dataset(local_ray, tiny_bert, tiny_bert_dir, n=240, rows_per_call=20)
    ds = local_ray.data.from_items([{"body": "a"}]).materialize()
    with pytest.raises(InputError, match="no column 'text'"):
        embed_dataset(ds, str(tiny_bert_dir))
    with pytest.raises(InputTypeError, match="name or path"):
        embed_dataset(ds, tiny_bert, text_column="body")


@pytest.mark.slow
def test_embed_dataset_thousands_of_texts(local_ray, tiny_t5, tiny_t5_dir):
    _check_dataset(local_ray, tiny_t5, tiny_t5_dir, n=3000, rows_per_call=200)


def _write_input(path: Path, n: int, files: int = 1) -> tuple[list[int], list[str], list[str | None]]:
    ids, texts, instructions = corpus(n)
    path.mkdir(parents=True, exist_ok=True)
    step = -(-n // files)
    for f, start in enumerate(range(0, n, step)):
        part = slice(start, start + step)
        table = pa.table({"id": ids[part], "text": texts[part], "instruction": instructions[part]})
        pq.write_table(table, path / f"in-{f}.parquet", row_group_size=37)  # shards cross row groups
    return ids, texts, instructions


def _read_output(folder: Path):
    files = sorted(folder.glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]), files


def _cli(args: list[str], env: dict[str, str]) -> object:
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


@pytest.mark.slow
def test_cli_ray_writes_shards_and_resumes(local_ray, tiny_bert, tiny_bert_dir, tmp_path):
    ids, texts, instructions = _write_input(tmp_path / "in", 150, files=2)
    args = ["embed", "--ray", "--concurrency", "2", "-m", str(tiny_bert_dir), "--instruction", DEFAULT,
            "--instruction-column", "instruction", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
            "--device", "cpu", "--no-progress", "--cache", str(tmp_path / "cache.sqlite")]
    env = {SHARD_ROWS_ENV: "40"}
    result = _cli(args, env)
    assert result.exit_code == 0, result.output
    assert EmbeddingCache(tmp_path / "cache.sqlite").stats()["rows"] == 150  # the actors filled the cache
    table, files = _read_output(tmp_path / "out")
    assert [f.name for f in files] == [f"part-0000{f}-00000{s}.parquet" for f in (0, 1) for s in range(2)]
    assert table.column("id").to_pylist() == ids
    got = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(got, expected(tiny_bert, texts, instructions), atol=1e-5)

    # a run cut short: two shards missing, a temporary file left behind; the rerun computes only those
    first = {f.name: f.read_bytes() for f in files}
    files[1].unlink()
    files[3].unlink()
    (tmp_path / "out" / f".{files[1].name}.abc.tmp").write_bytes(b"partial")
    kept = files[0].stat().st_mtime_ns
    result = _cli(args, env)
    assert result.exit_code == 0, result.output
    assert "Resuming: 2 of 4 shards are done" in result.output
    assert files[0].stat().st_mtime_ns == kept
    assert {f.name: f.read_bytes() for f in sorted((tmp_path / "out").glob("part-*"))} == first
    assert not list((tmp_path / "out").glob(".*tmp"))
    last = EmbeddingCache(tmp_path / "cache.sqlite").stats()["last_run"]
    assert (last["hits"], last["misses"]) == (35, 0)  # the resumed shards came from the cache

    # other settings on the same output folder are refused
    result = CliRunner().invoke(main, [*args, "--normalize"], env=env)
    assert result.exit_code == 1 and "holds a run with other normalize" in result.output

    # an error inside an actor is one line naming the file, its rows and the row
    pq.write_table(pa.table({"text": ["fine", None]}), tmp_path / "bad.parquet")
    result = CliRunner().invoke(main, ["embed", "--ray", "-m", str(tiny_bert_dir), "-i", str(tmp_path / "bad.parquet"),
                                       "-o", str(tmp_path / "bad"), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "bad.parquet (rows 0-1), row 1: column 'text' holds None" in result.output
    assert "Traceback" not in result.output


def test_cli_ray_user_errors_need_no_ray(tiny_bert_dir, tmp_path):
    _write_input(tmp_path / "in", 10)
    base = ["embed", "--ray", "-m", str(tiny_bert_dir)]
    cases = [
        ([*base, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "o1"), "--text-column", "txt"],
         "has no column 'txt'"),
        ([*base, "hello", "-o", str(tmp_path / "o2")], "--ray reads -i"),
        ([*base, "-i", str(tmp_path / "nothing"), "-o", str(tmp_path / "o3")], "does not exist"),
        ([*base, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "o4"), "--concurrency", "0"], "at least 1"),
    ]
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    cases.append(([*base, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "busy")], "not empty"))
    for args, message in cases:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output


def test_planning_and_reading_rows(tmp_path):
    _write_input(tmp_path / "in", 100, files=2)
    (tmp_path / "in" / "_SUCCESS.parquet").write_text("")  # side files are skipped
    files = input_files(tmp_path / "in")
    assert [f.name for f in files] == ["in-0.parquet", "in-1.parquet"]
    shards, about = plan(files, 30, ["text"])
    assert [(Path(s.path).name, s.start, s.stop, s.name) for s in shards][:3] == [
        ("in-0.parquet", 0, 30, "part-00000-000000.parquet"), ("in-0.parquet", 30, 50, "part-00000-000001.parquet"),
        ("in-1.parquet", 0, 30, "part-00001-000000.parquet")]
    assert [a["rows"] for a in about] == [50, 50]
    whole = pq.read_table(files[0])
    for start, stop in [(0, 30), (30, 50), (36, 38), (37, 74)]:
        assert read_rows(str(files[0]), start, stop).equals(whole.slice(start, max(0, min(stop, 50) - start)))
    (tmp_path / "x.csv").write_text("a")
    with pytest.raises(InputError, match="not a .parquet file"):
        input_files(tmp_path / "x.csv")


def test_embed_batch_without_ray(tiny_bert, tiny_bert_dir):
    ids, texts, instructions = corpus(12)
    table = pa.table({"id": ids, "text": texts, "instruction": instructions})
    embed = EmbedBatch(str(tiny_bert_dir), DEFAULT, instruction_column="instruction", load_options={"device": "cpu"})
    out = embed(table)
    assert out.column_names == ["id", "text", "instruction", "embedding"]
    np.testing.assert_allclose(np.asarray(out.column("embedding").to_pylist()),
                               expected(tiny_bert, texts, instructions), atol=1e-5)
    with pytest.raises(InputError, match="row 1: column 'text' holds None"):
        embed(pa.table({"text": ["a", None]}))
    with pytest.raises(InputError, match="no column 'text'"):
        embed(pa.table({"body": ["a"]}))
    with pytest.raises(InputError, match="already has a column 'embedding'"):
        embed(out)


def test_embed_dataset_checks_its_arguments():
    with pytest.raises(InputTypeError, match="ray.data.Dataset"):
        embed_dataset([{"text": "a"}], "minilm")
    assert (actor_pool(3).min_size, actor_pool(3).max_size) == (3, 3)
    assert (actor_pool((1, 4)).min_size, actor_pool((1, 4)).max_size) == (1, 4)
    for bad in (0, (3, 2), "2", 1.5):
        with pytest.raises(InputError, match="concurrency"):
            actor_pool(bad)  # type: ignore[arg-type]


@pytest.mark.slow
def test_killed_cli_run_resumes_to_identical_output(tiny_t5_dir, tmp_path):
    """Kill ``inbedder embed --ray`` once its first files exist; the rerun completes them, same bytes as a
    run that was never interrupted."""
    _write_input(tmp_path / "in", 1200, files=2)
    env = {**os.environ, SHARD_ROWS_ENV: "100", "INBEDDER_TEST_THREADS": "1"}

    def command(out: str) -> list[str]:
        return [sys.executable, "-m", "inbedder", "embed", "--ray", "--concurrency", "2", "-m", str(tiny_t5_dir),
                "--instruction", DEFAULT, "-i", str(tmp_path / "in"), "-o", str(tmp_path / out), "--no-progress",
                "--device", "cpu"]

    subprocess.run(command("whole"), env=env, check=True, capture_output=True, timeout=600)
    run = subprocess.Popen(command("cut"), env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "cut").glob("part-*.parquet")) and time.monotonic() < deadline:
        assert run.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # the driver, its local Ray and the actors
    run.wait()
    done = len(list((tmp_path / "cut").glob("part-*.parquet")))
    assert 0 < done < 12
    finished = subprocess.run(command("cut"), env=env, check=True, capture_output=True, text=True, timeout=600)
    resumed = re.search(r"Resuming: (\d+) of 12 shards are done", finished.stderr)
    assert resumed and done <= int(resumed.group(1)) < 12  # actors may finish a file after the driver died
    assert not list((tmp_path / "cut").glob(".*.tmp"))
    whole, cut = sorted((tmp_path / "whole").glob("part-*")), sorted((tmp_path / "cut").glob("part-*"))
    assert [f.name for f in cut] == [f.name for f in whole] and len(whole) == 12
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(whole, cut, strict=True))
    assert json.loads((tmp_path / "cut" / MANIFEST).read_text())["shard_rows"] == 100
