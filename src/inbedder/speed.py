"""Fast paths on CPU: int8 linear layers, dtype checks, and the arithmetic of a roofline.

``load(..., quantize="int8")`` replaces every ``nn.Linear`` of the family by an :class:`Int8Linear`:
int8 weights with one scale per output channel, activations quantized to int8 with one scale *per token*
at each call (a few outlier channels kept in float32), an int8 × int8 → int32 matrix product
(``torch._int_mm`` where VNNI/AMX make it fast, FBGEMM's kernel elsewhere: :func:`int8_kernel` measures
which), then rescaled to float. ``torch.ao.quantization.quantize_dynamic`` (the recipe INSTRUCTOR's
README gives) quantizes activations with one scale for the whole batch, so one large activation in one row
costs every other row its precision: on all-MiniLM-L6-v2 over STS-B its worst row falls to cosine 0.72 of the
float32 vector; per-token scales give 0.98, and with the outlier channels in float32 0.99+
(docs/benchmarks.md has the measurements).

>>> model = load("minilm", quantize="int8")                 # doctest: +SKIP
>>> model.encoder.settings()["quantize"]                    # doctest: +SKIP
'int8'
"""

from __future__ import annotations

import contextlib
import functools
import os
import statistics
import time
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .choices import DType, Quantize, parse_choice
from .errors import InputError

INT8_KERNELS = ("int_mm", "fbgemm")


class Int8Linear(nn.Module):
    """A linear layer with int8 weights (per output channel) and int8 activations (per token), int32 sums.

    Transformer activations carry a few outlier channels (much larger than the rest, the same channels in
    every token); one of them sets a token's scale and leaves the others few levels. So the
    ``outlier_channels`` input channels with the largest magnitude in the batch are taken out of the int8
    product and multiplied in float32 (as in LLM.int8()). The output has the input's dtype.

    Two kernels do the int8 product (``kernel``; :func:`int8_kernel` picks the faster on this CPU):

    * ``int_mm``: ``torch._int_mm`` on int8 rows quantized with one scale each. Fast with VNNI or AMX; on an
      AVX2-only CPU it has no fast path (about 1/40 of float32).
    * ``fbgemm``: ``torch.ops.quantized.linear_dynamic`` (FBGEMM's AVX2 / AVX-512 kernels) on rows first divided
      by their own largest magnitude, its output multiplied back: the kernel's one activation scale per call then
      serves every row alike, so each row keeps its own scale as with ``int_mm``. Inputs take 7 bits
      (``reduce_range``): with 8, AVX2's pairwise int16 sums saturate (cosine 0.97 to float32 on random rows).
    """

    outlier_channels = 8

    weight_int8: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, linear: nn.Linear, kernel: str | None = None):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.kernel = kernel or int8_kernel()
        if self.kernel not in INT8_KERNELS:
            raise InputError(f"int8 kernel {self.kernel!r} is not known; choose one of {list(INT8_KERNELS)}")
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        quantized = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.register_buffer("weight_int8", quantized.t().contiguous())  # (in, out): _int_mm's right operand
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float())
        self.packed: Any = None
        if self.kernel == "fbgemm":
            with warnings.catch_warnings():  # quantized tensors are deprecated; the packed weight is what runs
                warnings.simplefilter("ignore")
                qweight = torch._make_per_channel_quantized_tensor(quantized, scale.double(),
                                                                   torch.zeros_like(scale, dtype=torch.long), 0)
                with quantized_engine("fbgemm"):
                    self.packed = torch.ops.quantized.linear_prepack(qweight, None)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"kernel={self.kernel}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        outliers = torch.zeros(0, dtype=torch.long, device=rows.device)
        magnitude = rows.abs()
        if self.outlier_channels and rows.shape[0]:
            outliers = magnitude.amax(dim=0).topk(min(self.outlier_channels, self.in_features)).indices
            kept = rows[:, outliers]
            rows = rows.index_fill(1, outliers, 0.0)  # a copy: the caller's tensor is left alone
            magnitude.index_fill_(1, outliers, 0.0)
        peak = magnitude.amax(dim=1, keepdim=True).clamp_(min=1e-12)
        if self.packed is not None:  # weight scales applied by the kernel
            rows = rows.div_(peak) if outliers.numel() else rows / peak
            out = torch.ops.quantized.linear_dynamic(rows, self.packed, True).mul_(peak)  # True: 7-bit inputs
        else:
            scale = peak / 127.0
            quantized = torch.round(rows / scale).to(torch.int8)  # within [-127, 127] by construction
            out = torch._int_mm(quantized, self.weight_int8).float().mul_(scale).mul_(self.weight_scale)
        extra_in, extra_weight = [], []  # the outlier channels in float against the same int8 weights, the bias:
        if outliers.numel():  # one more product into the output (one pass over it, not three)
            extra_in.append(kept)
            extra_weight.append(self.weight_int8[outliers].float().mul_(self.weight_scale))
        if self.bias is not None:
            extra_in.append(torch.ones(rows.shape[0], 1, dtype=out.dtype, device=out.device))
            extra_weight.append(self.bias[None])
        if extra_in:
            out.addmm_(torch.cat(extra_in, 1), torch.cat(extra_weight, 0))
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)


