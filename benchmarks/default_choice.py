"""Which answer model and readout `inbedder.DEFAULT_ANSWER_MODEL` should be: a few candidates, compared with
intervals.

Each candidate is an alias with ``load()`` options, embedded through the public ``encode`` (what a user gets).
The sets where a readout may be chosen (``SELECTION_SETS``): CLINC150 domain × intent and the demo's showcase
corpus, topic × sentiment (written for the demo, so not held out). The held-out sets: SemEval-14 aspect ×
polarity and MLMA target × directness (``training.recipe.HELDOUT``), and two sets written for this benchmark in
``data/``, topic × sentiment and animal × emotion. Per label axis: the V-measure under its own question
(*instructed*) and under the other question (*off-axis*), each the mean over ``--seeds`` k-means seeds; and the
paired bootstrap interval (``--boot`` resamples of the rows, clusters kept) of the instructed V's difference
against the first candidate. A candidate *beats* the first on an axis when that 95 % interval lies above 0.
What each held-out axis can show at all: the same interval for a perfect clustering (the labels themselves; when
it reaches 0, no model can be shown ahead of the first there), and the V-measure of a linear probe's
cross-validated predictions from each candidate's instructed vectors (the labels a supervised reader recovers:
near 0, the axis is hardly in the text for any of them).

``name+next`` reads the candidate's next-token distribution at the answer position instead of its hidden states
(one public ``readouts`` call, ``next_token_top_k``): the top :data:`NEXT_K` log-probabilities, floored at
:data:`NEXT_FLOOR` and shifted so that the floor is 0, signed-hashed into :data:`NEXT_DIM` dimensions (a fixed size
whatever the vocabulary; two tokens of one row share a dimension rarely).

Vectors are saved under ``--work`` per candidate, set and question, so an interrupted run goes on where it stopped
and ``--table`` only re-scores. ``--footprint N`` then times ``encode`` on N selection texts and reads the peak
memory, each candidate in a process of its own.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/default_choice.py --n 200 --work /tmp/choice \\
        --candidates smollm2 qwen05-fst qwen05-chat-word --json choice.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import DATA, brief_pattern, readouts
from tqdm import tqdm

from inbedder import load
from inbedder.data import showcase
from inbedder.evaluation import AwarenessTask, load_awareness
from inbedder.evaluation.awareness import awareness_summary
from inbedder.evaluation.clustering import kmeans, v_measure
from inbedder.io.table import read_table
from inbedder.io.write import write_rows
from inbedder.prompts import INBEDDER_PATTERN
from inbedder.training.recipe import HELDOUT, SELECTION, heldout_tables, selection_table

ONE_WORD = " Answer with one word."
FEW_WORDS = " Answer in a few words."
QWEN05 = "qwen2.5-coder-0.5b-instruct"
# name: (alias, load() options, brief after the instruction with its pattern variant, or None)
CANDIDATES: dict[str, tuple[str, dict[str, Any], tuple[str, str] | None]] = {
    "smollm2": ("smollm2-135m-instruct", {}, None),  # the alias' defaults (avg_ppt, last layer)
    "qwen05-fst": (QWEN05, {"pattern": INBEDDER_PATTERN, "output_value": "fst_gen"}, None),
    "qwen05-avg_ppt": (QWEN05, {"pattern": INBEDDER_PATTERN, "output_value": "avg_ppt"}, None),
    "qwen05-fst-word": (QWEN05, {"output_value": "fst_gen"}, ("inbedder-brief", ONE_WORD)),
    "qwen05-chat-fst-word": (QWEN05, {}, None),  # the alias' defaults: registry.ONE_WORD_CHAT read at fst_gen
    "qwen05-chat-fst-word-int8": (QWEN05, {"quantize": "int8"}, None),  # the same with int8 linear layers
    "qwen05-chat-word": (QWEN05, {"reencoder": "minilm", "max_new_tokens": 6}, ("chat-brief", ONE_WORD)),
    "qwen05-chat-few": (QWEN05, {"reencoder": "minilm", "max_new_tokens": 8}, ("chat-brief", FEW_WORDS)),
    "qwen05-inbedder-few": (QWEN05, {"reencoder": "minilm", "max_new_tokens": 8}, ("inbedder-brief", FEW_WORDS)),
    "qwen05-inbedder-word": (QWEN05, {"reencoder": "minilm", "max_new_tokens": 6}, ("inbedder-brief", ONE_WORD)),
    "qwen15-fst": ("qwen2.5-coder-1.5b-instruct", {"pattern": INBEDDER_PATTERN, "output_value": "fst_gen"}, None),
    "qwen15-chat-fst-word": ("qwen2.5-coder-1.5b-instruct", {}, None),  # the same defaults
    "gemma-fst": ("gemma-3-270m", {"pattern": INBEDDER_PATTERN, "output_value": "fst_gen"}, None),
}
SHOWCASE = {"topic": "What is the topic of this text?", "sentiment": "Is this text positive or negative?"}
# Written for this benchmark: topic (health, technology, money, weather) × sentiment, 64 texts; animal (dog, cat,
# bird, fish) × emotion (joy, anger, fear), 48 texts, written after the default was chosen and used for no choice.
HANDWRITTEN = {
    "handwritten": ("topic_sentiment_heldout.csv",
                    {"topic": "What is this text about?", "sentiment": "Is the writer pleased or unhappy?"}),
    "animals": ("animal_emotion_heldout.csv",
                {"animal": "Which animal is this about?", "emotion": "What emotion does the writer feel?"}),
}
SELECTION_SETS = ["selection", "showcase"]  # where a readout may be chosen: not held out
# Two more held-out sets from public data no training, distillation or selection step reads: SemEval-14 *train*
# sentences (single category) under the SemEval questions, and MLMA English tweets outside the ``mlma`` set, the
# group attacked × the annotators' single hostility label, the three hostility labels balanced.
MLMA_GROUPS = ("special_needs", "women", "individual", "left_wing_people", "gay", "immigrants", "refugees")
MLMA_HOSTILITY = ("offensive", "normal", "hateful")
MORE_HELDOUT = {
    "semeval14_train": HELDOUT["semeval14"],
    "mlma_group": {"group": "Which group of people is this tweet about?", "hostility": "How hostile is this tweet?"},
}


def tasks(data: Path, work: Path, n: int, n_selection: int) -> dict[str, Any]:
    """The sets: ``{name: AwarenessTask}``, the same rows for every candidate."""
    out = {"selection": load_awareness(selection_table(data, work), SELECTION, limit=n_selection, seed=0)}
    out.update({name: load_awareness(path, HELDOUT[name], limit=n, seed=0)
                for name, path in heldout_tables(data, work).items()})
    out.update({name: load_awareness(Path(__file__).parent / "data" / file, axes)
                for name, (file, axes) in HANDWRITTEN.items()})
    out.update({name: load_awareness(path, MORE_HELDOUT[name], limit=n, seed=0)
                for name, path in more_heldout_tables(data, work).items()})
    rows = showcase()
    out["showcase"] = AwarenessTask([r["text"] for r in rows], {a: [r[a] for r in rows] for a in SHOWCASE}, SHOWCASE)
    return out


def more_heldout_tables(data: Path, work: Path, seed: int = 0) -> dict[str, Path]:
    """:data:`MORE_HELDOUT`'s files: SemEval-14 train as it is; the MLMA rows (written to ``work``)."""
    out = {"semeval14_train": data / "semeval14_absa" / "restaurants_train_single_category.csv"}
    taken = set(read_table(heldout_tables(data, work)["mlma"]).strings("text"))
    rows = [r for r in read_table(data / "mlma_hate_speech" / "en_dataset.csv").rows
            if r["group"] in MLMA_GROUPS and r["sentiment"] in MLMA_HOSTILITY and r["tweet"] not in taken]
    rng = np.random.default_rng(seed)
    per_class = min(sum(r["sentiment"] == h for r in rows) for h in MLMA_HOSTILITY)
    keep = []
    for hostility in MLMA_HOSTILITY:
        group = [r for r in rows if r["sentiment"] == hostility]
        keep += [{"text": group[i]["tweet"], "group": group[i]["group"], "hostility": hostility}
                 for i in sorted(rng.permutation(len(group))[:per_class])]
    out["mlma_group"] = work / "mlma_group_heldout.csv"
    write_rows(keep, out["mlma_group"], "csv")
    return out


