"""``inbedder embed``: texts in, one vector per text out; a thin shell over :func:`inbedder.load` and ``encode``
(through :mod:`inbedder.load_free`, so a fully cached run loads no model) and :mod:`inbedder.io`.

    inbedder embed -m minilm --instruction "Represent the sentence:" "A cat sat." "A dog ran."
    inbedder embed -m minilm -i docs.jsonl -o vectors.parquet
    cat lines.txt | inbedder embed -m minilm > vectors.jsonl
"""

from __future__ import annotations

from typing import Any

import click

from ..io import check_target, gather_input, output_format
from .common import (
    cache_choice,
    check_load_options,
    click_options,
    load_options,
    need_model,
    one_or_several,
    user_errors,
    vector_settings,
    warnings_as_lines,
)
from .option_specs import EMBED_OPTIONS


@click.command("embed")
@click.argument("texts", nargs=-1)
@click_options(EMBED_OPTIONS)  # declared once, as data: the fast path (fast.py) parses the same
def embed(texts: tuple[str, ...], model: str | None, batch_size: int, device: str | None, dtype: str | None,
          quantize: str | None, progress: bool | None, cache_path: str | None, no_cache: bool,
          instruction: tuple[str, ...], input_path: str | None, text_column: str, instruction_column: str | None,
          output: str | None, fmt: str | None, normalize: bool, dimensions: int | None, long_text: str | None,
          chunk_overlap: int | None, ray: bool = False, ray_address: str | None = None, concurrency: int = 1) -> None:
    """Embed texts and write one vector per text (per text and instruction, with several --instruction).

    Texts come from the TEXTS arguments, else from -i FILE, else from stdin (one per line).

    \b
    inbedder embed -m minilm --instruction "Represent the title:" "Deep learning" "Cats"
    inbedder embed -m minilm -i docs.csv --text-column body -o vectors.npy
    inbedder embed -m smollm2-135m-instruct -i reviews.txt --instruction "What is the topic?" \\
        --instruction "What is the sentiment?" -o both.parquet
    """
    from .fast import embed_records  # loads the model only when the cache lacks a row

    with user_errors():
        cache = cache_choice(cache_path, no_cache)
        asked = one_or_several(instruction)
        settings = vector_settings(dimensions, long_text, chunk_overlap)
        if ray:
            if isinstance(asked, list) or settings:
                raise click.ClickException("--ray takes one --instruction and no --dimensions/--long-text/"
                                           "--chunk-overlap")
            check_load_options(dtype, batch_size, quantize)
            if quantize not in (None, "none"):
                raise click.ClickException(f"--ray embeds float32 weights on every actor; --quantize {quantize} is "
                                           "not supported with --ray (leave it out, or give --quantize none)")
            return embed_with_ray(texts, need_model(model), instruction=asked, input_path=input_path,
                                  output=output, text_column=text_column, instruction_column=instruction_column,
                                  batch_size=batch_size, normalize=normalize, device=device, dtype=dtype or "float32",
                                  progress=progress, cache_path=cache, address=ray_address,
                                  concurrency=concurrency)
        model = need_model(model)
        fmt = output_format(output, fmt)
        check_target(output)
        check_load_options(dtype, batch_size, quantize)
        check_vector_settings(settings)
        records = gather_input(texts, input_path, text_column, instruction_column)
        with warnings_as_lines():
            embed_records(records, model, asked, output=output, fmt=fmt, cache_path=cache, device=device,
                          dtype=dtype or "float32", load_options=load_options(quantize), batch_size=batch_size,
                          normalize=normalize, show_progress_bar=progress, **settings)


def check_vector_settings(settings: dict[str, Any]) -> None:
    """--long-text, --chunk-overlap and the lower bound of --dimensions, before a load (the upper bound is the
    model's own dimension, which only the loaded model knows)."""
    from ..errors import InputError

    if "long_text" in settings or "chunk_overlap" in settings:
        from ..long_text import LongTexts

        LongTexts(settings.get("long_text", "truncate"), settings.get("chunk_overlap"))
    if settings.get("dimensions", 1) < 1:
        raise InputError(f"dimensions={settings['dimensions']} is out of range: give a number of dimensions >= 1")


def embed_with_ray(texts: tuple[str, ...], model: str, *, input_path: str | None, output: str | None,
                   **options: Any) -> None:
    """The ``--ray`` branch: parquet in (a file or a folder), a folder of parquet files out."""
    from ..distributed.shards import embed_files

    if texts or not input_path or input_path == "-" or not output or output == "-":
        raise click.ClickException("--ray reads -i FILE.parquet (or a folder of parquet files) and writes "
                                   "-o FOLDER; texts as arguments and stdin/stdout are not supported")
    embed_files(model=model, input_path=input_path, output=output, echo=lambda line: click.echo(line, err=True),
                **options)
