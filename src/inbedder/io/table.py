"""The one format layer: a data file becomes rows (dicts) with where each row is, for every command, evaluation and
training run.

Formats, by extension: ``.jsonl``/``.ndjson`` (one JSON object a line), ``.json`` (a list of objects), ``.csv`` and
``.tsv`` (a header, then rows), ``.parquet`` (needs pyarrow) and, where a single text column is all a reader needs
(:func:`~inbedder.io.records.read_records`, latency), ``.txt``/``.text`` (one text a line, blank lines skipped).

Every problem with the content is an :class:`~inbedder.errors.InputError` in one style, naming the file, the row
(1-based), where it is in the file (its line; in parquet its row index) and the column, and saying what is valid:
``pairs.csv: row 2 (line 3), column 'score': 'x' is not a number``.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "pairs.csv")
>>> _ = open(path, "w").write("a,b,score\\nx,y,1.5\\n")
>>> table = read_table(path)
>>> table.columns, table.floats("score"), table.where(0, "a").endswith("pairs.csv: row 1 (line 2), column 'a'")
(['a', 'b', 'score'], [1.5], True)
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from ..errors import InputError, did_you_mean, require

SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
            ".parquet": "parquet", ".txt": "txt", ".text": "txt"}
TABLE_SUFFIXES = tuple(suffix for suffix, kind in SUFFIXES.items() if kind != "txt")  # files with named columns


class Table:
    """Rows of one file as dicts, with the line each row starts on (parquet: its row index), for error messages.

    A plain class, not a dataclass: a fully cached ``inbedder embed`` imports this module, and importing
    dataclasses would cost that run ~13 %.
    """

    __slots__ = ("path", "rows", "lines", "columns", "kind")

    def __init__(self, path: str, rows: list[dict[str, Any]], lines: list[int], columns: list[str],
                 kind: str = "") -> None:
        self.path, self.rows, self.lines, self.columns, self.kind = path, rows, lines, columns, kind

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"Table({self.path!r}, {len(self.rows)} rows, columns={self.columns!r})"

    def where(self, i: int, column: str) -> str:
        """``FILE: row N (line L), column 'C'`` for row ``i`` (0-based)."""
        return f"{row_at(self.path, i, self.lines[i], self.kind)}, column {column!r}"

    def require(self, *columns: str | None, purpose: str = "") -> None:
        """Raise when a column is missing from the file (jsonl: from every row); ``purpose`` (such as
        ``--label-column``) says what asked for it."""
        for column in columns:
            if column is not None and column not in self.columns:
                asked = f" for {purpose}" if purpose else ""
                raise InputError(f"{self.path}: no column {column!r}{asked}; columns: "
                                 f"{', '.join(map(repr, self.columns)) or 'none'}.{did_you_mean(column, self.columns)}")

    def values(self, column: str, *, optional: bool = False) -> list[Any]:
        """The column's values as read, in row order. A row without the column is an error (``optional``: None)."""
        self.require(column)
        out = []
        for i, row in enumerate(self.rows):
            if column not in row and not optional:
                raise InputError(f"{self.where(i, column)}: missing (fields of this row: "
                                 f"{', '.join(map(repr, row)) or 'none'})")
            out.append(row.get(column))
        return out

    def texts(self, column: str, *, optional: bool = False) -> list[Any]:
        """The column as strings exactly (empty ones too; numbers are refused): the texts to embed.
        ``optional``: a missing, null or empty value is None."""
        out: list[str | None] = []
        for i, value in enumerate(self.values(column, optional=optional)):
            if optional and value in (None, ""):
                out.append(None)
            elif isinstance(value, str):
                out.append(value)
            else:
                raise InputError(f"{self.where(i, column)}: expected a string; got {type(value).__name__} "
                                 f"{value!r:.60}")
        return out

    def strings(self, column: str, *, allow_empty: bool = False) -> list[str]:
        """The column as text; numbers are accepted as their text, empty values are refused."""
        return [self._text(i, column, value, allow_empty) for i, value in enumerate(self.values(column))]

    def _text(self, i: int, column: str, value: Any, allow_empty: bool) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or \
                (isinstance(value, float) and not math.isfinite(value)):
            raise InputError(f"{self.where(i, column)}: expected text (a string or a number); got "
                             f"{type(value).__name__} {value!r:.60}")
        text = str(value)
        if not allow_empty and not text.strip():
            raise InputError(f"{self.where(i, column)}: empty text")
        return text

    def labels(self, column: str) -> list[str]:
        """The column as class labels (text; ``3`` and ``"3"`` are the same label)."""
        return self.strings(column)

    def optional_strings(self, column: str | None) -> list[str | None] | None:
        """Per-row text or None (a missing, null or empty value); ``None`` when the column is not given."""
        if column is None:
            return None
        return [None if value in (None, "") else self._text(i, column, value, True)
                for i, value in enumerate(self.values(column, optional=True))]

    def floats(self, column: str) -> list[float]:
        """The column as finite numbers."""
        out = []
        for i, value in enumerate(self.values(column)):
            try:
                number = float(value) if not isinstance(value, bool) else math.nan
            except (TypeError, ValueError):
                raise InputError(f"{self.where(i, column)}: expected a number; got {value!r:.60}") from None
            if not math.isfinite(number):
                raise InputError(f"{self.where(i, column)}: {value!r} is not a valid number; give a finite number")
            out.append(number)
        return out

    def string_lists(self, column: str) -> list[list[str]]:
        """Lists of text: a JSON list (in jsonl, json or parquet, or as the text of a csv cell) or a single text."""
        out = []
        for i, value in enumerate(self.values(column)):
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
        import random  # not at the top: this module is on the cached ``embed`` path

        keep = sorted(random.Random(seed).sample(range(len(self.rows)), limit))
        return Table(self.path, [self.rows[i] for i in keep], [self.lines[i] for i in keep], self.columns, self.kind)


