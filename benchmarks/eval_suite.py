"""The evaluation suite behind docs/evaluation.md: each item is one ``inbedder eval`` command on public data.

Two datasets need a small conversion first, written to the work folder (never into the project):
clinc150's nested JSON becomes ``clinc150_test.jsonl`` (text, intent, domain), and ``absa_triplets.jsonl``
is built from SemEval-14 restaurant sentences with one aspect category (seed 0): the positive shares the
anchor's polarity but not its category, the negative shares its category but not its polarity, so only an
embedding that follows "What is the sentiment?" puts the positive closer.

Every command is printed before it runs and is the one the docs list; subsamples use ``--limit`` with
``--seed 0``. Results go to ``<work>/results/*.json``, and a markdown table of them to ``<work>/report.md``.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/eval_suite.py                  # every item, model minilm
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/eval_suite.py --only sts-b --only latency
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/eval_suite.py --model smollm2-135m-instruct --only sts-b-300
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/eval_suite.py --list           # print the commands only
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path

from common import DATA

CLI = [str(Path(sys.executable).parent / "inbedder"), "eval"]
TRIPLETS = 300

ROBUST = {
    "correct": ["What is the sentiment of this review?", "Is the reviewer's opinion positive or negative?"],
    "implicit": ["How did the customer feel?"],
    "incorrect": ["What aspect of the restaurant is discussed?", "Which dish or service is mentioned?"],
}


def items(data: Path, work: Path) -> dict[str, list[str]]:
    """Name → arguments of ``inbedder eval`` (without model and output)."""
    sts = str(data / "stsbenchmark" / "sts-test.jsonl")
    absa = str(data / "semeval14_absa" / "restaurants_test_single_category.csv")
    robust = [arg for kind, texts in ROBUST.items() for text in texts for arg in (f"--{kind}", text)]
    banking = ["classification", "-i", str(data / "banking77" / "train.csv"), "--test",
               str(data / "banking77" / "test.csv"), "--label-column", "category"]
    emotion = ["classification", "-i", str(data / "emotion_dair" / "train.txt"), "--test",
               str(data / "emotion_dair" / "test.txt"), "--delimiter", ";", "--label-column", "label_name"]
    ag_news = ["clustering", "-i", str(data / "ag_news" / "test.csv"), "--text-column", "title",
               "--label-column", "label"]
    return {
        "awareness-clinc150": ["awareness", "-i", str(work / "clinc150_test.jsonl"), "--limit", "1000",
                               "--axis", "intent=What does the user want?",
                               "--axis", "domain=Which area of life is this about?", "--baseline",
                               "--png", str(work / "awareness-clinc150.png")],
        "awareness-semeval14": ["awareness", "-i", absa, "--axis", "category=What aspect of the restaurant is "
                                "discussed?", "--axis", "polarity=What is the sentiment of the review?",
                                "--baseline", "--png", str(work / "awareness-semeval14.png")],
        # the same two matrices on 300 texts, for slow models (the answer families on a CPU)
        "awareness-clinc150-300": ["awareness", "-i", str(work / "clinc150_test.jsonl"), "--limit", "300",
                                   "--axis", "intent=What does the user want?",
                                   "--axis", "domain=Which area of life is this about?"],
        "awareness-semeval14-300": ["awareness", "-i", absa, "--limit", "300", "--axis", "category=What aspect of "
                                    "the restaurant is discussed?", "--axis", "polarity=What is the sentiment of the "
                                    "review?"],
        "sts-b": ["sts", "-i", sts],
        "sts-b-instructed": ["sts", "-i", sts, "--instruction", "Represent the sentence for semantic similarity:"],
        "triplet-absa": ["triplet", "-i", str(work / "absa_triplets.jsonl")],
        "triplet-absa-robustness": ["triplet", "-i", str(work / "absa_triplets.jsonl"), *robust],
        "classification-banking77": [*banking, "--limit", "2000"],
        "classification-emotion": [*emotion, "--limit", "2000"],
        "clustering-ag_news": [*ag_news, "--limit", "1000"],
        # subsamples of STS-B, classification and clustering, for slow models (the answer families on a CPU)
        "sts-b-300": ["sts", "-i", sts, "--limit", "300"],
        "classification-banking77-300": [*banking, "--limit", "300"],
        "classification-emotion-300": [*emotion, "--limit", "300"],
        "clustering-ag_news-500": [*ag_news, "--limit", "500"],
        "latency": ["latency", "-i", sts, "--text-column", "sentence1", "--limit", "512", "--batch-size", "32"],
    }


def prepare(data: Path, work: Path) -> None:
    """Write clinc150_test.jsonl and absa_triplets.jsonl into ``work`` (skipped when present)."""
    work.mkdir(parents=True, exist_ok=True)
    clinc = work / "clinc150_test.jsonl"
    if not clinc.exists():
        full = json.loads((data / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
        domain_of = {intent: domain for domain, intents in
                     json.loads((data / "clinc150" / "domains.json").read_text(encoding="utf-8")).items()
                     for intent in intents}
        with open(clinc, "w", encoding="utf-8") as f:
            for text, intent in full["test"]:
                f.write(json.dumps({"text": text, "intent": intent, "domain": domain_of[intent]}) + "\n")
    triplets = work / "absa_triplets.jsonl"
    if not triplets.exists():
        with open(data / "semeval14_absa" / "restaurants_train_single_category.csv", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r["polarity"] in ("positive", "negative")]
        rng = random.Random(0)
        with open(triplets, "w", encoding="utf-8") as f:
            for anchor in rng.sample(rows, TRIPLETS):
                positive = rng.choice([r for r in rows if r["polarity"] == anchor["polarity"]
                                       and r["category"] != anchor["category"]])
                negative = rng.choice([r for r in rows if r["category"] == anchor["category"]
                                       and r["polarity"] != anchor["polarity"] and r is not anchor])
                f.write(json.dumps({"anchor": anchor["text"], "positive": positive["text"],
                                    "negative": negative["text"], "category": anchor["category"],
                                    "polarity": anchor["polarity"]}) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--data", type=Path, default=DATA, help="The public datasets [default: %(default)s].")
    parser.add_argument("--work", type=Path, default=Path("/tmp/inbedder-eval"),
                        help="Prepared data, results and heatmaps go here [default: %(default)s].")
    parser.add_argument("--only", action="append", help="Run only this item (repeat); see --list.")
    parser.add_argument("--skip", action="append", default=[], help="Leave out this item (repeat).")
    parser.add_argument("--list", action="store_true", help="Print the commands and exit.")
    args = parser.parse_args()
    every = items(args.data, args.work)
    chosen = [name for name in args.only or list(every) if name not in args.skip]
    unknown = [name for name in [*chosen, *args.skip] if name not in every]
    if unknown:
        parser.error(f"unknown item(s) {unknown}; choose from {list(every)}")
    results = args.work / "results"
    tag = args.model.replace("/", "_")
    commands = {name: [*CLI, *every[name], "-m", args.model, "-o", str(results / f"{name}.{tag}.json")]
                for name in chosen}
    if args.list:
        for command in commands.values():
            print(shlex.join(["inbedder", *command[1:]]))
        return 0
    prepare(args.data, args.work)
    results.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for name, command in commands.items():
        print(f"\n## {name}\n$ {shlex.join(['inbedder', *command[1:]])}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(command, env=env, check=False)
        print(f"({time.perf_counter() - started:.0f} s, exit {done.returncode})", flush=True)
    files = sorted(str(p) for p in results.glob(f"*.{tag}.json"))
    report = subprocess.run([*CLI, "report", *files], env=env, capture_output=True, text=True, check=False)
    (args.work / "report.md").write_text(report.stdout, encoding="utf-8")
    print(report.stdout or report.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
