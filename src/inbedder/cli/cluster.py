"""``inbedder cluster``: embed texts under an instruction, cluster them, name the clusters; a thin shell over
:mod:`inbedder.apps.clustering` and :mod:`inbedder.apps.report`.

    inbedder cluster -m minilm -i queries.jsonl --instruction "What is the intent?" -k 10 --report r.html

Without -m it uses the default answer model (``inbedder.DEFAULT_ANSWER_MODEL``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import InputError
from ..io import ROW_FORMATS, check_target, gather_input
from ..registry import DEFAULT_ANSWER_MODEL
from .common import (
    cache_choice,
    cached_rows,
    check_load_options,
    input_options,
    instruction_option,
    load_model,
    model_options,
    need_model,
    output_options,
    read_column,
    read_input,
    row_format,
    seed_option,
    warnings_as_lines,
    write_result_rows,
)

if TYPE_CHECKING:
    from ..apps.clustering import ClusterResult, ClusterSettings


@click.command("cluster")
@click.argument("texts", nargs=-1)
@functools.partial(model_options, default=DEFAULT_ANSWER_MODEL)
@input_options
@instruction_option("Instruction for every text; rows of a .jsonl/.csv file may carry their own. Give it several "
                    "times to cluster the texts under each (one encode pass; rows and summaries per instruction).",
                    multiple=True)
@click.option("-k", "--clusters", "k", type=int, help="Number of clusters [default: picked by --auto-k].")
@click.option("--auto-k", metavar="MIN-MAX", help="Pick k with the best silhouette in this range [default: 2-20].")
@click.option("--method", default="kmeans", show_default=True, metavar="kmeans|agglomerative")
@seed_option("Random seed (k-means, sampling).")
@click.option("--label-column", help="Gold label field of the .jsonl/.csv/.parquet input: adds V-measure, ARI "
              "and NMI against it and the labels of each cluster's texts.")
@output_options("Rows with their cluster: .jsonl, .json, .csv, .tsv or .parquet [default: jsonl on stdout].",
                ROW_FORMATS, "Row format, whatever the extension of -o.")
@click.option("--summary", metavar="FILE.json", help="Write the clusters (names, sizes, examples) and scores.")
@click.option("--report", metavar="FILE.html", help="Write a self-contained HTML report with a 2-D plot.")
@click.option("--png", metavar="FILE.png", help="Write the 2-D plot as a PNG (needs matplotlib).")
@click.option("--projection", default="pca", show_default=True, metavar="pca|umap", help="2-D projection.")
@click.option("--examples", type=int, default=5, show_default=True, help="Texts nearest each centre to show.")
@click.option("-q", "--quiet", is_flag=True, help="Do not print the cluster table on stderr.")
def cluster(texts: tuple[str, ...], model: str | None, batch_size: int, device: str | None, dtype: str | None,
            quantize: str | None, progress: bool | None, cache_path: str | None, no_cache: bool, input_path: str | None,
            text_column: str, instruction_column: str | None, instruction: tuple[str, ...], k: int | None,
            auto_k: str | None, method: str, seed: int, label_column: str | None, output: str | None,
            fmt: str | None, summary: str | None, report: str | None, png: str | None, projection: str,
            examples: int, quiet: bool) -> None:
    """Embed texts under an instruction, cluster them and name each cluster.

    Writes one row per text with its cluster id and name; prints the cluster table on stderr.

    \b
    inbedder cluster -m minilm -i queries.jsonl --instruction "What is the intent?" -k 10
    inbedder cluster -m minilm -i docs.csv --auto-k 2-15 --label-column topic --report report.html
    inbedder cluster -i reviews.csv --instruction "Is the review positive or negative?" -k 2   # default model
    """
    from ..apps.clustering import check_inputs
    from .common import user_errors

    with user_errors():
        cache = cache_choice(cache_path, no_cache)
        settings = check_options(model, dtype, batch_size, k, auto_k, method, seed, examples, projection,
                                 quantize)
        fmt = row_format(output, fmt, ROW_FORMATS)
        check_outputs(output, summary, report, png)
        labels = read_column(input_path, label_column, "--label-column") if label_column else None
        source: dict[str, Any] = {"model": model, "device": device, "dtype": dtype, "quantize": quantize,
                                  "cache": cache, "batch_size": batch_size, "progress": progress}
        if len(instruction) > 1:
            if report or png:
                raise InputError("--report and --png draw one clustering: give one --instruction (run once per "
                                 "instruction for a report of each)")
            records = gather_input(texts, input_path, text_column, instruction_column)
            rows_text = check_inputs([r.text for r in records], settings, labels)  # before a model is loaded
            results = cluster_each(rows_text, list(instruction), settings, labels, label_column, **source)
            write_each(results, records, labels, output, fmt, summary, quiet)
            return
        records, instructions = read_input(texts, input_path, text_column, instruction_column,
                                           instruction[0] if instruction else None)
        rows_text = check_inputs([r.text for r in records], settings, labels)  # before a model is loaded
        result = cluster_one(rows_text, instructions, settings, labels, label_column, **source)
        write_one(result, records, labels, output, fmt, summary, quiet, report=report, png=png,
                  projection=projection, seed=seed)


def check_options(model: str | None, dtype: str | None, batch_size: int, k: int | None, auto_k: str | None,
                  method: str, seed: int, examples: int, projection: str, quantize: str | None = None
                  ) -> ClusterSettings:
    """The model name, load options, clustering settings and projection, before any input is read: the
    :class:`~inbedder.apps.clustering.ClusterSettings` they make."""
    from ..apps.clustering import DEFAULT_AUTO_K, ClusterSettings, parse_k_range
    from ..apps.report import parse_projection

    check_model_name(model)
    check_load_options(dtype, batch_size, quantize)
    if k is not None and auto_k is not None:
        raise InputError("give -k or --auto-k, not both")
    k_range = parse_k_range(auto_k) if auto_k is not None else None
    settings = ClusterSettings(method=method, k=k, seed=seed, n_examples=examples,  # type: ignore[arg-type]
                               auto_k=tuple(DEFAULT_AUTO_K if k_range is None else k_range))
    parse_projection(projection)
    return settings


def check_outputs(output: str | None, summary: str | None, report: str | None, png: str | None) -> None:
    """Every file asked for can be written, and the extras they need are installed (scikit-learn to cluster,
    matplotlib for --png)."""
    from ..errors import require

    for path, what in ((output, "output"), (summary, "summary"), (report, "report"), (png, "PNG")):
        check_target(path, what)
    require("sklearn", "cluster")
    if png:
        require("matplotlib", "report")


def fit_options(settings: ClusterSettings) -> dict[str, Any]:
    """The library's clustering keywords (``apps.clustering.cluster``) that make ``settings`` again."""
    return {"k": settings.k, "auto_k": None if settings.k is not None else settings.auto_k,
            "method": settings.method, "seed": settings.seed, "n_examples": settings.n_examples}


