"""The teacher pass of distillation: a causal answer model's next-token distribution at the answer position of each
(text, question), as top-k log-probabilities in a JSONL file that a rerun extends instead of recomputing.

The file format (``teacher.jsonl``, one record a line, in the order of the question bank)::

    {"text": "...", "question": "...", "top_k": [[token id, log-probability], ...], "answer": "..."}

``top_k`` is sorted by probability, highest first; ``answer`` (the teacher's greedy answer) is there only when the
pass was asked for answers, and ``vector`` (the teacher's ``fst_gen`` embedding of the pair, 5 significant digits)
only when it was asked for vectors. Any other fields of the bank's rows (``axis``, ``source``) are kept. Beside it,
``teacher.meta.json`` names the teacher, the prompt pattern, k, and a fingerprint of the tokenizer's vocabulary:
a student trains on the file only if it has the same vocabulary. A file written by any other program in this format
(a 7B teacher on a GPU, say) trains a student the same way.

>>> path = teacher_pass("qwen2.5-coder-1.5b-instruct", rows, "work/teacher.jsonl")   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..encoders.causal.settings import check_pattern
from ..errors import InputError, check_ints
from ..registry import ONE_WORD_CHAT

FORMAT_VERSION = 1
CHUNK = 64  # rows written (and flushed) at a time: what an interruption can lose


@dataclass(frozen=True)
class TeacherSettings:
    """The prompt the teacher (and later the student) reads, how many tokens of its distribution to keep, whether to
    record its greedy answer (``answer_tokens`` > 0: up to that many tokens) and its embedding (``vectors``: the
    hidden state at the answer position, read in the same forward pass as the distribution)."""

    pattern: str = ONE_WORD_CHAT
    top_k: int = 20
    answer_tokens: int = 0
    vectors: bool = False
    batch_size: int = 8
    max_length: int = 256

    def __post_init__(self) -> None:
        check_pattern(self.pattern)
        check_ints(self, ("top_k", "batch_size"))
        check_ints(self, ("answer_tokens",), 0)
        check_ints(self, ("max_length",), 8)


def vocab_fingerprint(tokenizer: Any) -> str:
    """A short hash of the tokenizer's token → id map (a student needs the teacher's ids to mean the same)."""
    items = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()[:16]


def meta_path(path: Path) -> Path:
    return path.with_name(path.stem + ".meta.json")


def answer_distribution(encoder: Any, pairs: list[tuple[str, str]], pattern: str, top_k: int, batch_size: int,
                        max_length: int, vectors: bool = False
                        ) -> tuple[list[list[list[float]]], list[list[float]] | None, int]:
    """Top-k ``[token id, log-probability]`` of the next token after each (instruction, text) prompt, with
    ``vectors`` each prompt's ``fst_gen`` embedding too, and how many prompts had their input cut to fit
    ``max_length``. Batches gather prompts of similar length; each is one forward pass of the family's readouts
    (what ``model.readouts(..., values=["fst_gen"], layers=[-1], next_token_top_k=top_k)`` reads)."""
    lengths, _ = encoder.row_lengths(pairs, pattern=pattern)
    order = sorted(range(len(pairs)), key=lambda i: lengths[i])
    out: list[list[list[float]]] = [[] for _ in pairs]
    embedded: list[list[float]] = [[] for _ in pairs]
    sweep = encoder.plan_readouts(values=("fst_gen",) if vectors else (), layers=(-1,) if vectors else (),
                                  next_token_top_k=top_k, max_prompt_tokens=max_length, pattern=pattern)
    cut = 0
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            found = encoder.readout_batch([pairs[i] for i in rows], sweep)
            cut += found.truncated
            for i, v, t in zip(rows, found.top_logprobs.tolist(), found.top_ids.tolist(), strict=True):
                out[i] = [[int(a), round(float(b), 5)] for a, b in zip(t, v, strict=True)]
            if vectors:
                for i, vector in zip(rows, found.readouts[("fst_gen", -1)].tolist(), strict=True):
                    embedded[i] = [float(f"{x:.5g}") for x in vector]
    return out, embedded if vectors else None, cut


def _done(path: Path, rows: list[dict[str, Any]]) -> int:
    """Complete records already in ``path`` (each checked against its bank row); a half-written last line (an
    interrupted write) is cut off."""
    if not path.exists():
        return 0
    good, done = 0, 0
    with open(path, "rb") as f:
        for line in f:
            try:
                record = json.loads(line) if line.endswith(b"\n") else None
            except ValueError:
                record = None
            if record is None:
                break
            if done >= len(rows) or (record.get("text"), record.get("question")) != \
                    (rows[done]["text"], rows[done]["question"]):
                raise InputError(f"{path} line {done + 1} is not the question bank's row {done}: it was written "
                                 "for another bank; give another output file or delete it")
            good += len(line)
            done += 1
    if good < path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(good)
    return done


def teacher_pass(teacher: Any, rows: list[dict[str, Any]], path: str | os.PathLike[str],
                 settings: TeacherSettings | None = None, *, progress: bool | None = None,
                 device: str | None = None) -> Path:
    """Write the teacher's top-k next-token distribution for every bank row (``{"text", "question", ...}``) to
    ``path``; a rerun (after an interruption) computes only the rows still missing, and loads nothing when none
    is. ``teacher`` is a name (loaded on ``device``) or a loaded causal answer model."""
    from tqdm.auto import tqdm

    from ..loading import load

    settings = settings or TeacherSettings()
    for i, row in enumerate(rows):
        for field in ("text", "question"):
            if not isinstance(row.get(field), str) or not row[field].strip():
                raise InputError(f"question bank row {i}: {field!r} must be a non-empty string; got "
                                 f"{row.get(field)!r:.60}")
    path = Path(path)
    done = _done(path, rows)
    if done == len(rows) and isinstance(teacher, (str, os.PathLike)) and _same_pass(path, str(teacher), settings):
        return path  # a rerun of a finished pass: nothing to compute, so the teacher is not loaded
    # float32 on every machine, so that a pass resumed elsewhere continues the same distribution
    model = load(teacher, device=device, quantize="none") if isinstance(teacher, (str, os.PathLike)) else teacher
    encoder = model.encoder
    if encoder.family != "causal" or not getattr(encoder, "has_lm_head", False):
        raise InputError(f"the teacher must be a causal language model with an LM head; {model.name!r} loads as "
                         f"the {encoder.family} family")
    meta = {**_pass_meta(model.name, settings), "vocab": vocab_fingerprint(encoder.tokenizer)}
    if meta_path(path).exists():
        old = json.loads(meta_path(path).read_text(encoding="utf-8"))
        if old != meta:
            diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
            raise InputError(f"{path} was written by another teacher pass (differs in {', '.join(diff)}); give "
                             "another output file or delete it")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta_path(path).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    cut = 0
    with open(path, "a", encoding="utf-8") as f, tqdm(total=len(rows), initial=done, desc="teacher", unit="pair",
                                                      disable=progress is False, dynamic_ncols=True) as bar:
        for start in range(done, len(rows), CHUNK):
            chunk = rows[start:start + CHUNK]
            pairs = [(r["question"], r["text"]) for r in chunk]
            tops, vectors, n = answer_distribution(encoder, pairs, settings.pattern, settings.top_k,
                                                   settings.batch_size, settings.max_length, settings.vectors)
            cut += n
            answers = _answers(model, chunk, settings) if settings.answer_tokens else None
            for j, (row, top) in enumerate(zip(chunk, tops, strict=True)):
                record = {**row, "top_k": top}
                if answers is not None:
                    record["answer"] = answers[j].strip()
                if vectors is not None:
                    record["vector"] = vectors[j]
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
            bar.update(len(chunk))
    if cut:
        warnings.warn(f"{cut} prompts were longer than max_length={settings.max_length}: the start of their input "
                      "was cut", UserWarning, stacklevel=2)
    return path


def _same_pass(path: Path, teacher: str, settings: TeacherSettings) -> bool:
    """Whether ``path`` was written by the teacher of that name with these settings (its meta file)."""
    if not meta_path(path).exists():
        return False
    old = json.loads(meta_path(path).read_text(encoding="utf-8"))
    return all(old.get(k) == v for k, v in _pass_meta(teacher, settings).items())


def _pass_meta(teacher: str, settings: TeacherSettings) -> dict[str, Any]:
    """The meta file's record of a pass, less the vocabulary (which needs the loaded teacher): the batch size
    changes no row, so it is not recorded; ``vectors`` only when on (the files written before it stay valid)."""
    meta = {"format": FORMAT_VERSION, "teacher": teacher, **asdict(settings)}
    meta.pop("batch_size")
    if not meta["vectors"]:
        meta.pop("vectors")
    return meta


def _answers(model: Any, chunk: list[dict[str, Any]], settings: TeacherSettings) -> list[str]:
    """The teacher's greedy answers (up to ``answer_tokens`` tokens) in the same prompt."""
    _, answers = model.encode([r["text"] for r in chunk], instruction=[r["question"] for r in chunk],
                              return_generations=True, output_value="fst_gen", pattern=settings.pattern,
                              max_new_tokens=settings.answer_tokens, batch_size=settings.batch_size,
                              show_progress_bar=False)
    return list(answers)


