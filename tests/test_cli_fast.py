"""The console script answers a fully cached ``inbedder embed`` before importing click: the same bytes as the click
command, only for calls it fully understands, and everything else goes to the click command untouched."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from inbedder.cache import EmbeddingCache
from inbedder.cli import main as click_main
from inbedder.cli.fast import DEFAULTS, ENVVARS, FLAG_OPTIONS, VALUE_OPTIONS, serve_cached

TEXTS = ["a cat sat on the mat", "the bank raised its rate", "a dog ran in the park"]
INSTR = "Represent the sentence:"
CLEAN_ENV = {name: None for name in [*ENVVARS.values(), "INBEDDER_NORMALIZE"]}


def test_option_tables_match_the_click_command(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    command = click_main.commands["embed"]
    ray = ("ray", "ray_address", "concurrency", "no_cache")  # options the fast path leaves to the click command
    parsed = command.make_context("embed", ["a text"]).params  # the values click passes when nothing is given
    defaults = {k: v for k, v in parsed.items() if v not in (None, ()) and k not in (*ray, "texts")}
    value, flags, envvars = {}, {}, {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in ray:
            continue
        if param.is_flag and param.secondary_opts:
            flags.update({o: (param.name, True) for o in param.opts})
            flags.update({o: (param.name, False) for o in param.secondary_opts})
        else:
            value.update({o: param.name for o in param.opts})
        if param.envvar:
            envvars[param.name] = param.envvar
    assert value == VALUE_OPTIONS and flags == FLAG_OPTIONS and envvars == ENVVARS and defaults == DEFAULTS


@pytest.fixture()
def cached(tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A cache holding TEXTS under INSTR (plain and per-row instructions) for a private copy of the tiny model."""
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    model = Path(shutil.copytree(tiny_bert_dir, tmp_path / "model"))
    cache = tmp_path / "c.sqlite"
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t, "instruction": INSTR}) + "\n" for t in TEXTS))
    base = ["embed", "-m", str(model), "--device", "cpu", "--cache", str(cache)]
    for extra in (["--instruction", INSTR, *TEXTS], ["-i", str(tmp_path / "in.jsonl")], TEXTS):
        assert via_click(base + extra).exit_code == 0
    return {"base": base, "dir": tmp_path, "cache": cache, "model": model}


def via_click(args: list[str]) -> Any:
    return CliRunner(env=CLEAN_ENV).invoke(click_main, args, catch_exceptions=False)


@pytest.mark.parametrize("variant", ["npy", "jsonl=", "stdout", "txt-input", "jsonl-input", "normalize", "env"])
def test_cached_call_is_served_with_the_click_commands_bytes(cached: dict[str, Any], variant: str,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    d: Path = cached["dir"]
    args = [*cached["base"], "--instruction", INSTR, *TEXTS]
    out = {"npy": ["-o", "{out}.npy"], "jsonl=": ["--output={out}.jsonl"], "stdout": [],
           "txt-input": ["-o", "{out}.csv"], "jsonl-input": ["-o", "{out}.json"], "normalize": ["-o", "{out}.npy"],
           "env": ["-o", "{out}.npy", "--no-progress"]}[variant]
    if variant == "txt-input":
        args = [*cached["base"], "--instruction", INSTR, "-i", str(d / "in.txt")]
    if variant == "jsonl-input":
        args = [*cached["base"], "-i", str(d / "in.jsonl")]
    if variant == "normalize":
        args.append("--normalize")
    if variant == "env":  # the cache and the model from the environment
        monkeypatch.setenv("INBEDDER_CACHE", str(cached["cache"]))
        monkeypatch.setenv("INBEDDER_MODEL", str(cached["model"]))
        args = ["embed", "--device", "cpu", "--instruction", INSTR, *TEXTS]
    hits_before = EmbeddingCache(cached["cache"]).stats()["last_run"]["at"]
    assert serve_cached([a.format(out=d / "fast") for a in args + out])
    fast = capsysbinary.readouterr().out if variant == "stdout" else None
    assert EmbeddingCache(cached["cache"]).stats()["last_run"]["at"] > hits_before  # `cache stats` sees the hits
    env = {**CLEAN_ENV, **{k: os.environ[k] for k in ("INBEDDER_CACHE", "INBEDDER_MODEL") if k in os.environ}}
    result = CliRunner(env=env).invoke(click_main, [a.format(out=d / "slow") for a in args + out],
                                       catch_exceptions=False)
    assert result.exit_code == 0, result.output
    if variant == "stdout":
        assert fast and fast == result.stdout_bytes
    else:
        suffix = next(a for a in out if "{out}" in a).split("{out}")[1]
        assert (d / f"fast{suffix}").read_bytes() == (d / f"slow{suffix}").read_bytes()


@pytest.mark.parametrize("extra", [["--help"], ["--ray"], ["--concurrency", "2"], ["-x"], ["--", "more"],
                                   ["a text not in the cache"], ["--format", "xml"], ["--batch-size", "0"],
                                   ["--batch-size", "many"], ["-o", "/no/such/folder/v.npy"], ["-i", "-"],
                                   ["--dtype", "float99"], ["-m"]])
def test_anything_else_goes_to_the_click_command(cached: dict[str, Any], extra: list[str],
                                                 capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    args = [*cached["base"], "--instruction", INSTR, *(TEXTS if extra != ["-i", "-"] else []), *extra]
    runs = len(EmbeddingCache(cached["cache"]).stats()["models"])
    assert not serve_cached(args)
    assert capsysbinary.readouterr().out == b""
    assert len(EmbeddingCache(cached["cache"]).stats()["models"]) == runs


def test_stdin_input_other_commands_and_a_set_normalize_variable_are_not_served(
        cached: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    assert not serve_cached([*cached["base"], "--instruction", INSTR])  # texts from stdin
    assert not serve_cached(["models"])
    assert not serve_cached([])
    monkeypatch.setenv("INBEDDER_NORMALIZE", "true")
    assert not serve_cached([*cached["base"], "--instruction", INSTR, *TEXTS])
    assert serve_cached([*cached["base"], "--instruction", INSTR, "--no-normalize", "-o",
                         str(cached["dir"] / "v.npy"), *TEXTS])


def test_the_user_cache_is_the_default_and_no_cache_is_left_to_click(tiny_bert_dir: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --cache or INBEDDER_CACHE the fast path reads the user cache, as the click command writes it."""
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    user_cache = Path(os.environ["INBEDDER_USER_CACHE"])  # conftest: a file of this test's own
    args = ["embed", "-m", str(tiny_bert_dir), "--device", "cpu", "--instruction", INSTR, *TEXTS]
    assert not serve_cached([*args, "-o", str(tmp_path / "none.npy")])  # no user cache yet
    assert not user_cache.exists()  # and the fast path did not create one
    assert via_click([*args, "-o", str(tmp_path / "slow.npy")]).exit_code == 0
    assert user_cache.is_file()
    assert serve_cached([*args, "-o", str(tmp_path / "fast.npy")])
    assert (tmp_path / "fast.npy").read_bytes() == (tmp_path / "slow.npy").read_bytes()
    assert not serve_cached([*args, "--no-cache", "-o", str(tmp_path / "x.npy")])
