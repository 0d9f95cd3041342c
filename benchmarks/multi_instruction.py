"""Several questions of the same texts: ``encode(texts, instructions=[q1..qk])`` against k separate
``encode(texts, instruction=q)`` calls, on the same model, texts and settings, in one run.

The causal answer family puts the input first (``### Input: {text} ### Instruction: {q} ### Response:``), so the
one-pass call computes each text's input once and runs only the question and response part per question
(``inbedder.encoders.causal.questions``). Both sides use the model's default readout. Timed rounds alternate
(separate, shared, shared, separate, ...) so that machine noise falls on both alike; the headline is the ratio of
median wall times. Fidelity: the largest absolute difference between the two sides' vectors (float32).

Two sets: short texts (STS-B test sentences) and long ones (FairytaleQA passages, ~900 characters).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/multi_instruction.py --n 64 --passages 16 --rounds 3 \\
        --json multi_instruction.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import STS_DIR, command, cpu_model, load_average, prompts, read_texts

from inbedder import load
from inbedder.apps.benchmark import alternate
from inbedder.encoders.causal.pooling import MIN_SHARED_PREFIX, left_pad, shared_prefix

QUESTIONS = ["What is the topic?", "What is the sentiment?", "Who is mentioned?", "Where does it happen?"]
FAIRYTALES = STS_DIR.parent / "qa" / "fairytaleqa" / "fairytaleqa.jsonl"


def passages(path: Path, n: int) -> list[str]:
    seen: dict[str, None] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            seen.setdefault(json.loads(line)["input"], None)
            if len(seen) >= n:
                break
    return list(seen)


def prompt_ids(model: Any, text: str, questions: list[str]) -> list[list[int]]:
    """The token ids of ``text``'s prompt under each question, as the model reads them (``common.prompts``: no public
    call returns a call's prompt tokens yet). The prompt limit is the model's ``max_length`` (the room the engine
    leaves for answer tokens matters only for texts of thousands of tokens)."""
    built, chat = prompts(model, [(q, text) for q in questions])
    return [list(ids) for ids in model.encoder.tokenizer(built, add_special_tokens=not chat)["input_ids"]]


def token_work(model: Any, texts: list[str], questions: list[str], batch_size: int) -> dict[str, Any]:
    """Prompt tokens each side runs through the model, and their ratio: the most that computing the shared
    input once can save when the work is proportional to tokens (linear layers dominate at these lengths).

    Separate calls: every prompt, less the tokens that begin every prompt of its batch (the engine's one-pass
    computes those once a batch). One pass: each text's shared start once, then each question's own tokens."""

    def start(prompts: list[list[int]]) -> int:  # the encoders' own rule for the tokens that begin every row
        return shared_prefix(*left_pad(prompts, 0))

    rows = [prompt_ids(model, text, questions) for text in texts]
    separate = 0
    for j in range(len(questions)):
        prompts = sorted((r[j] for r in rows), key=len, reverse=True)
        for b in range(0, len(prompts), batch_size):
            batch = prompts[b:b + batch_size]
            once = start(batch) if len(batch) > 1 else 0
            once = once if once >= MIN_SHARED_PREFIX else 0
            separate += sum(map(len, batch)) - (len(batch) - 1) * once
    shared = sum(sum(map(len, prompts)) - (len(prompts) - 1) * start(prompts) for prompts in rows)
    return {"separate_tokens": separate, "shared_tokens": shared, "token_ratio": separate / shared}


def compare(model: Any, texts: list[str], questions: list[str], rounds: int, batch_size: int) -> dict[str, Any]:
    def separate() -> np.ndarray:
        return np.stack([model.encode(texts, instruction=q, batch_size=batch_size) for q in questions])

    def shared() -> np.ndarray:
        return np.asarray(model.encode(texts, instructions=questions, batch_size=batch_size))

    shared()  # warm-up (allocator, kernels)
    times, _, outputs = alternate({"separate": separate, "shared": shared}, rounds)
    med = {name: statistics.median(t) for name, t in times.items()}
    rows = len(texts) * len(questions)
    return {"texts": len(texts), "questions": len(questions),
            "mean_chars": float(np.mean([len(t) for t in texts])),
            "seconds": times, "rows_per_s": {name: rows / m for name, m in med.items()},
            "speedup": med["separate"] / med["shared"], **token_work(model, texts, questions, batch_size),
            "max_abs_diff": float(np.abs(outputs["separate"] - outputs["shared"]).max()),
            "max_abs_value": float(np.abs(outputs["separate"]).max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=64, help="Short texts (STS-B test sentences).")
    parser.add_argument("--passages", type=int, default=16, help="FairytaleQA passages (0: skip).")
    parser.add_argument("--data", type=Path, default=STS_DIR, help="STS-B folder or file.")
    parser.add_argument("--fairytaleqa", type=Path, default=FAIRYTALES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, help="Write the result here.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load(args.model, device="cpu")
    sets = {"short (STS-B)": list(dict.fromkeys(read_texts(args.data)))[:args.n]}
    if args.passages:
        sets["passages (FairytaleQA)"] = passages(args.fairytaleqa, args.passages)
    result: dict[str, Any] = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                              "command": command(), "cpu": cpu_model(), "torch_threads": torch.get_num_threads(),
                              "model": args.model, "load_before": load_average(), "sets": {}}
    for name, texts in sets.items():
        result["sets"][name] = found = compare(model, texts, QUESTIONS, args.rounds, args.batch_size)
        print(f"{name}: {found['texts']} texts × {found['questions']} questions, mean {found['mean_chars']:.0f} "
              f"chars: separate {found['rows_per_s']['separate']:.1f} rows/s, shared "
              f"{found['rows_per_s']['shared']:.1f} rows/s, speedup {found['speedup']:.2f}x "
              f"(token ratio {found['token_ratio']:.2f}x: {found['separate_tokens']} / {found['shared_tokens']}), "
              f"max abs diff {found['max_abs_diff']:.1e} (largest |value| {found['max_abs_value']:.1f})", flush=True)
    result["load_after"] = load_average()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
