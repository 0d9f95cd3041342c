"""The seq2seq family on a tiny random flan-t5-style T5ForConditionalGeneration.

Against the reference ``Seq2SeqLMEncoder`` of zhang-yu-wei/InBedder (it runs in the reference venv): every
output value, encoder and decoder layers, ``filter_words``, ``re_encode``, prompts cut to the length limit,
greedy decoding, fp32, <= 1e-4, generations equal. The tiny model's answers include rows that stop early, rows
of sentinel tokens only (the reference then reads the first step) and ordinary tokens.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.tiny_lms import TextStats, build_tiny_flan_t5, build_tiny_roberta_base, run_lm_reference
from inbedder import load
from inbedder.compat import Seq2SeqLMEncoder
from inbedder.encoders.base import Output
from inbedder.encoders.seq2seq import INBEDDER_PATTERN, Seq2SeqSettings
from inbedder.errors import InputError, ModelLoadError

TEXTS = ["I love cat!", "I love dog! The quick brown fox jumps over the lazy dog.", "I dislike cat!", "abc",
         "Where is the food stored in a yam plant?", "Represent the Science title: 3D ActionSLAM", "",
         "The funds rose less than 0.5 per cent on Friday.", "Parton energy loss in QCD matter."]
INSTRUCTIONS = ["What is the animal mentioned here?", "What is the emotion expressed here?"]
PAIRS = [(i, t) for t in TEXTS for i in INSTRUCTIONS]
SENTENCES = [INBEDDER_PATTERN.replace("{input}", t).replace("{instruction}", i) for i, t in PAIRS]
LIMIT, NEW, TOL = 40, 6, 1e-4
FILTER = ["p", "dog"]
CALLS = [("avg_gen_layer_2", None), ("first_gen_layer_1", None), ("last_gen_layer_2", None),
         ("avg_ppt_layer_2", None), ("avg_ppt_layer_0", None), ("avg_gen_layer_2", FILTER), ("re_encode", None),
         ("re_encode", FILTER)]


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_flan_t5(tmp_path_factory.mktemp("tiny_flan_t5"))


@pytest.fixture(scope="module")
def t5(t5_dir: Path):
    return load(t5_dir, device="cpu", max_new_tokens=NEW, max_length=LIMIT)


@pytest.fixture(scope="module")
def reference(t5_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[np.ndarray, list[str]]]:
    init = {"model_name_or_path": str(t5_dir), "max_input_length": LIMIT, "max_new_tokens": NEW, "do_sample": False,
            "num_beams": 1}
    calls = [{"output_value": v, "encode": {"batch_size": 4, "filter_words": f}, "sentences": SENTENCES}
             for v, f in CALLS]
    job = {"class": "Seq2SeqLMEncoder", "init": init, "reencoder": True, "calls": calls}
    return run_lm_reference(job, tmp_path_factory.mktemp("seq2seq_reference"))


def quiet_encode(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the prompts cut to the limit
        return model.encode(*args, **kwargs)


def test_reference_seq2seq_encoder_parity(t5_dir: Path, reference) -> None:
    model = Seq2SeqLMEncoder(str(t5_dir), max_input_length=LIMIT, reencoder=TextStats(), max_new_tokens=NEW,
                             do_sample=False, num_beams=1)
    assert max(len(model.tokenizer(s)["input_ids"]) for s in SENTENCES) > LIMIT  # some prompts are cut
    for (value, words), (ref_vectors, ref_generations) in zip(CALLS, reference, strict=True):
        model.set_output_value(value)
        vectors, generations = quiet_encode(model, SENTENCES, batch_size=4, return_generations=True,
                                            filter_words=words)
        assert vectors.shape == ref_vectors.shape
        assert np.abs(vectors - ref_vectors).max() <= TOL, (value, words)
        assert generations == ref_generations


def test_tiny_answers_cover_the_special_cases(t5) -> None:
    _, answers = quiet_encode(t5, [t for _, t in PAIRS], instruction=[i for i, _ in PAIRS], return_generations=True)
    assert "" in answers  # only special tokens generated: the first decoder step is read
    assert any(a.strip() for a in answers) and len(set(answers)) > 3


def test_library_api_matches_reference(t5, reference) -> None:
    vectors, answers = quiet_encode(t5, [t for _, t in PAIRS], instruction=[i for i, _ in PAIRS], batch_size=5,
                                    return_generations=True)
    assert np.abs(vectors - reference[0][0]).max() <= TOL
    assert [s + a for s, a in zip(SENTENCES, answers, strict=True)] == reference[0][1]
    filtered = quiet_encode(t5, [t for _, t in PAIRS], instruction=[i for i, _ in PAIRS], filter_words=FILTER)
    assert np.abs(filtered - reference[5][0]).max() <= TOL
    assert not np.allclose(filtered, vectors)  # the filter changed some rows
    first = quiet_encode(t5, [t for _, t in PAIRS], instruction=[i for i, _ in PAIRS], output_value="first_gen",
                         layer=1)
    assert np.abs(first - reference[1][0]).max() <= TOL


def test_encoder_only_path_without_answers(t5) -> None:
    pairs = PAIRS[:5]
    encoder = t5.encoder
    with torch.inference_mode():
        full = encoder.embed_batch(pairs, Output.SENTENCE, output_value="avg_ppt")
        fast = encoder.embed_batch(pairs, Output.SENTENCE, return_generations=False, output_value="avg_ppt")
    assert fast.answers is None and full.answers is not None
    assert (full.vectors - fast.vectors).abs().max().item() <= 1e-5


def test_generation_options(t5) -> None:
    _, short = quiet_encode(t5, TEXTS[:4], instruction=INSTRUCTIONS[0], max_new_tokens=1, return_generations=True)
    _, longer = quiet_encode(t5, TEXTS[:4], instruction=INSTRUCTIONS[0], return_generations=True)
    assert all(len(t5.encoder.tokenizer(a, add_special_tokens=False)["input_ids"]) <= 2 for a in short)
    assert short != longer
    with pytest.raises(InputError, match="max_new_tokens must be >= 1; got 0"):
        t5.encode(TEXTS, instruction="q", max_new_tokens=0)
    with pytest.raises(InputError, match=r"\['num_beams'\] cannot be set there"):
        Seq2SeqSettings(generation={"num_beams": 4})
    with pytest.raises(InputError, match="generate\\(\\) rejected"):
        load(t5.source, device="cpu", generation={"not_an_option": 1}).encode("x")


def test_bad_inputs_surface(t5) -> None:
    with pytest.raises(InputError, match="Did you mean 'last_gen'"):
        t5.encode(TEXTS, instruction="q", output_value="lst_gen")
    with pytest.raises(InputError, match="layer=3 is out of range for the decoder"):
        t5.encode(TEXTS, instruction="q", layer=3)
    with pytest.raises(InputError, match="got 2 instructions for 9 texts"):
        t5.encode(TEXTS, instruction=INSTRUCTIONS)
    with pytest.raises(InputError, match="sentence vectors only"):
        t5.encode(TEXTS, instruction="q", output="all")
    with pytest.raises(InputError, match="not used by the seq2seq family"):
        t5.encode(TEXTS, instruction="q", n_mask=3)
    with pytest.raises(InputError, match="has no {instruction} placeholder"):
        load(t5.source, device="cpu", pattern="Q: {input}").encode("x", instruction="why?")


def test_checkpoints_that_cannot_answer(tmp_path: Path) -> None:
    base = build_tiny_roberta_base(tmp_path / "base")
    with pytest.raises(ModelLoadError, match="seq2seq family needs an encoder-decoder checkpoint with its LM head"):
        load(base, family="seq2seq", device="cpu")
    with pytest.raises(InputError, match="Seq2SeqLMEncoder needs one of the seq2seq family"):
        Seq2SeqLMEncoder(str(base))


def test_detected_and_described(t5) -> None:
    assert t5.family == "seq2seq" and t5.dim == 32
    settings = t5.encoder.settings()
    assert settings["output_value"] == "avg_gen" and settings["layer"] == 2 and settings["max_new_tokens"] == NEW


def test_reference_values_listed(t5_dir: Path) -> None:
    model = Seq2SeqLMEncoder(str(t5_dir), max_new_tokens=2)
    assert model.get_last_output_values() == ["avg_gen_layer_2", "avg_ppt_layer_2", "last_gen_layer_2",
                                              "first_gen_layer_2", "re_encode"]
    assert len(model.get_all_output_values()) == 4 * 3 + 1
    vectors, generations = model.encode(SENTENCES[0], return_generations=True)
    assert vectors.shape == (32,) and isinstance(generations, list) and generations[0].startswith(SENTENCES[0])
    tensor = model.encode(SENTENCES[:2], convert_to_tensor=True, normalize_embeddings=True)
    assert isinstance(tensor, torch.Tensor) and torch.allclose(tensor.norm(dim=1), torch.ones(2), atol=1e-5)


def test_bfloat16(t5_dir: Path) -> None:
    half = load(t5_dir, device="cpu", dtype="bfloat16", max_new_tokens=3)
    vectors, answers = half.encode(TEXTS[:4], instruction=INSTRUCTIONS[0], return_generations=True)
    assert vectors.dtype == np.float32 and vectors.shape == (4, 32) and np.isfinite(vectors).all()
    assert len(answers) == 4 and half.encoder.settings()["dtype"] == "bfloat16"
