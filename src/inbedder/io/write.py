"""The one writer: embeddings (npy, jsonl, json, csv, parquet) and rows (jsonl, json, csv, tsv, parquet) for every
command, evaluation and training run; and the choice of the output format.

Embedding output rows are ``{"index": i, "text": ..., "instruction": ..., "embedding": [...]}`` (plus ``"id"``
when the input had one); in csv the embedding is a JSON array. Files are written whole or not at all (to a
temporary name, then renamed).

>>> output_format("vectors.npy", None)
'npy'
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..cache.packed import PackedRows
from ..errors import InputError, did_you_mean, require
from .records import Record

if TYPE_CHECKING:
    import numpy as np

OUTPUT_FORMATS = ("json", "jsonl", "csv", "npy", "parquet")
OUTPUT_SUFFIXES = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".npy": "npy",
                   ".parquet": "parquet"}
BINARY_FORMATS = ("npy", "parquet")
ROW_FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")  # formats of result rows (cluster, search, similarity, data)


def check_target(path: str | os.PathLike[str] | None, what: str = "") -> None:
    """Fail before any work when the folder ``path`` would be written in does not exist (None or ``-``: stdout)."""
    if path is not None and os.fspath(path) != "-" and not Path(path).parent.is_dir():
        raise InputError(f"cannot write {what + ' ' if what else ''}{os.fspath(path)!r}: the folder "
                         f"{str(Path(path).parent)!r} does not exist")


def output_format(path: str | os.PathLike[str] | None, fmt: str | None) -> str:
    """The output format: ``fmt`` when given, else from the extension of ``path``, else ``jsonl`` (stdout).

    ``path=None`` or ``"-"`` means stdout, which takes only the text formats. Parquet needs pyarrow
    (:class:`~inbedder.errors.MissingExtraError` otherwise).
    """
    return pick_format(path, fmt, OUTPUT_FORMATS, default="jsonl")


def pick_format(path: str | os.PathLike[str] | None, fmt: str | None, valid: tuple[str, ...],
                default: str | None = None) -> str:
    """The format among ``valid``: ``fmt`` when given, else from ``path``'s extension, else ``default``
    (or the first valid one) for stdout. Binary formats are refused on stdout."""
    name = None if path is None or os.fspath(path) == "-" else os.fspath(path)
    if fmt is not None:
        chosen = {"ndjson": "jsonl"}.get(fmt.lower(), fmt.lower())
        if chosen not in valid:
            raise InputError(f"format {fmt!r} is not valid here; choose one of {list(valid)}."
                             f"{did_you_mean(chosen, valid)}")
    elif name is None:
        chosen = default or valid[0]
    else:
        suffix = Path(name).suffix.lower()
        suffixes = sorted(s for s, f in OUTPUT_SUFFIXES.items() if f in valid)
        if OUTPUT_SUFFIXES.get(suffix) not in valid:
            raise InputError(f"cannot tell the output format from {name!r} (extension {suffix!r}); "
                             f"use one of {suffixes} or give --format {'|'.join(valid)}")
        chosen = OUTPUT_SUFFIXES[suffix]
    if name is None and chosen in BINARY_FORMATS:
        raise InputError(f"{chosen} is a binary format and is not written to stdout; give an output file "
                         f"with -o FILE.{chosen}")
    if chosen == "parquet":
        require("pyarrow", "parquet")  # fail before any work is done
    return chosen


def rows(records: list[Record], vectors: PackedRows, instructions: list[str | None]) -> Iterator[dict[str, Any]]:
    """Output rows: index, (id,) text, the instruction used, and the embedding as a list of floats."""
    for i, (record, vector, instruction) in enumerate(zip(records, vectors, instructions, strict=True)):
        row: dict[str, Any] = {"index": i}
        if record.id is not None:
            row["id"] = record.id
        row.update(text=record.text, instruction=instruction, embedding=vector.tolist())
        yield row


def write_embeddings(records: list[Record], vectors: np.ndarray | PackedRows, instructions: list[str | None],
                     fmt: str, target: str | os.PathLike[str] | IO[bytes]) -> None:
    """Write one row per record to ``target`` (a path, or a binary stream for the text formats).

    Every format is written from :class:`~inbedder.packed.PackedRows`, which a fully cached run hands over as read
    from the cache: numpy is then not needed, except for parquet.
    """
    if len(records) != len(vectors) or len(records) != len(instructions):
        raise InputError(f"got {len(vectors)} vectors and {len(instructions)} instructions for {len(records)} texts")
    if not isinstance(vectors, PackedRows):
        vectors = PackedRows.from_array(vectors)
    if fmt == "npy":
        _to_target(target, vectors.write_npy)
    elif fmt == "parquet":
        _to_target(target, lambda f: _write_parquet(records, vectors.to_numpy(), instructions, f))
    elif fmt == "csv":
        write_rows([{**row, "embedding": json.dumps(row["embedding"])} for row in rows(records, vectors, instructions)],
                   target, "csv")
    elif fmt in ("json", "jsonl"):
        _to_target(target, lambda f: _write_json(records, vectors, instructions, fmt, f))
    else:
        raise InputError(f"format {fmt!r} is not valid; choose one of {list(OUTPUT_FORMATS)}")


def write_matrix(matrix: np.ndarray, target: str | os.PathLike[str] | IO[bytes]) -> None:
    """A 2-D float32 matrix (such as a similarity matrix) as ``.npy``, written like embeddings are."""
    _to_target(target, PackedRows.from_array(matrix).write_npy)


def _write_json(records: list[Record], vectors: PackedRows, instructions: list[str | None], fmt: str,
                f: IO[bytes]) -> None:
    lines = (json.dumps(row, ensure_ascii=False) for row in rows(records, vectors, instructions))
    if fmt == "jsonl":
        for line in lines:
            f.write(line.encode("utf-8") + b"\n")
    else:
        f.write(b"[")
        for i, line in enumerate(lines):
            f.write((",\n" if i else "\n").encode() + line.encode("utf-8"))
        f.write(b"\n]\n")
    f.flush()


def _write_parquet(records: list[Record], vectors: np.ndarray, instructions: list[str | None],
                   target: str | os.PathLike[str] | IO[bytes]) -> None:
    require("pyarrow", "parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, dim = vectors.shape
    columns: dict[str, Any] = {"index": pa.array(range(n), pa.int64())}
    ids = [r.id for r in records]
    if any(i is not None for i in ids):
        try:
            columns["id"] = pa.array(ids)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: keep them all as strings
            columns["id"] = pa.array([None if i is None else str(i) for i in ids], pa.string())
    columns["text"] = pa.array([r.text for r in records], pa.string())
    columns["instruction"] = pa.array(instructions, pa.string())
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim)
    pq.write_table(pa.table(columns), target)


def _to_target(target: str | os.PathLike[str] | IO[bytes], write: Callable[[IO[bytes]], None]) -> None:
    """``write(stream)`` to a binary stream, or to a path: a file is written to a temporary name in its folder and
    renamed when complete (a device such as /dev/null is written directly)."""
    if not isinstance(target, (str, os.PathLike)):
        write(target)
        return
    path = Path(target)
    if path.exists() and not path.is_file():
        with open(path, "wb") as f:
            write(f)
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as f:
            write(f)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def write_rows(rows: Iterable[dict[str, Any]], target: str | os.PathLike[str] | IO[bytes] | None, fmt: str) -> None:
    """Write rows (dicts) as jsonl, json, csv, tsv or parquet to a path, or to a binary stream (stdout when
    ``target`` is None). In csv and tsv, list and dict values are written as JSON."""
    if fmt == "parquet":
        require("pyarrow", "parquet")
        import pyarrow as pa
        import pyarrow.parquet as pq

        if target is None:
            raise InputError("parquet is a binary format and is not written to stdout; give -o FILE.parquet")
        rows = list(rows)
        try:
            table = pa.Table.from_pylist(rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column of mixed types (ids): keep it as strings
            mixed = {k for k in {k for row in rows for k in row}
                     if len({type(row[k]) for row in rows if row.get(k) is not None}) > 1}
            table = pa.Table.from_pylist([{k: str(v) if k in mixed and v is not None else v for k, v in row.items()}
                                          for row in rows])
        _to_target(target, lambda f: pq.write_table(table, f))
        return
    if fmt not in ROW_FORMATS:
        raise InputError(f"format {fmt!r} is not valid for rows; choose one of {list(ROW_FORMATS)}")
    if target is None:
        import sys

        target = sys.stdout.buffer
    _to_target(target, lambda f: _dump_rows(rows, f, fmt))


def _dump_rows(rows: Iterable[dict[str, Any]], f: IO[bytes], fmt: str) -> None:
    import io

    text = io.TextIOWrapper(f, encoding="utf-8", newline="", write_through=True)
    try:
        if fmt == "jsonl":
            text.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        elif fmt == "json":
            json.dump(list(rows), text, ensure_ascii=False, indent=1)
            text.write("\n")
        else:
            rows = list(rows)
            writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(k for row in rows for k in row)),
                                    delimiter="\t" if fmt == "tsv" else ",")
            writer.writeheader()
            writer.writerows({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                              for k, v in row.items()} for row in rows)
        text.flush()
    finally:
        text.detach()  # leave the stream open for its owner