NEXT_K, NEXT_FLOOR, NEXT_DIM = 50, 1e-4, 1024  # the ``+next`` readout


def next_token_vectors(model: Any, texts: list[str], question: str, batch_size: int) -> np.ndarray:
    """The ``+next`` readout: ``(n, NEXT_DIM)``."""
    found = model.readouts(texts, question, values=[], layers=[], next_token_top_k=NEXT_K, batch_size=batch_size,
                           show_progress_bar=True)
    ids, weights = found.top_k_ids.astype(np.uint64), np.maximum(found.top_k_logprobs - np.log(NEXT_FLOOR), 0.0)
    hashed = (ids * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)  # Fibonacci hashing of the token ids
    dims = (hashed % np.uint64(NEXT_DIM)).astype(np.int64)
    signs = np.where((hashed >> np.uint64(20)) & np.uint64(1), 1.0, -1.0)
    out = np.zeros((len(texts), NEXT_DIM))
    np.add.at(out, (np.arange(len(texts))[:, None], dims), weights * signs)
    return out.astype(np.float32)


def embed(name: str, sets: dict[str, Any], work: Path, batch_size: int) -> dict[str, float]:
    """Every set's texts under every question of it into ``work/name/``; seconds per set (0 when all were saved)."""
    next_token = name.endswith("+next")
    alias, options, brief = candidate(name.removesuffix("+next"))
    folder = work / name.replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    model = None
    seconds: dict[str, float] = {}
    for set_name, task in sets.items():
        start = time.perf_counter()
        for axis, question in task.instructions.items():
            out = folder / f"{set_name}.{axis}.{digest(task.texts)}.npy"
            if out.exists():
                continue
            model = model or loaded(alias, options, brief)
            vectors = next_token_vectors(model, list(task.texts), question, batch_size) if next_token else \
                model.encode(list(task.texts), instruction=question, batch_size=batch_size, show_progress_bar=True)
            np.save(out, np.asarray(vectors, dtype=np.float32))
        seconds[set_name] = time.perf_counter() - start
    return seconds


