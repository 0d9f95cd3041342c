"""A short tour of inbedder on the offline models that ship in PyPI packages.

Run with `make demo` (or `python examples/demo.py` inside the project's virtualenv).
"""

from __future__ import annotations

import time

import numpy as np

from inbedder import instruction_template, load


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return a @ b.T


def show_matrix(title: str, rows: list[str], cols: list[str], m: np.ndarray) -> None:
    print(f"\n{title}")
    width = max(len(r) for r in rows)
    print(" " * (width + 2) + "  ".join(f"{c[:10]:>10}" for c in cols))
    for r, values in zip(rows, m, strict=False):
        print(f"{r:<{width}}  " + "  ".join(f"{v:10.3f}" for v in values))


def encoder_demo() -> None:
    print("== INSTRUCTOR-style encoder: all-MiniLM-L6-v2 (alias 'minilm') ==")
    start = time.perf_counter()
    model = load("minilm")
    print(f"loaded in {time.perf_counter() - start:.1f}s: {model.family} family, {model.dim}-d vectors")

    title = instruction_template("title", domain="Science")
    print(f"instruction_template('title', domain='Science') -> {title!r}")
    v = model.encode("3D ActionSLAM: wearable person tracking in multi-floor environments", instruction=title)
    print(f"one text -> vector of shape {v.shape}, norm {np.linalg.norm(v):.3f}")

    query = [["Represent the Wikipedia question for retrieving supporting documents: ",
              "where is the food stored in a yam plant"]]
    corpus = [
        ["Represent the Wikipedia document for retrieval: ",
         "Capitalism has been dominant in the Western world since the end of feudalism."],
        ["Represent the Wikipedia document for retrieval: ",
         "Yams are perennial vines; the plant stores food in its large underground tubers."],
        ["Represent the Wikipedia document for retrieval: ",
         "Disparate impact in United States labor law refers to practices in employment and housing."],
    ]
    scores = cosine(model.encode(query), model.encode(corpus))[0]
    print("\nretrieval: 'where is the food stored in a yam plant'")
    for (_, doc), s in sorted(zip(corpus, scores, strict=False), key=lambda x: -x[1]):
        print(f"  {s:.3f}  {doc[:70]}")

    texts = ["I love my cat!", "I love my dog!", "I can't stand my cat."]
    for instruction in ("Represent the animal mentioned in the sentence:", "Represent the emotion of the sentence:"):
        e = model.encode(texts, instruction=instruction)
        show_matrix(f"cosine under {instruction!r}", texts, texts, cosine(e, e))


def answer_demo() -> None:
    print("\n== InBedder-style answer embedding: SmolLM2-135M-Instruct (alias 'smollm2-135m-instruct') ==")
    try:
        model = load("smollm2-135m-instruct")
    except Exception as exc:  # the family or the package may be missing from this install
        print(f"skipped: {exc}")
        return
    print("(this small model was not trained to answer briefly: its answers restate the question, so its vectors")
    print(" barely depend on the text; answer-trained InBedder checkpoints load the same way)")
    texts = ["I love cat!", "I love dog!", "I dislike cat!"]
    for instruction in ("What is the animal mentioned here?", "What is the emotion expressed here?"):
        emb, answers = model.encode(texts, instruction=instruction, return_generations=True)
        print(f"\n{instruction}")
        for t, a in zip(texts, answers, strict=False):
            print(f"  {t:<16} -> {a!r}")
        sims = cosine(emb[:1], emb[1:])[0]
        print(f"  cosine(cat-love, dog-love) = {sims[0]:.3f}   cosine(cat-love, cat-dislike) = {sims[1]:.3f}")


if __name__ == "__main__":
    encoder_demo()
    answer_demo()
