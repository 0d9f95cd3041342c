"""``inbedder bench`` on a tiny model: runs quickly, reports every variant, writes JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from inbedder.apps.benchmark import parse_variants
from inbedder.cli import main
from inbedder.errors import InputError


def test_bench_runs_on_a_tiny_model_and_writes_json(tiny_bert_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"sentence number {i} about cats" for i in range(20)) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["bench", "-m", str(tiny_bert_dir), "-i", str(texts), "--variants",
                                       "bfloat16,int8", "--rounds", "2", "--warmup", "1", "--max-tokens-per-batch",
                                       "64", "--peak-size", "256", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "inbedder bfloat16" in result.output and "% bf16 peak" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["variants"]) == {"inbedder float32", "inbedder bfloat16", "inbedder int8"}
    for row in report["variants"].values():
        assert len(row["seconds"]) == 2 and row["texts_per_s"] > 0 and row["min_cosine"] > 0.98
        for dtype, peak in report["peak_flops_per_s"].items():  # bf16 peaks differ by orders of magnitude by CPU
            assert peak > 0 and row[f"roofline_{dtype}"] == pytest.approx(row["flops_per_s"] / peak)
        base = report["variants"]["inbedder float32"]["texts_per_s"]
        assert row["vs_float32"] == pytest.approx(row["texts_per_s"] / base)
    assert report["variants"]["inbedder float32"]["min_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert report["texts"] == 20 and report["tokens"] > 20 and report["flops"] > 0


def test_bench_unknown_variant_is_one_line_error(tiny_bert_dir: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "-m", str(tiny_bert_dir), "--variants", "int4", "a", "b"])
    assert result.exit_code == 1 and "variant 'int4' is not known" in result.output
    assert "Traceback" not in result.output


def test_parse_variants_always_includes_float32() -> None:
    assert [v.name for v in parse_variants("int8,bfloat16")] == ["float32", "int8", "bfloat16"]
    with pytest.raises(InputError, match="Did you mean 'int8'"):
        parse_variants("int9")
