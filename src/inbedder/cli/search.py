"""``inbedder search index|query``: a thin shell over :mod:`inbedder.apps.search`.

    inbedder search index -m minilm -i docs.jsonl --instruction "Represent the document:" --index docs.idx
    inbedder search query --index docs.idx --instruction "Represent the question:" "cheap flights" -k 5

A query whose vector is in the cache (``--cache``) for the index's model is answered without loading the model.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ..io import check_target
from .common import (
    cache_choice,
    check_load_options,
    input_options,
    load_model,
    model_options,
    output_options,
    read_column,
    read_input,
    row_format,
    write_result_rows,
)

QUERY_FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "table")


@click.group("search")
def search() -> None:
    """Instruction-aware search: `index` a corpus, then `query` it."""


@search.command("index")
@click.argument("texts", nargs=-1)
@model_options
@input_options
@click.option("--instruction", help="Document instruction for every text (rows of a file may carry their own).")
@click.option("--id-column", help="Id column of a table input file [default: 'id' if present, else row "
              "numbers].")
@click.option("--index", "index_dir", required=True, metavar="DIR", help="Index directory to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing index in DIR.")
def search_index(texts: tuple[str, ...], model: str | None, batch_size: int, device: str | None,
                 dtype: str | None, quantize: str | None, progress: bool | None, cache_path: str | None, no_cache: bool,
                 input_path: str | None, text_column: str, instruction_column: str | None,
                 instruction: str | None, id_column: str | None, index_dir: str, overwrite: bool) -> None:
    """Embed a corpus with a document instruction and save a search index directory.

    \b
    inbedder search index -m minilm -i docs.jsonl --instruction "Represent the document for retrieval:" \\
        --index docs.idx
    """
    from ..apps.search import CONFIG, SearchIndex
    from .common import user_errors, warnings_as_lines

    with user_errors():
        check_load_options(dtype, quantize=quantize)
        cache = cache_choice(cache_path, no_cache)
        target = Path(index_dir)
        check_target(index_dir, "index")
        if (target / CONFIG).exists() and not overwrite:
            raise InputError(f"{index_dir!r} already holds an index; pass --overwrite to replace it")
        records, instructions = read_input(texts, input_path, text_column, instruction_column, instruction)
        ids = read_column(input_path, id_column, "--id-column") if id_column else [r.id for r in records]
        ids = [i if v is None else v for i, v in enumerate(ids)]
        with warnings_as_lines():
            embedder = load_model(model, device, dtype, cache, quantize)
            index = SearchIndex.build([r.text for r in records], embedder, instructions, ids=ids,
                                      batch_size=batch_size, cache=cache, show_progress_bar=progress,
                                      backend="numpy")
        index.save(index_dir, overwrite=overwrite)
        click.echo(f"indexed {len(index)} texts with {embedder.name} into {index_dir}", err=True)


@search.command("query")
@click.argument("queries", nargs=-1)
@functools.partial(model_options, model_required=False)
@input_options
@click.option("--index", "index_dir", required=True, metavar="DIR", help="Index directory (from `search index`).")
@click.option("--instruction", help="Query instruction for every query (rows of a file may carry their own).")
@click.option("-k", "--top-k", "k", type=int, default=10, show_default=True, help="Results per query.")
@output_options("Write the results to FILE: .jsonl, .json, .csv, .tsv or .parquet (csv, tsv and parquet: one row "
                "per result) [default: stdout].", QUERY_FORMATS,
                "Result format, whatever the extension of -o [default: from -o, else jsonl].")
@click.option("--backend", default="auto", show_default=True, metavar="auto|numpy|faiss",
              help="Exact search with numpy or FAISS (auto: FAISS when installed and the search is large).")
def search_query(queries: tuple[str, ...], model: str | None, batch_size: int, device: str | None,
                 dtype: str | None, quantize: str | None, progress: bool | None, cache_path: str | None, no_cache: bool,
                 input_path: str | None, text_column: str, instruction_column: str | None, index_dir: str,
                 instruction: str | None, k: int, output: str | None, fmt: str | None, backend: str) -> None:
    """Embed queries with a query instruction and print the top-k documents with their scores.

    Query vectors go through the cache (--cache): a query asked before with this index's model is answered
    without loading the model.

    \b
    inbedder search query --index docs.idx --instruction "Represent the question:" "how do I reset my pin"
    """
    from ..apps.search import SearchIndex, check_k, hits_table
    from .common import user_errors, warnings_as_lines

    with user_errors():
        check_load_options(dtype, quantize=quantize)
        fmt = row_format(output, fmt, QUERY_FORMATS)
        check_target(output, "output")
        check_k(k)
        index = SearchIndex.load(index_dir, backend=backend)
        records, instructions = read_input(queries, input_path, text_column, instruction_column, instruction)
        texts = [r.text for r in records]
        cache = cache_choice(cache_path, no_cache)
        vectors = None
        if (_index_settings(index, dtype, quantize) if not model
                else _loads_index_model(index, model, device, dtype, cache, quantize)):
            vectors = index.cached_vectors(texts, instructions, cache)  # every query cached: no model is loaded
        if vectors is not None:
            hits = index.search_vectors(vectors, k)
        else:
            model, dtype, quantize = _query_model(index, model, dtype, quantize)
            with warnings_as_lines():
                embedder = load_model(model, device, dtype, cache, quantize)
                hits = index.query(texts, instructions, k=k, model=embedder, batch_size=batch_size, cache=cache)
        out = [{"index": i, "query": r.text, "results": [h.as_dict() for h in found]}
               for i, (r, found) in enumerate(zip(records, hits, strict=True))]
        if fmt == "table":
            table = hits_table([r.text for r in records], hits)
            if output in (None, "-"):
                click.echo(table)
            else:
                Path(output).write_text(table + "\n", encoding="utf-8")  # type: ignore[arg-type]
        elif fmt in ("csv", "tsv", "parquet"):  # flat: one row per result
            write_result_rows([{"index": q["index"], "query": q["query"], **hit} for q in out for hit in q["results"]],
                        output, fmt)
        else:
            write_result_rows(out, output, fmt)


def _query_model(index: Any, model: str | None, dtype: str | None, quantize: str | None
                 ) -> tuple[str, str | None, str | None]:
    """The model to load for the queries, with its dtype and --quantize: the one given, else the one that built the
    index (by alias, with its dtype and quantization where not given; by its files when it is not an alias)."""
    if model:
        return model, dtype, quantize
    from ..registry import ALIASES

    built = index.config["model"]
    source = built.get("source") or ""
    use_source = built["name"] not in ALIASES and source and Path(source).exists()
    name = source if use_source else built["name"]
    return name, dtype or built["settings"].get("dtype"), quantize or _index_quantize(name, built["settings"])


def _index_quantize(model: str, settings: dict[str, Any]) -> str | None:
    """--quantize for the index's ``model`` when none is given: the index's quantization where it was quantized;
    else the model's default (None, so the cache knows the request as a plain one), unless that default is
    ``auto``, which may choose int8 here: then ``none``, as the index was built."""
    from ..adapters import default_quantize
    from ..errors import InbedderError
    from ..registry import resolve

    if settings.get("quantize"):
        return str(settings["quantize"])
    try:
        location = resolve(model)
        default = default_quantize(location.path, location.options)
    except InbedderError:
        return None
    return "none" if str(default).lower() == "auto" else None


def _index_settings(index: Any, dtype: str | None, quantize: str | None) -> bool:
    """Whether ``--dtype`` and ``--quantize`` (where given) are the ones the index was built with (others are refused
    by the load); ``--quantize auto``, whose choice only a load knows, is not taken for one."""
    from ..choices import DType, Quantize, parse_choice

    built = index.config["model"]["settings"]
    if dtype is not None and parse_choice(DType, dtype, "dtype").value != built.get("dtype"):
        return False
    if quantize is None:
        return True
    asked = parse_choice(Quantize, quantize, "quantize")
    return asked is not Quantize.AUTO and asked.value == (built.get("quantize") or Quantize.NONE.value)


def _loads_index_model(index: Any, model: str, device: str | None, dtype: str | None, cache: Any,
                       quantize: str | None = None) -> bool:
    """Whether ``cache`` recorded that loading ``model`` this way gives the index's model (its files unchanged
    since): then its cached query vectors are the model's. Loads nothing."""
    from ..cache.keys import request_key
    from ..cache.store import open_cache
    from .common import load_options

    store = open_cache(cache)
    if store is None:
        return False
    key = request_key(model, dtype=dtype or "float32", device=device, load_options=load_options(quantize),
                      encode_options={})
    known = store.request(key) if key is not None else None
    return known is not None and known[0] == index.model_key()
