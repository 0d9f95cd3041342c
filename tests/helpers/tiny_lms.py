"""Tiny random answer models (2 layers, hidden 32): a RoBERTa masked LM and a flan-t5-style seq2seq LM.

Built in code, offline and deterministic. Both save a ``tokenizer.json`` that transformers 4.x and 5.x
read alike, so the same directory serves inbedder and the reference implementations.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from helpers.tiny_models import CORPUS

PATTERN_CORPUS = [
    "### Input:\nI love cat!\n\n### Instruction:\nWhat is the animal mentioned here?\n\n### Response:",
    "### Instruction:\nWhat is the emotion expressed here?\n\n### Input:\nI dislike dog!\n\n### Response:",
]
LM_CORPUS = CORPUS + PATTERN_CORPUS * 3
T5_EXTRA_IDS = 4  # like flan-t5's <extra_id_N> sentinels: additional special tokens at the end of the vocab


def _write_tokenizer(tok: Tokenizer, out: Path, special: dict[str, object], **config_extra: object) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    # merges as "a b" strings: the form every tokenizers release reads
    data = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    merges = data.get("model", {}).get("merges")
    if merges and isinstance(merges[0], list):
        data["model"]["merges"] = [" ".join(m) for m in merges]
        (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512,
              "clean_up_tokenization_spaces": False, **special, **config_extra}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def roberta_tokenizer(out: Path) -> int:
    """Byte-level BPE like RoBERTa's: ``<s> A </s></s> B </s>``; ids <s>=0, <pad>=1, </s>=2. Returns the vocab size."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(LM_CORPUS, trainers.BpeTrainer(vocab_size=420, special_tokens=special,
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                      add_prefix_space=False)
    _write_tokenizer(tok, out, {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
                                "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"},
                     model_input_names=["input_ids", "attention_mask"])
    return tok.get_vocab_size()


def flan_t5_tokenizer(out: Path) -> int:
    """Unigram + Metaspace like T5's, ``$A </s>``, a few ``<extra_id_N>`` special tokens; returns the vocab size."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.Replace("\n", " "), normalizers.Replace(" {2,}", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(LM_CORPUS, trainers.UnigramTrainer(vocab_size=300, unk_token="<unk>",
                                                               special_tokens=["<pad>", "</s>", "<unk>"]))
    extras = [f"<extra_id_{i}>" for i in reversed(range(T5_EXTRA_IDS))]
    tok.add_special_tokens(extras)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
    )
    _write_tokenizer(tok, out, {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>",
                                "additional_special_tokens": sorted(extras)},
                     model_input_names=["input_ids", "attention_mask"])
    return tok.get_vocab_size()


def build_tiny_roberta_mlm(root: Path, seed: int = 0) -> Path:
    """A ``RobertaForMaskedLM`` directory (architectures: RobertaForMaskedLM), like InBedder's RoBERTa."""
    from transformers import RobertaConfig, RobertaForMaskedLM

    vocab = roberta_tokenizer(root)
    torch.manual_seed(seed)
    config = RobertaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
                           eos_token_id=2, type_vocab_size=1)
    model = RobertaForMaskedLM(config)
    with torch.no_grad():  # a random head predicts one token everywhere; spread the predictions out
        model.lm_head.decoder.weight.normal_(0.0, 1.0)
    model.save_pretrained(root)
    return root


def build_tiny_roberta_base(root: Path) -> Path:
    """A plain ``RobertaModel`` (no LM head), to check the masked family's error."""
    from transformers import RobertaConfig, RobertaModel

    vocab = roberta_tokenizer(root)
    torch.manual_seed(1)
    config = RobertaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=130, pad_token_id=1, type_vocab_size=1)
    RobertaModel(config).save_pretrained(root)
    return root


def build_tiny_flan_t5(root: Path, seed: int = 0) -> Path:
    """A ``T5ForConditionalGeneration`` directory with flan-t5's settings (gated-gelu, untied head)."""
    from transformers import T5Config, T5ForConditionalGeneration

    vocab = flan_t5_tokenizer(root)
    torch.manual_seed(seed)
    config = T5Config(vocab_size=vocab, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2,
                      num_heads=2, feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=0,
                      eos_token_id=1, decoder_start_token_id=0)
    model = T5ForConditionalGeneration(config)
    with torch.no_grad():  # never predict <pad>; make some rows stop at </s> and some predict only sentinels
        model.lm_head.weight.normal_(0.0, 1.0)
        model.lm_head.weight[config.pad_token_id] = 0.0
        model.lm_head.weight[config.eos_token_id] *= 3.0
        model.lm_head.weight[vocab - T5_EXTRA_IDS:] *= 2.5
    model.save_pretrained(root)
    return root


class TextStats:
    """A deterministic stand-in for a sentence-transformers re-encoder: ``encode(texts)`` → ``(n, 4)`` float32
    (length, words, vowels, char-code sum mod 97)."""

    def encode(self, texts: list[str], show_progress_bar: bool = False, **_: object) -> np.ndarray:
        rows = [[len(t), len(t.split()), sum(c in "aeiou" for c in t.lower()), sum(map(ord, t)) % 97] for t in texts]
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), 4)


def reference_repo() -> str:
    from helpers.reference_runner import inbedder_reference_repo

    return inbedder_reference_repo("maskedlm_encoder_hf.py")


def run_lm_reference(job: dict, out: Path) -> list[tuple[np.ndarray, list[str]]]:
    """Run one job of tests/reference/inbedder_lm_reference.py in the reference venv; per call, the embeddings
    and the generations."""
    from helpers.reference_runner import reference_python

    repo = reference_repo()
    out.mkdir(parents=True, exist_ok=True)
    (out / "job.json").write_text(json.dumps(job), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    script = Path(__file__).parents[1] / "reference" / "inbedder_lm_reference.py"
    proc = subprocess.run([reference_python(), str(script), repo, str(out / "job.json"), str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"reference run failed:\n{proc.stderr[-3000:]}")
    return [(np.load(out / f"{i}.npy"), json.loads((out / f"{i}.json").read_text(encoding="utf-8")))
            for i in range(len(job["calls"]))]