@contextlib.contextmanager
def quantized_engine(name: str) -> Iterator[None]:
    """``torch.backends.quantized.engine`` set to ``name`` for the duration (the packing is engine-specific)."""
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def quantize_int8(module: nn.Module, kernel: str | None = None) -> int:
    """Replace every ``nn.Linear`` inside ``module`` by an :class:`Int8Linear`, in place; returns how many.
    ``kernel=None``: the faster on this CPU (:func:`int8_kernel`)."""
    kernel = kernel or int8_kernel()
    replaced = 0
    for name, child in list(module.named_children()):
        if type(child) is nn.Linear:
            setattr(module, name, Int8Linear(child, kernel))
            replaced += 1
        else:
            replaced += quantize_int8(child, kernel)
    return replaced


def parse_quantize(value: Any) -> Quantize | None:
    """``None`` (no quantization: ``None`` or ``"none"``) or a :class:`Quantize`; anything else is an
    :class:`InputError`."""
    found = None if value is None else parse_choice(Quantize, value, "quantize")
    return None if found is Quantize.NONE else found  # type: ignore[no-any-return]


FAST_INT8_RATIO = 1.1  # quantize="auto" runs int8 where its kernel measures at least this many times float32


def resolve_quantize(quantize: Quantize | None, encoder: Any, device: torch.device, dtype: DType, key: str
                     ) -> tuple[Quantize | None, str | None]:
    """``quantize`` and the int8 kernel to run it with (None: the faster, measured now). ``auto`` is int8 on a CPU,
    in float32, where this CPU's faster int8 kernel measured at least :data:`FAST_INT8_RATIO` times float32 on the
    model's main linear shape, else None. That choice is measured once a CPU and model (``key``: its weights file)
    and remembered (:func:`inbedder.machine.decide`), so every later process chooses the same, kernel included."""
    from .machine import decide

    if quantize is not Quantize.AUTO:
        return quantize, None
    if device.type != "cpu" or dtype is not DType.FLOAT32:
        return None, None

    def measure() -> dict[str, Any]:
        shape = probe_shape(encoder)
        ratios = cpu_int8_ratios(shape)
        kernel = max(INT8_KERNELS, key=lambda k: ratios[k])
        return {"quantize": "int8" if ratios[kernel] >= FAST_INT8_RATIO else "none", "kernel": kernel,
                "ratio": round(ratios[kernel], 3), "shape": list(shape)}

    choice = decide("quantize_auto", key, measure)
    return (Quantize.INT8, str(choice["kernel"])) if choice.get("quantize") == "int8" else (None, None)


def check_quantize(quantize: Quantize, device: torch.device) -> None:
    if quantize is Quantize.AUTO:
        return  # none off the CPU
    if device.type != "cpu":
        raise InputError(f"quantize={quantize.value!r} runs on CPU only (its int8 kernels are the CPU ones); "
                         f"got device={str(device)!r}. On a GPU use dtype='bfloat16' or 'float16' instead")