def read_teacher(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The records of a teacher file and its meta, each record checked (row and field named on a problem)."""
    path = Path(path)
    if not meta_path(path).is_file():
        raise InputError(f"{meta_path(path)} is missing: a teacher file needs its meta (teacher, pattern, top_k, "
                         "vocab) beside it")
    meta = json.loads(meta_path(path).read_text(encoding="utf-8"))
    for key in ("pattern", "vocab", "top_k"):
        if key not in meta:
            raise InputError(f"{meta_path(path)}: no {key!r}")
    records, width = [], 0
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            try:
                record = json.loads(line)
            except ValueError:
                raise InputError(f"{path} line {i + 1}: not JSON") from None
            top = record.get("top_k")
            if not (isinstance(top, list) and top and all(isinstance(t, list) and len(t) == 2 for t in top)):
                raise InputError(f"{path} line {i + 1}: 'top_k' must be a non-empty list of [token id, "
                                 f"log-probability]; got {top!r:.60}")
            for field in ("text", "question"):
                if not isinstance(record.get(field), str) or not record[field].strip():
                    raise InputError(f"{path} line {i + 1}: {field!r} must be a non-empty string")
            vector = record.get("vector")
            if vector is not None:
                width = width or (len(vector) if isinstance(vector, list) else 0)
                if not (isinstance(vector, list) and vector and len(vector) == width and all(
                        isinstance(x, (int, float)) and math.isfinite(x) for x in vector)):
                    raise InputError(f"{path} line {i + 1}: 'vector' must be a non-empty list of finite numbers, as "
                                     "long as the first record's")
            records.append(record)
    if not records:
        raise InputError(f"{path} has no records")
    return records, meta
