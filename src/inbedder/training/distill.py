"""Distillation: train a student answer model (LoRA) to match a teacher's next-token distribution at the answer
position, in the prompt the student embeds with, optionally plus the teacher's greedy answer as a target.

The loss of one (text, question) is the KL divergence from the teacher's top-k distribution (its k tokens and the
rest of the probability as one more outcome) to the student's on the same k + 1 outcomes; with ``answer_weight``,
plus that weight times the cross-entropy of the teacher's answer tokens. The student's ``fst_gen`` readout is the
hidden state that its LM head turns into this distribution, so matching it moves the embedding. With
``similarity_weight`` (and the teacher's vectors in its file), each batch holds pairs asked the same kind of question
(the bank's ``axis``, else the question), and the loss adds that weight times :func:`similarity_loss`: how far the
student's cosine similarities between the batch's embeddings are from the teacher's, each standardised, so that the
two models' different spreads of cosine do not count, only which texts are nearer to which.

The saved student is a LoRA adapter (float16 safetensors, ``adapter_config.json``) with an ``inbedder.json`` naming
the base model and its prompt: ``inbedder.load(folder)`` loads the base and merges the adapter.

>>> rows = bank_rows(dataset_texts(root)[0], n=2000)                                      # doctest: +SKIP
>>> teacher_pass("qwen2.5-coder-1.5b-instruct", rows, "work/teacher.jsonl")              # doctest: +SKIP
>>> train_distill("qwen2.5-coder-0.5b-instruct", "work/teacher.jsonl", "models/student")   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..adapters import ADAPTER_WEIGHTS
from ..errors import InputError, check_ints, require
from ..registry import DEFAULTS_FILE
from .answer import AnswerSettings, collate, encode_qa
from .loop import BatchPlan, LoopResult, LoopSettings, fingerprint_rows, run_loop
from .teacher import TeacherSettings, read_teacher, teacher_pass, vocab_fingerprint


@dataclass(frozen=True)
class DistillSettings:
    """The student's side: the weight of the answer cross-entropy (0: KL only), LoRA's shape, the token budget of an
    example, and the share of texts held out to measure the KL before and after."""

    answer_weight: float = 0.0
    similarity_weight: float = 0.0
    lora_r: int = 16
    lora_alpha: int = 32
    max_length: int = 256
    dev_fraction: float = 0.05

    def __post_init__(self) -> None:
        check_ints(self, ("lora_r", "lora_alpha", "max_length"))
        for name in ("answer_weight", "similarity_weight"):
            if not 0 <= getattr(self, name) <= 100:
                raise InputError(f"{name} must be in [0, 100]; got {getattr(self, name)!r}")
        if not 0 <= self.dev_fraction < 0.5:
            raise InputError(f"dev_fraction must be in [0, 0.5); got {self.dev_fraction!r}")


@dataclass
class DistillResult:
    """The trained student (in memory, adapter merged), where it was saved, the loop, and the dev KL before/after."""

    model: Any
    output: Path | None
    loop: LoopResult
    dev_kl: dict[str, float]
    examples: int


def topk_kl(teacher_logp: torch.Tensor, student_logp: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per row over the teacher's k tokens plus "any other token", from log-probabilities
    of those k tokens under each, ``(b, k)`` → ``(b,)``.

    >>> p = torch.log(torch.tensor([[0.5, 0.3]]))
    >>> float(topk_kl(p, p))
    0.0
    """
    p = teacher_logp.exp()
    rest_p = (1 - p.sum(-1)).clamp_min(1e-8)
    rest_q = (1 - student_logp.exp().sum(-1)).clamp_min(1e-8)
    return (p * (teacher_logp - student_logp)).sum(-1) + rest_p * (rest_p.log() - rest_q.log())


