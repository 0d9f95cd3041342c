"""Run the reference InBedder CausalLMEncoder (lm_encoders_hf/causallm_encoder_hf.py) on a list of prompts.

Runs inside the reference environment (see tests/reference/requirements.txt), not inbedder's:

    python causal_reference.py REFERENCE_REPO SPEC.json OUT_DIR

REFERENCE_REPO is a checkout of github.com/zhang-yu-wei/InBedder. SPEC.json::

    {"model": DIR, "runs": [{"name": "bs4", "prompts": [...], "batch_size": 4, "max_input_length": 512,
                             "generation": {"max_new_tokens": 3, "do_sample": false}, "filter_words": null,
                             "output_value": "fst_gen_layer_30", "last_layer_only": false, "repeats": 0}]}

For each run, OUT_DIR/NAME/ receives what the reference's own cache writes (``embeds.safetensors``: every output
value at every layer; ``generations.json``: the decoded sequences it returns), plus ``answers.json`` (the decoded
new tokens it computes, in input order), ``reencoded.json`` (the texts it gives its reencoder: the answers
without special tokens and ``filter_words``, in input order) and, with ``repeats`` > 0, ``times.json``: seconds
per timed ``encode`` of ``output_value`` with no cache.
"""

import importlib.util
import json
import os
import sys
import time

import numpy as np
import torch

repo, spec_file, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
source = os.path.join(repo, "lm_encoders_hf", "causallm_encoder_hf.py")
if not os.path.exists(source):
    sys.exit(f"error: {source} not found; REFERENCE_REPO must be a checkout of zhang-yu-wei/InBedder")
module_spec = importlib.util.spec_from_file_location("reference_causallm", source)
reference = importlib.util.module_from_spec(module_spec)
module_spec.loader.exec_module(reference)

with open(spec_file, encoding="utf-8") as f:
    spec = json.load(f)
torch.set_num_threads(int(spec.get("threads") or torch.get_num_threads()))
encoders = {}
for run in spec["runs"]:
    key = json.dumps([run.get("max_input_length", 512), run.get("generation", {}), run.get("last_layer_only", False),
                      run.get("dtype", "float32")], sort_keys=True)
    if key not in encoders:
        encoders[key] = reference.CausalLMEncoder(spec["model"], max_input_length=run.get("max_input_length", 512),
                                                  dtype=run.get("dtype", "float32"),
                                                  last_layer_only=run.get("last_layer_only", False),
                                                  **run.get("generation", {}))
    encoder = encoders[key]
    prompts = run["prompts"]
    answers_sorted = []
    aggregate = encoder._aggregate_embeddings

    def recording(hidden_states, attention_mask, generations, decoded_ids, filter_ids, _aggregate=aggregate,
                  _answers=answers_sorted):
        _answers.extend(generations)  # the answer-only decoding the reference computes, batch by batch
        return _aggregate(hidden_states, attention_mask, generations, decoded_ids, filter_ids)

    encoder._aggregate_embeddings = recording
    target = os.path.join(out_dir, run["name"])
    reencoded_sorted = []

    class Recorder:  # a reencoder that records the texts the reference re-encodes
        def __init__(self, seen):
            self.seen = seen

        def encode(self, texts, show_progress_bar=False):
            self.seen.extend(texts)
            return np.zeros((len(texts), 1), dtype=np.float32)

    encoder.reencoder = Recorder(reencoded_sorted)
    encoder.set_output_value(run.get("output_value", "fst_gen_layer_0"))
    encoder.encode(prompts, batch_size=run["batch_size"], cache_dir=target, filter_words=run.get("filter_words"))
    order = np.argsort([-len(p) for p in prompts])  # the reference's own length sort
    for name, recorded in (("answers", answers_sorted), ("reencoded", reencoded_sorted)):
        in_order = [""] * len(prompts)
        for position, index in enumerate(order):
            in_order[index] = recorded[position]
        with open(os.path.join(target, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(in_order, f)
    encoder._aggregate_embeddings = aggregate
    encoder.reencoder = None
    times = []
    for _ in range(int(run.get("repeats", 0))):
        start = time.perf_counter()
        encoder.encode(prompts, batch_size=run["batch_size"])
        times.append(time.perf_counter() - start)
    if times:
        with open(os.path.join(target, "times.json"), "w", encoding="utf-8") as f:
            json.dump(times, f)
