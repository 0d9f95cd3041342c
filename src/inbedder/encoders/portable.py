"""Saved transformers directories that older transformers and tokenizers releases read as the new ones do.

Used when a model loaded with a recent transformers (e.g. dequantized from GGUF) is saved for tools pinned to an
older release: ``rope_theta`` at the top level of ``config.json`` (older releases ignore ``rope_parameters``),
a tokenizer class they know, the chat template inside ``tokenizer_config.json`` and BPE merges as ``"a b"``.
"""

from __future__ import annotations

import json
from pathlib import Path


def make_portable(directory: Path) -> None:
    """Rewrite a saved directory so that older transformers and tokenizers read it as the new ones do."""
    config_file, tok_config_file = directory / "config.json", directory / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config.pop("quantization_config", None)
    rope = config.get("rope_parameters") or {}
    if "rope_theta" in rope and "rope_theta" not in config:
        config["rope_theta"] = rope["rope_theta"]
    config.setdefault("torch_dtype", config.get("dtype", "float32"))
    config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    if tok_config_file.exists():
        tok = json.loads(tok_config_file.read_text(encoding="utf-8"))
        if tok.get("tokenizer_class") in (None, "TokenizersBackend"):
            tok["tokenizer_class"] = "PreTrainedTokenizerFast"
        tok.setdefault("model_input_names", ["input_ids", "attention_mask"])
        if (directory / "chat_template.jinja").exists() and "chat_template" not in tok:
            tok["chat_template"] = (directory / "chat_template.jinja").read_text(encoding="utf-8")
        tok_config_file.write_text(json.dumps(tok, indent=2), encoding="utf-8")
    legacy_merges(directory / "tokenizer.json")


def legacy_merges(path: Path) -> None:
    """Write BPE merges as ``"a b"`` strings, the form every tokenizers version reads."""
    if not path.exists():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    merges = data.get("model", {}).get("merges")
    if merges and isinstance(merges[0], list) and not any(" " in a or " " in b for a, b in merges):
        data["model"]["merges"] = [f"{a} {b}" for a, b in merges]
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
