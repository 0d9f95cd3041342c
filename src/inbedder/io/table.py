"""Read evaluation data from local ``.jsonl``, ``.json``, ``.csv`` and ``.tsv`` files, with named columns.

Every problem with the content is an :class:`~inbedder.errors.InputError` naming the file, the row (and the
line it is on) and the column, and saying what is valid.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "pairs.csv")
>>> _ = open(path, "w").write("a,b,score\\nx,y,1.5\\n")
>>> table = read_table(path)
>>> table.columns, table.floats("score")
(['a', 'b', 'score'], [1.5])
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, did_you_mean

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}


@dataclass
class Table:
    """Rows of one file as dicts, with the line each row starts on (for error messages)."""

    path: str
    rows: list[dict[str, Any]]
    lines: list[int]
    columns: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def where(self, i: int, column: str) -> str:
        line = f" (line {self.lines[i]})" if self.lines[i] else ""
        return f"{self.path}: row {i + 1}{line}, column {column!r}"

    def require(self, *columns: str | None) -> None:
        """Raise when a column is missing from the file (jsonl: from every row)."""
        for column in columns:
            if column is not None and column not in self.columns:
                raise InputError(f"{self.path}: no column {column!r}; columns: {', '.join(map(repr, self.columns))}."
                                 f"{did_you_mean(column, self.columns)}")

    def _values(self, column: str) -> list[Any]:
        self.require(column)
        values = []
        for i, row in enumerate(self.rows):
            if column not in row:
                raise InputError(f"{self.where(i, column)}: missing (fields of this row: "
                                 f"{', '.join(map(repr, row))})")
            values.append(row[column])
        return values

    def strings(self, column: str, *, allow_empty: bool = False) -> list[str]:
        """The column as text; numbers are accepted as their text, empty values are refused."""
        out = []
        for i, value in enumerate(self._values(column)):
            if isinstance(value, bool) or not isinstance(value, (str, int, float)) or \
                    (isinstance(value, float) and not math.isfinite(value)):
                raise InputError(f"{self.where(i, column)}: expected text; got {type(value).__name__} {value!r:.60}")
            text = str(value)
            if not allow_empty and not text.strip():
                raise InputError(f"{self.where(i, column)}: empty text")
            out.append(text)
        return out

    def labels(self, column: str) -> list[str]:
        """The column as class labels (text; ``3`` and ``"3"`` are the same label)."""
        return self.strings(column)

    def optional_strings(self, column: str | None) -> list[str | None] | None:
        """Per-row text or None (``None`` when the column is not given)."""
        if column is None:
            return None
        return [value or None for value in self.strings(column, allow_empty=True)]

    def floats(self, column: str) -> list[float]:
        """The column as finite numbers."""
        out = []
        for i, value in enumerate(self._values(column)):
            try:
                number = float(value) if not isinstance(value, bool) else math.nan
            except (TypeError, ValueError):
                raise InputError(f"{self.where(i, column)}: expected a number; got {value!r:.60}") from None
            if not math.isfinite(number):
                raise InputError(f"{self.where(i, column)}: {value!r} is not a valid number; give a finite number")
            out.append(number)
        return out

    def string_lists(self, column: str) -> list[list[str]]:
        """Lists of text: a JSON list (in jsonl, or as the text of a csv cell) or a single text."""
        out = []
        for i, value in enumerate(self._values(column)):
            if isinstance(value, str) and value.lstrip().startswith("["):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{self.where(i, column)}: not a valid JSON list ({exc.msg})") from None
            items = value if isinstance(value, list) else [value]
            if not items or not all(isinstance(x, str) and x.strip() for x in items):
                raise InputError(f"{self.where(i, column)}: expected a non-empty list of texts; got {value!r:.60}")
            out.append(items)
        return out

    def sample(self, limit: int | None, seed: int = 0) -> Table:
        """At most ``limit`` rows chosen with ``seed`` (file order kept); the table itself when it is smaller."""
        if limit is None or limit >= len(self.rows):
            return self
        if limit < 1:
            raise InputError(f"limit must be a positive number of rows; got {limit}")
        keep = sorted(random.Random(seed).sample(range(len(self.rows)), limit))
        return Table(self.path, [self.rows[i] for i in keep], [self.lines[i] for i in keep], self.columns)


def read_table(path: str | os.PathLike[str], *, delimiter: str | None = None) -> Table:
    """Read rows from ``.jsonl`` (one object a line), ``.json`` (a list of objects), ``.csv`` or ``.tsv``.

    ``delimiter`` makes any other file (such as ``text;label`` ``.txt`` files) a delimited file with a header.
    An empty file, or one without rows, is an error.
    """
    name = os.fspath(path)
    suffix = Path(name).suffix.lower()
    kind = "csv" if delimiter is not None and suffix not in (".jsonl", ".ndjson", ".json") else FORMATS.get(suffix)
    if kind is None:
        raise InputError(f"{name}: cannot tell the format from the extension {suffix!r}; use one of "
                         f"{sorted(FORMATS)}, or give a delimiter for a delimited text file")
    if Path(name).is_dir():
        raise InputError(f"{name} is a folder; give a data file ({', '.join(sorted(FORMATS))})")
    try:
        with open(name, encoding="utf-8-sig", newline="" if kind in ("csv", "tsv") else None) as f:
            if kind == "jsonl":
                table = _jsonl(f, name)
            elif kind == "json":
                table = _json(f, name)
            else:
                table = _delimited(f, name, delimiter or ("\t" if kind == "tsv" else ","))
    except UnicodeDecodeError as exc:
        raise InputError(f"{name} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not table.rows:
        raise InputError(f"{name}: the file has no rows")
    return table


def _jsonl(f: Any, name: str) -> Table:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    columns: dict[str, None] = {}
    for number, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}: row {len(rows) + 1} (line {number}): not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{name}: row {len(rows) + 1} (line {number}): expected a JSON object; "
                             f"got {type(row).__name__}")
        rows.append(row)
        lines.append(number)
        columns.update(dict.fromkeys(row))
    return Table(name, rows, lines, list(columns))


def _json(f: Any, name: str) -> Table:
    try:
        data = json.load(f)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise InputError(f"{name}: expected a JSON list of objects (one per row); use .jsonl for one object a line")
    columns: dict[str, None] = {}
    for row in data:
        columns.update(dict.fromkeys(row))
    return Table(name, data, [0] * len(data), list(columns))


def _delimited(f: Any, name: str, delimiter: str) -> Table:
    if len(delimiter) != 1:
        raise InputError(f"delimiter must be one character; got {delimiter!r}")
    reader = csv.reader(f, delimiter=delimiter)
    header = next(reader, None)
    if not header:
        return Table(name, [], [], [])
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise InputError(f"{name}: row {len(rows) + 1} (line {reader.line_num}): {len(values)} values for "
                             f"{len(header)} columns ({', '.join(map(repr, header))})")
        rows.append(dict(zip(header, values, strict=True)))
        lines.append(reader.line_num)
    return Table(name, rows, lines, list(header))


def parse_assignments(items: Sequence[str], what: str) -> dict[str, str]:
    """``["intent=What does the user want?", ...]`` → ``{"intent": "What does the user want?", ...}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{what} {item!r} is not NAME=VALUE (e.g. intent=\"What does the user want?\")")
        if key.strip() in out:
            raise InputError(f"{what} {key.strip()!r} is given twice")
        out[key.strip()] = value.strip()
    return out
