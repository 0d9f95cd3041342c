"""Instruction robustness: run any task under lists of correct, implicit and incorrect instructions.

A robust, instruction-following model scores alike under paraphrases of the right instruction (small
spread within ``correct`` and ``implicit``) and worse under an instruction that asks about something else
(``incorrect``). Each instruction replaces the task's own instruction (the query's, for retrieval).

>>> spread([0.5, 0.7])
{'mean': 0.6, 'std': 0.1, 'range': 0.2}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError, did_you_mean
from .common import EvalSettings, Task, TextEncoder


class Kind(str, Enum):
    """The kinds of instruction in a robustness test."""

    CORRECT = "correct"
    IMPLICIT = "implicit"
    INCORRECT = "incorrect"


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, population standard deviation and range (max − min) of some scores."""
    array = np.asarray(values, dtype=np.float64)
    return {k: round(float(v), 12) for k, v in
            {"mean": array.mean(), "std": array.std(), "range": array.max() - array.min()}.items()}


@dataclass(frozen=True)
class RobustnessResult:
    """The task's primary ``metric`` under each instruction, grouped by kind."""

    task: str
    metric: str
    scores: dict[str, list[tuple[str, float]]]  # kind -> [(instruction, score), ...]
    all_metrics: dict[str, list[dict[str, float]]]  # kind -> every metric of each run

    def metrics(self) -> dict[str, float]:
        """``<kind>.mean``, ``<kind>.std``, ``<kind>.range`` per kind, and ``gap`` = correct − incorrect mean."""
        out: dict[str, float] = {}
        for kind, rows in self.scores.items():
            for name, value in spread([s for _, s in rows]).items():
                out[f"{kind}.{name}"] = value
        if Kind.CORRECT.value in self.scores and Kind.INCORRECT.value in self.scores:
            out["gap"] = out["correct.mean"] - out["incorrect.mean"]
        return out

    def per_instruction(self) -> list[dict[str, Any]]:
        return [{"kind": kind, "instruction": ins, self.metric: score}
                for kind, rows in self.scores.items() for ins, score in rows]


def parse_instruction_lists(lists: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Check the kinds and drop empty lists; at least one instruction must remain."""
    out: dict[str, list[str]] = {}
    valid = [k.value for k in Kind]
    for kind, instructions in lists.items():
        if kind not in valid:
            raise InputError(f"instruction kind {kind!r} is not valid; use {valid}.{did_you_mean(kind, valid)}")
        if isinstance(instructions, str):
            raise InputError(f"the {kind} instructions must be a list of strings, not one string")
        if instructions:
            out[kind] = [str(i) for i in instructions]
    if not out:
        raise InputError(f"robustness needs at least one instruction in {valid}")
    return out


def read_instruction_lists(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """A JSON file ``{"correct": [...], "implicit": [...], "incorrect": [...]}``."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise InputError(f"{os.fspath(path)}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) and all(isinstance(i, str) for i in v)
                                             for v in data.values()):
        raise InputError(f"{os.fspath(path)}: expected {{\"correct\": [str, ...], \"implicit\": [...], "
                         f"\"incorrect\": [...]}}")
    return parse_instruction_lists(data)


def robustness(task: Task, model: TextEncoder, instructions: Mapping[str, Sequence[str]],
               settings: EvalSettings | None = None) -> RobustnessResult:
    """Evaluate ``task`` once per instruction; report its primary metric per instruction and per kind."""
    lists = parse_instruction_lists(instructions)
    scores: dict[str, list[tuple[str, float]]] = {}
    every: dict[str, list[dict[str, float]]] = {}
    total = sum(map(len, lists.values()))
    with tqdm(total=total, desc="Instructions", unit="instruction", disable=total < 2) as bar:
        for kind, items in lists.items():
            for instruction in items:
                result = task.evaluate(model, instruction=instruction, settings=settings)
                scores.setdefault(kind, []).append((instruction, result[task.primary]))
                every.setdefault(kind, []).append(result)
                bar.update()
    return RobustnessResult(task.name, task.primary, scores, every)
