"""What every command shares: user errors as one line, warnings as lines, the click options of the specs declared
once in :mod:`inbedder.cli.option_specs`, and the steps from options to a model, input records and written rows.
Imports no command."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import click

from ..encode_settings import check_batch_size
from ..errors import InbedderError, InputError
from ..io import gather_input
from .option_specs import (
    BATCH_SIZE,
    CACHE,
    DEVICE,
    DTYPE,
    FORMAT,
    INPUT_OPTIONS,
    INSTRUCTION,
    MODEL,
    MODEL_OPTIONS,
    NO_CACHE,
    OUTPUT,
    PROGRESS,
    QUANTIZE,
    TEXT_COLUMN,
    UNSET,
    VECTOR_OPTIONS,
    OptionSpec,
    load_options,
)

FC = Callable[..., Any]


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


def click_option(spec: OptionSpec, **changes: Any) -> Callable[[FC], FC]:
    """The click option of ``spec`` (:mod:`inbedder.cli.option_specs`), with ``changes`` to its fields (another
    help text, default, ...) for a command that varies a shared option."""
    if changes:
        spec = replace(spec, **changes)
    decls = ["/".join(spec.decls)] if spec.kind == "on_off" else list(spec.decls)
    attrs: dict[str, Any] = {"help": spec.help, "metavar": spec.metavar, "show_default": spec.show_default,
                             "multiple": spec.multiple, "required": spec.required}
    if spec.envvar:
        attrs.update(envvar=spec.envvar, show_envvar=True)
    if spec.default is not UNSET:
        attrs["default"] = spec.default
    if spec.kind == "int":
        attrs["type"] = int
    elif spec.kind == "flag":
        attrs["is_flag"] = True
    return click.option(*decls, spec.name, **attrs)


def click_options(specs: Iterable[OptionSpec]) -> Callable[[FC], FC]:
    """The click options of ``specs``, in that order in --help."""
    options = [click_option(spec) for spec in specs]

    def apply(f: FC) -> FC:
        for option in reversed(options):
            f = option(f)
        return f
    return apply


MODEL_HELP = MODEL.help


def model_option(help: str = MODEL_HELP, *, env: bool = True, **extra: Any) -> Callable[[FC], FC]:
    """-m/--model (read from INBEDDER_MODEL unless ``env=False``)."""
    return click_option(MODEL, help=help, envvar=MODEL.envvar if env else None, **extra)


def batch_size_option(default: int = 32, help: str = "Texts per forward pass.", env: bool = True
                      ) -> Callable[[FC], FC]:
    return click_option(BATCH_SIZE, default=default, help=help, envvar=BATCH_SIZE.envvar if env else None)


def device_option(env: bool = True) -> Callable[[FC], FC]:
    return click_option(DEVICE, envvar=DEVICE.envvar if env else None)


dtype_option = click_option(DTYPE)
quantize_option = click_option(QUANTIZE)
progress_option = click_option(PROGRESS)
CACHE_HELP = CACHE.help
NO_CACHE_HELP = NO_CACHE.help


def cache_path_option(help: str = CACHE_HELP, env: bool = True) -> Callable[[FC], FC]:
    """--cache PATH (read from INBEDDER_CACHE unless ``env=False``)."""
    return click_option(CACHE, help=help, envvar=CACHE.envvar if env else None)


cache_option = cache_path_option()
no_cache_option = click_option(NO_CACHE)
text_column_option = click_option(TEXT_COLUMN)
input_options = click_options(INPUT_OPTIONS)  # -i/--input, --text-column and --instruction-column


def instruction_option(help: str, multiple: bool = False) -> Callable[[FC], FC]:
    """--instruction; with ``multiple``, it may be given several times (every text under each)."""
    return click_option(INSTRUCTION, help=help, multiple=multiple)


def output_option(help: str, metavar: str = "FILE", required: bool = False) -> Callable[[FC], FC]:
    return click_option(OUTPUT, help=help, metavar=metavar, required=required)


def seed_option(help: str = "Random seed.") -> Callable[[FC], FC]:
    return click.option("--seed", type=int, default=0, show_default=True, help=help)


def output_options(help: str, formats: tuple[str, ...], format_help: str = FORMAT.help,
                   metavar: str = "FILE") -> Callable[[FC], FC]:
    """-o/--output and --format (one of ``formats``)."""
    return click_options([replace(OUTPUT, help=help, metavar=metavar),
                          replace(FORMAT, help=format_help, metavar="|".join(formats))])


# --normalize/--no-normalize, --dimensions, --long-text and --chunk-overlap: how each vector is made
vector_options = click_options(VECTOR_OPTIONS)


def vector_settings(dimensions: int | None, long_text: str | None, chunk_overlap: int | None) -> dict[str, Any]:
    """``encode`` options for the :func:`vector_options` that were given (the library's defaults otherwise)."""
    given = {"dimensions": dimensions, "long_text": long_text, "chunk_overlap": chunk_overlap}
    return {k: v for k, v in given.items() if v is not None}


def one_or_several(instructions: tuple[str, ...]) -> str | list[str] | None:
    """A repeated --instruction: None, the one given, or the list of them."""
    return None if not instructions else instructions[0] if len(instructions) == 1 else list(instructions)


def model_options(f: FC, model_required: bool = True, default: str | None = None) -> FC:
    """-m/--model (``default``: the model used when none is given), --batch-size, --device, --dtype, --quantize,
    --progress and --cache/--no-cache."""
    if not model_required:
        model = replace(MODEL, help="Model for the queries [default: the one that built the index].", envvar=None)
    elif default:
        model = replace(MODEL, help=f"{MODEL_HELP} [default: {default}]", default=default)
    else:
        model = MODEL
    return click_options([model, *MODEL_OPTIONS[1:]])(f)


def cache_choice(cache_path: str | None, no_cache: bool) -> Any:
    """``encode``'s ``cache=`` for the options: None with ``--no-cache``, else the ``--cache`` path (or
    ``$INBEDDER_CACHE``), else the user cache file (``inbedder.cache.store.user_cache_path``). A user cache that
    cannot be written (a read-only home) is not an error, as a cache asked for is: the run goes on without one,
    saying so in one line."""
    from ..cache.store import default_path

    if no_cache:
        return None
    if cache_path:
        return cache_path
    path = default_path()
    if not _writable(path):
        click.echo(f"Warning: the user cache {path} cannot be written; running without a cache (--cache PATH to "
                   "give one, --no-cache to say none)", err=True)
        return None
    return str(path)


def _writable(path: Any) -> bool:
    """Whether the file ``path`` can be created or written, with its folder (SQLite writes beside it)."""
    import os
    from pathlib import Path

    path = Path(path)
    if path.exists():
        return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK)


