"""Answer training (InBedder's recipe): fine-tune a language model to answer questions about a text, briefly.

Each QA record ``{input, instruction, answer}`` becomes the model's prompt (the InBedder pattern by default,
``### Input:\\n{input}\\n\\n### Instruction:\\n{instruction}\\n\\n### Response:``) and its answer:

* a causal LM reads the prompt followed by `` {answer}`` and the end-of-sequence token; the loss is on the answer
  tokens and the end token only. With ``pattern="chat"`` or ``"chat:<user message>"`` the prompt is the model's
  chat template, as the encoder reads it, and ``{answer}`` follows the opened assistant turn;
* a masked LM (RoBERTa, BERT) reads the prompt followed by one mask token per answer token, laid out exactly as
  the masked family reads it at inference; the loss is on the answer tokens predicted at the masks.

A prompt that is too long loses the start of its input, as at inference. The saved model is a plain transformers
directory (safetensors, no ``quantization_config``) whose ``inbedder.json`` names the pattern, so that
``inbedder.load()`` opens it in the same family with the same prompt.

>>> result = train_answer("smollm2-135m-instruct", "qa.train.jsonl", "out/")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..encoders.causal.settings import check_pattern, is_chat
from ..errors import InputError, check_ints, require
from ..prompts import INBEDDER_PATTERN
from ..registry import DEFAULTS_FILE
from .loop import BatchPlan, LoopResult, LoopSettings, fingerprint_rows, run_loop
from .records import read_qa


@dataclass(frozen=True)
class AnswerSettings:
    """What to train and how: the prompt pattern, the token budget of one example, full fine-tuning or LoRA, and
    whether batches gather examples of similar length (``group_by_length``: far less padding when short label
    questions and long passages are mixed; see :class:`~inbedder.training.loop.BatchPlan`)."""

    pattern: str = INBEDDER_PATTERN
    max_length: int = 256
    max_answer_tokens: int = 32
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    group_by_length: bool = True

    def __post_init__(self) -> None:
        check_pattern(self.pattern)
        check_ints(self, ("max_length", "max_answer_tokens", "lora_r", "lora_alpha"))
        if self.max_answer_tokens >= self.max_length:
            raise InputError(f"max_answer_tokens ({self.max_answer_tokens}) must be below max_length "
                             f"({self.max_length})")
        if not 0 <= self.lora_dropout < 1:
            raise InputError(f"lora_dropout must be in [0, 1); got {self.lora_dropout!r}")


@dataclass
class AnswerResult:
    """The trained model (in memory), where it was saved, the loop's losses and the dev loss before and after."""

    model: Any
    tokenizer: Any
    output: Path | None
    loop: LoopResult
    dev_loss: dict[str, float]
    examples: int
    cut: int


def encode_qa(encoder: Any, records: list[dict[str, str]], settings: AnswerSettings
              ) -> tuple[list[tuple[list[int], list[int]]], int]:
    """Token ids and labels per record (-100 on the prompt: the tokens the causal ``encoder`` reads for it), and how
    many records had their input cut."""
    tokenizer = encoder.tokenizer
    eos = tokenizer.eos_token_id
    if eos is None:
        raise InputError("the tokenizer has no end-of-sequence token; answer training needs one to end answers")
    lead = "" if is_chat(settings.pattern) else " "  # a chat answer opens the assistant turn
    out, cut = [], 0
    for row, record in enumerate(records):
        answer = tokenizer(lead + record["answer"].strip(), add_special_tokens=False)["input_ids"]
        answer = answer[:settings.max_answer_tokens - 1] + [eos]
        try:
            ids, _, _, _, n = encoder.prompt_ids([(record["instruction"], record["input"])], settings.pattern,
                                                 settings.max_length - len(answer))
        except InputError as exc:
            raise InputError(f"record {row}: {exc}") from None
        cut += n
        prompt = ids[0].tolist()  # one row: no padding
        out.append((prompt + answer, [-100] * len(prompt) + answer))
    return out, cut


def encode_masked_qa(encoder: Any, records: list[dict[str, str]], settings: AnswerSettings
                     ) -> tuple[list[tuple[list[int], list[int]]], int]:
    """Token ids and labels per record for a masked LM: the prompt followed by one mask per answer token (at most
    ``max_answer_tokens``), as the masked family lays it out at inference; the labels are the answer tokens at the
    masks and -100 elsewhere. Also how many records had their input cut."""
    from ..encoders.masked import MaskedEncoder

    layout = MaskedEncoder(encoder.model, encoder.tokenizer,
                           replace(encoder.spec, pattern=settings.pattern, max_length=settings.max_length))
    tokenizer = encoder.tokenizer
    out, cut = [], 0
    for row, record in enumerate(records):
        answer = tokenizer(" " + record["answer"].strip(), add_special_tokens=False)["input_ids"]
        answer = answer[:settings.max_answer_tokens]
        if not answer:
            raise InputError(f"record {row}: the answer {record['answer']!r} has no tokens")
        try:
            features, n = layout.tokenize([(record["instruction"], record["input"])], len(answer))
        except InputError as exc:
            raise InputError(f"record {row}: {exc}") from None
        cut += n
        ids = features["input_ids"][0].tolist()
        masks = [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id][-len(answer):]  # the appended ones
        labels = [-100] * len(ids)
        for i, token in zip(masks, answer, strict=True):
            labels[i] = token
        out.append((ids, labels))
    return out, cut


