"""The causal-LM answer family on tiny random Llama / OPT models: behaviour, GGUF, the compat class, errors.

Parity with the reference implementation is in test_parity_causal.py.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from helpers.tiny_causal import CHAT_TEMPLATE, build_tiny_gguf, build_tiny_llama, build_tiny_opt
from inbedder import load
from inbedder.compat import CausalLMEncoder
from inbedder.encoders import causal
from inbedder.encoders.base import Output
from inbedder.encoders.causal import INBEDDER_PATTERN, passes, pool
from inbedder.encoders.causal.settings import OutputValue, fill
from inbedder.errors import InputError, InputTypeError

TEXTS = ["I love cat!", "I dislike dog!", "The funds rose less than 0.5 per cent on Friday.", "Where is the food?"]
ANIMAL = "What is the animal mentioned here?"
LONG = "Parton energy loss in QCD matter and the chiral phase transition. " * 6


@pytest.fixture(scope="module")
def opt(tmp_path_factory: pytest.TempPathFactory):
    return load(build_tiny_opt(tmp_path_factory.mktemp("causal_opt")), device="cpu", max_new_tokens=4)


def test_load_detects_the_family_and_reads_any_layer(llama, opt) -> None:
    assert llama.family == opt.family == "causal"
    assert llama.encoder.num_layers == 2 and llama.dim == 32
    assert opt.encode(TEXTS, instruction=ANIMAL, layer=1).shape == (4, 32)
    assert opt.encode(TEXTS, instruction=ANIMAL).shape == (4, opt.dim) == (4, 16)  # OPT projects its last layer out
    by_layer = [llama.encode(TEXTS, instruction=ANIMAL, layer=n) for n in range(3)]
    assert not np.allclose(by_layer[0], by_layer[2])
    np.testing.assert_array_equal(by_layer[2], llama.encode(TEXTS, instruction=ANIMAL, layer=-1))
    settings = llama.encoder.settings()
    assert settings["pattern"] == INBEDDER_PATTERN and settings["output_value"] == "fst_gen"
    assert settings["generation"]["do_sample"] is False


@pytest.mark.parametrize("value", [v.value for v in OutputValue])
def test_each_output_value_and_the_reference_names(llama, value: str) -> None:
    vectors = llama.encode(TEXTS, instruction=ANIMAL, output_value=value, layer=1)
    assert vectors.shape == (4, 32) and np.isfinite(vectors).all()
    np.testing.assert_array_equal(vectors, llama.encode(TEXTS, instruction=ANIMAL, output_value=f"{value}_layer_1"))
    assert llama.encode(TEXTS[0], instruction=ANIMAL, output_value=value).shape == (32,)


def test_values_differ_as_defined(llama) -> None:
    enc = llama.encoder
    pairs = [(ANIMAL, t) for t in TEXTS]
    with torch.inference_mode():
        fst = enc.embed_batch(pairs, Output.SENTENCE, output_value="fst_gen").vectors
        gen = enc.embed_batch(pairs, Output.SENTENCE, output_value="avg_gen").vectors
        one = enc.embed_batch(pairs, Output.SENTENCE, output_value="avg_gen", max_new_tokens=1)
        last_one = enc.embed_batch(pairs, Output.SENTENCE, output_value="last_gen", max_new_tokens=1).vectors
    assert not torch.allclose(fst, gen)
    torch.testing.assert_close(one.vectors, fst)  # one answer token: no state over an answer token exists
    torch.testing.assert_close(last_one, fst)
    assert all(isinstance(a, str) for a in one.answers)


def test_pool_by_hand() -> None:
    prompt = torch.tensor([[[0.0], [2.0], [4.0], [6.0]], [[9.0], [9.0], [1.0], [3.0]]])  # row 2 is left-padded
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    steps = torch.tensor([[[10.0], [20.0]], [[30.0], [40.0]]])
    keep = torch.tensor([[True, False], [False, False]])  # row 2 keeps none: the first state is used
    expect = {OutputValue.FST_GEN: [6, 3], OutputValue.AVG_PPT: [2, 1], OutputValue.AVG_GEN: [8, 16.5],
              OutputValue.LAST_GEN: [10, 30], OutputValue.AVG_ALL: [(12 + 10) / 5, (4 + 30) / 3]}
    for value, want in expect.items():
        assert pool(value, prompt, mask, steps, keep).flatten().tolist() == pytest.approx(want), value


def test_generations_greedy_sampling_and_seed(llama) -> None:
    vectors, answers = llama.encode(TEXTS, instruction=ANIMAL, output_value="avg_gen", return_generations=True)
    again, answers_again = llama.encode(TEXTS, instruction=ANIMAL, output_value="avg_gen", return_generations=True)
    np.testing.assert_array_equal(vectors, again)
    assert answers == answers_again and len(answers) == 4 and any(answers)
    one, answer = llama.encode(TEXTS[0], instruction=ANIMAL, output_value="avg_gen", return_generations=True)
    assert one.shape == (32,) and answer == answers[0]
    sampled = [llama.encode(TEXTS, instruction=ANIMAL, output_value="avg_gen", do_sample=True, temperature=1.5,
                            top_p=0.95, seed=s, return_generations=True) for s in (7, 7, 8)]
    np.testing.assert_array_equal(sampled[0][0], sampled[1][0])
    assert sampled[0][1] == sampled[1][1]
    assert sampled[0][1] != sampled[2][1] or not np.array_equal(sampled[0][0], sampled[2][0])


def test_return_generations_with_a_one_pass_value(llama) -> None:
    fast = llama.encode(TEXTS, instruction=ANIMAL)
    vectors, answers = llama.encode(TEXTS, instruction=ANIMAL, return_generations=True)
    assert len(answers) == 4 and all(isinstance(a, str) for a in answers)
    assert np.abs(vectors - fast).max() <= 1e-5


def spy_shared_pass(monkeypatch: pytest.MonkeyPatch, enc: causal.CausalEncoder) -> list[int]:
    """A list that grows by one each time ``enc`` takes the shared-start pass."""
    calls: list[int] = []
    real = passes.Passes.shared_pass
    monkeypatch.setattr(type(enc.passes), "shared_pass", lambda *a: calls.append(1) or real(*a))
    return calls


@pytest.mark.parametrize("name", ["llama", "opt"])
@pytest.mark.parametrize("pattern", [INBEDDER_PATTERN, "chat"])
def test_a_shared_prefix_is_computed_once_with_the_same_states(request, monkeypatch, name: str, pattern: str) -> None:
    model = request.getfixturevalue(name)
    enc = model.encoder
    pairs = [(ANIMAL, t) for t in [*TEXTS, LONG]]
    ids, mask, _, _, _ = enc.prompt_ids(pairs, pattern)
    shared = causal.shared_prefix(ids, mask)
    assert shared >= causal.MIN_SHARED_PREFIX
    assert causal.shared_prefix(ids[:, :-1], mask[:, :-1]) == shared  # the first tokens, not the last, are shared
    calls = spy_shared_pass(monkeypatch, enc)
    with torch.inference_mode():
        for layer in (1, enc.num_layers):
            fast = enc.one_pass(ids, mask, layer)
            with monkeypatch.context() as m:
                m.setattr(passes, "MIN_SHARED_PREFIX", 10**6)
                plain = enc.one_pass(ids, mask, layer)
            real = mask.bool()
            assert fast.shape == plain.shape and (fast[real] - plain[real]).abs().max() <= 1e-5
    assert len(calls) == 2
    for value in ("fst_gen", "avg_ppt"):  # through encode, with per-token states too
        sentence, tokens, _ = model.encode([t for _, t in pairs], instruction=ANIMAL, pattern=pattern,
                                           output_value=value, output="all")
        with monkeypatch.context() as m:
            m.setattr(passes, "MIN_SHARED_PREFIX", 10**6)
            want, want_tokens, _ = model.encode([t for _, t in pairs], instruction=ANIMAL, pattern=pattern,
                                                output_value=value, output="all")
        assert np.abs(sentence - want).max() <= 1e-5
        assert all(np.abs(a - b).max() <= 1e-5 for a, b in zip(tokens, want_tokens, strict=True))


ARCHITECTURES = {  # tiny random configs of other decoder families, read with the tiny Llama's tokenizer
    "qwen2": ("Qwen2Config", {}), "mistral": ("MistralConfig", {}), "gemma2": ("Gemma2Config", {"head_dim": 8}),
    "gpt2": ("GPT2Config", {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 96}),
    "gpt_neox": ("GPTNeoXConfig", {}), "mistral, sliding window 8": ("MistralConfig", {"sliding_window": 8})}


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_the_shared_start_is_exact_for_other_decoder_families(llama, monkeypatch, arch: str) -> None:
    import transformers

    from inbedder.encoders.causal import CausalEncoder

    name, extra = ARCHITECTURES[arch]
    sizes = {} if name == "GPT2Config" else {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                             "num_attention_heads": 4, "max_position_embeddings": 96}
    if name in ("Qwen2Config", "MistralConfig", "Gemma2Config"):
        sizes["num_key_value_heads"] = 2
    config = getattr(transformers, name)(vocab_size=len(llama.encoder.tokenizer), **sizes, **extra)
    torch.manual_seed(0)
    enc = CausalEncoder(transformers.AutoModelForCausalLM.from_config(config).eval(), llama.encoder.tokenizer)
    ids, mask, _, _, _ = enc.prompt_ids([(ANIMAL, t) for t in TEXTS])
    calls = spy_shared_pass(monkeypatch, enc)
    with torch.inference_mode():
        fast = enc.one_pass(ids, mask, enc.num_layers)
        monkeypatch.setattr(passes, "MIN_SHARED_PREFIX", 10**6)
        plain = enc.one_pass(ids, mask, enc.num_layers)
    assert (fast[mask.bool()] - plain[mask.bool()]).abs().max() <= 1e-5
    assert len(calls) == (0 if "sliding" in arch else 1)  # a window shorter than the prompts: the plain pass


def test_rows_without_a_common_start_take_the_plain_pass() -> None:
    ids = torch.tensor([[0, 5, 6, 7], [4, 5, 6, 8], [4, 5, 9, 9]])
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]])
    assert causal.shared_prefix(ids, mask) == 0
    ids[0, 1:] = torch.tensor([4, 5, 7])
    assert causal.shared_prefix(ids, mask) == 2  # [4, 5]; at most the shortest row's length minus one


def test_input_is_cut_never_the_instruction_or_cue(llama_dir: Path) -> None:
    model = load(llama_dir, device="cpu", max_length=40)
    with pytest.warns(UserWarning, match="1 of 2 texts"):
        model.encode([LONG, TEXTS[0]], instruction=ANIMAL)
    (prompt,), _, cut = model.encoder.prompts([(ANIMAL, LONG)])
    assert cut == 1 and prompt.endswith(f"\n\n### Instruction:\n{ANIMAL}\n\n### Response:")
    kept = prompt[len("### Input:\n"):prompt.index("\n\n### Instruction:")]
    assert kept and LONG.endswith(kept) and len(kept) < len(LONG)
    assert len(model.encoder.tokenizer(prompt)["input_ids"]) <= 40
    first = "Instruction: {instruction}\nText: {input}\nAnswer:"
    (prompt,), _, _ = model.encoder.prompts([(ANIMAL, LONG)], first)
    assert prompt.startswith(f"Instruction: {ANIMAL}\nText: ") and prompt.endswith("\nAnswer:")
    assert LONG.endswith(prompt[len(f"Instruction: {ANIMAL}\nText: "):-len("\nAnswer:")])


def test_patterns_fill_once_and_chat(llama) -> None:
    assert fill("{input}|{instruction}", "a {instruction} b", "Q")[0] == "a {instruction} b|Q"
    chat = llama.encode(TEXTS, instruction=ANIMAL, pattern="chat")
    assert not np.allclose(chat, llama.encode(TEXTS, instruction=ANIMAL))
    (prompt,), _, _ = llama.encoder.prompts([(ANIMAL, "I love cat!")], "chat")
    assert prompt == f"<|user|>\nI love cat!\n\n{ANIMAL}\n<|assistant|>\n"
    ids = llama.encoder.tokenize([prompt], True, [False], False)[0][0].tolist()
    assert ids[0] != llama.encoder.tokenizer.bos_token_id  # the template owns the special tokens
    assert CHAT_TEMPLATE == llama.encoder.tokenizer.chat_template


def test_a_chat_pattern_may_carry_its_own_user_message(llama) -> None:
    word = "chat:{input}\n\n{instruction} Answer with one word."
    (prompt,), _, _ = llama.encoder.prompts([(ANIMAL, "I love cat!")], word)
    assert prompt == f"<|user|>\nI love cat!\n\n{ANIMAL} Answer with one word.\n<|assistant|>\n"
    asked = llama.encode(TEXTS, instruction=ANIMAL, pattern=word)
    assert not np.allclose(asked, llama.encode(TEXTS, instruction=ANIMAL, pattern="chat"))
    with pytest.raises(InputError, match="must contain {input} exactly once"):
        llama.encode(TEXTS, instruction=ANIMAL, pattern="chat:{instruction} only")


def test_no_instruction_means_a_complete_prompt(llama) -> None:
    prompt = INBEDDER_PATTERN.replace("{input}", TEXTS[0]).replace("{instruction}", ANIMAL)
    np.testing.assert_allclose(llama.encode(prompt), llama.encode(TEXTS[0], instruction=ANIMAL), atol=1e-6)


def test_token_output(llama) -> None:
    tokens = llama.encode(TEXTS, instruction=ANIMAL, output="token", layer=1)
    tokenizer = llama.encoder.tokenizer
    assert [t.shape for t in tokens] == [(len(tokenizer(t, add_special_tokens=False)["input_ids"]), 32) for t in TEXTS]
    vectors, text_tokens, instruction_tokens = llama.encode(TEXTS, instruction=ANIMAL, output="all", layer=1)
    n = len(tokenizer(ANIMAL, add_special_tokens=False)["input_ids"])
    assert vectors.shape == (4, 32) and all(t.shape == (n, 32) for t in instruction_tokens)
    np.testing.assert_array_equal(text_tokens[0], tokens[0])


def test_gguf_loads_like_the_directory_and_saves_without_quantization(llama_dir: Path, tmp_path: Path) -> None:
    gguf_file = build_tiny_gguf(llama_dir, tmp_path / "tiny.gguf")
    from_gguf = load(gguf_file, device="cpu", max_new_tokens=4)
    from_dir = load(llama_dir, device="cpu", max_new_tokens=4)
    assert from_gguf.family == "causal"
    for value in ("fst_gen", "avg_all"):
        a, answers_a = from_gguf.encode(TEXTS, instruction=ANIMAL, output_value=value, return_generations=True)
        b, answers_b = from_dir.encode(TEXTS, instruction=ANIMAL, output_value=value, return_generations=True)
        np.testing.assert_allclose(a, b, atol=1e-6)
        assert answers_a == answers_b
    saved = from_gguf.encoder.save_pretrained(tmp_path / "converted")
    config = json.loads((saved / "config.json").read_text())
    assert "quantization_config" not in config and config["rope_theta"] == 10000.0
    assert json.loads((saved / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    np.testing.assert_allclose(load(saved, device="cpu").encode(TEXTS, instruction=ANIMAL),
                               from_dir.encode(TEXTS, instruction=ANIMAL), atol=1e-6)


def test_a_gguf_is_read_once_then_from_its_converted_copy(llama_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    from inbedder.converted import MARKER, converted_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("INBEDDER_GGUF_CACHE", "on")
    gguf_file = build_tiny_gguf(llama_dir, tmp_path / "tiny.gguf")
    read: list[str | None] = []  # the gguf_file of every model load
    original = transformers.AutoModelForCausalLM.from_pretrained

    def spy(where: Any, **kwargs: Any) -> Any:
        read.append(kwargs.get("gguf_file"))
        return original(where, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    first = load(gguf_file, device="cpu", max_new_tokens=4)
    assert read == ["tiny.gguf"] and (converted_dir(gguf_file) / MARKER).is_file()
    second = load(gguf_file, device="cpu", max_new_tokens=4)
    assert read == ["tiny.gguf", None]  # the converted copy, not the GGUF file
    for value in ("fst_gen", "avg_ppt", "avg_gen"):
        a, answers_a = first.encode(TEXTS, instruction=ANIMAL, output_value=value, return_generations=True)
        b, answers_b = second.encode(TEXTS, instruction=ANIMAL, output_value=value, return_generations=True)
        np.testing.assert_array_equal(a, b)
        assert answers_a == answers_b
    assert second.encoder.tokenizer(TEXTS)["input_ids"] == first.encoder.tokenizer(TEXTS)["input_ids"]
    load(gguf_file, device="cpu", dtype="bfloat16")  # a bfloat16 load reads the float32 copy too
    assert read[-1] is None
    os.utime(gguf_file, ns=(1, 1))  # a replaced file is read (and converted) anew
    load(gguf_file, device="cpu", dtype="bfloat16")
    assert read[-1] == "tiny.gguf" and not (converted_dir(gguf_file) / MARKER).exists()  # not from bfloat16
    monkeypatch.setenv("INBEDDER_GGUF_CACHE", "off")
    load(gguf_file, device="cpu")
    assert read[-1] == "tiny.gguf" and not converted_dir(gguf_file).exists()


def test_model_without_lm_head(tmp_path: Path) -> None:
    bare = load(build_tiny_llama(tmp_path / "bare", with_head=False), family="causal", device="cpu")
    assert bare.encode(TEXTS, instruction=ANIMAL, output_value="avg_ppt").shape == (4, 32)
    with pytest.raises(InputError, match="causal family needs a language-model head"):
        bare.encode(TEXTS, instruction=ANIMAL, output_value="avg_gen")
    with pytest.raises(InputError, match="causal family needs a language-model head"):
        bare.encode(TEXTS, instruction=ANIMAL, return_generations=True)


def test_compat_class(llama_dir: Path) -> None:
    nested = CausalLMEncoder(str(llama_dir), generation_configs={"max_new_tokens": 3, "do_sample": False})
    flat = CausalLMEncoder(str(llama_dir), max_new_tokens=3, do_sample=False, output_value="avg_gen_layer_2")
    assert nested.encoder.generation == flat.encoder.generation
    assert nested.output_value == "fst_gen_layer_1"  # the reference's default
    prompts = [INBEDDER_PATTERN.replace("{input}", t).replace("{instruction}", ANIMAL) for t in TEXTS]
    vectors, generations = flat.encode(prompts, return_generations=True)
    assert vectors.shape == (4, 32) and all(g.startswith(p[:10]) for g, p in zip(generations, prompts, strict=True))
    one, gens = flat.encode(prompts[0], return_generations=True)
    assert one.shape == (32,) and gens == generations[:1]  # a list even for one prompt, as in the original
    tensor = flat.encode(prompts, convert_to_tensor=True, normalize_embeddings=True)
    assert isinstance(tensor, torch.Tensor) and torch.allclose(tensor.norm(dim=1), torch.ones(4))
    assert len(flat.get_all_output_values()) == 16 and flat.get_last_output_values()[0] == "avg_gen_layer_2"
    assert flat.get_all_output_values()[-1] == flat.get_last_output_values()[-1] == "re_encode"  # as the original
    nested.set_output_value("avg_all_layer_0")
    assert nested.encode(prompts).shape == (4, 32) and nested.tokenizer is nested.encoder.tokenizer


def test_compat_errors(llama_dir: Path) -> None:
    with pytest.raises(InputError, match="generation_configs must be a dict"):
        CausalLMEncoder(str(llama_dir), generation_configs=[3])
    model = CausalLMEncoder(str(llama_dir), last_layer_only=True)
    model.set_output_value("re_encode")
    with pytest.raises(InputError, match="re_encode' needs a reencoder"):
        model.encode(["a prompt"])
    model.set_output_value("fst_gen_layer_1")
    with pytest.raises(InputError, match="not valid"):
        model.set_output_value("fst_gne_layer_1")
    with pytest.raises(InputError, match="last_layer_only=True keeps only layer 2"):
        model.encode(["a prompt"])
    model.set_output_value("fst_gen_layer_2")
    assert model.encode("a prompt").shape == (32,)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"pattern": "### Input:\n{input}\n### Response:"}, "must contain {instruction} exactly once"),
    ({"pattern": "{instruction} only"}, "must contain {input} exactly once"),
    ({"pattern": 3}, "pattern must be a str"),
    ({"output_value": "fst_gne"}, "Did you mean 'fst_gen'"),
    ({"output_value": "avg_gen_layer_1", "layer": 2}, "names layer 1 but layer=2"),
    ({"layer": 3}, "layer=3 is out of range"),
    ({"layer": -4}, "layer=-4 is out of range"),
    ({"layer": "1"}, "layer must be an int"),
    ({"max_new_tokens": 0}, "max_new_tokens=0 is not valid"),
    ({"do_sample": "yes"}, "do_sample='yes' is not valid"),
    ({"temperature": -1.0}, "temperature=-1.0 is not valid"),
    ({"top_p": 1.5}, "top_p=1.5 is not valid"),
    ({"seed": 1.5}, "seed=1.5 is not valid"),
    ({"filter_words": "cat"}, "filter_words must be a list of str"),
    ({"max_len": 3}, "Did you mean 'max_length'"),
])
def test_bad_settings_at_load(llama_dir: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        load(llama_dir, device="cpu", **kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"pattern": "{input}"}, "must contain {instruction} exactly once"),
    ({"output_value": "avg"}, "output_value='avg' is not valid"),
    ({"layer": 5}, "out of range"),
    ({"max_new_tokens": -1}, "max_new_tokens=-1"),
    ({"filter_words": [1]}, "filter_words must be a list of str"),
    ({"num_beams": 2}, "not used by the causal family"),
])
def test_bad_options_per_call(llama, kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        llama.encode(TEXTS, instruction=ANIMAL, **kwargs)


def test_bad_input(llama, llama_dir: Path) -> None:
    with pytest.raises(InputTypeError):
        llama.encode(None, instruction=ANIMAL)
    with pytest.raises(InputTypeError, match="row 1"):
        llama.encode(["a", 3], instruction=ANIMAL)
    with pytest.raises(InputError, match="2 instructions for 4 texts"):
        llama.encode(TEXTS, instruction=[ANIMAL, ANIMAL])
    short = load(llama_dir, device="cpu", max_length=12)
    with pytest.raises(InputError, match="row 0: the pattern and the instruction alone take"):
        short.encode(TEXTS[:1], instruction=ANIMAL)
    plain = load(llama_dir, device="cpu")
    plain.encoder.tokenizer.chat_template = None
    with pytest.raises(InputError, match="pattern='chat' needs a tokenizer with a chat template"):
        plain.encode(TEXTS, instruction=ANIMAL, pattern="chat")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plain.encode(TEXTS, instruction=ANIMAL).shape == (4, 32)


def test_compat_encode_queries_and_corpus(llama_dir: Path) -> None:
    model = CausalLMEncoder(str(llama_dir), max_new_tokens=3, do_sample=False)
    docs = [{"title": "Cats", "text": "I love cat!"}, {"text": " I love dog! "}]
    as_dicts = model.encode_corpus(docs, batch_size=2)
    as_columns = model.encode_corpus({"title": ["Cats", ""], "text": ["I love cat!", "I love dog!"]}, batch_size=2)
    plain = model.encode(["Cats I love cat!", "I love dog!"], batch_size=2)
    np.testing.assert_allclose(as_dicts, plain, atol=1e-6)
    np.testing.assert_allclose(as_columns, plain, atol=1e-6)
    np.testing.assert_allclose(model.encode_queries(["I love cat!"], batch_size=1), model.encode(["I love cat!"]),
                               atol=1e-6)
