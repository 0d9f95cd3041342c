"""Call the reference implementations, which live in their own virtualenv (.venv-ref)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np

TESTS = Path(__file__).parents[1]


def reference_python() -> str:
    """The reference venv's python; a clear failure (not a skip) when it is missing."""
    python = os.environ.get("INBEDDER_REFERENCE_PYTHON") or str(TESTS.parent / ".venv-ref" / "bin" / "python")
    if not Path(python).exists():
        raise RuntimeError(
            f"reference environment not found at {python}: run `make .venv-ref/.installed` "
            "(or `make test`), or set INBEDDER_REFERENCE_PYTHON"
        )
    return python


def run_instructor_reference(model_dir: Path, jobs: list[dict], tmp: Path) -> dict[str, np.ndarray]:
    """Run INSTRUCTOR jobs in the reference venv; returns the npz arrays (see instructor_reference.py)."""
    jobs_path, out = tmp / "jobs.json", tmp / "ref.npz"
    jobs_path.write_text(json.dumps(jobs), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run([reference_python(), str(TESTS / "reference" / "instructor_reference.py"), str(model_dir),
                           str(jobs_path), str(out)], capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"reference run failed:\n{proc.stderr[-3000:]}")
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


INBEDDER_COMMIT = "3d95d4fa1005b446a3bce40d17d2548eb2a2d977"  # zhang-yu-wei/InBedder, folder lm_encoders_hf


def inbedder_reference_repo(needed_file: str) -> str:
    """The InBedder reference checkout (INBEDDER_REFERENCE_REPO); a clear failure, never a skip, when missing."""
    import pytest

    repo = os.environ.get("INBEDDER_REFERENCE_REPO", "")
    if not (Path(repo) / "lm_encoders_hf" / needed_file).exists():
        pytest.fail(f"INBEDDER_REFERENCE_REPO={repo!r} is not a checkout of the reference. Get one with: git clone "
                    f"https://github.com/zhang-yu-wei/InBedder DIR && git -C DIR checkout {INBEDDER_COMMIT}, then "
                    "run: make test-reference INBEDDER_REFERENCE_REPO=DIR")
    return repo
