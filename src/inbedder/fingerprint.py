"""Identity of a model's weights and settings, for caches: the same name with other weights is another model.

Hashing every byte of a multi-GB checkpoint would take longer than many embedding runs, so the fingerprint
hashes each tensor's name, shape, dtype and an evenly strided sample of up to 4,096 of its values. Training
or swapping weights changes the sample; renaming a directory does not change the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

SAMPLE = 4096


def weights_fingerprint(module: nn.Module) -> str:
    """A hex digest of the module's parameters and buffers (name, shape, dtype, strided sample of values)."""
    import torch  # here, so that settings_digest works without torch

    digest = hashlib.sha256()
    tensors = list(module.state_dict().items())
    for name, tensor in tensors:
        if not isinstance(tensor, torch.Tensor):
            continue
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // SAMPLE)
        sample = flat[::step][:SAMPLE].to("cpu", torch.float32).contiguous()
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(sample.numpy().tobytes())
    return digest.hexdigest()


def settings_digest(*parts: Any) -> str:
    """A hex digest of JSON-serialisable parts (settings, options, inputs)."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