def similarity_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """How far the cosine similarities between the rows of ``student`` ``(b, h)`` are from those between the rows of
    ``teacher`` ``(b, h')``: the mean squared difference of the two sets of ``b (b - 1) / 2`` similarities, each
    standardised (mean 0, standard deviation 1 over the batch), i.e. ``2 (1 - r)`` with r their Pearson correlation.
    0 for fewer than 3 rows.

    >>> t = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> round(float(similarity_loss(t * 3, t)), 6), float(similarity_loss(t[[0, 2, 1]], t)) > 1
    (0.0, True)
    """
    if student.shape[0] < 3:
        return student.new_zeros(())
    upper = torch.triu_indices(student.shape[0], student.shape[0], 1, device=student.device)

    def standard(x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.normalize(x.float(), dim=-1)
        sims = (x @ x.T)[upper[0], upper[1]]
        return (sims - sims.mean()) / sims.std(unbiased=False).clamp_min(1e-6)

    return (standard(student) - standard(teacher)).pow(2).mean()


def distill_loss(model: Any, batch: dict[str, torch.Tensor], answer_weight: float,
                 reduction: str = "mean", similarity_weight: float = 0.0) -> torch.Tensor:
    """The KL at each row's answer position (``batch["position"]``, against ``batch["top_ids"]``/``["top_logp"]``),
    plus ``answer_weight`` times the cross-entropy of the answer tokens, plus ``similarity_weight`` times the
    :func:`similarity_loss` of the states at the answer positions against ``batch["teacher_vector"]``, from one pass
    of the decoder."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    states = base.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                use_cache=False).last_hidden_state
    head = base.get_output_embeddings()
    rows = torch.arange(states.shape[0], device=states.device)
    answer_states = states[rows, batch["position"]]
    logp = head(answer_states).float().log_softmax(-1)
    kl = topk_kl(batch["top_logp"], logp.gather(1, batch["top_ids"]))
    loss = kl.sum() if reduction == "sum" else kl.mean()
    if similarity_weight:
        loss = loss + similarity_weight * similarity_loss(answer_states, batch["teacher_vector"])
    if answer_weight:
        labels = batch["labels"][:, 1:]
        where = labels != -100
        ce = torch.nn.functional.cross_entropy(head(states[:, :-1][where]).float(), labels[where],
                                               reduction=reduction)
        loss = loss + answer_weight * ce
    return loss


def _examples(encoder: Any, records: list[dict[str, Any]], meta: dict[str, Any], settings: DistillSettings
              ) -> list[dict[str, Any]]:
    """Token ids, labels (the answer, or only the end token without answers), the answer position and the teacher's
    top-k of each record."""
    answers, vectors = settings.answer_weight > 0, settings.similarity_weight > 0
    qa = []
    for i, r in enumerate(records):
        answer = r.get("answer", "") if answers else ""
        if answers and not (isinstance(answer, str) and answer.strip()):
            raise InputError(f"teacher record {i}: answer_weight > 0 needs the teacher's 'answer' in every record; "
                             "run the teacher pass with answer_tokens > 0")
        if vectors and "vector" not in r:
            raise InputError(f"teacher record {i}: similarity_weight > 0 needs the teacher's 'vector' in every "
                             "record; run the teacher pass with vectors=True (--teacher-vectors)")
        qa.append({"input": r["text"], "instruction": r["question"], "answer": answer})
    encoded, _ = encode_qa(encoder, qa, AnswerSettings(pattern=meta["pattern"], max_length=settings.max_length))
    out = []
    for (ids, labels), r in zip(encoded, records, strict=True):
        top = r["top_k"][:int(meta["top_k"])]
        out.append({"ids": ids, "labels": labels, "position": labels.index(next(x for x in labels if x != -100)) - 1,
                    "top_ids": [int(t) for t, _ in top], "top_logp": [float(v) for _, v in top],
                    **({"vector": r["vector"]} if vectors else {})})
    return out


def _batch(examples: list[dict[str, Any]], pad: int, device: torch.device) -> dict[str, torch.Tensor]:
    batch = collate([(e["ids"], e["labels"]) for e in examples], pad)
    width = max(len(e["top_ids"]) for e in examples)
    if any(len(e["top_ids"]) != width for e in examples):
        raise InputError("every teacher record needs the same number of top-k tokens")
    batch["position"] = torch.tensor([e["position"] for e in examples])
    batch["top_ids"] = torch.tensor([e["top_ids"] for e in examples])
    batch["top_logp"] = torch.tensor([e["top_logp"] for e in examples])
    if "vector" in examples[0]:
        batch["teacher_vector"] = torch.tensor([e["vector"] for e in examples])
    return {k: v.to(device) for k, v in batch.items()}


def _is_dev(text: str, fraction: float) -> bool:
    """Whether a text is held out (by its hash: the same text is always on the same side)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16 ** 8 < fraction


def train_distill(student: str | os.PathLike[str], teacher_file: str | os.PathLike[str],
                  output: str | os.PathLike[str] | None, *, settings: DistillSettings | None = None,
                  loop: LoopSettings | None = None, checkpoint: str | os.PathLike[str] | None = None,
                  device: str | None = None) -> DistillResult:
    """Train ``student`` (a causal answer model: alias, directory or .gguf) with LoRA on a teacher file
    (:func:`~inbedder.training.teacher.teacher_pass`) and save its adapter to ``output``. Resumable: ``checkpoint``
    (default ``output/checkpoint``) holds the state of an interrupted run."""
    require("peft", "train")
    from peft import LoraConfig, get_peft_model

    settings, loop = settings or DistillSettings(), loop or LoopSettings()
    records, meta = read_teacher(teacher_file)
    encoder = _student(student, meta, device)
    examples = _examples(encoder, records, meta, settings)
    held = [_is_dev(r["text"], settings.dev_fraction) for r in records]
    train = [e for e, h in zip(examples, held, strict=True) if not h]
    dev = [e for e, h in zip(examples, held, strict=True) if h]
    kinds = [str(r.get("axis") or r["question"]) for r, h in zip(records, held, strict=True) if not h]
    if not train:
        raise InputError("no training records left after holding out the dev texts")
    lm, tokenizer = encoder.model, encoder.tokenizer
    lm.config.use_cache = False
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    dev_device = next(lm.parameters()).device
    kl: dict[str, float] = {}
    if dev:
        kl["before"] = dev_kl(lm, dev, pad)
    torch.manual_seed(loop.seed)
    lm = get_peft_model(lm, LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=0.0,
                                       target_modules="all-linear", task_type="CAUSAL_LM"))

    def loss_fn(rows: list[int]) -> torch.Tensor:
        return distill_loss(lm, _batch([train[i] for i in rows], pad, dev_device), settings.answer_weight,
                            similarity_weight=settings.similarity_weight)

    ckpt = Path(checkpoint) if checkpoint is not None else (Path(output) / "checkpoint" if output else None)
    fingerprint = {"student": str(student), "teacher": meta, "data": fingerprint_rows(records),
                   "settings": asdict(settings)}
    # the similarity loss compares texts under one kind of question: its batches do not mix kinds
    plan = BatchPlan.grouped(kinds if settings.similarity_weight else [None] * len(train), loop.batch_size,
                             loop.seed, [len(e["ids"]) for e in train])
    result = run_loop(lm, loss_fn, plan, loop, ckpt, fingerprint)
    with torch.no_grad():  # what is saved (float16) is what is measured, merged and returned
        for name, p in lm.named_parameters():
            if "lora_" in name:
                p.copy_(p.half().float())
    if dev and result.finished:
        kl["after"] = dev_kl(lm, dev, pad)
    saved = None
    if output is not None and result.finished:
        saved = save_adapter(lm, Path(output), str(student), meta["pattern"], {
            "teacher": meta, "examples": len(train), "dev_examples": len(dev), "settings": asdict(settings),
            "loop": loop.identity(), "train_loss_first": result.losses[:1], "train_loss_last": result.losses[-1:],
            "dev_kl": kl})
    merged: Any = lm.merge_and_unload()
    merged.config.use_cache = True
    return DistillResult(merged, saved, result, kl, len(train))


