"""LoRA adapters saved by distillation: added into the base model's linear layers at load time (``W += s·B·A``),
so that an adapter folder loads as a plain model of its base's family, with no adapter library at inference.
Finding an adapter's base imports no torch (a cached request is keyed without it).

An adapter folder has ``adapter_model.safetensors`` and ``adapter_config.json`` (peft's layout) and an
``inbedder.json`` whose ``adapter_of`` names the base model (an alias, directory or hub id).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelLoadError
from .registry import DEFAULTS_FILE

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
PREFIX = "base_model.model."

if TYPE_CHECKING:
    from torch import nn


def adapter_base(path: Path) -> str | None:
    """The base model an adapter folder was trained on (None when ``path`` is not one)."""
    file = path / DEFAULTS_FILE
    if not path.is_dir() or not file.is_file() or not (path / ADAPTER_WEIGHTS).is_file():
        return None
    base = json.loads(file.read_text(encoding="utf-8")).get("adapter_of")
    return base if isinstance(base, str) and base else None


def default_quantize(path: Path, options: Mapping[str, Any]) -> Any:
    """A model's default ``quantize``: its own defaults' (``options``: its alias' or its ``inbedder.json``'s), else,
    for an adapter folder, its base model's. Reads no weights."""
    from .registry import resolve

    base = adapter_base(path) if options.get("quantize") is None else None
    return options.get("quantize") if base is None else resolve(base).options.get("quantize")


def merge_adapter(model: nn.Module, path: Path) -> int:
    """Add the adapter in ``path`` into ``model``'s linear layers; returns how many layers changed."""
    import torch
    from safetensors.torch import load_file
    from torch import nn

    config = json.loads((path / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    for flag in ("use_dora", "fan_in_fan_out"):
        if config.get(flag):
            raise ModelLoadError(f"{path / ADAPTER_CONFIG}: {flag}=true adapters are not supported")
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / (r ** 0.5 if config.get("use_rslora") else r)
    state = load_file(str(path / ADAPTER_WEIGHTS))
    modules = dict(model.named_modules())
    changed = 0
    with torch.no_grad():
        for key in sorted(k for k in state if ".lora_A." in k):
            name = key.removeprefix(PREFIX).split(".lora_A.")[0]
            module = modules.get(name)
            if not isinstance(module, nn.Linear):
                raise ModelLoadError(f"{path / ADAPTER_WEIGHTS}: {key} adapts {name!r}, which is not a linear layer "
                                     f"of {type(model).__name__}")
            a, b = state[key].float(), state[key.replace(".lora_A.", ".lora_B.")].float()
            module.weight += (scale * (b @ a)).to(module.weight.device, module.weight.dtype)
            changed += 1
    if not changed:
        raise ModelLoadError(f"{path / ADAPTER_WEIGHTS} holds no LoRA weights")
    return changed
