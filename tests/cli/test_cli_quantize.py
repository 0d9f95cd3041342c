"""``--quantize auto|int8|none``: declared once beside --dtype, checked before any load, passed to ``load`` by every
command that loads a model, and part of the request a cached run is served by (the click command and the fast path
alike)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import inbedder.loading
from inbedder import load, speed
from inbedder.cli import main as click_main
from inbedder.cli.fast import ENVVARS, serve_cached

TEXTS = ["a cat sat on the mat", "the bank raised its rate", "a dog ran in the park"]
INSTR = "Represent the sentence:"
CLEAN_ENV = {name: None for name in [*ENVVARS.values(), "INBEDDER_NORMALIZE"]}
FAST = {"int_mm": 0.03, "fbgemm": 1.4}  # int8 measured faster (fbgemm), as on an AVX2-only CPU


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def ratios(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """The int8 kernels' measured speed (set by the test; int8 faster by default), so no test measures."""
    found = dict(FAST)
    monkeypatch.setattr(speed, "cpu_int8_ratios", lambda shape=None: {k: found[k] for k in speed.INT8_KERNELS})
    return found


@pytest.fixture()
def auto_dir(llama_dir: Path, tmp_path: Path) -> Path:
    """The tiny Llama whose defaults say ``quantize="auto"``, as the default answer model's alias does."""
    out = Path(shutil.copytree(llama_dir, tmp_path / "auto"))
    (out / "inbedder.json").write_text(json.dumps({"defaults": {"quantize": "auto"}}), encoding="utf-8")
    return out


def run(*args: str, env: dict[str, str | None] | None = None) -> Any:
    return CliRunner(env={**CLEAN_ENV, **(env or {})}).invoke(click_main, list(args), catch_exceptions=False)


def embedded(model: Path, out: Path, *extra: str, env: dict[str, str | None] | None = None) -> np.ndarray:
    result = run("embed", "-m", str(model), "--device", "cpu", "--instruction", INSTR, "-o", str(out), *extra,
                 *TEXTS, env=env)
    assert result.exit_code == 0, result.output
    return np.load(out)


