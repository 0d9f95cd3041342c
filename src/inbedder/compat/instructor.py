"""Drop-in replacements for InstructorEmbedding.INSTRUCTOR and Instructor Lite's InstructorModel.

Code written for them runs after changing only its import line::

    from inbedder.compat import INSTRUCTOR          # was: from InstructorEmbedding import INSTRUCTOR
    model = INSTRUCTOR("hkunlp/instructor-large")
    embeddings = model.encode([["Represent the Science title:", "3D ActionSLAM"]])

``INSTRUCTOR`` is a ``torch.nn.Module``, so ``torch.ao.quantization.quantize_dynamic(model, {nn.Linear})``
works on it as it does on the original.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..engine import Embedder
from ..errors import InputError
from ..loading import load

# InstructorEmbedding 1.0.1 truncates at 512 tokens whatever the checkpoint says.
REFERENCE_MAX_LENGTH = 512


def _instructor_embedder(name: str | os.PathLike[str], device: Any) -> Embedder:
    model = load(name, device=device)
    if model.family != "instructor":
        raise InputError(f"{name!r} is a {model.family} model; INSTRUCTOR needs an encoder checkpoint")
    encoder: Any = model.encoder
    position_limit = getattr(encoder.transformer.config, "max_position_embeddings", None)
    encoder.max_length = min(REFERENCE_MAX_LENGTH, position_limit or REFERENCE_MAX_LENGTH)
    return model


class INSTRUCTOR(Embedder):
    """``InstructorEmbedding.INSTRUCTOR`` with the same ``encode`` signature and return types."""

    def __init__(self, model_name_or_path: str | os.PathLike[str], device: str | None = None, **_: Any):
        base = _instructor_embedder(model_name_or_path, device)
        super().__init__(base.encoder, base.name, base.source)

    def encode(self, sentences: Any, batch_size: int = 32, show_progress_bar: bool | None = None,  # type: ignore[override]
               output_value: str | None = "sentence_embedding", convert_to_numpy: bool = True,
               convert_to_tensor: bool = False, device: str | None = None, normalize_embeddings: bool = False) -> Any:
        """Same arguments and outputs as ``InstructorEmbedding.INSTRUCTOR.encode``."""
        show = bool(show_progress_bar)
        if output_value == "sentence_embedding":
            out = super().encode(sentences, batch_size=batch_size, normalize=normalize_embeddings,
                                 convert_to_tensor=True, device=device, show_progress_bar=show)
            if convert_to_tensor:
                return out
            if convert_to_numpy:
                return out.numpy()
            return list(out) if out.dim() == 2 else out
        if output_value in ("token_embeddings", None):
            vectors, text_tokens, instr_tokens = super().encode(
                sentences, batch_size=batch_size, output="all", convert_to_tensor=True, device=device,
                show_progress_bar=show)
            single = isinstance(sentences, str)
            if single:
                vectors, text_tokens, instr_tokens = [vectors], [text_tokens], [instr_tokens]
            tokens = [torch.cat([a, b]) for a, b in zip(instr_tokens, text_tokens, strict=False)]
            if output_value == "token_embeddings":
                return tokens[0] if single else tokens
            rows = [{"sentence_embedding": v, "token_embeddings": t} for v, t in zip(vectors, tokens, strict=False)]
            return rows[0] if single else rows
        raise InputError(f"output_value={output_value!r} is not valid; use 'sentence_embedding', "
                         "'token_embeddings' or None")


class InstructorModel:
    """Instructor Lite's ``InstructorModel``: ``model(pairs, normalize=True)`` returns
    ``(full_text_embs, token_embs, instr_token_embs)``: a ``(n, d)`` tensor, then per pair the token
    vectors of the text and of the instruction."""

    def __init__(self, model_name: str | os.PathLike[str], device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.model = _instructor_embedder(model_name, self.device)

    def __call__(self, pairs: Any, normalize: bool = True) -> tuple[torch.Tensor, list[torch.Tensor],
                                                                     list[torch.Tensor]]:
        rows = [[p[0], p[1]] if isinstance(p, (list, tuple)) else p for p in pairs]
        full, tokens, instr = self.model.encode(rows, output="all", normalize=normalize, convert_to_tensor=True)
        if normalize:
            tokens = [torch.nn.functional.normalize(t, p=2, dim=-1) for t in tokens]
            instr = [torch.nn.functional.normalize(t, p=2, dim=-1) for t in instr]
        return full, tokens, instr
