"""When a model fails to load: find the file that is broken, and say which layout was tried.

Run only after a failure, so a good model pays nothing. It checks what the loaders open: ``modules.json`` and
the folders it names, every ``*.json`` (parsed; configs must be objects) and every ``*.safetensors`` header
(a truncated or overwritten file fails here) in the model folder and in those folders.

>>> broken_file(Path("my-model"))     # doctest: +SKIP
'my-model/model.safetensors is not a readable safetensors file (truncated or corrupt?): ...'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# files that hold one JSON object; other *.json (vocab.json, added_tokens.json) only need to parse
_OBJECTS = {"config.json", "modules.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "sentence_bert_config.json", "config_sentence_transformers.json", "generation_config.json",
            "inbedder.json"}


def layout(path: Path) -> str:
    """The layout :func:`~inbedder.loading.detect_family` read the model as."""
    if path.is_file():
        return "a GGUF file" if path.suffix == ".gguf" else "a single file"
    if (path / "modules.json").exists():
        return "the sentence-transformers layout (modules.json)"
    return "the transformers layout (config.json)"


def broken_file(path: Path) -> str | None:
    """The first problem found in the model's files, naming the file; None when every file looks sound."""
    if not path.is_dir():
        return None
    folders, problem = _folders(path)
    if problem is not None:
        return problem
    for folder in folders:
        for file in sorted(folder.glob("*.json")):
            problem = _json_problem(file)
            if problem is not None:
                return problem
        for file in sorted(folder.glob("*.safetensors")):
            problem = _safetensors_problem(file)
            if problem is not None:
                return problem
    return None


def _folders(path: Path) -> tuple[list[Path], str | None]:
    """The model folder and the module folders of its modules.json (or the problem with modules.json)."""
    file = path / "modules.json"
    if not file.exists():
        return [path], None
    problem = _json_problem(file)
    if problem is not None:
        return [], problem
    modules: Any = json.loads(file.read_text(encoding="utf-8"))
    if not isinstance(modules, list):
        return [], f"{file} must be a list of modules; got {type(modules).__name__}"
    folders = [path]
    for i, module in enumerate(modules):
        if not isinstance(module, dict):
            return [], f"{file}: module {i} is not an object: {module!r}"
        where = path / str(module.get("path", ""))
        if str(module.get("type", "")).endswith("Normalize"):  # a module without files
            continue
        if not where.is_dir():
            return [], (f"{file}: module {i} ({module.get('type')}) points to {where}, which is not a folder "
                        f"(folders there: {', '.join(sorted(p.name for p in path.iterdir() if p.is_dir())) or 'none'})")
        if where not in folders:
            folders.append(where)
    return folders, None


def _json_problem(file: Path) -> str | None:
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"{file} is not valid JSON: {exc}"
    if file.name in _OBJECTS and file.name != "modules.json" and not isinstance(value, dict):
        return f"{file} must hold a JSON object; got {type(value).__name__}"
    return None


def _safetensors_problem(file: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as weights:
            weights.keys()
    except Exception as exc:  # safetensors raises its own error type, and OSError for an unreadable file
        return f"{file} is not a readable safetensors file (truncated or corrupt?): {exc}"
    return None
