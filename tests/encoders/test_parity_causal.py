"""The causal-LM family against the reference InBedder CausalLMEncoder, on the same checkpoints and prompts.

Greedy decoding, fp32, max abs diff <= 1e-4: every output value at the first, middle and last layer, batch sizes
1, 4 and 32, prompts that get cut to the length limit included; the generations' text must be equal. The
reference runs in its own venv (INBEDDER_REFERENCE_PYTHON) from a checkout of github.com/zhang-yu-wei/InBedder
(INBEDDER_REFERENCE_REPO); see tests/reference/causal_reference.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from helpers.reference_runner import reference_python
from helpers.tiny_causal import build_tiny_llama, build_tiny_opt
from inbedder import load
from inbedder.compat import CausalLMEncoder
from inbedder.encoders.base import Output
from inbedder.encoders.causal import INBEDDER_PATTERN, CausalEncoder, Generation

TESTS = Path(__file__).parents[1]
VALUES = ("fst_gen", "avg_gen", "last_gen", "avg_ppt", "avg_all")
TOL = 1e-4
REL = 1e-6  # and 1e-6 of the largest |value| (SmolLM2's middle layer reaches ~1000, where fp32 steps are 6e-5)
TEXTS = [
    "I love cat!", "I dislike dog!", "The funds rose less than 0.5 per cent on Friday.", "Where is the food stored?",
    "3D ActionSLAM: wearable person tracking", "Capitalism has been dominant.", "x", "",
    "Dynamical Scalar Degree of Freedom in Gravity", "The quick brown fox jumps over the lazy dog.",
    "Parton energy loss in QCD matter. " * 3,  # cut to the limit
    "The Chiral Phase Transition in Dissipative Dynamics, and the Federal Reserve on Wednesday.",  # cut too
    "What is the emotion?", "abc def", "Represent the title", "I love dog! I love cat!",
]
INSTRUCTIONS = ["What is the animal mentioned here?", "What is the emotion expressed here?"]
PAIRS = [(INSTRUCTIONS[i % 2], t) for i, t in enumerate(TEXTS)] + [(INSTRUCTIONS[1 - i % 2], t)
                                                                   for i, t in enumerate(TEXTS)][:18]
PROMPTS = [INBEDDER_PATTERN.replace("{input}", t).replace("{instruction}", i) for i, t in PAIRS]  # as users do
pytestmark = pytest.mark.reference  # needs a checkout of the reference repository

LIMIT, NEW = 48, 6
GENERATION = {"max_new_tokens": NEW, "do_sample": False}


def reference_repo() -> str:
    from helpers.reference_runner import inbedder_reference_repo

    return inbedder_reference_repo("causallm_encoder_hf.py")


def run_reference(model_dir: Path, runs: list[dict], out: Path) -> dict[str, dict]:
    """Run the reference on ``runs``; per run name: every value/layer array, generations and answers."""
    spec = out / "spec.json"
    spec.write_text(json.dumps({"model": str(model_dir), "runs": runs}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run([reference_python(), str(TESTS / "reference" / "causal_reference.py"), reference_repo(),
                           str(spec), str(out)], capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"reference run failed:\n{proc.stderr[-3000:]}")
    result = {}
    for run in runs:
        where = out / run["name"]
        result[run["name"]] = {"embeds": load_file(str(where / "embeds.safetensors")),
                               "generations": json.loads((where / "generations.json").read_text(encoding="utf-8")),
                               "answers": json.loads((where / "answers.json").read_text(encoding="utf-8")),
                               "reencoded": json.loads((where / "reencoded.json").read_text(encoding="utf-8"))}
    return result


def first_token_ends(encoder: CausalEncoder, prompts: list[str], new: int) -> list[bool]:
    """Prompts whose greedy answer starts with a special token: alone in a batch, they crash the reference."""
    ends = []
    with torch.inference_mode():
        for prompt in prompts:
            ids, mask, _, _ = encoder.tokenize([prompt], False, [True], False)
            _, _, seqs = encoder.generate(ids, mask, 0, Generation(max_new_tokens=new))
            ends.append(int(seqs[0, ids.shape[1]]) in encoder.tokenizer.all_special_ids)
    return ends


def filter_words_for(encoder: CausalEncoder) -> list[str]:
    """Words that the tiny model does generate (single decoded answer tokens), so filtering changes vectors."""
    ids, mask, _, _ = encoder.tokenize(PROMPTS[:8], False, [True] * 8, False)
    with torch.inference_mode():
        _, _, seqs = encoder.generate(ids, mask, 0, Generation(max_new_tokens=NEW))
    picked = {encoder.tokenizer.decode([t]) for t in seqs[:, ids.shape[1] + 1].tolist()}
    return sorted(w for w in picked if w.strip())[:3]


def layers_of(n_layers: int) -> tuple[int, ...]:
    return (0, n_layers // 2, n_layers)


class Setup:
    def __init__(self, model_dir: Path, tmp: Path):
        self.dir = model_dir
        self.api = load(model_dir, device="cpu", max_length=LIMIT, max_new_tokens=NEW)
        self.api_prompts = self.api.encoder.prompts(PAIRS, limit=LIMIT)[0]
        self.shim = CausalLMEncoder(str(model_dir), max_input_length=LIMIT, **GENERATION)
        ends = first_token_ends(self.shim.encoder, PROMPTS, NEW)
        self.single = [p for p, e in zip(PROMPTS, ends, strict=True) if not e][:12]
        self.words = filter_words_for(self.shim.encoder)
        base = {"max_input_length": LIMIT, "generation": GENERATION}
        runs = [{"name": "bs1", "prompts": self.single, "batch_size": 1, **base},
                {"name": "bs4", "prompts": PROMPTS, "batch_size": 4, **base},
                {"name": "bs32", "prompts": PROMPTS, "batch_size": 32, **base},
                {"name": "api", "prompts": self.api_prompts, "batch_size": 4, "max_input_length": 512,
                 "generation": GENERATION},
                {"name": "filter", "prompts": PROMPTS, "batch_size": 4, "filter_words": self.words, **base}]
        self.ref = run_reference(model_dir, runs, tmp)
        self.layers = layers_of(self.api.encoder.num_layers)


@pytest.fixture(scope="module", params=["llama", "opt"])
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    build = {"llama": build_tiny_llama, "opt": build_tiny_opt}[request.param]
    model_dir = build(tmp_path_factory.mktemp(f"tiny_{request.param}"))
    return Setup(model_dir, tmp_path_factory.mktemp(f"ref_{request.param}"))


def assert_close(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert ours.shape == ref.shape, what
    diff, scale = float(np.abs(ours - ref).max()), float(np.abs(ref).max())
    assert diff <= TOL + REL * scale, f"{what}: max abs diff {diff:.2e} (largest |value| {scale:.1f})"


@pytest.mark.parametrize("batch", ["bs1", "bs4", "bs32"])
def test_compat_matches_reference(setup: Setup, batch: str) -> None:
    ref = setup.ref[batch]
    prompts = setup.single if batch == "bs1" else PROMPTS
    for value in VALUES:
        for layer in setup.layers:
            setup.shim.set_output_value(f"{value}_layer_{layer}")
            ours = setup.shim.encode(prompts, batch_size=int(batch[2:]))
            assert_close(ours, ref["embeds"][f"{value}_layer_{layer}"], f"{batch} {value} layer {layer}")
    setup.shim.set_output_value(f"avg_gen_layer_{setup.layers[-1]}")
    _, generations = setup.shim.encode(prompts, batch_size=int(batch[2:]), return_generations=True)
    assert generations == ref["generations"]


def test_cut_prompts_are_in_the_parity_set(setup: Setup) -> None:
    tokenizer = setup.shim.tokenizer
    assert sum(len(tokenizer(p)["input_ids"]) > LIMIT for p in PROMPTS) >= 3
    assert sum(len(tokenizer(p)["input_ids"]) > LIMIT for p in setup.single) >= 2


def test_api_matches_reference_on_the_prompts_it_builds(setup: Setup) -> None:
    ref = setup.ref["api"]
    instructions = [i for i, _ in PAIRS]
    texts = [t for _, t in PAIRS]
    for value in VALUES:
        for layer in setup.layers:
            ours = setup.api.encode(texts, instruction=instructions, output_value=value, layer=layer, batch_size=4)
            assert_close(ours, ref["embeds"][f"{value}_layer_{layer}"], f"api {value} layer {layer}")
    _, answers = setup.api.encode(texts, instruction=instructions, output_value="avg_gen", batch_size=4,
                                  return_generations=True)
    assert answers == ref["answers"]
    assert any(answers)


def test_api_keeps_instruction_and_cue_when_cutting(setup: Setup) -> None:
    for (instruction, text), prompt in zip(PAIRS, setup.api_prompts, strict=True):
        assert prompt.endswith(f"\n\n### Instruction:\n{instruction}\n\n### Response:")
        kept = prompt[len("### Input:\n"):prompt.index("\n\n### Instruction:")]
        assert text.endswith(kept)
    assert sum(p != q for p, q in zip(setup.api_prompts, PROMPTS, strict=True)) >= 3


def test_filter_words_match_reference(setup: Setup) -> None:
    ref = setup.ref["filter"]
    assert setup.words
    changed = 0
    for value in ("avg_gen", "last_gen", "avg_all"):
        for layer in setup.layers:
            setup.shim.set_output_value(f"{value}_layer_{layer}")
            ours = setup.shim.encode(PROMPTS, batch_size=4, filter_words=setup.words)
            assert_close(ours, ref["embeds"][f"{value}_layer_{layer}"], f"filter {value} layer {layer}")
            changed += not np.allclose(ours, setup.ref["bs4"]["embeds"][f"{value}_layer_{layer}"])
    assert changed  # the words were generated, so some vectors differ from the unfiltered ones


class Recorder:
    """A reencoder with per-text vectors (length and vowel count) that records what it is given."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str], show_progress_bar: bool = False) -> np.ndarray:
        self.seen.extend(texts)
        return np.array([[len(t), sum(c in "aeiou" for c in t)] for t in texts], dtype=np.float32)


