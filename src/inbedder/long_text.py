"""Texts longer than the model's limit: cut them (``truncate``, the default) or embed them in windows (``chunk``).

In chunk mode a row that does not fit is split into windows of the text's tokens, each as long as the row's
room allows (the model's limit less what the instruction, the prompt pattern and the special tokens take),
consecutive windows sharing ``chunk_overlap`` tokens (default: an eighth of the window). Each window is
embedded as a text of its own under the row's instruction, and the row's vector is the mean of its windows'
vectors weighted by their token counts (scaled back to length 1 when the family's vectors have length 1).
A row that fits is embedded as it is, so short texts get exactly the vectors of truncate mode.

>>> windows(10, size=4, overlap=1)
[(0, 4), (3, 7), (6, 10)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
import torch.nn.functional as F

from .choices import parse_choice
from .encoders.base import Encoder, Pair
from .errors import InputError, InputTypeError

OVERLAP_FRACTION = 8  # the default overlap is the window's length divided by this
MAX_REFITS = 4  # times a window is shortened when its re-tokenized text comes out longer than the room


class LongText(str, Enum):
    """What ``encode`` does with a text longer than the model's limit."""

    TRUNCATE = "truncate"
    CHUNK = "chunk"


@dataclass(frozen=True)
class LongTexts:
    """The long-text settings of one call; checked on creation."""

    mode: LongText = LongText.TRUNCATE
    overlap: int | None = None  # tokens shared by consecutive windows; None: an eighth of the window

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", parse_choice(LongText, self.mode, "long_text"))
        if self.overlap is not None and (isinstance(self.overlap, bool) or not isinstance(self.overlap, int)):
            raise InputTypeError(f"chunk_overlap must be an int >= 0 or None; got {self.overlap!r}")
        if self.overlap is not None and self.overlap < 0:
            raise InputError(f"chunk_overlap must be >= 0; got {self.overlap}")

    @property
    def chunk(self) -> bool:
        return self.mode is LongText.CHUNK

    def key(self) -> dict[str, Any]:
        """What the settings add to a cache key: nothing in truncate mode (the keys of earlier runs stay valid)."""
        return {"long_text": self.mode.value, "chunk_overlap": self.overlap} if self.chunk else {}


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], LongTexts]:
    """The family's options and the long-text settings among ``options`` (``long_text``, ``chunk_overlap``)."""
    rest = {k: v for k, v in options.items() if k not in ("long_text", "chunk_overlap")}
    return rest, LongTexts(options.get("long_text", LongText.TRUNCATE), options.get("chunk_overlap"))


def windows(n: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, stop)`` token windows of at most ``size`` over ``n`` tokens, sharing ``overlap`` tokens."""
    step = size - overlap
    out = [(0, min(size, n))]
    while out[-1][1] < n:
        start = out[-1][0] + step
        out.append((start, min(start + size, n)))
    return out


@dataclass
class Chunks:
    """The pieces to embed and how they pool back into rows."""

    pieces: list[Pair] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)  # per piece, its row
    weight: list[int] = field(default_factory=list)  # per piece, the tokens of its text
    split: int = 0  # rows that were split

    def add(self, pair: Pair, row: int, weight: int) -> None:
        self.pieces.append(pair)
        self.owner.append(row)
        self.weight.append(weight)


def split_long(encoder: Encoder, pairs: list[Pair], settings: LongTexts, options: dict[str, Any]) -> Chunks:
    """Split every row of ``pairs`` that does not fit the model into windows (see the module's docstring)."""
    found = encoder.row_lengths(pairs, **options)
    if found is None:
        raise InputError(f"long_text='chunk' is not available in the {encoder.family} family: it cannot count the "
                         "tokens of a row; use long_text='truncate'")
    lengths, limit = found
    chunks = Chunks()
    overhead: dict[str | None, int] = {}
    for row, (pair, n) in enumerate(zip(pairs, lengths, strict=True)):
        if n <= limit:
            chunks.add(pair, row, 1)
            continue
        instruction, text = pair
        if instruction not in overhead:
            overhead[instruction] = encoder.row_lengths([(instruction, "")], **options)[0][0]  # type: ignore[index]
        room = limit - overhead[instruction]
        if room < 1:
            raise InputError(f"row {row}: the instruction and the prompt alone take {overhead[instruction]} tokens, "
                             f"the model's limit is {limit}; no room is left for the text")
        overlap = room // OVERLAP_FRACTION if settings.overlap is None else settings.overlap
        if overlap >= room:
            raise InputError(f"row {row}: chunk_overlap={overlap} must be less than the window of {room} tokens "
                             "(the model's limit less the instruction's and the prompt's tokens)")
        spans = encoder.text_spans(text)
        if spans is None:
            raise InputError(f"long_text='chunk' needs a fast tokenizer (character offsets); the {encoder.family} "
                             "model's tokenizer is not one")
        chunks.split += 1
        for start, stop in _fitted(encoder, instruction, text, spans, windows(len(spans), room, overlap), limit,
                                   options):
            chunks.add((instruction, _cut(text, spans, start, stop)), row, stop - start)
    return chunks


def _fitted(encoder: Encoder, instruction: str | None, text: str, spans: list[tuple[int, int]],
            planned: list[tuple[int, int]], limit: int, options: dict[str, Any]) -> list[tuple[int, int]]:
    """The windows, each shortened until its text, tokenized again in its row, fits ``limit`` (a word cut at a
    window's edge can take more tokens alone than inside the text)."""
    out = list(planned)
    for _ in range(MAX_REFITS):
        pairs = [(instruction, _cut(text, spans, a, b)) for a, b in out]
        lengths = encoder.row_lengths(pairs, **options)[0]  # type: ignore[index]
        over = {i: n - limit for i, n in enumerate(lengths) if n > limit}
        if not over:
            break
        out = [(a, max(a + 1, b - over[i])) if i in over else (a, b) for i, (a, b) in enumerate(out)]
    return out


def _cut(text: str, spans: list[tuple[int, int]], start: int, stop: int) -> str:
    """The characters of tokens ``start .. stop - 1`` of ``text``."""
    inside = [s for s in spans[start:stop] if s[1] > s[0]] or spans[start:stop]
    return text[min(a for a, _ in inside):max(b for _, b in inside)]


def pool(vectors: torch.Tensor, chunks: Chunks, rows: int, unit: bool) -> torch.Tensor:
    """Per row, the token-weighted mean of its pieces' vectors; rows of several pieces scaled to length 1 when
    ``unit`` (the family's vectors have length 1). A row of one piece keeps its vector exactly."""
    owner = torch.tensor(chunks.owner, dtype=torch.long, device=vectors.device)
    weight = torch.tensor(chunks.weight, dtype=vectors.dtype, device=vectors.device)
    total = torch.zeros(rows, dtype=vectors.dtype, device=vectors.device).index_add_(0, owner, weight)
    summed = torch.zeros((rows, vectors.shape[1]), dtype=vectors.dtype, device=vectors.device)
    summed.index_add_(0, owner, vectors * weight[:, None])
    pooled = summed / total[:, None]
    if unit:
        several = torch.bincount(owner, minlength=rows) > 1
        pooled[several] = F.normalize(pooled[several], p=2, dim=1)
    return pooled
