"""encode(texts, instructions=[...]): equal to k separate calls; the causal family computes each input once."""

from __future__ import annotations

import numpy as np
import pytest

from inbedder.errors import InbedderError

TEXTS = ["I love cat!", "I dislike dog!", "The funds rose less than 0.5 per cent on Friday.", "Where is the food?",
         "Parton energy loss in QCD matter. " * 5, "a", ""]
QS = ["What is the animal mentioned here?", "What is the emotion?", " leading space?",
      "What is the animal mentioned here?"]


@pytest.mark.parametrize("value", ["fst_gen", "avg_ppt"])
@pytest.mark.parametrize("layer", [1, -1])
@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.filterwarnings("ignore:.*were truncated")
def test_many_instructions_equal_separate_calls(llama, value: str, layer: int, batch_size: int) -> None:
    many = llama.encode(TEXTS, instructions=QS, output_value=value, layer=layer, batch_size=batch_size)
    sep = np.stack([llama.encode(TEXTS, instruction=q, output_value=value, layer=layer, batch_size=batch_size)
                    for q in QS])
    assert many.shape == (4, len(TEXTS), 32) and np.abs(many - sep).max() <= 1e-5


def test_both_instruction_arguments_are_refused(llama) -> None:
    with pytest.raises(InbedderError, match="not both"):
        llama.encode(TEXTS, instruction="q", instructions=QS)
    with pytest.raises(InbedderError, match=r"instructions\[1\]"):
        llama.encode(TEXTS, instructions=["q", 3])


class Counting:
    """An inbedder model that counts its encode calls (and can hide that it takes several instructions)."""

    def __init__(self, model, takes: bool = True) -> None:
        self.model, self.takes_instructions, self.calls = model, takes, 0
        self.encoder, self.name = model.encoder, model.name

    def encode(self, *args, **kwargs):
        self.calls += 1
        return self.model.encode(*args, **kwargs)


ROWS = [("I love my cat", "animal", "joy"), ("I hate my cat", "animal", "anger"), ("my dog makes me happy", "animal",
        "joy"), ("the dog bit me, I am furious", "animal", "anger"), ("stocks rose, great news", "money", "joy"),
        ("the bank lost my money, awful", "money", "anger"), ("a raise! wonderful", "money", "joy"),
        ("taxes again, I am mad", "money", "anger")]


@pytest.mark.filterwarnings("ignore:.*were truncated")
def test_awareness_asks_every_axis_in_one_call_with_the_same_matrix(llama) -> None:
    from inbedder.evaluation import AwarenessTask

    task = AwarenessTask([t for t, _, _ in ROWS], {"topic": [a for _, a, _ in ROWS], "mood": [b for _, _, b in ROWS]},
                         {"topic": "What is the topic?", "mood": "What is the emotion?"})
    shared, alone = Counting(llama), Counting(llama, takes=False)
    one, each = task.run(shared, baseline=True), task.run(alone, baseline=True)
    assert (shared.calls, alone.calls) == (2, 3)  # both axes in one call (plus the baseline) vs one call per axis
    for a in one.matrix:
        for b in one.matrix[a]:
            assert one.matrix[a][b] == pytest.approx(each.matrix[a][b], abs=1e-6)


@pytest.mark.filterwarnings("ignore:.*were truncated")
def test_cluster_each_equals_one_clustering_per_instruction(llama) -> None:
    from inbedder.apps.clustering import cluster, cluster_each

    texts, questions = [t for t, _, _ in ROWS], ["What is the topic?", "What is the emotion?"]
    model = Counting(llama)
    results = cluster_each(texts, model, questions, k=2)
    assert model.calls == 1 and [r.instruction for r in results] == questions
    for result, question in zip(results, questions, strict=True):
        alone = cluster(texts, llama, question, k=2)
        assert result.labels.tolist() == alone.labels.tolist() and result.answers == alone.answers


@pytest.mark.filterwarnings("ignore:.*were truncated")
def test_cli_cluster_with_several_instructions(llama_dir, tmp_path) -> None:
    import json

    from click.testing import CliRunner

    from inbedder.cli import main

    questions = ["What is the topic?", "What is the emotion?"]
    args = ["cluster", "-m", str(llama_dir), "--device", "cpu", "-k", "2", "-q",
            *[a for q in questions for a in ("--instruction", q)], *[t for t, _, _ in ROWS]]
    summary = tmp_path / "summary.json"
    result = CliRunner().invoke(main, [*args, "--summary", str(summary)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["instruction"], r["index"]) for r in rows] == [(q, i) for q in questions for i in range(len(ROWS))]
    assert [s["instruction"] for s in json.loads(summary.read_text())] == questions
    refused = CliRunner().invoke(main, [*args, "--report", str(tmp_path / "r.html")])
    assert refused.exit_code == 1 and "give one --instruction" in refused.output


def test_under_each_lays_rows_out_instruction_by_instruction() -> None:
    from inbedder.multi_instruction import under_each

    assert under_each(["a", "b", "c"], ["q1", "q2"]) == (["a", "b", "c"] * 2, ["q1"] * 3 + ["q2"] * 3)
    assert under_each([], ["q"]) == ([], [])
