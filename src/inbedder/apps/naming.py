"""Cluster names that tell the clusters apart.

Answer families (models that generate an answer per text) name a cluster by its most *distinctive* answer, not
its most frequent one: when one answer dominates a corpus ("food" for 243 of 300 restaurant reviews), it is the
most frequent answer of almost every cluster and names none of them.

* An answer is **over-represented** in a cluster when the z-score of its log-odds ratio, the cluster against the
  rest of the corpus, is at least :data:`MIN_Z` (Monroe, Colaresi & Quinn 2008, "Fightin' Words", with an
  informative Dirichlet prior of :data:`PRIOR` pseudo-texts spread by the corpus answer frequencies). The z-score
  keeps a rare answer seen twice from passing for a distinctive one.
* Among the over-represented answers, the one with the largest ``share × log(share / corpus share)`` (its part
  of the cluster's divergence from the corpus: frequent *and* distinctive) names the cluster. With none, the most
  frequent answer does, and the explanation says so.
* Clusters that would share a name get a second term: the answer that best tells each one from the others of
  the group (the same score, against those clusters only, seen in at least 2 of its texts). Names that still
  collide get `` #<cluster id>``, so names are always unique.

Other families name a cluster by its three most distinctive words (c-TF-IDF, see ``ctfidf_keywords``), with the
same second term and suffix rule.

>>> names = answer_names(["food"] * 6 + ["service"] * 3 + ["food"], np.array([0] * 6 + [1] * 4))
>>> [n.name for n in names]
['food', 'service']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, require

MIN_Z = 2.0  # an answer is over-represented when its log-odds z-score reaches this (about 2 standard errors)
PRIOR = 10.0  # pseudo-texts of the informative Dirichlet prior (spread by the corpus answer frequencies)
MIN_SECOND = 2  # a second term is seen in at least this many texts of its cluster
SEPARATOR = " / "  # between a name and its distinguishing second term
EMPTY_ANSWER = "(empty answer)"


@dataclass(frozen=True)
class Naming:
    """A cluster's name and why: ``terms`` are the answers or words in the name, ``why`` one sentence."""

    name: str
    terms: tuple[str, ...]
    why: str


def normalize_answer(answer: object) -> str:
    """Answers are compared stripped, with runs of white space as one space, lower-cased."""
    return " ".join(str(answer).split()).lower()


