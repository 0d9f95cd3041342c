"""The question bank for distillation: questions about texts, several phrasings per axis, and texts to ask them of.

Two kinds of questions:

* **generic axes** (:data:`GENERIC`): topic, sentiment, emotion, intent, style, genre, entity type, domain,
  audience, tone, formality, time, place — questions that make sense of almost any text;
* **label questions** built from each training dataset's label names (:func:`label_questions`): the dataset's own
  phrasings (:data:`~inbedder.training.recipe.LABELLED`) and choice questions that list its labels
  ("Is the emotion joy, sadness, anger, fear, love or surprise?").

Texts come from the train splits of the public datasets (banking77, CLINC150, emotion, AG News, GoEmotions, FewRel)
and the passages of the free-form QA sets. The held-out sets (SemEval-14 train and test, MLMA, the benchmark's
hand-written sets) never give a text, and no bank question is one of an evaluation set's questions
(:data:`EVALUATION_QUESTIONS`).

>>> rows = bank_rows({"ag_news": ["Stocks fell."]}, n=2, seed=0)     # doctest: +SKIP
>>> rows[0]                                                          # doctest: +SKIP
{'text': 'Stocks fell.', 'question': 'What is the tone of this text?', 'axis': 'tone', 'source': 'ag_news'}
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io.table import read_table
from .data import humanize
from .recipe import HELDOUT, LABELLED, QA_SETS, SELECTION, clinc150, need

GENERIC: dict[str, tuple[str, ...]] = {
    "topic": ("What is the main subject of this text?", "Which subject does this text deal with?",
              "What is the text mainly concerned with?"),
    "sentiment": ("Is the overall feeling of this text positive, negative or neutral?",
                  "What is the writer's attitude: positive, negative or neutral?",
                  "Does this text sound favourable or unfavourable?"),
    "emotion": ("Which emotion comes through in this text?", "What feeling does the author convey?",
                "What is the emotional state of the writer?"),
    "intent": ("What does the author want to achieve?", "What is the purpose of this message?",
               "Why was this text written?"),
    "style": ("How would you describe the writing style?", "Is this written casually or carefully?",
              "What style is this text written in?"),
    "genre": ("What kind of text is this?", "What genre does this text belong to?",
              "Is this a question, a request, a news item, a comment or a story?"),
    "entity_type": ("What kind of entity does this text mention most?",
                    "Is the text mainly about a person, an organisation, a place or a thing?",
                    "What type of thing is named in this text?"),
    "domain": ("Which field does this text belong to?", "What domain is this text from?",
               "In which area of knowledge does this text fall?"),
    "audience": ("Who is this text written for?", "Who is the intended reader?",
                 "What audience does this text address?"),
    "tone": ("What is the tone of this text?", "Is the tone serious, humorous, angry or friendly?",
             "How does this text sound?"),
    "formality": ("Is this text formal or informal?", "How formal is the language here?"),
    "time": ("When does what is described take place?", "Is this about the past, the present or the future?"),
    "place": ("Where does this take place?", "Which place is mentioned?"),
}

# the questions of the sets that measure or choose models: never in the bank
EVALUATION_QUESTIONS: frozenset[str] = frozenset(
    [q for axes in HELDOUT.values() for q in axes.values()] + list(SELECTION.values()) + [
        "What is this text about?", "Is the writer pleased or unhappy?",             # hand-written topic × sentiment
        "Which animal is this about?", "What emotion does the writer feel?",         # hand-written animal × emotion
        "What is the topic of this text?", "Is this text positive or negative?",     # the showcase
        "Which group of people is this tweet about?", "How hostile is this tweet?",  # MLMA group × hostility
    ])

# label names of the datasets with few enough labels to list them in a question
CHOICE_QUESTIONS: dict[str, dict[str, str]] = {
    "emotion": {"emotion": "Is the emotion here {labels}?"},
    "ag_news": {"topic": "Is this news about {labels}?"},
    "goemotions": {"emotion": "Does the commenter feel {labels}?", "sentiment": "Is this comment {labels}?"},
    "clinc150": {"domain": "Is this request about {labels}?"},
}


def _normal(question: str) -> str:
    return " ".join(question.lower().split())


def check_questions(questions: list[str]) -> None:
    """Refuse any question that is an evaluation set's (case and spacing ignored)."""
    reserved = {_normal(q) for q in EVALUATION_QUESTIONS}
    for i, question in enumerate(questions):
        if _normal(question) in reserved:
            raise InputError(f"question {i} ({question!r}) is an evaluation set's question; the question bank must "
                             "not contain the questions its models are measured or chosen on")


