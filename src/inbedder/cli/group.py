"""The ``inbedder`` command line: a thin shell over :func:`inbedder.load`, ``encode`` and :mod:`inbedder.io`.

Examples::

    inbedder embed -m minilm --instruction "Represent the sentence:" "A cat sat." "A dog ran."
    inbedder embed -m minilm -i docs.jsonl -o vectors.parquet
    cat lines.txt | inbedder embed -m minilm > vectors.jsonl
    inbedder models

User errors exit with status 1 and one line on stderr.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import Iterator
from typing import Any

import click

from . import __version__
from .choices import DType
from .errors import InbedderError
from .io import OUTPUT_FORMATS, check_target, gather_input, output_format
from .registry import ALIASES


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn library and file errors into :class:`click.ClickException`: one line on stderr, exit status 1."""
    try:
        yield
    except BrokenPipeError:
        raise  # click handles a closed pipe (``| head``) quietly
    except InbedderError as exc:
        raise click.ClickException(_one_line(str(exc))) from None
    except OSError as exc:
        message = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
        raise click.ClickException(_one_line(message)) from None


def _one_line(message: str) -> str:
    return " ".join(message.split()) or "unknown error"


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Show user warnings (such as truncated texts) as one ``Warning: ...`` line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        yield
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            click.echo(f"Warning: {_one_line(str(warning.message))}", err=True)


class LazyGroup(click.Group):
    """A group whose larger subcommands are imported only when used (or listed), so ``embed`` starts fast."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy  # command name -> "module:attribute"

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, attribute = self.lazy[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module, __package__), attribute)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             lazy={"eval": ".cli_eval:eval_group", "cluster": ".cli_usecases:cluster",
                   "similarity": ".cli_usecases:similarity", "search": ".cli_usecases:search",
                   "cache": ".cli_usecases:cache_group", "data": ".cli_train:data_group",
                   "train": ".cli_train:train_group", "serve": ".serve.command:serve", "bench": ".cli_bench:bench"})
@click.version_option(__version__, prog_name="inbedder")
def main() -> None:
    """Instruction-following text embeddings."""


@main.command()
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
    from .cli_fast import embed_records  # loads the model only when the cache lacks a row

    if ray:
        from .cli_ray import run_ray

        return run_ray(model=model, texts=texts, instruction=instruction, input_path=input_path, output=output,
                       text_column=text_column, instruction_column=instruction_column, batch_size=batch_size,
                       normalize=normalize, device=device, dtype=dtype, progress=progress, cache_path=cache_path,
                       address=ray_address, concurrency=concurrency)
    with user_errors():
        if not model:
            raise click.ClickException("no model given: pass -m/--model NAME or set INBEDDER_MODEL "
                                       f"(aliases: {', '.join(sorted(ALIASES))})")
        fmt = output_format(output, fmt)
        check_target(output)
        records = gather_input(texts, input_path, text_column, instruction_column)
        with warnings_as_lines():
            embed_records(records, model, instruction, output=output, fmt=fmt, cache_path=cache_path, device=device,
                          dtype=dtype, batch_size=batch_size, normalize=normalize, show_progress_bar=progress)


@main.command("models")
def models() -> None:
    """List the model aliases. A local model directory, a .gguf file or a hub id works as well."""
    width = max(map(len, ALIASES))
    first: dict[int, str] = {}
    for name, alias in ALIASES.items():
        original = first.setdefault(id(alias), name)
        description = alias.description if original == name else f"same as {original}"
        click.echo(f"{name:<{width}}  {description}")
