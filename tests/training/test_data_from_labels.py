"""`inbedder data from-labels`: labelled files → QA and MEDI records (balanced, deduplicated, seeded split)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from inbedder.cli import main
from inbedder.errors import InputError
from inbedder.training.data import LabelSpec, from_labels, humanize, read_label_map
from inbedder.training.records import read_medi, read_qa

ROWS = [("The soup was cold.", "food", "negative"), ("Lovely soup!", "food", "positive"),
        ("The waiter was rude.", "service", "negative"), ("Very friendly staff.", "service", "positive"),
        ("Bread was stale.", "food", "negative"), ("Great pasta.", "food", "positive"),
        ("Slow service tonight.", "service", "negative"), ("Kind waiters.", "service", "positive")] * 1


def _csv(path: Path, rows: list[tuple[str, str, str]] = ROWS) -> Path:
    lines = ["text,aspect,polarity"] + [f'"{t}",{a},{p}' for t, a, p in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


SPEC = LabelSpec(("aspect", "polarity"), {"aspect": ("What is discussed?", "Which aspect?"),
                                          "polarity": ("How does the reviewer feel?",)}, dev_fraction=0.25)


def test_humanize_labels() -> None:
    assert humanize("card_arrival") == "card arrival"
    assert humanize("beneficiary__not_allowed") == "beneficiary not allowed"


def test_qa_records_cover_every_axis_and_split_by_text(tmp_path: Path) -> None:
    built = from_labels([_csv(tmp_path / "r.csv")], SPEC)
    records = built.train + built.dev
    assert len(records) == 2 * len(ROWS)  # one record per (text, axis)
    assert {r["answer"] for r in records if r["axis"] == "polarity"} == {"negative", "positive"}
    assert {r["instruction"] for r in records if r["axis"] == "aspect"} <= set(SPEC.questions["aspect"])
    assert not {r["input"] for r in built.train} & {r["input"] for r in built.dev}
    assert len({r["input"] for r in built.dev}) == 2  # 25 % of 8 texts
    again = from_labels([_csv(tmp_path / "r.csv")], SPEC)
    assert again.train == built.train and again.dev == built.dev  # seeded


def test_duplicates_are_counted_and_classes_capped(tmp_path: Path) -> None:
    rows = ROWS + [("the soup was  COLD.", "food", "negative"), ("Lovely soup!", "service", "negative")]
    spec = LabelSpec(SPEC.labels, SPEC.questions, max_per_class=2, dev_fraction=0.0)
    built = from_labels([_csv(tmp_path / "r.csv", rows)], spec)
    assert built.stats["duplicates"] == 1 and built.stats["conflicts"] == 1 and built.stats["rows"] == len(ROWS)
    assert built.stats["axes"]["aspect"] == {"food": 2, "service": 2}
    assert len([r for r in built.train if r["axis"] == "aspect"]) == 4


def test_medi_records_have_positive_and_hard_negative(tmp_path: Path) -> None:
    spec = LabelSpec(SPEC.labels, SPEC.questions, dev_fraction=0.0)
    built = from_labels([_csv(tmp_path / "r.csv")], spec, fmt="medi")
    label = {t: (a, p) for t, a, p in ROWS}
    assert len(built.train) == 2 * len(ROWS) and built.stats["hard_negatives"] == len(built.train)
    for r in built.train:
        axis = r["task_id"]
        q, pos, neg = label[r["query"][1]], label[r["pos"][1]], label[r["neg"][1]]
        assert r["pos"][1] != r["query"][1] and q[axis] == pos[axis] and q[axis] != neg[axis]
        assert q[1 - axis] == neg[1 - axis]  # the hard negative shares the other axis' label
        assert r["query"][0] == r["pos"][0] == r["neg"][0]


def test_label_map_and_cli_write_readable_files(tmp_path: Path) -> None:
    (tmp_path / "l.jsonl").write_text("".join(json.dumps({"sentence": t, "y": i % 2}) + "\n"
                                              for i, (t, _, _) in enumerate(ROWS)))
    (tmp_path / "names.txt").write_text("card_arrival\nexchange_rate\n")
    assert read_label_map(tmp_path / "names.txt") == {"0": "card_arrival", "1": "exchange_rate"}
    for fmt in ("qa", "medi"):
        out = tmp_path / fmt
        result = CliRunner().invoke(main, ["data", "from-labels", str(tmp_path / "l.jsonl"), "--text-column",
                                           "sentence", "-l", "y", "-q", "y=What is it about?", "-q",
                                           "y=Which topic?", "--label-map", f"y={tmp_path / 'names.txt'}",
                                           "--format", fmt, "-o", str(out)])
        assert result.exit_code == 0, result.output
        records = (read_qa if fmt == "qa" else read_medi)(out / "train.jsonl")
        assert records and json.loads((out / "stats.json").read_text())["format"] == fmt
    answers = {r["answer"] for r in read_qa(tmp_path / "qa" / "train.jsonl")}
    assert answers == {"card arrival", "exchange rate"}


def test_errors_name_the_problem(tmp_path: Path) -> None:
    path = _csv(tmp_path / "r.csv")
    with pytest.raises(InputError, match="no question for the label column 'polarity'"):
        LabelSpec(("aspect", "polarity"), {"aspect": ("Which aspect?",)})
    bad_map = LabelSpec(("aspect",), {"aspect": ("Which?",)}, label_maps={"aspect": {"0": "x"}})
    with pytest.raises(InputError, match=r"row 1 .*'food' is not in the label map"):
        from_labels([path], bad_map)
    result = CliRunner().invoke(main, ["data", "from-labels", str(path), "-l", "topic", "-q", "topic=What?",
                                       "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "none of the label columns" in result.output


def test_parquet_input(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"text": [t for t, _, _ in ROWS], "aspect": [a for _, a, _ in ROWS],
                      "polarity": [p for _, _, p in ROWS]})
    pq.write_table(table, tmp_path / "r.parquet")
    built = from_labels([tmp_path / "r.parquet"], SPEC)
    assert built.train + built.dev and built.stats["rows"] == len(ROWS)
    assert built.train == from_labels([_csv(tmp_path / "r.csv")], SPEC).train
