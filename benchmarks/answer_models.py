"""Which offline causal LM, and which readout of it, the answer family should default to.

One model a run (so that the peak memory is the model's own). The readout is *chosen* on the selection set
(CLINC150 domain × intent, ``common.SELECTION_SET``) among every pattern (InBedder's or the chat
template) × output value × layer, and ``re_encode`` (the greedy answer embedded by MiniLM): the best awareness
summary (mean instructed V − mean off-axis V) wins. The held-out sets (SemEval-14 aspect × polarity, MLMA target
× directness: ``training.recipe.HELDOUT``) are then embedded with the chosen pattern (``--heldout-patterns all``:
every pattern) and every readout of it is reported with its instructed V and off-axis V per axis. Every value at
every layer and the greedy answers of a (texts, instruction, pattern) come from public ``encode`` calls, one per
value and layer (``common.readouts``; the library has no call yet that reads them all from one ``generate()``).
The texts/s reported are those of the greedy ``generate()`` that gives the answers, the model's own speed, not
of the whole sweep.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/answer_models.py --model qwen2.5-coder-0.5b-instruct \
        --json /tmp/qwen05.json
    .venv/bin/python benchmarks/answer_models.py --table /tmp/qwen05.json /tmp/smollm2.json   # markdown
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import PATTERNS, SELECTION_SET, answer_options, readouts

from inbedder import load
from inbedder.evaluation import EvalSettings, load_awareness
from inbedder.training.recipe import HELDOUT, SELECTION, heldout_tables, selection_table


class View:
    """``encode(texts, instruction)`` of one readout, read from the vectors computed once per instruction."""

    def __init__(self, memo: dict, pattern: str, readout: str) -> None:
        self.memo, self.pattern, self.readout = memo, pattern, readout

    def encode(self, texts: list[str], instruction: str | None = None, **_: Any) -> np.ndarray:
        return self.memo[(tuple(texts), instruction, self.pattern)][self.readout]


def embed_all(model: Any, minilm: Any, task: Any, pattern: str, memo: dict, args: argparse.Namespace) -> float:
    """Every readout of ``pattern`` under every instruction of ``task`` into ``memo``; the seconds the greedy
    ``generate()`` that gave the answers took (one call of the sweep: the model's own speed)."""
    seconds = 0.0
    for instruction in task.instructions.values():
        timed: dict[str, float] = {}
        vectors, answers = readouts(model, list(task.texts), instruction, pattern=PATTERNS[pattern],
                                    new_tokens=args.new_tokens, batch_size=args.batch_size, timed=timed)
        seconds += timed["answers"]
        found = {f"{value}@{layer}": x for (value, layer), x in vectors.items()}
        found["re_encode"] = minilm.encode([a.strip() or "." for a in answers], show_progress_bar=False)
        memo[(tuple(task.texts), instruction, pattern)] = found
        memo.setdefault("answers", {})[f"{pattern} | {instruction}"] = answers[:8]
    return seconds


def score(task: Any, memo: dict, pattern: str, seed: int) -> dict[str, dict]:
    """The awareness matrix and metrics of every readout of ``pattern`` on ``task``."""
    settings = EvalSettings(seed=seed, progress=False)
    key = (tuple(task.texts), next(iter(task.instructions.values())), pattern)
    out = {}
    for readout in memo[key]:
        run = task.run(View(memo, pattern, readout), settings)
        out[f"{pattern}/{readout}"] = {**run.metrics(), "matrix": run.matrix}
    return out


def measure(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = load(args.model, device="cpu", quantize="none", reencoder=False)
    load_s = time.perf_counter() - start
    minilm = load("minilm")
    work = Path(tempfile.mkdtemp(prefix="answer-models-"))
    tables = {SELECTION_SET: (selection_table(args.data, work), SELECTION)}
    tables.update({n: (p, HELDOUT[n]) for n, p in heldout_tables(args.data, work, args.seed).items()})
    tasks = {n: load_awareness(p, axes, limit=args.n, seed=args.seed) for n, (p, axes) in tables.items()}
    memo: dict = {}
    results: dict[str, dict] = {}
    seconds, texts = 0.0, 0
    patterns = [p for p in PATTERNS if p in args.patterns.split(",")]
    for pattern in patterns:
        seconds += embed_all(model, minilm, tasks[SELECTION_SET], pattern, memo, args)
        texts += len(tasks[SELECTION_SET].texts) * len(SELECTION)
        results.setdefault(SELECTION_SET, {}).update(score(tasks[SELECTION_SET], memo, pattern, args.seed))
        print(f"{SELECTION_SET} {pattern} done; {texts / seconds:.2f} texts/s", file=sys.stderr, flush=True)
    chosen = max(results[SELECTION_SET], key=lambda r: results[SELECTION_SET][r]["summary"])
    print(f"chosen on the selection set: {chosen}", file=sys.stderr, flush=True)
    for name, task in tasks.items():
        if name == SELECTION_SET:
            continue
        for pattern in patterns if args.heldout_patterns == "all" else [chosen.split("/")[0]]:
            seconds += embed_all(model, minilm, task, pattern, memo, args)
            texts += len(task.texts) * len(task.instructions)
            results.setdefault(name, {}).update(score(task, memo, pattern, args.seed))
            print(f"{name} {pattern} done; {texts / seconds:.2f} texts/s", file=sys.stderr, flush=True)
    return {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {args.threads} threads, "
            f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}", "command": " ".join(sys.argv),
            "model": args.model, "rows": {n: len(t.texts) for n, t in tasks.items()}, "new_tokens": args.new_tokens,
            "load_seconds": round(load_s, 1), "texts_per_second": texts / seconds,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "chosen": chosen,
            "results": results, "answers": memo.get("answers", {})}


def cells(metrics: dict) -> list[str]:
    """Per label axis: the V-measure under its own instruction / under the other instruction."""
    matrix = metrics["matrix"]
    return [f"{matrix[b][b]:.3f} / {max(matrix[a][b] for a in matrix if a != b):.3f}" for b in matrix]


def table(reports: list[dict], extra: list[str]) -> str:
    """Markdown: each model × its chosen readout and the ``extra`` readouts (``@-1``: the model's last layer),
    held-out V per axis, speed, memory."""
    heldout = [n for n in reports[0]["results"] if n != SELECTION_SET]
    head = [f"{n} {a}" for n in heldout for a in reports[0]["results"][n][next(iter(reports[0]["results"][n]))]
            ["matrix"]]
    lines = ["| model | readout | selection summary | " + " | ".join(head) + " | texts/s | peak RSS |",
             "|---|---|---|" + "---|" * len(head) + "---|---|"]
    for report in reports:
        last = max(int(r.split("@")[1]) for r in report["results"][SELECTION_SET] if "@" in r)
        named = [r.replace("@-1", f"@{last}") for r in extra]
        for readout in [report["chosen"]] + [r for r in named if r != report["chosen"]]:
            if not all(readout in report["results"][n] for n in heldout):
                continue
            row = [f"{report['results'][SELECTION_SET][readout]['summary']:+.3f}"]
            row += [c for n in heldout for c in cells(report["results"][n][readout])]
            mark = " (chosen)" if readout == report["chosen"] else ""
            lines.append(f"| `{report['model']}` | `{readout}`{mark} | " + " | ".join(row)
                         + f" | {report['texts_per_second']:.2f} | {report['peak_rss_gib']:.1f} GiB |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    answer_options(parser, texts=60, new_tokens=6, batch_size=8)
    parser.add_argument("--patterns", default=",".join(PATTERNS), help="the patterns to choose among")
    parser.add_argument("--heldout-patterns", choices=("chosen", "all"), default="chosen")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--table", type=Path, nargs="+", help="only print the markdown table of these reports")
    parser.add_argument("--extra", default="inbedder/avg_ppt@-1,inbedder/re_encode",
                        help="readouts also put in the table (@-1: the last layer)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Number of distinct clusters")  # k-means on collapsed layers
    if args.table:
        print(table([json.loads(p.read_text(encoding="utf-8")) for p in args.table], args.extra.split(",")))
        return
    report = measure(args)
    print(f"chosen: {report['chosen']}; {report['texts_per_second']:.2f} texts/s; "
          f"peak {report['peak_rss_gib']:.1f} GiB")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
