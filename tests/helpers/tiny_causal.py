"""Tiny random causal LMs (2 layers, hidden 32): a Llama and an OPT, saved so that transformers 4.x and 5.x
read them alike (the reference implementation runs on 4.x).

Built in code, offline and deterministic. The Llama tokenizer adds ``<s>`` like Llama's and has no pad token
(so pad = eos, the reference's fallback); the OPT tokenizer starts with ``</s>`` like OPT's and pads with
``<pad>``. Both carry a small chat template. The end-of-sequence row of the LM head is scaled up so that
greedy answers sometimes end early, which exercises the special-token rules.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from helpers.tiny_models import CORPUS
from inbedder.encoders.portable import legacy_merges

PROMPTS = [
    "### Input:\nI love cat!\n\n### Instruction:\nWhat is the animal mentioned here?\n\n### Response:",
    "### Input:\nThe funds rose.\n\n### Instruction:\nWhat is the emotion expressed here?\n\n### Response: calm",
]
CHAT_TEMPLATE = ("{% for m in messages %}<|user|>\n{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def _tokenizer(out: Path, special: list[str], first: str, config: dict[str, object]) -> int:
    """Byte-level BPE trained on the corpus; ``first`` is prepended to every text. Returns the vocab size."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS + PROMPTS * 3, trainers.BpeTrainer(
        vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(single=f"{first} $A", pair=f"{first} $A $B",
                                                       special_tokens=[(first, tok.token_to_id(first))])
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    legacy_merges(out / "tokenizer.json")
    full = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512,
            "clean_up_tokenization_spaces": False, "model_input_names": ["input_ids", "attention_mask"],
            "chat_template": CHAT_TEMPLATE, **config}
    (out / "tokenizer_config.json").write_text(json.dumps(full, indent=2))
    return tok.get_vocab_size()


def _portable_config(root: Path) -> None:
    """Also write ``rope_theta`` at the top level, where transformers 4.x looks for it."""
    config = json.loads((root / "config.json").read_text())
    rope = config.get("rope_parameters") or {}
    if "rope_theta" in rope:
        config["rope_theta"] = rope["rope_theta"]
    (root / "config.json").write_text(json.dumps(config, indent=2))


def _boost_eos(head: torch.nn.Linear, eos: int, scale: float) -> None:
    with torch.no_grad():
        head.weight[eos] *= scale


def build_tiny_llama(root: Path, *, with_head: bool = True) -> Path:
    """A Llama causal LM; ``with_head=False`` saves the bare ``LlamaModel`` (no LM head)."""
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel

    torch.manual_seed(0)
    vocab = _tokenizer(root, ["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>"], "<s>",
                       {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=96, bos_token_id=1,
                         eos_token_id=2, tie_word_embeddings=False, rope_theta=10000.0)
    if with_head:
        model = LlamaForCausalLM(config)
        _boost_eos(model.lm_head, 2, 2.0)
    else:
        model = LlamaModel(config)
    model.save_pretrained(root)
    _portable_config(root)
    return root


def build_tiny_opt(root: Path) -> Path:
    """An OPT causal LM with ``word_embed_proj_dim`` < hidden size (the last layer is projected out, like OPT-350m)."""
    from transformers import OPTConfig, OPTForCausalLM

    torch.manual_seed(1)
    vocab = _tokenizer(root, ["<s>", "<pad>", "</s>", "<unk>", "<|user|>", "<|assistant|>"], "</s>",
                       {"bos_token": "</s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"})
    config = OPTConfig(vocab_size=vocab, hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                       max_position_embeddings=96, word_embed_proj_dim=16, do_layer_norm_before=False,
                       pad_token_id=1, bos_token_id=2, eos_token_id=2)
    model = OPTForCausalLM(config)
    _boost_eos(model.lm_head, 2, 1.7)  # tied to the input embedding of </s>, which OPT prompts start with
    model.save_pretrained(root)
    return root


_GGUF_NAMES = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
               "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
               "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def build_tiny_gguf(llama_dir: Path, out: Path) -> Path:
    """The tiny Llama as a float32 GGUF file (llama.cpp's tensor names and q/k row order, a gpt2-type tokenizer)."""
    import gguf
    import numpy as np
    from safetensors.torch import load_file

    cfg = json.loads((llama_dir / "config.json").read_text())
    tok = json.loads((llama_dir / "tokenizer.json").read_text())
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name("tiny-llama")
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(cfg["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_rope_dimension_count(cfg["hidden_size"] // heads)
    writer.add_vocab_size(cfg["vocab_size"])
    writer.add_file_type(0)  # all float32
    added = {t["content"]: t["id"] for t in tok["added_tokens"]}
    tokens = [""] * cfg["vocab_size"]
    for text, i in {**tok["model"]["vocab"], **added}.items():
        tokens[i] = text
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in added else 1 for t in tokens])
    writer.add_token_merges(tok["model"]["merges"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)

    def permute(x: np.ndarray, n: int) -> np.ndarray:  # llama.cpp's rotary row order for q and k
        return x.reshape(n, 2, x.shape[0] // n // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)

    for key, tensor in load_file(llama_dir / "model.safetensors").items():
        value = tensor.float().numpy()
        if key == "model.embed_tokens.weight":
            name = "token_embd.weight"
        elif key == "model.norm.weight":
            name = "output_norm.weight"
        elif key == "lm_head.weight":
            name = "output.weight"
        else:
            layer, part = key.split(".")[2], ".".join(key.split(".")[3:-1])
            name = f"blk.{layer}.{_GGUF_NAMES[part]}.weight"
            if part in ("self_attn.q_proj", "self_attn.k_proj"):
                value = permute(value, heads if part == "self_attn.q_proj" else kv_heads)
        writer.add_tensor(name, np.ascontiguousarray(value))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
