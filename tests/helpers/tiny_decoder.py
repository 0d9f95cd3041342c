"""A tiny random Qwen2 decoder embedder (2 layers, hidden 32) in the sentence-transformers layout that
Qwen3-Embedding ships: Transformer, last-token Pooling, Normalize; an ``Instruct: ...\\nQuery:`` query prompt;
a tokenizer that appends ``<|endoftext|>`` and pads on the left. Built in code, offline and deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from helpers.tiny_models import CORPUS
from inbedder.encoders.portable import legacy_merges

QUERY_PROMPT = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
EOS = "<|endoftext|>"


def _tokenizer(out: Path) -> int:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS + [QUERY_PROMPT] * 3, trainers.BpeTrainer(
        vocab_size=400, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", pair=f"$A $B {EOS}",
                                                       special_tokens=[(EOS, tok.token_to_id(EOS))])
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    legacy_merges(out / "tokenizer.json")
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512, "padding_side": "left",
              "clean_up_tokenization_spaces": False, "model_input_names": ["input_ids", "attention_mask"],
              "eos_token": EOS, "pad_token": EOS}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return tok.get_vocab_size()


def build_tiny_qwen2_embedder(root: Path, *, max_seq_length: int = 64, normalize: bool = True) -> Path:
    """The directory of a random Qwen2 decoder embedder (see the module's docstring)."""
    from transformers import Qwen2Config, Qwen2Model

    torch.manual_seed(0)
    vocab = _tokenizer(root)
    config = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         eos_token_id=0, pad_token_id=0, tie_word_embeddings=False)
    Qwen2Model(config).save_pretrained(root)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (root / "modules.json").write_text(json.dumps(modules, indent=2))
    (root / "1_Pooling").mkdir(exist_ok=True)
    (root / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": True, "include_prompt": True}))
    (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length,
                                                                "do_lower_case": False}))
    (root / "config_sentence_transformers.json").write_text(json.dumps({
        "prompts": {"query": QUERY_PROMPT, "document": ""}, "default_prompt_name": None,
        "similarity_fn_name": "cosine"}, indent=2))
    return root