def row_at(path: str, i: int, line: int, kind: str) -> str:
    """``FILE: row N (line L)``; parquet: ``(index I)``, the row's index in the file; no line when it is 0."""
    at = f" (index {line})" if kind == "parquet" else f" (line {line})" if line else ""
    return f"{path}: row {i + 1}{at}"


def read_table(path: str | os.PathLike[str], *, delimiter: str | None = None, text_column: str | None = None,
               columns: Sequence[str | None] | None = None, what: str = "rows") -> Table:
    """Read the rows of a data file, in the format its extension names (see the module's docstring).

    ``delimiter`` reads any file but .jsonl/.json/.parquet as delimited text with a header (such as ``text;label``
    .txt files). ``text_column`` allows .txt/.text files, one text a line in a column of that name.
    ``columns`` reads only these columns of a .parquet file (``Table.columns`` still lists every column).
    A missing file (or a folder) raises ``OSError``; a file without rows an error saying it has no ``what``.
    """
    name = os.fspath(path)
    kind = _kind(name, delimiter, text_column)
    if kind == "parquet":
        table = _parquet(name, columns)
    else:
        try:
            with open(name, encoding="utf-8-sig", newline="" if kind in ("csv", "tsv") else None) as f:
                if kind == "txt":
                    table = _txt(f, name, text_column or "text")
                elif kind == "jsonl":
                    table = _jsonl(f, name)
                elif kind == "json":
                    table = _json(f, name)
                else:
                    table = _delimited(f, name, delimiter or ("\t" if kind == "tsv" else ","), kind)
        except UnicodeDecodeError as exc:
            raise InputError(f"{name} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not table.rows:
        raise InputError(f"{name}: the file has no {what}")
    return table


def _kind(name: str, delimiter: str | None, text_column: str | None) -> str:
    suffix = Path(name).suffix.lower()
    kind = SUFFIXES.get(suffix)
    if delimiter is not None and kind not in ("jsonl", "json", "parquet"):
        if len(delimiter) != 1:
            raise InputError(f"delimiter must be one character; got {delimiter!r}")
        return "tsv" if kind == "tsv" else "csv"
    if kind is None or (kind == "txt" and text_column is None):
        valid = list(SUFFIXES) if text_column is not None else list(TABLE_SUFFIXES)
        hint = "" if text_column is not None else ", or give a delimiter for a delimited text file"
        raise InputError(f"{name}: cannot tell the format from the extension {suffix!r}; use one of "
                         f"{', '.join(valid)}{hint}")
    return kind


def text_lines(lines: Iterable[str]) -> Iterable[tuple[int, str]]:
    """``(line number, text)`` of each line that is not blank, without its line end."""
    return ((number, line.rstrip("\r\n")) for number, line in enumerate(lines, start=1) if line.strip())


def _txt(f: IO[str], name: str, column: str) -> Table:
    found = list(text_lines(f))
    return Table(name, [{column: text} for _, text in found], [number for number, _ in found], [column], "txt")


def _jsonl(f: IO[str], name: str) -> Table:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    columns: dict[str, None] = {}
    for number, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{row_at(name, len(rows), number, 'jsonl')}: not valid JSON ({exc.msg} at column "
                             f"{exc.colno})") from None
        if not isinstance(row, dict):
            raise InputError(f"{row_at(name, len(rows), number, 'jsonl')}: expected a JSON object (one row a "
                             f"line); got {type(row).__name__}")
        rows.append(row)
        lines.append(number)
        columns.update(dict.fromkeys(row))
    return Table(name, rows, lines, list(columns), "jsonl")


def _json(f: IO[str], name: str) -> Table:
    text = f.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list):
        raise InputError(f"{name}: expected a JSON list of objects (one per row); got {type(data).__name__}; "
                         "use .jsonl for one object a line")
    lines = _item_lines(text)
    columns: dict[str, None] = {}
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise InputError(f"{row_at(name, i, lines[i], 'json')}: expected a JSON object; got {type(row).__name__}")
        columns.update(dict.fromkeys(row))
    return Table(name, data, lines, list(columns), "json")


