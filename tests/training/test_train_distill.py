"""Distillation: the teacher pass writes the teacher's next-token distribution exactly, resumes after an
interruption, refuses another run's file; the student's KL to the teacher goes down; the saved adapter reloads to
the same vectors; the question bank never asks an evaluation set's question."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from helpers.tiny_causal import build_tiny_opt
from inbedder import load
from inbedder.cli import main
from inbedder.encoders.causal import CausalEncoder
from inbedder.engine import Embedder
from inbedder.errors import InputError
from inbedder.io import write_rows
from inbedder.training import teacher as teacher_module
from inbedder.training.answer import AnswerSettings, train_answer
from inbedder.training.distill import DistillSettings, topk_kl, train_distill
from inbedder.training.loop import LoopSettings
from inbedder.training.questions import EVALUATION_QUESTIONS, GENERIC, bank_rows, check_questions
from inbedder.training.teacher import TeacherSettings, read_teacher, teacher_pass

ONE_WORD = "chat:{input}\n\n{instruction} One word."
ANIMALS = {"I love my cat.": "cat", "The dog ran off.": "dog", "A cat sat on the mat.": "cat", "My dog barks.": "dog",
           "The cat sleeps.": "cat", "Our dog is brown.": "dog", "This cat purrs.": "cat", "That dog digs.": "dog",
           "The cat hid.": "cat", "A dog swam.": "dog", "My cat ate.": "cat", "Your dog sat.": "dog"}
QUESTIONS = ("What is the animal mentioned here?", "Which animal?")
ROWS = [{"text": t, "question": q, "axis": "animal", "source": "toy"} for t in ANIMALS for q in QUESTIONS]
SETTINGS = TeacherSettings(pattern=ONE_WORD, top_k=8, batch_size=5, max_length=64)


@pytest.fixture(scope="module")
def base_dir(llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with its LM head scaled up: random init gives near-uniform next-token distributions that LoRA
    on the layers cannot sharpen; scaled, a LoRA teacher can be sure and a LoRA student can follow it."""
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("base")
    model = AutoModelForCausalLM.from_pretrained(llama_dir)
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
    model.save_pretrained(out)
    for f in llama_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens")):
            shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="module")
