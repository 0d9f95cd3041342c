"""Answer-embedding speed: inbedder's causal family against the reference InBedder CausalLMEncoder, same prompts.

Both embed the same complete prompts (the InBedder pattern around CLINC150 queries, or with ``--data`` a
``.jsonl`` of ``input``/``question`` records such as ``qa/fairytaleqa`` passages) with the same model (inbedder
reads the GGUF file; the reference reads a transformers copy that inbedder saves from it), dtype, batch size and
torch threads. The reference runs in its own environment (transformers 4.44) as a subprocess and times its own
``encode`` calls; inbedder is timed in this process through ``inbedder.compat.CausalLMEncoder``. Timed blocks
alternate (reference, inbedder, reference, inbedder, ...) so that machine noise falls on both; the reported
throughput is the median. Vectors are compared with the reference's (max abs diff, min cosine) in the same run.
The reference runs in float32; inbedder runs in each of ``--dtypes`` (float32 and bfloat16 by default), the
dtypes alternating too: one ``CausalLMEncoder`` per dtype and number of new tokens (its generation settings are
the constructor's, as in the reference).

The reference always generates (``fst_gen`` needs at least 2 new tokens there: with 1 it fails), so it is timed at
``max_new_tokens`` = 3 and, for ``fst_gen``, also at 2, with ``last_layer_only=True`` for the last layer (its
fastest setting; its default computes every value at every layer, and it needs that default for any other layer)
and, with ``--all-layers``, with its default at the last layer too. Cases: ``fst_gen`` at each ``--layer``,
``avg_ppt`` and ``avg_gen`` at the last layer.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/answer_speed.py REFERENCE_REPO
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/answer_speed.py REFERENCE_REPO --n 256 --rounds 3 --json speed.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import DATA, REPO, cpu_model, min_cosine
from safetensors.numpy import load_file

RUNNER = REPO / "tests" / "reference" / "causal_reference.py"
CLINC = DATA / "clinc150" / "data_full.json"
PATTERN = "### Input:\n{input}\n\n### Instruction:\n{instruction}\n\n### Response:"
INSTRUCTION = "What does the user want to do?"


def prompts_from(path: Path, n: int) -> list[str]:
    """CLINC150 test queries under one question, or (a ``.jsonl`` of ``input``/``question`` records, such as
    ``qa/fairytaleqa``) distinct passages of a few hundred tokens, each under its first question."""
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
        first: dict[str, str] = {}
        for r in records:
            first.setdefault(r["input"], r["question"])
        pairs = list(first.items())[:n]
    else:
        rows = json.loads(path.read_text(encoding="utf-8"))["test"]
        pairs = [(t, INSTRUCTION) for t in list(dict.fromkeys(t for t, _ in rows))[:n]]
    return [PATTERN.replace("{input}", t).replace("{instruction}", q) for t, q in pairs]


def run_reference(args: argparse.Namespace, model_dir: Path, cases: list[dict], prompts: list[str], out: Path,
                  repeats: int) -> dict[str, list[float]]:
    runs = [{"name": c["name"], "prompts": prompts, "batch_size": args.batch_size, "max_input_length": 512,
             "generation": {"max_new_tokens": c["new"], "do_sample": False}, "last_layer_only": c["last_only"],
             "output_value": f"{c['value']}_layer_{c['layer']}", "repeats": repeats} for c in cases]
    spec = out / "spec.json"
    spec.write_text(json.dumps({"model": str(model_dir), "runs": runs, "threads": args.threads}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    proc = subprocess.run([args.reference_python, str(RUNNER), args.reference_repo, str(spec), str(out)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"reference run failed:\n{proc.stderr[-3000:]}")
    return {c["name"]: json.loads((out / c["name"] / "times.json").read_text()) for c in cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference_repo", help="checkout of github.com/zhang-yu-wei/InBedder")
    parser.add_argument("--reference-python", default=str(REPO / ".venv-ref" / "bin" / "python"))
    parser.add_argument("--model", default="smollm2-135m-instruct", help="alias, directory or .gguf file")
    parser.add_argument("--converted", type=Path, help="where to keep the transformers copy for the reference")
    parser.add_argument("--data", type=Path, default=CLINC)
    parser.add_argument("--n", type=int, default=128, help="number of prompts")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--layer", type=int, action="append", help="layers for fst_gen (default: last)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed blocks per library")
    parser.add_argument("--all-layers", action="store_true", help="also time the reference's default setting")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--dtypes", default="float32,bfloat16", help="inbedder dtypes, each timed on every case")
    parser.add_argument("--fst-gen-only", action="store_true", help="time only fst_gen with 2 new tokens (the "
                        "reference's fastest setting); for long texts, where the reference is slow")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from inbedder.compat import CausalLMEncoder

    prompts = prompts_from(args.data, args.n)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if "float32" not in dtypes:
        dtypes.insert(0, "float32")
    models: dict[tuple[str, int], CausalLMEncoder] = {}  # (dtype, new tokens): its generation settings are fixed

    def model_of(dtype: str, new: int) -> CausalLMEncoder:
        if (dtype, new) not in models:
            models[(dtype, new)] = CausalLMEncoder(args.model, max_input_length=512, max_new_tokens=new,
                                                   do_sample=False, dtype=dtype)
        return models[(dtype, new)]

    ours = model_of("float32", 3)
    last = ours.num_layers
    layers = sorted(set(args.layer or [last]))
    work = Path(tempfile.mkdtemp(prefix="answer_speed_"))
    model_dir = args.converted or work / "model"
    if not (model_dir / "config.json").exists():
        ours.encoder.save_pretrained(model_dir)
    cases = [{"name": f"fst_gen_{n}_new{k}", "value": "fst_gen", "layer": n, "new": k, "last_only": n == last}
             for n in layers for k in (2, 3)]
    cases.append({"name": f"avg_ppt_{last}_new3", "value": "avg_ppt", "layer": last, "new": 3, "last_only": True})
    cases.append({"name": "avg_gen_new3", "value": "avg_gen", "layer": last, "new": 3, "last_only": True})
    if args.all_layers:
        cases.append({"name": "fst_gen_new3_all_layers", "value": "fst_gen", "layer": last, "new": 3,
                      "last_only": False})
    if args.fst_gen_only:
        cases = [c for c in cases if c["value"] == "fst_gen" and c["new"] == 2]
    ref_times: dict[str, list[float]] = {c["name"]: [] for c in cases}
    our_times: dict[str, dict[str, list[float]]] = {d: {c["name"]: [] for c in cases} for d in dtypes}
    diffs: dict[str, dict[str, float]] = {d: {} for d in dtypes}
    cosines: dict[str, dict[str, float]] = {d: {} for d in dtypes}
    for round_ in range(args.rounds):
        out = work / f"ref{round_}"
        out.mkdir()
        for name, times in run_reference(args, model_dir, cases, prompts, out, 1).items():
            ref_times[name] += times
        for case in cases:
            reference = load_file(str(out / case["name"] / "embeds.safetensors"))
            key = f"{case['value']}_layer_{case['layer']}"
            for d in dtypes if round_ % 2 == 0 else dtypes[::-1]:
                model = model_of(d, case["new"])
                model.set_output_value(key)
                model.encode(prompts[: args.batch_size], batch_size=args.batch_size)  # warm-up
                start = time.perf_counter()
                vectors = model.encode(prompts, batch_size=args.batch_size)
                our_times[d][case["name"]].append(time.perf_counter() - start)
                name = case["name"]
                diffs[d][name] = max(diffs[d].get(name, 0.0), float(np.abs(vectors - reference[key]).max()))
                cosines[d][name] = min(cosines[d].get(name, 1.0), min_cosine(vectors, reference[key]))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    rows = []
    for case in cases:
        ref_tps = len(prompts) / statistics.median(ref_times[case["name"]])
        for d in dtypes:
            times = our_times[d][case["name"]]
            our_tps = len(prompts) / statistics.median(times)
            rows.append({"case": case["name"], "inbedder_dtype": d, "reference_texts_per_s": ref_tps,
                         "inbedder_texts_per_s": our_tps, "speedup": our_tps / ref_tps,
                         "max_abs_diff": diffs[d][case["name"]], "min_cosine": cosines[d][case["name"]],
                         "reference_best_s": min(ref_times[case["name"]]), "inbedder_best_s": min(times),
                         "reference_seconds": ref_times[case["name"]], "inbedder_seconds": times})
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{len(prompts)} prompts ({args.data.name}), batch {args.batch_size}, reference float32, inbedder "
          f"{', '.join(dtypes)}, {args.threads} threads, {cpu_model()}, load average {load:.1f}, "
          f"{dt.date.today().isoformat()}")
    print(f"{'case':<28}{'dtype':>10}{'reference/s':>12}{'inbedder/s':>12}{'speedup':>9}{'max abs diff':>14}"
          f"{'min cos':>10}")
    for r in rows:
        print(f"{r['case']:<28}{r['inbedder_dtype']:>10}{r['reference_texts_per_s']:>12.2f}"
              f"{r['inbedder_texts_per_s']:>12.2f}{r['speedup']:>8.2f}x{r['max_abs_diff']:>14.2e}{r['min_cosine']:>10.5f}")
    print("command: " + " ".join([sys.executable.split("/")[-1], *sys.argv]))
    if args.json:
        args.json.write_text(json.dumps({"date": dt.date.today().isoformat(), "cpu": cpu_model(),
                                         "threads": args.threads, "torch": torch.__version__, "load_average": load,
                                         "n": len(prompts), "batch_size": args.batch_size, "rows": rows,
                                         "command": " ".join(sys.argv)}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
