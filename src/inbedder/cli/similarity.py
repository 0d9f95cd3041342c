"""``inbedder similarity``: cosine of every text in one list with every text in another; a thin shell over
:mod:`inbedder.apps.similarity`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ..io import check_target, write_matrix
from .common import (
    batch_size_option,
    cache_choice,
    cache_option,
    cached_rows,
    check_load_options,
    device_option,
    dtype_option,
    instruction_option,
    load_model,
    model_option,
    need_model,
    no_cache_option,
    output_options,
    quantize_option,
    row_format,
    text_column_option,
    write_result_rows,
)

SIMILARITY_FORMATS = ("table", "json", "jsonl", "csv", "tsv", "parquet", "npy")

@click.command("similarity")
@model_option()
@click.option("-a", "a_path", metavar="FILE", required=True,
              help="First list: .txt (one text a line), .jsonl, .json, .csv, .tsv or .parquet ('-' for "
                   "stdin, one text per line).")
@click.option("-b", "b_path", metavar="FILE", required=True, help="Second list, as -a.")
@instruction_option("Instruction for the first list (and the second, unless --instruction-b).")
@click.option("--instruction-b", help="Instruction for the second list.")
@text_column_option
@output_options("Write to FILE: .json (the matrix), .jsonl, .csv, .tsv or .parquet (one row per pair), .npy (the "
                "matrix) [default: stdout].", SIMILARITY_FORMATS,
                "Output format, whatever the extension of -o [default: from -o, else table].")
@batch_size_option()
@device_option()
@dtype_option
@quantize_option
@cache_option
@no_cache_option
def similarity(model: str | None, a_path: str, b_path: str, instruction: str | None, instruction_b: str | None,
               text_column: str, output: str | None, fmt: str | None, batch_size: int, device: str | None,
               dtype: str | None, quantize: str | None, cache_path: str | None, no_cache: bool) -> None:
    """Cosine similarity of every text in -a with every text in -b, each list under its own instruction.

    \b
    inbedder similarity -m minilm -a questions.txt -b answers.jsonl --instruction "Represent the question:" \\
        --instruction-b "Represent the answer:" -o pairs.csv
    """
    import numpy as np

    from ..apps.similarity import similarity as cosine_matrix
    from ..io import read_records, read_stream
    from .common import user_errors, warnings_as_lines

    with user_errors():
        chosen = row_format(output, fmt, SIMILARITY_FORMATS) if output not in (None, "-") or fmt else "table"
        check_target(output, "output")
        if a_path == "-" and b_path == "-":
            raise InputError("-a and -b cannot both read stdin; give at least one of them a file")
        check_load_options(dtype, batch_size, quantize)
        need_model(model)
        lists = []
        for path in (a_path, b_path):
            records = (read_stream(sys.stdin.buffer, source="stdin") if path == "-"
                       else read_records(path, text_column=text_column, instruction_column=None))
            lists.append([r.text for r in records])
        cache = cache_choice(cache_path, no_cache)
        found = [cached_rows(model, device, dtype, cache, texts, asked, quantize=quantize, normalize=True)
                 for texts, asked in zip(lists, (instruction, instruction if instruction_b is None else instruction_b),
                                         strict=True)]
        if found[0] is not None and found[1] is not None:  # every row of both lists cached: no model to load
            matrix = np.asarray(found[0][0] @ found[1][0].T, dtype=np.float32)
        else:
            with warnings_as_lines():
                embedder = load_model(model, device, dtype, cache, quantize)
                matrix = cosine_matrix(embedder, lists[0], lists[1], instruction, instruction_b=instruction_b,
                                       batch_size=batch_size, cache=cache)
        if chosen == "npy":
            write_matrix(matrix, output)  # type: ignore[arg-type]
        elif chosen == "json":
            _write_json_object({"a": lists[0], "b": lists[1], "cosine": matrix.round(6).tolist()}, output)
        elif chosen == "table":
            _similarity_table(lists[0], lists[1], matrix, output)
        else:
            write_result_rows([{"a_index": i, "b_index": j, "a": a, "b": b, "cosine": round(float(matrix[i, j]), 6)}
                         for i, a in enumerate(lists[0]) for j, b in enumerate(lists[1])], output, chosen)


def _write_json_object(value: Any, output: str | None) -> None:
    text = json.dumps(value, ensure_ascii=False)
    if output in (None, "-"):
        click.echo(text)
    else:
        Path(output).write_text(text + "\n", encoding="utf-8")  # type: ignore[arg-type]


def _similarity_table(a: list[str], b: list[str], matrix: Any, output: str | None) -> None:
    width = min(40, max(len(t) for t in a))
    lines = [" " * (width + 2) + "  ".join(f"b{j:<6}" for j in range(len(b)))]
    for text, row in zip(a, matrix, strict=True):
        shown = text if len(text) <= width else text[: width - 1] + "…"
        lines.append(f"{shown:<{width}}  " + "  ".join(f"{v:7.4f}" for v in row))
    legend = [f"b{j}: {text}" for j, text in enumerate(b)]
    if output in (None, "-"):
        click.echo("\n".join(lines))
        click.echo("\n".join(legend), err=True)
    else:
        Path(output).write_text("\n".join(lines + [""] + legend) + "\n", encoding="utf-8")  # type: ignore[arg-type]


