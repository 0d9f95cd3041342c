"""The texts to embed, from a file, stdin or arguments: a view of :func:`~inbedder.io.table.read_table` as
:class:`Record` rows (a text column, an optional instruction column, an optional ``id``).

Shared by the command line tools; the file formats and their errors are the table layer's.

>>> read_lines(["a cat\\n", "\\n", "a dog\\n"], source="stdin")
[Record(text='a cat', instruction=None, id=None), Record(text='a dog', instruction=None, id=None)]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

from ..errors import InputError
from .table import SUFFIXES, TABLE_SUFFIXES, read_table, text_lines

INPUT_SUFFIXES = SUFFIXES


class Record(NamedTuple):  # a named tuple, not a dataclass: importing dataclasses costs a cached run ~13 %
    """One input row: the text, its own instruction (or None) and an ``id`` carried through (or None)."""

    text: str
    instruction: str | None = None
    id: Any = None


def read_lines(lines: Iterable[str], source: str = "stdin") -> list[Record]:
    """One text per line; blank lines are skipped. Raises :class:`InputError` when there is no text."""
    try:
        records = [Record(text) for _, text in text_lines(lines)]
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
    """The rows of a ``.txt`` (one text a line), ``.jsonl``, ``.json``, ``.csv``, ``.tsv`` or ``.parquet`` file.

    Texts must be strings. ``instruction_column=None`` uses an ``instruction`` column where there is one (a missing,
    null or empty value: no instruction of its own); a named one must exist. An ``id`` column is carried through.
    Missing files raise ``OSError``; anything wrong with the content raises :class:`InputError` naming the file,
    the row, its line and the column.
    """
    instruction = instruction_column or "instruction"
    table = read_table(path, text_column=text_column, columns=[text_column, instruction, "id"],
                       what="texts to embed")
    table.require(text_column, instruction_column)
    texts = table.texts(text_column)
    none = [None] * len(texts)
    instructions = table.texts(instruction, optional=True) if instruction in table.columns else none
    ids = table.values("id", optional=True) if "id" in table.columns else none
    return [Record(*row) for row in zip(texts, instructions, ids, strict=True)]


def read_column(path: str | os.PathLike[str], column: str, option: str) -> list[Any]:
    """The values of one column of a table file, in the order (and with the rows) of :func:`read_records`.

    ``option`` names what asked for it (such as ``--label-column``) in errors.
    """
    if SUFFIXES.get(Path(path).suffix.lower()) == "txt":
        raise InputError(f"{option} needs a table file ({', '.join(TABLE_SUFFIXES)}); {os.fspath(path)} holds "
                         "one text a line")
    table = read_table(path, columns=[column])
    table.require(column, purpose=option)
    return table.values(column)


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
