"""Fast paths on CPU: int8 linear layers, dtype checks, and the arithmetic of a roofline.

``load(..., quantize="int8")`` replaces every ``nn.Linear`` of the family by an :class:`Int8Linear`:
int8 weights with one scale per output channel, activations quantized to int8 with one scale *per token*
at each call (a few outlier channels kept in float32), an int8 × int8 → int32 matrix product
(``torch._int_mm``), then rescaled to float. ``torch.ao.quantization.quantize_dynamic`` (the recipe INSTRUCTOR's
README gives) quantizes activations with one scale for the whole batch, so one large activation in one row
costs every other row its precision: on all-MiniLM-L6-v2 over STS-B its worst row falls to cosine 0.72 of the
float32 vector; per-token scales give 0.98, and with the outlier channels in float32 0.99+
(docs/benchmarks.md has the measurements).

>>> model = load("minilm", quantize="int8")                 # doctest: +SKIP
>>> model.encoder.settings()["quantize"]                    # doctest: +SKIP
'int8'
"""

from __future__ import annotations

import functools
import time
import warnings
from typing import Any

import torch
from torch import nn

from .choices import DType, Quantize, parse_choice
from .errors import InputError


class Int8Linear(nn.Module):
    """A linear layer with int8 weights (per output channel) and int8 activations (per token), int32 sums.

    Transformer activations carry a few outlier channels (much larger than the rest, the same channels in
    every token); one of them sets a token's scale and leaves the others few levels. So the
    ``outlier_channels`` input channels with the largest magnitude in the batch are taken out of the int8
    product and multiplied in float32 (as in LLM.int8()). The output has the input's dtype.
    """

    outlier_channels = 8

    weight_int8: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        quantized = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.register_buffer("weight_int8", quantized.t().contiguous())  # (in, out): _int_mm's right operand
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float())

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        outliers = torch.zeros(0, dtype=torch.long, device=rows.device)
        if self.outlier_channels and rows.shape[0]:
            outliers = rows.abs().amax(dim=0).topk(min(self.outlier_channels, self.in_features)).indices
            kept = rows[:, outliers]
            rows = rows.index_fill(1, outliers, 0.0)
        scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
        quantized = torch.round(rows / scale).to(torch.int8)  # within [-127, 127] by construction
        out = torch._int_mm(quantized, self.weight_int8).float().mul_(scale)
        if outliers.numel():  # the outlier channels in float, against the same int8 weights
            out.addmm_(kept, self.weight_int8[outliers].float())
        out.mul_(self.weight_scale)
        if self.bias is not None:
            out.add_(self.bias)
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)


def quantize_int8(module: nn.Module) -> int:
    """Replace every ``nn.Linear`` inside ``module`` by an :class:`Int8Linear`, in place; returns how many."""
    replaced = 0
    for name, child in list(module.named_children()):
        if type(child) is nn.Linear:
            setattr(module, name, Int8Linear(child))
            replaced += 1
        else:
            replaced += quantize_int8(child)
    return replaced


def parse_quantize(value: Any) -> Quantize | None:
    """``None`` (no quantization) or a :class:`Quantize`; anything else is an :class:`InputError`."""
    return None if value is None else parse_choice(Quantize, value, "quantize")  # type: ignore[no-any-return]


def check_quantize(quantize: Quantize, device: torch.device) -> None:
    if device.type != "cpu":
        raise InputError(f"quantize={quantize.value!r} runs on CPU only (its int8 kernels are the CPU ones); "
                         f"got device={str(device)!r}. On a GPU use dtype='bfloat16' or 'float16' instead")


def apply_quantization(encoder: Any, quantize: Quantize, device: torch.device) -> None:
    """Quantize a loaded family in place (CPU only) and record it in the family's settings."""
    check_quantize(quantize, device)
    if quantize is Quantize.INT8 and quantize_int8(encoder) == 0:
        raise InputError(f"quantize='int8' found no torch.nn.Linear layer to quantize in this {encoder.family} model")
    encoder.quantization = quantize.value