def no_load(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a model was loaded")


def test_the_option_is_in_every_loading_commands_help() -> None:
    for command in (["embed"], ["cluster"], ["similarity"], ["search", "index"], ["search", "query"],
                    ["eval", "sts"], ["serve"]):
        shown = " ".join(run(*command, "--help").output.split())
        assert "--quantize auto|int8|none" in shown and "env var: INBEDDER_QUANTIZE" in shown, command


def test_int8_and_none_give_the_librarys_vectors(model_dir: Path, tmp_path: Path, ratios: dict[str, float]) -> None:
    int8 = embedded(model_dir, tmp_path / "int8.npy", "--quantize", "int8", "--no-cache")
    none = embedded(model_dir, tmp_path / "none.npy", "--quantize", "none", "--no-cache")
    assert not np.allclose(int8, none, atol=1e-6)
    np.testing.assert_array_equal(int8, load(model_dir, device="cpu", quantize="int8").encode(TEXTS, INSTR))
    np.testing.assert_array_equal(none, load(model_dir, device="cpu").encode(TEXTS, INSTR))
    from_env = embedded(model_dir, tmp_path / "env.npy", "--no-cache", env={"INBEDDER_QUANTIZE": "int8"})
    np.testing.assert_array_equal(from_env, int8)


def test_auto_follows_the_measurement_and_none_overrides_a_models_auto_default(
        auto_dir: Path, tmp_path: Path, ratios: dict[str, float], loads: list[str]) -> None:
    default = embedded(auto_dir, tmp_path / "default.npy", "--no-cache")  # the model's default: auto, int8 here
    np.testing.assert_array_equal(default, embedded(auto_dir, tmp_path / "int8.npy", "--quantize", "int8",
                                                    "--no-cache"))
    none = embedded(auto_dir, tmp_path / "none.npy", "--quantize", "none", "--no-cache")
    assert not np.allclose(default, none, atol=1e-6)
    np.testing.assert_array_equal(none, load(auto_dir, device="cpu", quantize="none").encode(TEXTS, INSTR))
    assert len(loads) == 3


@pytest.mark.parametrize("command", [
    ["embed", "-m", "{model}", "a text"],
    ["embed", "-m", "{model}", "--ray", "-i", "in.parquet", "-o", "out"],
    ["cluster", "-m", "{model}", "a", "b", "c"],
    ["similarity", "-m", "{model}", "-a", "{a}", "-b", "{a}"],
    ["search", "index", "-m", "{model}", "--index", "{index}", "a text"],
    ["search", "query", "--index", "{index}", "a text"],
    ["eval", "sts", "-m", "{model}", "-i", "{a}"],
    ["serve", "-m", "{model}"],
])
@pytest.mark.parametrize("how", ["option", "env"])
def test_a_bad_value_fails_in_one_line_before_any_load(command: list[str], how: str, model_dir: Path,
                                                       tmp_path: Path, loads: list[str]) -> None:
    (tmp_path / "a.txt").write_text("a text\n")
    args = [a.format(model=model_dir, a=tmp_path / "a.txt", index=tmp_path / "idx") for a in command]
    result = (run(*args, "--quantize", "int4") if how == "option"
              else run(*args, env={"INBEDDER_QUANTIZE": "int4"}))
    assert result.exit_code == 1
    assert result.output == ("Error: quantize='int4' is not valid; choose one of ['int8', 'auto', 'none']. "
                             "Did you mean 'int8'?\n")
    assert loads == []


def test_ray_takes_no_quantization(model_dir: Path) -> None:
    result = run("embed", "-m", str(model_dir), "--ray", "-i", "in.parquet", "-o", "out", "--quantize", "int8")
    assert result.exit_code == 1 and "--quantize int8 is not supported with --ray" in result.output


def test_a_cached_run_is_served_for_the_same_quantize_only(model_dir: Path, tmp_path: Path, ratios: dict[str, float],
                                                           monkeypatch: pytest.MonkeyPatch, loads: list[str]) -> None:
    """A second identical ``--quantize none`` run is served from the cache, by the fast path and by the click
    command, without a load; an ``int8`` run is not served the float32 rows (it loads, and gets its own)."""
    cache = tmp_path / "c.sqlite"
    base = ["embed", "-m", str(model_dir), "--device", "cpu", "--cache", str(cache), "--instruction", INSTR, *TEXTS]
    first = run(*base, "--quantize", "none", "-o", str(tmp_path / "first.npy"))
    assert first.exit_code == 0, first.output
    assert len(loads) == 1
    assert not serve_cached([*base, "--quantize", "int8", "-o", str(tmp_path / "int8-fast.npy")])
    assert not (tmp_path / "int8-fast.npy").exists()
    assert not serve_cached([*base, "--quantize", "int4", "-o", str(tmp_path / "bad.npy")])  # click's error
    assert serve_cached([*base, "--quantize", "none", "-o", str(tmp_path / "fast.npy")])
    assert serve_cached([*base, "--quantize=none", "-o", str(tmp_path / "fast2.npy")])
    monkeypatch.setenv("INBEDDER_QUANTIZE", "none")
    assert serve_cached([*base, "-o", str(tmp_path / "fast3.npy")])
    monkeypatch.delenv("INBEDDER_QUANTIZE")
    assert len(loads) == 1
    for name in ("fast", "fast2", "fast3"):
        assert (tmp_path / f"{name}.npy").read_bytes() == (tmp_path / "first.npy").read_bytes()

    int8 = run(*base, "--quantize", "int8", "-o", str(tmp_path / "int8.npy"))
    assert int8.exit_code == 0, int8.output
    assert len(loads) == 2  # not served from the float32 rows
    assert not np.allclose(np.load(tmp_path / "int8.npy"), np.load(tmp_path / "first.npy"), atol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path / "int8.npy"),
                                  load(model_dir, device="cpu", quantize="int8").encode(TEXTS, INSTR))
    monkeypatch.setattr(inbedder.loading, "load", no_load)  # from here on, any load fails the test
    again = run(*base, "--quantize", "none", "-o", str(tmp_path / "slow.npy"))
    assert again.exit_code == 0, again.output
    assert (tmp_path / "slow.npy").read_bytes() == (tmp_path / "first.npy").read_bytes()
    assert serve_cached([*base, "--quantize", "int8", "-o", str(tmp_path / "int8-again.npy")])
    assert (tmp_path / "int8-again.npy").read_bytes() == (tmp_path / "int8.npy").read_bytes()


