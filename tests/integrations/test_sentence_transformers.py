"""Export to sentence-transformers: the exported directory gives inbedder's vectors in sentence-transformers."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from inbedder import load
from inbedder.errors import InputError, InputTypeError
from inbedder.integrations.sentence_transformers import export, prompt_mismatch

pytest.importorskip("sentence_transformers")
from sentence_transformers import SentenceTransformer  # noqa: E402

TEXTS = ["3D ActionSLAM: wearable person tracking in multi-floor environments",
         "The Federal Reserve on Wednesday raised its benchmark interest rate.",
         "I love cat!", "Parton energy loss in QCD matter. " * 12]  # the last one is truncated
INSTRUCTIONS = ["Represent the Science title:", "Represent the Financial statement:",
                "What is the animal mentioned here?"]


def _st(directory) -> SentenceTransformer:
    return SentenceTransformer(str(directory), device="cpu")


@pytest.mark.parametrize("fixture", ["tiny_t5", "tiny_bert"])
def test_exported_model_gives_the_same_vectors(fixture, request, tmp_path):
    model = request.getfixturevalue(fixture)
    export(model, tmp_path / "st")
    st = _st(tmp_path / "st")
    assert st.get_max_seq_length() == model.encoder.max_length
    np.testing.assert_allclose(st.encode(TEXTS), model.encode(TEXTS), atol=1e-5)
    for instruction in INSTRUCTIONS:
        ours = model.encode(TEXTS, instruction=instruction)
        theirs = st.encode(TEXTS, prompt=instruction)
        np.testing.assert_allclose(theirs, ours, atol=1e-5)
        assert np.abs(ours - model.encode(TEXTS)).max() > 1e-3  # the instruction matters


def test_instruction_becomes_the_default_prompt(tiny_t5, tmp_path):
    export(tiny_t5, tmp_path / "st", instruction=INSTRUCTIONS[0], prompts={"finance": INSTRUCTIONS[1]})
    config = json.loads((tmp_path / "st" / "config_sentence_transformers.json").read_text())
    assert config["default_prompt_name"] == "instruction"
    st = _st(tmp_path / "st")
    np.testing.assert_allclose(st.encode(TEXTS), tiny_t5.encode(TEXTS, instruction=INSTRUCTIONS[0]), atol=1e-5)
    np.testing.assert_allclose(st.encode(TEXTS, prompt_name="finance"),
                               tiny_t5.encode(TEXTS, instruction=INSTRUCTIONS[1]), atol=1e-5)


def test_export_reloads_in_inbedder(tiny_t5, tmp_path):
    export(tiny_t5, tmp_path / "st")
    again = load(tmp_path / "st", device="cpu")
    np.testing.assert_allclose(again.encode(TEXTS, instruction=INSTRUCTIONS[0]),
                               tiny_t5.encode(TEXTS, instruction=INSTRUCTIONS[0]), atol=1e-6)


def test_trailing_whitespace_on_sentencepiece_is_reported(tiny_t5, tiny_bert, tmp_path):
    assert prompt_mismatch(tiny_bert.encoder, "Represent the title: ") is None  # WordPiece ignores it
    reason = prompt_mismatch(tiny_t5.encoder, "Represent the title: ")
    assert reason is not None and "trailing whitespace" in reason
    with pytest.warns(UserWarning, match="trailing whitespace"):
        export(tiny_t5, tmp_path / "st", instruction="Represent the title: ")


def test_export_refuses_bad_input(tiny_t5, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        export(tiny_t5, tmp_path / "full")
    with pytest.raises(InputError, match="default_prompt_name 'nope'"):
        export(tiny_t5, tmp_path / "a", prompts={"q": "Represent:"}, default_prompt_name="nope")
    with pytest.raises(InputTypeError, match="INSTRUCTOR-family"):
        export(object(), tmp_path / "b")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export(tiny_t5, tmp_path / "full", instruction=INSTRUCTIONS[0], overwrite=True)


@pytest.mark.slow
def test_minilm_export(tmp_path):
    model = load("minilm", device="cpu")
    export(model, tmp_path / "st", instruction="Represent the sentence:")
    st = _st(tmp_path / "st")
    np.testing.assert_allclose(st.encode(TEXTS), model.encode(TEXTS, instruction="Represent the sentence:"),
                               atol=1e-5)
    np.testing.assert_allclose(st.encode(TEXTS, prompt="Represent the Science title:"),
                               model.encode(TEXTS, instruction="Represent the Science title:"), atol=1e-5)
