"""The math over a causal LM's hidden states: left padding, position ids, the shared prefix, pooling a readout.

Used by the passes (:mod:`.passes`), the encoder's batch, its readouts and its several-questions path
(:mod:`.questions`)."""

from __future__ import annotations

import torch

from ...errors import InputError
from .settings import OutputValue


def pool(value: OutputValue, prompt: torch.Tensor, mask: torch.Tensor, steps: torch.Tensor, keep: torch.Tensor
         ) -> torch.Tensor:
    """One vector per row from left-padded prompt states ``(b, t, h)``, ``mask`` ``(b, t)``, the states over answer
    tokens ``(b, s, h)`` and which of those to ``keep`` ``(b, s)`` (when a row keeps none, the first is used).

    Row by row, in the reference's order of operations, so that means over large activations round alike."""
    if value is OutputValue.FST_GEN:
        return prompt[:, -1]
    rows = []
    for i in range(prompt.shape[0]):
        real = prompt[i, mask[i].bool()]
        if value is OutputValue.AVG_PPT:
            if real.shape[0] < 2:
                raise InputError("avg_ppt needs prompts of 2 tokens or more; one prompt has 1")
            rows.append(real[:-1].mean(0))
            continue
        kept = keep[i] if keep[i].any() or not steps.shape[1] else torch.arange(steps.shape[1]) == 0
        answer = steps[i, kept.to(steps.device)]
        if value is OutputValue.AVG_GEN:
            rows.append(torch.cat([real[-1:], answer]).mean(0))
        elif value is OutputValue.AVG_ALL:
            rows.append(torch.cat([real, answer]).mean(0))
        else:  # LAST_GEN; with a one-token answer no state over an answer token exists, so the prompt's last
            rows.append(answer[-1] if answer.shape[0] else real[-1])
    return torch.stack(rows)


MIN_SHARED_PREFIX = 2  # fewer shared tokens are not worth a second forward call


def shared_prefix(ids: torch.Tensor, mask: torch.Tensor) -> int:
    """How many real tokens begin every left-padded row, at most the shortest row's length minus one."""
    shortest = int(mask.sum(1).min())
    if shortest < 2:
        return 0
    index = first_columns(mask)[:, None] + torch.arange(shortest - 1, device=ids.device)[None]
    heads = torch.gather(ids, 1, index)  # each row's first `shortest - 1` real tokens
    same = (heads == heads[:1]).all(0)
    return int(same.long().cumprod(0).sum())


def left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id rows as left-padded ``(ids, mask)``."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids, mask


def first_columns(mask: torch.Tensor) -> torch.Tensor:
    """Each left-padded row's first real column."""
    return mask.shape[1] - mask.sum(1)


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
