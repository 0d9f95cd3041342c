"""backend="onnx" | "auto": parity with torch float32, the cached export, the choice of auto, and refusals."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from helpers.tiny_decoder import build_tiny_qwen2_embedder
from inbedder import load, onnx_backend
from inbedder.errors import InputError, MissingExtraError, ModelLoadError

TEXTS = ["I love cat!", "The Fed raised its benchmark rate on Wednesday.", "a",
         "Where is the food stored in a yam plant? " * 3, "The quick brown fox jumps over the lazy dog."]
PARITY = 1e-5  # ONNX Runtime's float32 against torch's: the same math, summed in another order


@pytest.fixture()
def ort() -> Any:
    return pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def tiny_decoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_embedder(tmp_path_factory.mktemp("tiny_decoder"))


@pytest.fixture(autouse=True)
def _fresh_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_backend, "_CHOSEN", {})  # auto measures anew in each test


def test_onnx_matches_torch_for_the_instructor_family(ort: Any, tiny_bert_dir: Path, tiny_bert: Any) -> None:
    model = load(tiny_bert_dir, backend="onnx")
    assert model.encoder.backend == "onnx" and model.encoder.runtime is not None
    assert tiny_bert.encoder.backend == "torch" and model.encoder.settings() == tiny_bert.encoder.settings()
    for instruction in (None, "Represent the science title:"):
        want = tiny_bert.encode(TEXTS, instruction=instruction, output="all")
        got = model.encode(TEXTS, instruction=instruction, output="all")
        assert np.abs(got[0] - want[0]).max() <= PARITY
        for i in (1, 2):  # text tokens and instruction tokens: the instruction mask kept exactly
            assert [t.shape for t in got[i]] == [t.shape for t in want[i]]
            assert max(float(np.abs(g - w).max(initial=0)) for g, w in zip(got[i], want[i], strict=True)) <= PARITY
        assert instruction is None or sum(len(t) for t in got[2]) > 0


def test_onnx_matches_torch_for_a_t5_encoder(ort: Any, tiny_t5_dir: Path, tiny_t5: Any) -> None:
    got = load(tiny_t5_dir, backend="onnx").encode(TEXTS, instruction="Represent the sentence:")
    assert np.abs(got - tiny_t5.encode(TEXTS, instruction="Represent the sentence:")).max() <= PARITY


def test_onnx_matches_torch_for_the_decoder_family_with_left_padding(ort: Any, tiny_decoder_dir: Path) -> None:
    torch_model, onnx_model = load(tiny_decoder_dir, device="cpu"), load(tiny_decoder_dir, backend="onnx")
    assert onnx_model.encoder.backend == "onnx"
    for instruction in (None, "Given a web search query, retrieve relevant passages"):
        for texts in (TEXTS, TEXTS[:1]):  # padded batches and one unpadded row
            want = torch_model.encode(texts, instruction=instruction, batch_size=8)
            assert np.abs(onnx_model.encode(texts, instruction=instruction, batch_size=8) - want).max() <= PARITY


@pytest.mark.parametrize("ratio, cosine, chosen", [(2.0, 1.0, "onnx"), (0.8, 1.0, "torch"), (1.02, 1.0, "torch"),
                                                   (3.0, 0.98, "torch")])
def test_auto_keeps_onnx_only_where_it_measures_faster_with_the_same_vectors(
        ort: Any, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch, ratio: float, cosine: float,
        chosen: str) -> None:
    calls: list[int] = []

    def measured(*_: Any) -> tuple[float, float]:
        calls.append(1)
        return ratio, cosine

    monkeypatch.setattr(onnx_backend, "measure", measured)
    first, second = load(tiny_bert_dir, backend="auto"), load(tiny_bert_dir, backend="auto")
    assert first.encoder.backend == second.encoder.backend == chosen
    assert (first.encoder.runtime is None) is (chosen == "torch")
    assert len(calls) == 1  # once per weights file and process


def test_measure_compares_the_two_on_the_same_batch(ort: Any, tiny_bert: Any) -> None:
    transformer = tiny_bert.encoder.transformer
    probe = dict(tiny_bert.encoder.tokenizer(TEXTS, padding=True, return_tensors="pt"))
    example = {k: probe[k] for k in onnx_backend.INPUTS}
    ratio, cosine = onnx_backend.measure(transformer, onnx_backend.runtime_for(transformer, example), example)
    assert ratio > 0 and cosine >= 0.99999


def test_auto_falls_back_to_torch_where_onnx_cannot_serve_the_load(tiny_bert_dir: Path, llama_dir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_backend, "measure", lambda *_: pytest.fail("nothing to measure"))
    assert load(tiny_bert_dir, backend="auto", quantize="int8").encoder.backend == "torch"
    assert load(tiny_bert_dir, backend="auto", dtype="bfloat16", device="cpu").encoder.runtime is None
    assert load(llama_dir, backend="auto", device="cpu").family == "causal"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    assert load(tiny_bert_dir, backend="auto").encoder.backend == "torch"


@pytest.mark.parametrize("kwargs, message", [
    ({"dtype": "bfloat16", "device": "cpu"}, "backend='onnx' runs float32 only; got dtype='bfloat16'"),
    ({"quantize": "int8"}, "backend='onnx' runs float32 only: ONNX Runtime's dynamic int8"),
    ({"backend": "onnxruntime"}, r"backend='onnxruntime' is not valid; choose one of \['torch', 'onnx', 'auto'\]"),
])
def test_onnx_that_cannot_serve_the_load_is_refused_before_loading(tiny_bert_dir: Path, kwargs: dict[str, Any],
                                                                   message: str) -> None:
    with pytest.raises(InputError, match=message):
        load(tiny_bert_dir, **{"backend": "onnx", **kwargs})


def test_onnx_is_refused_for_other_families_and_on_a_gpu(llama_dir: Path, tiny_bert_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="runs the instructor, decoder families; this model is 'causal'"):
        load(llama_dir, backend="onnx")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # so that device='cuda' parses here
    with pytest.raises(InputError, match="runs on CPU only"):
        load(tiny_bert_dir, backend="onnx", device="cuda")


def test_an_onnx_model_stays_on_the_cpu(ort: Any, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = load(tiny_bert_dir, backend="onnx")
    assert model.device.type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(InputError, match="loaded with backend='onnx'.*Load it with backend='torch'"):
        model.encode("hello", device="cuda")


def test_missing_onnxruntime_names_the_extra(tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtraError, match=r'pip install "inbedder\[onnx\]"'):
        load(tiny_bert_dir, backend="onnx")


def test_the_export_is_kept_in_the_user_cache_and_redone_when_the_weights_change(
        ort: Any, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBEDDER_GGUF_CACHE", "on")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    exports: list[Path] = []
    real = onnx_backend.export

    def counting(transformer: Any, example: dict[str, torch.Tensor], folder: Path) -> Path:
        exports.append(folder)
        return real(transformer, example, folder)

    monkeypatch.setattr(onnx_backend, "export", counting)
    first = load(model_dir, backend="onnx").encode(TEXTS)
    second = load(model_dir, backend="onnx").encode(TEXTS)
    assert len(exports) == 1 and np.array_equal(first, second)
    kept = [p for p in (tmp_path / "cache" / "inbedder" / "models" / "converted").glob("model-*") if p.is_dir()]
    assert len(kept) == 1 and (kept[0] / "model.onnx").is_file() and not exports[0].exists()  # moved into place
    assert json.loads((kept[0] / "inbedder-onnx.json").read_text())["format"] == onnx_backend.FORMAT
    weights = model_dir / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    load(model_dir, backend="onnx")
    assert len(exports) == 2


def test_weights_changed_in_memory_are_exported_for_the_process_only(ort: Any, tiny_bert_dir: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBEDDER_GGUF_CACHE", "on")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = load(tiny_bert_dir, device="cpu")
    with torch.no_grad():  # as an adapter merged into the weights would
        model.encoder.transformer.encoder.layer[0].output.dense.weight.mul_(1.5)
    want = model.encode(TEXTS)
    onnx_backend.apply_backend(model.encoder, onnx_backend.Backend.ONNX, cache=False)
    assert model.encoder.backend == "onnx" and np.abs(model.encode(TEXTS) - want).max() <= PARITY
    assert not (tmp_path / "cache").exists()


def test_a_failed_export_is_an_error_for_onnx_and_torch_for_auto(ort: Any, tiny_bert_dir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> Path:
        raise RuntimeError("cannot trace this")

    monkeypatch.setattr(onnx_backend, "export", broken)
    with pytest.raises(ModelLoadError, match=r"backend='onnx': cannot export or run .*BertModel.*cannot trace this"):
        load(tiny_bert_dir, backend="onnx")
    with pytest.warns(UserWarning, match="backend='auto': BertModel could not run on ONNX Runtime"):
        assert load(tiny_bert_dir, backend="auto").encoder.backend == "torch"


def test_export_needs_a_padded_example(tiny_bert: Any, tmp_path: Path) -> None:
    example = {"input_ids": torch.ones(2, 4, dtype=torch.long), "attention_mask": torch.ones(2, 4, dtype=torch.long)}
    with pytest.raises(ValueError, match="padded row"):
        onnx_backend.export(tiny_bert.encoder.transformer, example, tmp_path)


@pytest.mark.slow
def test_onnx_matches_torch_on_minilm_over_sts_b(ort: Any, sts_sentences: list[str]) -> None:
    texts = sts_sentences
    want = load("minilm", device="cpu").encode(texts, show_progress_bar=False)
    got = load("minilm", backend="onnx").encode(texts, show_progress_bar=False)
    assert np.abs(got - want).max() <= PARITY


def test_an_adapter_folder_runs_its_merged_weights_on_onnx(ort: Any, tiny_decoder_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from inbedder import loading

    adapter = tmp_path / "adapter"
    adapter.mkdir()

    def merge(model: Any, path: Path) -> int:  # stands in for adding a LoRA adapter into the weights
        with torch.no_grad():
            model.layers[0].mlp.down_proj.weight.mul_(1.5)
        return 1

    monkeypatch.setattr(loading, "adapter_base", lambda path: str(tiny_decoder_dir) if path == adapter else None)
    monkeypatch.setattr(loading, "merge_adapter", merge)
    merged = load(adapter, device="cpu")
    plain = load(tiny_decoder_dir, device="cpu").encode(TEXTS)
    want = merged.encode(TEXTS)
    assert np.abs(want - plain).max() > 1e-3  # the merge changed the vectors
    on_onnx = load(adapter, backend="onnx")
    assert on_onnx.encoder.backend == "onnx" and np.abs(on_onnx.encode(TEXTS) - want).max() <= PARITY
