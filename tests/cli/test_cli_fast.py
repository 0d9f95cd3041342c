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
from inbedder.cli.common import one_or_several
from inbedder.cli.fast import ENVVARS, SERVED, parse_embed, serve_cached
from inbedder.cli.option_specs import EMBED_OPTIONS

TEXTS = ["a cat sat on the mat", "the bank raised its rate", "a dog ran in the park"]
INSTR = "Represent the sentence:"
CLEAN_ENV = {name: None for name in [*ENVVARS.values(), "INBEDDER_NORMALIZE"]}


def test_the_click_command_and_the_fast_parser_read_one_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every option of the click command is a spec of EMBED_OPTIONS, in order; every spelling of a ``fast`` spec
    (given, as ``--opt=value``, from its environment variable, or left out) parses to the value click gives, and
    any other sends the call to the click command."""
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    command = click_main.commands["embed"]
    options = [p for p in command.params if isinstance(p, click.Option)]
    assert [(p.name, (*p.opts, *p.secondary_opts), p.envvar, p.help, p.multiple) for p in options] == [
        (s.name, s.decls, s.envvar, s.help, s.multiple) for s in EMBED_OPTIONS]

    def both(args: list[str]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        clicked = command.make_context("embed", [*args, "a text"]).params
        clicked["instruction"] = one_or_several(clicked["instruction"])
        return parse_embed(["embed", *args, "a text"]), clicked

    fast, clicked = both([])  # the defaults
    assert fast is not None and fast["texts"] == ["a text"]
    assert {s.name: fast.get(s.name) for s in SERVED} == {s.name: clicked[s.name] for s in SERVED}
    for spec in EMBED_OPTIONS:
        calls = [[d] if spec.kind in ("on_off", "flag") else [d, "7"] for d in spec.decls]
        calls += [[f"{d}=7"] for d in spec.decls if d.startswith("--") and spec.kind in ("text", "int")]
        for call in calls:
            fast, clicked = both(call)
            if spec.fast:
                assert fast is not None and fast[spec.name] == clicked[spec.name], call
            else:
                assert fast is None, call
        if spec.fast and spec.envvar:
            monkeypatch.setenv(spec.envvar, "7" if spec.kind in ("text", "int") else "true")
            fast, clicked = both([])
            if spec.kind == "on_off":
                assert fast is None, spec  # click's boolean spellings (true, 1, yes, ...) are left to click
            else:
                assert fast is not None and fast[spec.name] == clicked[spec.name], spec
            monkeypatch.delenv(spec.envvar)
    assert {s.name for s in EMBED_OPTIONS if not s.fast} == {"no_cache", "ray", "ray_address", "concurrency"}


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