def check_load_options(dtype: str | None, batch_size: int | None = None, quantize: str | None = None) -> None:
    """The load and batch options that can be checked without a model, so that a wrong one fails before a load
    (the device is checked by the load itself before it reads any weights). Imports no torch."""
    from ..choices import DType, Quantize, parse_choice

    if dtype is not None:
        parse_choice(DType, dtype, "dtype")
    if quantize is not None:
        parse_choice(Quantize, quantize, "quantize")
    if batch_size is not None:
        check_batch_size(batch_size)


def need_model(model: str | None) -> str:
    from ..registry import ALIASES

    if not model:
        raise click.ClickException("no model given: pass -m/--model NAME or set INBEDDER_MODEL "
                                   f"(aliases: {', '.join(sorted(ALIASES))})")
    return model


def load_model(model: str | None, device: str | None, dtype: str | None, cache: Any = None,
               quantize: str | None = None) -> Any:
    """The loaded model (``quantize``: --quantize, None for the model's default); with a ``cache``, recorded there
    so that a rerun whose rows are all cached needs no load (:func:`cached_rows`)."""
    from ..load_free import load_remembered
    from ..loading import parse_device, quiet_transformers

    model = need_model(model)
    parse_device(device)
    with quiet_transformers():
        return load_remembered(cache, model, device=device, dtype=dtype or "float32",
                               load_options=load_options(quantize))


def cached_rows(model: str | None, device: str | None, dtype: str | None, cache: Any, texts: list[str],
                instruction: Any, *, quantize: str | None = None, **options: bool
                ) -> tuple[Any, list[str] | None] | None:
    """Vectors (and answers) of every text from ``cache`` when it holds them all for this model, loading nothing
    (:func:`inbedder.load_free.lookup`); None otherwise (no cache, a missing row, a model file changed since, ...)."""
    from ..load_free import lookup

    if cache is None:
        return None
    return lookup(cache, need_model(model), texts, instruction, device=device, dtype=dtype or "float32",
                  load_options=load_options(quantize), **options)