def loaded(alias: str, options: dict[str, Any], brief: tuple[str, str] | None) -> Any:
    """The candidate's model, in float32 unless the candidate names a quantization; a brief goes after the
    instruction of its pattern."""
    return load(alias, **{"quantize": "none", **options}, **({"pattern": brief_pattern(*brief)} if brief else {}))


def candidate(name: str) -> tuple[str, dict[str, Any], tuple[str, str] | None]:
    """A named candidate; ``name@L`` reads the same output value at layer L; a model directory (a trained model)
    with its own defaults."""
    if name not in CANDIDATES and Path(name).is_dir():
        return name, {}, None
    base, _, layer = name.partition("@")
    alias, options, brief = CANDIDATES[base]
    if layer:
        options = {**options, "output_value": f"{options.get('output_value', 'fst_gen')}_layer_{int(layer)}"}
    return alias, options, brief


def layer_sweep(name: str, chosen_on: list[Any], seeds: int, batch_size: int) -> list[tuple[str, float]]:
    """Every hidden-state value (``fst_gen``, ``avg_ppt``, ``avg_gen`` of 3 answer tokens) at every layer of the
    candidate's model: ``[(value@layer, mean awareness summary over the tasks chosen_on)]``, best first. Each
    readout is one public ``encode`` call (``common.readouts``)."""
    model = loaded(*candidate(name))
    summaries: dict[str, list[float]] = {}
    for task in chosen_on:
        vectors: dict[str, dict[str, np.ndarray]] = {}
        for axis, question in task.instructions.items():
            found, _ = readouts(model, list(task.texts), question, new_tokens=3, batch_size=batch_size,
                                values=["fst_gen", "avg_gen", "avg_ppt"], answers=False)  # the model's own prompt
            for (value, layer), x in found.items():
                vectors.setdefault(f"{value}@{layer}", {})[axis] = x
        for readout, by_axis in tqdm(vectors.items(), desc="scoring"):
            matrix = mean_matrix(clustered(by_axis, task, seeds), task)
            summaries.setdefault(readout, []).append(awareness_summary(matrix))
    return sorted(((r, float(np.mean(v))) for r, v in summaries.items()), key=lambda r: -r[1])


