"""Every readout of one set of prompts at once: each output value at each layer, the next-token top-k, the answers.

:meth:`CausalEncoder.plan_readouts` checks what a call reads once (:class:`Sweep`); per batch,
:meth:`CausalEncoder.readout_batch` reads the values that need no answer (and the top-k) from one forward pass and
the values read over the answer (and the answers) from one ``generate()``, each exactly as
``encode(output_value=value, layer=layer)`` reads it; :func:`collect` puts the batches' rows back in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...errors import InputError
from ..base import BatchResult
from .pooling import pool
from .settings import LAYER_NAMED, CallSettings, OutputValue, layer_index, parse_output_value

Key = tuple[str, int]  # (output value, layer as asked)


@dataclass(frozen=True)
class Sweep:
    """What one readouts call reads: ``(value, layer as asked, layer index)`` per readout, layer-major; the
    next-token top-k (0: none); whether the answers are returned."""

    call: CallSettings
    readouts: tuple[tuple[OutputValue, int, int], ...]
    top_k: int = 0
    answers: bool = False

    def layers(self, generating: bool) -> tuple[int, ...]:
        """The layer indices the values read before (``generating=False``) or over the answer read, each once."""
        return tuple(dict.fromkeys(i for v, _, i in self.readouts if v.generates == generating))

    @property
    def generates(self) -> bool:
        """Whether a batch runs ``generate()``: a value read over the answer, or the answers themselves."""
        return self.answers or any(v.generates for v, _, _ in self.readouts)


def plan(call: CallSettings, num_layers: int, values: Sequence[str | OutputValue] | None,
         layers: Sequence[int] | None, top_k: int, answers: bool) -> Sweep:
    """The checked :class:`Sweep`: every value (all five when None) at every layer (0 .. ``num_layers`` when
    None)."""
    chosen = list(OutputValue) if values is None else [_value(v) for v in values]
    asked = range(num_layers + 1) if layers is None else layers
    if isinstance(asked, (str, int)) or isinstance(values, str):
        raise InputError(f"values and layers must be lists (values={values!r}, layers={layers!r})")
    for layer in asked:
        if not isinstance(layer, int) or isinstance(layer, bool):
            raise InputError(f"layers must be ints (negative counts from the last layer); got {layer!r}")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        raise InputError(f"next_token_top_k={top_k!r} is not valid; give an int >= 0 (0: no top-k)")
    readouts = tuple(dict.fromkeys((v, layer, layer_index(layer, num_layers)) for layer in asked for v in chosen))
    return Sweep(call, readouts, top_k, bool(answers))


def _value(value: str | OutputValue) -> OutputValue:
    if isinstance(value, str) and LAYER_NAMED.match(value):
        raise InputError(f"values={value!r} names a layer; give the value alone and the layers as layers=[...]")
    return parse_output_value(value)[0]


@dataclass
class ReadoutBatch(BatchResult):
    """One batch's readouts: ``(value, layer as asked)`` → ``(b, h)``; the top-k token ids and log-probabilities
    ``(b, k)``; the seconds its ``generate()`` took."""

    readouts: dict[Key, torch.Tensor] = field(default_factory=dict)
    top_ids: torch.Tensor | None = None
    top_logprobs: torch.Tensor | None = None
    generate_seconds: float = 0.0


def pool_readouts(sweep: Sweep, generating: bool, prompt: dict[int, torch.Tensor], mask: torch.Tensor,
                  steps: dict[int, torch.Tensor] | None = None, keep: torch.Tensor | None = None
                  ) -> dict[Key, torch.Tensor]:
    """The sweep's values read before (``generating=False``) or over the answer, from the states per layer index,
    pooled as :meth:`CausalEncoder.embed_batch` pools them."""
    out: dict[Key, torch.Tensor] = {}
    for value, asked, index in sweep.readouts:
        if value.generates != generating:
            continue
        states = prompt[index]
        if steps is None or keep is None:
            step = states[:, :0]
            kept = torch.zeros((states.shape[0], 0), dtype=torch.bool, device=states.device)
        else:
            step, kept = steps[index], keep.to(steps[index].device)
        out[(value.value, asked)] = pool(value, states.float(), mask, step.float(), kept)
    return out


@dataclass(frozen=True)
class Readouts:
    """What ``model.readouts`` returns, rows in input order (a single text given as a str: one row's values)."""

    vectors: dict[Key, np.ndarray]  # (value, layer as asked) -> (n, h) float32, layer-major
    answers: list[str] | str | None = None  # the answers, when asked for
    top_k_ids: np.ndarray | None = None  # (n, k) int64, likeliest first
    top_k_logprobs: np.ndarray | None = None  # (n, k) float32
    generate_seconds: float = 0.0  # the time spent in generate() (what the answers cost), summed over batches
    truncated: int = 0  # prompts whose input was cut to fit


def collect(done: Sequence[tuple[list[int], BatchResult]], index: list[int], single: bool) -> Readouts:
    """The batches' rows (``done``: each batch's unique-row numbers and its :class:`ReadoutBatch`) for the input
    rows (``index``: each one's unique-row number)."""
    batches = [result for _, result in done if isinstance(result, ReadoutBatch)]
    if len(batches) != len(done) or not batches:
        raise InputError("readouts needs at least one text")
    where: dict[int, tuple[int, int]] = {i: (b, j) for b, (rows, _) in enumerate(done) for j, i in enumerate(rows)}
    pick = [where[i] for i in index]

    def rows(get: Any) -> torch.Tensor:
        return torch.stack([get(batches[b])[j] for b, j in pick])

    vectors = {key: rows(lambda r, k=key: r.readouts[k]).float().cpu().numpy() for key in batches[0].readouts}
    answers = [batches[b].answers[j] for b, j in pick] if batches[0].answers is not None else None  # type: ignore[index]
    ids = rows(lambda r: r.top_ids).cpu().numpy() if batches[0].top_ids is not None else None
    logp = rows(lambda r: r.top_logprobs).float().cpu().numpy() if batches[0].top_logprobs is not None else None
    seconds = sum(r.generate_seconds for r in batches)
    truncated = sum(r.truncated for r in batches)
    if single:
        return Readouts({k: v[0] for k, v in vectors.items()}, answers[0] if answers is not None else None,
                        None if ids is None else ids[0], None if logp is None else logp[0], seconds, truncated)
    return Readouts(vectors, answers, ids, logp, seconds, truncated)
