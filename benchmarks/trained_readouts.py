"""Which readout makes the answer-trained model (``make train-default``) instruction-aware, and by how much.

For the base model and the trained one, every readout is scored with the instruction-awareness matrix
(``inbedder.evaluation``: k-means V-measure of every label axis under every axis' instruction; summary = mean
diagonal − mean off-diagonal):

* ``fst_gen`` / ``avg_ppt`` — hidden states of the last layer (one forward pass);
* ``avg_gen`` — the last prompt state and the generated answer's states (greedy, ``--new-tokens``);
* ``re_encode`` — the generated answer, embedded by MiniLM (the reference's ``re_encode`` output);
* ``re_encode_beams`` (only when asked for with ``--readouts``) — the ``--beams`` best answers of a beam search,
  embedded by MiniLM and averaged with the weights of their probabilities (the model's doubt kept in the vector).
  ``encode`` answers greedily or by sampling only, so the beams come from the transformers model of
  :class:`inbedder.compat.CausalLMEncoder` (its public ``model`` and ``tokenizer``; a second copy of the model in
  memory) on the model's own prompts (``common.prompts``).

``--layers all`` (or a list such as ``10,20,30``) also scores the hidden-state readouts (``fst_gen``, ``avg_ppt``,
``avg_gen``) at every given layer, named ``fst_gen@20``; each is one public ``encode(..., output_value=, layer=)``
call (``common.readouts``: the library has no call yet that reads every layer from one ``generate()``).

The readout is *chosen* on the selection set — CLINC150 test queries, domain × intent (5 domains, 4 intents each),
an axis pair seen in training on texts that were not — and then *reported* on the held-out sets, whose datasets
and question types never appear in training: SemEval-14 restaurants (aspect category × polarity) and MLMA hate
speech (target × directness). One greedy generation per (model, texts, instruction) serves both ``avg_gen``
and ``re_encode``; the answers are saved in the report.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/trained_readouts.py --json trained_readouts.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import DATA, SELECTION_SET, answer_options, prompts, readouts

from inbedder import load
from inbedder.evaluation import EvalSettings, load_awareness
from inbedder.evaluation.common import spearman
from inbedder.training.recipe import BASE_MODEL, HELDOUT, SELECTION, default_output, heldout_tables, selection_table

READOUTS = ("fst_gen", "avg_ppt", "avg_gen", "re_encode")
EXTRA_READOUTS = ("re_encode_beams",)
HIDDEN = ("fst_gen", "avg_ppt", "avg_gen")


class Readout:
    """``encode(texts, instruction)`` of one readout of one model; generations are shared through ``memo``."""

    def __init__(self, model: Any, readout: str, reencoder: Any, new_tokens: int, memo: dict, beams: int = 4) -> None:
        self.model, self.readout, self.reencoder = model, readout, reencoder
        self.new_tokens, self.memo, self.beams = new_tokens, memo, beams
        self.searcher: Any = None  # the reference-compatible encoder whose transformers model searches beams

    def generate(self, texts: list[str], instruction: str | None, batch_size: int) -> tuple[np.ndarray, list[str]]:
        key = (tuple(texts), instruction)
        if key not in self.memo:
            self.memo[key] = self.model.encode(texts, instruction, output_value="avg_gen", batch_size=batch_size,
                                               max_new_tokens=self.new_tokens, return_generations=True,
                                               show_progress_bar=False)
        return self.memo[key]

    def beam_answers(self, texts: list[str], instruction: str | None) -> np.ndarray:
        """Probability-weighted mean of the re-encoded answers of a beam search (``self.beams`` answers a text)."""
        if self.searcher is None:
            from inbedder.compat import CausalLMEncoder

            self.searcher = CausalLMEncoder(self.model.source)
        tokenizer, k, out = self.searcher.tokenizer, self.beams, []
        for start in range(0, len(texts), 16):
            chunk = texts[start:start + 16]
            built, chat = prompts(self.model, [(instruction, t) for t in chunk])
            batch = tokenizer(built, padding=True, add_special_tokens=not chat, return_tensors="pt")
            ids = batch["input_ids"]
            with torch.inference_mode():
                found = self.searcher.model.generate(
                    input_ids=ids, attention_mask=batch["attention_mask"], max_new_tokens=self.new_tokens,
                    num_beams=k, num_return_sequences=k, length_penalty=0.0, do_sample=False, early_stopping=True,
                    output_scores=True, return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id)
            weights = torch.softmax(found.sequences_scores.view(len(chunk), k).float(), dim=1).numpy()
            answers = [a.strip() or "." for a in tokenizer.batch_decode(found.sequences[:, ids.shape[1]:],
                                                                         skip_special_tokens=True)]
            vectors = self.reencoder.encode(answers, batch_size=64, show_progress_bar=False).reshape(len(chunk), k, -1)
            out.append((weights[..., None] * vectors).sum(1))
        return np.concatenate(out)

    def encode(self, texts: list[str], instruction: str | None = None, batch_size: int = 16, **_: Any) -> np.ndarray:
        if self.readout == "re_encode_beams":
            return self.beam_answers(texts, instruction)
        if self.readout in ("fst_gen", "avg_ppt"):
            return self.model.encode(texts, instruction, output_value=self.readout, batch_size=batch_size,
                                     show_progress_bar=False)
        vectors, answers = self.generate(texts, instruction, batch_size)
        if self.readout == "avg_gen":
            return vectors
        return self.reencoder.encode(answers, batch_size=64, show_progress_bar=False)  # as encode(reencoder=) does


class Layer:
    """``encode(texts, instruction)`` of a hidden-state readout at one layer (one public ``encode`` call)."""

    def __init__(self, model: Any, value: str, layer: int, new_tokens: int) -> None:
        self.model, self.value, self.layer, self.new_tokens = model, value, layer, new_tokens

    def encode(self, texts: list[str], instruction: str | None = None, batch_size: int = 16, **_: Any) -> np.ndarray:
        found, _ = readouts(self.model, texts, instruction, new_tokens=self.new_tokens, batch_size=batch_size,
                            values=[self.value], layers=[self.layer], answers=False)  # the model's own prompt
        return found[(self.value, self.layer)]


def plot_layers(results: dict, path: Path) -> None:
    """Summary by layer of each hidden-state readout, one panel a dataset; the other readouts as dashed lines."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    first_model = next(iter(results.values()))
    names = list(next(iter(first_model.values())))  # the datasets
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), sharey=True, layout="constrained")
    for ax, name in zip(axes, names, strict=True):
        colour = iter(f"C{i}" for i in range(100))
        for label, scored in results.items():
            for value in HIDDEN:
                layered = sorted((int(r.split("@")[1]), s[name]["summary"]) for r, s in scored.items()
                                 if r.startswith(f"{value}@"))
                if layered:
                    ax.plot(*zip(*layered, strict=True), marker=".", color=next(colour), label=f"{label} {value}")
            for r, s in scored.items():
                if "@" not in r:
                    ax.axhline(s[name]["summary"], linestyle="--", linewidth=1, color=next(colour),
                               label=f"{label} {r} (last layer)" if r in HIDDEN else f"{label} {r}")
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_title(name)
        ax.set_xlabel("layer")
    axes[0].set_ylabel("summary (mean diagonal − mean off-diagonal)")
    axes[-1].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def proxy(results: dict) -> float:
    """How alike the selection set and the held-out sets rank the readouts: Spearman correlation, over every
    readout measured, of the selection summary and the mean of the held-out summaries."""
    selection = [scores[SELECTION_SET]["summary"] for scores in results.values()]
    heldout = [float(np.mean([m["summary"] for name, m in scores.items() if name != SELECTION_SET]))
               for scores in results.values()]
    return spearman(selection, heldout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=BASE_MODEL)
    parser.add_argument("--trained", default=str(default_output()), help="the trained model's folder")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=400, help="rows per dataset")
    answer_options(parser, new_tokens=8, batch_size=16)
    parser.add_argument("--readouts", default=",".join(READOUTS),
                        help=f"comma-separated, of {', '.join(READOUTS + EXTRA_READOUTS)}")
    parser.add_argument("--beams", type=int, default=4, help="answers a text for re_encode_beams")
    parser.add_argument("--layers", help="'all' or comma-separated layers: also score fst_gen, avg_ppt and avg_gen "
                        "there")
    parser.add_argument("--skip-base", action="store_true", help="score only the trained model")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--png", type=Path, help="with --layers: the summary by layer, drawn (needs matplotlib)")
    args = parser.parse_args()
    wanted = args.readouts.split(",")
    torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="trained-readouts-"))
    datasets = {SELECTION_SET: (selection_table(args.data, work), SELECTION)}
    datasets.update({name: (path, HELDOUT[name])
                     for name, path in heldout_tables(args.data, work, args.seed).items()})
    tasks = {name: load_awareness(path, axes, limit=args.limit, seed=args.seed)
             for name, (path, axes) in datasets.items()}
    settings = EvalSettings(batch_size=args.batch_size, seed=args.seed, progress=False)
    minilm = load("minilm")
    results: dict[str, Any] = {}
    answers: dict[str, Any] = {}
    for label, where in ((("base", args.base),) if not args.skip_base else ()) + (("trained", args.trained),):
        model = load(where, reencoder=False)  # the readouts below say how it embeds
        memo: dict = {}
        layers = (range(model.encoder.num_layers + 1) if args.layers == "all"
                  else [int(x) for x in args.layers.split(",")] if args.layers else [])
        views = [(r, Readout(model, r, minilm, args.new_tokens, memo, args.beams)) for r in wanted]
        views += [(f"{value}@{layer}", Layer(model, value, layer, args.new_tokens))
                  for value in HIDDEN for layer in layers]
        for readout, view in views:
            for name, task in tasks.items():
                start = time.perf_counter()
                run = task.run(view, settings)
                results.setdefault(label, {}).setdefault(readout, {})[name] = {
                    **run.metrics(), "matrix": run.matrix, "seconds": round(time.perf_counter() - start, 1)}
                m = run.metrics()
                print(f"{label:8s} {readout:10s} {name:22s} summary {m['summary']:+.3f}  diag {m['diagonal_mean']:.3f}"
                      f"  off {m['off_diagonal_mean']:.3f}", flush=True)
        names = {tuple(task.texts): name for name, task in tasks.items()}
        answers[label] = {f"{names[texts]} | {instruction}": list(generated[:10])
                          for (texts, instruction), (_, generated) in memo.items()}
    chosen = max(results["trained"], key=lambda r: results["trained"][r][SELECTION_SET]["summary"])
    print(f"chosen on the selection set: {chosen}")
    if len(results["trained"]) > 2:
        print(f"selection set and held-out sets rank the readouts alike: Spearman {proxy(results['trained']):.2f}")
    for name in tasks:
        if name == SELECTION_SET or "base" not in results:
            continue
        t = results["trained"][chosen][name]["summary"]
        b_same = results["base"][chosen][name]["summary"]
        b_best = max(results["base"][r][name]["summary"] for r in results["base"])
        print(f"{name}: trained ({chosen}) {t:+.3f}; base ({chosen}) {b_same:+.3f}; base (best readout) {b_best:+.3f}")
    if args.json:
        report = {"date": dt.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
                  "threads": args.threads, "args": {k: str(v) for k, v in vars(args).items()},
                  "rows": {n: len(t.texts) for n, t in tasks.items()}, "chosen": chosen, "results": results,
                  "answers": answers}
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    if args.png:
        plot_layers(results, args.png)


if __name__ == "__main__":
    main()
