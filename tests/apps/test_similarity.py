"""inbedder.similarity and `inbedder similarity`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from inbedder import similarity
from inbedder.cli import main
from inbedder.errors import InputError

A = ["Parton energy loss in QCD matter", "The Fed raised its benchmark rate.", ""]
B = ["The Chiral Phase Transition in Dissipative Dynamics", "The funds rose less than 0.5 per cent on Friday"]


def _cosine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    return x @ y.T


def test_matrix_uses_each_lists_instruction(tiny_t5) -> None:
    got = similarity(tiny_t5, A, B, "Represent the Science sentence:", instruction_b="Represent the statement:")
    want = _cosine(tiny_t5.encode(A, instruction="Represent the Science sentence:"),
                   tiny_t5.encode(B, instruction="Represent the statement:"))
    assert got.shape == (3, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    same = similarity(tiny_t5, A, B, "Represent the sentence:")
    np.testing.assert_allclose(same, _cosine(tiny_t5.encode(A, instruction="Represent the sentence:"),
                                             tiny_t5.encode(B, instruction="Represent the sentence:")), atol=1e-5)
    with pytest.raises(InputError, match="two lists"):
        similarity(tiny_t5, "one text", B)


def test_cli_json_and_table(tiny_t5, tiny_t5_dir: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\n".join(A[:2]) + "\n")
    b.write_text("\n".join(B) + "\n")
    runner = CliRunner()
    result = runner.invoke(main, ["similarity", "-m", str(tiny_t5_dir), "-a", str(a), "-b", str(b), "--instruction",
                                  "Represent the sentence:", "--format", "json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    got = np.array(json.loads(result.stdout)["cosine"])
    np.testing.assert_allclose(got, similarity(tiny_t5, A[:2], B, "Represent the sentence:"), atol=1e-5)
    table = runner.invoke(main, ["similarity", "-m", str(tiny_t5_dir), "-a", str(a), "-b", str(b), "--device", "cpu"])
    assert table.exit_code == 0 and "b0" in table.stdout and len(table.stdout.strip().splitlines()) == 3
    missing = runner.invoke(main, ["similarity", "-m", str(tiny_t5_dir), "-a", str(tmp_path / "no.txt"), "-b", str(b)])
    assert missing.exit_code == 1 and "no.txt" in missing.output
