"""Instructed clustering: k-means (k = the number of labels) on unit vectors, scored by V-measure and ARI.

>>> clustering_scores(["a", "a", "b", "b"], [1, 1, 0, 0])
{'v_measure': 1.0, 'ari': 1.0}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..io.table import read_table
from .common import EvalSettings, TextEncoder, choose, embed, same_length, sklearn, unit

N_INIT = 5  # k-means restarts (the best inertia wins)


def kmeans(vectors: np.ndarray, k: int, seed: int = 0, n_init: int = N_INIT) -> np.ndarray:
    """Cluster ids from scikit-learn's k-means on the unit-length vectors."""
    sklearn()
    from sklearn.cluster import KMeans

    k = min(k, len(vectors))
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(unit(vectors))


def clustering_scores(labels: Sequence[Any] | np.ndarray, clusters: Sequence[Any] | np.ndarray) -> dict[str, float]:
    """V-measure and adjusted Rand index of a clustering against the true labels."""
    sklearn()
    from sklearn.metrics import adjusted_rand_score, v_measure_score

    return {"v_measure": float(v_measure_score(labels, clusters)), "ari": float(adjusted_rand_score(labels, clusters))}


def v_measure(labels: Sequence[Any] | np.ndarray, clusters: Sequence[Any] | np.ndarray) -> float:
    """V-measure of a clustering against the true labels (1.0: each cluster is one label and each label one cluster).

    >>> v_measure(["a", "a", "b", "b"], [0, 0, 1, 1]), round(v_measure(["a", "a", "b", "b"], [0, 0, 0, 0]), 3)
    (1.0, 0.0)
    """
    sklearn()
    from sklearn.metrics import v_measure_score

    return float(v_measure_score(labels, clusters))


@dataclass(frozen=True)
class ClusteringTask:
    """Texts with a label each, and one instruction or one per text."""

    texts: Sequence[str]
    labels: Sequence[str]
    instructions: Sequence[str | None] | None = None
    instruction: str | None = None
    n_init: int = N_INIT

    name: ClassVar[str] = "clustering"
    primary: ClassVar[str] = "v_measure"

    def __post_init__(self) -> None:
        same_length("clustering task", texts=self.texts, labels=self.labels, instructions=self.instructions)

    def evaluate(self, model: TextEncoder, *, instruction: str | None = None,
                 settings: EvalSettings | None = None) -> dict[str, float]:
        """``v_measure`` (primary) and ``ari``; k is the number of distinct labels."""
        settings = settings or EvalSettings()
        ins = choose(instruction, self.instructions, self.instruction, len(self.texts))
        vectors = embed(model, self.texts, ins, settings)
        k = len(set(self.labels))
        clusters = kmeans(vectors, k, settings.seed, self.n_init)
        return {**clustering_scores(self.labels, clusters), "k": float(k), "n": float(len(self.texts))}


def load_clustering(path: str | os.PathLike[str], *, text_column: str = "text", label_column: str = "label",
                    instruction_column: str | None = None, instruction: str | None = None,
                    delimiter: str | None = None, limit: int | None = None, seed: int = 0) -> ClusteringTask:
    """A :class:`ClusteringTask` from a file with a text and a label column."""
    table = read_table(path, delimiter=delimiter)
    table.require(text_column, label_column, instruction_column)
    table = table.sample(limit, seed)
    return ClusteringTask(table.strings(text_column), table.labels(label_column),
                          table.optional_strings(instruction_column), instruction)
