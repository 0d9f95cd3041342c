"""Choices as ``str`` Enums, so plain strings work: model families, dtypes, quantization, backends. Imports nothing
heavy."""

from __future__ import annotations

from enum import Enum
from typing import Any

from .errors import InputError, did_you_mean


class Family(str, Enum):
    INSTRUCTOR = "instructor"
    CAUSAL = "causal"
    MASKED = "masked"
    SEQ2SEQ = "seq2seq"
    DECODER = "decoder"


class DType(str, Enum):
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"

    @property
    def torch(self) -> Any:
        """The ``torch.dtype`` (torch is imported here, not when this module is)."""
        import torch

        return getattr(torch, self.value)


class Quantize(str, Enum):
    """Weight quantization applied after loading (CPU): ``int8`` = int8 weights per output channel, int8
    activations per token, int32 accumulation; ``auto`` = int8 where it measured faster than float32 on this CPU
    (measured once, remembered), else none; ``none`` = float32 weights, also where a model's defaults say ``auto``
    (see :mod:`inbedder.speed`)."""

    INT8 = "int8"
    AUTO = "auto"
    NONE = "none"


class Backend(str, Enum):
    """What runs a family's transformer: ``torch``; ``onnx`` = ONNX Runtime on an export kept in the user cache
    (CPU, float32; the instructor and decoder families); ``auto`` = ONNX Runtime where it measures faster on
    this machine with the same vectors, else torch (see :mod:`inbedder.onnx_backend`)."""

    TORCH = "torch"
    ONNX = "onnx"
    AUTO = "auto"


def parse_choice(enum: type[Enum], value: Any, what: str) -> Any:
    if type(value).__name__ == "dtype":  # a torch.dtype
        value = str(value).removeprefix("torch.")
    try:
        return enum(value)
    except ValueError:
        valid = [m.value for m in enum]  # type: ignore[attr-defined]
        raise InputError(f"{what}={value!r} is not valid; choose one of {valid}.{did_you_mean(str(value), valid)}") \
            from None


def parse_device(device: Any) -> Any:
    """``None`` → CUDA when present, else CPU; otherwise a device that exists here, or an :class:`InputError`."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"device={device!r} is not a device torch knows (e.g. cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={device!r}: CUDA is not available on this machine; use 'cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device={device!r}: MPS is not available on this machine; use 'cpu'")
    return dev