def log_odds_z(counts: np.ndarray, reference: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Per answer, the z-score of the log-odds ratio of ``counts`` (one group's answer counts) against
    ``reference`` (another group's), with Dirichlet pseudo-counts ``prior`` (Monroe et al. 2008, eq. 22).

    >>> z = log_odds_z(np.array([8.0, 2.0]), np.array([2.0, 8.0]), np.array([1.0, 1.0]))
    >>> bool(z[0] > 2 > -2 > z[1])
    True
    """
    a0 = prior.sum()
    tiny = 1e-12
    own = np.log(counts + prior) - np.log(np.maximum(counts.sum() + a0 - counts - prior, tiny))
    other = np.log(reference + prior) - np.log(np.maximum(reference.sum() + a0 - reference - prior, tiny))
    return np.asarray((own - other) / np.sqrt(1 / (counts + prior) + 1 / (reference + prior)))


def _divergence(share: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``share × log(share / base)`` per answer (0 where the share is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = share * np.log(share / base)
    return np.where(share > 0, out, 0.0)


def _compare(counts: np.ndarray, rows: list[int], c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster ``c`` against the other clusters of ``rows``: z-scores, its shares and the shares in all of ``rows``."""
    own = counts[c]
    together = counts[rows].sum(axis=0)
    base = together / max(together.sum(), 1)
    prior = PRIOR * np.where(base > 0, base, 1e-9)
    z = log_odds_z(own, together - own, prior)
    return z, own / max(own.sum(), 1), base


def shares(pairs: Sequence[tuple[str, int]], total: int, n: int = 3, quote: bool = True, counts: bool = False
           ) -> str:
    """``'a' 50%, 'b' 25%, other 25%`` from ``(term, count)`` pairs (most frequent first) of ``total`` texts.

    >>> shares([("food", 8), ("service", 1)], 10)
    "'food' 80%, 'service' 10%, other 10%"
    >>> shares([("food", 8), ("price", 2)], 10, quote=False, counts=True)
    'food 8 (80%), price 2 (20%)'
    """
    def one(term: str, count: int) -> str:
        share = f"{count / max(total, 1):.0%}"
        return f"{term} {count} ({share})" if counts else f"{term} {share}"

    parts = [one(repr(t) if quote else t, c) for t, c in pairs[:n]]
    rest = total - sum(c for _, c in pairs[:n])
    if rest > 0 and parts:
        parts.append(one("other", rest))
    return ", ".join(parts)


def frequent_answers(answers: Sequence[str], labels: np.ndarray, n: int = 5,
                     normalize: bool = True) -> dict[int, list[tuple[str, int]]]:
    """The ``n`` most frequent generated answers per cluster (stripped, lower-cased unless ``normalize`` is
    False; an empty answer as ``(empty answer)``), with their counts."""
    if len(answers) != len(labels):
        raise InputError(f"got {len(answers)} answers for {len(labels)} rows")
    out: dict[int, list[tuple[str, int]]] = {}
    for c in range(int(labels.max()) + 1 if len(labels) else 0):
        members = [answers[i] for i in np.flatnonzero(labels == c).tolist()]
        counted = Counter((normalize_answer(a) or EMPTY_ANSWER) if normalize else a for a in members)
        out[c] = sorted(counted.items(), key=lambda item: (-item[1], item[0]))[:n]
    return out


def ctfidf_keywords(texts: Sequence[str], labels: np.ndarray, n_words: int = 5,
                    stop_words: str | None = "english") -> dict[int, list[tuple[str, float]]]:
    """Most distinctive words per cluster by class-based TF-IDF (each cluster's texts as one document).

    ``score(t, c) = tf(t, c) / words(c) * log(1 + mean words per cluster / count of t in all clusters)``.

    >>> words = ctfidf_keywords(["red apple", "green apple", "fast car", "red car"], np.array([0, 0, 1, 1]), 2)
    >>> [w for w, _ in words[0]], [w for w, _ in words[1]]
    (['apple', 'green'], ['car', 'fast'])
    """
    require("sklearn", "cluster")
    from sklearn.feature_extraction.text import CountVectorizer

    k = int(labels.max()) + 1 if len(labels) else 0
    docs = [" ".join(texts[i] for i in np.flatnonzero(labels == c).tolist()) for c in range(k)]
    counts = None
    for stop in (stop_words, None):  # a corpus of stop words only still gets words
        try:
            vectorizer = CountVectorizer(stop_words=stop, token_pattern=r"(?u)\b[^\W\d_][^\W_]+\b")
            counts = vectorizer.fit_transform(docs).toarray().astype(np.float64)
            break
        except ValueError:  # empty vocabulary
            continue
    if counts is None or n_words == 0:
        return {c: [] for c in range(k)}
    vocab = vectorizer.get_feature_names_out()
    words_per_class = counts.sum(axis=1, keepdims=True)
    tf = counts / np.where(words_per_class == 0, 1, words_per_class)
    idf = np.log1p(counts.sum() / max(k, 1) / np.maximum(counts.sum(axis=0), 1))
    scores = tf * idf
    out: dict[int, list[tuple[str, float]]] = {}
    for c in range(k):
        order = np.lexsort((vocab, -scores[c]))  # best score first, ties alphabetical
        out[c] = [(str(vocab[j]), float(scores[c, j])) for j in order[:n_words] if counts[c, j] > 0]
    return out


def answer_names(answers: Sequence[object], labels: np.ndarray) -> list[Naming]:
    """One unique :class:`Naming` per cluster id ``0..max(labels)`` from the generated answers (see the module)."""
    normal = [normalize_answer(a) for a in answers]
    vocab = sorted(set(normal))
    index = {a: j for j, a in enumerate(vocab)}
    k = int(labels.max()) + 1 if len(labels) else 0
    counts = np.zeros((k, len(vocab)))
    for a, c in zip(normal, labels.tolist(), strict=True):
        counts[c, index[a]] += 1
    shown = [a or EMPTY_ANSWER for a in vocab]
    everyone = list(range(k))
    firsts: list[Naming] = []
    for c in range(k):
        z, share, base = _compare(counts, everyone, c)
        seen = np.flatnonzero(counts[c] > 0)
        strong = [j for j in seen.tolist() if z[j] >= MIN_Z]
        if strong:
            gain = _divergence(share, base)
            j = min(strong, key=lambda j: (-gain[j], -counts[c, j], vocab[j]))
            why = f"{shown[j]!r} is {share[j]:.0%} of this cluster and {base[j]:.0%} of all texts"
        elif len(seen):
            j = min(seen.tolist(), key=lambda j: (-counts[c, j], vocab[j]))
            why = f"no answer is over-represented here; named by the most frequent, {shown[j]!r}"
        else:  # an empty cluster cannot come out of a fit; kept total for safety
            firsts.append(Naming(f"cluster {c}", (), "no answers"))
            continue
        firsts.append(Naming(shown[j], (shown[j],), why))

    def second(c: int, group: list[int], first: Naming) -> tuple[str, str] | None:
        z, share, base = _compare(counts, group, c)
        gain = _divergence(share, base)
        fit = [j for j in np.flatnonzero(counts[c] >= MIN_SECOND).tolist() if shown[j] not in first.terms and z[j] > 0]
        if not fit:
            return None
        j = min(fit, key=lambda j: (z[j] < MIN_Z, -gain[j], vocab[j]))
        rest = counts[[g for g in group if g != c]].sum(axis=0)
        return shown[j], f"{share[j]:.0%} here vs {rest[j] / max(rest.sum(), 1):.0%} there"

    def keep(group: list[int], first: str) -> int | None:
        if first not in shown:
            return None
        j = shown.index(first)
        z = {c: _compare(counts, group, c)[0][j] for c in group}
        best = max(group, key=lambda c: (z[c], -c))
        return best if z[best] >= MIN_Z else None

    return make_unique(firsts, second, keep)


def word_names(texts: Sequence[str], labels: np.ndarray, keywords: dict[int, list[tuple[str, float]]],
               ctfidf: Callable[..., dict[int, list[tuple[str, float]]]]) -> list[Naming]:
    """One unique :class:`Naming` per cluster from its c-TF-IDF ``keywords`` (the first three words); a second
    term comes from c-TF-IDF over the texts of the clusters sharing the name only (``ctfidf`` computes it)."""
    k = int(labels.max()) + 1 if len(labels) else 0
    firsts = []
    for c in range(k):
        words = tuple(w for w, _ in keywords.get(c, []))[:3]
        firsts.append(Naming(", ".join(words), words, "its most distinctive words (c-TF-IDF)") if words
                      else Naming(f"cluster {c}", (), "no words to name it by"))

    def second(c: int, group: list[int], first: Naming) -> tuple[str, str] | None:
        rows = np.flatnonzero(np.isin(labels, group))
        local = np.searchsorted(np.array(sorted(group)), labels[rows])
        found = ctfidf([texts[i] for i in rows.tolist()], local, 10)
        words = [w for w, _ in found.get(sorted(group).index(c), []) if w not in first.terms]
        return (words[0], "its most distinctive word against them") if words else None

    return make_unique(firsts, second)


def make_unique(firsts: list[Naming], second: Callable[[int, list[int], Naming], tuple[str, str] | None],
                keep: Callable[[list[int], str], int | None] | None = None) -> list[Naming]:
    """Clusters sharing a name get the second term ``second(cluster, group, naming)`` gives (``(term, why)`` or
    None), except the one ``keep(group, name)`` picks (the cluster the name is most distinctive of, if any);
    names that still collide get `` #<cluster id>`` (all but the first, the largest cluster)."""
    out = list(firsts)
    groups: dict[str, list[int]] = {}
    for c, naming in enumerate(firsts):
        groups.setdefault(naming.name, []).append(c)
    for name, group in groups.items():
        if len(group) < 2:
            continue
        plain = keep(group, name) if keep is not None else None
        found = {c: second(c, group, firsts[c]) for c in group if c != plain}
        terms = Counter(f[0] for f in found.values() if f is not None)
        for c, got in found.items():
            if got is None or terms[got[0]] > 1:  # a term two of them would get tells neither apart
                continue
            term, why = got
            others = ", ".join(str(g) for g in group if g != c)
            out[c] = Naming(name + SEPARATOR + term, (*firsts[c].terms, term),
                            f"{firsts[c].why}; {term!r} tells it from cluster {others} (also {name!r}): {why}")
    taken = Counter(n.name for n in out)
    used: set[str] = set()
    for c, naming in enumerate(out):
        if taken[naming.name] > 1 and naming.name in used:
            name, n = f"{naming.name} #{c}", 0
            while name in used or name in taken:
                n += 1
                name = f"{naming.name} #{c}.{n}"
            out[c] = Naming(name, naming.terms, f"{naming.why}; nothing tells it from the cluster named "
                                                f"{naming.name!r}")
        used.add(out[c].name)
    return out


__all__ = ["MIN_Z", "PRIOR", "Naming", "answer_names", "ctfidf_keywords", "frequent_answers", "log_odds_z",
           "make_unique", "normalize_answer", "shares", "word_names"]
