"""``inbedder embed``: texts in, one vector per text out; a thin shell over :func:`inbedder.load` and ``encode``
(through :mod:`inbedder.cache.keys`, so a fully cached run loads no model) and :mod:`inbedder.io`.

    inbedder embed -m minilm --instruction "Represent the sentence:" "A cat sat." "A dog ran."
    inbedder embed -m minilm -i docs.jsonl -o vectors.parquet
    cat lines.txt | inbedder embed -m minilm > vectors.jsonl
"""

from __future__ import annotations

from typing import Any

import click

from ..choices import DType
from ..io import OUTPUT_FORMATS, check_target, gather_input, output_format
from .common import need_model, user_errors, warnings_as_lines


@click.command("embed")
@click.argument("texts", nargs=-1)
@click.option("-m", "--model", envvar="INBEDDER_MODEL", show_envvar=True,
              help="Model alias (see `inbedder models`), local directory, .gguf file or hub id.")
@click.option("--instruction", help="Instruction for every text; rows of a .jsonl/.csv file may carry their own.")
@click.option("-i", "--input", "input_path", metavar="FILE",
              help="Read texts from FILE: .txt (one per line), .jsonl (a 'text' field, optional 'instruction' "
                   "and 'id'), .csv (with a header) or .parquet; '-' for stdin (one text per line). "
                   "Default: the arguments, else stdin.")
@click.option("--text-column", default="text", show_default=True, help="Text field of .jsonl/.csv/.parquet input.")
@click.option("--instruction-column", help="Instruction field of .jsonl/.csv input [default: instruction, if any].")
@click.option("-o", "--output", metavar="FILE",
              help="Write to FILE; the format comes from its extension (.npy, .jsonl, .json, .csv, .parquet). "
                   "Default: jsonl on stdout.")
@click.option("--format", "fmt", metavar="|".join(OUTPUT_FORMATS),
              help="Output format, whatever the extension of -o.")
@click.option("--batch-size", type=int, default=32, show_default=True, envvar="INBEDDER_BATCH_SIZE",
              show_envvar=True, help="Texts per forward pass.")
@click.option("--normalize/--no-normalize", default=False, show_default=True, envvar="INBEDDER_NORMALIZE",
              show_envvar=True, help="Scale each vector to unit length.")
@click.option("--device", envvar="INBEDDER_DEVICE", show_envvar=True,
              help="cpu, cuda, cuda:1, mps, ... [default: cuda when available, else cpu]")
@click.option("--dtype", default="float32", show_default=True, envvar="INBEDDER_DTYPE", show_envvar=True,
              metavar="|".join(d.value for d in DType), help="Weight precision.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr [default: shown from 8 batches on].")
@click.option("--cache", "cache_path", metavar="PATH", envvar="INBEDDER_CACHE", show_envvar=True,
              help="Look vectors up in (and add them to) this SQLite cache; only missing rows are computed.")
@click.option("--ray", is_flag=True, help="Embed parquet (-i FILE or FOLDER) with Ray into a folder of parquet "
              "files (-o FOLDER), resumably. See docs/integrations.md.")
@click.option("--ray-address", envvar="RAY_ADDRESS", show_envvar=True,
              help="Ray cluster for --ray [default: start a local Ray].")
@click.option("--concurrency", type=int, default=1, show_default=True, help="Model copies (Ray actors) for --ray.")
def embed(texts: tuple[str, ...], model: str | None, instruction: str | None, input_path: str | None,
          text_column: str, instruction_column: str | None, output: str | None, fmt: str | None, batch_size: int,
          normalize: bool, device: str | None, dtype: str, progress: bool | None, cache_path: str | None,
          ray: bool = False, ray_address: str | None = None, concurrency: int = 1) -> None:
    """Embed texts and write one vector per text.

    Texts come from the TEXTS arguments, else from -i FILE, else from stdin (one per line).

    \b
    inbedder embed -m minilm --instruction "Represent the title:" "Deep learning" "Cats"
    inbedder embed -m minilm -i docs.csv --text-column body -o vectors.npy
    """
    from .fast import embed_records  # loads the model only when the cache lacks a row

    with user_errors():
        if ray:
            return embed_with_ray(texts, need_model(model), instruction=instruction, input_path=input_path,
                                  output=output, text_column=text_column, instruction_column=instruction_column,
                                  batch_size=batch_size, normalize=normalize, device=device, dtype=dtype,
                                  progress=progress, cache_path=cache_path, address=ray_address,
                                  concurrency=concurrency)
        model = need_model(model)
        fmt = output_format(output, fmt)
        check_target(output)
        records = gather_input(texts, input_path, text_column, instruction_column)
        with warnings_as_lines():
            embed_records(records, model, instruction, output=output, fmt=fmt, cache_path=cache_path, device=device,
                          dtype=dtype, batch_size=batch_size, normalize=normalize, show_progress_bar=progress)


def embed_with_ray(texts: tuple[str, ...], model: str, *, input_path: str | None, output: str | None,
                   **options: Any) -> None:
    """The ``--ray`` branch: parquet in (a file or a folder), a folder of parquet files out."""
    from ..distributed.shards import embed_files

    if texts or not input_path or input_path == "-" or not output or output == "-":
        raise click.ClickException("--ray reads -i FILE.parquet (or a folder of parquet files) and writes "
                                   "-o FOLDER; texts as arguments and stdin/stdout are not supported")
    embed_files(model=model, input_path=input_path, output=output, echo=lambda line: click.echo(line, err=True),
                **options)
