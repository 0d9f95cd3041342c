"""Files in and out, for every command, evaluation and training.

- ``records.py``  the texts to embed, from arguments, stdin or a file (:func:`read_records`, :func:`gather_input`)
- ``table.py``    rows with named columns from a data file (:func:`~inbedder.io.table.read_table`)
- ``write.py``    embeddings and result rows written as npy, jsonl, json, csv or parquet

Importing this package stays cheap (no numpy, no dataclasses): a fully cached ``inbedder embed`` uses it.
"""

from __future__ import annotations

from .records import INPUT_SUFFIXES, Record, gather_input, read_column, read_lines, read_records, read_stream
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
    write_rows,
)

__all__ = ["BINARY_FORMATS", "INPUT_SUFFIXES", "OUTPUT_FORMATS", "OUTPUT_SUFFIXES", "ROW_FORMATS", "Record",
           "check_target", "gather_input", "output_format", "pick_format", "read_column", "read_lines",
           "read_records", "read_stream", "rows", "write_embeddings", "write_rows"]