def apply_quantization(encoder: Any, quantize: Quantize, device: torch.device, kernel: str | None = None,
                       stacklevel: int = 3) -> None:
    """Quantize a loaded family in place (CPU only) and record it in the family's settings; ``kernel=None``: the
    faster int8 kernel, measured. Warns (at ``stacklevel``) when the kernel that runs measured slower than float32
    (:func:`cpu_int8_ratios`)."""
    check_quantize(quantize, device)
    if quantize is Quantize.INT8:
        shape = probe_shape(encoder)
        measured = kernel is None  # else chosen by quantize="auto", faster than float32
        kernel = kernel or int8_kernel(shape)
        if quantize_int8(encoder, kernel) == 0:
            raise InputError(f"quantize='int8' found no torch.nn.Linear layer to quantize in this {encoder.family} "
                             "model")
        ratios = cpu_int8_ratios(shape) if measured else {}
        if measured and ratios[kernel] < 1.0 and not os.environ.get(KERNEL_SWITCH):
            others = ", ".join(f"{k} {format_ratio(r)}" for k, r in ratios.items() if k != kernel)
            warnings.warn(f"quantize='int8': this CPU's fastest int8 kernel ({kernel}) measured "
                          f"{format_ratio(ratios[kernel])} float32 on this model's main linear layer shape "
                          f"{shape[0]} → {shape[1]} ({others}), so int8 may run slower than float32 here; "
                          "quantize='auto' runs int8 only where it measures faster", stacklevel=stacklevel)
    encoder.quantization = quantize.value


def check_device_for(encoder: Any, device: torch.device) -> None:
    """A quantized family, or one on ONNX Runtime, stays on the CPU: a clear error instead of a failure deep
    inside a forward pass."""
    quantization = getattr(encoder, "quantization", None)
    if getattr(encoder, "runtime", None) is not None and device.type != "cpu":
        raise InputError(f"this model was loaded with backend='onnx' (ONNX Runtime on the CPU); cannot move it to "
                         f"{str(device)!r}. Load it with backend='torch' for that device")
    if quantization and device.type != "cpu":
        raise InputError(f"this model was loaded with quantize={quantization!r}, which runs on CPU only; "
                         f"cannot move it to {str(device)!r}. Load it with device={str(device)!r} (or "
                         "quantize='none') for that device")


FAST_BF16_RATIO = 1.2  # bfloat16 counts as fast where its matmuls run at least this many times float32's


@functools.lru_cache(maxsize=1)
def cpu_bf16_ratio() -> float:
    """This CPU's bfloat16 over float32 matmul throughput (512 × 512, best of 3 each, measured once a process);
    0 where oneDNN has no bfloat16 kernels for it. CPUs differ: about 2× with AMX, 0.6× was measured on an
    AVX-512 BF16 CPU without AMX, about 0.01× on AVX2-only CPUs."""
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return 0.0
    return peak_gemm_flops(torch.bfloat16, 512, 3) / peak_gemm_flops(torch.float32, 512, 3)


INT8_PROBE = (128, 384, 1536)  # rows, in, out: one all-MiniLM-L6-v2 feed-forward layer on a batch of short texts


def probe_shape(module: nn.Module) -> tuple[int, int]:
    """The ``(in, out)`` shape that holds most of ``module``'s linear weights (its int8 speed is the model's);
    :data:`INT8_PROBE`'s without linear layers. The kernels' ratios differ by shape: on an AVX2-only CPU FBGEMM
    measured 0.87× float32 at MiniLM's 384 → 1536 and 1.3× at Qwen2.5-0.5B's 896 → 4,864."""
    weights: dict[tuple[int, int], int] = {}
    for layer in module.modules():
        if type(layer) is nn.Linear:
            shape = (layer.in_features, layer.out_features)
            weights[shape] = weights.get(shape, 0) + layer.in_features * layer.out_features
    return max(weights, key=lambda k: weights[k]) if weights else (INT8_PROBE[1], INT8_PROBE[2])


