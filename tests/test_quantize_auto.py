"""``quantize="auto"``: int8 where this CPU's int8 kernel measured faster, decided once a CPU and model and
remembered (so every process gives the same vectors), the default of the default answer model, and keyed into
cached requests."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import inbedder.loading
from inbedder import load, machine, speed
from inbedder.cache.keys import request_key
from inbedder.errors import InputError
from inbedder.load_free import encode_cached
from inbedder.registry import ALIASES, DEFAULT_ANSWER_MODEL

TEXTS = ["I love my cat.", "The Fed raised its benchmark rate on Wednesday.", "a"]
ASK = {"instruction": "What is it about?", "output_value": "fst_gen"}
FAST = {"int_mm": 0.03, "fbgemm": 1.4}  # an AVX2-only CPU at the 0.5B model's shape, roughly
SLOW = {"int_mm": 0.03, "fbgemm": 0.9}


@pytest.fixture()
def ratios(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """The int8 kernels' measured speed (each call counted in ``calls``), set by the test."""
    found = {"int_mm": 0.0, "fbgemm": 0.0, "calls": 0.0}

    def measured(shape: tuple[int, int] | None = None) -> dict[str, float]:
        found["calls"] += 1
        return {k: found[k] for k in speed.INT8_KERNELS}

    monkeypatch.setattr(speed, "cpu_int8_ratios", measured)
    return found


@pytest.fixture()
def auto_dir(llama_dir: Path, tmp_path: Path) -> Path:
    """The tiny Llama whose defaults say ``quantize="auto"``, as the default answer model's alias does."""
    out = tmp_path / "auto"
    shutil.copytree(llama_dir, out)
    (out / "inbedder.json").write_text(json.dumps({"defaults": {"quantize": "auto"}}), encoding="utf-8")
    return out


def test_the_default_answer_model_is_auto() -> None:
    assert ALIASES[DEFAULT_ANSWER_MODEL].options["quantize"] == "auto"


def test_auto_runs_int8_where_it_measured_faster_and_float32_where_not(auto_dir: Path, ratios: dict[str, float],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ratios.update(FAST)
    model = load(auto_dir, device="cpu")
    assert model.encoder.quantization == "int8" and model.encoder.settings()["quantize"] == "int8"
    monkeypatch.setenv(speed.KERNEL_SWITCH, "fbgemm")  # the kernel auto chose, named
    explicit = load(auto_dir, quantize="int8").encode(TEXTS, **ASK)
    assert np.array_equal(model.encode(TEXTS, **ASK), explicit)
    float32 = load(auto_dir, quantize="none")
    assert float32.encoder.quantization is None
    assert not np.array_equal(float32.encode(TEXTS, **ASK), explicit)
    # the choice is remembered per CPU and model: another model measures anew, here slower, so it stays float32
    ratios.update(SLOW)
    other = load(shutil.copytree(auto_dir, auto_dir.parent / "other"))
    assert other.encoder.quantization is None
    choices = json.loads(machine.machine_file().read_text())[machine.cpu_identity()]["quantize_auto"]
    assert {Path(k).name: v["quantize"] for k, v in choices.items()} == {"auto": "int8", "other": "none"}
    assert choices[str(auto_dir)]["kernel"] == "fbgemm" and choices[str(auto_dir)]["ratio"] == 1.4


def test_the_choice_is_measured_once_and_reused_by_later_loads(auto_dir: Path, ratios: dict[str, float],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ratios.update(FAST)
    first = load(auto_dir, device="cpu").encode(TEXTS, **ASK)
    ratios.update(SLOW)  # the machine got busier: a new measurement would choose float32
    again = load(auto_dir, device="cpu")
    assert ratios["calls"] == 1 and again.encoder.quantization == "int8"
    assert np.array_equal(again.encode(TEXTS, **ASK), first)
    machine.cpu_identity.cache_clear()
    monkeypatch.setattr("platform.machine", lambda: "another-cpu")  # another CPU measures again
    try:
        assert load(auto_dir, device="cpu").encoder.quantization is None and ratios["calls"] == 2
    finally:
        machine.cpu_identity.cache_clear()


def test_auto_is_float32_off_the_cpu_or_in_half_precision(auto_dir: Path, ratios: dict[str, float]) -> None:
    ratios.update(FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bfloat16 may be slow on this CPU, which is not what is tested here
        model = load(auto_dir, device="cpu", dtype="bfloat16")
    assert model.encoder.quantization is None and not machine.machine_file().exists()


def test_quantize_values_are_checked_before_loading(auto_dir: Path) -> None:
    with pytest.raises(InputError, match=r"quantize='int4' is not valid; choose one of \['int8', 'auto', 'none'\]"):
        load(auto_dir.parent / "missing", quantize="int4")
    assert speed.parse_quantize("none") is None and speed.parse_quantize("auto") is speed.Quantize.AUTO


def test_an_adapter_follows_its_bases_auto_default(auto_dir: Path, ratios: dict[str, float], tmp_path: Path) -> None:
    """An adapter folder whose base defaults to auto: the base in float32, the adapter added, then int8."""
    from safetensors.torch import save_file

    ratios.update(FAST)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    generator = torch.Generator().manual_seed(0)
    base = load(auto_dir, quantize="none")
    name = "model.layers.0.self_attn.q_proj"
    width = dict(base.encoder.model.named_modules())[name].in_features
    save_file({f"base_model.model.{name}.lora_A.weight": torch.randn(2, width, generator=generator),
               f"base_model.model.{name}.lora_B.weight": torch.randn(width, 2, generator=generator)},
              str(adapter / "adapter_model.safetensors"))
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 2, "lora_alpha": 2}), encoding="utf-8")
    (adapter / "inbedder.json").write_text(json.dumps({"adapter_of": str(auto_dir)}), encoding="utf-8")
    merged = load(adapter, device="cpu")
    assert merged.encoder.quantization == "int8"
    plain = load(adapter, quantize="none")
    assert plain.encoder.quantization is None
    assert not np.array_equal(plain.encode(TEXTS, **ASK), base.encode(TEXTS, **ASK))  # the adapter is in
    assert np.abs(merged.encode(TEXTS, **ASK) - plain.encode(TEXTS, **ASK)).max() > 0


