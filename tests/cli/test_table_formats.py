"""Every table format (jsonl, json, csv, tsv, parquet) works in every command that reads a file, with the same
result; bad cells and missing columns are named the same way (file, row, line or parquet index, column) in each.

Each command runs once per format on the same small table (written here with json, csv and pyarrow directly,
not with inbedder's writer); the jsonl run is the reference the other formats must equal.
"""

from __future__ import annotations

import csv
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
from inbedder.cli import main

FORMATS = ["jsonl", "json", "csv", "tsv", "parquet"]
TEXTS = ["red apple pie with cream", "green apple tart", "ripe banana bread", "fast red car on the road",
         "electric car battery", "a diesel engine for the truck"]
TOPICS = ["fruit"] * 3 + ["cars"] * 3
COLOURS = ["red", "green", "yellow", "red", "blue", "black"]
INSTR = "Represent the topic: "


def write_table(stem: Path, fmt: str, rows: list[dict[str, Any]]) -> Path:
    """``rows`` as ``stem.<fmt>``: lists as JSON text in csv/tsv cells, None as an empty cell; json one row a line."""
    path = stem.with_suffix(f".{fmt}")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "json":
        path.write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n", encoding="utf-8")
    elif fmt in ("csv", "tsv"):
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t" if fmt == "tsv" else ",")
            writer.writerow(columns)
            writer.writerows([_cell(row.get(c)) for c in columns] for row in rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _cell(value: Any) -> str:
    return "" if value is None else json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def line_of(fmt: str, i: int) -> str:
    """Where row ``i`` (0-based) of a :func:`write_table` file is, as errors say it."""
    at = {"jsonl": f"line {i + 1}", "json": f"line {i + 2}", "csv": f"line {i + 2}", "tsv": f"line {i + 2}",
          "parquet": f"index {i}"}[fmt]
    return f"row {i + 1} ({at})"


def run(*args: Any) -> Result:
    clean = {f"INBEDDER_{name}": None for name in ("MODEL", "BATCH_SIZE", "NORMALIZE", "DEVICE", "DTYPE", "CACHE")}
    return CliRunner(env=clean, catch_exceptions=False).invoke(main, [os.fspath(a) for a in args], input="")


def jsonl_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def metrics(path: Path) -> dict[str, float]:
    return {k: round(v, 6) for k, v in json.loads(path.read_text(encoding="utf-8"))["metrics"].items()}


# -- each command: run it on a table in one format, return what must not depend on the format -----------------
DOCS = [{"id": f"d{i}", "text": t, "instruction": "" if i == 2 else INSTR, "topic": topic, "colour": colour}
        for i, (t, topic, colour) in enumerate(zip(TEXTS, TOPICS, COLOURS, strict=True))]


def embed(m: dict[str, Path], fmt: str, tmp: Path) -> Any:
    out = tmp / "v.jsonl"
    ok(run("embed", "-m", m["bert"], "--device", "cpu", "-i", write_table(tmp / "docs", fmt, DOCS),
           "--instruction", "Represent it: ", "-o", out))
    return [(r["id"], r["text"], r["instruction"], np.round(r["embedding"], 6).tolist()) for r in jsonl_rows(out)]


def similarity(m: dict[str, Path], fmt: str, tmp: Path) -> Any:
    path = write_table(tmp / "docs", fmt, DOCS)
    result = ok(run("similarity", "-m", m["bert"], "--device", "cpu", "-a", path, "-b", path, "--format", "json"))
    return np.round(json.loads(result.stdout)["cosine"], 5).tolist()


def search(m: dict[str, Path], fmt: str, tmp: Path) -> Any:
    index = tmp / "idx"
    ok(run("search", "index", "-m", m["bert"], "--device", "cpu", "-i", write_table(tmp / "docs", fmt, DOCS),
           "--index", index))
    queries = write_table(tmp / "queries", fmt, [{"text": "apple dessert"}, {"text": "truck engine"}])
    result = ok(run("search", "query", "--index", index, "-i", queries, "-k", "3", "--format", "jsonl"))
    return [[(h["id"], round(h["score"], 5)) for h in json.loads(line)["results"]]
            for line in result.stdout.splitlines()]


def cluster(m: dict[str, Path], fmt: str, tmp: Path) -> Any:
    out = tmp / "c.jsonl"
    ok(run("cluster", "-m", m["bert"], "--device", "cpu", "-i", write_table(tmp / "docs", fmt, DOCS), "-k", "2",
           "--label-column", "topic", "-o", out, "-q"))
    return [(r["id"], r["cluster"], r["label"]) for r in jsonl_rows(out)]


def bench(m: dict[str, Path], fmt: str, tmp: Path) -> Any:
    out = tmp / "bench.json"
    ok(run("bench", "-m", m["bert"], "-i", write_table(tmp / "docs", fmt, DOCS), "--variants", "float32",
           "--rounds", "1", "--warmup", "0", "--peak-size", "0", "--json", out))
    found = json.loads(out.read_text(encoding="utf-8"))
    return found["texts"], found["tokens"]


def evaluate(task: str, rows: list[dict[str, Any]], *options: str) -> Any:
    def command(m: dict[str, Path], fmt: str, tmp: Path) -> Any:
        out = tmp / "result.json"
        ok(run("eval", task, "-m", m["bert"], "--device", "cpu", "-i", write_table(tmp / "data", fmt, rows),
               *[o.replace("{test}", str(write_table(tmp / "test", fmt, rows))) for o in options], "-o", out))
        found = metrics(out)
        return sorted(found) if task == "latency" else found  # timings vary; which metrics there are does not
    return command


PAIRS = [{"sentence1": a, "sentence2": b, "score": s} for a, b, s in
         zip(TEXTS, TEXTS[1:] + TEXTS[:1], [4.5, 1.0, 0.5, 3.0, 0.0, 2.5], strict=True)]
TRIPLETS = [{"anchor": TEXTS[i], "positive": TEXTS[(i + 1) % 3 + 3 * (i // 3)], "negative": TEXTS[(i + 3) % 6]}
            for i in range(6)]
LABELLED = [{"text": d["text"], "label": d["topic"], "colour": d["colour"]} for d in DOCS]
CANDIDATES = [{"candidate": t, "references": [TEXTS[(i + 1) % 6], TEXTS[(i + 2) % 6]], "score": float(i % 3)}
              for i, t in enumerate(TEXTS)]
QA = [{"input": d["text"], "instruction": "What is the topic?", "answer": d["topic"]} for d in DOCS]
MEDI = [{"query": [INSTR, t["anchor"]], "pos": [INSTR, t["positive"]], "neg": [INSTR, t["negative"]], "task_id": 0}
        for t in TRIPLETS]


def train(kind: str, rows: list[dict[str, Any]], model: str) -> Any:
    def command(m: dict[str, Path], fmt: str, tmp: Path) -> Any:
        result = ok(run("train", kind, "-m", m[model], "-d", write_table(tmp / "train", fmt, rows), "--dev",
                        write_table(tmp / "dev", fmt, rows), "-o", tmp / "model", "--steps", "1", "--batch-size", "2",
                        "--max-length", "64", "--device", "cpu", "--no-bf16"))
        [report] = [line for line in result.stderr.splitlines() if line.startswith("trained ")]
        return report.split("; saved to")[0]  # the train and dev losses, to 4 decimals
    return command


def from_labels(m: dict[str, Path], fmt: str, tmp: Path) -> Any:
    ok(run("data", "from-labels", write_table(tmp / "labelled", fmt, LABELLED), "-l", "label", "-l", "colour",
           "-q", "label=What is the topic?", "-q", "colour=Which colour?", "--dev-fraction", "0.2", "-o", tmp / "qa"))
    return jsonl_rows(tmp / "qa" / "train.jsonl"), jsonl_rows(tmp / "qa" / "dev.jsonl")


COMMANDS = {
    "embed": embed,
    "similarity": similarity,
    "search": search,
    "cluster": cluster,
    "bench": bench,
    "eval sts": evaluate("sts", PAIRS, "--instruction", INSTR),
    "eval triplet": evaluate("triplet", TRIPLETS),
    "eval clustering": evaluate("clustering", LABELLED),
    "eval classification": evaluate("classification", LABELLED, "--test", "{test}"),
    "eval text": evaluate("text", CANDIDATES),
    "eval awareness": evaluate("awareness", LABELLED, "--axis", "label=What is the topic?", "--axis",
                               "colour=Which colour?"),
    "eval latency": evaluate("latency", LABELLED),
    "train answer": train("answer", QA, "llama"),
    "train instructor": train("instructor", MEDI, "bert"),
    "data from-labels": from_labels,
}
REFERENCE: dict[str, Any] = {}


@pytest.fixture(scope="module")
def models(tiny_bert_dir: Path, llama_dir: Path) -> dict[str, Path]:
    return {"bert": tiny_bert_dir, "llama": llama_dir}


@pytest.fixture()
def _no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INBEDDER_CACHE", raising=False)


@pytest.mark.usefixtures("_no_cache")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_format_gives_the_same_result(models: dict[str, Path], tmp_path: Path, command: str,
                                            fmt: str) -> None:
    if command not in REFERENCE:
        (tmp_path / "reference").mkdir()
        REFERENCE[command] = COMMANDS[command](models, "jsonl", tmp_path / "reference")
    assert REFERENCE[command]  # the command gave something to compare
    (tmp_path / fmt).mkdir()
    assert COMMANDS[command](models, fmt, tmp_path / fmt) == REFERENCE[command]


# -- bad input: the same error in every format -----------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_missing_column_is_named(tiny_bert_dir: Path, tmp_path: Path, fmt: str) -> None:
    path = write_table(tmp_path / "docs", fmt, [{"body": t, "topic": "x"} for t in TEXTS[:2]])
    for args in (["embed", "-m", tiny_bert_dir, "-i", path],
                 ["cluster", "-m", tiny_bert_dir, "-i", path, "--text-column", "body", "--label-column", "topik"],
                 ["eval", "sts", "-m", tiny_bert_dir, "-i", path]):
        wanted = {"embed": "column 'text'", "cluster": "column 'topik' for --label-column",
                  "eval": "column 'sentence1'"}[args[0]]
        assert_one_error_line(run(*args), f"{path}: no {wanted}", "columns: 'body', 'topic'")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_bad_cell_names_the_file_row_and_column(tiny_bert_dir: Path, tmp_path: Path, fmt: str) -> None:
    rows = [dict(p) for p in PAIRS[:3]]
    rows[1]["score"] = "high"  # a text where a number must be (in parquet the column is then text throughout)
    path = write_table(tmp_path / "pairs", fmt, [{**r, "score": str(r["score"])} for r in rows])
    assert_one_error_line(run("eval", "sts", "-m", tiny_bert_dir, "-i", path),
                          f"{path}: {line_of(fmt, 1)}, column 'score': expected a number; got 'high'")
    if fmt in ("csv", "tsv"):  # every cell is text: a short row is what can be wrong
        path.write_text(path.read_text(encoding="utf-8") + "only one value\n", encoding="utf-8")
        assert_one_error_line(run("eval", "sts", "-m", tiny_bert_dir, "-i", path),
                              f"{path}: {line_of(fmt, 3)}: 1 values for 3 columns")
        return
    texts: list[Any] = ["fine", 5 if fmt != "parquet" else None]  # parquet columns hold one type (or null)
    path = write_table(tmp_path / "docs", fmt, [{"text": t} for t in texts])
    got = "int 5" if fmt != "parquet" else "NoneType None"
    assert_one_error_line(run("embed", "-m", tiny_bert_dir, "-i", path),
                          f"{path}: {line_of(fmt, 1)}, column 'text': expected a string; got {got}")
    if fmt != "parquet":  # a row without the column
        path = write_table(tmp_path / "docs", fmt, [{"text": "fine"}, {"body": "no text"}])
        assert_one_error_line(run("embed", "-m", tiny_bert_dir, "-i", path),
                              f"{path}: {line_of(fmt, 1)}, column 'text': missing (fields of this row: 'body')")


# -- the one writer: every row format, tsv too ----------------------------------------------------------------
def test_rows_are_written_in_every_table_format_and_read_back_alike(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from inbedder.io import read_table

    source = write_table(tmp_path / "docs", "jsonl", DOCS)
    read = {}
    for fmt in FORMATS:
        out = tmp_path / f"clusters.{fmt}"
        ok(run("cluster", "-m", tiny_bert_dir, "--device", "cpu", "--no-cache", "-i", source, "-k", "2", "-o", out,
               "-q"))
        read[fmt] = [{k: str(v) for k, v in row.items()} for row in read_table(out).rows]
        assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # written whole, then renamed
    assert all(rows == read["jsonl"] for rows in read.values()) and len(read["jsonl"]) == len(DOCS)
    ok(run("search", "index", "-m", tiny_bert_dir, "--device", "cpu", "--no-cache", "-i", source, "--index",
           tmp_path / "idx"))
    ok(run("search", "query", "--index", tmp_path / "idx", "--no-cache", "-o", tmp_path / "hits.tsv", "apple"))
    rows = read_table(tmp_path / "hits.tsv").rows
    assert [r["rank"] for r in rows] == [str(i) for i in range(1, 7)] and rows[0]["query"] == "apple"
