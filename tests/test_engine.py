"""The engine: input forms, ordering, dedup, batch-size invariance, outputs and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inbedder.encoders.base import BatchResult, Output
from inbedder.errors import InputError, InputTypeError, NonFiniteError

TEXTS = ["I love cat!", "The Fed raised its benchmark rate.", "", "  padded  ", "x", "I love dog!"]
INSTR = "Represent the sentence:"


def test_single_string_gives_a_vector_and_a_list_gives_a_matrix(tiny_t5) -> None:
    v = tiny_t5.encode("I love cat!", instruction=INSTR)
    m = tiny_t5.encode(["I love cat!", "I love dog!"], instruction=INSTR)
    assert v.shape == (tiny_t5.dim,) and v.dtype == np.float32
    assert m.shape == (2, tiny_t5.dim) and m.dtype == np.float32
    np.testing.assert_allclose(v, m[0], atol=1e-6)


def test_pairs_equal_per_row_instructions_and_a_shared_instruction(tiny_bert) -> None:
    instructions = [INSTR, "What is the animal?", INSTR, "a", "", INSTR]
    by_pairs = tiny_bert.encode([[i, t] for i, t in zip(instructions, TEXTS, strict=False)])
    by_list = tiny_bert.encode(TEXTS, instruction=instructions)
    by_dicts = tiny_bert.encode([{"instruction": i, "text": t} for i, t in zip(instructions, TEXTS, strict=False)])
    np.testing.assert_allclose(by_pairs, by_list, atol=1e-6)
    np.testing.assert_allclose(by_pairs, by_dicts, atol=1e-6)
    shared = tiny_bert.encode(TEXTS, instruction=INSTR)
    np.testing.assert_allclose(shared, tiny_bert.encode([[INSTR, t] for t in TEXTS]), atol=1e-6)


def test_the_instruction_changes_the_vector_but_is_not_pooled(tiny_t5) -> None:
    a = tiny_t5.encode("I love cat!", instruction="What is the animal mentioned here?")
    b = tiny_t5.encode("I love cat!", instruction="What is the emotion expressed here?")
    assert np.abs(a - b).max() > 1e-4
    # no instruction and an empty instruction pool the same tokens
    np.testing.assert_allclose(tiny_t5.encode("I love cat!"), tiny_t5.encode("I love cat!", instruction=""), atol=1e-6)


@pytest.mark.parametrize("model_name", ["tiny_t5", "tiny_bert"])
def test_same_vectors_whatever_the_batch_size(model_name: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(model_name)
    texts = [t * k for k in (1, 3, 7) for t in TEXTS]
    ref = model.encode(texts, instruction=INSTR, batch_size=1)
    for batch_size in (2, 5, 32):
        np.testing.assert_allclose(model.encode(texts, instruction=INSTR, batch_size=batch_size), ref, atol=1e-5)


def test_identical_inputs_are_computed_once_and_order_is_restored(tiny_bert, monkeypatch) -> None:
    seen: list[tuple] = []
    original = tiny_bert.encoder.embed_batch

    def spy(pairs, output, **options):
        seen.extend(pairs)
        return original(pairs, output, **options)

    monkeypatch.setattr(tiny_bert.encoder, "embed_batch", spy)
    texts = ["b", "a", "b", "ccc", "a", "b"]
    out = tiny_bert.encode(texts, instruction=INSTR, batch_size=2)
    assert sorted(t for _, t in seen) == ["a", "b", "ccc"]
    with torch.inference_mode():
        singles = {t: original([(INSTR, t)], Output.SENTENCE).vectors[0].numpy() for t in set(texts)}
    for row, text in enumerate(texts):
        np.testing.assert_allclose(out[row], singles[text], atol=1e-5)


def test_token_and_all_outputs(tiny_t5) -> None:
    sentence, tokens, instr = tiny_t5.encode(["I love cat!", "x"], instruction=INSTR, output="all")
    n_instr = tiny_t5.encoder.instruction_length(INSTR)
    assert sentence.shape == (2, tiny_t5.dim)
    assert all(t.shape[0] == n_instr for t in instr)
    tok = tiny_t5.encoder.tokenizer
    for text, t in zip(["I love cat!", "x"], tokens, strict=False):
        assert t.shape[0] == len(tok(INSTR + text)["input_ids"]) - n_instr
    only_tokens = tiny_t5.encode(["I love cat!", "x"], instruction=INSTR, output="token")
    np.testing.assert_allclose(only_tokens[0], tokens[0], atol=1e-6)
    with pytest.raises(InputError, match="did you mean 'token'|Did you mean 'token'"):
        tiny_t5.encode(["a"], output="tokens")


def test_normalize_tensor_output_and_empty_input(tiny_bert) -> None:
    v = tiny_bert.encode(TEXTS, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    t = tiny_bert.encode(TEXTS, convert_to_tensor=True)
    assert isinstance(t, torch.Tensor) and t.shape == (len(TEXTS), tiny_bert.dim)
    empty = tiny_bert.encode([])
    assert empty.shape == (0, tiny_bert.dim)


def test_empty_string_gives_a_finite_vector(tiny_t5, tiny_bert) -> None:
    for model in (tiny_t5, tiny_bert):
        for instruction in (None, INSTR):
            v = model.encode("", instruction=instruction)
            assert np.isfinite(v).all() and np.abs(v).sum() > 0


@pytest.mark.parametrize(
    ("texts", "instruction", "error", "match"),
    [
        (["a", None, "c"], None, InputTypeError, "row 1"),
        (["a", "b", 3], None, InputTypeError, "row 2"),
        ([["Represent:", "a"], ["only one"]], None, InputError, "row 1"),
        ([["Represent:", "a"], ["a", "b", "c"]], None, InputError, "row 1"),
        ([["Represent:", 5]], None, InputError, "row 0"),
        (["a", "b", "c"], ["one", "two"], InputError, "2 instructions for 3 texts"),
        (["a", "b"], ["one", 2], InputTypeError, "instruction at row 1"),
        (None, None, InputTypeError, "texts must be"),
        (42, None, InputTypeError, "texts must be"),
        ([["Represent:", "a"]], "also", InputError, "instruction= was also given"),
        ([{"text": 1}], None, InputTypeError, "row 0, field 'text'"),
    ],
)
def test_bad_input_names_the_row(tiny_bert, texts, instruction, error, match) -> None:
    with pytest.raises(error, match=match):
        tiny_bert.encode(texts, instruction=instruction)


def test_errors_are_also_builtin_types(tiny_bert) -> None:
    with pytest.raises(TypeError):
        tiny_bert.encode(["a", None])
    with pytest.raises(ValueError):
        tiny_bert.encode(["a"], instruction=["x", "y"])
    with pytest.raises(ValueError, match="batch_size"):
        tiny_bert.encode(["a"], batch_size=0)


def test_overlong_texts_are_truncated_with_one_warning_counting_rows(tiny_bert) -> None:
    long = "word " * 200  # the tiny BERT's sentence_bert_config says 48 tokens
    with pytest.warns(UserWarning, match="2 of 3 texts were longer") as caught:
        v = tiny_bert.encode([long, long + "x", "short"], instruction=INSTR)
    assert len([w for w in caught if "truncated" in str(w.message)]) == 1
    assert np.isfinite(v).all()


def break_row(model, monkeypatch, row: int, value: float) -> None:
    """The family of ``model`` gives ones, with ``value`` in the first column of row ``row``."""
    def broken(pairs, output, **options):
        vectors = torch.ones(len(pairs), model.dim)
        vectors[row, 0] = value
        return BatchResult(vectors)

    monkeypatch.setattr(model.encoder, "embed_batch", broken)


def test_non_finite_output_is_an_error_naming_rows(tiny_bert, monkeypatch) -> None:
    break_row(tiny_bert, monkeypatch, 1, float("nan"))
    with pytest.raises(NonFiniteError, match=r"rows \[1\]"):
        tiny_bert.encode(["a", "b", "c"])


def test_progress_bar_on_request(tiny_bert, capsys) -> None:
    tiny_bert.encode(["a", "b", "c"], batch_size=1, show_progress_bar=True)
    assert "Embedding" in capsys.readouterr().err
    tiny_bert.encode(["a", "b", "c"], batch_size=1)
    assert "Embedding" not in capsys.readouterr().err


def test_unknown_encode_option_and_generations_on_an_encoder(tiny_bert) -> None:
    with pytest.raises(InputError, match="not used by the instructor family"):
        tiny_bert.encode(["a"], max_new_tokens=3)
    with pytest.raises(InputError, match="answer family"):
        tiny_bert.encode(["a"], return_generations=True)


def test_the_engine_and_cached_rows_report_non_finite_rows_alike(tiny_bert, monkeypatch) -> None:
    from inbedder.finishing import finish_rows

    break_row(tiny_bert, monkeypatch, 2, float("inf"))
    with pytest.raises(NonFiniteError) as engine:
        tiny_bert.encode(["a", "b", "c"], convert_to_tensor=True, normalize=True)
    rows = np.ones((3, tiny_bert.dim), dtype=np.float32)
    rows[2, 0] = np.inf
    with pytest.raises(NonFiniteError) as cached:
        finish_rows(rows, normalize=True)
    assert str(engine.value) == str(cached.value) and "rows [2]" in str(cached.value)
    rows[2, 0] = 1.0
    assert finish_rows(rows, dimensions=2)[2].tolist() == pytest.approx([0.7071068, 0.7071068])  # cut, then scaled


def test_encode_settings_are_frozen_and_checked_in_the_order_encode_names_them() -> None:
    import dataclasses

    from inbedder.encode_settings import EncodeSettings

    settings = EncodeSettings(32, output="token", long_text="truncate")
    assert settings.kind is Output.TOKEN and not settings.sentences and not settings.long.chunk
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.normalize = True  # type: ignore[misc]
    with pytest.raises(InputError, match="batch_size must be a positive int; got True"):
        EncodeSettings(32, batch_size=True, output="nope")  # batch_size first
    with pytest.raises(InputError, match="max_tokens_per_batch must be a positive int or None; got 0"):
        EncodeSettings(32, max_tokens_per_batch=0, output="nope")
    with pytest.raises(InputError, match="dimensions=33 is out of range: this model's vectors have 32"):
        EncodeSettings(32, dimensions=33, long_text="chunk", output="token")
    with pytest.raises(InputError, match="long_text='chunk' gives sentence vectors only"):
        EncodeSettings(32, long_text="chunk", generations=True)