def _listed(labels: list[str]) -> str:
    names = [humanize(x) for x in labels]
    return ", ".join(names[:-1]) + " or " + names[-1]


def label_questions(dataset: str, labels: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """Each axis of ``dataset``: its phrasings (less any evaluation question), plus a choice question listing
    ``labels[axis]`` where it has one."""
    out = {}
    for axis, phrasings in LABELLED.get(dataset, {}).items():
        choice = CHOICE_QUESTIONS.get(dataset, {}).get(axis)
        extra = (choice.format(labels=_listed(labels[axis])),) if choice and labels.get(axis) else ()
        reserved = {_normal(q) for q in EVALUATION_QUESTIONS}
        out[f"{dataset}:{axis}"] = tuple(q for q in phrasings if _normal(q) not in reserved) + extra
    return out


def dataset_texts(root: Path) -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]]]:
    """Texts of each training source (train splits and QA passages, each text once) and each labelled dataset's
    label names per axis."""
    texts: dict[str, list[str]] = {"banking77": read_table(need(root / "banking77" / "train.csv")).strings("text")}
    clinc, domains = clinc150(root)
    texts["clinc150"] = [t for t, _ in clinc["train"]]
    with open(need(root / "emotion_dair" / "train.txt"), encoding="utf-8") as f:
        emotion = [line.rstrip("\n").rsplit(";", 1) for line in f if ";" in line][1:]
    texts["emotion"] = [t for t, _ in emotion]
    news = read_table(need(root / "ag_news" / "test.csv")).rows
    texts["ag_news"] = [f"{r['title']}. {r['description']}" for r in news]
    with open(need(root / "goemotions" / "ekman" / "dev.tsv"), encoding="utf-8") as f:
        texts["goemotions"] = [line.split("\t")[0] for line in f if line.strip()]
    relations = json.loads(need(root / "fewrel" / "val_wiki.json").read_text(encoding="utf-8"))
    texts["fewrel"] = [" ".join(r["tokens"]) for rows in relations.values() for r in rows]
    for name in QA_SETS:
        texts[f"qa:{name}"] = [r["input"] for r in read_table(need(root / "qa" / name / f"{name}.jsonl")).rows
                               if r.get("split") == "train" and len(r["input"]) <= 600]
    labels = {"emotion": {"emotion": sorted({x for _, x in emotion})},
              "ag_news": {"topic": (root / "ag_news" / "classes.txt").read_text().split()},
              "goemotions": {"emotion": (root / "goemotions" / "ekman" / "labels.txt").read_text().split(),
                             "sentiment": (root / "goemotions" / "group" / "labels.txt").read_text().split()},
              "clinc150": {"domain": sorted(domains)}}
    return {k: list(dict.fromkeys(t.strip() for t in v if t.strip())) for k, v in texts.items()}, labels


def bank_rows(texts: dict[str, list[str]], n: int, seed: int = 0, *, generic: bool = True,
              labels: dict[str, dict[str, list[str]]] | None = None) -> list[dict[str, Any]]:
    """``n`` (text, question) rows, as even over the sources as they allow, with the seed: a text of a labelled
    dataset is asked one of its dataset's questions or (with ``generic``) a generic one, half and half; a QA passage
    or FewRel sentence a generic one. Each text is used at most once.

    Rows: ``{"text", "question", "axis", "source"}``."""
    if n < 1:
        raise InputError(f"n must be >= 1 (rows of the question bank); got {n}")
    rng = random.Random(seed)
    asks: dict[str, dict[str, tuple[str, ...]]] = {
        source: {**(label_questions(source, (labels or {}).get(source, {})) if source in LABELLED else {}),
                 **(GENERIC if generic else {})} for source in texts}
    asks = {s: a for s, a in asks.items() if a and texts[s]}
    if not asks:
        raise InputError("no source has both texts and questions (with generic=False only the labelled datasets "
                         f"{sorted(LABELLED)} have questions)")
    pools = {s: rng.sample(texts[s], len(texts[s])) for s in sorted(asks)}
    rows: list[dict[str, Any]] = []
    while len(rows) < n and any(pools.values()):
        for source in sorted(asks):
            if pools[source] and len(rows) < n:
                dataset_axes = [a for a in asks[source] if ":" in a]
                axes = dataset_axes if dataset_axes and (not generic or rng.random() < 0.5) else \
                    [a for a in asks[source] if ":" not in a] or dataset_axes
                axis = rng.choice(sorted(axes))
                rows.append({"text": pools[source].pop(), "question": rng.choice(asks[source][axis]), "axis": axis,
                             "source": source})
    check_questions([r["question"] for r in rows])
    return rows
