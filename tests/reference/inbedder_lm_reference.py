"""Run the reference InBedder masked-LM and seq2seq encoders (``lm_encoders_hf`` of zhang-yu-wei/InBedder).

Runs inside the reference environment (see tests/reference/requirements.txt), not inbedder's:

    python inbedder_lm_reference.py REFERENCE_REPO JOB.json OUT_DIR

REFERENCE_REPO is a checkout of github.com/zhang-yu-wei/InBedder. JOB.json::

    {"class": "MaskededLMEncoder", "init": {...}, "reencoder": false,
     "calls": [{"output_value": "avg_gen_layer_2", "encode": {"batch_size": 3}, "sentences": [...]}]}

``reencoder: true`` passes tests/helpers/tiny_lms.py's TextStats. For call i, writes OUT_DIR/i.npy (the embeddings)
and OUT_DIR/i.json (the generations).
"""

import json
import os
import sys

import numpy as np

repo, job_file, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
if not os.path.exists(os.path.join(repo, "lm_encoders_hf", "maskedlm_encoder_hf.py")):
    sys.exit(f"error: {repo} has no lm_encoders_hf; REFERENCE_REPO must be a checkout of zhang-yu-wei/InBedder")
sys.path.insert(0, repo)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import lm_encoders_hf  # noqa: E402

from helpers.tiny_lms import TextStats  # noqa: E402

with open(job_file, encoding="utf-8") as f:
    job = json.load(f)
init = dict(job["init"])
if job.get("reencoder"):
    init["reencoder"] = TextStats()
encoder = getattr(lm_encoders_hf, job["class"])(**init)
for i, call in enumerate(job["calls"]):
    encoder.set_output_value(call["output_value"])
    embeddings, generations = encoder.encode(call["sentences"], return_generations=True, **call["encode"])
    np.save(os.path.join(out_dir, f"{i}.npy"), np.asarray(embeddings, dtype=np.float32))
    with open(os.path.join(out_dir, f"{i}.json"), "w", encoding="utf-8") as f:
        json.dump(generations, f)