class CachedModel:
    """A model loaded only when the cache lacks a row: ``encode`` first asks the cache (loading nothing, as
    :func:`cached_rows`) and loads the model, once, for the first call the cache cannot serve; from then on the
    loaded model reads and adds rows through the cache as usual. What ``inbedder eval`` hands to its tasks, so that
    an evaluation of rows already embedded (by ``cluster``, or an earlier ``eval``) loads no model.

    >>> model = CachedModel("minilm", device=None, dtype=None, cache=True)     # doctest: +SKIP
    >>> model.encode(["a text"], instruction="What is it about?")            # doctest: +SKIP
    >>> model.loaded is None                 # every row was in the user cache  # doctest: +SKIP
    True
    """

    takes_instructions = True  # as an Embedder: encode(texts, instructions=[...]) gives every text under each

    def __init__(self, model: str, device: str | None, dtype: str | None, cache: Any,
                 quantize: str | None = None) -> None:
        self.model, self.device_name, self.dtype, self.cache = model, device, dtype or "float32", cache
        self.quantize = quantize
        self.loaded: Any = None
        self.served = 0  # encode calls answered from the cache alone
        self._dim: int | None = None

    def encode(self, texts: Any, instruction: Any = None, *, instructions: list[str] | None = None,
               batch_size: int = 32, normalize: bool = False, show_progress_bar: bool | None = None,
               **options: Any) -> Any:
        if self.loaded is None and self.cache is not None and not options and isinstance(texts, (list, tuple)):
            from ..cache.store import open_cache
            from ..load_free import served_from_cache

            found = served_from_cache(open_cache(self.cache), self.model, list(texts), instruction,
                                      dtype=self.dtype, device=self.device_name,
                                      load_options=load_options(self.quantize), normalize=normalize,
                                      instructions=instructions)
            if found is not None:
                self.served += 1
                self._dim = int(found.shape[-1])
                return found
        return self.load().encode(texts, instruction, instructions=instructions, batch_size=batch_size,
                                  normalize=normalize, show_progress_bar=show_progress_bar, cache=self.cache,
                                  **options)

    def load(self) -> Any:
        if self.loaded is None:
            self.loaded = load_model(self.model, self.device_name, self.dtype, self.cache, self.quantize)
        return self.loaded

    # what a result file says of the model (``evaluation.results.model_info``), with or without a load
    @property
    def name(self) -> str:
        return str(self.loaded.name) if self.loaded is not None else self.model

    @property
    def dim(self) -> int | None:
        return int(self.loaded.dim) if self.loaded is not None else self._dim

    @property
    def family(self) -> Any:
        return self.loaded.family if self.loaded is not None else None

    @property
    def encoder(self) -> Any:
        return None if self.loaded is None else self.loaded.encoder

    @property
    def device(self) -> Any:
        return self.loaded.device if self.loaded is not None else "none (every row from the cache)"


def read_column(path: str | None, column: str, option: str) -> list[Any]:
    """The values of one column of the -i table file, in order (see ``io.read_column``)."""
    from ..io import TABLE_SUFFIXES
    from ..io import read_column as read_field

    if path in (None, "-"):
        raise InputError(f"{option} needs -i FILE, a table file ({', '.join(TABLE_SUFFIXES)})")
    return read_field(path, column, option)  # type: ignore[arg-type]


def read_input(texts: tuple[str, ...], input_path: str | None, text_column: str,
             instruction_column: str | None, instruction: str | None) -> tuple[list[Any], Any]:
    """Input records and the ``instruction=`` argument for encode (one string, or one per row)."""

    records = gather_input(texts, input_path, text_column, instruction_column)
    if any(r.instruction is not None for r in records):
        return records, [instruction if r.instruction is None else r.instruction for r in records]
    return records, instruction


def write_result_rows(rows: list[dict[str, Any]], output: str | None, fmt: str) -> None:
    from ..io import write_rows

    write_rows(rows, None if output in (None, "-") else output, fmt)
    if output in (None, "-"):
        sys.stdout.flush()


def row_format(output: str | None, fmt: str | None, valid: tuple[str, ...]) -> str:
    from ..io import pick_format

    return pick_format(output, fmt, valid)