def test_a_cached_request_is_keyed_by_the_choice_auto_made(auto_dir: Path, ratios: dict[str, float],
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before any load has chosen there is no key (nothing can be served without loading); after it, the key holds
    the choice, so vectors of another choice are never served for it."""
    ratios.update(FAST)
    cache = tmp_path / "cache.sqlite"
    assert request_key(auto_dir) is None
    assert request_key(auto_dir, load_options={"quantize": "none"}) is not None
    first = encode_cached(auto_dir, TEXTS, ASK["instruction"], cache=cache, device="cpu",
                          output_value="fst_gen")
    chosen = request_key(auto_dir, device="cpu", encode_options={"output_value": "fst_gen"})
    assert chosen is not None

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("loaded")

    monkeypatch.setattr(inbedder.loading, "load", no_load)
    served = encode_cached(auto_dir, TEXTS, ASK["instruction"], cache=cache, device="cpu",
                          output_value="fst_gen")
    assert np.array_equal(served, first)
    data = json.loads(machine.machine_file().read_text())
    data[machine.cpu_identity()]["quantize_auto"][str(auto_dir)]["quantize"] = "none"
    machine.machine_file().write_text(json.dumps(data))
    assert request_key(auto_dir, device="cpu", encode_options={"output_value": "fst_gen"}) not in (None, chosen)
    with pytest.raises(AssertionError, match="loaded"):
        encode_cached(auto_dir, TEXTS, ASK["instruction"], cache=cache, device="cpu",
                          output_value="fst_gen")


def test_a_machine_file_that_cannot_be_written_warns_and_the_load_goes_on(auto_dir: Path, ratios: dict[str, float],
                                                                        tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ratios.update(FAST)
    blocked = tmp_path / "a file"
    blocked.write_text("")
    monkeypatch.setattr(machine, "machine_file", lambda: blocked / "machine.json")
    with pytest.warns(UserWarning, match="measured again in each process"):
        model = load(auto_dir, device="cpu")
    assert model.encoder.quantization == "int8"
