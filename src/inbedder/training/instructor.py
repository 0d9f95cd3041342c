"""Contrastive training of INSTRUCTOR-family encoders on MEDI records (query, positive, hard negative, task id).

As in INSTRUCTOR: every batch comes from one task; each query is scored (cosine / temperature) against the
positives and negatives of the whole batch, and cross-entropy picks its own positive; by default the positives
are also scored against the queries (both directions). The vectors come from the family's own forward pass
(:class:`~inbedder.encoders.instructor.InstructorEncoder`), so instruction tokens are left out of pooling exactly
as at inference. The model is saved in the sentence-transformers layout (Transformer, Pooling, Dense, Normalize).

>>> train_instructor("minilm", "medi.train.jsonl", "out/")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError
from .loop import BatchPlan, LoopResult, LoopSettings, fingerprint_rows, run_loop
from .records import read_medi

_POOLING_KEYS = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "max": "pooling_mode_max_tokens",
                 "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
                 "weightedmean": "pooling_mode_weightedmean_tokens", "lasttoken": "pooling_mode_lasttoken"}


@dataclass(frozen=True)
class ContrastiveSettings:
    temperature: float = 0.1
    symmetric: bool = True
    max_length: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) \
                or not 0 < self.temperature <= 10:
            raise InputError(f"temperature must be a number in (0, 10]; got {self.temperature!r}")


@dataclass
class InstructorResult:
    encoder: Any
    output: Path | None
    loop: LoopResult
    dev_loss: dict[str, float]


def contrastive_loss(encoder: Any, records: list[dict[str, Any]], settings: ContrastiveSettings) -> torch.Tensor:
    """In-batch + hard-negative InfoNCE over one batch of MEDI records."""
    pairs = [tuple(r[f]) for f in ("query", "pos", "neg") for r in records]
    features, context, _ = encoder.tokenize(pairs)
    device = next(encoder.parameters()).device
    vectors, _ = encoder(features["input_ids"].to(device), features["attention_mask"].to(device), context)
    q, p, n = F.normalize(vectors.float(), dim=-1).split(len(records))
    target = torch.arange(len(records), device=device)
    loss = F.cross_entropy(q @ torch.cat([p, n]).T / settings.temperature, target)
    if settings.symmetric:
        loss = loss + F.cross_entropy(p @ q.T / settings.temperature, target)
    return loss


def train_instructor(model: str | os.PathLike[str], data: str | os.PathLike[str] | list[dict[str, Any]],
                     output: str | os.PathLike[str] | None, *,
                     dev: str | os.PathLike[str] | list[dict[str, Any]] | None = None,
                     settings: ContrastiveSettings | None = None, loop: LoopSettings | None = None,
                     checkpoint: str | os.PathLike[str] | None = None, device: str | None = None,
                     evaluate: Callable[[Any], float] | None = None) -> InstructorResult:
    """Train an INSTRUCTOR-family model (alias or directory) on MEDI records; save it to ``output``.

    ``evaluate(model)`` (higher is better; e.g. an awareness task's ``scorer()``) scores the model being trained
    every ``loop.eval_every`` steps and after the last; the saved model is the best scored."""
    from ..loading import load, quiet_transformers

    settings, loop = settings or ContrastiveSettings(), loop or LoopSettings()
    records = data if isinstance(data, list) else read_medi(data)
    dev_records = dev if isinstance(dev, list) or dev is None else read_medi(dev)
    options: dict[str, Any] = {"max_length": settings.max_length} if settings.max_length else {}
    with quiet_transformers():
        embedder = load(model, family="instructor", device=device, **options)
    encoder: Any = embedder.encoder
    plan = BatchPlan.grouped([record["task_id"] for record in records], loop.batch_size, loop.seed)
    losses: dict[str, float] = {}
    if dev_records:
        losses["before"] = _dev_loss(encoder, dev_records, settings, loop.batch_size)
    fingerprint = {"model": str(model), "data": fingerprint_rows(records),
                   "settings": {"temperature": settings.temperature, "symmetric": settings.symmetric,
                                "max_length": encoder.max_length}}
    ckpt = Path(checkpoint) if checkpoint is not None else (Path(output) / "checkpoint" if output else None)
    result = run_loop(encoder, lambda rows: contrastive_loss(encoder, [records[i] for i in rows], settings),
                      plan, loop, ckpt, fingerprint,
                      None if evaluate is None else lambda: evaluate(embedder))
    if dev_records and result.finished:
        losses["after"] = _dev_loss(encoder, dev_records, settings, loop.batch_size)
    saved = None
    if output is not None and result.finished:
        saved = save_sentence_transformers(encoder, Path(output))
        (saved / "inbedder_training.json").write_text(json.dumps({
            "base_model": str(model), "records": len(records), "tasks": len(plan.groups), "loop": loop.identity(),
            "temperature": settings.temperature, "symmetric": settings.symmetric, "dev_loss": losses,
            "train_loss_first": result.losses[:1], "train_loss_last": result.losses[-1:], "evals": result.evals,
            "best_step": result.best_step}, indent=2), encoding="utf-8")
    return InstructorResult(encoder, saved, result, losses)


def _dev_loss(encoder: Any, records: list[dict[str, Any]], settings: ContrastiveSettings, batch_size: int) -> float:
    """Mean loss over same-task batches of the dev records."""
    by_task: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_task[r["task_id"]].append(r)
    total, count = 0.0, 0
    encoder.eval()
    with torch.no_grad():
        for rows in by_task.values():
            for i in range(0, len(rows), batch_size):
                batch = rows[i:i + batch_size]
                total += float(contrastive_loss(encoder, batch, settings)) * len(batch)
                count += len(batch)
    return total / max(count, 1)


def save_sentence_transformers(encoder: Any, directory: Path) -> Path:
    """The encoder as a sentence-transformers directory: the transformer and tokenizer at the top, then
    ``1_Pooling``, ``2_Dense``..., ``N_Normalize`` and ``modules.json`` (the layout the family loads)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    encoder.transformer.save_pretrained(directory, safe_serialization=True)
    encoder.tokenizer.save_pretrained(directory)
    hidden = int(getattr(encoder.transformer.config, "hidden_size", None) or encoder.transformer.config.d_model)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]

    def add(kind: str, folder: str) -> Path:
        idx = len(modules)
        modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_{folder}",
                        "type": f"sentence_transformers.models.{kind}"})
        (directory / f"{idx}_{folder}").mkdir(exist_ok=True)
        return directory / f"{idx}_{folder}"

    pooling = {"word_embedding_dimension": hidden,
               **{key: mode in encoder.pooling for mode, key in _POOLING_KEYS.items()}}
    (add("Pooling", "Pooling") / "config.json").write_text(json.dumps(pooling, indent=2), encoding="utf-8")
    for layer in encoder.dense:
        where = add("Dense", "Dense")
        activation = type(layer.activation)
        (where / "config.json").write_text(json.dumps({
            "in_features": layer.linear.in_features, "out_features": layer.linear.out_features,
            "bias": layer.linear.bias is not None,
            "activation_function": f"{activation.__module__}.{activation.__name__}"}, indent=2), encoding="utf-8")
        save_file({k: v.detach().contiguous() for k, v in layer.state_dict().items()}, str(where / "model.safetensors"))
    if encoder.normalize:
        add("Normalize", "Normalize")
    (directory / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    (directory / "sentence_bert_config.json").write_text(json.dumps({
        "max_seq_length": encoder.max_length, "do_lower_case": encoder.do_lower_case}, indent=2), encoding="utf-8")
    return directory
