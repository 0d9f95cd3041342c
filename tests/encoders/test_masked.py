"""The masked-LM family on a tiny random RobertaForMaskedLM.

* against the model card's ``InBedder`` class (restated below as the reference algorithm): <= 1e-5, one
  instruction or one per row, batch sizes 1 and several;
* against the reference ``MaskededLMEncoder`` of zhang-yu-wei/InBedder (pattern prompts, left truncation, every
  output value, ``re_encode``): <= 1e-4 fp32, generations equal; it runs in the reference venv;
* bad input and bad checkpoints fail with errors that say what is valid.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForMaskedLM, AutoTokenizer

from helpers.tiny_lms import TextStats, build_tiny_roberta_base, build_tiny_roberta_mlm, run_lm_reference
from inbedder import load
from inbedder.compat import InBedder, MaskededLMEncoder, MaskedLMEncoder
from inbedder.encoders.base import Output
from inbedder.encoders.masked import INBEDDER_PATTERN, MaskedSettings
from inbedder.errors import InputError, InputTypeError, ModelLoadError

TEXTS = ["I love cat!", "I love dog! The quick brown fox jumps over the lazy dog.", "I dislike cat!", "",
         "Where is the food stored in a yam plant?", "I love cat!", "Parton energy loss in QCD matter.", "abc"]
INSTRUCTIONS = ["What is the animal mentioned here?", "What is the emotion expressed here?"]
PER_ROW = [INSTRUCTIONS[i % 2] for i in range(len(TEXTS))]
SEED_TOL, REF_TOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_roberta_mlm(tmp_path_factory.mktemp("tiny_roberta_mlm"))


@pytest.fixture(scope="module")
def mlm(mlm_dir: Path):
    return load(mlm_dir, device="cpu")


def seed_inbedder(path: Path, texts: list[str], instruction: str | list[str], n_mask: int) -> torch.Tensor:
    """The model card's ``InBedder.encode``, restated: one batch of (text, instruction + masks) pairs; the
    states at the masks through lm_head.dense, gelu and lm_head.layer_norm; mean over the masks; then each
    row minus its mean, over its (unbiased) standard deviation."""
    model, tokenizer = AutoModelForMaskedLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    instructions = [instruction] * len(texts) if isinstance(instruction, str) else instruction
    second = [ins + tokenizer.mask_token * n_mask for ins in instructions]
    batch = tokenizer(texts, second, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        states = model.roberta(**batch).last_hidden_state[batch.input_ids.eq(tokenizer.mask_token_id)]
        head = model.lm_head
        z = head.layer_norm(F.gelu(head.dense(states))).reshape(len(texts), n_mask, -1).mean(1)
        return (z - z.mean(1, keepdim=True)) / z.std(1, keepdim=True)


@pytest.mark.parametrize("batch_size", [1, 3, 32])
@pytest.mark.parametrize("per_row", [False, True], ids=["one-instruction", "per-row"])
def test_matches_model_card_inbedder(mlm, mlm_dir: Path, batch_size: int, per_row: bool) -> None:
    instruction = PER_ROW if per_row else INSTRUCTIONS[0]
    expected = seed_inbedder(mlm_dir, TEXTS, instruction, 3).numpy()
    got = mlm.encode(TEXTS, instruction=instruction, n_mask=3, batch_size=batch_size)
    assert got.shape == (len(TEXTS), 32) and got.dtype == np.float32
    assert np.abs(got - expected).max() <= SEED_TOL
    np.testing.assert_allclose(got.mean(1), 0.0, atol=1e-5)
    np.testing.assert_allclose(got.std(1, ddof=1), 1.0, atol=1e-5)


def test_n_mask_per_call_and_single_text(mlm, mlm_dir: Path) -> None:
    expected = seed_inbedder(mlm_dir, TEXTS[:3], INSTRUCTIONS[1], 5).numpy()
    assert np.abs(mlm.encode(TEXTS[:3], instruction=INSTRUCTIONS[1], n_mask=5) - expected).max() <= SEED_TOL
    one = mlm.encode(TEXTS[0], instruction=INSTRUCTIONS[1], n_mask=5)
    assert one.shape == (32,) and np.abs(one - expected[0]).max() <= SEED_TOL


def test_compat_inbedder_class(mlm_dir: Path) -> None:
    model = InBedder(str(mlm_dir), device="cpu")
    expected = seed_inbedder(mlm_dir, TEXTS, PER_ROW, 3)
    got = model.encode(TEXTS, PER_ROW, 3)
    assert isinstance(got, torch.Tensor) and got.device == torch.device("cpu") and got.shape == expected.shape
    assert (got - expected).abs().max().item() <= SEED_TOL
    assert model.vocab[model.tokenizer.mask_token_id] == "<mask>"
    assert model.dense is not None and model.layer_norm is not None


def test_answers_are_the_predicted_mask_tokens(mlm, mlm_dir: Path) -> None:
    model, tokenizer = AutoModelForMaskedLM.from_pretrained(mlm_dir), AutoTokenizer.from_pretrained(mlm_dir)
    batch = tokenizer(TEXTS, [ins + "<mask>" * 2 for ins in PER_ROW], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits[batch.input_ids.eq(tokenizer.mask_token_id)].reshape(len(TEXTS), 2, -1)
    expected = tokenizer.batch_decode(logits.argmax(-1), skip_special_tokens=True)
    vectors, answers = mlm.encode(TEXTS, instruction=PER_ROW, n_mask=2, return_generations=True, batch_size=3)
    assert answers == expected and vectors.shape == (len(TEXTS), 32)
    assert mlm.encode(TEXTS[1], instruction="Why?", return_generations=True)[1] == \
        mlm.encode([TEXTS[1]], instruction="Why?", return_generations=True)[1][0]


def test_output_values_and_layers(mlm) -> None:
    named = mlm.encode(TEXTS, instruction=INSTRUCTIONS[0], output_value="avg_gen_layer_1")
    split = mlm.encode(TEXTS, instruction=INSTRUCTIONS[0], output_value="avg_gen", layer=1)
    negative = mlm.encode(TEXTS, instruction=INSTRUCTIONS[0], output_value="avg_gen", layer=-2)
    assert np.array_equal(named, split) and np.array_equal(named, negative)
    values = {v: mlm.encode(TEXTS, instruction=INSTRUCTIONS[0], output_value=v) for v in
              ("head", "avg_gen", "avg_ppt", "avg_all")}
    assert all(np.isfinite(v).all() for v in values.values())
    assert not np.allclose(values["avg_gen"], values["avg_ppt"]) and not np.allclose(values["head"], values["avg_gen"])
    with pytest.raises(InputError, match=r"layer=3 is out of range.*0 \(embeddings\) to 2"):
        mlm.encode(TEXTS, instruction="q", layer=3)
    with pytest.raises(InputError, match="Did you mean 'avg_gen'"):
        mlm.encode(TEXTS, instruction="q", output_value="avg_gne")
    with pytest.raises(InputError, match="names layer 1 but layer=2"):
        mlm.encode(TEXTS, instruction="q", output_value="avg_ppt_layer_1", layer=2)


def test_bad_inputs_surface(mlm) -> None:
    with pytest.raises(InputError, match="n_mask must be >= 1; got 0"):
        mlm.encode(TEXTS, instruction="q", n_mask=0)
    with pytest.raises(InputTypeError, match="n_mask must be an int"):
        mlm.encode(TEXTS, instruction="q", n_mask="3")
    with pytest.raises(InputError, match="got 2 instructions for 8 texts"):
        mlm.encode(TEXTS, instruction=INSTRUCTIONS)
    with pytest.raises(InputTypeError, match="row 1"):
        mlm.encode(["fine", 42], instruction="q")
    with pytest.raises(InputError, match="not used by the masked family"):
        mlm.encode(TEXTS, instruction="q", max_new_tokens=3)
    with pytest.raises(InputError, match="sentence vectors only"):
        mlm.encode(TEXTS, instruction="q", output="token")
    with pytest.raises(InputError, match="n_mask must be >= 1"):
        MaskedSettings(n_mask=0)
    with pytest.raises(InputError, match=r"\{input\} exactly once"):
        MaskedSettings(pattern="no placeholder")


def test_long_inputs_keep_their_masks(mlm_dir: Path) -> None:
    long_text = "The quick brown fox jumps over the lazy dog. " * 20
    for pattern in (None, INBEDDER_PATTERN):
        model = load(mlm_dir, device="cpu", pattern=pattern, max_length=40)
        with pytest.warns(UserWarning, match="1 of 2 texts"):
            vectors, answers = model.encode([long_text, "short"], instruction="Which animal?", return_generations=True)
        assert np.isfinite(vectors).all() and len(answers) == 2
        result = model.encoder.embed_batch([("Which animal?", long_text)], Output.SENTENCE)
        assert result.truncated == 1 and result.n_tokens == 40
    with pytest.raises(InputError, match="longer than the model's limit of 40 tokens"):
        load(mlm_dir, device="cpu", max_length=40).encode(["x"], instruction="why " * 60)


def test_checkpoint_without_lm_head(tmp_path: Path) -> None:
    base = build_tiny_roberta_base(tmp_path / "base")
    with pytest.raises(ModelLoadError, match="masked family needs a masked-LM checkpoint with its LM head"):
        load(base, family="masked", device="cpu")
    with pytest.raises(InputError, match="instructor family; MaskedLMEncoder needs one of the masked family"):
        MaskedLMEncoder(str(base), mask_length=3)


def test_detected_and_described(mlm) -> None:
    assert mlm.family == "masked" and mlm.dim == 32
    settings = mlm.encoder.settings()
    assert settings["output_value"] == "head" and settings["layer"] == 2 and settings["n_mask"] == 3


# -- the reference MaskededLMEncoder --------------------------------------------------------------------------
REF_LIMIT = 40
SENTENCES = [INBEDDER_PATTERN.replace("{input}", t).replace("{instruction}", i)
             for t, i in zip(TEXTS, PER_ROW, strict=True)]
CALLS = [("avg_gen_layer_2", 3), ("avg_ppt_layer_1", 3), ("avg_all_layer_0", 2), ("avg_gen_layer_2", 1),
         ("re_encode", 3)]


@pytest.fixture(scope="module")
def reference(mlm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[np.ndarray, list[str]]]:
    job = {"class": "MaskededLMEncoder", "reencoder": True,
           "init": {"model_name_or_path": str(mlm_dir), "mask_length": 3, "max_input_length": REF_LIMIT},
           "calls": [{"output_value": v, "encode": {"batch_size": b}, "sentences": SENTENCES} for v, b in CALLS]}
    return run_lm_reference(job, tmp_path_factory.mktemp("masked_reference"))


def test_reference_masked_encoder_parity(mlm_dir: Path, reference) -> None:
    model = MaskededLMEncoder(str(mlm_dir), mask_length=3, max_input_length=REF_LIMIT, reencoder=TextStats())
    assert MaskededLMEncoder is MaskedLMEncoder
    tokens = [len(model.tokenizer(s)["input_ids"]) + 3 for s in SENTENCES]
    assert max(tokens) > REF_LIMIT  # some prompts are cut from the left
    for (value, batch_size), (ref_vectors, ref_generations) in zip(CALLS, reference, strict=True):
        model.set_output_value(value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            vectors, generations = model.encode(SENTENCES, batch_size=batch_size, return_generations=True)
        assert vectors.shape == ref_vectors.shape
        assert np.abs(vectors - ref_vectors).max() <= REF_TOL, value
        # the reference also decodes its predictions at padding, which depend on the batch: compare the rest
        assert all(r.startswith(g) for g, r in zip(generations, ref_generations, strict=True))
        if batch_size == 1:
            assert generations == ref_generations


def test_library_pattern_mode_matches_reference(mlm_dir: Path, reference) -> None:
    model = load(mlm_dir, device="cpu", pattern=INBEDDER_PATTERN, output_value="avg_gen", max_length=REF_LIMIT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        vectors = model.encode(TEXTS, instruction=PER_ROW, batch_size=4)
    assert np.abs(vectors - reference[0][0]).max() <= REF_TOL


def test_reference_values_listed(mlm_dir: Path) -> None:
    model = MaskedLMEncoder(str(mlm_dir), mask_length=3)
    assert model.get_last_output_values() == ["avg_gen_layer_2", "avg_ppt_layer_2", "avg_all_layer_2", "re_encode"]
    assert len(model.get_all_output_values()) == 3 * 3 + 1
    with pytest.raises(InputError, match="needs a reencoder"):
        model.set_output_value("re_encode")
        model.encode(["a"])
    with pytest.raises(InputError, match="is not valid"):
        model.set_output_value("fst_gen_layer_1")
    with pytest.raises(InputError, match="needs mask_length"):
        MaskedLMEncoder(str(mlm_dir))


def test_bert_style_head_and_bfloat16(tmp_path: Path, mlm_dir: Path) -> None:
    from transformers import BertConfig, BertForMaskedLM

    from helpers.tiny_models import bert_tokenizer

    vocab = bert_tokenizer(tmp_path)
    torch.manual_seed(3)
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=0)
    BertForMaskedLM(config).save_pretrained(tmp_path)
    model = load(tmp_path, device="cpu")
    bert, tokenizer = model.encoder.model, model.encoder.tokenizer
    batch = tokenizer(TEXTS[:3], [INSTRUCTIONS[0] + "[MASK]" * 3] * 3, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = bert.bert(**batch).last_hidden_state[batch.input_ids.eq(tokenizer.mask_token_id)]
        z = bert.cls.predictions.transform(states).reshape(3, 3, -1).mean(1)
    expected = ((z - z.mean(1, keepdim=True)) / z.std(1, keepdim=True)).numpy()
    assert np.abs(model.encode(TEXTS[:3], instruction=INSTRUCTIONS[0]) - expected).max() <= SEED_TOL
    assert np.isfinite(model.encode(TEXTS[:3], instruction="q", output_value="avg_ppt")).all()  # no eos token

    half = load(mlm_dir, device="cpu", dtype="bfloat16")
    full = seed_inbedder(mlm_dir, TEXTS, INSTRUCTIONS[0], 3).numpy()
    got = half.encode(TEXTS, instruction=INSTRUCTIONS[0])
    assert got.dtype == np.float32 and np.abs(got - full).max() < 0.2


def test_compat_cache_dir_keeps_each_output_value(mlm_dir: Path, tmp_path: Path) -> None:
    model = MaskedLMEncoder(str(mlm_dir), mask_length=3)
    first = {}
    for value in ("avg_gen_layer_2", "avg_ppt_layer_1"):
        model.set_output_value(value)
        first[value] = model.encode(SENTENCES, cache_dir=str(tmp_path), return_generations=True)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2
    for value, (vectors, generations) in first.items():
        model.set_output_value(value)
        again, generations_again = model.encode(SENTENCES, cache_dir=str(tmp_path), return_generations=True)
        assert np.array_equal(again, vectors) and generations_again == generations
