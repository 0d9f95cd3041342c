"""Run the reference INSTRUCTOR implementation (InstructorEmbedding 1.0.1, sentence-transformers 2.2.2).

Runs inside the reference environment (see tests/reference/requirements.txt), not inbedder's:

    python instructor_reference.py MODEL_DIR INPUTS.json OUT.npy BATCH_SIZE

INPUTS.json holds the ``sentences`` argument of ``INSTRUCTOR.encode``.
"""

import json
import sys

import numpy as np
from InstructorEmbedding import INSTRUCTOR

model_dir, inputs, out, batch_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with open(inputs, encoding="utf-8") as f:
    sentences = json.load(f)
model = INSTRUCTOR(model_dir, device="cpu")
np.save(out, model.encode(sentences, batch_size=batch_size))
