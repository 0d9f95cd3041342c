"""Run the reference INSTRUCTOR implementation (InstructorEmbedding 1.0.1 on sentence-transformers 2.2.2).

Runs inside the reference environment (.venv-ref, see tests/reference/requirements.txt), not inbedder's:

    python instructor_reference.py MODEL_DIR JOBS.json OUT.npz

JOBS.json is a list of {"sentences": [...], "batch_size": int, "output_value": str}; for job i the
output holds ``i`` (sentence embeddings) or ``i_<row>`` (token embeddings, one array per row).
"""

import json
import sys

import numpy as np
from InstructorEmbedding import INSTRUCTOR

model_dir, jobs_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
with open(jobs_path, encoding="utf-8") as f:
    jobs = json.load(f)
model = INSTRUCTOR(model_dir, device="cpu")
arrays = {}
for i, job in enumerate(jobs):
    output_value = job.get("output_value", "sentence_embedding")
    result = model.encode(job["sentences"], batch_size=job["batch_size"], output_value=output_value)
    if output_value == "token_embeddings":
        for row, tokens in enumerate(result):
            arrays[f"{i}_{row}"] = tokens.numpy()
    else:
        arrays[str(i)] = result
np.savez(out, **arrays)
