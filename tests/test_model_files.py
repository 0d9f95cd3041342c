"""Crafted or corrupt model files give one clear error at load, naming the file and the layout that was tried:
from ``load()`` and from ``inbedder serve -m`` (one line, exit status 1, before any server starts)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from inbedder import load
from inbedder.cli import main
from inbedder.errors import ModelLoadError
from inbedder.model_files import broken_file

NOWHERE = json.dumps([{"idx": 0, "name": "0", "path": "0_Transformer",
                       "type": "sentence_transformers.models.Transformer"}])
# name → (model to start from, the file to break, its new bytes or the share of it to keep, the layout named)
CASES: dict[str, tuple[str, str, bytes | float, str]] = {
    "safetensors cut in half (sentence-transformers)": ("st", "model.safetensors", 0.5, "sentence-transformers"),
    "safetensors cut inside its header (transformers)": ("plain", "model.safetensors", 0.0001, "transformers"),
    "safetensors overwritten with garbage": ("plain", "model.safetensors", b"\xff" * 64, "transformers"),
    "config.json not JSON (sentence-transformers)": ("st", "config.json", b"{not json", "sentence-transformers"),
    "config.json not JSON (transformers)": ("plain", "config.json", b"{not json", "config.json"),
    "config.json a list": ("plain", "config.json", b"[1, 2]", "config.json"),
    "modules.json pointing nowhere": ("st", "modules.json", NOWHERE.encode(), "sentence-transformers"),
    "modules.json not JSON": ("st", "modules.json", b"[{", "sentence-transformers"),
    "tokenizer.json garbage": ("st", "tokenizer.json", b"garbage", "sentence-transformers"),
    "garbage .gguf": ("gguf", "m.gguf", b"not a gguf file" * 8, "GGUF"),
    "empty .gguf": ("gguf", "m.gguf", b"", "GGUF"),
    "GGUF magic then zeros": ("gguf", "m.gguf", b"GGUF" + bytes(60), "GGUF"),
}


@pytest.fixture(params=sorted(CASES))
def broken(request: pytest.FixtureRequest, tiny_bert_dir: Path, plain_bert_dir: Path,
           tmp_path: Path) -> tuple[Path, Path, str]:
    """(what to load, the broken file, a word the message must have for the layout)."""
    start, name, content, layout = CASES[request.param]
    folder = tmp_path / "model"
    if start == "gguf":
        folder.mkdir()
    else:
        shutil.copytree(tiny_bert_dir if start == "st" else plain_bert_dir, folder)
    file = folder / name
    if isinstance(content, float):
        content = file.read_bytes()[:int(file.stat().st_size * content)]
    file.write_bytes(content)
    return (file if start == "gguf" else folder), file, layout


def test_load_names_the_broken_file_and_the_layout(broken: tuple[Path, Path, str]) -> None:
    target, file, layout = broken
    with pytest.raises(ModelLoadError) as info:
        load(target, device="cpu")
    message = str(info.value)
    assert str(file) in message and layout.lower() in message.lower(), message


def test_serve_refuses_to_start_with_one_line(broken: tuple[Path, Path, str]) -> None:
    target, file, _ = broken
    result = CliRunner().invoke(main, ["serve", "-m", f"bad={target}", "--no-cache", "--port", "1"])
    assert result.exit_code == 1, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and str(file) in error[0] and "Traceback" not in result.output, result.output


def test_sound_models_have_no_broken_file(tiny_bert_dir: Path, plain_bert_dir: Path) -> None:
    assert broken_file(tiny_bert_dir) is None and broken_file(plain_bert_dir) is None
