"""The default answer model: SmolLM2-135M-Instruct fine-tuned to answer questions about texts, briefly.

Training data (from a local copy of public datasets, ``--data-root``):

* free-form QA with short answers (TweetQA, QED/NQ, FairytaleQA train splits; answers of at most 6 words,
  passages of at most 600 characters), ``qa_records`` of them;
* label questions from labelled datasets, through :func:`~inbedder.training.data.from_labels`: banking77
  (intent), clinc150 (intent and domain), emotion (dair), AG News (topic), GoEmotions (Ekman emotion, and
  sentiment: positive / negative / neutral / ambiguous): about
  ``per_axis`` records for each, balanced over the axis' classes, with 3–4 phrasings per question (among
  them category-style ones: "What category of news is this?");
* yes/no questions about one label of each of those axes ("Is the topic of this news Sports?"), half of them
  answered yes, ``yes_no_per_axis`` per axis;
* FewRel relation questions ("How is {head} related to {tail}?" → "mother"), ``relation_records`` of them.

SemEval-2014 restaurants (aspect category × polarity) and MLMA hate speech (target × directness) are never used
for training: :func:`heldout_awareness` measures the instruction-awareness matrix on them, base against trained.
With ``select_every``, the run scores its readout on the selection set (:func:`selection_table`: CLINC150 *test*
queries, domain × intent) every so many steps and keeps the weights of the best step.

The saved model's ``inbedder.json`` names its readout (``settings.readout``; chosen on a selection set by
``benchmarks/trained_readouts.py``, see docs/training.md), so ``load()`` embeds the way it was measured.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io.table import read_table
from ..io.write import write_rows
from ..prompts import INBEDDER_PATTERN
from ..registry import DEFAULTS_FILE, directory_defaults
from .data import LabelSpec, from_labels

BASE_MODEL = "smollm2-135m-instruct"
QA_SETS = ("tweetqa", "qed_nq", "fairytaleqa")

LABELLED: dict[str, dict[str, tuple[str, ...]]] = {
    "banking77": {"category": ("What does the customer want?", "What is the customer asking about?",
                             "What is the purpose of this message?", "What aspect of banking is this about?")},
    "clinc150": {"intent": ("What does the user want to do?", "What is the user's intent?",
                            "What kind of request is this?"),
                 "domain": ("Which area is this request about?", "What domain does this request belong to?",
                            "What category does this request fall into?")},
    "emotion": {"emotion": ("What emotion is expressed here?", "How does the writer feel?",
                            "What feeling is described?")},
    "ag_news": {"topic": ("What is the topic of this news?", "Which section of a newspaper is this from?",
                          "What category of news is this?")},
    "goemotions": {"emotion": ("What emotion does the commenter express?", "How does this person feel?"),
                   "sentiment": ("What is the sentiment of this comment?",
                                 "Is this comment positive, negative, neutral or ambiguous?")},
}
# yes/no questions about one label of an axis: "yes" for the text's own label, "no" for another one of the axis
YES_NO: dict[str, dict[str, str]] = {
    "banking77": {"category": "Is the customer's request about {label}?"},
    "clinc150": {"intent": "Is the user's intent {label}?", "domain": "Is this request in the area of {label}?"},
    "emotion": {"emotion": "Is the emotion here {label}?"},
    "ag_news": {"topic": "Is the topic of this news {label}?"},
    "goemotions": {"emotion": "Does the commenter express {label}?",
                   "sentiment": "Is the sentiment of this comment {label}?"},
}
RELATION_QUESTIONS = ("How is {head} related to {tail}?", "What is the relation of {head} to {tail}?",
                      "What relationship between {head} and {tail} does the text state?")
HELDOUT = {
    "semeval14": {"category": "What aspect of the restaurant is discussed?",
                  "polarity": "What is the sentiment of the reviewer?"},
    "mlma": {"target": "What characteristic of people is attacked here?",
             "directness": "Is the hateful remark directed at a specific person or group?"},
}
# the selection set: CLINC150 test queries of five domains, four intents each (the recipe trains on CLINC150 train)
SELECTION_DOMAINS = ("banking", "travel", "kitchen_and_dining", "auto_and_commute", "home")
SELECTION = {"domain": "Which area of life is this request about?", "intent": "What does the user want to do?"}


def readout_defaults(readout: str, reencoder: str = "minilm", layer: int | None = None) -> dict[str, Any]:
    """The ``load()`` options of a readout of an answer model: hidden states (at ``layer``; the last by default),
    or the generated answer re-encoded."""
    options: dict[str, dict[str, Any]] = {
        "fst_gen": {"output_value": "fst_gen"}, "avg_ppt": {"output_value": "avg_ppt"},
        "avg_gen": {"output_value": "avg_gen", "max_new_tokens": 8},
        "re_encode": {"max_new_tokens": 8, "reencoder": reencoder}}
    if readout not in options:
        raise InputError(f"readout must be one of {sorted(options)}; got {readout!r}")
    if layer is None:
        return options[readout]
    if readout == "re_encode":
        raise InputError("layer= applies to the hidden-state readouts (fst_gen, avg_ppt, avg_gen), not to re_encode")
    return {**options[readout], "layer": layer}


@dataclass(frozen=True)
class RecipeSettings:
    """The recipe's size: how many records of each kind, and how long to train (a full run on 2 cores: ~40 min in
    float32 on AVX2 cores, less with bf16 kernels)."""

    qa_records: int = 2000
    per_axis: int = 240
    yes_no_per_axis: int = 40
    relation_records: int = 240
    dev_records: int = 200
    steps: int = 450
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-4
    max_length: int = 128
    lora: bool = False
    seed: int = 0
    base_model: str = BASE_MODEL
    pattern: str = INBEDDER_PATTERN  # the prompt trained and read (a chat pattern trains in the model's template)
    readout: str = "re_encode"  # how the trained model embeds (readout_defaults); written to its inbedder.json
    reencoder: str = "minilm"
    layer: int | None = None  # the hidden state a hidden-state readout reads (the last by default)
    select_every: int | None = None  # score the readout on the selection set every N steps; keep the best step
    select_limit: int = 400  # rows of the selection set scored
    unseen_selection: bool = False  # leave the selection set's CLINC150 domains out of training


DATASETS = ("banking77/, clinc150/, emotion_dair/, ag_news/, goemotions/, fewrel/, qa/, semeval14_absa/ and "
            "mlma_hate_speech/")


def default_output() -> Path:
    from ..registry import user_data_dir

    return user_data_dir() / "models" / "inbedder-smollm2"


def default_data_root() -> Path:
    """The public datasets folder from ``INBEDDER_DATA``; there is no default (a library does not guess where a
    development checkout keeps its data)."""
    root = os.environ.get("INBEDDER_DATA")
    if not root:
        raise InputError("no data folder given: pass --data-root DIR (or set INBEDDER_DATA) pointing at the public "
                         f"datasets folder with {DATASETS}")
    return Path(root)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_rows([dict(zip(header, row, strict=True)) for row in rows], path, "csv")
    return path


def need(path: Path) -> Path:
    if not path.exists():
        raise InputError(f"{path} is missing: give --data-root (or INBEDDER_DATA) pointing at the public datasets "
                         f"folder with {DATASETS}")
    return path


def clinc150(root: Path) -> tuple[dict[str, list[list[str]]], dict[str, list[str]]]:
    """CLINC150's splits (``[text, intent]`` rows) and its domains (domain → intents)."""
    data = json.loads(need(root / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    return data, json.loads(need(root / "clinc150" / "domains.json").read_text(encoding="utf-8"))


def labelled_tables(root: Path, work: Path, leave_out: tuple[str, ...] = ()) -> dict[str, Path]:
    """Each labelled training dataset as one csv with a ``text`` column and its label columns; CLINC150 without the
    domains in ``leave_out``."""
    out = {"banking77": need(root / "banking77" / "train.csv")}
    clinc, domains = clinc150(root)
    domain_of = {i: d for d, intents in domains.items() for i in intents}
    out["clinc150"] = _write_csv(work / "clinc150.csv", ["text", "intent", "domain"],
                                 [[t, i, domain_of[i]] for t, i in clinc["train"]
                                  if i in domain_of and domain_of[i] not in leave_out])
    with open(need(root / "emotion_dair" / "train.txt"), encoding="utf-8") as f:
        emotion = [line.rstrip("\n").rsplit(";", 1) for line in f if ";" in line]
    out["emotion"] = _write_csv(work / "emotion.csv", ["text", "emotion"], emotion[1:])
    topics = (root / "ag_news" / "classes.txt").read_text().split()
    news = [[f"{r['title']}. {r['description']}", topics[int(r["label"]) - 1]]
            for r in read_table(need(root / "ag_news" / "test.csv")).rows]
    out["ag_news"] = _write_csv(work / "ag_news.csv", ["text", "topic"], news)
    single = {}  # comment id -> (text, label name) on each label set, single-label rows only
    for labels in ("ekman", "group"):
        names = (root / "goemotions" / labels / "labels.txt").read_text().split()
        with open(need(root / "goemotions" / labels / "dev.tsv"), encoding="utf-8") as f:
            rows = [line.rstrip("\n").split("\t") for line in f]
        single[labels] = {r[2]: (r[0], names[int(r[1])]) for r in rows if len(r) >= 3 and "," not in r[1]}
    out["goemotions"] = _write_csv(work / "goemotions.csv", ["text", "emotion", "sentiment"],
                                   [[text, emotion, single["group"][i][1]] for i, (text, emotion)
                                    in single["ekman"].items() if i in single["group"]])
    return out


def qa_records(root: Path, n: int, seed: int) -> list[dict[str, str]]:
    """Short-answer free-form QA from the train splits, shuffled with the seed."""
    pool: list[dict[str, str]] = []
    for name in QA_SETS:
        for r in read_table(need(root / "qa" / name / f"{name}.jsonl")).rows:
            if r.get("split") == "train" and len(r["answer"].split()) <= 6 and len(r["input"]) <= 600 \
                    and r["question"].strip() and r["answer"].strip():
                pool.append({"input": r["input"], "instruction": r["question"].strip(),
                             "answer": r["answer"].strip(), "axis": f"qa:{name}"})
    rng = random.Random(seed)
    rng.shuffle(pool)
    return pool[:n]


def relation_records(root: Path, n: int, seed: int) -> list[dict[str, str]]:
    """FewRel sentences asked how their two marked entities are related; the answer is the relation's name.
    About ``n`` records (none for 0), the same number for each relation, with the seed."""
    if n <= 0:
        return []
    names = json.loads(need(root / "fewrel" / "pid2name.json").read_text(encoding="utf-8"))
    relations = json.loads(need(root / "fewrel" / "val_wiki.json").read_text(encoding="utf-8"))
    rng = random.Random(seed)
    out = []
    for pid, rows in sorted(relations.items()):
        for row in rng.sample(rows, min(len(rows), max(1, n // len(relations)))):
            question = rng.choice(RELATION_QUESTIONS).format(head=row["h"][0], tail=row["t"][0])
            out.append({"input": " ".join(row["tokens"]), "instruction": question, "answer": names[pid][0],
                        "axis": "relation"})
    return out


def yes_no_records(label_records: list[dict[str, Any]], dataset: str, axis: str, n: int,
                   rng: random.Random) -> list[dict[str, str]]:
    """``n`` yes/no questions about one label of ``axis``, half of them asking about the text's own label."""
    labels = sorted({r["answer"] for r in label_records})
    if len(labels) < 2:
        return []
    out = []
    for i, r in enumerate(rng.sample(label_records, min(n, len(label_records)))):
        asked = r["answer"] if i % 2 == 0 else rng.choice([x for x in labels if x != r["answer"]])
        out.append({"input": r["input"], "instruction": YES_NO[dataset][axis].format(label=asked),
                    "answer": "yes" if asked == r["answer"] else "no", "axis": f"{axis}:yes-no"})
    return out


def build_data(root: Path, work: Path, settings: RecipeSettings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train and dev QA records: free-form QA mixed with label questions (the held-out datasets never appear)."""
    train: list[dict[str, Any]] = []
    dev: list[dict[str, Any]] = []
    rng = random.Random(settings.seed)
    leave_out = SELECTION_DOMAINS if settings.unseen_selection else ()
    for name, path in labelled_tables(root, work, leave_out).items():
        for axis, questions in LABELLED[name].items():  # one axis at a time: each gets per_axis records
            classes = len(set(read_table(path).labels(axis)))
            spec = LabelSpec((axis,), {axis: questions}, max_per_class=max(2, -(-settings.per_axis // classes)),
                             dev_fraction=0.1, seed=settings.seed)
            built = from_labels([path], spec, "qa")
            train += built.train[:settings.per_axis]
            dev += built.dev
            train += yes_no_records(built.train, name, axis, settings.yes_no_per_axis, rng)
    train += relation_records(root, settings.relation_records, settings.seed)
    qa = qa_records(root, settings.qa_records + settings.qa_records // 10, settings.seed)
    train += qa[:settings.qa_records]
    dev += qa[settings.qa_records:]
    rng.shuffle(train)
    rng.shuffle(dev)
    return train, dev[:settings.dev_records]


def selection_rows(root: Path) -> list[list[str]]:
    """The selection set, ``[text, domain, intent]`` a row: CLINC150 *test* queries of :data:`SELECTION_DOMAINS`,
    the first four intents of each."""
    data, domains = clinc150(root)
    domain_of = {i: d for d in SELECTION_DOMAINS for i in domains[d][:4]}
    return [[t, domain_of[i], i] for t, i in data["test"] if i in domain_of]


def selection_table(root: Path, work: Path) -> Path:
    """:func:`selection_rows` as a csv with ``text``, ``domain`` and ``intent``."""
    return _write_csv(work / "clinc_selection.csv", ["text", "domain", "intent"], selection_rows(root))


def heldout_tables(root: Path, work: Path, seed: int = 0, per_class: int = 200) -> dict[str, Path]:
    """The held-out evaluation files: SemEval-14 test (single category) and MLMA English, directness balanced."""
    out = {"semeval14": need(root / "semeval14_absa" / "restaurants_test_single_category.csv")}
    rows = read_table(need(root / "mlma_hate_speech" / "en_dataset.csv")).rows
    rng = random.Random(seed)
    keep: list[list[str]] = []
    for value in ("direct", "indirect"):
        group = [r for r in rows if r["directness"] == value]
        rng.shuffle(group)
        keep += [[r["tweet"], r["target"], r["directness"]] for r in group[:per_class]]
    out["mlma"] = _write_csv(work / "mlma_heldout.csv", ["text", "target", "directness"], keep)
    return out


def heldout_awareness(model: Any, root: Path, work: Path, limit: int | None = 400, seed: int = 0,
                      batch_size: int = 16) -> dict[str, Any]:
    """The awareness matrix of ``model`` (a loaded Embedder) on each held-out dataset."""
    from ..evaluation import EvalSettings, load_awareness

    results = {}
    for name, path in heldout_tables(root, work, seed).items():
        task = load_awareness(path, HELDOUT[name], limit=limit, seed=seed)
        run = task.run(model, EvalSettings(batch_size=batch_size, seed=seed, progress=False))
        results[name] = {"metrics": run.metrics(), "matrix": run.matrix, "instructions": run.instructions,
                         "rows": len(task.texts)}
    return results


def example_answers(model: Any, root: Path, work: Path, n: int = 4, seed: int = 0) -> list[dict[str, str]]:
    """Greedy answers (up to 6 tokens) of ``model`` to held-out questions."""
    out = []
    for name, path in heldout_tables(root, work, seed).items():
        table = read_table(path).sample(n, seed)
        texts = table.strings("text")
        for axis, question in HELDOUT[name].items():
            _, answers = model.encode(texts, instruction=question, return_generations=True, max_new_tokens=6,
                                      show_progress_bar=False)
            gold = table.labels(axis)
            out += [{"dataset": name, "text": t, "question": question, "answer": a.strip(), "label": g}
                    for t, a, g in zip(texts, answers, gold, strict=True)]
    return out


def run_recipe(output: Path | None = None, root: Path | None = None, settings: RecipeSettings | None = None, *,
               evaluate: bool = True, eval_limit: int | None = 400, stop_after: int | None = None,
               progress: bool | None = None, device: str | None = None) -> dict[str, Any]:
    """Build the data, train, save to ``output`` (the ``inbedder-smollm2`` alias' folder by default), evaluate.
    ``device=None`` trains and evaluates on CUDA when present."""
    from ..evaluation import EvalSettings, load_awareness
    from ..loading import load
    from .answer import AnswerSettings, train_answer
    from .loop import LoopSettings

    settings = settings or RecipeSettings()
    readout = readout_defaults(settings.readout, settings.reencoder, settings.layer)  # refused before any training
    answer = AnswerSettings(pattern=settings.pattern, max_length=settings.max_length, lora=settings.lora)
    if output is None and settings.base_model != BASE_MODEL:
        raise InputError(f"--base-model {settings.base_model} needs -o/--output: the default folder is the "
                         "`inbedder-smollm2` alias'")
    output, root = Path(output or default_output()), need(Path(root or default_data_root()))
    work = output.with_name(output.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    train, dev = build_data(root, work, settings)
    loop = LoopSettings(steps=settings.steps, batch_size=settings.batch_size, grad_accum=settings.grad_accum,
                        lr=settings.lr, seed=settings.seed, save_every=25, stop_after=stop_after,
                        progress=progress, eval_every=settings.select_every)
    select = None
    if settings.select_every:
        task = load_awareness(selection_table(root, work), SELECTION, limit=settings.select_limit, seed=settings.seed)
        select = task.scorer(EvalSettings(batch_size=16, seed=settings.seed, progress=False), **readout)
    result = train_answer(settings.base_model, train, output, dev=dev, checkpoint=work / "checkpoint", loop=loop,
                          settings=answer, device=device, evaluate=select)
    report: dict[str, Any] = {"settings": asdict(settings), "train_records": len(train), "dev_records": len(dev),
                              "finished": result.loop.finished, "steps": result.loop.step,
                              "train_loss": result.loop.losses, "dev_loss": result.dev_loss,
                              "selection": result.loop.evals, "best_step": result.loop.best_step}
    if result.loop.finished:  # the model is saved: the checkpoint (weights + optimizer, ~1.6 GB) is not needed
        shutil.rmtree(work / "checkpoint", ignore_errors=True)
        defaults = {**directory_defaults(output), **readout}  # the prompt pattern train_answer wrote, and the readout
        (output / DEFAULTS_FILE).write_text(json.dumps({"defaults": defaults, "readout": settings.readout}, indent=2),
                                            encoding="utf-8")
    if result.loop.finished and evaluate:
        report["heldout"] = {}
        report["examples"] = {}
        for name, where, options in (("base", settings.base_model, {}),
                                     ("base, same readout", settings.base_model,
                                      {**readout, "pattern": settings.pattern}),
                                     ("trained", str(output), {})):
            model = load(where, device=device, **options)
            report["heldout"][name] = heldout_awareness(model, root, work, eval_limit, settings.seed)
            if not options:  # answers do not depend on the readout
                report["examples"][name] = example_answers(model, root, work, seed=settings.seed)
        (output / "heldout.json").write_text(json.dumps(report["heldout"], indent=2), encoding="utf-8")
    (work / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return report
