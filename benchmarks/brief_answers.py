"""Zero-shot answer models asked for *brief* answers, the answers re-encoded by MiniLM: awareness per axis.

The prompt asks for a few words (`` Answer in a few words.`` after the instruction), in InBedder's pattern
(``inbedder-brief``) or the model's chat template (``chat-brief``); the greedy answer (``--new-tokens``) is
embedded by MiniLM (``reencoder="minilm"``). Reported per axis of the selection set (CLINC150 domain × intent)
and the held-out sets (SemEval-14 aspect × polarity, MLMA target × directness), as *instructed V / off-axis V*
(``training.recipe.SELECTION`` / ``HELDOUT``), with the first answers, so one can see what the model says.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/brief_answers.py --model qwen2.5-coder-0.5b-instruct \\
        --variant inbedder-brief --n 100 --json brief.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import BRIEF, DATA, brief_pattern

from inbedder import load
from inbedder.evaluation import EvalSettings, load_awareness
from inbedder.training.recipe import HELDOUT, SELECTION, heldout_tables, selection_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--variant", choices=("inbedder-brief", "chat-brief"), default="inbedder-brief")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--brief", default=BRIEF, help="what follows the instruction")
    parser.add_argument("--n", type=int, default=100, help="texts per set")
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="brief-"))
    sets = {"selection": (selection_table(args.data, work), SELECTION)}
    sets.update({name: (path, HELDOUT[name]) for name, path in heldout_tables(args.data, work).items()})
    model = load(args.model, quantize="none", pattern=brief_pattern(args.variant, args.brief),
                 max_new_tokens=args.new_tokens, reencoder="minilm")
    out: dict = {"model": args.model, "variant": args.variant, "brief": args.brief, "n": args.n,
                 "new_tokens": args.new_tokens, "sets": {}}
    for name, (path, axes) in sets.items():
        task = load_awareness(path, axes, limit=args.n, seed=0)
        start = time.perf_counter()
        matrix = task.run(model, EvalSettings(batch_size=16, seed=0, progress=False)).matrix
        per_axis = {b: (matrix[b][b], max(matrix[a][b] for a in axes if a != b)) for b in axes}
        _, answers = model.encode(task.texts[:4], instruction=next(iter(axes.values())), return_generations=True)
        out["sets"][name] = {"per_axis": per_axis, "seconds": time.perf_counter() - start, "answers": answers}
        print(f"{args.model} {args.variant} {name}: "
              + ", ".join(f"{b} {i:.3f}/{o:.3f}" for b, (i, o) in per_axis.items()) + f"; answers {answers}",
              flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
