"""``inbedder eval <task>``: evaluate a model on local data and write a result JSON (a thin shell over
:mod:`inbedder.evaluation`).

Examples::

    inbedder eval sts -m minilm -i sts-test.jsonl --instruction "Represent the sentence:" -o sts.json
    inbedder eval awareness -m minilm -i data.csv --axis category="What aspect is discussed?" \\
        --axis polarity="What is the sentiment?" -o awareness.json --png awareness.png
    inbedder eval triplet -m minilm -i triplets.jsonl --correct "What is the sentiment?" --incorrect "What food?"
    inbedder eval report results/*.json

User errors exit with status 1 and one line on stderr.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ..io import check_target
from ..registry import DEFAULT_ANSWER_MODEL
from .common import (
    MODEL_HELP,
    batch_size_option,
    cache_option,
    device_option,
    dtype_option,
    instruction_option,
    model_option,
    no_cache_option,
    output_option,
    progress_option,
    quantize_option,
    seed_option,
    text_column_option,
)

TaskBuilder = Callable[[], Any]
NEEDS_SKLEARN = ("clustering", "classification", "awareness")  # k-means or a probe: checked before the load


def _run_options(f: Callable[..., Any], cache: bool = True) -> Callable[..., Any]:
    """Options every task takes: model (the default answer model when none is given, as ``cluster``), data,
    output, batching, seed, subsampling; with ``cache``, --cache/--no-cache (the user cache by default)."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        model_option(f"{MODEL_HELP} [default: {DEFAULT_ANSWER_MODEL}]", default=DEFAULT_ANSWER_MODEL),
        click.option("-i", "--input", "input_path", required=True, metavar="PATH", help="The data (see above)."),
        output_option("Write the result here [default: stdout].", "FILE.json"),
        click.option("--delimiter", help="Read the file as delimited text with a header, split by this character "
                                         "(e.g. ';'); .csv and .tsv need none."),
        click.option("--limit", type=int, help="Evaluate at most this many rows, chosen with --seed."),
        seed_option("Seed of sampling, splits and k-means."),
        batch_size_option(), device_option(), dtype_option, quantize_option, progress_option,
        *([cache_option, no_cache_option] if cache else []),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _robustness_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Instruction lists for a robustness test: the task runs once per instruction."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--correct", multiple=True, metavar="TEXT", help="Robustness: a correct instruction "
                     "(repeat for paraphrases). With any of these the task runs once per instruction."),
        click.option("--implicit", multiple=True, metavar="TEXT", help="Robustness: an implicit instruction."),
        click.option("--incorrect", multiple=True, metavar="TEXT", help="Robustness: an incorrect instruction."),
        click.option("--instructions-file", metavar="FILE.json",
                     help='Robustness lists as JSON: {"correct": [...], "implicit": [...], "incorrect": [...]}.'),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _with_robustness(f: Callable[..., Any]) -> Callable[..., Any]:
    return _run_options(_robustness_options(f))


def _run(task_name: str, build: TaskBuilder, opts: dict[str, Any], data: list[str],
         settings: dict[str, Any], *, awareness: dict[str, Any] | None = None) -> None:
    """Check every option and read the data, then evaluate (or run the robustness lists) and write the result.

    The model is loaded only when the cache (the user cache unless --cache/--no-cache say otherwise) lacks a row
    the task embeds (:class:`~inbedder.cli.common.CachedModel`); ``latency`` always loads it and uses no cache.
    """
    from ..evaluation import make_result
    from ..evaluation.awareness import heatmap
    from ..loading import quiet_transformers
    from .common import user_errors, warnings_as_lines

    with user_errors():
        lists, run_settings, name = _check_run(task_name, opts, awareness)
        started = time.perf_counter()
        task = build()
        read_s = time.perf_counter() - started
        with warnings_as_lines(), quiet_transformers():
            model = _eval_model(name, opts)
            loaded = time.perf_counter()
            metrics, primary, extra, aware = _evaluate(task, model, run_settings, lists, awareness)
        timings = {"read_s": read_s, "load_s": loaded - started - read_s, "eval_s": time.perf_counter() - loaded}
        out = make_result(task_name, model, metrics, primary=primary, data=data,
                          settings=_result_settings(settings, task, model, lists, opts), timings=timings, **extra)
        if aware is not None and awareness and awareness.get("png"):
            heatmap(aware, awareness["png"], title=f"{model.name}: V-measure, summary {aware.summary:+.3f}")
        _emit(out, opts.get("output"))


