"""Files in and out, for every command, evaluation and training.

- ``table.py``    the one format layer: a .jsonl, .json, .csv, .tsv, .parquet (or .txt) file → a :class:`Table` of
                  rows, with errors naming the file, row, line and column (:func:`read_table`)
- ``records.py``  the texts to embed, a view of a table (or stdin, or arguments): :func:`read_records`,
                  :func:`read_column`, :func:`gather_input`
- ``write.py``    the one writer: embeddings and result rows as npy, jsonl, json, csv, tsv or parquet

Importing this package stays cheap (no numpy, no dataclasses): a fully cached ``inbedder embed`` uses it.
"""

from __future__ import annotations

from .records import INPUT_SUFFIXES, Record, gather_input, read_column, read_lines, read_records, read_stream
from .table import SUFFIXES, TABLE_SUFFIXES, Table, parse_assignments, read_table
from .write import (
    BINARY_FORMATS,
    OUTPUT_FORMATS,
    OUTPUT_SUFFIXES,
    ROW_FORMATS,
    check_target,
    output_format,
    pick_format,
    rows,
    write_embeddings,
    write_matrix,
    write_rows,
)

__all__ = ["BINARY_FORMATS", "INPUT_SUFFIXES", "OUTPUT_FORMATS", "OUTPUT_SUFFIXES", "ROW_FORMATS", "SUFFIXES",
           "TABLE_SUFFIXES", "Record", "Table", "check_target", "gather_input", "output_format", "parse_assignments",
           "pick_format", "read_column", "read_lines", "read_records", "read_stream", "read_table", "rows",
           "write_embeddings", "write_matrix", "write_rows"]
