"""Inputs (txt, jsonl, csv, parquet, stdin) and outputs (jsonl, json, csv, parquet, npy) of every command.

Outputs equal the library's results; bad input (missing column, empty file, unreadable file) is one line, exit 1.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from helpers.cli_checks import assert_one_error_line, ok
from inbedder import similarity
from inbedder.apps.clustering import cluster as run_cluster
from inbedder.apps.search import SearchIndex
from inbedder.cli import main

TEXTS = ["red apple pie with cream", "green apple tart", "ripe banana bread", "fast red car on the road",
         "electric car battery", "a diesel engine for the truck"]
TOPICS = ["fruit"] * 3 + ["cars"] * 3
INSTR = "Represent the topic: "


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBEDDER_CACHE", str(tmp_path / "default-cache.sqlite"))


def run(*args: Any, input: str | bytes | None = None) -> Result:
    clean = {f"INBEDDER_{name}": None for name in ("MODEL", "BATCH_SIZE", "NORMALIZE", "DEVICE", "DTYPE")}
    return CliRunner(env=clean, catch_exceptions=False).invoke(main, [os.fspath(a) for a in args], input=input)


def read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture()
def docs_parquet(tmp_path: Path) -> Path:
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(len(TEXTS))], "body": TEXTS, "topic": TOPICS}), path)
    return path


# -- embed ----------------------------------------------------------------------------------------------------
def test_embed_parquet_input_to_csv(tiny_bert: Any, tiny_bert_dir: Path, docs_parquet: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.csv"
    ok(run("embed", "-m", tiny_bert_dir, "--device", "cpu", "-i", docs_parquet, "--text-column", "body",
           "--instruction", INSTR, "-o", out))
    rows = read_rows(out)
    assert [(r["index"], r["id"], r["text"], r["instruction"]) for r in rows] == [
        (str(i), f"d{i}", t, INSTR) for i, t in enumerate(TEXTS)]
    vectors = np.array([json.loads(r["embedding"]) for r in rows], dtype=np.float32)
    np.testing.assert_allclose(vectors, tiny_bert.encode(TEXTS, instruction=INSTR), rtol=0, atol=1e-6)


def test_embed_parquet_per_row_instructions_and_csv_on_stdout(tiny_bert: Any, tiny_bert_dir: Path,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    instructions = ["Represent the title: ", None]
    pq.write_table(pa.table({"text": TEXTS[:2], "instruction": instructions}), path)
    result = ok(run("embed", "-m", tiny_bert_dir, "--device", "cpu", "-i", path, "--format", "csv"))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["instruction"] for r in rows] == ["Represent the title: ", ""]
    vectors = np.array([json.loads(r["embedding"]) for r in rows], dtype=np.float32)
    np.testing.assert_allclose(vectors, tiny_bert.encode(TEXTS[:2], instruction=instructions), rtol=0, atol=1e-6)


# -- cluster --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".json"])
def test_cluster_parquet_input_with_labels_to_every_row_format(tiny_bert: Any, tiny_bert_dir: Path,
                                                               docs_parquet: Path, tmp_path: Path,
                                                               suffix: str) -> None:
    out = tmp_path / f"clusters{suffix}"
    ok(run("cluster", "-m", tiny_bert_dir, "--device", "cpu", "-i", docs_parquet, "--text-column", "body",
           "--label-column", "topic", "-k", "2", "-o", out, "-q"))
    want = run_cluster(TEXTS, tiny_bert, k=2, labels=TOPICS)
    rows = read_rows(out)
    assert [r["text"] for r in rows] == TEXTS and [r["id"] for r in rows] == [f"d{i}" for i in range(6)]
    assert [int(r["cluster"]) for r in rows] == want.labels.tolist()
    assert [r["label"] for r in rows] == TOPICS
    assert [r["cluster_name"] for r in rows] == [want.clusters[c].name for c in want.labels]


def test_cluster_stdin_to_parquet(tiny_bert: Any, tiny_bert_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.parquet"
    ok(run("cluster", "-m", tiny_bert_dir, "--device", "cpu", "-k", "2", "-o", out, "-q", input="\n".join(TEXTS)))
    assert [r["cluster"] for r in read_rows(out)] == run_cluster(TEXTS, tiny_bert, k=2).labels.tolist()


# -- search ---------------------------------------------------------------------------------------------------
@pytest.fixture()
def index_dir(tiny_bert_dir: Path, docs_parquet: Path, tmp_path: Path) -> Path:
    target = tmp_path / "idx"
    ok(run("search", "index", "-m", tiny_bert_dir, "--device", "cpu", "-i", docs_parquet, "--text-column", "body",
           "--index", target))
    return target


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl", ".json"])
def test_search_query_to_every_format(tiny_bert: Any, index_dir: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"hits{suffix}"
    queries = ["apple dessert", "car engine"]
    ok(run("search", "query", "--index", index_dir, "-k", "2", "-o", out, *queries))
    index = SearchIndex.build(TEXTS, tiny_bert, ids=[f"d{i}" for i in range(6)])
    want = index.query(queries, k=2)
    rows = read_rows(out)
    if suffix in (".csv", ".parquet"):  # one row per result
        got = [(int(r["index"]), r["query"], int(r["rank"]), r["id"], float(r["score"])) for r in rows]
        expected = [(i, q, h.rank, h.id, h.score) for i, q in enumerate(queries) for h in want[i]]
        assert [g[:4] for g in got] == [e[:4] for e in expected]
        np.testing.assert_allclose([g[4] for g in got], [e[4] for e in expected], atol=1e-5)
    else:
        assert [[h["id"] for h in r["results"]] for r in rows] == [[h.id for h in hits] for hits in want]


def test_search_index_from_parquet_ids_and_query_from_stdin(tiny_bert: Any, tiny_bert_dir: Path, docs_parquet: Path,
                                                            tmp_path: Path) -> None:
    target = tmp_path / "by-key"
    pq.write_table(pa.table({"text": TEXTS, "key": list(range(10, 16))}), tmp_path / "keys.parquet")
    ok(run("search", "index", "-m", tiny_bert_dir, "--device", "cpu", "-i", tmp_path / "keys.parquet",
           "--id-column", "key", "--index", target))
    result = ok(run("search", "query", "--index", target, "-k", "1", input="green apple tart\n"))
    [row] = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["query"] == "green apple tart" and row["results"][0]["id"] == 11


# -- similarity -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet", ".npy", ".json"])
def test_similarity_outputs(tiny_t5: Any, tiny_t5_dir: Path, docs_parquet: Path, tmp_path: Path,
                            suffix: str) -> None:
    b = tmp_path / "b.txt"
    b.write_text("apple\ncar\n", encoding="utf-8")
    out = tmp_path / f"sim{suffix}"
    ok(run("similarity", "-m", tiny_t5_dir, "--device", "cpu", "-a", docs_parquet, "--text-column", "body",
           "-b", b, "--instruction", INSTR, "-o", out))
    want = similarity(tiny_t5, TEXTS, ["apple", "car"], INSTR)
    if suffix == ".npy":
        got = np.load(out)
    elif suffix == ".json":
        got = np.array(json.loads(out.read_text(encoding="utf-8"))["cosine"])
    else:
        rows = read_rows(out)
        assert [(int(r["a_index"]), int(r["b_index"])) for r in rows] == [(i, j) for i in range(6) for j in range(2)]
        assert rows[1]["a"] == TEXTS[0] and rows[1]["b"] == "car"
        got = np.array([float(r["cosine"]) for r in rows]).reshape(6, 2)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_similarity_stdin_and_table_on_stdout(tiny_t5: Any, tiny_t5_dir: Path, tmp_path: Path) -> None:
    b = tmp_path / "b.jsonl"
    b.write_text('{"text": "apple"}\n{"text": "car"}\n', encoding="utf-8")
    result = ok(run("similarity", "-m", tiny_t5_dir, "--device", "cpu", "-a", "-", "-b", b, "--format", "jsonl",
                    input="green apple tart\n"))
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    want = similarity(tiny_t5, ["green apple tart"], ["apple", "car"])
    np.testing.assert_allclose([r["cosine"] for r in rows], want[0], atol=1e-5)
    table = ok(run("similarity", "-m", tiny_t5_dir, "--device", "cpu", "-a", "-", "-b", b, input="green apple tart\n"))
    assert table.stdout.splitlines()[1].startswith("green apple tart") and "b1: car" in table.stderr


# -- bad input: one line, exit 1, for every command -----------------------------------------------------------
COMMANDS = {
    "embed": ["embed", "-m", "{model}", "-i"],
    "cluster": ["cluster", "-m", "{model}", "-i"],
    "search index": ["search", "index", "-m", "{model}", "--index", "{tmp}/new-idx", "-i"],
    "search query": ["search", "query", "--index", "{idx}", "-i"],
    "similarity a": ["similarity", "-m", "{model}", "-b", "{tmp}/two.txt", "-a"],
    "similarity b": ["similarity", "-m", "{model}", "-a", "{tmp}/two.txt", "-b"],
}
BAD_FILES = [
    ("{tmp}/missing.parquet", ["missing.parquet", "No such file"]),
    ("{tmp}/folder.parquet", ["folder.parquet", "directory"]),
    ("{tmp}/garbage.parquet", ["garbage.parquet", "not a readable parquet file"]),
    ("{tmp}/empty.parquet", ["empty.parquet", "no texts"]),
    ("{tmp}/nocolumn.parquet", ["nocolumn.parquet: no column 'text'", "'body'"]),
    ("{tmp}/number.parquet", ["number.parquet: row 1 (index 0), column 'text'", "expected a string"]),
    ("{tmp}/null.parquet", ["null.parquet: row 2 (index 1), column 'text'", "NoneType"]),
    ("{tmp}/empty.csv", ["empty.csv", "no texts"]),
    ("{tmp}/nocolumn.csv", ["nocolumn.csv: no column 'text'", "'body'"]),
    ("{tmp}/latin1.txt", ["latin1.txt", "not UTF-8"]),
    ("{tmp}/empty.jsonl", ["empty.jsonl", "no texts"]),
]


def _bad_files(tmp: Path) -> None:
    (tmp / "folder.parquet").mkdir()
    (tmp / "garbage.parquet").write_bytes(b"not parquet at all")
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp / "empty.parquet")
    pq.write_table(pa.table({"body": ["a"]}), tmp / "nocolumn.parquet")
    pq.write_table(pa.table({"text": [5]}), tmp / "number.parquet")
    pq.write_table(pa.table({"text": ["a", None]}), tmp / "null.parquet")
    (tmp / "empty.csv").write_text("", encoding="utf-8")
    (tmp / "nocolumn.csv").write_text("id,body\n1,a\n", encoding="utf-8")
    (tmp / "latin1.txt").write_bytes(b"caf\xe9\n")
    (tmp / "empty.jsonl").write_text("\n", encoding="utf-8")
    (tmp / "two.txt").write_text("a\nb\n", encoding="utf-8")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_input_files_are_one_line(tiny_bert: Any, tiny_bert_dir: Path, tmp_path: Path, command: str) -> None:
    _bad_files(tmp_path)
    idx = tmp_path / "idx"
    SearchIndex.build(TEXTS[:3], tiny_bert).save(idx)
    fill = {"{model}": str(tiny_bert_dir), "{tmp}": str(tmp_path), "{idx}": str(idx)}
    for path, needles in BAD_FILES:
        args = [*COMMANDS[command], path]
        for key, value in fill.items():
            args = [a.replace(key, value) for a in args]
        assert_one_error_line(run(*args, input=""), *needles)


OTHER_ERRORS = [
    (["similarity", "-m", "{model}", "-a", "-", "-b", "-"], ["cannot both read stdin"]),
    (["similarity", "-a", "{tmp}/two.txt", "-b", "{tmp}/two.txt"], ["no model given"]),
    (["similarity", "-m", "{model}", "-a", "{tmp}/two.txt", "-b", "{tmp}/two.txt", "--format", "npy"],
     ["npy", "stdout"]),
    (["similarity", "-m", "{model}", "-a", "{tmp}/two.txt", "-b", "{tmp}/two.txt", "-o", "{tmp}/s.xml"],
     ["s.xml", ".npy"]),
    (["similarity", "-m", "{model}", "-a", "{tmp}/two.txt", "-b", "-", "--format", "yaml"], ["'yaml'", "table"]),
    (["cluster", "-m", "{model}", "a", "b", "--format", "parquet"], ["parquet", "stdout"]),
    (["cluster", "-m", "{model}", "-i", "{tmp}/docs.parquet", "--text-column", "body", "--label-column", "topik"],
     ["no column 'topik' for --label-column", "Did you mean 'topic'"]),
    (["search", "query", "--index", "{idx}", "a", "--format", "parquet"], ["parquet", "stdout"]),
    (["search", "query", "--index", "{idx}", "a", "-o", "{tmp}/no/dir/h.csv"], ["does not exist"]),
    (["embed", "-m", "{model}", "a", "-o", "{tmp}/v.tsv"], ["v.tsv", ".csv"]),
]


@pytest.mark.parametrize("args, needles", OTHER_ERRORS, ids=[" ".join(a)[:50] for a, _ in OTHER_ERRORS])
def test_other_user_errors(tiny_bert: Any, tiny_bert_dir: Path, docs_parquet: Path, tmp_path: Path,
                           args: list[str], needles: list[str]) -> None:
    _bad_files(tmp_path)
    idx = tmp_path / "idx"
    SearchIndex.build(TEXTS[:3], tiny_bert).save(idx)
    fill = {"{model}": str(tiny_bert_dir), "{tmp}": str(tmp_path), "{idx}": str(idx)}
    for key, value in fill.items():
        args = [a.replace(key, value) for a in args]
    assert_one_error_line(run(*args, input=""), *needles)
