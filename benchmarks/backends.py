"""Optional backends for the encoder family: torch.compile and ONNX Runtime against eager PyTorch.

Every variant runs the same transformer (all-MiniLM-L6-v2 by default) on the same tokenized, length-sorted batches
of STS-B sentences, then the same mean pooling; only the forward pass differs:

* eager float32 and bfloat16 (what ``inbedder.load(..., dtype=...)`` runs);
* ``torch.compile`` (inductor, ``dynamic=True``) of the float32 and bfloat16 modules; compile time is reported
  apart, after one warm-up pass over every batch shape;
* ONNX Runtime (CPU execution provider) on the float32 graph exported with ``torch.onnx.export``, and on its
  dynamic int8 quantization (``onnxruntime.quantization.quantize_dynamic``, per-tensor and per-channel weights);
* the public library on the same batches of texts: ``inbedder.load(model)`` (torch float32),
  ``load(model, backend="onnx")``, and ``load(model, quantize="int8")`` with each int8 kernel
  (``INBEDDER_INT8_KERNEL=fbgemm`` / ``int_mm``); these include tokenization, the family's pooling and Normalize.

``--variants`` picks rows by key (default: all but those with no fast kernels on this CPU: bfloat16 without fast
bfloat16 matmuls, the ``int_mm`` int8 kernel where it measures under half of float32):
eager32, eager16, compile32, compile16, ort32, ort8, ort8pc, inb32, inbonnx, inb8, inb8mm.

Timed runs alternate between variants (A, B, ..., then ..., B, A) so that machine noise falls on all alike; the
headline is each variant's median texts/s and its ratio to eager float32. Fidelity: cosine of every row's vector
to eager float32 (min). Needs ``pip install onnx onnxruntime`` for the ONNX rows (skipped, and said so, otherwise).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/backends.py --n 1000 --rounds 3 --json backends.json
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/backends.py --variants eager32,ort32,inb32,inbonnx,inb8 --cpu-time
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import STS_TEST, min_cosine, read_texts
from transformers import AutoModel, AutoTokenizer

import inbedder
from inbedder.apps.benchmark import alternate
from inbedder.registry import resolve
from inbedder.speed import cpu_int8_ratios, fast_bf16

Runner = Callable[[int], np.ndarray]  # batch index -> that batch's vectors

def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    m = mask.unsqueeze(-1).to(torch.float32)
    return ((hidden.to(torch.float32) * m).sum(1) / m.sum(1).clamp(min=1e-9)).numpy()


def torch_runner(module: torch.nn.Module, batches: list[dict[str, torch.Tensor]]) -> Runner:
    def run(i: int) -> np.ndarray:
        with torch.inference_mode():
            return mean_pool(module(**batches[i]).last_hidden_state, batches[i]["attention_mask"])
    return run


def inbedder_runner(model: inbedder.Embedder, text_batches: list[list[str]]) -> Runner:
    """The public library on one batch of texts (tokenization, pooling and Normalize included)."""
    return lambda i: model.encode(text_batches[i], batch_size=len(text_batches[i]), show_progress_bar=False)


def onnx_runners(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]], threads: int, work: Path,
                 wanted: set[str]) -> dict[str, Runner]:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = list(batches[0])
    fp32 = work / "model.onnx"

    class Hidden(torch.nn.Module):  # positional inputs in tokenizer order, one output
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    dynamic = dict.fromkeys([*names, "last_hidden_state"], {0: "batch", 1: "tokens"})
    padded = max(range(len(batches)), key=lambda i: int((batches[i]["attention_mask"] == 0).sum()))
    torch.onnx.export(Hidden().eval(), tuple(batches[padded][n] for n in names), str(fp32), input_names=names,
                      output_names=["last_hidden_state"], dynamic_axes=dynamic, opset_version=17, dynamo=False)
    files = {"ort32": ("onnxruntime float32", fp32)}
    for key, per_channel in (("ort8", False), ("ort8pc", True)):
        if key in wanted:
            files[key] = (f"onnxruntime int8 (dynamic{', per-channel' if per_channel else ''})",
                          work / f"model.{key}.onnx")
            quantize_dynamic(str(fp32), str(files[key][1]), weight_type=QuantType.QInt8, per_channel=per_channel)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1

    def runner(path: Path) -> Runner:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(i: int) -> np.ndarray:
            (hidden,) = session.run(["last_hidden_state"], {n: batches[i][n].numpy() for n in names})
            return mean_pool(torch.from_numpy(hidden), batches[i]["attention_mask"])
        return run

    return {name: runner(path) for key, (name, path) in files.items() if key in wanted}


def default_variants() -> str:
    slow = set()
    if not fast_bf16(torch.device("cpu")):
        slow |= {"eager16", "compile16"}
    if cpu_int8_ratios()["int_mm"] < 0.5:
        slow.add("inb8mm")
    return ",".join(k for k in KEYS if k not in slow)


KEYS = ("eager32", "eager16", "compile32", "compile16", "ort32", "ort8", "ort8pc", "inb32", "inbonnx", "inb8", "inb8mm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--n", type=int, default=1000, help="STS-B test sentences")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path)
    parser.add_argument("--variants", default=None, help=f"comma-separated keys of {', '.join(KEYS)}")
    parser.add_argument("--cpu-time", action="store_true", help="rank by process CPU seconds (a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wanted = set((args.variants or default_variants()).split(",")) | {"eager32"}
    unknown = wanted - set(KEYS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(KEYS)}")

    path = resolve(args.model).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = sorted(read_texts(STS_TEST)[:args.n], key=len)
    text_batches = [texts[i:i + args.batch_size] for i in range(0, len(texts), args.batch_size)]
    batches = [dict(tokenizer(b, padding=True, truncation=True, max_length=256, return_tensors="pt"))
               for b in text_batches]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    fp32 = AutoModel.from_pretrained(path, attn_implementation="sdpa").eval()
    bf16 = AutoModel.from_pretrained(path, attn_implementation="sdpa", torch_dtype=torch.bfloat16).eval()
    runners: dict[str, Runner] = {"eager float32": torch_runner(fp32, batches)}
    if "eager16" in wanted:
        runners["eager bfloat16"] = torch_runner(bf16, batches)
    setup: dict[str, float] = {}
    for key, name, module in (("compile32", "torch.compile float32", fp32), ("compile16", "torch.compile bfloat16",
                                                                            bf16)):
        if key not in wanted:
            continue
        start = time.perf_counter()
        run = torch_runner(torch.compile(module, dynamic=True), batches)
        for i in range(len(batches)):  # compile for every shape before timing
            run(i)
        setup[name] = round(time.perf_counter() - start, 1)
        runners[name] = run
    skipped = None
    if wanted & {"ort32", "ort8", "ort8pc"}:
        try:
            start = time.perf_counter()
            runners.update(onnx_runners(fp32, batches, args.threads, Path(tempfile.mkdtemp(prefix="onnx-")), wanted))
            setup["onnxruntime (export + quantize)"] = round(time.perf_counter() - start, 1)
        except ImportError as exc:
            skipped = f"ONNX rows skipped: {exc}"
            print(skipped)
    library = {"inb32": ("inbedder float32", {}), "inbonnx": ("inbedder backend='onnx'", {"backend": "onnx"}),
               "inb8": ("inbedder int8 (fbgemm kernel)", {"quantize": "int8", "kernel": "fbgemm"}),
               "inb8mm": ("inbedder int8 (int_mm kernel)", {"quantize": "int8", "kernel": "int_mm"})}
    for key, (name, options) in library.items():
        if key not in wanted:
            continue
        kernel = options.pop("kernel", None)
        if kernel:
            os.environ["INBEDDER_INT8_KERNEL"] = str(kernel)
        start = time.perf_counter()
        runners[name] = inbedder_runner(inbedder.load(args.model, device="cpu", **options), text_batches)
        setup[name] = round(time.perf_counter() - start, 1)
        os.environ.pop("INBEDDER_INT8_KERNEL", None)

    reference = np.concatenate([runners["eager float32"](i) for i in range(len(batches))])
    fidelity = {}
    for name, run in runners.items():
        vectors = np.concatenate([run(i) for i in range(len(batches))])  # also the warm-up
        fidelity[name] = min_cosine(vectors, reference)
    load_before = os.getloadavg()[0]
    wall, cpu, _ = alternate({name: lambda run=run: [run(i) for i in range(len(batches))]
                              for name, run in runners.items()}, args.rounds)
    times = cpu if args.cpu_time else wall
    load_after = os.getloadavg()[0]
    base = statistics.median(times["eager float32"])
    rows = []
    unit = "CPU s" if args.cpu_time else "s"
    print(f"{len(texts)} texts, {tokens} tokens, batch {args.batch_size}, {args.threads} threads; "
          f"setup (s): {setup}; load average {load_before:.2f} -> {load_after:.2f}; {platform.processor()}")
    print(f"{'variant':34s} {'texts/' + unit:>9s} {'vs eager fp32':>14s} {'min cosine':>11s}")
    for name in runners:
        median = statistics.median(times[name])
        rows.append({"variant": name, "texts_per_s": len(texts) / median, "ratio": base / median,
                     "min_cosine": fidelity[name], "runs_s": times[name]})
        print(f"{name:34s} {len(texts) / median:9.1f} {base / median:13.2f}× {fidelity[name]:11.5f}")
    if args.json:
        args.json.write_text(json.dumps({
            "date": dt.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__, "args": {k: str(v) for k, v in vars(args).items()}, "texts": len(texts),
            "tokens": tokens, "setup_s": setup, "skipped": skipped, "rows": rows, "clock": unit,
            "load_average": [load_before, load_after]}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
