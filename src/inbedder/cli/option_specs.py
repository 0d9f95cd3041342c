"""The command line's shared options, and every option of ``inbedder embed``, declared once as data.

Two readers build on these declarations: :func:`inbedder.cli.common.click_option` turns a spec into a click option
(every command's shared options, and ``embed``'s :data:`EMBED_OPTIONS`), and :mod:`inbedder.cli.fast` reads
:data:`EMBED_OPTIONS` to parse a plain, fully cached ``embed`` before click is imported. So this module imports
neither click nor torch. A command that varies a shared option (another help text, no environment variable, a
default) replaces those fields of the spec (``dataclasses.replace``), as :data:`EMBED_OPTIONS` does for
``--instruction`` and ``-o``.

>>> BATCH_SIZE.decls, BATCH_SIZE.name, BATCH_SIZE.default, BATCH_SIZE.envvar
(('--batch-size',), 'batch_size', 32, 'INBEDDER_BATCH_SIZE')
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from ..choices import DType, Quantize
from ..io import OUTPUT_FORMATS


class _Unset:
    """No default declared (click then picks its own: None, or False for a flag)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class OptionSpec:
    """One option. ``decls``: its spellings (``("-m", "--model")``; an ``on_off`` pair names ``--x`` then ``--no-x``);
    ``name``: the parameter it sets; ``kind``: ``text`` or ``int`` (takes a value), ``on_off`` (``--x/--no-x``, True
    or False) or ``flag`` (``--x`` alone, True when given); ``fast``: the cached ``embed`` path
    (:mod:`inbedder.cli.fast`) parses it, and any option without it sends the call to the click command. The other
    fields are click's."""

    decls: tuple[str, ...]
    name: str
    help: str
    kind: Literal["text", "int", "on_off", "flag"] = "text"
    default: Any = UNSET
    envvar: str | None = None
    metavar: str | None = None
    show_default: bool | None = None
    multiple: bool = False
    required: bool = False
    fast: bool = False


MODEL = OptionSpec(("-m", "--model"), "model", "Model alias (see `inbedder models`), local directory, .gguf file or "
                   "hub id.", envvar="INBEDDER_MODEL", fast=True)
BATCH_SIZE = OptionSpec(("--batch-size",), "batch_size", "Texts per forward pass.", "int", default=32,
                        envvar="INBEDDER_BATCH_SIZE", show_default=True, fast=True)
DEVICE = OptionSpec(("--device",), "device", "cpu, cuda, cuda:1, mps, ... [default: cuda when available, else cpu]",
                    envvar="INBEDDER_DEVICE", fast=True)
DTYPE = OptionSpec(("--dtype",), "dtype", "Weight precision [default: float32].", default=None,
                   envvar="INBEDDER_DTYPE", metavar="|".join(d.value for d in DType), fast=True)
QUANTIZE = OptionSpec(("--quantize",), "quantize", "Weights on CPU: int8 (int8 weights and activations), auto "
                      "(int8 where it measured faster than float32 on this CPU; measured once, remembered) or none "
                      "(float32) [default: the model's own: auto for the default answer model, else none].",
                      default=None, envvar="INBEDDER_QUANTIZE",
                      metavar="|".join(sorted(q.value for q in Quantize)), fast=True)
PROGRESS = OptionSpec(("--progress", "--no-progress"), "progress", "Progress bar on stderr [default: shown from 8 "
                      "batches on].", "on_off", default=None, fast=True)
CACHE = OptionSpec(("--cache",), "cache_path", "Look vectors up in (and add them to) this SQLite cache; only missing "
                   "rows are computed, and a run whose rows are all cached loads no model [default: the user cache, "
                   "~/.cache/inbedder/embeddings.sqlite; --no-cache for none].", envvar="INBEDDER_CACHE",
                   metavar="PATH", fast=True)
NO_CACHE = OptionSpec(("--no-cache",), "no_cache", "Use no cache (neither the user cache nor INBEDDER_CACHE): every "
                      "row is computed, nothing is kept.", "flag")
