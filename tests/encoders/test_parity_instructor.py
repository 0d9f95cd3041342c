"""inbedder.compat.INSTRUCTOR against the reference implementation, on the same checkpoints and inputs.

Tolerance: max abs diff <= 1e-5 (fp32). The reference runs in its own venv (tests/helpers/reference_runner.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.reference_runner import run_instructor_reference
from inbedder.compat import INSTRUCTOR

LONG = " ".join(f"word{i} alpha beta gamma" for i in range(260))  # far past 512 tokens
TEXTS = [
    "3D ActionSLAM: wearable person tracking in multi-floor environments",
    "",
    "  Parton energy loss in QCD matter  ",
    LONG,
    "I love cat!",
    "The Federal Reserve on Wednesday raised its benchmark interest rate.",
    "x",
    "Where is the food stored in a yam plant?",
    "The quick brown fox jumps over the lazy dog. " * 5,
]
INSTRUCTIONS = [
    "Represent the Science title:",
    "Represent the Financial statement: ",
    "Represent the Wikipedia document for retrieval: ",
    "What is the animal mentioned here?",
    "a",
    "",
    "Represent the Medicine sentence for clustering:",
    "Represent the Wikipedia question for retrieving supporting documents: ",
    "Represent the sentence:",
]
SAME = [["Represent the Science title:", t] for t in TEXTS]
PER_ROW = [[i, t] for i, t in zip(INSTRUCTIONS, TEXTS, strict=False)]
# More rows than the largest batch size, with repeats, so batches of 32 really hold several lengths.
MANY = (PER_ROW * 4)[:35]
JOBS = [{"sentences": s, "batch_size": b} for s in (SAME, PER_ROW, MANY) for b in (1, 7, 32)]
JOBS += [{"sentences": TEXTS, "batch_size": 4},
         {"sentences": PER_ROW, "batch_size": 3, "output_value": "token_embeddings"}]


def check_parity(model_dir: Path, tmp_path: Path) -> None:
    reference = run_instructor_reference(model_dir, JOBS, tmp_path)
    model = INSTRUCTOR(str(model_dir), device="cpu")
    for i, job in enumerate(JOBS):
        if job.get("output_value") == "token_embeddings":
            ours = model.encode(job["sentences"], batch_size=job["batch_size"], output_value="token_embeddings")
            assert len(ours) == len(job["sentences"])
            for row, tokens in enumerate(ours):
                ref = reference[f"{i}_{row}"]
                assert tokens.shape == ref.shape, (i, row)
                assert np.abs(tokens.numpy() - ref).max() <= 1e-5, (i, row)
            continue
        ours = model.encode(job["sentences"], batch_size=job["batch_size"])
        assert ours.shape == reference[str(i)].shape
        diff = np.abs(ours - reference[str(i)]).max()
        assert diff <= 1e-5, f"job {i} (batch size {job['batch_size']}): max abs diff {diff}"


def test_t5_with_dense_and_normalize_matches_reference(tiny_t5_dir: Path, tmp_path: Path) -> None:
    check_parity(tiny_t5_dir, tmp_path)


def test_bert_matches_reference(tiny_bert_dir: Path, tmp_path: Path) -> None:
    check_parity(tiny_bert_dir, tmp_path)


@pytest.mark.slow
def test_all_minilm_l6_v2_matches_reference(tmp_path: Path) -> None:
    from inbedder.registry import resolve

    check_parity(resolve("minilm").path, tmp_path)
