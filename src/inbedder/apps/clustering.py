"""Personalized clustering: embed a corpus under an instruction, cluster it, and explain each cluster.

Each cluster gets its size, the texts nearest its centre and a short name that tells it from the others (see
:mod:`inbedder.apps.naming`): for answer families (models that generate an answer per text) its most distinctive
answer, otherwise its most distinctive words by c-TF-IDF; names are always unique. Answer families also show the
share of each answer in the cluster. With gold ``labels`` each cluster counts the gold labels of its texts
(``gold_labels``), and ``metrics`` (V-measure, ARI, NMI) are measured against them (``label_name`` says which
column they are).
Needs scikit-learn (``pip install "inbedder[cluster]"``).

>>> result = cluster(texts, model, instruction="What is the topic?", k=3)     # doctest: +SKIP
>>> result.labels[:5]                                                          # doctest: +SKIP
array([2, 0, 0, 1, 2])
>>> print(result.table())                                                      # doctest: +SKIP
>>> cluster(texts, model, instruction="...", labels=gold, label_name="topic").metrics["v_measure"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from ..errors import InputError, InputTypeError, check_ints, did_you_mean, require
from .naming import EMPTY_ANSWER, answer_names, ctfidf_keywords, frequent_answers, normalize_answer, shares, word_names

DEFAULT_AUTO_K = range(2, 21)
SILHOUETTE_SAMPLE = 3000  # silhouette on at most this many points (it is quadratic in the number of points)
PRIMARY_METRIC = "v_measure"


class Method(str, Enum):
    KMEANS = "kmeans"
    AGGLOMERATIVE = "agglomerative"


@dataclass(frozen=True)
class ClusterSettings:
    """How to cluster: a fixed ``k``, or the k in ``auto_k`` with the best silhouette."""

    method: Method = Method.KMEANS
    k: int | None = None
    auto_k: tuple[int, ...] = tuple(DEFAULT_AUTO_K)
    seed: int = 0
    n_examples: int = 5
    n_words: int = 5

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "method", Method(self.method))
        except ValueError:
            valid = [m.value for m in Method]
            raise InputError(f"method={self.method!r} is not valid; choose one of {valid}."
                             f"{did_you_mean(str(self.method), valid)}") from None
        if self.k is not None and (not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1):
            raise InputError(f"k must be a positive int; got {self.k!r}")
        ks = tuple(self.auto_k)
        if not ks or any(not isinstance(k, int) or isinstance(k, bool) or k < 2 for k in ks):
            raise InputError(f"auto_k must be a non-empty range of ints >= 2 (e.g. range(2, 21)); got {self.auto_k!r}")
        object.__setattr__(self, "auto_k", ks)
        check_ints(self, ("n_examples", "n_words"), 0)


@dataclass(frozen=True)
class Cluster:
    """One cluster: its id, size, a unique short name, why (keywords or answers), the texts nearest its centre
    and, with gold labels, how many of its texts carry each label."""

    id: int
    size: int
    name: str
    explanation: str
    keywords: tuple[str, ...] = ()
    answers: tuple[tuple[str, int], ...] = ()  # (answer, count), most frequent first (answer families)
    examples: tuple[str, ...] = ()
    gold_labels: tuple[tuple[str, int], ...] = ()  # (gold label, count), most frequent first (with labels)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "size": self.size, "name": self.name, "explanation": self.explanation,
                "keywords": list(self.keywords),
                "answers": [{"answer": a, "count": n, "share": n / self.size} for a, n in self.answers],
                "gold_labels": [{"label": a, "count": n, "share": n / self.size} for a, n in self.gold_labels],
                "examples": list(self.examples)}

    def answer_shares(self, n: int = 3) -> str:
        """``'food' 81%, 'service' 9%`` (the ``n`` most frequent answers); empty without answers."""
        return shares(self.answers, self.size, n)

    def gold_label_shares(self, n: int = 3) -> str:
        """``food 30 (60%), service 5 (10%)`` (the ``n`` most frequent gold labels); empty without labels."""
        return shares(self.gold_labels, self.size, n, quote=False, counts=True)


@dataclass
class ClusterResult:
    """Cluster ids per row (``labels``), one :class:`Cluster` per id (largest first), scores and metrics."""

    labels: np.ndarray
    clusters: list[Cluster]
    texts: list[str]
    vectors: np.ndarray  # unit-length vectors that were clustered
    method: str
    k: int
    silhouette: float
    k_scores: dict[int, float] = field(default_factory=dict)  # silhouette per k tried (auto-k)
    instruction: Any = None
    model: str = ""
    answers: list[str] | None = None
    metrics: dict[str, float] | None = None  # against the gold labels named label_name; primary: v_measure
    label_name: str | None = None  # what the gold labels are (a column name), with metrics

    def rows(self, ids: Sequence[Any] | None = None) -> Iterator[dict[str, Any]]:
        """One dict per text: index, (id,) text, cluster id and cluster name."""
        for i, (text, label) in enumerate(zip(self.texts, self.labels.tolist(), strict=True)):
            row: dict[str, Any] = {"index": i}
            if ids is not None and ids[i] is not None:
                row["id"] = ids[i]
            row.update(text=text, cluster=label, cluster_name=self.clusters[label].name)
            if self.answers is not None:
                row["answer"] = self.answers[i]
            yield row

    def summary(self) -> dict[str, Any]:
        """Everything but the per-row data, JSON-ready."""
        out = {"model": self.model, "instruction": self.instruction, "method": self.method, "k": self.k,
               "n_texts": len(self.texts), "silhouette": self.silhouette,
               "k_scores": {str(k): v for k, v in self.k_scores.items()}, "metrics": self.metrics,
               "metrics_against": self.label_name if self.metrics is not None else None}
        if self.answers is not None:
            overall = Counter(normalize_answer(a) for a in self.answers).most_common(10)
            out["answers"] = [{"answer": a or EMPTY_ANSWER, "count": n, "share": n / len(self.texts)}
                              for a, n in overall]
        out["clusters"] = [c.as_dict() for c in self.clusters]
        return out

    def table(self, width: int = 100) -> str:
        """A plain-text table: id, size, name and the nearest text; then, indented, the answer shares (answer
        families) and the gold labels (with labels); last the scores, the metrics named by their labels."""
        lines = [f"{'id':>3}  {'size':>5}  {'name':<32}  nearest text"]
        for c in self.clusters:
            nearest = c.examples[0] if c.examples else ""
            line = f"{c.id:>3}  {c.size:>5}  {_clip(c.name, 32):<32}  "
            lines.append(line + _clip(nearest, max(10, width - len(line))))
            for what, text in (("answers", c.answer_shares()), (self.label_name or "labels", c.gold_label_shares())):
                if text:
                    lines.append(" " * 12 + _clip(f"{what}: {text}", width - 12))
        scores = [f"k={self.k}", f"silhouette={self.silhouette:.3f}"]
        if self.metrics:
            scores.append(f"| vs {self.label_name or 'labels'}:")
            scores += [f"{name}={value:.3f}" for name, value in self.metrics.items()]
        lines.append(" ".join(scores))
        return "\n".join(lines)


def cluster(texts: Sequence[str], model: Any, instruction: Any = None, *, k: int | None = None,
            auto_k: Sequence[int] | None = None, method: str | Method = "kmeans", seed: int = 0,
            labels: Sequence[Any] | None = None, label_name: str | None = None, n_examples: int = 5,
            n_words: int = 5, batch_size: int = 32, cache: Any = None,
            show_progress_bar: bool | None = None) -> ClusterResult:
    """Embed ``texts`` with ``model`` under ``instruction`` and cluster them.

    ``k`` fixes the number of clusters; without it, the k in ``auto_k`` (default 2..20) with the best
    silhouette is used. ``labels`` (one per text) adds V-measure, ARI and NMI to ``result.metrics`` and the gold
    labels of each cluster to its ``gold_labels``; ``label_name`` (e.g. the column they come from) names them in the
    table, summary and report. ``cache`` is passed to ``model.encode`` (True, a path or an ``EmbeddingCache``).
    The texts, labels and k are checked before anything is embedded.
    """
    settings = _settings(k, auto_k, method, seed, n_examples, n_words)
    texts = check_inputs(texts, settings, labels)
    vectors, answers = _encode(model, texts, {"instruction": instruction}, batch_size, cache, show_progress_bar)
    return _result(model, instruction, cluster_vectors(vectors, texts, settings, answers=answers, labels=labels,
                                                       label_name=label_name))


def cluster_each(texts: Sequence[str], model: Any, instructions: Sequence[str], *, k: int | None = None,
                 auto_k: Sequence[int] | None = None, method: str | Method = "kmeans", seed: int = 0,
                 labels: Sequence[Any] | None = None, label_name: str | None = None, n_examples: int = 5,
                 n_words: int = 5, batch_size: int = 32, cache: Any = None,
                 show_progress_bar: bool | None = None) -> list[ClusterResult]:
    """:func:`cluster` under each of several instructions, from one ``encode(texts, instructions=...)`` (which
    computes each text's input once for all of them in the causal answer family): one result per instruction."""
    settings = _settings(k, auto_k, method, seed, n_examples, n_words)
    texts = check_inputs(texts, settings, labels)
    asked = list(instructions)
    vectors, answers = _encode(model, texts, {"instructions": asked}, batch_size, cache, show_progress_bar)
    return [_result(model, q, cluster_vectors(vectors[j], texts, settings, labels=labels, label_name=label_name,
                                              answers=None if answers is None else answers[j]))
            for j, q in enumerate(asked)]


def check_inputs(texts: Any, settings: ClusterSettings, labels: Sequence[Any] | None = None) -> list[str]:
    """The texts as a list, once they, the labels and the settings' k (or auto-k range) fit together: at least 2
    texts, one label per text, k at most the number of texts, some auto-k below it. Run before embedding (the CLI
    runs it before loading a model)."""
    texts = _check_texts(texts, labels)
    ks_to_try(settings, len(texts))
    return texts


def ks_to_try(settings: ClusterSettings, n: int) -> list[int]:
    """The k values to fit on ``n`` texts: ``[settings.k]``, or the auto-k values below ``n``; an
    :class:`InputError` when there is none."""
    if settings.k is not None:
        if settings.k > n:
            raise InputError(f"k={settings.k} is more than the number of texts ({n})")
        return [settings.k]
    ks = [k for k in settings.auto_k if k < n]
    if not ks:
        raise InputError(f"auto_k needs at least one k below the number of texts ({n}); got {list(settings.auto_k)}")
    return ks


def _settings(k: int | None, auto_k: Sequence[int] | None, method: str | Method, seed: int, n_examples: int,
              n_words: int) -> ClusterSettings:
    if k is not None and auto_k is not None:
        raise InputError("give k or auto_k, not both")
    return ClusterSettings(method=method, k=k,  # type: ignore[arg-type]
                           auto_k=tuple(DEFAULT_AUTO_K if auto_k is None else auto_k), seed=seed,
                           n_examples=n_examples, n_words=n_words)


def _encode(model: Any, texts: list[str], asked: dict[str, Any], batch_size: int, cache: Any,
            show_progress_bar: bool | None) -> tuple[Any, Any]:
    """Vectors, and the answers when the model generates them (they name the clusters)."""
    kwargs: dict[str, Any] = {"batch_size": batch_size, "show_progress_bar": show_progress_bar, **asked}
    if cache is not None:
        kwargs["cache"] = cache
    if bool(getattr(getattr(model, "encoder", None), "answers", False)):
        return model.encode(texts, return_generations=True, **kwargs)
    return model.encode(texts, **kwargs), None


def _result(model: Any, instruction: Any, result: ClusterResult) -> ClusterResult:
    result.instruction = instruction
    result.model = str(getattr(model, "name", "") or "")
    return result


def cluster_vectors(vectors: Any, texts: Sequence[str], settings: ClusterSettings | None = None, *,
                    answers: Sequence[str] | None = None, labels: Sequence[Any] | None = None,
                    label_name: str | None = None) -> ClusterResult:
    """Cluster precomputed vectors (one per text) and explain the clusters; see :func:`cluster`."""
    settings = settings or ClusterSettings()
    texts = _check_texts(texts, labels)
    x = unit_rows(vectors, len(texts))
    ks = ks_to_try(settings, len(texts))
    if answers is not None and len(answers) != len(texts):
        raise InputError(f"got {len(answers)} answers for {len(texts)} texts")
    fits = {k: _fit(x, k, settings.method, settings.seed) for k in ks}
    k_scores = {k: silhouette(x, fit, settings.seed) for k, fit in fits.items()}
    best = max(ks, key=lambda k: (k_scores[k], -k))
    label_ids, score = _by_size(fits[best]), k_scores[best]
    if settings.k is not None:
        k_scores = {}
    k = int(label_ids.max()) + 1
    keywords = ctfidf_keywords(texts, label_ids, max(settings.n_words, 3))
    if answers is not None:
        names = answer_names(answers, label_ids, texts)
        top_answers = frequent_answers(answers, label_ids)
    else:
        names = word_names(texts, label_ids, keywords)
    gold = None if labels is None else frequent_answers([str(g) for g in labels], label_ids, n=10, normalize=False)
    clusters = []
    for c in range(k):
        members = np.flatnonzero(label_ids == c)
        found = tuple(top_answers[c]) if answers is not None else ()
        words = tuple(w for w, _ in keywords.get(c, []))[: settings.n_words]
        if found:
            explanation = f"answers: {shares(found, len(members), 5)}; {names[c].why}"
        else:
            explanation = "distinctive words: " + (", ".join(words) or "none")
            plain = names[c].terms == tuple(w for w, _ in keywords.get(c, []))[:3]
            explanation += "" if plain else f"; {names[c].why}"
        clusters.append(Cluster(c, len(members), names[c].name, explanation, words, found,
                                _nearest(x, members, texts, settings.n_examples),
                                tuple(gold[c]) if gold is not None else ()))
    name = None if labels is None else (label_name or "labels")
    return ClusterResult(label_ids, clusters, texts, x, settings.method.value, k, score, k_scores,
                         answers=None if answers is None else list(answers),
                         metrics=None if labels is None else label_metrics(labels, label_ids), label_name=name)


def parse_k_range(text: str) -> range:
    """``"2-20"``, ``"2:20"`` or ``"2..20"`` → ``range(2, 21)`` (both ends included)."""
    for sep in ("..", "-", ":"):
        low, found, high = text.partition(sep)
        if found and low.strip().isdigit() and high.strip().isdigit():
            a, b = int(low), int(high)
            if 2 <= a <= b:
                return range(a, b + 1)
    raise InputError(f"--auto-k {text!r} is not a range like 2-20 (both ends included, from 2 on)")


# -- pieces ---------------------------------------------------------------------------------------------------
def unit_rows(vectors: Any, n: int) -> np.ndarray:
    """Vectors as a float32 ``(n, d)`` array of unit rows (zero rows stay zero)."""
    x = np.asarray(vectors.detach().cpu().numpy() if hasattr(vectors, "detach") else vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != n:
        raise InputError(f"expected {n} vectors as an (n, d) array; got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError(f"non-finite values in the vectors of rows {np.flatnonzero(~np.isfinite(x).all(1))[:10]}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def silhouette(x: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Cosine silhouette (on a sample of at most 3,000 rows); -1 when there is only one cluster."""
    require("sklearn", "cluster")
    from sklearn.metrics import silhouette_score

    if len(set(labels.tolist())) < 2 or len(set(labels.tolist())) >= len(labels):
        return -1.0
    sample = SILHOUETTE_SAMPLE if len(labels) > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(x, labels, metric="cosine", sample_size=sample, random_state=seed))


def label_metrics(labels_true: Sequence[Any], labels_pred: Sequence[int] | np.ndarray) -> dict[str, float]:
    """V-measure (primary), homogeneity, completeness, adjusted Rand index and NMI against gold labels."""
    require("sklearn", "cluster")
    from sklearn import metrics

    gold = [str(label) for label in labels_true]
    pred = list(np.asarray(labels_pred).tolist())
    h, c, v = metrics.homogeneity_completeness_v_measure(gold, pred)
    return {"v_measure": float(v), "homogeneity": float(h), "completeness": float(c),
            "ari": float(metrics.adjusted_rand_score(gold, pred)),
            "nmi": float(metrics.normalized_mutual_info_score(gold, pred))}


def _fit(x: np.ndarray, k: int, method: Method, seed: int) -> np.ndarray:
    require("sklearn", "cluster")
    if k == 1:
        return np.zeros(len(x), dtype=np.int64)
    if method is Method.AGGLOMERATIVE:
        from sklearn.cluster import AgglomerativeClustering

        return AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(x).astype(np.int64)
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init="auto", random_state=seed).fit_predict(x).astype(np.int64)


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0.. by size, largest first (ties: the one whose first member comes first)."""
    ids, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = sorted(range(len(ids)), key=lambda i: (-counts[i], first[i]))
    mapping = {int(ids[old]): new for new, old in enumerate(order)}
    return np.array([mapping[int(label)] for label in labels], dtype=np.int64)


def _nearest(x: np.ndarray, members: np.ndarray, texts: Sequence[str], n: int) -> tuple[str, ...]:
    """Up to ``n`` distinct member texts nearest (by cosine) to the cluster's centre."""
    centre = x[members].mean(axis=0)
    centre /= max(float(np.linalg.norm(centre)), 1e-12)
    picked: list[str] = []
    for i in members[np.argsort(-(x[members] @ centre), kind="stable")]:
        if texts[i] not in picked:
            picked.append(texts[i])
        if len(picked) >= n:
            break
    return tuple(picked)


def _check_texts(texts: Any, labels: Sequence[Any] | None = None) -> list[str]:
    if isinstance(texts, str) or not hasattr(texts, "__iter__"):
        raise InputTypeError(f"texts must be a list of str; got {type(texts).__name__}")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputTypeError(f"text at row {i} must be a str; got {type(text).__name__} {text!r:.60}")
    if len(texts) < 2:
        raise InputError(f"clustering needs at least 2 texts; got {len(texts)}")
    if labels is not None and len(labels) != len(texts):
        raise InputError(f"got {len(labels)} labels for {len(texts)} texts; give one label per text")
    return texts


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


__all__ = ["Cluster", "ClusterResult", "ClusterSettings", "Method", "check_inputs", "cluster", "cluster_vectors",
           "ctfidf_keywords", "frequent_answers", "label_metrics"]
