"""Run MTEB tasks on an inbedder model, with an instruction per task (and per query / document side).

:class:`MTEBEncoder` implements mteb's encoder protocol (``encode(DataLoader, *, task_metadata, hf_split,
hf_subset, prompt_type)``), so ``mteb.evaluate`` takes it like any other model. Which instruction a text gets:

1. ``instructions[task name]``, else ``instructions[task type]`` (``"STS"``, ``"Retrieval"``, ...), else
   ``instructions["query"]`` / ``instructions["document"]`` for the two sides of retrieval and reranking.
   A value is one string, or ``{"query": ..., "document": ...}`` for the two sides; a side left out gets
   no instruction.
2. Otherwise ``default``: ``"none"`` (no instruction), ``"instructor"`` (an INSTRUCTOR-style
   "Represent the ... for ...:" by task type and side, see :func:`instructor_instruction`) or ``"task"``
   (the prompt in the mteb task's metadata, as mteb's own instruction models use it).

>>> import mteb                                                                          # doctest: +SKIP
>>> from inbedder.evaluation.mteb import MTEBEncoder                                     # doctest: +SKIP
>>> encoder = MTEBEncoder("minilm", {"STSBenchmark": "Represent the sentence for semantic similarity:",
...                         "Retrieval": {"query": "Represent the question for retrieval:"}})   # doctest: +SKIP
>>> mteb.evaluate(encoder, mteb.get_task("STSBenchmark"), cache=mteb.ResultCache("results"))     # doctest: +SKIP

Needs ``pip install "inbedder[mteb]"``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, InputTypeError, NonFiniteError, require
from ..fingerprint import settings_digest, weights_fingerprint
from ..prompts import instruction_template

require("mteb", "mteb")

from mteb.models.abs_encoder import AbsEncoder  # noqa: E402
from mteb.models.model_meta import ModelMeta, ScoringFunction  # noqa: E402
from mteb.types import PromptType  # noqa: E402

if TYPE_CHECKING:
    from mteb.abstasks.task_metadata import TaskMetadata
    from mteb.types import BatchedInput
    from torch.utils.data import DataLoader

logger = logging.getLogger(__name__)

DEFAULTS = ("none", "instructor", "task")
SIDES = ("query", "document")
Instructions = Mapping[str, "str | Mapping[str, str]"]

# INSTRUCTOR-style instructions by task type: (text type, objective) for one side, or per side.
_SEARCH = {"query": ("question", "retrieving supporting documents"), "document": ("document", "retrieval")}
_INSTRUCTOR: dict[str, Any] = {
    "Classification": ("text", "classification"),
    "MultilabelClassification": ("text", "classification"),
    "Regression": ("text", "regression"),
    "Clustering": ("text", "clustering"),
    "STS": ("sentence", "semantic similarity"),
    "Summarization": ("summary", "semantic similarity"),
    "PairClassification": ("sentence", "finding duplicate sentences"),
    "BitextMining": ("sentence", "finding its translation"),
    "Retrieval": _SEARCH, "Reranking": _SEARCH, "InstructionRetrieval": _SEARCH, "InstructionReranking": _SEARCH,
}


def instructor_instruction(task_type: str, side: str | None = None) -> str:
    """The INSTRUCTOR-style instruction used by ``default="instructor"``.

    >>> instructor_instruction("STS")
    'Represent the sentence for semantic similarity:'
    >>> instructor_instruction("Retrieval", "query")
    'Represent the question for retrieving supporting documents:'
    >>> instructor_instruction("Retrieval", "document"), instructor_instruction("Compositionality")
    ('Represent the document for retrieval:', 'Represent the text:')
    """
    entry = _INSTRUCTOR.get(task_type)
    if isinstance(entry, dict):
        entry = entry.get(side or "query")
    if entry is None:
        return instruction_template("text")
    text_type, objective = entry
    return instruction_template(text_type, objective=objective)


def _check_instructions(instructions: Instructions | None) -> dict[str, str | dict[str, str]]:
    if instructions is None:
        return {}
    if not isinstance(instructions, Mapping):
        raise InputTypeError(f"instructions must be a mapping of task name → instruction; got "
                             f"{type(instructions).__name__}")
    checked: dict[str, str | dict[str, str]] = {}
    for key, value in instructions.items():
        if not isinstance(key, str) or not key:
            raise InputTypeError(f"instructions: every key must be a task name, task type, 'query' or 'document' "
                                 f"(a non-empty str); got {key!r}")
        if isinstance(value, str):
            checked[key] = value
            continue
        if not isinstance(value, Mapping):
            raise InputTypeError(f"instructions[{key!r}] must be a str or a mapping with 'query' and/or 'document'; "
                                 f"got {type(value).__name__}")
        if key in SIDES:
            raise InputTypeError(f"instructions[{key!r}] applies to one side already; give one str")
        unknown = [side for side in value if side not in SIDES]
        if unknown:
            raise InputError(f"instructions[{key!r}]: unknown side(s) {unknown}; use 'query' and/or 'document'")
        for side, text in value.items():
            if not isinstance(text, str):
                raise InputTypeError(f"instructions[{key!r}][{side!r}] must be a str; got {type(text).__name__}")
        checked[key] = dict(value)
    return checked


class MTEBEncoder(AbsEncoder):
    """An inbedder model (or a name for :func:`inbedder.load`) behind mteb's encoder protocol.

    ``model`` may also be anything with ``encode(texts, instruction=..., batch_size=..., show_progress_bar=...)``.
    ``name`` is the model name in mteb's results (``organization/model``); the default is ``inbedder/<model
    name>``. The revision is a digest of the weights and family settings, and the instruction choices are
    ``experiment_kwargs``, so results under other instructions are cached apart.
    """

    def __init__(self, model: Any, instructions: Instructions | None = None, *, default: str = "none",
                 name: str | None = None, **load_options: Any) -> None:
        if default not in DEFAULTS:
            raise InputError(f"default must be one of {list(DEFAULTS)}; got {default!r}")
        self.instructions = _check_instructions(instructions)
        self.default = default
        if isinstance(model, (str, Path)):
            from ..loading import load

            model = load(model, **load_options)
        elif load_options:
            raise InputError(f"options {sorted(load_options)} are for loading a model by name; the model is loaded "
                             f"already")
        if not callable(getattr(model, "encode", None)):
            raise InputTypeError(f"model must be an inbedder model, a model name or have encode(); got "
                                 f"{type(model).__name__}")
        self.model = model
        self.mteb_model_meta = self._meta(name)

    def _meta(self, name: str | None) -> ModelMeta:
        import torch

        model_name = str(getattr(self.model, "name", "") or type(self.model).__name__)
        if name is None:
            name = f"inbedder/{Path(model_name).name or 'model'}"
        elif "/" not in name:
            name = f"inbedder/{name}"
        revision = None
        parameters = None
        if isinstance(self.model, torch.nn.Module):
            encoder: Any = getattr(self.model, "encoder", self.model)
            settings = encoder.settings() if callable(getattr(encoder, "settings", None)) else {}
            revision = settings_digest(weights_fingerprint(self.model), settings)[:12]
            parameters = sum(p.numel() for p in self.model.parameters())
        dim = getattr(self.model, "dim", None)
        experiment = {"default_instruction": self.default}
        if self.instructions:
            text = json.dumps(self.instructions, sort_keys=True, ensure_ascii=False)
            experiment["instructions"] = settings_digest(text)[:12]
        return ModelMeta.create_empty({
            "name": name, "revision": revision, "embed_dim": dim if isinstance(dim, int) else None,
            "n_parameters": parameters, "framework": ["PyTorch"], "similarity_fn_name": ScoringFunction.COSINE,
            "use_instructions": True, "modalities": ["text"], "experiment_kwargs": experiment,
        })

    def instruction(self, task_metadata: TaskMetadata, prompt_type: PromptType | str | None = None) -> str | None:
        """The instruction for this task and side (``None``: no instruction); see the module docstring."""
        side: str | None = None if prompt_type is None else str(getattr(prompt_type, "value", prompt_type))
        for key in (task_metadata.name, task_metadata.type):
            if key in self.instructions:
                value = self.instructions[key]
                if isinstance(value, str):
                    return value
                if side is None:
                    raise InputError(f"instructions[{key!r}] is split into query/document, but task "
                                     f"{task_metadata.name!r} embeds its texts without a side; give one str")
                return value.get(side)
        if side is not None and side in self.instructions:
            return str(self.instructions[side])
        if self.default == "instructor":
            return instructor_instruction(task_metadata.type, side)
        if self.default == "task":
            return self.get_instruction(task_metadata, None if side is None else PromptType(side)) or None
        return None

    def encode(self, inputs: DataLoader[BatchedInput], *, task_metadata: TaskMetadata, hf_split: str,
               hf_subset: str, prompt_type: PromptType | None = None, **kwargs: Any) -> np.ndarray:
        texts: list[str] = []
        for batch in inputs:
            if "text" not in batch:
                raise InputError(f"task {task_metadata.name!r} gives no texts (fields {sorted(batch)}); inbedder "
                                 f"models embed text only")
            texts.extend(batch["text"])
        instruction = self.instruction(task_metadata, prompt_type)
        logger.info("%s %s/%s %s: %d texts, instruction %r", task_metadata.name, hf_subset, hf_split,
                    getattr(prompt_type, "value", "-"), len(texts), instruction)
        if not texts:
            dim = getattr(self.model, "dim", 0)
            return np.zeros((0, dim if isinstance(dim, int) else 0), dtype=np.float32)
        vectors = self.model.encode(texts, instruction=instruction, batch_size=int(kwargs.get("batch_size", 32)),
                                    show_progress_bar=kwargs.get("show_progress_bar"))
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise InputError(f"the model returned an array of shape {vectors.shape} for {len(texts)} texts")
        if not np.isfinite(vectors).all():
            raise NonFiniteError(f"the model returned non-finite vectors for task {task_metadata.name!r}")
        return vectors