def cluster_one(rows_text: list[str], instructions: Any, settings: ClusterSettings, labels: list[Any] | None,
                label_name: str | None, *, model: str | None, device: str | None, dtype: str | None, cache: Any,
                batch_size: int, progress: bool | None, quantize: str | None = None) -> ClusterResult:
    """One clustering under ``instructions`` (one, or one per row): from the cache when it holds every row (no
    model is loaded), else from the model, loaded now."""
    from ..apps.clustering import cluster, cluster_vectors

    found = cached_rows(model, device, dtype, cache, rows_text, instructions, quantize=quantize, answers=True)
    if found is not None:  # every row cached: no model to load
        vectors, answers = found
        result = cluster_vectors(vectors, rows_text, settings, labels=labels, label_name=label_name,
                                 answers=answers)
        result.instruction, result.model = instructions, need_model(model)
        return result
    with warnings_as_lines():
        embedder = load_model(model, device, dtype, cache, quantize)
        return cluster(rows_text, embedder, instructions, labels=labels, label_name=label_name,
                       batch_size=batch_size, cache=cache, show_progress_bar=progress, **fit_options(settings))


def cluster_each(rows_text: list[str], instructions: list[str], settings: ClusterSettings,
                 labels: list[Any] | None, label_name: str | None, *, model: str | None, device: str | None,
                 dtype: str | None, cache: Any, batch_size: int, progress: bool | None, quantize: str | None = None
                 ) -> list[ClusterResult]:
    """One clustering per instruction: from the cache when it holds every row under every instruction (no model
    is loaded), else from one encode pass of the model, loaded now."""
    from ..apps import clustering

    cached = [cached_rows(model, device, dtype, cache, rows_text, q, quantize=quantize, answers=True)
              for q in instructions]
    if all(found is not None for found in cached):
        results = []
        for question, (vectors, answers) in zip(instructions, cached, strict=True):  # type: ignore[misc]
            results.append(clustering.cluster_vectors(vectors, rows_text, settings, labels=labels,
                                                      label_name=label_name, answers=answers))
            results[-1].instruction, results[-1].model = question, need_model(model)
        return results
    with warnings_as_lines():
        return clustering.cluster_each(rows_text, load_model(model, device, dtype, cache, quantize), instructions,
                                       labels=labels, label_name=label_name, batch_size=batch_size, cache=cache,
                                       show_progress_bar=progress, **fit_options(settings))


def write_one(result: ClusterResult, records: list[Any], labels: list[Any] | None, output: str | None, fmt: str,
              summary: str | None, quiet: bool, *, report: str | None, png: str | None, projection: str,
              seed: int) -> None:
    """One instruction: the rows, the summary, the report and PNG (one 2-D projection for both) and the table."""
    from ..apps.report import command_line, project_2d, write_png, write_report

    write_result_rows(result_rows(result, records, labels), output, fmt)
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


def check_model_name(model: str | None) -> None:
    """Refuse a model name that is surely unknown (not an alias, not an existing path, not shaped like a hub id
    ``owner/name``) before any input is read or model loaded; the others are found when the model is loaded."""
    from ..registry import ALIASES, resolve

    name = need_model(model)
    if name.lower() in ALIASES or Path(name).expanduser().exists() or name.count("/") == 1:
        return
    resolve(name)  # raises UnknownModelError with the aliases and a "did you mean"


def result_rows(result: Any, records: list[Any], labels: list[Any] | None) -> list[dict[str, Any]]:
    """The rows of one clustering, with the gold label of each text when there are labels."""
    rows = list(result.rows([r.id for r in records]))
    for row, label in zip(rows, labels or [], strict=False):
        row["label"] = label
    return rows


def write_each(results: list[Any], records: list[Any], labels: list[Any] | None, output: str | None, fmt: str,
               summary: str | None, quiet: bool) -> None:
    """Several instructions: the rows of every clustering (instruction by instruction, each row naming its
    instruction), a summary list, and a table per instruction."""
    rows = [{"instruction": result.instruction, **row} for result in results
            for row in result_rows(result, records, labels)]
    write_result_rows(rows, output, fmt)
    if summary:
        Path(summary).write_text(json.dumps([r.summary() for r in results], indent=2, ensure_ascii=False) + "\n",
                                 encoding="utf-8")
    if not quiet:
        for result in results:
            click.echo(f"== {result.instruction}\n{result.table()}", err=True)
