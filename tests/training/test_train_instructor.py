"""`inbedder train instructor`: contrastive loss goes down on same-task batches, the sentence-transformers save
reloads with identical vectors (instruction tokens still left out of pooling), a killed run resumes exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from inbedder import load
from inbedder.cli import main
from inbedder.engine import Embedder
from inbedder.io import write_rows
from inbedder.training.instructor import ContrastiveSettings, contrastive_loss, train_instructor
from inbedder.training.loop import LoopSettings

ANIMAL, FEELING = "Represent the animal: ", "Represent the feeling: "
SENTENCES = [("I love my cat.", "cat", "love"), ("I hate my cat.", "cat", "hate"), ("I love the dog.", "dog", "love"),
             ("I hate the dog.", "dog", "hate"), ("My cat is lovely.", "cat", "love"),
             ("That dog is awful.", "dog", "hate")]


def _medi() -> list[dict[str, object]]:
    out = []
    for task, (axis, ins) in enumerate(((1, ANIMAL), (2, FEELING))):
        for s in SENTENCES:
            pos = next(t for t in SENTENCES if t is not s and t[axis] == s[axis])
            neg = next(t for t in SENTENCES if t[axis] != s[axis] and t[3 - axis] == s[3 - axis])
            out.append({"query": [ins, s[0]], "pos": [ins, pos[0]], "neg": [ins, neg[0]], "task_id": task})
    return out


def test_batches_keep_to_one_task_and_pooling_is_the_family_s(tiny_t5_dir: Path) -> None:
    encoder = load(tiny_t5_dir).encoder
    records = _medi()
    loss = contrastive_loss(encoder, records[:3], ContrastiveSettings(temperature=0.05))
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.requires_grad
    from inbedder.training.loop import BatchPlan

    plan = BatchPlan([[i for i, r in enumerate(records) if r["task_id"] == t] for t in (0, 1)], 4, seed=0)
    for step in range(2 * len(plan)):
        assert len({records[i]["task_id"] for i in plan.batch(step)}) == 1


def test_loss_goes_down(tiny_bert_dir: Path) -> None:
    loop = LoopSettings(steps=40, batch_size=6, lr=3e-3, bf16=False, progress=False)
    result = train_instructor(tiny_bert_dir, _medi(), None, dev=_medi(), loop=loop)
    losses = result.loop.losses
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4])
    assert result.dev_loss["after"] < result.dev_loss["before"]


def test_the_save_reloads_identically(tiny_t5_dir: Path, tmp_path: Path) -> None:
    loop = LoopSettings(steps=3, batch_size=6, lr=3e-3, progress=False)
    result = train_instructor(tiny_t5_dir, _medi(), tmp_path / "out", loop=loop)
    for name in ("modules.json", "sentence_bert_config.json", "1_Pooling/config.json", "2_Dense/model.safetensors",
                 "3_Normalize", "model.safetensors"):
        assert (tmp_path / "out" / name).exists(), name
    reloaded = load(tmp_path / "out")
    texts = [s[0] for s in SENTENCES]
    in_memory = Embedder(result.encoder).encode(texts, instruction=ANIMAL)
    assert reloaded.family == "instructor"
    np.testing.assert_array_equal(in_memory, reloaded.encode(texts, instruction=ANIMAL))
    base = load(tiny_t5_dir).encode(texts, instruction=ANIMAL)
    assert not np.allclose(base, in_memory)


def test_killed_run_resumes_to_the_same_result(tiny_t5_dir: Path, tmp_path: Path) -> None:
    def run(out: Path, stop: int | None) -> object:
        loop = LoopSettings(steps=5, batch_size=4, lr=1e-3, save_every=2, seed=2, stop_after=stop, progress=False)
        return train_instructor(tiny_t5_dir, _medi(), out, loop=loop)

    whole = run(tmp_path / "whole", None)
    assert not run(tmp_path / "split", 3).loop.finished
    resumed = run(tmp_path / "split", None)
    assert resumed.loop.resumed_from == 2 and resumed.loop.losses == whole.loop.losses
    a, b = whole.encoder.state_dict(), resumed.encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli(tiny_bert_dir: Path, tmp_path: Path) -> None:
    write_rows(_medi(), tmp_path / "medi.jsonl", "jsonl")
    result = CliRunner().invoke(main, ["train", "instructor", "-m", str(tiny_bert_dir), "-d",
                                       str(tmp_path / "medi.jsonl"), "-o", str(tmp_path / "m"), "--steps", "2",
                                       "--temperature", "0.05"])
    assert result.exit_code == 0 and "trained 2 steps" in result.output, result.output
    assert load(tmp_path / "m").encode("a cat", instruction=ANIMAL).shape == (32,)
    bad = CliRunner().invoke(main, ["train", "instructor", "-m", str(tiny_bert_dir), "-d",
                                    str(tmp_path / "medi.jsonl"), "-o", str(tmp_path / "n"), "--temperature", "0"])
    assert bad.exit_code == 1 and "temperature" in bad.output


@pytest.mark.parametrize("bad", [{"query": "text", "pos": ["a", "b"], "neg": ["a", "c"], "task_id": 0}])
def test_bad_records_name_the_row(tmp_path: Path, bad: dict[str, object]) -> None:
    from inbedder.errors import InputError
    from inbedder.training.records import read_medi

    write_rows([*_medi()[:1], bad], tmp_path / "m.jsonl", "jsonl")
    with pytest.raises(InputError, match=r"row 2 .*'query'"):
        read_medi(tmp_path / "m.jsonl")


def test_periodic_awareness_evaluation_keeps_the_best_model(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from inbedder.evaluation import AwarenessTask

    task = AwarenessTask([s for s, _, _ in SENTENCES], {"animal": [a for _, a, _ in SENTENCES],
                                                         "feeling": [f for _, _, f in SENTENCES]},
                         {"animal": ANIMAL, "feeling": FEELING})
    seen: list[Embedder] = []

    def score(model: Embedder) -> float:
        seen.append(model)
        return task.scorer()(model)

    loop = LoopSettings(steps=4, batch_size=6, lr=3e-3, bf16=False, progress=False, eval_every=2)
    result = train_instructor(tiny_bert_dir, _medi(), tmp_path / "out", loop=loop, evaluate=score)
    assert [s for s, _ in result.loop.evals] == [2, 4] and len(seen) == 2 and seen[0].encoder is result.encoder
    best = dict(result.loop.evals)[result.loop.best_step]
    assert task.scorer()(load(tmp_path / "out")) == pytest.approx(best, abs=1e-9)  # the best weights were saved


def test_cli_refuses_an_answer_reencoder_for_an_encoder(tiny_bert_dir: Path, tmp_path: Path) -> None:
    write_rows(_medi(), tmp_path / "medi.jsonl", "jsonl")
    (tmp_path / "eval.csv").write_text("text,animal,feeling\n" + "".join(f"{s},{a},{f}\n" for s, a, f in SENTENCES))
    result = CliRunner().invoke(main, ["train", "instructor", "-m", str(tiny_bert_dir), "-d",
                                       str(tmp_path / "medi.jsonl"), "-o", str(tmp_path / "m"), "--steps", "1",
                                       "--eval-data", str(tmp_path / "eval.csv"), "--eval-axis", f"animal={ANIMAL}",
                                       "--eval-axis", f"feeling={FEELING}", "--eval-reencoder", "minilm"])
    assert result.exit_code == 1 and "generates none" in result.output and not (tmp_path / "m").exists()
