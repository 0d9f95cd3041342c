"""What the benchmark scripts share: where the data lives, reading STS-B, the machine and command lines they
print, and the readouts of an answer model through the public ``encode``.

Metrics come from :mod:`inbedder.evaluation`; a script here imports this module, never another script, and only
public names of inbedder (``tests/test_benchmarks_layout.py`` checks both). Importing it loads no model library
(torch, transformers): those come with the functions that need them.

>>> texts = read_texts(STS_DIR)                                  # doctest: +SKIP
>>> vectors, answers = readouts(model, texts[:8], "What is the topic?", new_tokens=3, batch_size=8)  # doctest: +SKIP
>>> vectors[("avg_ppt", 12)].shape                               # doctest: +SKIP
(8, 576)
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inbedder.prompts import INBEDDER_PATTERN

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"  # the public datasets, read-only, never copied into the project
STS_DIR = DATA / "stsbenchmark"
STS_TEST = STS_DIR / "sts-test.jsonl"
ENV_SHOWN = ("HF_HUB_OFFLINE", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "TOKENIZERS_PARALLELISM")

# The answer family's two prompt layouts the answer benchmarks compare: InBedder's pattern and the chat template.
PATTERNS = {"inbedder": INBEDDER_PATTERN, "chat": "chat"}
SELECTION_SET = "clinc150 (selection)"  # the dataset a readout is chosen on; the others are held out
BRIEF = " Answer in a few words."


# -- data ---------------------------------------------------------------------------------------------------------
def read_texts(source: Path) -> list[str]:
    """Sentences of an STS file, both of each pair, in file order (duplicates kept).

    ``source`` is a directory (``sts-test.jsonl``, else ``sts-test.csv``), a ``.jsonl`` file with
    ``sentence1``/``sentence2`` (or ``s1``/``s2``), an STS-B tab-separated ``.csv``, or a ``.txt`` file with one
    text a line.
    """
    if source.is_dir():
        found = [source / n for n in ("sts-test.jsonl", "sts-test.csv") if (source / n).exists()]
        if not found:
            raise SystemExit(f"error: no sts-test.jsonl or sts-test.csv in {source}")
        source = found[0]
    if not source.exists():
        raise SystemExit(f"error: {source} does not exist; give --data a directory or a .jsonl/.csv/.txt file")
    texts: list[str] = []
    with open(source, encoding="utf-8") as f:
        if source.suffix == ".jsonl":
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    texts += [row["sentence1"], row["sentence2"]] if "sentence1" in row else [row["s1"], row["s2"]]
        elif source.suffix in (".csv", ".tsv"):
            # STS-B: genre, file, year, id, score, s1, s2 (some rows carry extra source columns after these)
            for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(row) >= 7:
                    texts += [row[5], row[6]]
        else:
            texts = [line.rstrip("\n") for line in f if line.strip()]
    return texts


def sts_scores(source: Path) -> list[float] | None:
    """Gold scores of ``sts-test.jsonl`` (one per pair), or None when the data is not an STS-B jsonl."""
    if source.is_dir():
        source = source / "sts-test.jsonl"
    if source.suffix != ".jsonl" or not source.exists():
        return None
    with open(source, encoding="utf-8") as f:
        return [float(json.loads(line)["score"]) for line in f if line.strip()]


def sts_spearman(vectors: np.ndarray, scores: Sequence[float]) -> float:
    """Spearman x 100 of the pair cosines (rows 2i, 2i+1) with the gold scores."""
    from inbedder.evaluation.common import cosine_rows, spearman

    x = np.asarray(vectors, dtype=np.float64)
    return 100 * spearman(cosine_rows(x[0::2], x[1::2]), scores)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest cosine of a row of ``a`` with the same row of ``b`` (in float64)."""
    from inbedder.evaluation.common import cosine_rows

    return float(cosine_rows(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)).min())