def test_auto_is_served_from_the_cache_once_a_load_chose(auto_dir: Path, tmp_path: Path, ratios: dict[str, float],
                                                         loads: list[str]) -> None:
    """Nothing is served for ``auto`` before a load has chosen on this CPU; after it, the rows of its choice are."""
    cache = tmp_path / "c.sqlite"
    base = ["embed", "-m", str(auto_dir), "--device", "cpu", "--cache", str(cache), "--instruction", INSTR, *TEXTS]
    none = run(*base, "--quantize", "none", "-o", str(tmp_path / "none.npy"))
    assert none.exit_code == 0, none.output
    assert not serve_cached([*base, "--quantize", "auto", "-o", str(tmp_path / "x.npy")])  # auto not chosen yet
    assert not serve_cached([*base, "-o", str(tmp_path / "x.npy")])
    auto = run(*base, "--quantize", "auto", "-o", str(tmp_path / "auto.npy"))
    assert auto.exit_code == 0, auto.output
    assert len(loads) == 2
    assert not np.allclose(np.load(tmp_path / "auto.npy"), np.load(tmp_path / "none.npy"), atol=1e-6)
    assert serve_cached([*base, "--quantize", "auto", "-o", str(tmp_path / "fast.npy")])
    assert (tmp_path / "fast.npy").read_bytes() == (tmp_path / "auto.npy").read_bytes()
    assert len(loads) == 2


def test_search_queries_load_the_indexs_quantization(model_dir: Path, tmp_path: Path, ratios: dict[str, float],
                                                     loads: list[str]) -> None:
    """An index built with --quantize int8: a query without -m loads its model int8 (its settings then match);
    --quantize none for it is refused by the index, as another --dtype is."""
    index = str(tmp_path / "idx")
    built = run("search", "index", "-m", str(model_dir), "--device", "cpu", "--quantize", "int8", "--no-cache",
                "--index", index, *TEXTS)
    assert built.exit_code == 0, built.output
    assert json.loads((tmp_path / "idx" / "index.json").read_text())["model"]["settings"]["quantize"] == "int8"
    query = ["search", "query", "--index", index, "--device", "cpu", "--no-cache", "-k", "1", TEXTS[1]]
    found = run(*query)
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)["results"][0]["text"] == TEXTS[1]
    refused = run(*query, "--quantize", "none")
    assert refused.exit_code == 1 and "quantize" in refused.output and "settings differ" in refused.output


def test_a_float32_index_of_an_auto_model_is_queried_in_float32(auto_dir: Path, tmp_path: Path,
                                                               ratios: dict[str, float]) -> None:
    """The index's model defaults to auto, which chooses int8 on this CPU; the index was built --quantize none, so
    a query without -m loads it with none (its default would be refused by the index)."""
    index = str(tmp_path / "idx")
    built = run("search", "index", "-m", str(auto_dir), "--device", "cpu", "--quantize", "none", "--no-cache",
                "--index", index, *TEXTS)
    assert built.exit_code == 0, built.output
    query = ["search", "query", "--index", index, "--device", "cpu", "--no-cache", "-k", "1", TEXTS[2]]
    found = run(*query)
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)["results"][0]["text"] == TEXTS[2]
    refused = run(*query, "--quantize", "auto")  # auto chooses int8 here: not the index's model
    assert refused.exit_code == 1 and "settings differ" in refused.output


@pytest.mark.parametrize("command", [
    ["embed", "-m", "{model}", "--no-cache", "a text"],
    ["cluster", "-m", "{model}", "--no-cache", "-k", "2", "a", "b", "c"],
    ["similarity", "-m", "{model}", "--no-cache", "-a", "{a}", "-b", "{a}"],
    ["search", "index", "-m", "{model}", "--no-cache", "--index", "{index}", "a text"],
    ["eval", "sts", "-m", "{model}", "-i", "{sts}"],
    ["serve", "-m", "{model}", "--no-cache"],
])
def test_every_loading_command_passes_it_to_load(command: list[str], model_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """What --quantize reaches ``load`` with, in each command (the load then stops the command)."""
    from inbedder.errors import InputError

    (tmp_path / "a.txt").write_text("a text\nanother\n")
    (tmp_path / "sts.jsonl").write_text("".join(json.dumps({"sentence1": a, "sentence2": b, "score": s}) + "\n"
                                                for a, b, s in [("a", "b", 1.0), ("c", "d", 2.0), ("e", "f", 3)]))
    args = [a.format(model=model_dir, a=tmp_path / "a.txt", index=tmp_path / "idx", sts=tmp_path / "sts.jsonl")
            for a in command]
    asked: list[Any] = []

    def spy(name: Any, **kwargs: Any) -> Any:
        asked.append(kwargs.get("quantize"))  # None: the model's default
        raise InputError("stopped at the load")

    monkeypatch.setattr(inbedder.loading, "load", spy)
    for given in (["--quantize", "int8"], [], ["--quantize", "auto"]):
        result = run(*args, "--device", "cpu", *given)
        assert result.exit_code == 1 and "stopped at the load" in result.output, result.output
    assert asked == ["int8", None, "auto"]
