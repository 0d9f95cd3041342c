"""The instruction-awareness matrix: does the instruction decide which labels the vectors group by?

A dataset has two or more label columns (axes), and one instruction per axis. The texts are embedded
under each instruction and clustered with k = the number of labels of each axis; the V-measure of every
(instruction axis, label axis) pair makes the matrix. An instruction-aware model scores high on the
diagonal (the intent instruction groups by intent) and low off it.

``summary`` = mean diagonal − mean off-diagonal. It equals the mean over label axes of (score under the
matching instruction − mean score under the other instructions), so each label axis is compared only with
itself (same labels, same k).

>>> awareness_summary({"intent": {"intent": 0.9, "domain": 0.3}, "domain": {"intent": 0.5, "domain": 0.7}})
0.4
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import InputError, require
from ..io.table import read_table
from .clustering import N_INIT, clustering_scores, kmeans
from .common import EXTRA, EvalSettings, TextEncoder, embed, embed_each, same_length

Matrix = dict[str, dict[str, float]]
BASELINE = "(no instruction)"


def awareness_summary(matrix: Mapping[str, Mapping[str, float]]) -> float:
    """Mean of the diagonal minus mean of the off-diagonal cells (rows: instruction axes; columns: label axes)."""
    axes = list(matrix)
    diagonal = [matrix[a][a] for a in axes]
    off = [matrix[a][b] for a in axes for b in axes if a != b]
    if not off:
        raise InputError("awareness needs at least two axes")
    return round(float(np.mean(diagonal) - np.mean(off)), 12)


@dataclass(frozen=True)
class AwarenessResult:
    """``matrix[instruction axis][label axis]`` = V-measure; ``baseline[label axis]`` without an instruction."""

    matrix: Matrix
    instructions: dict[str, str]
    baseline: dict[str, float] | None = None
    ari: Matrix = field(default_factory=dict)

    @property
    def summary(self) -> float:
        return awareness_summary(self.matrix)

    def metrics(self) -> dict[str, float]:
        """``summary`` (primary), the diagonal and off-diagonal means, and the gain of each label axis."""
        axes = list(self.matrix)
        out = {"summary": self.summary,
               "diagonal_mean": float(np.mean([self.matrix[a][a] for a in axes])),
               "off_diagonal_mean": float(np.mean([self.matrix[a][b] for a in axes for b in axes if a != b]))}
        for b in axes:
            others = [self.matrix[a][b] for a in axes if a != b]
            out[f"gain.{b}"] = float(self.matrix[b][b] - np.mean(others))
        return out


@dataclass(frozen=True)
class AwarenessTask:
    """Texts, their labels on each axis (``{axis: labels}``), and the instruction of each axis."""

    texts: Sequence[str]
    labels: Mapping[str, Sequence[str]]
    instructions: Mapping[str, str]
    n_init: int = N_INIT

    name: ClassVar[str] = "awareness"
    primary: ClassVar[str] = "summary"

    def __post_init__(self) -> None:
        if len(self.instructions) < 2:
            raise InputError(f"awareness needs two or more axes (label column=instruction); got "
                             f"{len(self.instructions)}")
        missing = [a for a in self.instructions if a not in self.labels]
        if missing:
            raise InputError(f"awareness: no labels for the axes {missing}; label axes: {list(self.labels)}")
        same_length("awareness task", texts=self.texts, **{a: self.labels[a] for a in self.instructions})
        for axis in self.instructions:
            if len(set(self.labels[axis])) < 2:
                raise InputError(f"awareness: the label column {axis!r} has a single label; it needs two or more")

    def run(self, model: TextEncoder, settings: EvalSettings | None = None, *,
            baseline: bool = False) -> AwarenessResult:
        """Embed under each axis' instruction (and, with ``baseline``, with none) and fill the matrix."""
        settings = settings or EvalSettings()
        axes = list(self.instructions)
        ks = {b: len(set(self.labels[b])) for b in axes}
        embedded = dict(zip(axes, embed_each(model, self.texts, list(self.instructions.values()), settings),
                            strict=True))
        if baseline:
            embedded[BASELINE] = embed(model, self.texts, None, settings)
        matrix: Matrix = {}
        ari: Matrix = {}
        for a, vectors in embedded.items():
            matrix[a], ari[a] = {}, {}
            for b in axes:
                scores = clustering_scores(self.labels[b], kmeans(vectors, ks[b], settings.seed, self.n_init))
                matrix[a][b], ari[a][b] = scores["v_measure"], scores["ari"]
        base = matrix.pop(BASELINE, None)
        ari.pop(BASELINE, None)
        return AwarenessResult(matrix, dict(self.instructions), base, ari)

    def scorer(self, settings: EvalSettings | None = None, **options: Any) -> Callable[[TextEncoder], float]:
        """``score(model)``: the summary of ``model`` with these ``encode`` options (a readout, a reencoder), for a
        trainer's periodic evaluation (``train_answer(..., evaluate=task.scorer(reencoder="minilm"))``)."""
        return lambda model: self.run(_WithOptions(model, options), settings).summary

    def evaluate(self, model: TextEncoder, *, instruction: str | None = None,
                 settings: EvalSettings | None = None) -> dict[str, float]:
        """The metrics of :meth:`run` (``summary`` first); each axis brings its own instruction."""
        if instruction is not None:
            raise InputError("awareness takes one instruction per axis, not a single instruction")
        return self.run(model, settings).metrics()


class _WithOptions:
    """A model whose ``encode`` always gets ``options`` too."""

    def __init__(self, model: TextEncoder, options: dict[str, Any]) -> None:
        self.model, self.options = model, options
        self.takes_instructions = getattr(model, "takes_instructions", False)

    def encode(self, texts: Any, instruction: Any = None, **options: Any) -> Any:
        return self.model.encode(texts, instruction, **{**options, **self.options})


def load_awareness(path: str | os.PathLike[str], axes: Mapping[str, str], *, text_column: str = "text",
                   delimiter: str | None = None, limit: int | None = None, seed: int = 0) -> AwarenessTask:
    """An :class:`AwarenessTask` from a file; ``axes`` maps each label column to its instruction."""
    table = read_table(path, delimiter=delimiter)
    table.require(text_column, *axes)
    table = table.sample(limit, seed)
    return AwarenessTask(table.strings(text_column), {a: table.labels(a) for a in axes}, dict(axes))


def heatmap(result: AwarenessResult, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Save the matrix as a PNG heatmap (rows: instruction axes, plus the baseline; columns: label axes)."""
    require("matplotlib", EXTRA)
    from matplotlib.figure import Figure

    axes = list(result.matrix)
    rows = {f"instruction: {a}": result.matrix[a] for a in axes}
    if result.baseline is not None:
        rows[BASELINE] = result.baseline
    values = np.array([[row[b] for b in axes] for row in rows.values()])
    fig = Figure(figsize=(2.4 + 1.5 * len(axes), 1.4 + 0.6 * len(rows)), dpi=120)
    ax = fig.subplots()
    image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=max(1e-9, float(values.max())), aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            light = values[i, j] < 0.6 * values.max()
            ax.text(j, i, f"{values[i, j]:.3f}", ha="center", va="center", color="white" if light else "black")
    ax.set_xticks(range(len(axes)), [f"labels: {b}" for b in axes])
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_title(title or f"V-measure; summary {result.summary:+.3f}", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    return out