# -- the machine and the command ----------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float | None:
    """The 1-minute load average: other work on the machine slows every runner and adds noise."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def machine(device: Any) -> dict[str, Any]:
    """CPU, cores, threads, device and the versions of the libraries timed."""
    import sentence_transformers
    import torch
    import transformers

    import inbedder

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "inbedder": inbedder.__version__,
    }


def command() -> str:
    """The command line of this run, with the environment variables that change its speed."""
    env = [f"{k}={shlex.quote(os.environ[k])}" for k in ENV_SHOWN if k in os.environ]
    exe = Path(sys.executable)
    try:
        exe = exe.relative_to(Path.cwd())
    except ValueError:
        pass
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return " ".join([*env, shlex.join([str(exe), str(script), *sys.argv[1:]])])


# -- answer models ------------------------------------------------------------------------------------------------
def brief_pattern(variant: str, brief: str = BRIEF) -> str:
    """InBedder's pattern (``"inbedder-brief"``) or the model's chat template (``"chat:<user message>"``), with
    ``brief`` after the instruction."""
    from inbedder.encoders.causal.settings import CHAT, CHAT_CONTENT

    base = INBEDDER_PATTERN if variant == "inbedder-brief" else f"{CHAT}:{CHAT_CONTENT}"
    return base.replace("{instruction}", "{instruction}" + brief)


def answer_options(parser: Any, *, new_tokens: int, batch_size: int, texts: int | None = None) -> None:
    """``--new-tokens``, ``--batch-size``, ``--threads`` and ``--seed``, as the answer-model benchmarks take them;
    given ``texts``, ``--data`` and ``--n`` (texts per dataset, ``texts`` by default) before them."""
    import torch

    if texts is not None:
        parser.add_argument("--data", type=Path, default=DATA)
        parser.add_argument("--n", type=int, default=texts, help="texts per dataset")
    parser.add_argument("--new-tokens", type=int, default=new_tokens)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)


def prompts(model: Any, pairs: list[tuple[str | None, str]]) -> tuple[list[str], bool]:
    """The prompts of (instruction, text) pairs under an answer model's own pattern (cut to its ``max_length``), and
    whether the pattern is a chat template (whose prompts carry their special tokens: the tokenizer adds none).

    Built with the family's public prompt functions, for what no public call gives yet: a call's prompt tokens
    (``multi_instruction.py``) and beam-search answers (``trained_readouts.py``)."""
    from inbedder.encoders.causal.settings import build_prompts, is_chat, render_chat

    tokenizer, pattern = model.encoder.tokenizer, model.encoder.pattern
    chat = is_chat(pattern)
    built, _, _ = build_prompts(tokenizer, pairs, render_chat(tokenizer, pattern) if chat else pattern, chat,
                                model.encoder.max_length)
    return built, chat


def readouts(model: Any, texts: list[str], instruction: str | None, *, new_tokens: int, batch_size: int,
             pattern: str | None = None, values: Sequence[str] | None = None, layers: Sequence[int] | None = None,
             answers: bool = True, timed: dict[str, float] | None = None
             ) -> tuple[dict[tuple[str, int], np.ndarray], list[str]]:
    """Every output value (``values``, default all) at every layer (``layers``, default 0 .. last) of an answer
    model, ``{(value, layer): vectors}`` in layer-major order, and the greedy answers (``[]`` unless ``answers``).

    One public ``model.readouts`` call (``pattern``: the model's own when None; greedy answers of ``new_tokens``
    tokens; the hidden states themselves, never a re-encoder's vectors of the answers): one forward pass per batch
    for the values that need no answer, one ``generate()`` per batch for the others and the answers, each readout
    bit-identical to ``model.encode(texts, instruction, output_value=value, layer=layer)``. ``timed["answers"]``
    gets the seconds spent in that ``generate()``: what the model itself takes to answer, whatever the sweep.
    """
    options: dict[str, Any] = {"max_new_tokens": new_tokens, "do_sample": False}
    if pattern is not None:
        options["pattern"] = pattern
    found = model.readouts(texts, instruction, values=None if values is None else list(values), layers=layers,
                           answers=answers, batch_size=batch_size, show_progress_bar=False, **options)
    if answers and timed is not None:
        timed["answers"] = found.generate_seconds
    return found.vectors, list(found.answers or [])