def _check_run(task_name: str, opts: dict[str, Any], awareness: dict[str, Any] | None) -> tuple[Any, Any, str]:
    """Every option that can be checked before the data is read or a model loaded (output files, extras,
    robustness lists, settings, dtype, device, model name): the robustness lists (None without), the
    :class:`~inbedder.evaluation.EvalSettings` and the model name."""
    from ..errors import require
    from ..evaluation import EvalSettings
    from ..evaluation.common import EXTRA
    from ..evaluation.robustness import parse_instruction_lists, read_instruction_lists
    from ..loading import parse_device
    from .common import check_load_options

    check_target(opts.get("output"))
    check_target(awareness.get("png") if awareness else None)
    if awareness and awareness.get("png"):
        require("matplotlib", EXTRA)
    if task_name in NEEDS_SKLEARN:
        require("sklearn", EXTRA)
    lists = _instruction_lists(opts, read_instruction_lists, parse_instruction_lists)
    run_settings = EvalSettings(batch_size=opts["batch_size"], seed=opts["seed"], progress=opts["progress"])
    check_load_options(opts["dtype"], quantize=opts["quantize"])
    parse_device(opts["device"])
    return lists, run_settings, _model_name(opts)


def _eval_model(name: str, opts: dict[str, Any]) -> Any:
    """The model a task runs on: one loaded only when the cache lacks a row (with --cache/--no-cache), else
    (latency, which times the model itself) the loaded model."""
    from .common import CachedModel, cache_choice, load_model

    if "cache_path" in opts:
        return CachedModel(name, opts["device"], opts["dtype"], cache_choice(opts["cache_path"], opts["no_cache"]),
                           opts["quantize"])
    return load_model(name, opts["device"], opts["dtype"], quantize=opts["quantize"])


def _evaluate(task: Any, model: Any, run_settings: Any, lists: Any, awareness: dict[str, Any] | None
              ) -> tuple[dict[str, float], str, dict[str, Any], Any]:
    """Run the task: once per instruction of the robustness ``lists``, as an awareness matrix, or once. The
    metrics, the primary metric's name, the result's extra fields and the awareness outcome (None for others)."""
    from ..evaluation import robustness

    extra: dict[str, Any] = {}
    if lists is not None:
        outcome = robustness(task, model, lists, run_settings)
        metrics, extra["per_instruction"] = outcome.metrics(), outcome.per_instruction()
        return metrics, f"{next(iter(lists))}.mean", extra, None
    if awareness is not None:
        aware = task.run(model, run_settings, baseline=awareness["baseline"])
        metrics = aware.metrics()
        extra.update(matrix=aware.matrix, summary=aware.summary, instructions=aware.instructions,
                     ari_matrix=aware.ari)
        if aware.baseline is not None:
            extra["baseline"] = aware.baseline
        return metrics, task.primary, extra, aware
    return task.evaluate(model, settings=run_settings), task.primary, extra, None


def _result_settings(settings: dict[str, Any], task: Any, model: Any, lists: Any,
                     opts: dict[str, Any]) -> dict[str, Any]:
    """The settings a result file records: the task's, the robustness lists, whether a model was loaded (with a
    cache), and the run's batch size, seed, limit, dtype, --quantize (when given) and device."""
    from .common import CachedModel

    if lists is not None:
        settings = {**settings, "robustness": lists, "robustness_metric": task.primary}
    if isinstance(model, CachedModel):
        settings = {**settings, "model_loaded": model.loaded is not None}
    return {**settings, "batch_size": opts["batch_size"], "seed": opts["seed"], "limit": opts["limit"],
            "dtype": opts["dtype"] or "float32", **({"quantize": opts["quantize"]} if opts.get("quantize") else {}),
            "device": str(model.device)}


def _instruction_lists(opts: dict[str, Any], read: Callable[..., Any], parse: Callable[..., Any]) -> Any:
    given = {k: list(opts.get(k) or ()) for k in ("correct", "implicit", "incorrect")}
    path = opts.get("instructions_file")
    if path is None:
        return parse(given) if any(given.values()) else None
    if any(given.values()):
        raise InputError("give the robustness instructions with --instructions-file or with "
                         "--correct/--implicit/--incorrect, not both")
    return read(path)


def _model_name(opts: dict[str, Any]) -> str:
    from .common import need_model

    return need_model(opts.get("model"))  # an empty -m "" or INBEDDER_MODEL="" (the option has a default)


def _emit(result: dict[str, Any], output: str | None) -> None:
    from ..evaluation.results import write_result

    metrics = result["metrics"]
    primary = result["primary_metric"]
    value = metrics.get(primary)
    shown = "-" if value is None else f"{value:.4f}"
    if output in (None, "-"):
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        click.echo(f"{result['task']}: {primary} = {shown}", err=True)
    else:
        write_result(result, output)
        click.echo(f"{result['task']}: {primary} = {shown} -> {output}", err=True)


