"""The drop-in classes: seed code runs after changing only its import line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.tiny_lms import build_tiny_flan_t5, build_tiny_roberta_mlm
from inbedder.compat import INSTRUCTOR, CausalLMEncoder, InstructorModel, MaskedLMEncoder, Seq2SeqLMEncoder
from inbedder.compat.reference import ReferenceEncoder
from inbedder.errors import InputError


def test_seed_similarity_snippet_runs(tiny_t5_dir) -> None:
    from sklearn.metrics.pairwise import cosine_similarity

    model = INSTRUCTOR(str(tiny_t5_dir))
    sentences_a = [["Represent the Science sentence: ", "Parton energy loss in QCD matter"],
                   ["Represent the Financial statement: ", "The Federal Reserve on Wednesday raised its rate."]]
    sentences_b = [["Represent the Science sentence: ", "The Chiral Phase Transition in Dissipative Dynamics"],
                   ["Represent the Financial statement: ", "The funds rose less than 0.5 per cent on Friday"]]
    similarities = cosine_similarity(model.encode(sentences_a), model.encode(sentences_b))
    assert similarities.shape == (2, 2) and np.isfinite(similarities).all()


def test_encode_return_types_follow_the_reference(tiny_bert_dir) -> None:
    model = INSTRUCTOR(str(tiny_bert_dir), device="cpu")
    pairs = [["Represent the title:", "a cat"], ["Represent the title:", "a dog sat"]]
    as_numpy = model.encode(pairs)
    assert isinstance(as_numpy, np.ndarray) and as_numpy.shape == (2, 32)
    as_list = model.encode(pairs, convert_to_numpy=False)
    assert isinstance(as_list, list) and all(isinstance(t, torch.Tensor) for t in as_list)
    as_tensor = model.encode(pairs, convert_to_tensor=True)
    assert isinstance(as_tensor, torch.Tensor) and torch.allclose(as_tensor, torch.from_numpy(as_numpy), atol=1e-6)
    single = model.encode("a cat")
    assert single.shape == (32,)
    normalized = model.encode(pairs, normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1, atol=1e-5)
    rows = model.encode(pairs, output_value=None)
    assert set(rows[0]) == {"sentence_embedding", "token_embeddings"}


def test_dynamic_quantization_as_in_the_seed(tiny_t5_dir) -> None:
    model = INSTRUCTOR(str(tiny_t5_dir), device="cpu")
    qmodel = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    sentence, instruction = "3D ActionSLAM: wearable person tracking", "Represent the Science title:"
    quantized = qmodel.encode([[instruction, sentence]])
    full = model.encode([[instruction, sentence]])
    assert not isinstance(qmodel.encoder.transformer.encoder.block[0].layer[0].SelfAttention.q, torch.nn.Linear)
    assert float((quantized * full).sum()) > 0.9  # both normalized by the checkpoint


def test_instructor_lite_triple(tiny_t5_dir) -> None:
    model = InstructorModel(str(tiny_t5_dir), device=torch.device("cpu"))
    pairs = [("Represent the quote for clustering", "It was the best of times, it was the worst of times..."),
             ("Represent the sentence for retrieval", "The quick brown fox jumps over the lazy dog.")]
    full, tokens, instr = model(pairs, normalize=True)
    assert full.shape == (2, 24)
    torch.testing.assert_close(full.norm(dim=1), torch.ones(2))
    tok = model.model.encoder.tokenizer
    for (i, t), text_tokens, instr_tokens in zip(pairs, tokens, instr, strict=False):
        assert instr_tokens.shape[0] == len(tok(i)["input_ids"]) - 1
        assert text_tokens.shape[0] + instr_tokens.shape[0] == len(tok(i + t)["input_ids"])
        torch.testing.assert_close(text_tokens.norm(dim=1), torch.ones(text_tokens.shape[0]))
    reference = INSTRUCTOR(str(tiny_t5_dir), device="cpu").encode([list(p) for p in pairs], convert_to_tensor=True)
    torch.testing.assert_close(full, reference, atol=1e-6, rtol=0)


def test_reference_encoders_share_one_base(llama_dir, tmp_path) -> None:
    """The three reference drop-ins are one class with three families: one constructor, one validation."""
    classes = (CausalLMEncoder, MaskedLMEncoder, Seq2SeqLMEncoder)
    assert all(issubclass(cls, ReferenceEncoder) for cls in classes)
    for name in ("__init__", "encode", "set_output_value", "get_all_output_values"):  # written once
        assert all(name not in vars(cls) for cls in classes), name
    models = [CausalLMEncoder(str(llama_dir), max_new_tokens=2),
              MaskedLMEncoder(str(build_tiny_roberta_mlm(tmp_path / "mlm")), mask_length=3),
              Seq2SeqLMEncoder(str(build_tiny_flan_t5(tmp_path / "t5")), max_new_tokens=2)]
    assert [m.output_value for m in models] == ["fst_gen_layer_1", "avg_gen_layer_1", "avg_gen_layer_1"]
    for model in models:
        for bad, match in [(None, "must be a str"), (3, "must be a str"), ("avg", "is not valid"),
                           ("avg_gne_layer_1", "Did you mean 'avg_gen'"), ("avg_gen", "'<value>_layer_<n>'")]:
            with pytest.raises(InputError, match=match):
                model.set_output_value(bad)
        assert model.output_value == model.default_output_value  # unchanged by a refused value
        model.set_output_value("re_encode")
        with pytest.raises(InputError, match="re_encode' needs a reencoder"):
            model.encode(["a prompt"])
