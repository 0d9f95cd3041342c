"""Training data from labelled files: each label column (an axis) becomes questions whose answers are the labels.

* QA records ``{input, instruction, answer, axis}`` for answer training: the instruction is one of the axis'
  question phrasings (chosen with the seed), the answer the label as a short phrase;
* MEDI records ``{query, pos, neg, task_id}`` for contrastive training: ``pos`` shares the query's label on the
  axis, ``neg`` has another label and, where the data has other axes, the same labels on them (a hard negative).

Texts are deduplicated (case and spacing ignored; the first row wins and the rest are counted), each axis keeps at
most ``max_per_class`` texts per label (chosen with the seed), and whole texts go to train or dev, never both.

>>> humanize("card_arrival"), humanize("Sci/Tech"), humanize("  anecdotes/miscellaneous ")
('card arrival', 'Sci/Tech', 'anecdotes/miscellaneous')
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, did_you_mean
from ..io.table import Table, read_table


def humanize(label: str) -> str:
    """A label as a short natural answer: underscores become spaces, spacing is tidied."""
    return " ".join(re.sub(r"_+", " ", label).split())


@dataclass(frozen=True)
class LabelSpec:
    """Which columns to read and how to turn them into questions and answers."""

    labels: tuple[str, ...]
    questions: dict[str, tuple[str, ...]]
    text_column: str = "text"
    label_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    max_per_class: int | None = 500
    dev_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.labels:
            raise InputError("give at least one label column (--label COLUMN)")
        for column in self.labels:
            if not self.questions.get(column):
                raise InputError(f"no question for the label column {column!r}; give one or more with "
                                 f"--question {column}=\"...?\" (or a questions JSON file)")
        unused = [c for c in self.questions if c not in self.labels]
        if unused:
            raise InputError(f"questions given for {unused}, which are not label columns ({list(self.labels)})."
                             f"{did_you_mean(unused[0], self.labels)}")
        if self.max_per_class is not None and self.max_per_class < 1:
            raise InputError(f"max_per_class must be >= 1 (or None for no cap); got {self.max_per_class}")
        if not 0 <= self.dev_fraction < 1:
            raise InputError(f"dev_fraction must be in [0, 1); got {self.dev_fraction}")


@dataclass
class Row:
    text: str
    labels: dict[str, str]  # axis → answer (the rendered label)


@dataclass
class Built:
    """Records of the train and dev splits, and what happened on the way (counts, for the user to check)."""

    train: list[dict[str, Any]]
    dev: list[dict[str, Any]]
    stats: dict[str, Any]


def read_label_map(path: str | os.PathLike[str]) -> dict[str, str]:
    """Label ids → names: a JSON object, a JSON list (id = position) or a text file (one name a line, from 0)."""
    text = Path(path).read_text(encoding="utf-8")
    if Path(path).suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc.msg})") from None
        if isinstance(data, list):
            data = dict(enumerate(data))
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise InputError(f"{path}: expected a JSON object {{id: name}} or a list of names")
        return {str(k): v for k, v in data.items()}
    return {str(i): line.strip() for i, line in enumerate(text.splitlines()) if line.strip()}


def read_questions(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """``{"column": ["question", ...]}`` (a single string is one question)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object {{column: [questions]}}")
    out = {}
    for column, value in data.items():
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(q, str) and q.strip() for q in items):
            raise InputError(f"{path}: column {column!r}: expected a non-empty list of questions")
        out[str(column)] = [q.strip() for q in items]
    return out


def parse_questions(items: Sequence[str]) -> dict[str, list[str]]:
    """``["intent=What does the user want?", "intent=What is asked for?"]`` → one column, two phrasings."""
    out: dict[str, list[str]] = defaultdict(list)
    for item in items:
        column, sep, question = item.partition("=")
        if not sep or not column.strip() or not question.strip():
            raise InputError(f"--question {item!r} is not COLUMN=QUESTION (e.g. intent=\"What does the user want?\")")
        out[column.strip()].append(question.strip())
    return dict(out)


def gather_rows(tables: Sequence[Table], spec: LabelSpec) -> tuple[list[Row], dict[str, Any]]:
    """Rows with their rendered labels, deduplicated; each file needs the text column and one label column."""
    rows: list[Row] = []
    seen: dict[str, int] = {}
    stats: dict[str, Any] = {"files": {}, "duplicates": 0, "conflicts": 0}
    for table in tables:
        table.require(spec.text_column)
        present = [c for c in spec.labels if c in table.columns]
        if not present:
            raise InputError(f"{table.path}: none of the label columns {list(spec.labels)} is in the file; columns: "
                             f"{', '.join(map(repr, table.columns))}")
        texts = table.strings(spec.text_column)
        values = {c: table.labels(c) for c in present}
        for i, text in enumerate(texts):
            labels = {}
            for c in present:
                raw = values[c][i]
                mapping = spec.label_maps.get(c)
                if mapping is not None:
                    if raw not in mapping:
                        raise InputError(f"{table.where(i, c)}: label {raw!r} is not in the label map of {c!r} "
                                         f"(ids: {', '.join(list(mapping)[:12])}"
                                         f"{', ...' if len(mapping) > 12 else ''})")
                    raw = mapping[raw]
                labels[c] = humanize(raw)
            key = " ".join(text.lower().split())
            if key in seen:
                stats["duplicates" if rows[seen[key]].labels == labels else "conflicts"] += 1
                continue
            seen[key] = len(rows)
            rows.append(Row(text, labels))
        stats["files"][table.path] = len(texts)
    stats["rows"] = len(rows)
    return rows, stats