def teacher_dir(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base taught the toy task with LoRA: a teacher with the student's vocabulary, within the student's reach."""
    out = tmp_path_factory.mktemp("teacher") / "model"
    qa = [{"input": t, "instruction": q, "answer": a} for t, a in ANIMALS.items() for q in QUESTIONS]
    train_answer(base_dir, qa, out, settings=AnswerSettings(pattern=ONE_WORD, max_length=64, lora=True, lora_r=8,
                                                            lora_alpha=16),
                 loop=LoopSettings(steps=40, batch_size=4, lr=3e-2, seed=1, bf16=False, progress=False))
    return out


@pytest.fixture(scope="module")
def teacher_file(teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return teacher_pass(teacher_dir, ROWS, tmp_path_factory.mktemp("pass") / "teacher.jsonl", SETTINGS,
                        progress=False)


def test_the_teacher_file_holds_the_models_top_k_at_the_answer_position(teacher_dir: Path,
                                                                         teacher_file: Path) -> None:
    records, meta = read_teacher(teacher_file)
    assert [(r["text"], r["question"]) for r in records] == [(r["text"], r["question"]) for r in ROWS]
    assert meta["pattern"] == ONE_WORD and meta["top_k"] == 8
    model = load(teacher_dir)
    enc = model.encoder
    for row, record in zip(ROWS[:3], records[:3], strict=True):  # each prompt alone: no padding, no shared prefix
        ids, _, _, _, _ = enc.prompt_ids([(row["question"], row["text"])], ONE_WORD)
        with torch.no_grad():
            logp = enc.model(input_ids=ids).logits[0, -1].float().log_softmax(-1)
        values, tokens = logp.topk(8)
        assert [t for t, _ in record["top_k"]] == tokens.tolist()
        assert torch.allclose(torch.tensor([v for _, v in record["top_k"]]), values, atol=1e-4)
    assert all(r["top_k"][0][1] >= r["top_k"][-1][1] for r in records)


def test_an_interrupted_pass_resumes_with_only_the_missing_rows(teacher_dir: Path, teacher_file: Path,
                                                                tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "teacher.jsonl"
    lines = teacher_file.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:7]) + lines[7][:20])  # 7 rows, then a half-written line
    teacher_module.meta_path(out).write_text(teacher_module.meta_path(teacher_file).read_text())
    seen: list[int] = []
    real = teacher_module.answer_distribution

    def counting(encoder, pairs, *args):  # type: ignore[no-untyped-def]
        seen.append(len(pairs))
        return real(encoder, pairs, *args)

    monkeypatch.setattr(teacher_module, "answer_distribution", counting)
    teacher_pass(teacher_dir, ROWS, out, SETTINGS, progress=False)
    assert sum(seen) == len(ROWS) - 7
    resumed, _ = read_teacher(out)
    whole, _ = read_teacher(teacher_file)
    assert [r["text"] for r in resumed] == [r["text"] for r in whole]
    for a, b in zip(resumed, whole, strict=True):  # other batches: same tokens, values within float noise
        assert [t for t, _ in a["top_k"][:3]] == [t for t, _ in b["top_k"][:3]]
        assert max(abs(x - y) for (_, x), (_, y) in zip(a["top_k"], b["top_k"], strict=True)) < 1e-4


def test_a_finished_pass_reruns_without_loading_the_teacher(teacher_dir: Path, teacher_file: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    before = teacher_file.read_bytes()

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the teacher was loaded for a finished pass")

    monkeypatch.setattr("inbedder.loading.load", refuse)
    assert teacher_pass(str(teacher_dir), ROWS, teacher_file, SETTINGS, progress=False) == teacher_file
    assert teacher_file.read_bytes() == before
    with pytest.raises(AssertionError, match="was loaded"):  # one row more: the teacher is needed
        teacher_pass(str(teacher_dir), [*ROWS, {"text": "a new text", "question": "Which animal?"}], teacher_file,
                     SETTINGS, progress=False)


def test_a_file_of_another_pass_or_bank_is_refused(teacher_dir: Path, teacher_file: Path) -> None:
    with pytest.raises(InputError, match="another teacher pass .*top_k"):
        teacher_pass(teacher_dir, ROWS, teacher_file, TeacherSettings(pattern=ONE_WORD, top_k=4, max_length=64))
    with pytest.raises(InputError, match="line 1 is not the question bank's row 0"):
        teacher_pass(teacher_dir, ROWS[::-1], teacher_file, SETTINGS)
    with pytest.raises(InputError, match="row 1: 'question' must be a non-empty string"):
        teacher_pass(teacher_dir, [ROWS[0], {"text": "x", "question": " "}], teacher_file, SETTINGS)


def test_topk_kl_is_zero_for_equal_and_positive_for_other_distributions() -> None:
    p = torch.log(torch.tensor([[0.6, 0.3], [0.5, 0.1]]))
    q = torch.log(torch.tensor([[0.3, 0.6], [0.5, 0.1]]))
    kl = topk_kl(p, q)
    assert kl[0] > 0.1 and abs(float(kl[1])) < 1e-7
    exact = 0.6 * torch.log(torch.tensor(2.0)) + 0.3 * torch.log(torch.tensor(0.5))  # the rest: 0.1 vs 0.1
    assert torch.allclose(kl[0], exact, atol=1e-6)


def test_distillation_lowers_the_kl_and_the_adapter_reloads_to_the_same_vectors(base_dir: Path, teacher_file: Path,
                                                                               tmp_path: Path) -> None:
    loop = LoopSettings(steps=40, batch_size=4, lr=3e-2, seed=0, bf16=False, progress=False)
    result = train_distill(base_dir, teacher_file, tmp_path / "student",
                           settings=DistillSettings(lora_r=4, lora_alpha=8, max_length=64, dev_fraction=0.3),
                           loop=loop)
    assert result.loop.finished and result.dev_kl["after"] < 0.05 * result.dev_kl["before"]
    files = {p.name for p in (tmp_path / "student").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "inbedder.json"} <= files
    from safetensors import safe_open

    with safe_open(str(tmp_path / "student" / "adapter_model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    reloaded = load(tmp_path / "student")
    assert reloaded.encoder.pattern == ONE_WORD
    texts = list(ANIMALS)
    in_memory = Embedder(CausalEncoder(result.model, reloaded.encoder.tokenizer, pattern=ONE_WORD))
    got = reloaded.encode(texts, instruction=QUESTIONS[0])
    assert float(abs(got - in_memory.encode(texts, instruction=QUESTIONS[0])).max()) < 1e-5
    base = load(base_dir, pattern=ONE_WORD).encode(texts, instruction=QUESTIONS[0])
    assert float(abs(got - base).max()) > 1e-3
    teacher_first = [r["top_k"][0][0] for r in read_teacher(teacher_file)[0]]

    def agree(model: object, name: str) -> int:  # rows whose most likely next token is the teacher's
        top = teacher_pass(model, ROWS, tmp_path / name, TeacherSettings(pattern=ONE_WORD, top_k=1, max_length=64),
                           progress=False)
        return sum(r["top_k"][0][0] == t for r, t in zip(read_teacher(top)[0], teacher_first, strict=True))

    assert agree(reloaded, "student.jsonl") >= agree(load(base_dir), "base.jsonl") + len(ROWS) // 3


def test_a_student_with_another_vocabulary_or_missing_answers_is_refused(teacher_file: Path, base_dir: Path,
                                                                         tmp_path: Path) -> None:
    opt = build_tiny_opt(tmp_path / "opt")
    with pytest.raises(InputError, match="another vocabulary"):
        train_distill(opt, teacher_file, tmp_path / "s", loop=LoopSettings(steps=1, progress=False))
    with pytest.raises(InputError, match="record 0: answer_weight > 0 needs the teacher's 'answer'"):
        train_distill(base_dir, teacher_file, tmp_path / "s", settings=DistillSettings(answer_weight=1.0),
                      loop=LoopSettings(steps=1, progress=False))


def test_teacher_answers_train_with_the_kl(teacher_dir: Path, base_dir: Path, tmp_path: Path) -> None:
    settings = TeacherSettings(pattern=ONE_WORD, top_k=4, answer_tokens=2, max_length=64)
    path = teacher_pass(teacher_dir, ROWS[:8], tmp_path / "t.jsonl", settings, progress=False)
    records, _ = read_teacher(path)
    _, greedy = load(teacher_dir).encode([r["text"] for r in ROWS[:8]], instruction=[r["question"] for r in ROWS[:8]],
                                         return_generations=True, max_new_tokens=2)
    assert [r["answer"] for r in records] == [a.strip() for a in greedy]
    result = train_distill(base_dir, path, None, settings=DistillSettings(answer_weight=1.0, max_length=64,
                                                                          dev_fraction=0.0),
                           loop=LoopSettings(steps=3, batch_size=4, lr=1e-2, progress=False))
    assert result.loop.finished and result.output is None and len(result.loop.losses) == 3


def test_the_question_bank_never_asks_an_evaluation_question() -> None:
    texts = {"ag_news": [f"news {i}" for i in range(30)], "emotion": [f"feeling {i}" for i in range(30)],
             "qa:tweetqa": [f"tweet {i}" for i in range(30)]}
    rows = bank_rows(texts, 60, seed=0, labels={"emotion": {"emotion": ["joy", "anger", "fear"]}})
    assert len(rows) == 60 and len({r["text"] for r in rows}) == 60
    assert {r["source"] for r in rows} == set(texts)
    assert not {r["question"] for r in rows} & EVALUATION_QUESTIONS
    assert "Is the emotion here joy, anger or fear?" in {q for r in bank_rows(texts, 90, seed=1, labels={
        "emotion": {"emotion": ["joy", "anger", "fear"]}}) for q in [r["question"]]}
    only = bank_rows(texts, 20, seed=0, generic=False)
    assert all(":" in r["axis"] for r in only) and {r["source"] for r in only} == {"ag_news", "emotion"}
    assert not set(q for qs in GENERIC.values() for q in qs) & EVALUATION_QUESTIONS
    with pytest.raises(InputError, match="question 1 .* is an evaluation set's question"):
        check_questions(["Which colour?", "what is the  sentiment of the reviewer?"])


def test_cli_distils_and_resumes(teacher_dir: Path, base_dir: Path, tmp_path: Path) -> None:
    write_rows(ROWS, tmp_path / "bank.jsonl", "jsonl")
    args = ["train", "distill", "--teacher", str(teacher_dir), "--student", str(base_dir), "--bank",
            str(tmp_path / "bank.jsonl"), "-o", str(tmp_path / "student"), "--pattern", ONE_WORD, "--top-k", "4",
            "--max-length", "64", "--steps", "2", "--batch-size", "4", "--teacher-vectors", "--similarity-weight", "2"]
    first = CliRunner().invoke(main, args + ["--teacher-only"])
    assert first.exit_code == 0 and "teacher pass written" in first.output, first.output
    records, _ = read_teacher(tmp_path / "student.work" / "teacher.jsonl")
    assert len(records) == len(ROWS) and all(len(r["vector"]) == len(records[0]["vector"]) > 1 for r in records)
    stopped = CliRunner().invoke(main, args + ["--stop-after", "1"])
    assert stopped.exit_code == 0 and "run the same command again" in stopped.output, stopped.output
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0 and "trained 2 steps" in done.output, done.output
    assert json.loads((tmp_path / "student" / "inbedder.json").read_text())["adapter_of"] == str(base_dir)
    assert json.loads((tmp_path / "student" / "inbedder_training.json").read_text())["settings"][
        "similarity_weight"] == 2.0
    bad = CliRunner().invoke(main, ["train", "distill", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "give a question bank" in bad.output


DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.mark.skipif(not DATA.is_dir(), reason="the public datasets folder (../shared/data) is not beside the checkout")
def test_a_bank_from_the_public_datasets_holds_no_held_out_text() -> None:
    from inbedder.io.table import read_table
    from inbedder.training.questions import dataset_texts

    texts, labels = dataset_texts(DATA)
    rows = bank_rows(texts, 400, seed=0, labels=labels)
    assert len(rows) == 400 and {r["source"] for r in rows} == set(texts)
    held = set(read_table(DATA / "semeval14_absa" / "restaurants_test_all.csv").strings("text")) | \
        set(read_table(DATA / "mlma_hate_speech" / "en_dataset.csv").strings("tweet"))
    assert not {r["text"] for r in rows} & held
    assert len(labels["emotion"]["emotion"]) == 6 and len(labels["ag_news"]["topic"]) == 4
    assert not {r["question"] for r in bank_rows(texts, 3000, seed=1, labels=labels)} & EVALUATION_QUESTIONS


def test_teacher_vectors_are_its_embeddings_and_train_the_students_similarities(teacher_dir: Path, base_dir: Path,
                                                                                tmp_path: Path) -> None:
    settings = TeacherSettings(pattern=ONE_WORD, top_k=8, batch_size=5, max_length=64, vectors=True)
    path = teacher_pass(teacher_dir, ROWS, tmp_path / "t.jsonl", settings, progress=False)
    records, meta = read_teacher(path)
    assert meta["vectors"] is True
    teacher = load(teacher_dir, pattern=ONE_WORD)
    texts = list(ANIMALS)
    expected = teacher.encode(texts, instruction=QUESTIONS[0])
    got = torch.tensor([r["vector"] for r in records if r["question"] == QUESTIONS[0]])
    assert torch.allclose(got, torch.from_numpy(expected), rtol=1e-4, atol=1e-4)

    def agreement(model: object) -> float:  # how far the model's similarities are from the teacher's, on all texts
        from inbedder.training.distill import similarity_loss

        vectors = torch.from_numpy(model.encode(texts, instruction=QUESTIONS[0]))  # type: ignore[attr-defined]
        return float(similarity_loss(vectors, got))

    loop = LoopSettings(steps=30, batch_size=6, lr=3e-2, seed=0, bf16=False, progress=False)
    student = train_distill(base_dir, path, tmp_path / "student", settings=DistillSettings(
        similarity_weight=5.0, lora_r=4, lora_alpha=8, max_length=64, dev_fraction=0.0), loop=loop)
    assert student.loop.finished
    assert agreement(load(tmp_path / "student")) < 0.5 * agreement(load(base_dir, pattern=ONE_WORD))


def test_similarity_batches_hold_one_kind_of_question_and_need_the_teachers_vectors(
        teacher_file: Path, base_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inbedder.training import distill as distill_module

    with pytest.raises(InputError, match="record 0: similarity_weight > 0 needs the teacher's 'vector'"):
        train_distill(base_dir, teacher_file, None, settings=DistillSettings(similarity_weight=1.0),
                      loop=LoopSettings(steps=1, progress=False))
    records, meta = read_teacher(teacher_file)
    mixed = tmp_path / "mixed.jsonl"
    write_rows([{**r, "axis": "animal" if i % 3 else "colour", "vector": [float(i), 1.0]}
                for i, r in enumerate(records)], mixed, "jsonl")
    teacher_module.meta_path(mixed).write_text(json.dumps(meta))
    seen: list[list[list[int]]] = []

    def stop(model, loss, plan, *args):  # type: ignore[no-untyped-def]
        seen.append(plan.groups)
        raise RuntimeError("stop")

    monkeypatch.setattr(distill_module, "run_loop", stop)
    with pytest.raises(RuntimeError, match="stop"):
        train_distill(base_dir, mixed, None, settings=DistillSettings(similarity_weight=1.0, max_length=64,
                                                                      dev_fraction=0.0),
                      loop=LoopSettings(steps=1, progress=False))
    assert sorted(sorted(g) for g in seen[0]) == sorted([[i for i in range(len(records)) if i % 3],
                                                         list(range(0, len(records), 3))])