@functools.lru_cache(maxsize=8)
def cpu_int8_ratios(shape: tuple[int, int] | None = None) -> dict[str, float]:
    """Each int8 kernel's throughput over float32's on this CPU, measured once a process and shape: an
    :class:`Int8Linear` (outlier channels and rescaling included) against the ``nn.Linear`` it replaces, on
    :data:`INT8_PROBE`'s rows and ``shape`` (``(in, out)``; :data:`INT8_PROBE`'s by default), by
    :func:`paired_ratio`. 0 for a kernel this build of torch lacks. ``int_mm`` is about 1.0-1.5× with VNNI, about
    0.03× on AVX2-only CPUs, where ``fbgemm`` is about 0.9-1.6×."""
    rows, inputs, outputs = INT8_PROBE
    if shape is not None:
        inputs, outputs = shape
    generator = torch.Generator().manual_seed(0)
    linear = nn.Linear(inputs, outputs)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(outputs, inputs, generator=generator) / inputs**0.5)
    x = torch.randn(rows, inputs, generator=generator)
    ratios = {}
    for kernel in INT8_KERNELS:
        if kernel == "fbgemm" and "fbgemm" not in torch.backends.quantized.supported_engines:
            ratios[kernel] = 0.0
            continue
        try:
            layer = Int8Linear(linear, kernel)
            ratios[kernel] = paired_ratio(lambda: linear(x), lambda: layer(x))  # noqa: B023 (timed here)
        except RuntimeError:  # no kernel for this CPU or build
            ratios[kernel] = 0.0
    return ratios


def paired_ratio(base: Any, other: Any, rounds: int = 5) -> float:
    """How many times faster ``other()`` runs than ``base()``: the median over ``rounds`` alternating pairs of
    their process CPU times, on one thread, after a warm-up of each. A busy machine distorts wall-clock timings
    of a multi-threaded kernel (threads wait for a descheduled sibling): on a 2-core AVX2 CPU shared with a
    2-thread job, FBGEMM at 896 → 4,864 timed 0.2-10× float32 by the best of 3 wall-clock runs on 2 threads, and
    1.4-1.7× this way, in the same minutes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            base(), other()
            found = []
            for _ in range(rounds):
                start = time.process_time()
                base()
                middle = time.process_time()
                other()
                found.append((middle - start) / max(time.process_time() - middle, 1e-9))
    finally:
        torch.set_num_threads(threads)
    return statistics.median(found)


KERNEL_SWITCH = "INBEDDER_INT8_KERNEL"


def int8_kernel(shape: tuple[int, int] | None = None) -> str:
    """The :class:`Int8Linear` kernel that measured fastest on this CPU (:func:`cpu_int8_ratios`; ``int_mm`` on a
    tie), or the one ``INBEDDER_INT8_KERNEL`` names (``int_mm`` or ``fbgemm``: for benchmarks and comparisons)."""
    named = os.environ.get(KERNEL_SWITCH, "").strip()
    if named:
        if named not in INT8_KERNELS:
            raise InputError(f"{KERNEL_SWITCH}={named!r} is not an int8 kernel; choose one of {list(INT8_KERNELS)} "
                             "or unset it (the faster on this CPU, measured)")
        return named
    ratios = cpu_int8_ratios(shape)
    return max(INT8_KERNELS, key=lambda k: ratios[k])


def best_seconds(run: Any, repeats: int = 3) -> float:
    """The fastest of ``repeats`` timed calls of ``run()`` after one warm-up call (inference mode)."""
    best = float("inf")
    with torch.inference_mode():
        for i in range(repeats + 1):
            start = time.perf_counter()
            run()
            if i:  # the first is a warm-up
                best = min(best, time.perf_counter() - start)
    return max(best, 1e-9)


def format_ratio(ratio: float) -> str:
    """A speed ratio for a message: ``0.60×``; a small one with its reciprocal, ``0.004× (about 1/250 of)``."""
    if ratio <= 0:
        return "0× (no kernel)"
    if ratio >= 0.095:
        return f"{ratio:.2f}×"
    return f"{ratio:.2g}× (about 1/{1 / ratio:.0f} of)"


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
        ratio = cpu_bf16_ratio() if dtype is DType.BFLOAT16 else None
        measured = "" if ratio is None else " (oneDNN has no bfloat16 kernels for it)" if ratio <= 0 else \
            f" (measured: {format_ratio(ratio)} float32)"
        int8 = " or quantize='int8'" if max(cpu_int8_ratios().values()) >= 1.0 else ""
        warnings.warn(f"dtype={dtype.value!r}: this CPU has no fast {dtype.value} matrix kernels{measured}, so it "
                      f"may run slower than float32; try {other}dtype='float32'{int8}", stacklevel=3)


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
