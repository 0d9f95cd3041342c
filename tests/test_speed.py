"""Fast paths: bf16 and int8 close to float32, token-budget batching, quantize errors, cache keys."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inbedder import load, speed
from inbedder.batching import plan_batches
from inbedder.errors import InputError
from inbedder.speed import Int8Linear, flops_per_token, quantize_int8

TEXTS = ["I love cat!", "The Fed raised its benchmark rate on Wednesday.", "Parton energy loss in QCD matter.",
         "Where is the food stored in a yam plant?", "a", "The quick brown fox jumps over the lazy dog."]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# Tolerances: the tiny random models have no outlier structure; bf16 keeps 8 bits of mantissa (cosine >= 0.999
# on MiniLM, docs/benchmarks.md), int8 7 bits per value (>= 0.99 there). Here: bf16 >= 0.995, int8 >= 0.99.
def test_bfloat16_and_int8_are_close_to_float32_for_the_encoder_family(tiny_bert_dir: Path, tiny_bert) -> None:
    fp32 = tiny_bert.encode(TEXTS, instruction="Represent the sentence:")
    bf16 = load(tiny_bert_dir, device="cpu", dtype="bfloat16")
    int8 = load(tiny_bert_dir, quantize="int8")
    assert bf16.encoder.settings()["dtype"] == "bfloat16"
    assert int8.device.type == "cpu" and isinstance(int8.encoder.transformer.encoder.layer[0].attention.self.query,
                                                      Int8Linear)
    for model, floor in ((bf16, 0.995), (int8, 0.99)):
        out = model.encode(TEXTS, instruction="Represent the sentence:")
        assert out.dtype == np.float32 and np.isfinite(out).all()
        assert cosines(out, fp32).min() >= floor


def test_bfloat16_and_int8_are_close_to_float32_for_the_causal_family(llama_dir: Path) -> None:
    kwargs = {"instruction": "What is it about?", "output_value": "fst_gen"}
    fp32 = load(llama_dir, device="cpu").encode(TEXTS, **kwargs)
    for model, floor in ((load(llama_dir, device="cpu", dtype="bfloat16"), 0.995),
                         (load(llama_dir, quantize="int8"), 0.99)):
        assert cosines(model.encode(TEXTS, **kwargs), fp32).min() >= floor


@pytest.mark.parametrize("kernel", speed.INT8_KERNELS)
def test_int8_linear_matches_float_linear_and_keeps_outlier_channels_exact(kernel: str) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    x = torch.randn(2, 5, 64)
    x[..., 3] *= 100.0  # one outlier channel, as in transformer activations
    x[0, 0] *= 50.0  # one loud token: a scale per call (not per token) would leave the others few levels
    q = Int8Linear(linear, kernel)
    assert q.kernel == kernel
    with torch.inference_mode():
        want, got = linear(x), q(x)
    assert got.shape == want.shape and got.dtype == x.dtype
    assert torch.nn.functional.cosine_similarity(got.reshape(-1, 48), want.reshape(-1, 48)).min() > 0.999
    assert q(x.bfloat16()).dtype == torch.bfloat16 and q(x[:0]).shape == (0, 5, 48)
    before = x.clone()
    q(x)
    assert torch.equal(x, before)  # the caller's activations are not changed in place


def test_the_two_int8_kernels_give_nearly_the_same_outputs() -> None:
    torch.manual_seed(1)
    linear = torch.nn.Linear(96, 40)
    x = torch.randn(7, 96) * torch.rand(7, 1) * 10
    with torch.inference_mode():
        a, b = Int8Linear(linear, "int_mm")(x), Int8Linear(linear, "fbgemm")(x)
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.999


@pytest.mark.parametrize("ratios, kernel, warns", [({"int_mm": 0.03, "fbgemm": 1.2}, "fbgemm", False),
                                                   ({"int_mm": 1.4, "fbgemm": 1.1}, "int_mm", False),
                                                   ({"int_mm": 0.02, "fbgemm": 0.8}, "fbgemm", True)])
def test_int8_uses_the_kernel_measured_fastest_and_warns_when_it_is_slower_than_float32(
        tiny_bert_dir: Path, monkeypatch: Any, ratios: dict[str, float], kernel: str, warns: bool) -> None:
    monkeypatch.setattr(speed, "cpu_int8_ratios", lambda shape=None: ratios)
    assert speed.int8_kernel() == kernel
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model = load(tiny_bert_dir, quantize="int8")
    layers = [m for m in model.encoder.modules() if isinstance(m, Int8Linear)]
    assert layers and {m.kernel for m in layers} == {kernel}
    slow = [w for w in seen if "int8 may run slower than float32" in str(w.message)]
    assert len(slow) == int(warns)
    if warns:
        assert f"({kernel}) measured 0.80× float32" in str(slow[0].message)
        assert "int_mm 0.02× (about 1/50 of)" in str(slow[0].message)
        assert slow[0].filename == __file__  # it points at the caller's load()


def test_the_int8_speed_is_measured_on_the_models_own_main_layer_shape(tiny_bert_dir: Path,
                                                                        monkeypatch: Any) -> None:
    block = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Linear(32, 8), torch.nn.Linear(8, 8),
                                torch.nn.Linear(8, 8), torch.nn.Linear(8, 32))
    assert speed.probe_shape(block) == (8, 32)  # 2 × 256 weights, against 256 and 2 × 64
    assert speed.probe_shape(torch.nn.ReLU()) == speed.INT8_PROBE[1:]
    asked: list[Any] = []
    monkeypatch.setattr(speed, "cpu_int8_ratios", lambda shape=None: asked.append(shape) or {"int_mm": 0.02,
                                                                                              "fbgemm": 1.2})
    model = load(tiny_bert_dir)
    want = speed.probe_shape(model.encoder)
    load(tiny_bert_dir, quantize="int8")
    assert asked and set(asked) == {want}


def test_the_int8_kernel_can_be_named_in_the_environment(monkeypatch: Any) -> None:
    monkeypatch.setattr(speed, "cpu_int8_ratios", lambda shape=None: {"int_mm": 0.02, "fbgemm": 1.1})
    monkeypatch.setenv("INBEDDER_INT8_KERNEL", "int_mm")
    assert speed.int8_kernel() == "int_mm" and Int8Linear(torch.nn.Linear(4, 4)).kernel == "int_mm"
    monkeypatch.setenv("INBEDDER_INT8_KERNEL", "vnni")
    with pytest.raises(InputError, match="INBEDDER_INT8_KERNEL='vnni' is not an int8 kernel"):
        speed.int8_kernel()


def test_an_unknown_int8_kernel_is_refused() -> None:
    with pytest.raises(InputError, match=r"int8 kernel 'vnni' is not known; choose one of \['int_mm', 'fbgemm'\]"):
        Int8Linear(torch.nn.Linear(4, 4), "vnni")


def test_cpu_int8_ratios_measures_each_kernel_once(monkeypatch: Any) -> None:
    speed.cpu_int8_ratios.cache_clear()
    calls: list[str] = []
    real = Int8Linear.forward

    def counting(self: Int8Linear, x: torch.Tensor) -> torch.Tensor:
        calls.append(self.kernel)
        return real(self, x)

    monkeypatch.setattr(Int8Linear, "forward", counting)
    monkeypatch.setattr(speed, "INT8_PROBE", (4, 16, 8))  # the arithmetic, not the speed, is under test
    try:
        ratios = speed.cpu_int8_ratios()
        assert set(ratios) == set(speed.INT8_KERNELS) and all(r > 0 for r in ratios.values())
        assert speed.cpu_int8_ratios() is ratios and sorted(set(calls)) == sorted(speed.INT8_KERNELS)
    finally:
        speed.cpu_int8_ratios.cache_clear()


@pytest.mark.parametrize("ratio, text", [(0.6, "0.60×"), (2.25, "2.25×"), (0.004, "0.004× (about 1/250 of)"),
                                         (0.0123, "0.012× (about 1/81 of)"), (0.0, "0× (no kernel)")])
def test_format_ratio_keeps_small_ratios_readable(ratio: float, text: str) -> None:
    assert speed.format_ratio(ratio) == text


def test_quantize_int8_replaces_linear_layers_only() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Linear(4, 2)))
    assert quantize_int8(net) == 2
    assert isinstance(net[0], Int8Linear) and isinstance(net[2][0], Int8Linear) and isinstance(net[1], torch.nn.ReLU)


def test_token_budget_gives_the_same_vectors_and_respects_the_budget(tiny_bert: object, monkeypatch) -> None:
    texts = [f"{'word ' * (i % 7 + 1)}number {i}" for i in range(40)]
    model: Any = tiny_bert
    rows = model.encode(texts, batch_size=16)
    shapes: list[tuple[int, int]] = []
    forward = model.encoder.transformer.forward

    def spy(*args: Any, **kwargs: Any) -> Any:
        shapes.append(tuple(kwargs["input_ids"].shape))
        return forward(*args, **kwargs)

    monkeypatch.setattr(model.encoder.transformer, "forward", spy)
    budget = model.encode(texts, batch_size=16, max_tokens_per_batch=40)
    np.testing.assert_allclose(budget, rows, atol=1e-5)
    assert sum(b for b, _ in shapes) == len(texts) and all(b * t <= 40 for b, t in shapes)
    assert len(shapes) > -(-len(texts) // 16)  # the budget, not the row count, set the batches


def test_plan_batches() -> None:
    assert plan_batches([9, 5, 5, 2, 1], batch_size=4, budget=12) == [(0, 1), (1, 3), (3, 5)]
    assert plan_batches([100, 3], batch_size=8, budget=10) == [(0, 1), (1, 2)]  # a longer row goes alone
    assert plan_batches([3] * 5, batch_size=2) == [(0, 2), (2, 4), (4, 5)]
    assert plan_batches([], batch_size=2, budget=5) == []


@pytest.mark.parametrize("value", [0, -5, 2.5, True, "many"])
def test_bad_token_budget_is_an_input_error(tiny_bert: Any, value: object) -> None:
    with pytest.raises(InputError, match="max_tokens_per_batch"):
        tiny_bert.encode(TEXTS, max_tokens_per_batch=value)


def test_unknown_quantize_value_names_the_choices(tiny_bert_dir: Path) -> None:
    with pytest.raises(InputError, match=r"quantize='int4' is not valid; choose one of \['int8', 'auto', 'none'\]"):
        load(tiny_bert_dir, quantize="int4")
    with pytest.raises(InputError, match="Did you mean 'int8'"):
        load(tiny_bert_dir, quantize="int9")


def test_quantize_on_cuda_is_refused(tiny_bert_dir: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # so that device='cuda' parses here
    with pytest.raises(InputError, match="runs on CPU only"):
        load(tiny_bert_dir, device="cuda", quantize="int8")
    model = load(tiny_bert_dir, quantize="int8")
    with pytest.raises(InputError, match="runs on CPU only"):
        model.encode("hello", device="cuda")


def test_cache_keys_differ_across_dtype_and_quantize(tiny_bert_dir: Path, tiny_bert: Any) -> None:
    models = [tiny_bert, load(tiny_bert_dir, device="cpu", dtype="bfloat16"), load(tiny_bert_dir, quantize="int8")]
    settings = [m.encoder.settings() for m in models]
    assert [s["dtype"] for s in settings] == ["float32", "bfloat16", "float32"]
    assert "quantize" not in settings[0] and settings[2]["quantize"] == "int8"
    keys = {m.model_key({})[0] for m in models}
    assert len(keys) == 3


def test_flops_per_token_counts_linear_weights_and_attention(tiny_bert: Any) -> None:
    transformer = tiny_bert.encoder.transformer
    config = transformer.config
    linear = sum(p.numel() for n, m in transformer.named_modules() if isinstance(m, torch.nn.Linear)
                 and "pooler" not in n for p in m.parameters())
    want = 2 * linear + 4 * config.num_hidden_layers * 10 * config.hidden_size
    assert flops_per_token(transformer, config, 10) == want


@pytest.mark.parametrize("bf16", [True, False])
def test_a_slow_half_precision_is_named_with_what_to_use_instead(tiny_bert_dir: Path, monkeypatch: Any,
                                                                 bf16: bool) -> None:
    monkeypatch.setattr(speed, "cpu_bf16_ratio", lambda: 2.0 if bf16 else 0.6)
    monkeypatch.setattr(speed, "cpu_int8_ratios", lambda: {"int_mm": 1.5, "fbgemm": 1.1})
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_fp16_supported", lambda: False)
    with pytest.warns(UserWarning, match="no fast float16 matrix kernels") as caught:
        load(tiny_bert_dir, device="cpu", dtype="float16")
    assert ("dtype='bfloat16'" in str(caught[0].message)) is bf16
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        load(tiny_bert_dir, device="cpu", dtype="bfloat16")
    slow = [w for w in seen if "no fast bfloat16 matrix kernels (measured: 0.60× float32)" in str(w.message)]
    assert len(slow) == (0 if bf16 else 1)
    assert not slow or "dtype='float32'" in str(slow[0].message)


@pytest.mark.parametrize("supported, bf16_flops, fast", [(False, 200.0, False), (True, 50.0, False),
                                                         (True, 250.0, True)])
def test_bf16_is_fast_only_where_it_measures_faster_than_float32(monkeypatch: Any, supported: bool,
                                                                 bf16_flops: float, fast: bool) -> None:
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: supported)
    monkeypatch.setattr(speed, "peak_gemm_flops", lambda dtype, *_: bf16_flops if dtype == torch.bfloat16 else 100.0)
    speed.cpu_bf16_ratio.cache_clear()
    try:
        assert speed.fast_bf16(torch.device("cpu")) is fast
        assert speed.cpu_bf16_ratio() == (bf16_flops / 100.0 if supported else 0.0)
    finally:
        speed.cpu_bf16_ratio.cache_clear()  # measured anew, on this machine, by whoever asks next


@pytest.mark.parametrize("ratio, int8, shown", [(0.004, 0.8, "(measured: 0.004× (about 1/250 of) float32)"),
                                                (0.0, 1.3, "(oneDNN has no bfloat16 kernels for it)")])
def test_a_very_slow_bfloat16_names_its_ratio_and_int8_only_where_it_is_fast(
        tiny_bert_dir: Path, monkeypatch: Any, ratio: float, int8: float, shown: str) -> None:
    monkeypatch.setattr(speed, "cpu_bf16_ratio", lambda: ratio)
    monkeypatch.setattr(speed, "cpu_int8_ratios", lambda: {"int_mm": 0.02, "fbgemm": int8})
    with pytest.warns(UserWarning, match="no fast bfloat16 matrix kernels") as caught:
        load(tiny_bert_dir, device="cpu", dtype="bfloat16")
    message = str(caught[0].message)
    assert shown in message and "0.00×" not in message
    assert ("quantize='int8'" in message) is (int8 >= 1.0)


@pytest.mark.slow
def test_int8_on_every_kernel_keeps_minilm_within_the_fidelity_bar_on_sts_b(sts_sentences: list[str]) -> None:
    """Every kernel keeps min cosine >= 0.99 to float32 on 300 STS-B test sentences (per-token scales and float32
    outlier channels; one activation scale per call falls to 0.72, docs/benchmarks.md)."""
    texts = sts_sentences
    fp32 = load("minilm", device="cpu").encode(texts, show_progress_bar=False)
    for kernel in speed.INT8_KERNELS:
        model = load("minilm", device="cpu")
        assert quantize_int8(model.encoder, kernel) > 0
        assert cosines(model.encode(texts, show_progress_bar=False), fp32).min() >= 0.99, kernel


def test_paired_ratio_tells_the_faster_call_on_one_thread_and_restores_the_threads() -> None:
    a = torch.randn(256, 256)
    threads = torch.get_num_threads()

    def four() -> None:
        for _ in range(4):
            a @ a

    torch.set_num_threads(2)
    try:
        assert 2.0 < speed.paired_ratio(four, lambda: a @ a) < 8.0
        assert 0.125 < speed.paired_ratio(lambda: a @ a, four) < 0.5
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
