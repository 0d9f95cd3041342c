"""``inbedder cluster``, ``inbedder search index|query`` and ``inbedder cache stats|clear``.

Thin shells over :mod:`inbedder.clustering`, :mod:`inbedder.report`, :mod:`inbedder.search` and
:mod:`inbedder.cache`. Input works like ``inbedder embed`` (arguments, ``-i FILE`` .txt/.jsonl/.csv, stdin);
user errors exit 1 with one line.

Examples::

    inbedder cluster -m minilm -i queries.jsonl --instruction "What is the intent?" -k 10 --report r.html
    inbedder search index -m minilm -i docs.jsonl --instruction "Represent the document:" --index docs.idx
    inbedder search query --index docs.idx --instruction "Represent the question:" "cheap flights" -k 5
    inbedder cache stats
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .choices import DType
from .errors import InputError
from .io import ROW_FORMATS, check_target, gather_input

FC = Callable[..., Any]
QUERY_FORMATS = ("jsonl", "json", "csv", "parquet", "table")
SIMILARITY_FORMATS = ("table", "json", "jsonl", "csv", "parquet", "npy")


# -- shared options -------------------------------------------------------------------------------------------
def input_options(f: FC) -> FC:
    """-i/--input, --text-column and --instruction-column, as in ``inbedder embed``."""
    for option in reversed([
        click.option("-i", "--input", "input_path", metavar="FILE",
                     help="Read texts from FILE: .txt (one per line), .jsonl (a 'text' field, optional "
                          "'instruction' and 'id'), .csv (with a header) or .parquet; '-' for stdin (one text "
                          "per line). Default: the arguments, else stdin."),
        click.option("--text-column", default="text", show_default=True,
                     help="Text field of .jsonl/.csv/.parquet input."),
        click.option("--instruction-column",
                     help="Instruction field of .jsonl/.csv/.parquet input [default: instruction, if any]."),
    ]):
        f = option(f)
    return f


def model_options(f: FC, model_required: bool = True) -> FC:
    """-m/--model, --batch-size, --device, --dtype, --progress and --cache/--no-cache."""
    model_help = ("Model alias (see `inbedder models`), local directory, .gguf file or hub id." if model_required
                  else "Model for the queries [default: the one that built the index].")
    for option in reversed([
        click.option("-m", "--model", envvar="INBEDDER_MODEL" if model_required else None,
                     show_envvar=model_required, help=model_help),
        click.option("--batch-size", type=int, default=32, show_default=True, envvar="INBEDDER_BATCH_SIZE",
                     show_envvar=True, help="Texts per forward pass."),
        click.option("--device", envvar="INBEDDER_DEVICE", show_envvar=True,
                     help="cpu, cuda, cuda:1, mps, ... [default: cuda when available, else cpu]"),
        click.option("--dtype", default=None, envvar="INBEDDER_DTYPE", show_envvar=True,
                     metavar="|".join(d.value for d in DType), help="Weight precision [default: float32]."),
        click.option("--progress/--no-progress", default=None,
                     help="Progress bar on stderr [default: shown from 8 batches on]."),
        click.option("--cache", "cache_path", metavar="PATH", envvar="INBEDDER_CACHE", show_envvar=True,
                     help="Look vectors up in (and add them to) this SQLite cache; only missing rows are computed."),
        click.option("--no-cache", is_flag=True, help="Use no cache, even when INBEDDER_CACHE is set."),
    ]):
        f = option(f)
    return f


def cache_choice(cache_path: str | None, no_cache: bool) -> Any:
    """``encode``'s ``cache=`` for the options: None (no cache, or ``--no-cache``) or a path."""
    return None if no_cache else (cache_path or None)


def need_model(model: str | None) -> str:
    from .registry import ALIASES

    if not model:
        raise click.ClickException("no model given: pass -m/--model NAME or set INBEDDER_MODEL "
                                   f"(aliases: {', '.join(sorted(ALIASES))})")
    return model


def load_model(model: str | None, device: str | None, dtype: str | None, cache: Any = None) -> Any:
    """The loaded model; with a ``cache``, recorded there so that a rerun whose rows are all cached needs no load
    (:func:`cached_rows`)."""
    from .cache_keys import load_remembered
    from .loading import parse_device, quiet_transformers

    model = need_model(model)
    parse_device(device)
    with quiet_transformers():
        return load_remembered(cache, model, device=device, dtype=dtype or "float32")