def footprint(name: str, task: Any, rounds: int = 2) -> dict[str, float]:
    """texts/s of ``encode`` (the best of ``rounds`` over the task's texts under its first question, after a
    warm-up) and the process' peak resident memory; run in a process of its own per candidate."""
    model = loaded(*candidate(name))
    texts, question = list(task.texts), next(iter(task.instructions.values()))
    model.encode(texts[:16], instruction=question, batch_size=16)
    best = min(timed(model, texts, question) for _ in range(rounds))
    return {"texts_per_second": len(texts) / best, "peak_rss_gib": peak_rss_gib(), "threads": torch.get_num_threads()}


def peak_rss_gib() -> float:
    """This process' peak resident memory (VmHWM: unlike ``ru_maxrss``, not inherited from the parent at fork)."""
    with open("/proc/self/status", encoding="ascii") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kib / 2**20


def timed(model: Any, texts: list[str], question: str) -> float:
    start = time.perf_counter()
    model.encode(texts, instruction=question, batch_size=16)
    return time.perf_counter() - start


def digest(texts: Any) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]


def clustered(by_axis: dict[str, np.ndarray], task: Any, seeds: int) -> dict[tuple[str, str], list]:
    """``{(question axis, label axis): [cluster ids per seed]}`` of the vectors under each axis' question."""
    return {(a, b): [kmeans(vectors, len(set(task.labels[b])), seed) for seed in range(seeds)]
            for a, vectors in by_axis.items() for b in task.instructions}


def mean_matrix(found: dict[tuple[str, str], list], task: Any) -> dict[str, dict[str, float]]:
    """The awareness matrix, ``[question axis][label axis]`` = V-measure averaged over the seeds' clusterings."""
    return {a: {b: float(np.mean([v_measure(np.asarray(task.labels[b]), c) for c in found[(a, b)]]))
                for b in task.instructions} for a in task.instructions}


def saved(name: str, set_name: str, task: Any, work: Path) -> dict[str, np.ndarray]:
    """The candidate's vectors of the set under each axis' question, as :func:`embed` saved them."""
    return {a: np.load(work / name.replace("/", "_") / f"{set_name}.{a}.{digest(task.texts)}.npy")
            for a in task.instructions}


