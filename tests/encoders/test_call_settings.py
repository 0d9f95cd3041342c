"""A call's family options are read once per ``encode`` call (``Encoder.prepare``), not once per batch.

The causal family reads them with ``read_call`` into a frozen ``CallSettings``; these tests count those reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inbedder import load
from inbedder.encoders.base import Output
from inbedder.encoders.causal import CallSettings
from inbedder.encoders.causal import encoder as causal_encoder
from inbedder.errors import InputError

TEXTS = ["I love cat!", "I dislike dog!", "The funds rose less than 0.5 per cent on Friday.", "Where is the food?",
         "A bird sang."]
ANIMAL = "What is the animal mentioned here?"
LONG = "Parton energy loss in QCD matter and the chiral phase transition. " * 6


@pytest.fixture()
def reads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The options of every read of a call's options by the causal family."""
    seen: list[dict[str, Any]] = []
    original = causal_encoder.read_call

    def counting(options: Any, own: Any, generations: bool = False) -> CallSettings:
        seen.append(dict(options))
        return original(options, own, generations)

    monkeypatch.setattr(causal_encoder, "read_call", counting)
    return seen


@pytest.mark.parametrize("call", [
    {"output_value": "avg_ppt", "layer": 1},
    {"output_value": "fst_gen", "return_generations": True},
    {"output_value": "avg_gen", "filter_words": ["the"]},
    {"output_value": "fst_gen", "max_tokens_per_batch": 40},
    {"output_value": "avg_ppt", "output": "all"},
    {"output_value": "fst_gen", "instructions": [ANIMAL, "How does it feel?"]},
    {"output_value": "avg_gen", "instructions": [ANIMAL, "How does it feel?"]},
])
def test_a_call_with_several_batches_reads_its_options_once(llama, reads, call: dict[str, Any]) -> None:
    kwargs = {"instruction": None if "instructions" in call else ANIMAL, "batch_size": 2, **call}
    out = llama.encode(TEXTS, **kwargs)
    assert len(reads) == 1, reads
    assert reads[0]["output_value"] == call["output_value"]
    reads.clear()
    one_batch = llama.encode(TEXTS, **{**kwargs, "batch_size": 64, "max_tokens_per_batch": None})
    assert len(reads) == 1
    vectors = out[0] if isinstance(out, tuple) else out
    expected = one_batch[0] if isinstance(one_batch, tuple) else one_batch
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_cache_misses_and_long_text_windows_read_the_options_once(llama_dir: Path, reads, tmp_path: Path) -> None:
    model = load(llama_dir, device="cpu", max_new_tokens=3, max_length=64)
    cache = tmp_path / "cache.sqlite"
    model.encode(TEXTS[:2], instruction=ANIMAL, output_value="avg_ppt", cache=str(cache))
    reads.clear()
    model.encode(TEXTS, instruction=ANIMAL, output_value="avg_ppt", batch_size=1, cache=str(cache))
    assert len(reads) == 1  # three misses, three batches
    reads.clear()
    model.encode([LONG, *TEXTS], instruction=ANIMAL, output_value="avg_ppt", batch_size=2, long_text="chunk")
    assert len(reads) == 1  # the windows' lengths and every batch of windows


def test_bad_options_fail_before_any_pass_with_the_same_message(llama, monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[str] = []
    for name in ("one_pass", "generate", "shared_pass"):
        monkeypatch.setattr(llama.encoder.passes, name, lambda *a, _n=name, **k: passes.append(_n))
    for options, message in [({"output_value": "fst_gn"}, "output_value='fst_gn' is not valid"),
                             ({"layer": 7}, "layer=7 is out of range"),
                             ({"pattern": "no slots"}, "must contain {input} exactly once"),
                             ({"max_new_tokens": 0}, "max_new_tokens=0 is not valid")]:
        for extra in ({}, {"instructions": [ANIMAL, "Why?"]}, {"long_text": "chunk"}):
            instruction = None if extra.get("instructions") else ANIMAL
            with pytest.raises(InputError, match=message.replace("{", r"\{").replace("}", r"\}")):
                llama.encode(TEXTS, instruction, batch_size=2, **options, **extra)
            with pytest.raises(InputError, match=message.replace("{", r"\{").replace("}", r"\}")):
                llama.encoder.embed_batch([(ANIMAL, TEXTS[0])], Output.SENTENCE, **options)
    with pytest.raises(InputError, match="output_value='fst_gn' is not valid"):
        llama.encode([], ANIMAL, output_value="fst_gn")  # no batch at all: the options are still read
    assert passes == []


def test_embed_batch_with_plain_options_reads_them_itself(llama, reads) -> None:
    pairs = [(ANIMAL, t) for t in TEXTS[:3]]
    plain = llama.encoder.embed_batch(pairs, Output.SENTENCE, return_generations=True, output_value="avg_gen",
                                      layer=1)
    assert len(reads) == 1 and plain.answers is not None and len(plain.answers) == 3
    prepared = llama.encoder.prepare({"output_value": "avg_gen", "layer": 1})
    assert set(prepared) == {"call"} and isinstance(prepared["call"], CallSettings)
    assert llama.encoder.prepare(prepared) is prepared  # prepared options pass as they are
    assert len(reads) == 2
    again = llama.encoder.embed_batch(pairs, Output.SENTENCE, return_generations=True, **prepared)
    assert len(reads) == 2
    np.testing.assert_array_equal(plain.vectors.numpy(), again.vectors.numpy())
    assert plain.answers == again.answers
    encoded = llama.encode(TEXTS[:3], instruction=ANIMAL, output_value="avg_gen", layer=1)
    np.testing.assert_allclose(plain.vectors.numpy(), encoded, atol=1e-5)
    with pytest.raises(InputError, match="option 'call' is not used by the causal family"):
        llama.encoder.embed_batch(pairs, Output.SENTENCE, call="avg_gen")


def test_other_families_get_their_options_unchanged(tiny_bert) -> None:
    options = {"anything": 1}
    assert tiny_bert.encoder.prepare(options) is options
