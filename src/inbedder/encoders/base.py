"""The seam between the engine and a model family.

A family is a ``torch.nn.Module`` with an ``embed_batch`` method that does the math of one batch.
It never loops over a corpus, caches, or converts output: the engine does that, once, for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
from torch import nn

from ..errors import InputError, did_you_mean
from ..inputs import Pair


class Output(str, Enum):
    """What ``encode`` returns: sentence vectors, per-token text vectors, or both plus instruction tokens."""

    SENTENCE = "sentence"
    TOKEN = "token"
    ALL = "all"

    @classmethod
    def parse(cls, value: str | Output) -> Output:
        try:
            return cls(value)
        except ValueError:
            valid = [m.value for m in cls]
            raise InputError(
                f"output={value!r} is not valid; choose one of {valid}.{did_you_mean(str(value), valid)}"
            ) from None


@dataclass
class BatchResult:
    """What a family returns for one batch; rows in the order of the pairs it was given."""

    vectors: torch.Tensor  # (b, d) float32
    tokens: list[torch.Tensor] | None = None  # per row (t_i, h): text tokens
    instruction_tokens: list[torch.Tensor] | None = None  # per row (k_i, h)
    answers: list[str] | None = None  # generated answers (answer families)
    truncated: int = 0  # rows cut to the model's max length
    n_tokens: int = 0  # real (non-padding) tokens processed
    extra: dict[str, Any] = field(default_factory=dict)


class Encoder(nn.Module):
    """Base class of the families. Subclasses set ``family`` and implement ``embed_batch``."""

    family: str = ""
    answers: bool = False  # True for families that generate answers (``BatchResult.answers``)
    options: tuple[str, ...] = ()  # keyword options that ``embed_batch`` accepts
    quantization: str | None = None  # "int8" once quantized by ``load(..., quantize=...)`` (inbedder.speed)

    @property
    def dim(self) -> int:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def check_options(self, options: dict[str, Any]) -> None:
        for key in options:
            if key not in self.options:
                allowed = ", ".join(self.options) or "none"
                raise InputError(
                    f"option {key!r} is not used by the {self.family} family (options it takes: {allowed})."
                    f"{did_you_mean(key, self.options)}"
                )

    def prepare(self, options: dict[str, Any]) -> dict[str, Any]:
        """A call's family options as this family's methods take them, read once per ``encode`` call.

        The engine calls it once, after :meth:`check_options` and before any batch, and passes what it returns to
        ``embed_batch`` (with ``return_generations`` added for answer families), ``row_lengths`` and
        ``embed_questions`` in place of the options. The default returns the options as they are; a family that
        checks its options into a frozen object returns that object here (raising any error about them), and its
        methods read the options themselves only when called directly with plain ones.
        """
        return options

    def token_counts(self, pairs: list[Pair]) -> list[int] | None:
        """Tokens each pair takes in a batch (after truncation), for the engine's length sort.

        ``None`` (the default) makes the engine sort by characters instead.
        """
        return None

    def row_lengths(self, pairs: list[Pair], **options: Any) -> tuple[list[int], int] | None:
        """Tokens each pair's row takes *before* truncation, and the most one row may hold (for long texts).

        ``None`` (the default) means the family cannot tell, and ``encode(long_text="chunk")`` is refused."""
        return None

    def text_spans(self, text: str) -> list[tuple[int, int]] | None:
        """Character spans of the tokens of ``text`` alone (no special tokens), as the family's tokenizer cuts it;
        ``None`` without a fast tokenizer (character offsets)."""
        tokenizer = getattr(self, "tokenizer", None)
        if tokenizer is None or not getattr(tokenizer, "is_fast", False):
            return None
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [(int(a), int(b)) for a, b in enc["offset_mapping"]]

    @property
    def normalizes(self) -> bool:
        """Whether the family's vectors have length 1 (a pooled mean of them is scaled back to length 1)."""
        return bool(getattr(self, "normalize", False))

    def embed_batch(self, pairs: list[Pair], output: Output, **options: Any) -> BatchResult:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The settings that change vectors (for fingerprints and result files)."""
        return {"family": self.family}

    def precision(self, weights: nn.Module) -> dict[str, Any]:
        """``dtype`` of ``weights`` and, once quantized, ``quantize``: part of every family's settings."""
        dtype = next((p.dtype for p in weights.parameters() if p.is_floating_point()), torch.float32)
        found = {"dtype": str(dtype).removeprefix("torch.")}
        return {**found, "quantize": self.quantization} if self.quantization else found