MODEL_OPTIONS = (MODEL, BATCH_SIZE, DEVICE, DTYPE, QUANTIZE, PROGRESS, CACHE, NO_CACHE)

INSTRUCTION = OptionSpec(("--instruction",), "instruction", "Instruction for every text.", fast=True)
INPUT = OptionSpec(("-i", "--input"), "input_path", "Read texts from FILE: .txt (one per line) or a table, .jsonl, "
                   ".json, .csv, .tsv or .parquet (a 'text' column, optional 'instruction' and 'id'); '-' for stdin "
                   "(one text per line). Default: the arguments, else stdin.", metavar="FILE", fast=True)
TEXT_COLUMN = OptionSpec(("--text-column",), "text_column", "Text column of a table input file.", default="text",
                         show_default=True, fast=True)
INSTRUCTION_COLUMN = OptionSpec(("--instruction-column",), "instruction_column", "Instruction column of a table "
                                "input file [default: instruction, if any].", fast=True)
INPUT_OPTIONS = (INPUT, TEXT_COLUMN, INSTRUCTION_COLUMN)

OUTPUT = OptionSpec(("-o", "--output"), "output", "Write to FILE.", metavar="FILE", fast=True)
FORMAT = OptionSpec(("--format",), "fmt", "Output format, whatever the extension of -o.", fast=True)

NORMALIZE = OptionSpec(("--normalize", "--no-normalize"), "normalize", "Scale each vector to unit length.", "on_off",
                       default=False, envvar="INBEDDER_NORMALIZE", show_default=True, fast=True)
DIMENSIONS = OptionSpec(("--dimensions",), "dimensions", "Keep the first N dimensions of each vector, scaled back to "
                        "length 1 (Matryoshka models) [default: all].", "int", fast=True)
LONG_TEXT = OptionSpec(("--long-text",), "long_text", "A text longer than the model's limit: cut it (truncate) or "
                       "embed it in overlapping windows pooled by token count (chunk) [default: truncate].",
                       metavar="truncate|chunk", fast=True)
CHUNK_OVERLAP = OptionSpec(("--chunk-overlap",), "chunk_overlap", "Tokens shared by neighbouring windows with "
                           "--long-text chunk [default: an eighth of the window].", "int", fast=True)
VECTOR_OPTIONS = (NORMALIZE, DIMENSIONS, LONG_TEXT, CHUNK_OVERLAP)

# every option of ``inbedder embed``, in the order of its --help
EMBED_OPTIONS = (
    *MODEL_OPTIONS,
    replace(INSTRUCTION, help="Instruction for every text; rows of a .jsonl/.csv file may carry their own. Give it "
            "several times to embed every text under each (rows instruction by instruction).", multiple=True),
    *INPUT_OPTIONS,
    replace(OUTPUT, help="Write to FILE; the format comes from its extension (.npy, .jsonl, .json, .csv, .parquet). "
            "Default: jsonl on stdout."),
    replace(FORMAT, metavar="|".join(OUTPUT_FORMATS)),
    *VECTOR_OPTIONS,
    OptionSpec(("--ray",), "ray", "Embed parquet (-i FILE or FOLDER) with Ray into a folder of parquet files "
               "(-o FOLDER), resumably. See docs/integrations.md.", "flag"),
    OptionSpec(("--ray-address",), "ray_address", "Ray cluster for --ray [default: start a local Ray].",
               envvar="RAY_ADDRESS"),
    OptionSpec(("--concurrency",), "concurrency", "Model copies (Ray actors) for --ray.", "int", default=1,
               show_default=True),
)


def load_options(quantize: str | None) -> dict[str, str] | None:
    """``load``'s options for --quantize: none when it is not given (the model's default), so that the request a
    run records in the cache (:func:`inbedder.cache.keys.request_key`) is the one a later identical run asks for."""
    return None if quantize is None else {"quantize": quantize}