def check_device_for(encoder: Any, device: torch.device) -> None:
    """A quantized family stays on the CPU: a clear error instead of a failure deep inside a forward pass."""
    quantization = getattr(encoder, "quantization", None)
    if quantization and device.type != "cpu":
        raise InputError(f"this model was loaded with quantize={quantization!r}, which runs on CPU only; "
                         f"cannot move it to {str(device)!r}. Load it without quantize= for that device")


FAST_BF16_RATIO = 1.2  # bfloat16 counts as fast where its matmuls run at least this many times float32's


@functools.lru_cache(maxsize=1)
def cpu_bf16_ratio() -> float:
    """This CPU's bfloat16 over float32 matmul throughput (512 × 512, best of 3 each, measured once a process);
    0 where oneDNN has no bfloat16 kernels for it. CPUs differ: about 2× with AMX, 0.6× was measured on an
    AVX-512 BF16 CPU without AMX, about 0.01× on AVX2-only CPUs."""
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return 0.0
    return peak_gemm_flops(torch.bfloat16, 512, 3) / peak_gemm_flops(torch.float32, 512, 3)


def fast_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matmuls on ``device`` are faster than float32 ones: on CUDA where it supports them, on a
    CPU where they measure at least :data:`FAST_BF16_RATIO` times float32 (:func:`cpu_bf16_ratio`)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu" and cpu_bf16_ratio() >= FAST_BF16_RATIO


def check_dtype(dtype: DType, device: torch.device) -> None:
    """Warn when a half-precision dtype has no fast kernels on this CPU (it is still correct, only slower)."""
    if device.type != "cpu" or dtype is DType.FLOAT32:
        return
    fast = {DType.BFLOAT16: fast_bf16(device), DType.FLOAT16: torch.ops.mkldnn._is_mkldnn_fp16_supported()}
    if not fast[dtype]:
        other = "dtype='bfloat16', " if fast[DType.BFLOAT16] else ""
        measured = f" (measured: {cpu_bf16_ratio():.2f}× float32)" if dtype is DType.BFLOAT16 else ""
        warnings.warn(f"dtype={dtype.value!r}: this CPU has no fast {dtype.value} matrix kernels{measured}, so it "
                      f"may run slower than float32; try {other}dtype='float32' or quantize='int8'", stacklevel=3)


# -- roofline arithmetic ---------------------------------------------------------------------------------
def peak_gemm_flops(dtype: torch.dtype, size: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """Floating-point operations per second of one large square ``torch.matmul`` (best of ``repeats``)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    with torch.inference_mode():
        for i in range(repeats + 1):
            if device != "cpu":
                torch.cuda.synchronize()
            start = time.perf_counter()
            torch.matmul(a, b)
            if device != "cpu":
                torch.cuda.synchronize()
            if i:  # the first is a warm-up
                best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def flops_per_token(model: nn.Module, config: Any, seq_len: float) -> float:
    """Forward-pass FLOPs per token of a transformer: ``2 × non-embedding parameters + 4 · layers · seq · hidden``.

    Each weight of a linear layer is one multiply and one add per token (the first term); self-attention adds
    ``Q·Kᵀ`` and ``softmax·V``, each ``2 · seq · hidden`` per token and layer (the second). Embedding tables are
    lookups and layer norms are elementwise, so neither counts; a BERT pooler runs once a row, not a token.
    ``seq_len`` is the (padded) length the attention runs over.
    """
    per_token = [m for name, m in model.named_modules() if "pooler" not in name.split(".")]  # pooler: once a row
    linear = {id(p): p for m in per_token if isinstance(m, nn.Linear) for p in m.parameters(recurse=False)}
    params = sum(p.numel() for p in linear.values())
    params += sum(m.weight_int8.numel() + (m.bias.numel() if m.bias is not None else 0)
                  for m in per_token if isinstance(m, Int8Linear))
    layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "num_layers", 0))
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "d_model", 0))
    return 2.0 * params + 4.0 * layers * seq_len * hidden
