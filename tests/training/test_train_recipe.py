"""The default-model recipe on a miniature copy of the public datasets' layout and a tiny causal LM: data are
built from every training source and never from the held-out ones, training runs, the held-out report is filled."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from helpers.tiny_causal import build_tiny_llama
from inbedder import load
from inbedder.errors import InputError, UnknownModelError
from inbedder.training.recipe import RecipeSettings, build_data, run_recipe

ANIMALS = ["cat", "dog", "bird", "fish"]


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def fake_root(root: Path) -> Path:
    """Each dataset file the recipe reads, with a few rows in the original format."""
    _csv(root / "banking77" / "train.csv", ["text", "category"],
         [[f"my {a} card {i}", "card_arrival" if i % 2 else "lost_card"] for i, a in enumerate(ANIMALS * 2)])
    (root / "clinc150").mkdir()
    (root / "clinc150" / "data_full.json").write_text(json.dumps({"train": [
        [f"play a {a} song {i}", "play_music" if i % 2 else "weather"] for i, a in enumerate(ANIMALS * 2)],
        "test": [[f"{a} {intent} {i}", intent] for i, a in enumerate(ANIMALS * 2) for intent in
                 ("balance", "transfer", "weather", "flights", "recipe", "gas", "lights", "play_music")]}))
    (root / "clinc150" / "domains.json").write_text(json.dumps({
        "media": ["play_music"], "travel": ["weather", "flights"], "banking": ["balance", "transfer"],
        "kitchen_and_dining": ["recipe"], "auto_and_commute": ["gas"], "home": ["lights"]}))
    (root / "emotion_dair").mkdir()
    (root / "emotion_dair" / "train.txt").write_text("text;label_name\n" + "".join(
        f"i feel {a} {i};{'joy' if i % 2 else 'anger'}\n" for i, a in enumerate(ANIMALS * 2)))
    (root / "ag_news").mkdir()
    (root / "ag_news" / "classes.txt").write_text("World\nSports\n")
    _csv(root / "ag_news" / "test.csv", ["label", "title", "description"],
         [[str(1 + i % 2), f"{a} news", f"about a {a} {i}"] for i, a in enumerate(ANIMALS * 2)])
    for labels, names in (("ekman", "anger\njoy\n"), ("group", "negative\npositive\n")):
        (root / "goemotions" / labels).mkdir(parents=True)
        (root / "goemotions" / labels / "labels.txt").write_text(names)
        (root / "goemotions" / labels / "dev.tsv").write_text("".join(
            f"so {a} {i}\t{i % 2}\tid{i}\n" for i, a in enumerate(ANIMALS * 2)) + "mixed\t0,1\tidx\n")
    (root / "fewrel").mkdir()
    (root / "fewrel" / "pid2name.json").write_text(json.dumps({"P25": ["mother", "a parent"], "P26": ["spouse", "-"]}))
    (root / "fewrel" / "val_wiki.json").write_text(json.dumps({pid: [
        {"tokens": ["Ann", "is", "the", word, "of", "Bo", str(i)], "h": ["bo", "Q1", [[5]]], "t": ["ann", "Q2", [[0]]]}
        for i in range(3)] for pid, word in (("P25", "mother"), ("P26", "wife"))}))
    for name in ("tweetqa", "qed_nq", "fairytaleqa"):
        (root / "qa" / name).mkdir(parents=True)
        (root / "qa" / name / f"{name}.jsonl").write_text("".join(json.dumps(
            {"input": f"The {a} sat.", "question": "Which animal sat?", "answer": a, "split": "train"}) + "\n"
            for a in ANIMALS))
    _csv(root / "semeval14_absa" / "restaurants_test_single_category.csv", ["id", "text", "category", "polarity"],
         [[str(i), f"the {a} soup {i}", "food" if i % 2 else "service", "positive" if i % 3 else "negative"]
          for i, a in enumerate(ANIMALS * 3)])
    _csv(root / "mlma_hate_speech" / "en_dataset.csv", ["HITId", "tweet", "sentiment", "directness",
                                                        "annotator_sentiment", "target", "group"],
         [[str(i), f"bad {a} {i}", "offensive", "direct" if i % 2 else "indirect", "anger",
           "origin" if i % 3 else "gender", "other"] for i, a in enumerate(ANIMALS * 3)])
    return root


def test_data_mix_every_source_and_no_heldout_text(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "data")
    train, dev = build_data(root, tmp_path / "work", RecipeSettings(qa_records=6, per_axis=4, yes_no_per_axis=4,
                                                                     relation_records=4))
    axes = {r["axis"] for r in train + dev}
    assert {"intent", "domain", "emotion", "sentiment", "topic", "relation"} <= axes
    assert any(a.startswith("qa:") for a in axes)
    answers = {r["answer"] for r in train}
    assert {"card arrival", "play music", "media", "World", "positive", "negative", "mother", "spouse"} <= answers
    relation = [r for r in train if r["axis"] == "relation"]
    assert len(relation) == 4 and all("bo" in r["instruction"] and "ann" in r["instruction"] for r in relation)
    yes_no = [r for r in train if r["axis"] == "topic:yes-no"]
    assert len(yes_no) >= 2 and [r["answer"] for r in yes_no].count("yes") == (len(yes_no) + 1) // 2
    for r in yes_no:  # "yes" exactly when the question names the text's own topic
        own = "World" if any(x["input"] == r["input"] and x["answer"] == "World" for x in train) else "Sports"
        assert (r["answer"] == "yes") == r["instruction"].endswith(f" {own}?")
    texts = {r["input"] for r in train + dev}
    assert not [t for t in texts if "soup" in t or t.startswith("bad ")]  # held-out data never trained on
    assert "mixed" not in texts  # multi-label GoEmotions rows are left out
    none = build_data(root, tmp_path / "work", RecipeSettings(qa_records=6, per_axis=4, yes_no_per_axis=0,
                                                             relation_records=0))[0]
    assert not [r for r in none if r["axis"] == "relation" or r["axis"].endswith(":yes-no")]
    with pytest.raises(InputError, match="--data-root"):
        build_data(tmp_path / "nowhere", tmp_path / "work", RecipeSettings())


def test_unseen_selection_leaves_the_selection_domains_out_of_training(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "data")
    for unseen in (False, True):  # "weather" is a travel intent, and travel a selection domain; media is not
        settings = RecipeSettings(qa_records=6, per_axis=8, unseen_selection=unseen)
        train, dev = build_data(root, tmp_path / "work", settings)
        said = " ".join(f"{r['instruction']} {r['answer']}" for r in train + dev if r["input"].startswith("play a"))
        assert "play music" in said and "media" in said
        assert ("weather" in said and "travel" in said) != unseen


def test_recipe_trains_saves_and_reports_heldout(tmp_path: Path, tiny_bert_dir: Path, tiny_bert: Any) -> None:
    root = fake_root(tmp_path / "data")
    llama = build_tiny_llama(tmp_path / "llama")
    settings = RecipeSettings(qa_records=6, per_axis=4, steps=3, batch_size=4, lr=1e-3, max_length=96,
                              base_model=str(llama), reencoder=str(tiny_bert_dir))
    report = run_recipe(tmp_path / "models" / "m", root, settings, eval_limit=12, progress=False)
    assert report["finished"] and len(report["train_loss"]) == 3
    saved = json.loads((tmp_path / "models" / "m" / "inbedder.json").read_text())
    assert saved["readout"] == "re_encode" and saved["defaults"]["reencoder"] == str(tiny_bert_dir)
    trained = load(tmp_path / "models" / "m", device="cpu")  # embeds the way it was measured: answers re-encoded
    vectors, answers = trained.encode(["a cat sat"], instruction="Which animal?", return_generations=True)
    np.testing.assert_allclose(vectors, tiny_bert.encode(answers), atol=1e-6)
    assert set(report["heldout"]) == {"base", "base, same readout", "trained"}
    for name in report["heldout"]:
        assert set(report["heldout"][name]) == {"semeval14", "mlma"}
        matrix = report["heldout"][name]["mlma"]["matrix"]
        assert set(matrix) == {"target", "directness"}
    assert (tmp_path / "models" / "m" / "heldout.json").exists()
    assert not (tmp_path / "models" / "m.work" / "checkpoint").exists()  # removed once the model is saved
    assert report["examples"]["trained"][0]["dataset"] == "semeval14"


def test_recipe_keeps_the_step_best_on_the_selection_set(tmp_path: Path) -> None:
    from inbedder.evaluation import EvalSettings, load_awareness
    from inbedder.training.recipe import SELECTION, readout_defaults, selection_table

    root = fake_root(tmp_path / "data")
    llama = build_tiny_llama(tmp_path / "llama")
    settings = RecipeSettings(qa_records=6, per_axis=4, steps=3, batch_size=4, lr=1e-2, max_length=96,
                              base_model=str(llama), readout="fst_gen", select_every=1, select_limit=30)
    report = run_recipe(tmp_path / "m", root, settings, evaluate=False, progress=False)
    assert [step for step, _ in report["selection"]] == [1, 2, 3]
    best = max(report["selection"], key=lambda e: e[1])
    assert report["best_step"] == best[0] != 3  # with this seed an early step is best: the last is not saved
    table = selection_table(root, tmp_path / "w")  # the test split only, the five selection domains
    assert "play_music" not in table.read_text() and table.read_text().count("\n") == 1 + 7 * 8
    task = load_awareness(table, SELECTION, limit=30, seed=0)
    saved = load(tmp_path / "m", device="cpu")  # the saved weights score what the best step scored
    score = task.scorer(EvalSettings(batch_size=16, seed=0, progress=False), **readout_defaults("fst_gen"))
    assert score(saved) == pytest.approx(best[1], abs=1e-6)


def test_recipe_saves_the_readout_layer(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "data")
    llama = build_tiny_llama(tmp_path / "llama")
    settings = RecipeSettings(qa_records=6, per_axis=4, steps=1, batch_size=4, max_length=96, base_model=str(llama),
                              readout="fst_gen", layer=1)
    run_recipe(tmp_path / "m", root, settings, evaluate=False, progress=False)
    assert json.loads((tmp_path / "m" / "inbedder.json").read_text())["defaults"]["layer"] == 1
    texts, question = ["a cat sat", "a dog ran"], "Which animal?"
    saved = load(tmp_path / "m", device="cpu").encode(texts, instruction=question)
    at = {layer: load(tmp_path / "m", device="cpu", output_value="fst_gen", layer=layer).encode(texts, question)
          for layer in (1, -1)}
    np.testing.assert_allclose(saved, at[1], atol=1e-6)
    assert not np.allclose(saved, at[-1], atol=1e-3)
    with pytest.raises(InputError, match="not to re_encode"):  # before any data is built or step trained
        run_recipe(tmp_path / "n", root, RecipeSettings(base_model=str(llama), layer=1), progress=False)
    assert not (tmp_path / "n.work").exists()


def test_recipe_trains_and_reads_the_pattern_given(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "data")
    llama = build_tiny_llama(tmp_path / "llama")
    chat = "chat:{input}\n\n{instruction} Answer with one word."
    settings = RecipeSettings(qa_records=6, per_axis=4, steps=1, batch_size=4, max_length=96, base_model=str(llama),
                              readout="fst_gen", pattern=chat)
    run_recipe(tmp_path / "m", root, settings, evaluate=False, progress=False)
    assert json.loads((tmp_path / "m" / "inbedder.json").read_text())["defaults"]["pattern"] == chat
    assert load(tmp_path / "m", device="cpu").encoder.pattern == chat
    with pytest.raises(InputError, match="must contain {instruction} exactly once"):  # before any data is built
        run_recipe(tmp_path / "n", root, RecipeSettings(base_model=str(llama), pattern="{input}"), progress=False)
    assert not (tmp_path / "n.work").exists()


def test_alias_says_how_to_make_the_default_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inbedder.registry import resolve

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with pytest.raises(UnknownModelError, match="make train-default"):
        resolve("inbedder-smollm2")
    llama = build_tiny_llama(tmp_path / "inbedder" / "models" / "inbedder-smollm2")
    location = resolve("inbedder-smollm2")
    assert location.path == llama and location.family == "causal"


def test_cli_defaults_are_the_recipe_settings_defaults() -> None:
    from dataclasses import asdict

    from inbedder.cli.train import recipe

    parsed = recipe.make_context("recipe", []).params
    assert {k: v for k, v in parsed.items() if k in asdict(RecipeSettings())} == {
        k: v for k, v in asdict(RecipeSettings()).items() if k != "grad_accum"}


def test_recipe_command_trains_another_base_only_into_a_folder_given(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    from inbedder.cli import train as cli_train
    from inbedder.training import recipe

    with pytest.raises(InputError, match="--base-model qwen2.5-coder-0.5b needs -o/--output"):
        run_recipe(None, tmp_path, RecipeSettings(base_model="qwen2.5-coder-0.5b"), evaluate=False, progress=False)
    refused = CliRunner().invoke(cli_train.train_group, ["recipe", "--no-eval", "--base-model", "qwen2.5-coder-0.5b",
                                                         "--data-root", str(tmp_path)])
    assert refused.exit_code == 1 and "--base-model qwen2.5-coder-0.5b needs -o/--output" in refused.output
    seen: list[Any] = []
    monkeypatch.setattr(recipe, "run_recipe", lambda out, root, settings, **_: seen.append((out, settings)) or {
        "finished": False, "steps": 0})
    done = CliRunner().invoke(cli_train.train_group, ["recipe", "--no-eval", "--base-model", "qwen2.5-coder-0.5b",
                                                      "--lora", "-o", str(tmp_path / "q")])
    assert done.exit_code == 0, done.output
    assert seen[0][0] == tmp_path / "q" and seen[0][1].base_model == "qwen2.5-coder-0.5b" and seen[0][1].lora


@pytest.mark.parametrize("args, device", [([], None), (["--device", "cpu"], "cpu")])
def test_training_commands_take_cuda_when_present_unless_told(monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                             device: str | None) -> None:
    from inbedder.cli import train as cli_train
    from inbedder.training import answer, recipe

    seen: dict[str, Any] = {}

    def called(name: str) -> Any:
        def record(*_: Any, **kwargs: Any) -> None:
            seen[name] = kwargs["device"]
            raise SystemExit(0)  # stop before any training
        return record

    monkeypatch.setattr(recipe, "run_recipe", called("recipe"))
    monkeypatch.setattr(answer, "train_answer", called("answer"))
    CliRunner().invoke(cli_train.train_group, ["recipe", "--no-eval", *args])
    CliRunner().invoke(cli_train.train_group, ["answer", "-m", "x", "-d", "x.jsonl", "-o", "out", *args])
    assert seen == {"recipe": device, "answer": device}


def test_recipe_command_says_which_step_it_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from inbedder.cli import train as cli_train
    from inbedder.training import recipe

    report = {"finished": True, "train_records": 5, "steps": 3, "selection": [[1, 0.1], [2, 0.3], [3, 0.2]],
              "best_step": 2}
    monkeypatch.setattr(recipe, "run_recipe", lambda *_, **__: report)
    result = CliRunner().invoke(cli_train.train_group, ["recipe", "--no-eval", "-o", str(tmp_path / "m"),
                                                        "--select-every", "1"])
    assert result.exit_code == 0, result.output
    assert "selection set: saved the weights of step 2 (evaluation 0.3000; at each step: 1: 0.1000, 2: 0.3000, " \
           "3: 0.2000)" in result.output


def test_the_data_folder_has_no_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from inbedder.cli import main

    monkeypatch.delenv("INBEDDER_DATA", raising=False)
    with pytest.raises(InputError, match=r"no data folder given: pass --data-root DIR \(or set INBEDDER_DATA\)"):
        run_recipe(tmp_path / "m", None, evaluate=False, progress=False)
    result = CliRunner().invoke(main, ["train", "recipe", "-o", str(tmp_path / "m"), "--no-eval"])
    assert result.exit_code == 1 and "no data folder given" in result.output and "banking77/" in result.output
    monkeypatch.setenv("INBEDDER_DATA", str(tmp_path / "nowhere"))
    result = CliRunner().invoke(main, ["train", "recipe", "-o", str(tmp_path / "m"), "--no-eval"])
    assert result.exit_code == 1 and "nowhere" in result.output and "is missing" in result.output
    assert not (tmp_path / "m.work").exists()  # refused before anything is written