def select(rows: list[Row], spec: LabelSpec, rng: random.Random) -> dict[str, set[int]]:
    """Per axis, the rows kept: at most ``max_per_class`` per label."""
    kept: dict[str, set[int]] = {}
    for column in spec.labels:
        by_label: dict[str, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            if column in row.labels:
                by_label[row.labels[column]].append(i)
        chosen: set[int] = set()
        for label in sorted(by_label):
            members = by_label[label]
            rng.shuffle(members)
            chosen.update(members[:spec.max_per_class] if spec.max_per_class else members)
        kept[column] = chosen
    return kept


def qa_records(rows: list[Row], ids: list[int], kept: dict[str, set[int]], spec: LabelSpec, rng: random.Random
               ) -> list[dict[str, Any]]:
    out = []
    for i in ids:
        for column in spec.labels:
            if i in kept[column]:
                out.append({"input": rows[i].text, "instruction": rng.choice(spec.questions[column]),
                            "answer": rows[i].labels[column], "axis": column})
    return out


def medi_records(rows: list[Row], ids: list[int], kept: dict[str, set[int]], spec: LabelSpec, rng: random.Random,
                 stats: Counter[str]) -> list[dict[str, Any]]:
    """Query, a positive with the same label, a negative with another label (sharing the other axes' labels when
    such a row exists in the split); ``task_id`` is the axis' position."""
    out = []
    for task, column in enumerate(spec.labels):
        members = [i for i in ids if i in kept[column]]
        by_label: dict[str, list[int]] = defaultdict(list)
        by_others: dict[tuple[tuple[str, str], ...], list[int]] = defaultdict(list)
        for i in members:
            by_label[rows[i].labels[column]].append(i)
            by_others[_others(rows[i], column)].append(i)
        for i in members:
            label = rows[i].labels[column]
            positives = by_label[label]
            if len(positives) < 2 or len(by_label) < 2:
                stats["no_positive" if len(positives) < 2 else "no_negative"] += 1
                continue
            pos = i
            while pos == i:
                pos = rng.choice(positives)
            neg = _hard_negative(rows, column, label, by_others.get(_others(rows[i], column), []), rng)
            if neg is None:
                other = rng.choice([lab for lab in sorted(by_label) if lab != label])
                neg = rng.choice(by_label[other])
            else:
                stats["hard_negatives"] += 1
            q = rng.choice(spec.questions[column])
            out.append({"query": [q, rows[i].text], "pos": [q, rows[pos].text], "neg": [q, rows[neg].text],
                        "task_id": task})
    return out


def _others(row: Row, column: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((c, v) for c, v in row.labels.items() if c != column))


def _hard_negative(rows: list[Row], column: str, label: str, bucket: list[int], rng: random.Random) -> int | None:
    if not bucket or not _others(rows[bucket[0]], column):
        return None
    for _ in range(8):
        j = rng.choice(bucket)
        if rows[j].labels[column] != label:
            return j
    candidates = [j for j in bucket if rows[j].labels[column] != label]
    return rng.choice(candidates) if candidates else None


def from_labels(paths: Sequence[str | os.PathLike[str]], spec: LabelSpec, fmt: str = "qa",
                delimiter: str | None = None) -> Built:
    """Read labelled files and build QA (``fmt="qa"``) or MEDI (``fmt="medi"``) records, split into train and dev."""
    if fmt not in ("qa", "medi"):
        raise InputError(f"format {fmt!r} is not valid; choose 'qa' or 'medi'")
    if not paths:
        raise InputError("give one or more labelled files")
    rows, stats = gather_rows([read_table(p, delimiter=delimiter) for p in paths], spec)
    rng = random.Random(spec.seed)
    kept = select(rows, spec, rng)
    order = list(range(len(rows)))
    random.Random(f"{spec.seed}:split").shuffle(order)  # the split depends on the texts and the seed only
    n_dev = round(len(order) * spec.dev_fraction)
    splits = {"dev": sorted(order[:n_dev]), "train": sorted(order[n_dev:])}
    counts: Counter[str] = Counter()
    built = {}
    for name, ids in splits.items():
        records = (qa_records(rows, ids, kept, spec, rng) if fmt == "qa"
                   else medi_records(rows, ids, kept, spec, rng, counts))
        rng.shuffle(records)
        built[name] = records
    stats["axes"] = {c: dict(sorted(Counter(rows[i].labels[c] for i in kept[c]).items())) for c in spec.labels}
    stats.update({"format": fmt, "train": len(built["train"]), "dev": len(built["dev"]), **counts})
    return Built(built["train"], built["dev"], stats)