@pytest.mark.parametrize("words", [False, True])
def test_re_encode_matches_reference(setup: Setup, words: bool) -> None:
    """``re_encode`` gives the reencoder the texts the reference gives it (filter_words removed); generations
    stay the whole sequences."""
    run = setup.ref["filter" if words else "bs4"]
    recorder = Recorder()
    shim = CausalLMEncoder(str(setup.dir), max_input_length=LIMIT, reencoder=recorder, **GENERATION)
    shim.set_output_value("re_encode")
    vectors, generations = shim.encode(PROMPTS, batch_size=4, return_generations=True,
                                       filter_words=setup.words if words else None)
    assert recorder.seen == run["reencoded"]
    assert np.array_equal(vectors, Recorder().encode(run["reencoded"]))
    assert generations == run["generations"]


def test_fast_path_equals_generate_path(setup: Setup) -> None:
    encoder = setup.api.encoder
    with torch.inference_mode():
        for value in ("fst_gen", "avg_ppt"):
            for layer in setup.layers:
                for rows in (PAIRS[:1], PAIRS[:4], PAIRS):
                    fast = encoder.embed_batch(rows, Output.SENTENCE, output_value=value, layer=layer)
                    slow = encoder.embed_batch(rows, Output.SENTENCE, return_generations=True, output_value=value,
                                               layer=layer)
                    assert fast.answers is None and slow.answers is not None
                    assert float((fast.vectors - slow.vectors).abs().max()) <= 1e-5, (value, layer, len(rows))


