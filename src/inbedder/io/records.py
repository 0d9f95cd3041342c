"""Read the texts to embed from files (.txt, .jsonl, .csv, .parquet), streams and arguments.

Shared by the command line tools. Input (``.txt``, ``.jsonl``, ``.csv``, ``.parquet`` or stdin) rows become
:class:`Record` objects.

>>> read_lines(["a cat\\n", "\\n", "a dog\\n"], source="stdin")
[Record(text='a cat', instruction=None, id=None), Record(text='a dog', instruction=None, id=None)]
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

from ..errors import InputError, InputTypeError, did_you_mean, require

INPUT_SUFFIXES = {".txt": "txt", ".text": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
                  ".parquet": "parquet"}


class Record(NamedTuple):  # a named tuple, not a dataclass: importing dataclasses costs a cached run ~13 %
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
    """Read ``.txt`` (one text per line), ``.jsonl`` (objects with a text field), ``.csv`` (with a header) or
    ``.parquet`` (a string column; needs pyarrow).

    ``instruction_column=None`` uses an ``instruction`` field/column where there is one; a named one must exist.
    Missing files raise ``OSError``; anything wrong with the content raises :class:`InputError` naming the
    file, the line and what is valid.
    """
    path = Path(path)
    kind = INPUT_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"cannot tell the format of input file {str(path)!r} from its extension "
                         f"{path.suffix!r}; use one of {sorted(INPUT_SUFFIXES)}")
    if kind == "parquet":
        records = _read_parquet(path, text_column, instruction_column)
        if not records:
            raise InputError(f"no texts to embed: input file {str(path)!r} is empty")
        return records
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


def _parquet_table(path: Path, columns: list[str | None], what: str = "column") -> Any:
    """The table of a .parquet file; every named column must exist. Needs pyarrow."""
    require("pyarrow", "parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(path, "rb"):  # a missing file or a folder is reported like any other input file
        pass
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowIOError) as exc:
        raise InputError(f"input file {str(path)!r} is not a readable parquet file ({_one_line(exc)})") from None
    names = list(table.column_names)
    for column in columns:
        if column is not None and column not in names:
            raise InputError(f"{what} {column!r} not found in {str(path)!r}; columns: {', '.join(map(repr, names))}."
                             f"{did_you_mean(column, names)}")
    return table


def _read_parquet(path: Path, text_column: str, instruction_column: str | None) -> list[Record]:
    table = _parquet_table(path, [text_column, instruction_column])
    if instruction_column is None and "instruction" in table.column_names:
        instruction_column = "instruction"
    name = str(path)
    texts = table.column(text_column).to_pylist()
    instructions = table.column(instruction_column).to_pylist() if instruction_column else [None] * len(texts)
    ids = table.column("id").to_pylist() if "id" in table.column_names else [None] * len(texts)
    return [Record(_string(text, f"{name!r} row {i}", text_column),
                   _optional_string(ins, f"{name!r} row {i}", instruction_column or "instruction"), ident)
            for i, (text, ins, ident) in enumerate(zip(texts, instructions, ids, strict=True))]


def read_column(path: str | os.PathLike[str], column: str, option: str) -> list[Any]:
    """The values of one field of a .jsonl (blank lines skipped, as for texts), .csv or .parquet file, in order.

    ``option`` names what asked for it (such as ``--label-column``) in errors.
    """
    path = Path(path)
    name, kind = str(path), INPUT_SUFFIXES.get(path.suffix.lower())
    if kind == "parquet":
        return list(_parquet_table(path, [column], f"column for {option}").column(column).to_pylist())
    if kind not in ("jsonl", "csv"):
        raise InputError(f"{option} needs a .jsonl, .csv or .parquet input file; got {name!r}")
    values: list[Any] = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        if kind == "jsonl":
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{name!r} line {number}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict) or column not in row:
                    fields = ", ".join(map(repr, row)) if isinstance(row, dict) else "none"
                    raise InputError(f"{name!r} line {number}: no {column!r} field for {option} (fields: {fields})."
                                     f"{did_you_mean(column, row if isinstance(row, dict) else [])}")
                values.append(row[column])
        else:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            if column not in columns:
                raise InputError(f"column {column!r} for {option} not found in {name!r}; columns: "
                                 f"{', '.join(map(repr, columns))}.{did_you_mean(column, columns)}")
            values = [row[column] for row in reader]
    return values


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _string(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise InputTypeError(f"{where}, field {key!r}: expected a string; got {type(value).__name__} {value!r:.60}")
    return value


def _optional_string(value: Any, where: str, key: str) -> str | None:
    return None if value is None else _string(value, where, key)


def gather_input(texts: Sequence[str], input_path: str | None, text_column: str,
                 instruction_column: str | None) -> list[Record]:
    """The CLI's input: texts from the arguments, from ``-i FILE`` (``-`` for stdin) or, when neither is given,
    from stdin."""
    if texts and input_path is not None:
        raise InputError("give texts as arguments or with -i/--input, not both")
    if texts:
        return [Record(text) for text in texts]
    if input_path is not None and input_path != "-":
        return read_records(input_path, text_column=text_column, instruction_column=instruction_column)
    if sys.stdin.isatty():
        print("Reading texts from stdin, one per line (end with Ctrl-D)...", file=sys.stderr)
    return read_stream(sys.stdin.buffer, source="stdin")