def _common(opts: dict[str, Any]) -> dict[str, Any]:
    return {"delimiter": opts["delimiter"], "limit": opts["limit"], "seed": opts["seed"]}


def _one_instruction(opts: dict[str, Any]) -> None:
    if opts.get("instruction") is not None and opts.get("instruction_column") is not None:
        raise click.ClickException("give --instruction or --instruction-column, not both")


def _command(name: str, help_text: str) -> Callable[[Callable[..., Any]], Any]:
    return eval_group.command(name, help=help_text, context_settings={"max_content_width": 110})


@click.group("eval", context_settings={"help_option_names": ["-h", "--help"]})
def eval_group() -> None:
    """Evaluate a model on local data; each command writes a result JSON (see `inbedder eval report`)."""


every_text = instruction_option("Instruction for every text (replaces a per-row one).")
instruction_column_option = click.option("--instruction-column", help="Column with a per-row instruction.")


@_command("triplet", "Triplets: accuracy of cos(anchor, positive) > cos(anchor, negative).\n\n"
                     "-i FILE: .jsonl/.json/.csv/.tsv with anchor, positive and negative columns.")
@_with_robustness
@every_text
@instruction_column_option
@click.option("--anchor-column", default="anchor", show_default=True)
@click.option("--positive-column", default="positive", show_default=True)
@click.option("--negative-column", default="negative", show_default=True)
def triplet(**opts: Any) -> None:
    from ..evaluation import load_triplets

    _one_instruction(opts)
    build = functools.partial(load_triplets, opts["input_path"], anchor_column=opts["anchor_column"],
                              positive_column=opts["positive_column"], negative_column=opts["negative_column"],
                              instruction_column=opts["instruction_column"], instruction=opts["instruction"],
                              **_common(opts))
    _run("triplet", build, opts, [opts["input_path"]], {"instruction": opts["instruction"]})


@_command("sts", "Instructed STS: Spearman (and Pearson) of the pairs' cosine against the gold score.\n\n"
                 "-i FILE: pairs with a score (defaults fit STS-B's sts-test.jsonl).")
@_with_robustness
@every_text
@instruction_column_option
@click.option("--text1-column", default="sentence1", show_default=True)
@click.option("--text2-column", default="sentence2", show_default=True)
@click.option("--score-column", default="score", show_default=True)
def sts(**opts: Any) -> None:
    from ..evaluation import load_sts

    _one_instruction(opts)
    build = functools.partial(load_sts, opts["input_path"], text1_column=opts["text1_column"],
                              text2_column=opts["text2_column"], score_column=opts["score_column"],
                              instruction_column=opts["instruction_column"], instruction=opts["instruction"],
                              **_common(opts))
    _run("sts", build, opts, [opts["input_path"]], {"instruction": opts["instruction"]})


@_command("clustering", "Instructed clustering: k-means with k = number of labels; V-measure and ARI.\n\n"
                        "-i FILE: a text and a label column.")
@_with_robustness
@every_text
@instruction_column_option
@text_column_option
@click.option("--label-column", default="label", show_default=True)
def clustering(**opts: Any) -> None:
    from ..evaluation import load_clustering

    _one_instruction(opts)
    build = functools.partial(load_clustering, opts["input_path"], text_column=opts["text_column"],
                              label_column=opts["label_column"], instruction_column=opts["instruction_column"],
                              instruction=opts["instruction"], **_common(opts))
    _run("clustering", build, opts, [opts["input_path"]], {"instruction": opts["instruction"]})


@_command("classification", "Classification probes: k-NN (cosine) and logistic regression; accuracy, macro-F1."
                            "\n\n-i FILE: training rows (text, label); --test FILE, or a seeded split of -i.")
@_with_robustness
@every_text
@click.option("--test", "test_path", metavar="FILE", help="Test rows [default: split -i with --test-size].")
@click.option("--test-size", type=float, default=0.2, show_default=True, help="Share of -i held out.")
@text_column_option
@click.option("--label-column", default="label", show_default=True)
def classification(**opts: Any) -> None:
    from ..evaluation import load_classification

    build = functools.partial(load_classification, opts["input_path"], test_path=opts["test_path"],
                              text_column=opts["text_column"], label_column=opts["label_column"],
                              instruction=opts["instruction"], test_size=opts["test_size"], **_common(opts))
    data = [opts["input_path"]] + ([opts["test_path"]] if opts["test_path"] else [])
    _run("classification", build, opts, data, {"instruction": opts["instruction"], "test_size": opts["test_size"]})