SMOL_PROMPTS = [INBEDDER_PATTERN.replace("{input}", t).replace("{instruction}", i) for i, t in [
    ("What is the animal mentioned here?", "I love cat!"),
    ("What is the emotion expressed here?", "I dislike dog!"),
    ("What is the topic?", "The Federal Reserve on Wednesday raised its benchmark interest rate."),
    ("What is the intent?", "how do i transfer money to my savings account"),
    ("What is the domain?", "set an alarm for 7 am tomorrow"),
    ("Which city?", "What's the weather in Paris this weekend?"),
    ("What is the topic?", "Parton energy loss in QCD matter and the chiral phase transition. " * 6),
    ("What is the emotion expressed here?", "I waited two hours and nobody answered my call, this is awful. " * 5),
]]


@pytest.mark.slow
def test_smollm2_matches_reference(tmp_path: Path) -> None:
    """SmolLM2-135M-Instruct from its GGUF file; the reference reads a transformers copy saved by inbedder.

    Prompt states are bit-identical. States over answer tokens in padded batches differ by fp32 rounding:
    transformers 5 decodes grouped-query attention without repeating keys and values (4.44 repeats them).
    Measured on every layer at batch 32: up to 1.2e-4 at layers 28-29, where |x| reaches ~500 (2.4e-7 relative);
    at the layers checked here it stays under 2e-5."""
    shim = CausalLMEncoder("smollm2-135m-instruct", max_input_length=64, max_new_tokens=3, do_sample=False)
    converted = shim.encoder.save_pretrained(tmp_path / "smollm2")
    assert "quantization_config" not in json.loads((converted / "config.json").read_text())
    ends = first_token_ends(shim.encoder, SMOL_PROMPTS, 3)
    single = [p for p, e in zip(SMOL_PROMPTS, ends, strict=True) if not e]
    base = {"max_input_length": 64, "generation": {"max_new_tokens": 3, "do_sample": False}}
    ref = run_reference(converted, [{"name": "bs1", "prompts": single, "batch_size": 1, **base},
                                    {"name": "bs4", "prompts": SMOL_PROMPTS, "batch_size": 4, **base},
                                    {"name": "bs32", "prompts": SMOL_PROMPTS, "batch_size": 32, **base}], tmp_path)
    for batch, prompts in (("bs1", single), ("bs4", SMOL_PROMPTS), ("bs32", SMOL_PROMPTS)):
        for value in VALUES:
            for layer in layers_of(shim.encoder.num_layers):
                shim.set_output_value(f"{value}_layer_{layer}")
                ours = shim.encode(prompts, batch_size=int(batch[2:]))
                assert_close(ours, ref[batch]["embeds"][f"{value}_layer_{layer}"], f"{batch} {value} {layer}")
        shim.set_output_value("avg_gen_layer_30")
        _, generations = shim.encode(prompts, batch_size=int(batch[2:]), return_generations=True)
        assert generations == ref[batch]["generations"]
    encoder = shim.encoder
    with torch.inference_mode():
        for value in ("fst_gen", "avg_ppt"):
            for layer in layers_of(encoder.num_layers):
                rows = [(None, p) for p in SMOL_PROMPTS]
                fast = encoder.embed_batch(rows, Output.SENTENCE, output_value=value, layer=layer)
                slow = encoder.embed_batch(rows, Output.SENTENCE, return_generations=True, output_value=value,
                                           layer=layer)
                assert float((fast.vectors - slow.vectors).abs().max()) <= 1e-5, (value, layer)