def score(names: list[str], sets: dict[str, Any], work: Path, seeds: int, boot: int) -> dict[str, Any]:
    """Per candidate, set and label axis: instructed and off-axis V (means over seeds), and the bootstrap interval
    of the instructed V's difference against ``names[0]``; for ``names[0]``, that interval of a perfect clustering
    (the labels themselves)."""
    rng = np.random.default_rng(0)
    report: dict[str, Any] = {}
    for set_name, task in sets.items():
        n = len(task.texts)
        draws = rng.integers(0, n, size=(boot, n))
        found = {name: clustered(saved(name, set_name, task, work), task, seeds) for name in names}
        for name in names:
            matrix = mean_matrix(found[name], task)
            axes: dict[str, Any] = {}
            for b in task.instructions:
                labels = np.asarray(task.labels[b])
                cell = {"instructed": matrix[b][b], "off_axis": max(matrix[a][b] for a in matrix if a != b)}
                first = found[names[0]][(b, b)]
                if name == names[0]:
                    cell["perfect_interval"] = interval([np.mean([1.0 - v_measure(labels[d], c[d]) for c in first])
                                                         for d in draws])
                else:
                    cell["difference"] = cell["instructed"] - report[names[0]][set_name]["axes"][b]["instructed"]
                    cell["interval"] = interval([np.mean([v_measure(labels[d], c[d]) - v_measure(labels[d], f[d])
                                                          for c, f in zip(found[name][(b, b)], first, strict=True)])
                                                 for d in draws])
                axes[b] = cell
            report.setdefault(name, {})[set_name] = {"axes": axes, "matrix": matrix,
                                                     "summary": awareness_summary(matrix)}
    return report


def interval(values: list[float]) -> list[float]:
    """The 95 % percentile interval (V-measures equal to float precision differ by 0)."""
    return [0.0 if abs(q) < 1e-9 else q for q in map(float, np.percentile(values, [2.5, 97.5]))]


def probes(names: list[str], sets: dict[str, Any], work: Path) -> dict[str, Any]:
    """Per held-out set and label axis: the best cross-validated linear probe V over the candidates' instructed
    vectors, and its candidate."""
    out: dict[str, Any] = {}
    for set_name, task in sets.items():
        if set_name in SELECTION_SETS:
            continue
        for b in task.instructions:
            labels = np.asarray(task.labels[b])
            found = {name: probe_v(saved(name, set_name, task, work)[b], labels) for name in names}
            best = max(found, key=lambda name: found[name])
            out.setdefault(set_name, {})[b] = {"probe": found[best], "probe_candidate": best}
    return out


