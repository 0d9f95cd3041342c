"""Read training records: QA ``{input, instruction, answer}`` and MEDI
``{query: [instruction, text], pos: [...], neg: [...], task_id}`` from any table file (usually .jsonl).

Every problem names the file, the row (and line) and the field.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import InputError
from ..io.table import read_table

QA_FIELDS = ("input", "instruction", "answer")
MEDI_FIELDS = ("query", "pos", "neg")


def read_qa(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """QA records from any table file (.jsonl, .json, .csv, .tsv, .parquet); each needs ``input``, ``instruction``
    and ``answer``."""
    table = read_table(path)
    table.require(*QA_FIELDS)
    columns = {f: table.strings(f) for f in QA_FIELDS}
    return [{f: columns[f][i] for f in QA_FIELDS} for i in range(len(table))]


def read_medi(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """MEDI records: ``query``, ``pos`` and ``neg`` are ``[instruction, text]`` pairs (in csv/tsv: as JSON text);
    ``task_id`` groups batches."""
    table = read_table(path)
    table.require(*MEDI_FIELDS, "task_id")
    out = []
    for i, row in enumerate(table.rows):
        record: dict[str, Any] = {}
        for f in MEDI_FIELDS:
            value = row.get(f)
            if isinstance(value, str) and value.lstrip().startswith("["):  # a JSON list in a csv/tsv cell
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    pass  # refused below, with what is valid
            if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
                    and value[1].strip()):
                raise InputError(f"{table.where(i, f)}: expected [instruction, text] (two strings, non-empty text); "
                                 f"got {value!r:.80}")
            record[f] = value
        task = row.get("task_id")
        if isinstance(task, bool) or not isinstance(task, (int, str)):
            raise InputError(f"{table.where(i, 'task_id')}: expected an int or a string; got {task!r:.40}")
        record["task_id"] = task
        out.append(record)
    return out