def cached_rows(model: str | None, device: str | None, dtype: str | None, cache: Any, texts: list[str],
                instruction: Any, **options: bool) -> tuple[Any, list[str] | None] | None:
    """Vectors (and answers) of every text from ``cache`` when it holds them all for this model, loading nothing
    (``cache_keys.lookup``); None otherwise (no cache, a missing row, a model file changed since, ...)."""
    from .cache_keys import lookup

    if cache is None:
        return None
    return lookup(cache, need_model(model), texts, instruction, device=device, dtype=dtype or "float32", **options)


def read_column(path: str | None, column: str, option: str) -> list[Any]:
    """The values of one field of the -i .jsonl, .csv or .parquet file, in order (see ``io.read_column``)."""
    from .io import read_column as read_field

    if path in (None, "-"):
        raise InputError(f"{option} needs -i FILE with a .jsonl, .csv or .parquet file")
    return read_field(path, column, option)  # type: ignore[arg-type]


def _records(texts: tuple[str, ...], input_path: str | None, text_column: str,
             instruction_column: str | None, instruction: str | None) -> tuple[list[Any], Any]:
    """Input records and the ``instruction=`` argument for encode (one string, or one per row)."""

    records = gather_input(texts, input_path, text_column, instruction_column)
    if any(r.instruction is not None for r in records):
        return records, [instruction if r.instruction is None else r.instruction for r in records]
    return records, instruction


def _write_rows(rows: list[dict[str, Any]], output: str | None, fmt: str) -> None:
    from .io import write_rows

    write_rows(rows, None if output in (None, "-") else output, fmt)
    if output in (None, "-"):
        sys.stdout.flush()


def _row_format(output: str | None, fmt: str | None, valid: tuple[str, ...]) -> str:
    from .io import pick_format

    return pick_format(output, fmt, valid)


# -- cluster --------------------------------------------------------------------------------------------------
@click.command("cluster")
@click.argument("texts", nargs=-1)
@model_options
@input_options
@click.option("--instruction", help="Instruction for every text; rows of a .jsonl/.csv file may carry their own.")
@click.option("-k", "--clusters", "k", type=int, help="Number of clusters [default: picked by --auto-k].")
@click.option("--auto-k", metavar="MIN-MAX", help="Pick k with the best silhouette in this range [default: 2-20].")
@click.option("--method", default="kmeans", show_default=True, metavar="kmeans|agglomerative")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (k-means, sampling).")
@click.option("--label-column", help="Gold label field of the .jsonl/.csv/.parquet input: adds V-measure, ARI "
              "and NMI.")
@click.option("-o", "--output", metavar="FILE",
              help="Rows with their cluster: .jsonl, .json, .csv or .parquet [default: jsonl on stdout].")
