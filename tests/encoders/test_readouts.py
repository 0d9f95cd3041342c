"""model.readouts: every output value at every layer, the next-token top-k and the answers of one set of pairs, from
one forward pass and one generate() per batch, each readout bit-identical to the encode call that reads it alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from helpers.tiny_causal import build_tiny_opt
from inbedder import load
from inbedder.encoders.causal import OutputValue, passes
from inbedder.errors import InputError

TEXTS = ["I love my cat!", "The dog barks at night.", "I love my cat!", "Where is the food?",
         "Parton energy loss in QCD matter. " * 8, "A bird sang.", "Fish swim."]
QUESTION = "What is the animal mentioned here?"
VALUES = [v.value for v in OutputValue]


@pytest.fixture(scope="module")
def opt(tmp_path_factory: pytest.TempPathFactory):
    return load(build_tiny_opt(tmp_path_factory.mktemp("readouts_opt")), device="cpu", max_new_tokens=4)


@pytest.mark.parametrize("name, options", [("llama", {"batch_size": 2}),
                                           ("llama", {"pattern": "chat", "max_new_tokens": 3, "batch_size": 2}),
                                           ("opt", {"batch_size": 3, "max_new_tokens": 2})])
def test_every_readout_is_the_encode_call_that_reads_it_alone(request, name: str, options: dict[str, Any]) -> None:
    model = request.getfixturevalue(name)
    found = model.readouts(TEXTS, QUESTION, answers=True, **options)
    layers = range(model.encoder.num_layers + 1)
    assert list(found.vectors) == [(v, layer) for layer in layers for v in VALUES]  # layer-major
    for (value, layer), vectors in found.vectors.items():
        want = model.encode(TEXTS, QUESTION, output_value=value, layer=layer, **options)
        assert vectors.dtype == want.dtype and np.array_equal(vectors, want), (value, layer)
    _, answers = model.encode(TEXTS, QUESTION, output_value="avg_gen", return_generations=True, **options)
    assert found.answers == answers
    assert found.top_k_ids is None and found.top_k_logprobs is None and found.generate_seconds > 0


def test_the_opt_projection_keeps_each_layers_width(opt) -> None:
    found = opt.readouts(TEXTS, QUESTION, values=["fst_gen"], layers=[1, 2])
    assert found.vectors[("fst_gen", 1)].shape == (7, 32) and found.vectors[("fst_gen", 2)].shape == (7, 16)


def test_the_top_k_is_the_next_token_distribution_at_the_answer_position(llama) -> None:
    found = llama.readouts(TEXTS, QUESTION, values=[], next_token_top_k=5, batch_size=3)
    assert found.vectors == {} and found.answers is None and found.generate_seconds == 0
    assert found.top_k_ids.shape == found.top_k_logprobs.shape == (7, 5)
    enc = llama.encoder
    for i, text in enumerate(TEXTS):  # each prompt alone: no padding, no shared prefix
        ids, _, _, _, _ = enc.prompt_ids([(QUESTION, text)], limit=enc.max_length - enc.generation.max_new_tokens)
        with torch.no_grad():
            logp = enc.model(input_ids=ids).logits[0, -1].float().log_softmax(-1)
        values, tokens = logp.topk(5)
        assert found.top_k_ids[i].tolist() == tokens.tolist()
        assert np.abs(found.top_k_logprobs[i] - values.numpy()).max() <= 1e-5
    np.testing.assert_array_equal(found.top_k_ids[0], found.top_k_ids[2])  # the same pair, computed once


def test_one_pass_and_one_generate_per_batch(llama, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"one_pass": 0, "generate": 0}
    for name in calls:
        real = getattr(passes.Passes, name)

        def spy(*args: Any, _real: Any = real, _name: str = name) -> Any:
            calls[_name] += 1
            return _real(*args)

        monkeypatch.setattr(passes.Passes, name, spy)
    llama.readouts(TEXTS, QUESTION, next_token_top_k=3, answers=True, batch_size=2)
    assert calls == {"one_pass": 3, "generate": 3}  # 6 unique texts in batches of 2
    llama.readouts(TEXTS, QUESTION, values=["avg_ppt"], batch_size=4)
    assert calls == {"one_pass": 5, "generate": 3}  # no answer wanted: no generate()


def test_generation_settings_and_layers_as_asked(llama) -> None:
    options = {"max_new_tokens": 3, "do_sample": True, "temperature": 0.7, "seed": 3, "filter_words": ["the"]}
    found = llama.readouts(TEXTS, QUESTION, values=["avg_all", "last_gen"], layers=[-1, 2, 1], answers=True,
                           **options)
    assert list(found.vectors) == [("avg_all", -1), ("last_gen", -1), ("avg_all", 2), ("last_gen", 2),
                                   ("avg_all", 1), ("last_gen", 1)]
    np.testing.assert_array_equal(found.vectors[("avg_all", -1)], found.vectors[("avg_all", 2)])
    want, answers = llama.encode(TEXTS, QUESTION, output_value="last_gen", layer=1, return_generations=True,
                                 **options)
    np.testing.assert_array_equal(found.vectors[("last_gen", 1)], want)
    assert found.answers == answers


def test_a_single_text_and_raw_prompts(llama) -> None:
    one = llama.readouts(TEXTS[1], QUESTION, values=["avg_ppt"], layers=[1], next_token_top_k=2, answers=True)
    assert one.vectors[("avg_ppt", 1)].shape == (32,) and one.top_k_ids.shape == (2,) and isinstance(one.answers, str)
    np.testing.assert_array_equal(one.vectors[("avg_ppt", 1)],
                                  llama.encode(TEXTS[1], QUESTION, output_value="avg_ppt", layer=1))
    raw = llama.readouts(TEXTS, None, values=["fst_gen"], layers=[2])
    np.testing.assert_array_equal(raw.vectors[("fst_gen", 2)], llama.encode(TEXTS, None, layer=2))


def test_what_readouts_refuses(llama, tiny_bert, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="output_value= is encode's option"):
        llama.readouts(TEXTS, QUESTION, output_value="avg_gen")
    with pytest.raises(InputError, match="names a layer"):
        llama.readouts(TEXTS, QUESTION, values=["avg_gen_layer_1"])
    with pytest.raises(InputError, match="not valid; choose one of"):
        llama.readouts(TEXTS, QUESTION, values=["avg_gem"])
    with pytest.raises(InputError, match="out of range"):
        llama.readouts(TEXTS, QUESTION, layers=[3])
    with pytest.raises(InputError, match="next_token_top_k=-1"):
        llama.readouts(TEXTS, QUESTION, next_token_top_k=-1)
    with pytest.raises(InputError, match="not used by the causal family"):
        llama.readouts(TEXTS, QUESTION, normalize=True)
    with pytest.raises(InputError, match="the causal family"):
        tiny_bert.readouts(TEXTS, QUESTION)