def probe_v(vectors: np.ndarray, labels: np.ndarray, folds: int = 5) -> float:
    """V-measure of a standardised, strongly regularised logistic regression's predictions, each row predicted by
    the model of the (stratified) folds that leave it out."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = min(folds, int(np.unique(labels, return_counts=True)[1].min()))
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=3000))
    return v_measure(labels, cross_val_predict(probe, vectors, labels,
                                               cv=StratifiedKFold(folds, shuffle=True, random_state=0)))


def table(report: dict[str, Any], sets: dict[str, Any], footprints: dict[str, Any],
          probed: dict[str, Any] | None = None) -> str:
    """Markdown. First: a row per candidate with the summaries of the sets where a readout may be chosen, the
    instructed / off-axis V of every held-out axis, texts/s and peak memory. Then: against the first row, the
    difference of each axis' instructed V with its 95 % interval (▲ above 0, ▼ below, = neither), and, given
    ``probed`` (:func:`probes`), what each axis can show: a perfect clustering's interval and the best linear probe's
    V."""
    held = [(s, b) for s in sets if s not in SELECTION_SETS for b in sets[s].instructions]
    lines = ["| candidate | " + " | ".join(f"{s} summary" for s in SELECTION_SETS) + " | "
             + " | ".join(f"{s} {b}" for s, b in held) + " | texts/s | peak RSS |",
             "|---|" + "---:|" * len(SELECTION_SETS) + "---|" * len(held) + "---:|---:|"]
    for name, cells in report.items():
        speed = footprints.get(name)
        lines.append(f"| `{name}` | " + " | ".join(f"{cells[s]['summary']:+.3f}" for s in SELECTION_SETS) + " | "
                     + " | ".join(f"{cells[s]['axes'][b]['instructed']:.3f} / {cells[s]['axes'][b]['off_axis']:.3f}"
                                  for s, b in held)
                     + (f" | {speed['texts_per_second']:.1f} | {speed['peak_rss_gib']:.1f} GiB |" if speed
                        else " | | |"))
    first = next(iter(report))
    lines += ["", f"| against `{first}` | " + " | ".join(f"{s} {b}" for s, b in held) + " |",
              "|---|" + "---|" * len(held)]
    for name, cells in list(report.items())[1:]:
        row = []
        for s, b in held:
            c = cells[s]["axes"][b]
            lo, hi = c["interval"]
            row.append(f"{mark(lo, hi)} {c['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        lines.append(f"| `{name}` | " + " | ".join(row) + " |")
    if probed:
        cells = report[first]
        lines.append("| *can show:* perfect clustering | " + " | ".join(
            "{} {:+.3f} [{:+.3f}, {:+.3f}]".format(mark(*cells[s]["axes"][b]["perfect_interval"]),
                                                   1 - cells[s]["axes"][b]["instructed"],
                                                   *cells[s]["axes"][b]["perfect_interval"]) for s, b in held) + " |")
        lines.append("| *can show:* best linear probe V | " + " | ".join(
            f"{probed[s][b]['probe']:.3f} (`{probed[s][b]['probe_candidate']}`)" for s, b in held) + " |")
    return "\n".join(lines)


def lead_kept(report: dict[str, Any], sets: dict[str, Any], teacher: str) -> str:
    """Markdown: per held-out axis where ``teacher`` is ahead of the first candidate (its interval above 0), the
    share of that lead each other candidate keeps, ``(candidate - first) / (teacher - first)`` of instructed V."""
    held = [(s, b) for s in sets if s not in SELECTION_SETS for b in sets[s].instructions
            if report[teacher][s]["axes"][b]["interval"][0] > 0]
    if not held:
        return f"`{teacher}` is ahead of `{next(iter(report))}` on no held-out axis."
    lines = [f"| lead of `{teacher}` kept | " + " | ".join(f"{s} {b}" for s, b in held) + " |",
             "|---|" + "---:|" * len(held),
             "| teacher's lead | " + " | ".join(f"{report[teacher][s]['axes'][b]['difference']:+.3f}"
                                                for s, b in held) + " |"]
    for name, cells in list(report.items())[1:]:
        if name != teacher:
            lines.append(f"| `{name}` | " + " | ".join(
                f"{cells[s]['axes'][b]['difference'] / report[teacher][s]['axes'][b]['difference']:.0%}"
                for s, b in held) + " |")
    return "\n".join(lines)


def geometry_kept(names: list[str], sets: dict[str, Any], work: Path, teacher: str) -> dict[str, dict[str, float]]:
    """Per candidate and held-out axis: the Pearson correlation r of its cosine similarities between the set's texts
    (under the axis' question) with ``teacher``'s, i.e. how much of the teacher's geometry it shares, whatever the
    two models' dimensions (``1 - similarity_loss / 2``: the distillation loss on the same geometry)."""
    from inbedder.training.distill import similarity_loss

    out: dict[str, dict[str, float]] = {}
    for set_name, task in sets.items():
        if set_name in SELECTION_SETS:
            continue
        theirs = {a: torch.from_numpy(v) for a, v in saved(teacher, set_name, task, work).items()}
        for name in names:
            for a, v in saved(name, set_name, task, work).items():
                loss = similarity_loss(torch.from_numpy(v), theirs[a])
                out.setdefault(name, {})[f"{set_name} {a}"] = 1.0 - float(loss) / 2
    return out


def geometry_table(geometry: dict[str, dict[str, float]], teacher: str) -> str:
    """Markdown of :func:`geometry_kept`."""
    axes = list(next(iter(geometry.values())))
    lines = [f"| r with `{teacher}`'s similarities | " + " | ".join(axes) + " |", "|---|" + "---:|" * len(axes)]
    lines += [f"| `{name}` | " + " | ".join(f"{cells[a]:.3f}" for a in axes) + " |"
              for name, cells in geometry.items() if name != teacher]
    return "\n".join(lines)


def mark(lo: float, hi: float) -> str:
    """▲ when a 95 % interval lies above 0, ▼ below, = otherwise."""
    return "▲" if lo > 0 else "▼" if hi < 0 else "="


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", nargs="+", default=["smollm2", "qwen05-fst", "qwen05-chat-word"],
                        help=f"the first is the one the others are compared with; of {', '.join(CANDIDATES)}, "
                             "name@L for another layer, a model directory, and any of these +next for the next-token "
                             "distribution")
    parser.add_argument("--layers", metavar="CANDIDATE",
                        help="only rank every hidden-state readout at every layer of this candidate's model on the "
                             "selection set")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, required=True, help="where vectors are kept between runs")
    parser.add_argument("--n", type=int, default=200, help="rows of each held-out set")
    parser.add_argument("--n-selection", type=int, default=300, help="rows of the selection set")
    parser.add_argument("--seeds", type=int, default=5, help="k-means seeds averaged")
    parser.add_argument("--boot", type=int, default=500, help="bootstrap resamples")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--table", action="store_true",
                        help="only score the vectors already saved (with the footprints of an existing --json)")
    parser.add_argument("--footprint", type=int, metavar="N",
                        help="also measure texts/s and peak memory of each candidate on N selection texts, each in a "
                             "process of its own")
    parser.add_argument("--footprint-of", help=argparse.SUPPRESS)  # the candidate of a footprint process
    parser.add_argument("--teacher", metavar="CANDIDATE",
                        help="one of --candidates: also show the share of its held-out lead each other one keeps, "
                             "and how closely each one's cosine similarities follow its own")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Number of distinct clusters")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.footprint and any(name.endswith("+next") for name in args.candidates):
        parser.error("--footprint times encode(); leave out the +next candidates")
    if args.footprint_of:
        task = load_awareness(selection_table(args.data, args.work), SELECTION, limit=args.footprint, seed=1)
        print(json.dumps(footprint(args.footprint_of, task)))
        return
    sets = tasks(args.data, args.work, args.n, args.n_selection)
    if args.layers:
        ranked = layer_sweep(args.layers, [sets[n] for n in SELECTION_SETS], args.seeds, args.batch_size)
        print("\n".join(f"{readout:<14} {summary:+.3f}" for readout, summary in ranked))
        if args.json:
            args.json.write_text(json.dumps({"candidate": args.layers, "chosen_on": SELECTION_SETS,
                                             "seeds": args.seeds, "ranked": ranked}, indent=1) + "\n")
        return
    seconds = {}
    if not args.table:
        for name in args.candidates:
            seconds[name] = embed(name, sets, args.work, args.batch_size)
            print(f"{name}: {seconds[name]}", flush=True)
    report = score(args.candidates, sets, args.work, args.seeds, args.boot)
    probed = probes(args.candidates, sets, args.work)
    footprints = json.loads(args.json.read_text())["footprints"] if args.table and args.json and args.json.exists() \
        else {}
    geometry = geometry_kept(args.candidates, sets, args.work, args.teacher) if args.teacher else {}
    kept = "\n\n" + lead_kept(report, sets, args.teacher) + "\n\n" + geometry_table(geometry, args.teacher) \
        if args.teacher else ""
    if args.table:
        print(table(report, sets, footprints, probed) + kept)
        return
    for name in args.candidates if args.footprint else []:
        run = subprocess.run([sys.executable, __file__, "--work", str(args.work), "--data", str(args.data),
                              "--footprint", str(args.footprint), "--footprint-of", name],
                             capture_output=True, text=True, check=True)
        footprints[name] = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"{name}: {footprints[name]['texts_per_second']:.1f} texts/s, "
              f"peak {footprints[name]['peak_rss_gib']:.2f} GiB", flush=True)
    print(table(report, sets, footprints, probed) + kept)
    if args.json:
        rows = {s: len(t.texts) for s, t in sets.items()}
        args.json.write_text(json.dumps({"report": report, "probes": probed, "geometry": geometry,
                                         "footprints": footprints, "seconds": seconds, "rows": rows,
                                         "seeds": args.seeds, "boot": args.boot},
                                        indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
