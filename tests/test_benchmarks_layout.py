"""The benchmark scripts call the public library: no script imports another (shared plumbing lives in
``benchmarks/common.py``), none imports a private inbedder name or reaches into a family encoder's methods, and
the metrics they take from ``inbedder.evaluation`` are the usual ones."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))
SHARED = "common"  # the one module every script may import
# What a script may read from a model's family encoder: its shape and prompt settings, its tokenizer (to count
# tokens) and its save method. Never its methods (one_pass, prompt_ids, generate, call_settings, ...), its raw
# transformers model, or an assignment to it.
ENCODER_READS = {"num_layers", "pattern", "tokenizer", "max_length", "save_pretrained"}
OTHER_LIBRARIES = {"torch"}  # whose private names are that library's business, not inbedder's


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def problems(path: Path) -> list[str]:
    """Each rule a script breaks, as ``file:line: what``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    siblings = {p.stem for p in SCRIPTS} - {SHARED, path.stem}
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []

    def bad(node: ast.AST, what: str) -> None:
        found.append(f"{path.name}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in siblings:
                    bad(node, f"imports the script {alias.name}")
                if alias.name.split(".")[0] == "inbedder" and any(map(private, alias.name.split("."))):
                    bad(node, f"imports the private module {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            if top in siblings:
                bad(node, f"imports from the script {node.module}")
            if top == "inbedder":
                for name in [*node.module.split("."), *(a.name for a in node.names)]:
                    if private(name):
                        bad(node, f"imports the private name {name} from {node.module}")
        elif isinstance(node, ast.Attribute):
            if private(node.attr) and root(node) not in OTHER_LIBRARIES:
                bad(node, f"reads the private attribute {node.attr}")
            if node.attr == "encoder":
                parent = parents.get(node)
                if not (isinstance(parent, ast.Attribute) and parent.value is node and parent.attr in ENCODER_READS
                        and isinstance(parent.ctx, ast.Load)):
                    what = parent.attr if isinstance(parent, ast.Attribute) else "itself"
                    bad(node, f"reaches into the family encoder ({what}); use the model's public encode")
    return found


def test_every_benchmark_script_is_checked() -> None:
    names = {p.stem for p in SCRIPTS}
    assert SHARED in names and {"encode_speed", "answer_defaults", "trained_readouts"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_a_script_imports_no_sibling_script_and_no_private_name(path: Path) -> None:
    assert problems(path) == []


def test_the_checks_catch_what_they_forbid(tmp_path: Path) -> None:
    script = tmp_path / "made_up.py"
    script.write_text("\n".join([
        "from encode_speed import read_texts",
        "import trained_readouts",
        "from inbedder.encoders.causal import _Stop",
        "from inbedder._private import thing",
        "vectors = model.encoder.one_pass(ids, mask, 3)",
        "enc = model.encoder",
        "model.encoder.pattern = 'x'",
        "n = model.encoder._prompt_lengths(pairs, None)",
        "fine = model.encoder.num_layers + torch.ops.mkldnn._is_mkldnn_fp16_supported()",
        "from common import DATA",
    ]), encoding="utf-8")
    found = problems(script)
    assert sorted(int(line.split(":")[1]) for line in found) == [1, 2, 3, 4, 5, 6, 7, 8, 8]
    assert any("_Stop" in line for line in found) and any("one_pass" in line for line in found)


def test_v_measure_is_scikit_learns() -> None:
    pytest.importorskip("sklearn")
    from sklearn.metrics import v_measure_score

    from inbedder.evaluation.clustering import v_measure

    rng = np.random.default_rng(0)
    labels, clusters = rng.integers(0, 4, 60), rng.integers(0, 3, 60)
    assert v_measure(labels, clusters) == pytest.approx(v_measure_score(labels, clusters))
    assert v_measure(["a", "a", "b", "b"], [1, 1, 0, 0]) == 1.0
    assert v_measure(["a", "a", "b", "b"], [0, 0, 0, 0]) == 0.0
