"""``inbedder data from-labels``: training data (QA or MEDI records) from labelled files; a thin shell over
:mod:`inbedder.training.data`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import output_option, seed_option


@click.group("data")
def data_group() -> None:
    """Build training data."""


@data_group.command("from-labels")
@click.argument("files", nargs=-1, required=True)
@click.option("--text-column", default="text", show_default=True, help="The text column of every file.")
@click.option("-l", "--label", "labels", multiple=True, required=True, metavar="COLUMN",
              help="A label column (an axis); repeat for several.")
@click.option("-q", "--question", "questions", multiple=True, metavar='COLUMN="QUESTION"',
              help="A question whose answer is COLUMN's label; repeat for several phrasings (one is picked per "
                   "record with the seed).")
@click.option("--questions", "questions_file", metavar="FILE.json",
              help='Questions as JSON: {"column": ["question", ...]} (added to -q).')
@click.option("--label-map", "label_maps", multiple=True, metavar="COLUMN=FILE",
              help="Label ids → names for COLUMN: a JSON object or list, or a text file with one name a line "
                   "(ids from 0).")
@click.option("--format", "fmt", type=click.Choice(["qa", "medi"]), default="qa", show_default=True,
              help="qa: {input, instruction, answer} for `train answer`; medi: {query, pos, neg, task_id} for "
                   "`train instructor`.")
@click.option("--max-per-class", type=int, default=500, show_default=True,
              help="At most this many texts per label on each axis (0: no cap).")
@click.option("--dev-fraction", type=float, default=0.1, show_default=True, help="Share of texts for the dev split.")
@seed_option("Seed of sampling, phrasings and the split.")
@click.option("--delimiter", help="Read other text files as delimited with a header (e.g. ';').")
@output_option("Write DIR/train.jsonl, dev.jsonl, stats.json.", "DIR", required=True)
def from_labels(files: tuple[str, ...], text_column: str, labels: tuple[str, ...], questions: tuple[str, ...],
                questions_file: str | None, label_maps: tuple[str, ...], fmt: str, max_per_class: int,
                dev_fraction: float, seed: int, delimiter: str | None, output: str) -> None:
    """Turn labelled FILES (csv, tsv, jsonl, json, parquet) into QA or MEDI training records."""
    from ..io import write_rows
    from ..io.table import parse_assignments
    from ..training.data import LabelSpec, from_labels, parse_questions, read_label_map, read_questions
    from .common import user_errors

    with user_errors():
        asked = parse_questions(questions)
        if questions_file:
            for column, items in read_questions(questions_file).items():
                asked.setdefault(column, []).extend(items)
        maps = {c: read_label_map(p) for c, p in parse_assignments(label_maps, "--label-map").items()}
        spec = LabelSpec(tuple(labels), {c: tuple(q) for c, q in asked.items()}, text_column, maps,
                         max_per_class or None, dev_fraction, seed)
        built = from_labels(list(files), spec, fmt, delimiter)
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        write_rows(built.train, out / "train.jsonl", "jsonl")
        write_rows(built.dev, out / "dev.jsonl", "jsonl")
        (out / "stats.json").write_text(json.dumps(built.stats, indent=2, ensure_ascii=False), encoding="utf-8")
    stats = built.stats
    click.echo(f"{stats['rows']} texts ({stats['duplicates']} duplicates and {stats['conflicts']} conflicting "
               f"duplicates left out); {stats['train']} train and {stats['dev']} dev {fmt} records in {output}/",
               err=True)