_BETWEEN_ITEMS = re.compile(r"[\s,]*")


def _item_lines(text: str) -> list[int]:
    """The line each item of a (valid) top-level JSON list starts on."""
    decoder = json.JSONDecoder()
    pos = text.index("[")
    line, counted, lines = 1 + text.count("\n", 0, pos), pos, list[int]()
    pos += 1
    while True:
        pos = _BETWEEN_ITEMS.match(text, pos).end()  # type: ignore[union-attr]
        if text[pos] == "]":
            return lines
        line += text.count("\n", counted, pos)
        counted = pos
        lines.append(line)
        _, pos = decoder.raw_decode(text, pos)


def _delimited(f: IO[str], name: str, delimiter: str, kind: str) -> Table:
    reader = csv.reader(f, delimiter=delimiter)
    header = next(reader, None)
    if not header:
        return Table(name, [], [], [], kind)
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise InputError(f"{name}: the header names the column {twice[0]!r} twice; give each column its own name")
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise InputError(f"{row_at(name, len(rows), reader.line_num, kind)}: {len(values)} values for "
                             f"{len(header)} columns ({', '.join(map(repr, header))})")
        rows.append(dict(zip(header, values, strict=True)))
        lines.append(reader.line_num)
    return Table(name, rows, lines, list(header), kind)


def _parquet(name: str, columns: Sequence[str | None] | None) -> Table:
    require("pyarrow", "parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(name, "rb"):  # a missing file or a folder is reported like any other input file
        pass
    try:
        file = pq.ParquetFile(name)
        names = list(file.schema_arrow.names)
        wanted = names if columns is None else [c for c in names if c in columns]
        rows = file.read(columns=wanted).to_pylist() if wanted else [{} for _ in range(file.metadata.num_rows)]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowIOError) as exc:
        raise InputError(f"{name}: not a readable parquet file ({' '.join(str(exc).split())[:200]})") from None
    return Table(name, rows, list(range(len(rows))), names, "parquet")


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
