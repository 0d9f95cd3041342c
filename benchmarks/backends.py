"""Optional backends for the encoder family: torch.compile and ONNX Runtime against eager PyTorch.

Every variant runs the same transformer (all-MiniLM-L6-v2 by default) on the same tokenized, length-sorted batches
of STS-B sentences, then the same mean pooling; only the forward pass differs:

* eager float32 and bfloat16 (what ``inbedder.load(..., dtype=...)`` runs);
* ``torch.compile`` (inductor, ``dynamic=True``) of the float32 and bfloat16 modules; compile time is reported
  apart, after one warm-up pass over every batch shape;
* ONNX Runtime (CPU execution provider) on the float32 graph exported with ``torch.onnx.export``, and on its
  dynamic int8 quantization (``onnxruntime.quantization.quantize_dynamic``).

Timed runs alternate between variants (A, B, ..., then ..., B, A) so that machine noise falls on all alike; the
headline is each variant's median texts/s and its ratio to eager float32. Fidelity: cosine of every row's vector
to eager float32 (min). Needs ``pip install onnx onnxruntime`` for the ONNX rows (skipped, and said so, otherwise).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/backends.py --n 1000 --rounds 3 --json backends.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from inbedder.registry import resolve

STS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "stsbenchmark" / "sts-test.jsonl"


def sentences(n: int) -> list[str]:
    texts: list[str] = []
    with open(STS, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts += [row["sentence1"], row["sentence2"]]
    return texts[:n]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    m = mask.unsqueeze(-1).to(torch.float32)
    return ((hidden.to(torch.float32) * m).sum(1) / m.sum(1).clamp(min=1e-9)).numpy()


def torch_runner(module: torch.nn.Module) -> Callable[[dict[str, torch.Tensor]], np.ndarray]:
    def run(batch: dict[str, torch.Tensor]) -> np.ndarray:
        with torch.inference_mode():
            return mean_pool(module(**batch).last_hidden_state, batch["attention_mask"])
    return run


def onnx_runners(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]], threads: int, work: Path
                 ) -> dict[str, Callable[[dict[str, torch.Tensor]], np.ndarray]]:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = list(batches[0])
    fp32, int8 = work / "model.onnx", work / "model.int8.onnx"

    class Hidden(torch.nn.Module):  # positional inputs in tokenizer order, one output
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    dynamic = dict.fromkeys([*names, "last_hidden_state"], {0: "batch", 1: "tokens"})
    torch.onnx.export(Hidden().eval(), tuple(batches[0][n] for n in names), str(fp32), input_names=names,
                      output_names=["last_hidden_state"], dynamic_axes=dynamic, opset_version=17, dynamo=False)
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1

    def runner(path: Path) -> Callable[[dict[str, torch.Tensor]], np.ndarray]:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(batch: dict[str, torch.Tensor]) -> np.ndarray:
            (hidden,) = session.run(["last_hidden_state"], {n: batch[n].numpy() for n in names})
            return mean_pool(torch.from_numpy(hidden), batch["attention_mask"])
        return run

    return {"onnxruntime float32": runner(fp32), "onnxruntime int8 (dynamic)": runner(int8)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--n", type=int, default=1000, help="STS-B test sentences")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    path = resolve(args.model).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = sorted(sentences(args.n), key=len)
    batches = [dict(tokenizer(texts[i:i + args.batch_size], padding=True, truncation=True, max_length=256,
                              return_tensors="pt")) for i in range(0, len(texts), args.batch_size)]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    fp32 = AutoModel.from_pretrained(path, attn_implementation="sdpa").eval()
    bf16 = AutoModel.from_pretrained(path, attn_implementation="sdpa", torch_dtype=torch.bfloat16).eval()
    runners: dict[str, Callable[[dict[str, torch.Tensor]], np.ndarray]] = {
        "eager float32": torch_runner(fp32), "eager bfloat16": torch_runner(bf16)}
    setup: dict[str, float] = {}
    for name, module in (("torch.compile float32", fp32), ("torch.compile bfloat16", bf16)):
        start = time.perf_counter()
        run = torch_runner(torch.compile(module, dynamic=True))
        for batch in batches:  # compile for every shape before timing
            run(batch)
        setup[name] = round(time.perf_counter() - start, 1)
        runners[name] = run
    skipped = None
    try:
        start = time.perf_counter()
        runners.update(onnx_runners(fp32, batches, args.threads, Path(tempfile.mkdtemp(prefix="onnx-"))))
        setup["onnxruntime (export + quantize)"] = round(time.perf_counter() - start, 1)
    except ImportError as exc:
        skipped = f"ONNX rows skipped: {exc}"
        print(skipped)

    reference = np.concatenate([runners["eager float32"](b) for b in batches])
    fidelity = {}
    for name, run in runners.items():
        vectors = np.concatenate([run(b) for b in batches])  # also the warm-up
        cos = (vectors * reference).sum(1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1))
        fidelity[name] = float(cos.min())
    times: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    for r in range(args.rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            for batch in batches:
                runners[name](batch)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["eager float32"])
    rows = []
    print(f"{len(texts)} texts, {tokens} tokens, batch {args.batch_size}, {args.threads} threads; "
          f"setup (s): {setup}")
    print(f"{'variant':30s} {'texts/s':>9s} {'vs eager fp32':>14s} {'min cosine':>11s}")
    for name in runners:
        median = statistics.median(times[name])
        rows.append({"variant": name, "texts_per_s": len(texts) / median, "ratio": base / median,
                     "min_cosine": fidelity[name], "runs_s": times[name]})
        print(f"{name:30s} {len(texts) / median:9.1f} {base / median:13.2f}× {fidelity[name]:11.5f}")
    if args.json:
        args.json.write_text(json.dumps({
            "date": dt.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__, "args": {k: str(v) for k, v in vars(args).items()}, "texts": len(texts),
            "tokens": tokens, "setup_s": setup, "skipped": skipped, "rows": rows}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
