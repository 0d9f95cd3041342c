"""Tiny random checkpoints (2 layers, hidden 32) saved in the layouts inbedder loads.

Built in code so the tests run offline in seconds. Tokenizers are trained on a fixed corpus, so every
build is identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

CORPUS = [
    "Represent the Science title: 3D ActionSLAM: wearable person tracking in multi-floor environments",
    "Represent the Financial statement: The Federal Reserve on Wednesday raised its benchmark interest rate.",
    "Represent the Wikipedia document for retrieval: Capitalism has been dominant in the Western world.",
    "Represent the Medicine sentence for clustering: Dynamical Scalar Degree of Freedom in Gravity",
    "What is the animal mentioned here? I love cat! I love dog! I dislike cat!",
    "What is the emotion expressed here? The quick brown fox jumps over the lazy dog.",
    "Parton energy loss in QCD matter. The Chiral Phase Transition in Dissipative Dynamics.",
    "The funds rose less than 0.5 per cent on Friday. Where is the food stored in a yam plant?",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,:;!?'\"-()[]",
] * 3


def _save_tokenizer(tok: Tokenizer, out: Path, special: dict[str, str], inputs: list[str] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512, **special}
    if inputs:
        config["model_input_names"] = inputs
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def bert_tokenizer(out: Path) -> int:
    """WordPiece tokenizer with [CLS] ... [SEP]; returns the vocabulary size."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=special))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.WordPiece()
    _save_tokenizer(tok, out, {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
                               "sep_token": "[SEP]", "mask_token": "[MASK]"})
    return tok.get_vocab_size()


def t5_tokenizer(out: Path) -> int:
    """Metaspace Unigram tokenizer that appends </s> like T5's; returns the vocabulary size."""
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=300, unk_token="<unk>",
                                                            special_tokens=["<pad>", "</s>", "<unk>"]))
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
    )
    _save_tokenizer(tok, out, {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"},
                    inputs=["input_ids", "attention_mask"])
    return tok.get_vocab_size()


def _write_st_layout(root: Path, word_dim: int, dense_out: int | None, normalize: bool, max_seq_length: int) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (root / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (root / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": word_dim, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
    if dense_out is not None:
        from safetensors.torch import save_file

        modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
        (root / "2_Dense").mkdir(exist_ok=True)
        (root / "2_Dense" / "config.json").write_text(json.dumps({
            "in_features": word_dim, "out_features": dense_out, "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity"}))
        gen = torch.Generator().manual_seed(7)
        state = {"linear.weight": torch.randn(dense_out, word_dim, generator=gen) * 0.2}
        save_file(state, str(root / "2_Dense" / "model.safetensors"))
        torch.save(state, root / "2_Dense" / "pytorch_model.bin")  # the reference reads only this file
    if normalize:
        modules.append({"idx": len(modules), "name": str(len(modules)), "path": f"{len(modules)}_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
    (root / "modules.json").write_text(json.dumps(modules, indent=2))
    (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length,
                                                                "do_lower_case": False}))


def build_tiny_t5(root: Path) -> Path:
    """INSTRUCTOR layout like hkunlp/instructor-*: T5 encoder + mean Pooling + Dense + Normalize."""
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    vocab = t5_tokenizer(root)
    config = T5Config(vocab_size=vocab, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    T5EncoderModel(config).save_pretrained(root)
    _write_st_layout(root, 32, dense_out=24, normalize=True, max_seq_length=64)
    return root


def build_tiny_bert(root: Path) -> Path:
    """sentence-transformers layout of a BERT encoder + mean Pooling (like all-MiniLM without Normalize)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    vocab = bert_tokenizer(root)
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, pad_token_id=0)
    BertModel(config).save_pretrained(root)
    _write_st_layout(root, 32, dense_out=None, normalize=False, max_seq_length=48)
    return root


def build_plain_bert(root: Path) -> Path:
    """A plain transformers BERT directory (no modules.json): mean pooling by default."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    vocab = bert_tokenizer(root)
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=0)
    BertModel(config).save_pretrained(root)
    return root