def collate(examples: list[tuple[list[int], list[int]]], pad: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, mask and labels (-100 on padding)."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in examples])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in examples])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in examples])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def answer_loss(model: Any, batch: dict[str, torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the answer tokens; the LM head runs only where a label is (not over the whole prompt)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    states = base.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                use_cache=False).last_hidden_state
    labels = batch["labels"][:, 1:]
    where = labels != -100
    logits = base.get_output_embeddings()(states[:, :-1][where])
    return torch.nn.functional.cross_entropy(logits.float(), labels[where], reduction=reduction)


def masked_answer_loss(encoder: Any, batch: dict[str, torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the answer tokens predicted at the masks (the LM head runs only there)."""
    model = encoder.model
    states = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                              ).last_hidden_state
    where = batch["labels"] != -100
    logits = model.get_output_embeddings()(encoder.head_transform(states[where]))
    return torch.nn.functional.cross_entropy(logits.float(), batch["labels"][where], reduction=reduction)


def dev_loss(model: Any, examples: list[tuple[list[int], list[int]]], pad: int, *, bf16: bool,
             batch_size: int = 16, loss: Callable[..., torch.Tensor] = answer_loss) -> float:
    """Mean answer-token loss (``loss(model, batch, reduction)``) over ``examples`` (token-weighted; batched by
    length, which pads least)."""
    examples = sorted(examples, key=lambda e: len(e[0]))
    total, count = 0.0, 0
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(examples), batch_size):
            batch = {k: v.to(device) for k, v in collate(examples[i:i + batch_size], pad).items()}
            total += float(loss(model, batch, reduction="sum"))
            count += int((batch["labels"] != -100).sum())
    return total / max(count, 1)


def train_answer(model: str | os.PathLike[str], data: str | os.PathLike[str] | list[dict[str, str]],
                 output: str | os.PathLike[str] | None, *, dev: str | os.PathLike[str] | list[dict[str, str]] | None
                 = None, settings: AnswerSettings | None = None, loop: LoopSettings | None = None,
                 checkpoint: str | os.PathLike[str] | None = None, device: str | None = None,
                 evaluate: Callable[[Any], float] | None = None) -> AnswerResult:
    """Fine-tune the causal or masked LM ``model`` (alias, directory or .gguf) on QA records and save it to
    ``output``.

    ``checkpoint`` (default ``output/checkpoint``) holds the resumable state; a finished run removes nothing, so
    running the same command again only re-saves the model. ``device=None`` trains on CUDA when present.
    ``evaluate(model)`` (higher is better; e.g. an awareness task's ``scorer()``) scores the model being trained
    every ``loop.eval_every`` steps and after the last; the saved model is the best scored."""
    settings, loop = settings or AnswerSettings(), loop or LoopSettings()
    records = data if isinstance(data, list) else read_qa(data)
    dev_records = dev if isinstance(dev, list) or dev is None else read_qa(dev)
    embedder = _load_answer_model(model, device, settings)
    encoder: Any = embedder.encoder
    masked = encoder.family == "masked"
    lm, tokenizer = encoder.model, encoder.tokenizer
    encode, loss = encode_masked_qa if masked else encode_qa, _answer_loss(encoder, masked)
    examples, cut = encode(encoder, records, settings)
    dev_examples = encode(encoder, dev_records, settings)[0] if dev_records else []
    if cut:
        warnings.warn(f"{cut} of {len(records)} training records were too long for max_length="
                      f"{settings.max_length}: the start of their input was cut", UserWarning, stacklevel=2)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    losses: dict[str, float] = {}
    dev_device = next(lm.parameters()).device
    autocast = loop.autocast(dev_device)
    if dev_examples:
        losses["before"] = dev_loss(lm, dev_examples, pad, bf16=autocast, loss=loss)
    torch.manual_seed(loop.seed)
    if settings.lora:
        lm = _with_lora(lm, settings, masked)

    def loss_fn(rows: list[int]) -> torch.Tensor:
        batch = {k: v.to(dev_device) for k, v in collate([examples[i] for i in rows], pad).items()}
        return loss(lm, batch)

    ckpt = Path(checkpoint) if checkpoint is not None else (Path(output) / "checkpoint" if output else None)
    fingerprint = {"model": str(model), "data": fingerprint_rows(records), "settings": asdict(settings)}
    lengths = [len(ids) for ids, _ in examples] if settings.group_by_length else None
    result = run_loop(lm, loss_fn, BatchPlan([list(range(len(examples)))], loop.batch_size, loop.seed, lengths),
                      loop, ckpt, fingerprint, None if evaluate is None else _scoring(evaluate, embedder))
    if settings.lora:
        lm = lm.merge_and_unload()
    lm.config.use_cache = True
    if dev_examples and result.finished:
        losses["after"] = dev_loss(lm, dev_examples, pad, bf16=autocast, loss=loss)
    saved = None
    if output is not None and result.finished:
        saved = save_answer_model(lm, tokenizer, Path(output), {
            "base_model": str(model), "family": encoder.family, "examples": len(examples), "cut": cut,
            "settings": asdict(settings),
            "loop": loop.identity(), "train_loss_first": result.losses[:1], "train_loss_last": result.losses[-1:],
            "dev_loss": losses, "evals": result.evals, "best_step": result.best_step}, {"pattern": settings.pattern})
    return AnswerResult(lm, tokenizer, saved, result, losses, len(examples), cut)


def _load_answer_model(model: str | os.PathLike[str], device: str | None, settings: AnswerSettings) -> Any:
    """The loaded causal or masked LM, set to read ``settings.pattern`` (so that what ``evaluate()`` sees is the
    model as it will load) with its generation cache off for training; an :class:`InputError` for another family,
    or a chat pattern on a masked LM."""
    from ..loading import load, quiet_transformers

    with quiet_transformers():
        embedder = load(model, device=device, quantize="none")  # trained in float32
    encoder: Any = embedder.encoder
    if encoder.family not in ("causal", "masked"):
        raise InputError(f"answer training takes a causal or masked language model; {str(model)!r} loads as the "
                         f"{encoder.family} family (an encoder without an LM head trains with "
                         "`inbedder train instructor`)")
    masked = encoder.family == "masked"
    if masked and is_chat(settings.pattern):
        raise InputError(f"a chat pattern ({settings.pattern!r}) is for causal LMs with a chat template; "
                         f"{str(model)!r} is a masked LM: give a pattern with {{input}} and {{instruction}}")
    if masked:
        encoder.spec = replace(encoder.spec, pattern=settings.pattern)
    else:
        encoder.pattern = settings.pattern
    encoder.model.config.use_cache = False
    return embedder


def _answer_loss(encoder: Any, masked: bool) -> Callable[..., torch.Tensor]:
    """``loss(module, batch, reduction="mean")``: the answer tokens' cross-entropy of the (masked or causal) LM."""
    def loss(module: Any, batch: dict[str, torch.Tensor], reduction: str = "mean") -> torch.Tensor:
        return masked_answer_loss(encoder, batch, reduction) if masked else answer_loss(module, batch, reduction)
    return loss


def _with_lora(lm: Any, settings: AnswerSettings, masked: bool) -> Any:
    """``lm`` wrapped with LoRA adapters on every linear layer (``settings.lora_r``, ``lora_alpha``,
    ``lora_dropout``)."""
    require("peft", "train")
    from peft import LoraConfig, get_peft_model

    return get_peft_model(lm, LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha,
                                         lora_dropout=settings.lora_dropout, target_modules="all-linear",
                                         task_type=None if masked else "CAUSAL_LM"))


def _scoring(evaluate: Callable[[Any], float], embedder: Any) -> Callable[[], float]:
    """``evaluate(embedder)`` with the model's generation cache on (training runs without it)."""
    config = embedder.encoder.model.config

    def score() -> float:
        config.use_cache = True
        try:
            return evaluate(embedder)
        finally:
            config.use_cache = False
    return score


def save_answer_model(model: Any, tokenizer: Any, directory: Path, about: dict[str, Any],
                      defaults: dict[str, Any]) -> Path:
    """A transformers directory (safetensors) that ``inbedder.load()`` opens in the model's family, with
    ``defaults`` (the prompt pattern) as its ``load()`` defaults."""
    from ..encoders.portable import make_portable

    directory.mkdir(parents=True, exist_ok=True)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    if about.get("family") == "causal":
        make_portable(directory)
    (directory / "inbedder_training.json").write_text(json.dumps(about, indent=2), encoding="utf-8")
    (directory / DEFAULTS_FILE).write_text(json.dumps({"defaults": defaults}, indent=2), encoding="utf-8")
    return directory
