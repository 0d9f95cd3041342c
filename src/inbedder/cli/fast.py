"""A fully cached ``inbedder embed`` answered before click is imported (the console script, :func:`inbedder.cli.run`,
asks :func:`serve_cached` first).

Importing click is about a third of a fully cached run's work (measured with callgrind: 131 M of 366 M
instructions for 2,000 cached texts). So the script first looks at its arguments: a plain ``embed`` call
(the ``fast`` options of :data:`inbedder.cli.option_specs.EMBED_OPTIONS`, texts as arguments or ``-i FILE``, a
cache from ``--cache``, ``INBEDDER_CACHE`` or else the user cache) whose every row is in the cache is read and
written here. Anything else (another command, ``--help``, ``--no-cache``, an option without ``fast``, stdin input,
a missing row, any error) goes to the click command unchanged, which then does, and reports, everything itself.
The click command's options are built from the same declaration (:func:`inbedder.cli.common.click_options`), and
both paths write through :func:`embed_records`, so their output is the same.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ..encode_settings import check_batch_size
from ..io import Record, check_target, gather_input, output_format, write_embeddings
from .option_specs import EMBED_OPTIONS, UNSET, load_options

# the parser's tables, read off the ``fast`` options of ``embed``'s one declaration; any other option (``--ray``,
# ``--no-cache``, one added later without ``fast``) sends the call to the click command
SERVED = tuple(spec for spec in EMBED_OPTIONS if spec.fast)
VALUE_OPTIONS = {decl: spec.name for spec in SERVED if spec.kind in ("text", "int") for decl in spec.decls}
INT_OPTIONS = tuple(spec.name for spec in SERVED if spec.kind == "int")
MULTIPLE = tuple(spec.name for spec in SERVED if spec.multiple)
FLAG_OPTIONS = {decl: (spec.name, decl == spec.decls[0]) for spec in SERVED if spec.kind == "on_off"
                for decl in spec.decls}
ENVVARS = {spec.name: spec.envvar for spec in SERVED if spec.envvar}
BOOL_ENVVARS = {spec.name: spec.envvar for spec in SERVED if spec.kind == "on_off" and spec.envvar}
DEFAULTS: dict[str, Any] = {spec.name: spec.default for spec in SERVED if spec.default not in (UNSET, None)}


def embed_records(records: list[Record], model: str, instruction: str | list[str] | None, *, output: str | None,
                  fmt: str, cached_only: bool = False, cache_path: str | None = None, **encode: Any) -> bool:
    """Embed ``records`` (each with its own instruction or ``instruction``; a list: every record under each, rows
    instruction by instruction) and write them to ``output`` (stdout for None or ``-``). With ``cached_only``,
    write nothing and return False unless every row is cached."""
    from ..cache.store import open_cache
    from ..load_free import encode_cached, served_from_cache

    texts = [r.text for r in records]
    instructions: list[str | None]
    if isinstance(instruction, list):  # several questions of every text
        from ..errors import InputError
        from ..multi_instruction import under_each

        own = next((i for i, r in enumerate(records) if r.instruction is not None), None)
        if own is not None:
            raise InputError(f"row {own} carries its own instruction; with several --instruction give plain texts")
        encode["instructions"], asked = instruction, None
        records, every = under_each(records, instruction)
        instructions = list(every)
    else:
        instructions = [instruction if r.instruction is None else r.instruction for r in records]
        asked = instructions if any(r.instruction is not None for r in records) else instruction
    if cached_only:
        vectors = served_from_cache(open_cache(cache_path), model, texts, asked, packed=True, **encode)
        if vectors is None:
            return False
    else:
        vectors = encode_cached(model, texts, asked, cache=cache_path, packed=True, **encode)
    write_embeddings(records, vectors, instructions, fmt, sys.stdout.buffer if output in (None, "-") else output)
    return True


def parse_embed(args: list[str]) -> dict[str, Any] | None:
    """The parameters of a plain ``embed`` call, or None when anything in it is outside this parser's reach."""
    if not args or args[0] != "embed":
        return None
    given: dict[str, Any] = {}
    texts: list[str] = []
    rest = iter(args[1:])
    for arg in rest:
        name, eq, attached = arg.partition("=")
        if (arg.startswith("--") and eq and name in VALUE_OPTIONS) or arg in VALUE_OPTIONS:
            key, value = (VALUE_OPTIONS[name], attached) if eq and arg.startswith("--") else (
                VALUE_OPTIONS[arg], next(rest, None))
            if value is None:
                return None
            if key in MULTIPLE:  # --instruction may be given several times
                given.setdefault(key, []).append(value)
            else:
                given[key] = value
        elif arg in FLAG_OPTIONS:
            key, flag = FLAG_OPTIONS[arg]
            given[key] = flag
        elif arg.startswith("-"):
            return None  # --help, --ray, "--", "-", attached short options, ...: the click command's business
        else:
            texts.append(arg)
    if any(envvar in os.environ and name not in given for name, envvar in BOOL_ENVVARS.items()):
        return None  # INBEDDER_NORMALIZE: click's boolean spellings
    params = {**DEFAULTS, **{k: os.environ[v] for k, v in ENVVARS.items() if os.environ.get(v)}, **given}
    try:
        params.update({k: int(params[k]) for k in INT_OPTIONS if k in params})
    except ValueError:
        return None
    asked = params.pop("instruction", [])
    params["instruction"] = None if not asked else asked[0] if len(asked) == 1 else asked
    return {"texts": texts, **params}


def serve_cached(args: list[str]) -> bool:
    """Answer ``inbedder ARGS`` from the cache if it is a plain, fully cached ``embed``; False otherwise."""
    params = parse_embed(args)
    if params is None or not params.get("model"):
        return False
    if not params.get("cache_path"):  # the user cache, as the click command uses; nothing cached while it is absent
        from ..cache.store import user_cache_path

        params["cache_path"] = str(user_cache_path())
        if not os.path.isfile(params["cache_path"]):
            return False
    texts, input_path = params["texts"], params.get("input_path")
    if bool(texts) == (input_path is not None) or input_path == "-":
        return False  # both or neither (stdin): the click command decides
    output = params.get("output")
    try:
        check_batch_size(params["batch_size"])  # not used by a cached run, but a bad one is the click command's error
        check_target(output)  # before the cache records a run
        records = gather_input(texts, input_path, params["text_column"], params.get("instruction_column"))
        return embed_records(records, params["model"], params.get("instruction"), output=output,
                             fmt=output_format(output, params.get("fmt")), cached_only=True,
                             cache_path=params["cache_path"], dtype=params.get("dtype") or "float32",
                             device=params.get("device"), normalize=params["normalize"],
                             load_options=load_options(params.get("quantize")),  # a bad one loads: never cached
                             **{k: params[k] for k in ("dimensions", "long_text", "chunk_overlap") if k in params})
    except Exception:  # noqa: BLE001 - the click command redoes the call and reports the error properly
        return False
