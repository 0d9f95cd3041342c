"""Cluster names that tell the clusters apart.

Answer families (models that generate an answer per text) name a cluster by its most *distinctive* answer, not
its most frequent one: when one answer dominates a corpus ("food" for 243 of 300 restaurant reviews), it is the
most frequent answer of almost every cluster and names none of them.

* An answer is **over-represented** in a cluster when so many of its texts falling into a cluster of that size
  by chance has a probability of at most :data:`MAX_P` (a hypergeometric test: an answer seen twice, or in a
  few texts of a large cluster, is not).
* Among the over-represented answers given by at least :data:`MIN_SHARE` of the cluster, the one with the
  largest ``share × log(share / corpus share)`` (its part of the cluster's divergence from the corpus: frequent
  *and* distinctive) names the cluster. With none, the most frequent answer that is not under-represented
  does (the most frequent one when all are), and the explanation says so.
* Clusters that would share a name get a second term, except the one the name is over-represented in against
  the others of the group: the answer that best tells each from the others of the group (by the same test and
  score against those clusters only, seen in at least :data:`MIN_SECOND` of its texts) or, with none, the most
  distinctive word of its texts against theirs (c-TF-IDF). Names that still collide get `` #<cluster id>``, so
  names are always unique.

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

MAX_P = 0.01  # an answer is over-represented when its count in the cluster has this chance or less
MIN_SHARE = 0.10  # the answer naming a cluster on its own is given by at least this share of it
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


def over_represented(counts: np.ndarray, together: np.ndarray) -> np.ndarray:
    """Per answer, the chance that a random subset of ``together`` (answer counts in all texts compared) of the
    size of ``counts`` (one cluster's answer counts) holds at least as many of it (hypergeometric upper tail).

    >>> p = over_represented(np.array([3.0, 0.0]), np.array([3.0, 27.0]))  # all 3 in a tenth of the texts
    >>> round(float(p[0]), 4), float(p[1])
    (0.0002, 1.0)
    """
    require("scipy", "cluster")
    from scipy.stats import hypergeom

    total, size = int(together.sum()), int(counts.sum())
    return np.asarray(hypergeom.sf(counts.astype(np.int64) - 1, total, together.astype(np.int64), size), dtype=float)


def _divergence(share: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``share × log(share / base)`` per answer (0 where the share is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = share * np.log(share / base)
    return np.where(share > 0, out, 0.0)


def _compare(counts: np.ndarray, rows: list[int], c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster ``c`` against the clusters ``rows`` (it among them): chances of over-representation, its shares
    and the shares in all of ``rows``."""
    together = counts[rows].sum(axis=0)
    return (over_represented(counts[c], together), counts[c] / max(counts[c].sum(), 1),
            together / max(together.sum(), 1))


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


def answer_names(answers: Sequence[object], labels: np.ndarray, texts: Sequence[str] | None = None
                 ) -> list[Naming]:
    """One unique :class:`Naming` per cluster id ``0..max(labels)`` from the generated answers (see the module);
    ``texts`` give a second term from their words when no answer tells two clusters apart."""
    normal = [normalize_answer(a) for a in answers]
    vocab = sorted(set(normal))
    index = {a: j for j, a in enumerate(vocab)}
    k = int(labels.max()) + 1 if len(labels) else 0
    counts = np.zeros((k, len(vocab)))
    for a, c in zip(normal, labels.tolist(), strict=True):
        counts[c, index[a]] += 1
    shown = [a or EMPTY_ANSWER for a in vocab]
    firsts: list[Naming] = []
    for c in range(k):
        p, share, base = _compare(counts, list(range(k)), c)
        seen = np.flatnonzero(counts[c] > 0).tolist()
        strong = [j for j in seen if p[j] <= MAX_P and share[j] >= MIN_SHARE]
        if strong:
            gain = _divergence(share, base)
            j = min(strong, key=lambda j: (-gain[j], -counts[c, j], vocab[j]))
            why = f"{shown[j]!r} is {share[j]:.0%} of this cluster and {base[j]:.0%} of all texts"
        elif seen:
            fair = [j for j in seen if share[j] >= base[j]] or seen
            j = min(fair, key=lambda j: (-counts[c, j], vocab[j]))
            why = f"no answer stands out here; named by its most frequent{'' if fair == seen else ' not rarer'}"
            why += f" answer, {shown[j]!r} ({share[j]:.0%} of it, {base[j]:.0%} of all texts)"
        else:  # an empty cluster cannot come out of a fit; kept total for safety
            firsts.append(Naming(f"cluster {c}", (), "no answers"))
            continue
        firsts.append(Naming(shown[j], (shown[j],), why))
    by_words = _word_second(texts, labels) if texts is not None else None

    def second(c: int, group: list[int], first: Naming) -> tuple[str, str] | None:
        p, share, base = _compare(counts, group, c)
        gain = _divergence(share, base)
        fit = [j for j in np.flatnonzero(counts[c] >= MIN_SECOND).tolist()
               if shown[j] not in first.terms and share[j] > base[j]]
        if fit:
            j = min(fit, key=lambda j: (p[j] > MAX_P, -gain[j], vocab[j]))
            rest = counts[[g for g in group if g != c]].sum(axis=0)
            return shown[j], f"{share[j]:.0%} here vs {rest[j] / max(rest.sum(), 1):.0%} there"
        return by_words(c, group, first) if by_words is not None else None

    def keep(group: list[int], first: str) -> int | None:
        if first not in shown:
            return None
        j = shown.index(first)
        p = {c: _compare(counts, group, c)[0][j] for c in group}
        best = min(group, key=lambda c: (p[c], c))
        return best if p[best] <= MAX_P else None

    return make_unique(firsts, second, keep)


def _word_second(texts: Sequence[str], labels: np.ndarray) -> Callable[[int, list[int], Naming],
                                                                        tuple[str, str] | None]:
    """A second term from words: the most distinctive word (c-TF-IDF) of a cluster's texts against the texts
    of the other clusters of its group."""
    def second(c: int, group: list[int], first: Naming) -> tuple[str, str] | None:
        order = sorted(group)
        rows = np.flatnonzero(np.isin(labels, order))
        found = ctfidf_keywords([texts[i] for i in rows.tolist()], np.searchsorted(np.array(order), labels[rows]), 10)
        words = [w for w, _ in found.get(order.index(c), []) if w not in first.terms]
        return (words[0], "its most distinctive word against theirs (c-TF-IDF)") if words else None

    return second


def word_names(texts: Sequence[str], labels: np.ndarray, keywords: dict[int, list[tuple[str, float]]]
               ) -> list[Naming]:
    """One unique :class:`Naming` per cluster from its c-TF-IDF ``keywords`` (the first three words); a second
    term comes from c-TF-IDF over the texts of the clusters sharing the name only."""
    k = int(labels.max()) + 1 if len(labels) else 0
    firsts = []
    for c in range(k):
        words = tuple(w for w, _ in keywords.get(c, []))[:3]
        firsts.append(Naming(", ".join(words), words, "its most distinctive words (c-TF-IDF)") if words
                      else Naming(f"cluster {c}", (), "no words to name it by"))
    return make_unique(firsts, _word_second(texts, labels))


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


__all__ = ["MAX_P", "MIN_SHARE", "Naming", "answer_names", "ctfidf_keywords", "frequent_answers", "make_unique",
           "normalize_answer", "over_represented", "shares", "word_names"]