@_command("retrieval", "Retrieval: nDCG@10, MRR@10, recall@100 by cosine ranking.\n\n"
                       "-i FOLDER: BEIR layout (corpus.jsonl, queries.jsonl, qrels/<split>.tsv); --limit "
                       "keeps that many queries.")
@_with_robustness
@click.option("--split", default="test", show_default=True, help="The qrels file: qrels/<split>.tsv.")
@click.option("--query-instruction", help="Instruction for the queries.")
@click.option("--doc-instruction", help="Instruction for the documents.")
def retrieval(**opts: Any) -> None:
    from ..evaluation import load_beir

    build = functools.partial(load_beir, opts["input_path"], split=opts["split"],
                              query_instruction=opts["query_instruction"], doc_instruction=opts["doc_instruction"],
                              limit=opts["limit"], seed=opts["seed"])
    _run("retrieval", build, opts, [opts["input_path"]],
         {"split": opts["split"], "query_instruction": opts["query_instruction"],
          "doc_instruction": opts["doc_instruction"]})


@_command("text", "Text evaluation (Billboard style): Pearson of each candidate's best cosine to its references "
                  "against human scores.\n\n-i FILE: candidate, references (a text or a JSON list), score.")
@_with_robustness
@every_text
@instruction_column_option
@click.option("--candidate-column", default="candidate", show_default=True)
@click.option("--reference-column", "reference_columns", multiple=True, default=("references",), show_default=True,
              help="Column(s) with references; repeat for several.")
@click.option("--score-column", default="score", show_default=True)
def text(**opts: Any) -> None:
    from ..evaluation import load_text_evaluation

    _one_instruction(opts)
    build = functools.partial(load_text_evaluation, opts["input_path"], candidate_column=opts["candidate_column"],
                              reference_columns=opts["reference_columns"], score_column=opts["score_column"],
                              instruction_column=opts["instruction_column"], instruction=opts["instruction"],
                              **_common(opts))
    _run("text_evaluation", build, opts, [opts["input_path"]], {"instruction": opts["instruction"]})


@_command("awareness", "Instruction-awareness matrix: V-measure of every (instruction axis, label axis) pair; "
                       "summary = mean diagonal - mean off-diagonal.\n\n-i FILE: a text column and two or more "
                       "label columns, each named with --axis COLUMN=INSTRUCTION.")
@_run_options
@click.option("--axis", "axes", multiple=True, metavar="COLUMN=INSTRUCTION", required=True,
              help='A label column and its instruction, e.g. --axis intent="What does the user want?" (repeat).')
@text_column_option
@click.option("--png", metavar="FILE.png", help="Also draw the matrix as a heatmap.")
@click.option("--baseline/--no-baseline", default=False, show_default=True,
              help="Add a row with no instruction (not part of the summary).")
def awareness(**opts: Any) -> None:
    from ..evaluation import load_awareness
    from ..io.table import parse_assignments

    try:
        axes = parse_assignments(opts["axes"], "--axis")
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    build = functools.partial(load_awareness, opts["input_path"], axes, text_column=opts["text_column"],
                              **_common(opts))
    _run("awareness", build, opts, [opts["input_path"]], {"axes": axes, "text_column": opts["text_column"]},
         awareness={"png": opts["png"], "baseline": opts["baseline"]})


@_command("latency", "Latency: texts/s, tokens/s, per-batch p50/p95, peak memory (the model always runs: no "
                     "cache).\n\n-i FILE: .txt (one text a line) or a table with --text-column.")
@functools.partial(_run_options, cache=False)
@every_text
@text_column_option
@click.option("--warmup", type=int, default=1, show_default=True, help="Untimed batches first.")
def latency(**opts: Any) -> None:
    from ..evaluation.latency import load_latency

    build = functools.partial(load_latency, opts["input_path"], text_column=opts["text_column"],
                              instruction=opts["instruction"], warmup=opts["warmup"], **_common(opts))
    _run("latency", build, opts, [opts["input_path"]], {"instruction": opts["instruction"],
                                                        "warmup": opts["warmup"]})


@eval_group.command("report")
@click.argument("files", nargs=-1, required=True, metavar="RESULT.json...")
@output_option("Write the table here [default: stdout].", "FILE.md")
def report_command(files: tuple[str, ...], output: str | None) -> None:
    """A markdown table of result files: task, model, data, primary metric, the other metrics, date."""
    from ..evaluation import read_result, report
    from .common import user_errors

    with user_errors():
        table = report(read_result(f) for f in files)
        if output in (None, "-"):
            sys.stdout.write(table)
        else:
            check_target(output)
            Path(output).write_text(table, encoding="utf-8")