@click.option("--format", "fmt", metavar="|".join(ROW_FORMATS), help="Row format, whatever the extension of -o.")
@click.option("--summary", metavar="FILE.json", help="Write the clusters (names, sizes, examples) and scores.")
@click.option("--report", metavar="FILE.html", help="Write a self-contained HTML report with a 2-D plot.")
@click.option("--png", metavar="FILE.png", help="Write the 2-D plot as a PNG (needs matplotlib).")
@click.option("--projection", default="pca", show_default=True, metavar="pca|umap", help="2-D projection.")
@click.option("--examples", type=int, default=5, show_default=True, help="Texts nearest each centre to show.")
@click.option("-q", "--quiet", is_flag=True, help="Do not print the cluster table on stderr.")
def cluster(texts: tuple[str, ...], model: str | None, batch_size: int, device: str | None, dtype: str | None,
            progress: bool | None, cache_path: str | None, no_cache: bool, input_path: str | None,
            text_column: str, instruction_column: str | None, instruction: str | None, k: int | None,
            auto_k: str | None, method: str, seed: int, label_column: str | None, output: str | None,
            fmt: str | None, summary: str | None, report: str | None, png: str | None, projection: str,
            examples: int, quiet: bool) -> None:
    """Embed texts under an instruction, cluster them and name each cluster.

    Writes one row per text with its cluster id and name; prints the cluster table on stderr.

    \b
    inbedder cluster -m minilm -i queries.jsonl --instruction "What is the intent?" -k 10
    inbedder cluster -m minilm -i docs.csv --auto-k 2-15 --label-column topic --report report.html
    """
    from .cli import user_errors, warnings_as_lines
    from .clustering import DEFAULT_AUTO_K, ClusterSettings, cluster_vectors, parse_k_range
    from .clustering import cluster as run_cluster
    from .errors import require
    from .report import command_line, parse_projection, project_2d, write_png, write_report

    with user_errors():
        cache = cache_choice(cache_path, no_cache)
        if k is not None and auto_k is not None:
            raise InputError("give -k or --auto-k, not both")
        k_range = parse_k_range(auto_k) if auto_k is not None else None
        settings = ClusterSettings(method=method, k=k, seed=seed, n_examples=examples,  # type: ignore[arg-type]
                                   auto_k=tuple(DEFAULT_AUTO_K if k_range is None else k_range))
        parse_projection(projection)
        fmt = _row_format(output, fmt, ROW_FORMATS)
        for path, what in ((output, "output"), (summary, "summary"), (report, "report"), (png, "PNG")):
            check_target(path, what)
        require("sklearn", "cluster")
        if png:
            require("matplotlib", "report")
        records, instructions = _records(texts, input_path, text_column, instruction_column, instruction)
        labels = read_column(input_path, label_column, "--label-column") if label_column else None
        rows_text = [r.text for r in records]
        found = cached_rows(model, device, dtype, cache, rows_text, instructions, answers=True)
        if found is not None:  # every row cached: no model to load
            vectors, answers = found
            result = cluster_vectors(vectors, rows_text, settings, labels=labels, answers=answers)
            result.instruction, result.model = instructions, need_model(model)
        else:
            with warnings_as_lines():
                embedder = load_model(model, device, dtype, cache)
                result = run_cluster(rows_text, embedder, instructions, k=k, auto_k=k_range, method=method, seed=seed,
                                     labels=labels, n_examples=examples, batch_size=batch_size, cache=cache,
                                     show_progress_bar=progress)
        ids = [r.id for r in records]
        rows = list(result.rows(ids))
        if labels is not None:
            for row, label in zip(rows, labels, strict=True):
                row["label"] = label
        _write_rows(rows, output, fmt)
        if summary:
            Path(summary).write_text(json.dumps(result.summary(), indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
        xy = project_2d(result.vectors, projection, seed) if report or png else None
        if report:
            write_report(result, report, command_line(click.get_current_context()), projection=projection, xy=xy)
        if png:
            write_png(result, png, projection=projection, xy=xy)
        if not quiet:
            click.echo(result.table(), err=True)


# -- search ---------------------------------------------------------------------------------------------------
@click.group("search")
def search() -> None:
    """Instruction-aware search: `index` a corpus, then `query` it."""


@search.command("index")
@click.argument("texts", nargs=-1)
@model_options
@input_options
@click.option("--instruction", help="Document instruction for every text (rows of a file may carry their own).")
@click.option("--id-column", help="Id field of the .jsonl/.csv/.parquet input [default: 'id' if present, else row "
              "numbers].")
@click.option("--index", "index_dir", required=True, metavar="DIR", help="Index directory to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing index in DIR.")
def search_index(texts: tuple[str, ...], model: str | None, batch_size: int, device: str | None,
                 dtype: str | None, progress: bool | None, cache_path: str | None, no_cache: bool,
                 input_path: str | None, text_column: str, instruction_column: str | None,
                 instruction: str | None, id_column: str | None, index_dir: str, overwrite: bool) -> None:
    """Embed a corpus with a document instruction and save a search index directory.

    \b
    inbedder search index -m minilm -i docs.jsonl --instruction "Represent the document for retrieval:" \\
        --index docs.idx
    """
    from .cli import user_errors, warnings_as_lines
    from .search import CONFIG, SearchIndex

    with user_errors():
        cache = cache_choice(cache_path, no_cache)
        target = Path(index_dir)
        check_target(index_dir, "index")
        if (target / CONFIG).exists() and not overwrite:
            raise InputError(f"{index_dir!r} already holds an index; pass --overwrite to replace it")
        records, instructions = _records(texts, input_path, text_column, instruction_column, instruction)
        ids = read_column(input_path, id_column, "--id-column") if id_column else [r.id for r in records]
        ids = [i if v is None else v for i, v in enumerate(ids)]
        with warnings_as_lines():
            embedder = load_model(model, device, dtype, cache)
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
@click.option("-o", "--output", metavar="FILE", help="Write the results to FILE: .jsonl, .json, .csv or .parquet "
              "(csv and parquet: one row per result) [default: stdout].")
@click.option("--format", "fmt", metavar="|".join(QUERY_FORMATS),
              help="Result format, whatever the extension of -o [default: from -o, else jsonl].")
@click.option("--backend", default="auto", show_default=True, metavar="auto|numpy|faiss",
              help="Exact search with numpy or FAISS (auto: FAISS when installed).")
def search_query(queries: tuple[str, ...], model: str | None, batch_size: int, device: str | None,
                 dtype: str | None, progress: bool | None, cache_path: str | None, no_cache: bool,
                 input_path: str | None, text_column: str, instruction_column: str | None, index_dir: str,
                 instruction: str | None, k: int, output: str | None, fmt: str | None, backend: str) -> None:
    """Embed queries with a query instruction and print the top-k documents with their scores.

    \b
    inbedder search query --index docs.idx --instruction "Represent the question:" "how do I reset my pin"
    """
    from .cli import user_errors, warnings_as_lines
    from .search import SearchIndex, hits_table

    with user_errors():
        cache = cache_choice(cache_path, no_cache)
        fmt = _row_format(output, fmt, QUERY_FORMATS)
        check_target(output, "output")
        index = SearchIndex.load(index_dir, backend=backend)
        records, instructions = _records(queries, input_path, text_column, instruction_column, instruction)
        built = index.config["model"]
        if not model:  # the model that built the index: by alias (with its load options), else by its files
            from .registry import ALIASES

            source = built.get("source") or ""
            use_source = built["name"] not in ALIASES and source and Path(source).exists()
            model, dtype = (source if use_source else built["name"]), dtype or built["settings"].get("dtype")
        with warnings_as_lines():
            embedder = load_model(model, device, dtype, cache)
            hits = index.query([r.text for r in records], instructions, k=k, model=embedder,
                               batch_size=batch_size, cache=cache)
        out = [{"index": i, "query": r.text, "results": [h.as_dict() for h in found]}
               for i, (r, found) in enumerate(zip(records, hits, strict=True))]
        if fmt == "table":
            table = hits_table([r.text for r in records], hits)
            if output in (None, "-"):
                click.echo(table)
            else:
                Path(output).write_text(table + "\n", encoding="utf-8")  # type: ignore[arg-type]
        elif fmt in ("csv", "parquet"):  # flat: one row per result
            _write_rows([{"index": q["index"], "query": q["query"], **hit} for q in out for hit in q["results"]],
                        output, fmt)
        else:
            _write_rows(out, output, fmt)


# -- similarity -----------------------------------------------------------------------------------------------
@click.command("similarity")
@click.option("-m", "--model", envvar="INBEDDER_MODEL", show_envvar=True,
              help="Model alias, local directory, .gguf file or hub id.")
@click.option("-a", "a_path", metavar="FILE", required=True,
              help="First list: .txt, .jsonl, .csv or .parquet ('-' for stdin, one text per line).")
@click.option("-b", "b_path", metavar="FILE", required=True, help="Second list: .txt, .jsonl, .csv or .parquet.")
@click.option("--instruction", help="Instruction for the first list (and the second, unless --instruction-b).")
@click.option("--instruction-b", help="Instruction for the second list.")
@click.option("--text-column", default="text", show_default=True, help="Text field of .jsonl/.csv/.parquet input.")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE: .json (the matrix), .jsonl, .csv or .parquet "
              "(one row per pair), .npy (the matrix) [default: stdout].")
@click.option("--format", "fmt", metavar="|".join(SIMILARITY_FORMATS),
              help="Output format, whatever the extension of -o [default: from -o, else table].")
@click.option("--batch-size", type=int, default=32, show_default=True, envvar="INBEDDER_BATCH_SIZE",
              show_envvar=True, help="Texts per forward pass.")
@click.option("--device", envvar="INBEDDER_DEVICE", show_envvar=True, help="cpu, cuda, ... [default: auto]")
@click.option("--dtype", default=None, envvar="INBEDDER_DTYPE", show_envvar=True,
              metavar="|".join(d.value for d in DType), help="Weight precision [default: float32].")
@click.option("--cache", "cache_path", metavar="PATH", envvar="INBEDDER_CACHE", show_envvar=True,
              help="SQLite embedding cache to read and fill.")
def similarity(model: str | None, a_path: str, b_path: str, instruction: str | None, instruction_b: str | None,
               text_column: str, output: str | None, fmt: str | None, batch_size: int, device: str | None,
               dtype: str | None, cache_path: str | None) -> None:
    """Cosine similarity of every text in -a with every text in -b, each list under its own instruction.

    \b
    inbedder similarity -m minilm -a questions.txt -b answers.jsonl --instruction "Represent the question:" \\
        --instruction-b "Represent the answer:" -o pairs.csv
    """
    import numpy as np

    from .cli import user_errors, warnings_as_lines
    from .io import read_records, read_stream
    from .pairwise import similarity as cosine_matrix

    with user_errors():
        chosen = _row_format(output, fmt, SIMILARITY_FORMATS) if output not in (None, "-") or fmt else "table"
        check_target(output, "output")
        if a_path == "-" and b_path == "-":
            raise InputError("-a and -b cannot both read stdin; give at least one of them a file")
        lists = []
        for path in (a_path, b_path):
            records = (read_stream(sys.stdin.buffer, source="stdin") if path == "-"
                       else read_records(path, text_column=text_column, instruction_column=None))
            lists.append([r.text for r in records])
        cache = cache_path or None
        found = [cached_rows(model, device, dtype, cache, texts, asked, normalize=True)
                 for texts, asked in zip(lists, (instruction, instruction if instruction_b is None else instruction_b),
                                         strict=True)]
        if found[0] is not None and found[1] is not None:  # every row of both lists cached: no model to load
            matrix = np.asarray(found[0][0] @ found[1][0].T, dtype=np.float32)
        else:
            with warnings_as_lines():
                embedder = load_model(model, device, dtype, cache)
                matrix = cosine_matrix(embedder, lists[0], lists[1], instruction, instruction_b=instruction_b,
                                       batch_size=batch_size, cache=cache)
        if chosen == "npy":
            np.save(output, matrix)  # type: ignore[arg-type]
        elif chosen == "json":
            _write_json_object({"a": lists[0], "b": lists[1], "cosine": matrix.round(6).tolist()}, output)
        elif chosen == "table":
            _similarity_table(lists[0], lists[1], matrix, output)
        else:
            _write_rows([{"a_index": i, "b_index": j, "a": a, "b": b, "cosine": round(float(matrix[i, j]), 6)}
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


# -- cache ----------------------------------------------------------------------------------------------------
@click.group("cache")
def cache_group() -> None:
    """Look at or empty the embedding cache."""


def _cache_file(cache_path: str | None) -> Path:
    from .cache import default_path

    return Path(cache_path).expanduser() if cache_path else default_path()


@cache_group.command("stats")
@click.option("--cache", "cache_path", metavar="PATH", help="Cache file [default: $INBEDDER_CACHE, else "
              "~/.cache/inbedder/embeddings.sqlite].")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def cache_stats(cache_path: str | None, as_json: bool) -> None:
    """Rows, size on disk, models and the hit rate of the last run."""
    from .cache import EmbeddingCache
    from .cli import user_errors

    with user_errors():
        path = _cache_file(cache_path)
        if not path.is_file():
            stats: dict[str, Any] = {"path": str(path), "rows": 0, "size_bytes": 0, "models": [], "last_run": None}
        else:
            stats = EmbeddingCache(path).stats()
        if as_json:
            click.echo(json.dumps(stats, indent=2))
            return
        last = stats.get("last_run")
        click.echo(f"path: {stats['path']}{'' if path.is_file() else ' (does not exist yet)'}")
        click.echo(f"rows: {stats['rows']}\nsize: {stats['size_bytes'] / 1e6:.2f} MB")
        for m in stats["models"]:
            click.echo(f"model: {m['name']} ({m['rows']} rows)")
        click.echo(f"last run: {last['hits']} hits, {last['misses']} misses, hit rate {last['hit_rate']:.1%}"
                   if last else "last run: none")


@cache_group.command("clear")
@click.option("--model", help="Delete only the rows of this model (the name it was loaded by).")
@click.option("--cache", "cache_path", metavar="PATH", help="Cache file [default: $INBEDDER_CACHE, else "
              "~/.cache/inbedder/embeddings.sqlite].")
def cache_clear(model: str | None, cache_path: str | None) -> None:
    """Delete cached vectors: all of them, or one model's."""
    from .cache import EmbeddingCache
    from .cli import user_errors

    with user_errors():
        path = _cache_file(cache_path)
        if not path.is_file():
            if model:
                raise InputError(f"no cache at {str(path)!r}: nothing to clear for model {model!r}")
            click.echo(f"no cache at {path}: nothing to clear")
            return
        deleted = EmbeddingCache(path).clear(model)
        click.echo(f"deleted {deleted} rows{f' of model {model}' if model else ''} from {path}")
