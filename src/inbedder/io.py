"""Read texts from files and streams; write embeddings as npy, jsonl, json or parquet.

Shared by the command line tools. Input rows become :class:`Record` objects; output rows are
``{"index": i, "text": ..., "instruction": ..., "embedding": [...]}`` (plus ``"id"`` when the input had one).

>>> read_lines(["a cat\\n", "\\n", "a dog\\n"], source="stdin")
[Record(text='a cat', instruction=None, id=None), Record(text='a dog', instruction=None, id=None)]
>>> output_format("vectors.npy", None)
'npy'
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import InputError, InputTypeError, did_you_mean, require

INPUT_SUFFIXES = {".txt": "txt", ".text": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
OUTPUT_FORMATS = ("json", "jsonl", "npy", "parquet")
OUTPUT_SUFFIXES = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".npy": "npy", ".parquet": "parquet"}
BINARY_FORMATS = ("npy", "parquet")


@dataclass(frozen=True)
class Record:
    """One input row: the text, its own instruction (or None) and an ``id`` carried through (or None)."""

    text: str
    instruction: str | None = None
    id: Any = None


# -- input ----------------------------------------------------------------------------------------------------
def read_lines(lines: Iterable[str], source: str = "stdin") -> list[Record]:
    """One text per line; blank lines are skipped. Raises :class:`InputError` when there is no text."""
    try:
        records = [Record(line.rstrip("\r\n")) for line in lines if line.strip()]
    except UnicodeDecodeError as exc:
        raise InputError(f"{source} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not records:
        raise InputError(f"no texts to embed: {source} is empty (give one text per line)")
    return records


def read_stream(stream: IO[bytes], source: str = "stdin") -> list[Record]:
    """Read a binary stream (such as ``sys.stdin.buffer``) as UTF-8, one text per line."""
    data = stream.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    return read_lines(text.split("\n"), source)


def read_records(path: str | os.PathLike[str], *, text_column: str = "text",
                 instruction_column: str | None = None) -> list[Record]:
    """Read ``.txt`` (one text per line), ``.jsonl`` (objects with a text field) or ``.csv`` (with a header).

    ``instruction_column=None`` uses an ``instruction`` field/column where there is one; a named one must exist.
    Missing files raise ``OSError``; anything wrong with the content raises :class:`InputError` naming the
    file, the line and what is valid.
    """
    path = Path(path)
    kind = INPUT_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"cannot tell the format of input file {str(path)!r} from its extension "
                         f"{path.suffix!r}; use one of {sorted(INPUT_SUFFIXES)}")
    try:
        with open(path, encoding="utf-8-sig", newline="" if kind == "csv" else None) as f:
            if kind == "txt":
                return read_lines(f, source=f"input file {str(path)!r}")
            if kind == "jsonl":
                records = _read_jsonl(f, str(path), text_column, instruction_column)
            else:
                records = _read_csv(f, str(path), text_column, instruction_column)
    except UnicodeDecodeError as exc:
        raise InputError(f"input file {str(path)!r} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not records:
        raise InputError(f"no texts to embed: input file {str(path)!r} is empty")
    return records


def _read_jsonl(f: IO[str], name: str, text_key: str, instruction_key: str | None) -> list[Record]:
    records: list[Record] = []
    seen_instruction = False
    for number, line in enumerate(f, start=1):
        if not line.strip():
            continue
        where = f"{name!r} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise InputTypeError(f"{where}: expected a JSON object with a {text_key!r} field; "
                                 f"got {type(row).__name__}")
        if text_key not in row:
            raise InputError(f"{where}: no {text_key!r} field (fields: {', '.join(map(repr, row)) or 'none'})."
                             f"{did_you_mean(text_key, row)}")
        ins_key = instruction_key or "instruction"
        seen_instruction = seen_instruction or ins_key in row
        records.append(Record(_string(row[text_key], where, text_key),
                              _optional_string(row.get(ins_key), where, ins_key), row.get("id")))
    if instruction_key is not None and records and not seen_instruction:
        raise InputError(f"no line of {name!r} has the instruction field {instruction_key!r}")
    return records


def _read_csv(f: IO[str], name: str, text_column: str, instruction_column: str | None) -> list[Record]:
    reader = csv.DictReader(f)
    columns = list(reader.fieldnames or [])
    if not columns:
        return []
    for column in (text_column, instruction_column):
        if column is not None and column not in columns:
            raise InputError(f"column {column!r} not found in {name!r}; columns: {', '.join(map(repr, columns))}."
                             f"{did_you_mean(column, columns)}")
    if instruction_column is None and "instruction" in columns:
        instruction_column = "instruction"
    records = []
    for row in reader:
        text = row.get(text_column)
        if text is None:
            raise InputError(f"{name!r} line {reader.line_num}: the row has no value for column {text_column!r}")
        instruction = row.get(instruction_column) if instruction_column else None
        records.append(Record(text, instruction or None, row.get("id") if "id" in columns else None))
    return records


def _string(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise InputTypeError(f"{where}, field {key!r}: expected a string; got {type(value).__name__} {value!r:.60}")
    return value


def _optional_string(value: Any, where: str, key: str) -> str | None:
    return None if value is None else _string(value, where, key)


# -- output ---------------------------------------------------------------------------------------------------
def output_format(path: str | os.PathLike[str] | None, fmt: str | None) -> str:
    """The output format: ``fmt`` when given, else from the extension of ``path``, else ``jsonl`` (stdout).

    ``path=None`` or ``"-"`` means stdout, which takes only the text formats. Parquet needs pyarrow
    (:class:`~inbedder.errors.MissingExtraError` otherwise).
    """
    name = None if path is None or os.fspath(path) == "-" else os.fspath(path)
    if fmt is not None:
        chosen = fmt.lower()
        if chosen not in OUTPUT_FORMATS:
            raise InputError(f"format {fmt!r} is not valid; choose one of {list(OUTPUT_FORMATS)}."
                             f"{did_you_mean(chosen, OUTPUT_FORMATS)}")
    elif name is None:
        chosen = "jsonl"
    else:
        suffix = Path(name).suffix.lower()
        if suffix not in OUTPUT_SUFFIXES:
            raise InputError(f"cannot tell the output format from {name!r} (extension {suffix!r}); "
                             f"use one of {sorted(OUTPUT_SUFFIXES)} or give --format {'|'.join(OUTPUT_FORMATS)}")
        chosen = OUTPUT_SUFFIXES[suffix]
    if name is None and chosen in BINARY_FORMATS:
        raise InputError(f"{chosen} is a binary format and is not written to stdout; give an output file "
                         f"with -o FILE.{chosen}")
    if chosen == "parquet":
        require("pyarrow", "parquet")  # fail before any work is done
    return chosen


def rows(records: list[Record], vectors: np.ndarray, instructions: list[str | None]) -> Iterator[dict[str, Any]]:
    """Output rows: index, (id,) text, the instruction used, and the embedding as a list of floats."""
    for i, (record, vector, instruction) in enumerate(zip(records, vectors, instructions, strict=True)):
        row: dict[str, Any] = {"index": i}
        if record.id is not None:
            row["id"] = record.id
        row.update(text=record.text, instruction=instruction, embedding=vector.tolist())
        yield row


def write_embeddings(records: list[Record], vectors: np.ndarray, instructions: list[str | None], fmt: str,
                     target: str | os.PathLike[str] | IO[bytes]) -> None:
    """Write one row per record to ``target`` (a path, or a binary stream for the text formats)."""
    if len(records) != len(vectors) or len(records) != len(instructions):
        raise InputError(f"got {len(vectors)} vectors and {len(instructions)} instructions for {len(records)} texts")
    vectors = np.asarray(vectors, dtype=np.float32)
    if fmt == "npy":
        np.save(target, vectors)  # type: ignore[arg-type]
    elif fmt == "parquet":
        _write_parquet(records, vectors, instructions, target)
    elif fmt in ("json", "jsonl"):
        if isinstance(target, (str, os.PathLike)):
            with open(target, "wb") as f:
                _write_json(records, vectors, instructions, fmt, f)
        else:
            _write_json(records, vectors, instructions, fmt, target)
    else:
        raise InputError(f"format {fmt!r} is not valid; choose one of {list(OUTPUT_FORMATS)}")


def _write_json(records: list[Record], vectors: np.ndarray, instructions: list[str | None], fmt: str,
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