def _student(student: str | os.PathLike[str], meta: dict[str, Any], device: str | None) -> Any:
    """The student's causal encoder, reading the teacher's prompt; refused when its vocabulary is not the
    teacher's."""
    from ..loading import load, quiet_transformers

    with quiet_transformers():
        encoder: Any = load(student, device=device, quantize="none").encoder  # trained in float32
    if encoder.family != "causal":
        raise InputError(f"the student must be a causal language model; {str(student)!r} loads as the "
                         f"{encoder.family} family")
    if vocab_fingerprint(encoder.tokenizer) != meta["vocab"]:
        raise InputError(f"{str(student)!r} has another vocabulary than the teacher ({meta.get('teacher')}): "
                         "its token ids would mean other tokens")
    encoder.pattern = meta["pattern"]
    return encoder


def dev_kl(model: Any, examples: list[dict[str, Any]], pad: int, batch_size: int = 16) -> float:
    """Mean KL from the teacher to ``model`` over ``examples`` (no answer term)."""
    device = next(model.parameters()).device
    total = 0.0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            total += float(distill_loss(model, _batch(examples[i:i + batch_size], pad, device), 0.0, "sum"))
    return total / len(examples)


def save_adapter(model: Any, directory: Path, base: str, pattern: str, about: dict[str, Any]) -> Path:
    """The LoRA adapter in float16 safetensors with its config, and an ``inbedder.json`` naming the base model and
    the prompt (what ``inbedder.load`` needs to rebuild the student)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in get_peft_model_state_dict(model).items()}
    save_file(state, str(directory / ADAPTER_WEIGHTS))
    model.peft_config["default"].save_pretrained(str(directory))
    (directory / "inbedder_training.json").write_text(json.dumps(about, indent=2), encoding="utf-8")
    (directory / DEFAULTS_FILE).write_text(json.dumps({"adapter_of": base, "defaults": {"pattern": pattern}},
                                                      indent=2), encoding="utf-8")
    return directory


def student_pattern(student: str) -> str:
    """The prompt ``student`` embeds with (its alias' or folder's ``pattern``; InBedder's otherwise), found without
    loading or fetching the model."""
    from ..prompts import INBEDDER_PATTERN
    from ..registry import ALIASES, directory_defaults

    alias = ALIASES.get(student.lower())
    options = dict(alias.options) if alias is not None else \
        directory_defaults(Path(student)) if Path(student).is_dir() else {}
    return str(options.get("pattern") or INBEDDER_PATTERN)


def run_distill(output: str | os.PathLike[str], teacher: Any, student: str, *, rows: list[dict[str, Any]] | None
                = None, data_root: str | os.PathLike[str] | None = None, pairs: int = 2000, generic: bool = True,
                seed: int = 0, work: str | os.PathLike[str] | None = None,
                teacher_settings: TeacherSettings | None = None, settings: DistillSettings | None = None,
                loop: LoopSettings | None = None, teacher_only: bool = False, progress: bool | None = None,
                device: str | None = None) -> DistillResult | Path:
    """The whole run: the question bank (``rows``, or ``pairs`` rows built from ``data_root``), the teacher pass
    into ``work/teacher.jsonl`` (default ``<output>.work``), then the student. Every step resumes: a rerun reuses
    the bank and the teacher's rows already written, and the student's checkpoint. With ``teacher_only``, stops
    after the teacher pass and returns the teacher file."""
    from ..io.table import read_table
    from ..io.write import write_rows
    from .questions import bank_rows, dataset_texts

    work_dir = Path(work) if work is not None else Path(str(output) + ".work")
    bank = work_dir / "bank.jsonl"
    if rows is None and data_root is None and not bank.exists():
        raise InputError("give a question bank (rows / --bank FILE) or a data folder (data_root / --data-root) "
                         "to build one from")
    saved = read_table(bank).rows if bank.exists() else None
    if rows is None:
        if saved is None:
            texts, labels = dataset_texts(Path(data_root))  # type: ignore[arg-type]
            rows = bank_rows(texts, pairs, seed, generic=generic, labels=labels)
        else:
            rows = saved
    if saved is not None and [(r.get("text"), r.get("question")) for r in saved] != \
            [(r.get("text"), r.get("question")) for r in rows]:
        raise InputError(f"{bank} holds another question bank; give another work folder or delete it")
    if saved is None:
        work_dir.mkdir(parents=True, exist_ok=True)
        write_rows(rows, bank, "jsonl")
    teacher_file = teacher_pass(teacher, rows, work_dir / "teacher.jsonl", teacher_settings, progress=progress,
                                device=device)
    if teacher_only:
        return teacher_file
    return train_distill(student, teacher_file, output, settings=settings, loop=loop,
                         checkpoint=work_dir / "checkpoint", device=device)
