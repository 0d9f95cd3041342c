"""``inbedder bench``: throughput of a model in several dtypes on the same texts, with fidelity and roofline.

    inbedder bench -m minilm -i sentences.txt --variants float32,bfloat16,int8
    inbedder bench -m minilm -i sentences.txt --against sentence-transformers --json bench.json
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..io import gather_input
from .common import (
    batch_size_option,
    instruction_option,
    model_option,
    text_column_option,
    user_errors,
    warnings_as_lines,
)


@click.command("bench")
@click.argument("texts", nargs=-1)
@model_option(default="minilm", show_default=True)
@click.option("-i", "--input", "input_path", metavar="FILE",
              help="Texts from FILE (.txt one per line, .jsonl/.csv/.parquet with a text column); default: the "
                   "arguments, else stdin.")
@text_column_option
@instruction_option("Instruction for every text.")
@click.option("--variants", default="float32,bfloat16,int8", show_default=True,
              help="Comma-separated: float32, bfloat16, float16, int8, bfloat16+int8, auto (int8 where it measured "
                   "faster on this CPU; float32 is always run).")
@click.option("--against", type=click.Choice(["sentence-transformers"]), multiple=True,
              help="Also time this library on the same model directory (encoder family), float32.")
@batch_size_option(help="Rows per batch.", env=False)
@click.option("--max-tokens-per-batch", type=int, default=None, help="Token budget per batch (padding included).")
@click.option("--rounds", type=int, default=3, show_default=True, help="Alternating timed rounds (median reported).")
@click.option("--warmup", type=int, default=2, show_default=True, help="Warm-up batches per variant.")
@click.option("--threads", type=int, default=None, help="torch threads [default: torch's choice].")
@click.option("--limit", type=int, default=None, help="Use the first N texts.")
@click.option("--peak-size", type=int, default=2048, show_default=True,
              help="Side of the square matrices timed for the matmul peak (roofline); 0 skips it.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the results.")
def bench(texts: tuple[str, ...], model: str, input_path: str | None, text_column: str, instruction: str | None,
          variants: str, against: tuple[str, ...], batch_size: int, max_tokens_per_batch: int | None, rounds: int,
          warmup: int, threads: int | None, limit: int | None, peak_size: int, json_path: Path | None) -> None:
    """Time MODEL in each dtype on the same texts: texts/s, tokens/s, cosine to float32, share of GEMM peak."""
    import torch

    from ..apps.benchmark import bench_encoder

    with user_errors(), warnings_as_lines():
        if threads is not None:
            if threads < 1:
                raise click.BadParameter(f"must be >= 1; got {threads}", param_hint="--threads")
            torch.set_num_threads(threads)
        rows = [r.text for r in gather_input(texts, input_path, text_column, None)]
        rows = rows[:limit] if limit is not None else rows
        competitors = _competitors(model, against, instruction, batch_size)
        result = bench_encoder(model, rows, variants, instruction=instruction, batch_size=batch_size,
                               max_tokens_per_batch=max_tokens_per_batch, rounds=rounds, warmup=warmup,
                               competitors=competitors, peak_size=peak_size or None,
                               progress=lambda m: click.echo(m, err=True))
        result.pop("vectors")
        result["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        result["command"] = " ".join(["inbedder", *sys.argv[1:]])
        _print(result)
        if json_path is not None:
            json_path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


def _competitors(model: str, against: tuple[str, ...], instruction: str | None, batch_size: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if "sentence-transformers" in against:
        from ..errors import require
        from ..registry import resolve

        require("sentence_transformers", "bench")
        from sentence_transformers import SentenceTransformer

        theirs = SentenceTransformer(str(resolve(model).path), device="cpu")

        def run(texts: list[str]) -> np.ndarray:
            return np.asarray(theirs.encode(texts, prompt=instruction, batch_size=batch_size,
                                            show_progress_bar=False, convert_to_numpy=True))

        found["sentence-transformers float32"] = run
    return found


def _print(res: dict[str, Any]) -> None:
    load = res["load_average"]
    peaks = res["peak_flops_per_s"]
    click.echo(f"{res['model']}: {res['texts']} texts ({res['distinct_texts']} distinct, {res['tokens']} tokens), "
               f"batch {res['batch_size']}, token budget {res['max_tokens_per_batch']}, {res['threads']} threads, "
               f"{res['rounds']} alternating rounds (median)")
    if peaks:
        click.echo("matmul peak: " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()))
    if None not in load:
        click.echo("load average: {:.2f} before, {:.2f} after".format(*load))
    header = f"{'variant':<32}{'texts/s':>10}{'tokens/s':>11}{'vs fp32':>9}{'min cos':>10}{'mean cos':>10}"
    click.echo(header + ("" if not peaks else f"{'% fp32 peak':>13}{'% bf16 peak':>13}"))
    for name, row in res["variants"].items():
        line = (f"{name:<32}{row['texts_per_s']:>10.1f}{row.get('tokens_per_s', float('nan')):>11.0f}"
                f"{row['vs_float32']:>8.2f}x{row['min_cosine']:>10.5f}{row['mean_cosine']:>10.5f}")
        if "roofline_float32" in row:
            line += f"{100 * row['roofline_float32']:>12.1f}%{100 * row['roofline_bfloat16']:>12.1f}%"
        click.echo(line)
