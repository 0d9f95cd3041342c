"""`inbedder train answer`: answer-only loss goes down, the saved model reloads identically, a killed run resumes
to the same result, LoRA merges, a GGUF base saves without its quantization config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from helpers.tiny_causal import build_tiny_gguf
from inbedder import load
from inbedder.cli import main
from inbedder.encoders.causal import CausalEncoder
from inbedder.engine import Embedder
from inbedder.errors import InputError
from inbedder.io import write_rows
from inbedder.training.answer import AnswerSettings, encode_qa, train_answer
from inbedder.training.loop import LoopSettings

TEXTS = {"I love my cat.": "cat", "The dog ran off.": "dog", "A cat sat on the mat.": "cat",
         "My dog barks.": "dog", "The cat sleeps.": "cat", "Our dog is brown.": "dog"}
QA = [{"input": t, "instruction": "What is the animal mentioned here?", "answer": a} for t, a in TEXTS.items()]
SETTINGS = AnswerSettings(max_length=64, max_answer_tokens=8)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_labels_cover_only_the_answer_and_the_end_token(llama_dir: Path) -> None:
    encoder = load(llama_dir).encoder
    tokenizer = encoder.tokenizer
    (ids, labels), = encode_qa(encoder, QA[:1], SETTINGS)[0]
    answer = [t for t in labels if t != -100]
    assert answer[-1] == tokenizer.eos_token_id and tokenizer.decode(answer[:-1]).strip() == "cat"
    assert labels[:len(ids) - len(answer)] == [-100] * (len(ids) - len(answer))
    prompt = tokenizer.decode(ids[:len(ids) - len(answer)], skip_special_tokens=True)
    assert prompt.endswith("### Response:") and "### Input:\nI love my cat." in prompt


ONE_WORD = "chat:{input}\n\n{instruction} Answer with one word."


def test_a_chat_pattern_trains_the_prompt_the_encoder_reads(llama_dir: Path) -> None:
    encoder = load(llama_dir, pattern=ONE_WORD).encoder
    tokenizer = encoder.tokenizer
    (ids, labels), = encode_qa(encoder, QA[:1], AnswerSettings(pattern=ONE_WORD, max_length=64))[0]
    answer = [t for t in labels if t != -100]
    assert answer == tokenizer("cat", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "I love my cat.\n\nWhat is the animal "
                                             "mentioned here? Answer with one word."}], tokenize=False,
                                           add_generation_prompt=True)
    assert ids[:len(ids) - len(answer)] == tokenizer(prompt, add_special_tokens=False)["input_ids"]
    # the same prompt tokens the encoder embeds at inference
    inference, _, _, _, _ = encoder.prompt_ids([(QA[0]["instruction"], QA[0]["input"])])
    assert inference[0].tolist() == ids[:len(ids) - len(answer)]


def test_a_chat_pattern_is_learned_and_saved(llama_dir: Path, tmp_path: Path) -> None:
    loop = LoopSettings(steps=30, batch_size=3, lr=1e-2, warmup=0.1, seed=1, bf16=False, progress=False)
    train_answer(llama_dir, QA, tmp_path / "out", settings=AnswerSettings(pattern=ONE_WORD, max_length=64),
                 loop=loop)
    reloaded = load(tmp_path / "out")
    assert reloaded.encoder.pattern == ONE_WORD
    _, answers = reloaded.encode(list(TEXTS)[:2], instruction=QA[0]["instruction"], return_generations=True)
    assert [a.strip() for a in answers] == ["cat", "dog"]


def test_loss_goes_down_and_the_saved_model_reloads_identically(llama_dir: Path, tmp_path: Path) -> None:
    loop = LoopSettings(steps=30, batch_size=3, lr=1e-2, warmup=0.1, seed=1, bf16=False, progress=False)
    result = train_answer(llama_dir, QA, tmp_path / "out", dev=QA[:2], settings=SETTINGS, loop=loop)
    assert result.loop.finished and len(result.loop.losses) == 30
    assert sum(result.loop.losses[-3:]) < 0.5 * sum(result.loop.losses[:3])
    assert result.dev_loss["after"] < result.dev_loss["before"]
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert "quantization_config" not in config and (tmp_path / "out" / "model.safetensors").exists()
    reloaded = load(tmp_path / "out")
    assert reloaded.family == "causal" and reloaded.encoder.pattern == SETTINGS.pattern
    in_memory = Embedder(CausalEncoder(result.model, result.tokenizer))
    texts = list(TEXTS)
    ins = "What is the animal mentioned here?"
    assert torch.equal(torch.as_tensor(in_memory.encode(texts, instruction=ins)),
                       torch.as_tensor(reloaded.encode(texts, instruction=ins)))
    _, answers = reloaded.encode(texts[:2], instruction=ins, return_generations=True)
    assert [a.strip() for a in answers] == ["cat", "dog"]  # the toy task is learned


def test_killed_run_resumes_to_the_same_result(llama_dir: Path, tmp_path: Path) -> None:
    def run(out: Path, stop: int | None) -> object:
        loop = LoopSettings(steps=6, batch_size=2, grad_accum=2, lr=1e-3, save_every=2, seed=3, bf16=True,
                            stop_after=stop, progress=False)
        return train_answer(llama_dir, QA, out, settings=SETTINGS, loop=loop)

    whole = run(tmp_path / "whole", None)
    killed = run(tmp_path / "split", 3)
    assert not killed.loop.finished and killed.loop.step == 3 and not (tmp_path / "split" / "config.json").exists()
    resumed = run(tmp_path / "split", None)
    assert resumed.loop.resumed_from == 2 and resumed.loop.losses == whole.loop.losses
    a, b = _weights(whole.model), _weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(InputError, match="different run"):
        train_answer(llama_dir, QA[:4], tmp_path / "split", settings=SETTINGS,
                     loop=LoopSettings(steps=6, batch_size=2, grad_accum=2, lr=1e-3, save_every=2, seed=3))


def test_lora_from_gguf_merges_and_saves_a_plain_directory(llama_dir: Path, tmp_path: Path) -> None:
    gguf = build_tiny_gguf(llama_dir, tmp_path / "tiny.gguf")
    settings = AnswerSettings(max_length=64, lora=True, lora_r=4, lora_alpha=8)
    result = train_answer(gguf, QA, tmp_path / "out", settings=settings,
                          loop=LoopSettings(steps=3, batch_size=3, lr=1e-2, progress=False))
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]
    from safetensors import safe_open

    with safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "lora" in k]
    base = load(gguf).encode(list(TEXTS), instruction="Which animal?")
    trained = load(tmp_path / "out").encode(list(TEXTS), instruction="Which animal?")
    assert result.loop.finished and not torch.allclose(torch.as_tensor(base), torch.as_tensor(trained))


def test_cli_trains_and_reports(llama_dir: Path, tmp_path: Path) -> None:
    write_rows(QA, tmp_path / "qa.jsonl", "jsonl")
    args = ["train", "answer", "-m", str(llama_dir), "-d", str(tmp_path / "qa.jsonl"), "-o", str(tmp_path / "m"),
            "--steps", "2", "--batch-size", "2", "--max-length", "64"]
    result = CliRunner().invoke(main, args + ["--stop-after", "1"])
    assert result.exit_code == 0 and "run the same command again" in result.output
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "trained 2 steps" in result.output, result.output
    (tmp_path / "bad.jsonl").write_text(json.dumps({"input": "x", "instruction": "y"}) + "\n")
    bad = CliRunner().invoke(main, ["train", "answer", "-m", str(llama_dir), "-d", str(tmp_path / "bad.jsonl"),
                                    "-o", str(tmp_path / "n")])
    assert bad.exit_code == 1 and "no column 'answer'" in bad.output


@pytest.mark.parametrize("fast", [True, False])
def test_bf16_autocast_by_default_only_where_it_is_fast(monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    from inbedder import speed

    monkeypatch.setattr(speed, "cpu_bf16_ratio", lambda: 2.0 if fast else 0.6)
    assert speed.fast_bf16(torch.device("cpu")) is fast
    cpu = torch.device("cpu")
    assert LoopSettings().autocast(cpu) is fast
    assert LoopSettings(bf16=True).autocast(cpu) and not LoopSettings(bf16=False).autocast(cpu)
    assert not LoopSettings(bf16=True).autocast(torch.device("meta"))


def test_length_grouped_batches_cover_every_row_and_pad_less() -> None:
    from inbedder.training.loop import BatchPlan

    rng = __import__("random").Random(1)
    lengths = [rng.choice([rng.randint(10, 30), rng.randint(100, 128)]) for _ in range(1000)]
    rows = [list(range(1000))]

    def padded(plan: BatchPlan, epoch: int) -> int:
        return sum(max(lengths[i] for i in batch) * len(batch) for batch in plan.epoch(epoch))

    grouped, plain = BatchPlan(rows, 8, seed=3, lengths=lengths), BatchPlan(rows, 8, seed=3)
    for epoch in (0, 1):
        assert sorted(i for b in grouped.epoch(epoch) for i in b) == list(range(1000))
        assert padded(grouped, epoch) < 0.75 * padded(plain, epoch)
    assert grouped.epoch(0) != grouped.epoch(1)  # still shuffled from epoch to epoch
    assert BatchPlan(rows, 8, seed=3, lengths=lengths).epoch(1) == grouped.epoch(1)  # a pure function of the seed


def test_training_without_length_groups_is_another_run(llama_dir: Path, tmp_path: Path) -> None:
    data = QA * 3
    loop = LoopSettings(steps=2, batch_size=4, lr=1e-3, progress=False)
    grouped = train_answer(llama_dir, data, None, settings=SETTINGS, loop=loop, checkpoint=tmp_path / "a")
    plain = train_answer(llama_dir, data, None, loop=loop, checkpoint=tmp_path / "b",
                         settings=AnswerSettings(max_length=64, max_answer_tokens=8, group_by_length=False))
    assert grouped.loop.losses != plain.loop.losses


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from helpers.tiny_lms import build_tiny_roberta_mlm

    return build_tiny_roberta_mlm(tmp_path_factory.mktemp("tiny_roberta_mlm"))


def test_masked_lm_labels_sit_at_the_masks_the_encoder_appends(mlm_dir: Path) -> None:
    from inbedder.training.answer import encode_masked_qa

    encoder = load(mlm_dir).encoder
    tokenizer = encoder.tokenizer
    record = {"input": "I love cat!", "instruction": "What is the animal mentioned here?", "answer": "a cat"}
    (ids, labels), = encode_masked_qa(encoder, [record], SETTINGS)[0]
    answer = tokenizer(" a cat", add_special_tokens=False)["input_ids"]
    masks = [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id]
    assert len(answer) >= 2 and len(masks) == len(answer) and [labels[i] for i in masks] == answer
    assert all(label == -100 for i, label in enumerate(labels) if i not in masks)
    # the same ids the masked family builds at inference, with as many masks as the answer has tokens
    inference, _ = encoder.__class__(encoder.model, tokenizer, encoder.spec.__class__(pattern=SETTINGS.pattern)
                                     ).tokenize([(record["instruction"], record["input"])], len(answer))
    assert inference["input_ids"][0].tolist() == ids


def test_masked_lm_learns_the_answers_and_reloads_with_its_pattern(mlm_dir: Path, tmp_path: Path) -> None:
    loop = LoopSettings(steps=40, batch_size=3, lr=5e-3, seed=1, bf16=False, progress=False)
    result = train_answer(mlm_dir, QA, tmp_path / "out", dev=QA[:2], settings=SETTINGS, loop=loop)
    assert sum(result.loop.losses[-3:]) < 0.3 * sum(result.loop.losses[:3])
    assert result.dev_loss["after"] < result.dev_loss["before"]
    reloaded = load(tmp_path / "out")
    assert reloaded.family == "masked" and reloaded.encoder.spec.pattern == SETTINGS.pattern
    texts, ins = list(TEXTS), "What is the animal mentioned here?"
    from inbedder.encoders.masked import MaskedEncoder

    in_memory = Embedder(MaskedEncoder(result.model, result.tokenizer, reloaded.encoder.spec))
    assert torch.equal(torch.as_tensor(in_memory.encode(texts, instruction=ins)),
                       torch.as_tensor(reloaded.encode(texts, instruction=ins)))
    _, answers = reloaded.encode(texts, instruction=ins, n_mask=1, return_generations=True)
    assert [a.strip() for a in answers] == list(TEXTS.values())  # the toy task is learned


def test_masked_lm_lora_merges_into_a_plain_directory(mlm_dir: Path, tmp_path: Path) -> None:
    settings = AnswerSettings(max_length=64, max_answer_tokens=8, lora=True, lora_r=4, lora_alpha=8)
    train_answer(mlm_dir, QA, tmp_path / "out", settings=settings,
                 loop=LoopSettings(steps=3, batch_size=3, lr=1e-2, progress=False))
    from safetensors import safe_open

    with safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "lora" in k]
    ins = "Which animal?"
    base = load(mlm_dir, pattern=settings.pattern).encode(list(TEXTS), instruction=ins)
    trained = load(tmp_path / "out").encode(list(TEXTS), instruction=ins)
    assert not torch.allclose(torch.as_tensor(base), torch.as_tensor(trained))


def test_a_custom_pattern_is_what_the_saved_model_loads_with(llama_dir: Path, tmp_path: Path) -> None:
    pattern = "Text: {input}\nQuestion: {instruction}\nAnswer:"
    seen: list[str] = []
    train_answer(llama_dir, QA, tmp_path / "out", settings=AnswerSettings(pattern=pattern, max_length=64),
                 loop=LoopSettings(steps=1, batch_size=3, progress=False),
                 evaluate=lambda model: seen.append(model.encoder.pattern) or 0.0)
    assert load(tmp_path / "out").encoder.pattern == pattern and seen == [pattern]  # evaluated as it loads


def test_a_masked_lm_refuses_a_chat_pattern(mlm_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="chat pattern .* is for causal LMs .* masked LM"):
        train_answer(mlm_dir, QA, tmp_path / "out", settings=AnswerSettings(pattern=ONE_WORD),
                     loop=LoopSettings(steps=1, progress=False))
    assert not (tmp_path / "out").exists()


def test_an_encoder_without_an_lm_head_is_refused(tiny_bert_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="causal or masked language model.*instructor family.*train instructor"):
        train_answer(tiny_bert_dir, QA, tmp_path / "out", loop=LoopSettings(steps=1, progress=False))


def test_cli_trains_a_masked_lm_with_a_pattern(mlm_dir: Path, tmp_path: Path) -> None:
    write_rows(QA, tmp_path / "qa.jsonl", "jsonl")
    pattern = "Text: {input} Question: {instruction} Answer:"
    result = CliRunner().invoke(main, ["train", "answer", "-m", str(mlm_dir), "-d", str(tmp_path / "qa.jsonl"),
                                       "-o", str(tmp_path / "m"), "--steps", "2", "--pattern", pattern])
    assert result.exit_code == 0 and "trained 2 steps" in result.output, result.output
    reloaded = load(tmp_path / "m")
    assert reloaded.family == "masked" and reloaded.encoder.spec.pattern == pattern


def test_cli_scores_awareness_while_training_and_saves_the_best(llama_dir: Path, tmp_path: Path) -> None:
    write_rows(QA, tmp_path / "qa.jsonl", "jsonl")
    rows = ["text,animal,mood"] + [f"{t},{a},{m}" for (t, a), m in zip(TEXTS.items(), "abbaab", strict=True)]
    (tmp_path / "eval.csv").write_text("\n".join(rows) + "\n")
    args = ["train", "answer", "-m", str(llama_dir), "-d", str(tmp_path / "qa.jsonl"), "-o", str(tmp_path / "m"),
            "--steps", "4", "--batch-size", "3", "--max-length", "64", "--eval-data", str(tmp_path / "eval.csv"),
            "--eval-axis", "animal=Which animal?", "--eval-axis", "mood=Which mood?", "--eval-every", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "step 2: evaluation" in result.output and "step 4: evaluation" in result.output
    assert "saved the weights of step" in result.output
    training = json.loads((tmp_path / "m" / "inbedder_training.json").read_text())
    assert training["loop"]["eval_every"] == 2 and [s for s, _ in training["evals"]] == [2, 4]
    assert training["best_step"] in (2, 4) and f"saved the weights of step {training['best_step']}" in result.output
    bad = CliRunner().invoke(main, args[:10] + ["--eval-every", "2", "-o", str(tmp_path / "n")])
    assert bad.exit_code == 1 and "need --eval-data" in bad.output
