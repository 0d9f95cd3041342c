"""The default answer model's readout in inbedder against llama.cpp on the same GGUF file, timed in the same rounds.

inbedder's runners are its ``--variants`` (float32, int8, auto: what ``load()`` gives for each ``quantize``), read
at the model's own readout (``fst_gen``: the last prompt token's last-layer state). llama.cpp's runner is
llama-cpp-python on the GGUF file inbedder reads (``inbedder.registry.resolve``), ``embedding=True`` with last-token
pooling, its weights as stored (Q4_K_M), the same threads, up to ``--batch-size`` sequences a decode. Its prompts
are rendered with the chat template stored in the GGUF file (llama-cpp-python's ``Jinja2ChatFormatter``) around
inbedder's message (``registry.ONE_WORD_CHAT``), and tokenized with special tokens parsed (``Llama.embed`` would
read ``<|im_start|>`` as plain text); the min cosine to inbedder float32 shows whether both read the same prompt.

Speed: :func:`inbedder.apps.benchmark.bench_encoder` (alternating rounds, medians, process CPU seconds too).
llama-cpp-python builds llama.cpp from source (10–30 minutes on 2 cores), so it lives in the benchmark venv only::

    echo torch==2.13.0 > /tmp/pin.txt && .venv-peers/bin/pip install -c /tmp/pin.txt llama-cpp-python
    HF_HUB_OFFLINE=1 .venv-peers/bin/python benchmarks/answer_llama_cpp.py --n 32 --rounds 3 --json llama.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, machine  # noqa: E402


def llama_runner(path: Path, message: str, instruction: str, threads: int, batch_size: int) -> Any:
    """texts -> (n, d) last-token embeddings from llama.cpp, each text in the chat template around ``message``."""
    from llama_cpp import LLAMA_POOLING_TYPE_LAST, Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llm = Llama(model_path=str(path), embedding=True, pooling_type=LLAMA_POOLING_TYPE_LAST, n_ctx=8192,
                n_batch=4096, n_ubatch=512, n_seq_max=batch_size, n_threads=threads, n_threads_batch=threads,
                verbose=False)
    template = llm.metadata["tokenizer.chat_template"]
    render = Jinja2ChatFormatter(template, eos_token="", bos_token="", add_generation_prompt=True)
    plain = llm.tokenize
    llm.tokenize = lambda text, add_bos=True, special=False: plain(text, add_bos=False, special=True)  # type: ignore

    def encode(texts: list[str]) -> np.ndarray:
        prompts = [render(messages=[{"role": "user", "content": message.format(input=t, instruction=instruction)}])
                   .prompt for t in texts]
        return np.asarray(llm.embed(prompts), dtype=np.float32)

    return encode


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from inbedder import DEFAULT_ANSWER_MODEL, __version__
    from inbedder.apps.benchmark import bench_encoder
    from inbedder.data import showcase
    from inbedder.registry import ONE_WORD_CHAT, resolve

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULT_ANSWER_MODEL, help="an answer-model alias whose file is a GGUF")
    p.add_argument("--n", type=int, default=32, help="texts of inbedder.data.showcase()")
    p.add_argument("--instruction", default="What is the topic of this text?")
    p.add_argument("--variants", default="float32,int8,auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    path = resolve(args.model).path
    if path.suffix != ".gguf":
        raise SystemExit(f"error: {args.model} reads {path}, not a GGUF file; llama.cpp needs one")
    message = ONE_WORD_CHAT.removeprefix("chat:")
    texts = [r["text"] for r in showcase()][:args.n]
    peer = llama_runner(path, message, args.instruction, threads, args.batch_size)
    res = bench_encoder(args.model, texts, args.variants, instruction=args.instruction, batch_size=args.batch_size,
                        rounds=args.rounds, warmup=1, competitors={"llama.cpp Q4_K_M": peer}, peak_size=None)
    res.pop("vectors", None)
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": command(),
           "machine": machine(torch.device("cpu")), "inbedder": __version__, "gguf": str(path), **res}
    print(f"{out['machine']['cpu']}, {threads} threads; load average {res['load_average']}")
    print(f"{'runner':<28}{'texts/s':>9}{'x float32':>11}{'min cos':>10}")
    for name, row in res["variants"].items():
        print(f"{name:<28}{row['texts_per_s']:>9.2f}{row['vs_float32']:>11.2f}{row['min_cosine']:>10.5f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
