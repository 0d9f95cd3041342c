"""The optimisation loop both trainers share: seeded batches, AdamW with linear warmup and decay, gradient
accumulation, bf16 autocast, a tqdm bar with the loss, checkpoints that make a run resumable, and optional
periodic evaluation that keeps the best weights.

The batch of every micro-step is a pure function of the seed and the step (:class:`BatchPlan`), so a run that
restarts from a checkpoint (trainable weights, optimizer, scheduler, RNG state and step) continues exactly as the
uninterrupted run would have.

>>> plan = BatchPlan([[0, 1, 2], [3, 4]], batch_size=2, seed=0)
>>> len(plan), sorted(i for b in plan.epoch(0) for i in b)
(3, [0, 1, 2, 3, 4])
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InputError, NonFiniteError, check_ints

FORMAT_VERSION = 1


@dataclass(frozen=True)
class LoopSettings:
    """How to optimise: ``steps`` optimizer steps of ``grad_accum`` micro-batches of ``batch_size`` rows each.

    ``save_every`` writes a checkpoint every N steps; ``stop_after`` ends the run after N steps without a final
    checkpoint, as if it had been killed there (for tests and for splitting a run over several sittings). With an
    evaluation (the trainers' ``evaluate=``), ``eval_every`` scores the model every N steps and after the last, and
    the run ends with the weights of the best score."""

    steps: int = 100
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 5e-5
    warmup: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    save_every: int = 50
    bf16: bool | None = None  # None: on where the device has fast bf16 kernels (speed.fast_bf16)
    stop_after: int | None = None
    progress: bool | None = None
    eval_every: int | None = None

    def __post_init__(self) -> None:
        check_ints(self, ("steps", "batch_size", "grad_accum", "save_every"))
        for name in ("stop_after", "eval_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InputError(f"{name} must be an int >= 1 or None; got {value!r}")
        checks = {"lr": (self.lr, 0, 1, "a learning rate in (0, 1]"), "warmup": (self.warmup, -1e-12, 1, "in [0, 1)"),
                  "weight_decay": (self.weight_decay, -1e-12, 10, ">= 0"),
                  "max_grad_norm": (self.max_grad_norm, 0, math.inf, "> 0")}
        for name, (value, low, high, valid) in checks.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high \
                    or (name == "warmup" and value >= 1):
                raise InputError(f"{name}={value!r} is not valid; give a number {valid}")

    def autocast(self, device: torch.device) -> bool:
        """Whether this run uses bfloat16 autocast on ``device``."""
        from ..speed import fast_bf16

        return fast_bf16(device) if self.bf16 is None else self.bf16 and device.type in ("cpu", "cuda")

    def identity(self) -> dict[str, Any]:
        """The settings that decide the result (not when to save, stop or show progress)."""
        return {k: v for k, v in asdict(self).items() if k not in ("save_every", "stop_after", "progress")}


class BatchPlan:
    """Batches of row indices: within each group (a task), shuffled per epoch with the seed, cut into batches,
    batch order shuffled. Batches never mix groups. The last batch of a group may be smaller.

    With ``lengths`` (tokens of each row), each run of ``batch_size * LENGTH_WINDOW`` shuffled rows is sorted by
    length before it is cut, so a batch holds rows of similar length and pads less; which rows meet in a window
    stays random, and so does the order of the batches.

    >>> plan = BatchPlan([[0, 1, 2, 3]], batch_size=2, seed=0, lengths=[5, 90, 6, 80])
    >>> sorted(sorted(b) for b in plan.epoch(0))
    [[0, 2], [1, 3]]
    """

    LENGTH_WINDOW = 16

    def __init__(self, groups: list[list[int]], batch_size: int, seed: int, lengths: list[int] | None = None):
        self.groups = [list(g) for g in groups if g]
        if not self.groups:
            raise InputError("no training rows")
        self.batch_size, self.seed, self.lengths = batch_size, seed, lengths
        self._cache: tuple[int, list[list[int]]] | None = None

    @classmethod
    def grouped(cls, keys: list[Any], batch_size: int, seed: int, lengths: list[int] | None = None) -> BatchPlan:
        """The plan whose groups are the rows of each key (a task, a kind of question), in order of first sight.

        >>> BatchPlan.grouped(["a", "b", "a"], batch_size=2, seed=0).groups
        [[0, 2], [1]]
        """
        groups: dict[Any, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        return cls(list(groups.values()), batch_size, seed, lengths)

    def __len__(self) -> int:
        return sum(math.ceil(len(g) / self.batch_size) for g in self.groups)

    def epoch(self, e: int) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == e:
            return self._cache[1]
        rng = random.Random(f"{self.seed}:{e}")
        batches = []
        for group in self.groups:
            rows = list(group)
            rng.shuffle(rows)
            if self.lengths is not None:
                window, lengths = self.batch_size * self.LENGTH_WINDOW, self.lengths
                rows = [r for i in range(0, len(rows), window)
                        for r in sorted(rows[i:i + window], key=lambda r: lengths[r])]
            batches += [rows[i:i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        rng.shuffle(batches)
        self._cache = (e, batches)
        return batches

    def batch(self, micro_step: int) -> list[int]:
        """The rows of micro-batch ``micro_step`` (counted from the start of training, across epochs)."""
        return self.epoch(micro_step // len(self))[micro_step % len(self)]


@dataclass
class LoopResult:
    losses: list[float] = field(default_factory=list)  # training loss of every optimizer step so far
    step: int = 0
    finished: bool = False
    resumed_from: int = 0
    evals: list[tuple[int, float]] = field(default_factory=list)  # (step, score) of every evaluation so far
    best: dict[str, torch.Tensor] | None = field(default=None, repr=False)  # the trainable weights of the best score

    @property
    def best_step(self) -> int | None:
        """The step of the best score (the first of equals); None without evaluations."""
        return max(self.evals, key=lambda e: (e[1], -e[0]))[0] if self.evals else None


def run_loop(module: nn.Module, loss_fn: Callable[[list[int]], torch.Tensor], plan: BatchPlan,
             settings: LoopSettings, checkpoint: Path | None = None, fingerprint: dict[str, Any] | None = None,
             evaluate: Callable[[], float] | None = None) -> LoopResult:
    """Optimise the trainable parameters of ``module`` on ``loss_fn(rows)``; resume from ``checkpoint`` if it holds
    one made with the same ``fingerprint`` (settings, data, model).

    ``evaluate()`` (higher is better) runs every ``settings.eval_every`` steps and after the last, with the module
    in eval mode and the RNG state set aside (training goes on as it would without it); the run ends with the
    trainable weights of the best score."""
    from tqdm.auto import tqdm

    fingerprint = {"loop": settings.identity(), **(fingerprint or {})}
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not named:
        raise InputError("the model has no trainable parameters")
    optimizer, scheduler = _optimizer(named, settings)
    torch.manual_seed(settings.seed)
    result = LoopResult()
    if checkpoint is not None:
        _resume(result, load_checkpoint(checkpoint, dict(named), optimizer, scheduler, fingerprint))
    device = next(p.device for _, p in named)
    autocast, total = settings.autocast(device), settings.steps
    module.train()
    bar = tqdm(total=total, initial=result.step, desc="train", unit="step", disable=settings.progress is False,
               dynamic_ncols=True, leave=True)
    try:
        while result.step < total:
            if settings.stop_after is not None and result.step >= settings.stop_after:
                return result
            optimizer.zero_grad(set_to_none=True)
            loss_sum = _accumulate(loss_fn, plan, settings, result.step, device, autocast)
            torch.nn.utils.clip_grad_norm_([p for _, p in named], settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            result.step += 1
            result.losses.append(round(loss_sum, 6))
            bar.set_postfix(loss=f"{loss_sum:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            bar.update()
            if evaluate is not None and (result.step == total or (settings.eval_every is not None
                                                                  and result.step % settings.eval_every == 0)):
                _evaluate(module, named, evaluate, result, bar)
            if checkpoint is not None and (result.step % settings.save_every == 0 or result.step == total):
                save_checkpoint(checkpoint, dict(named), optimizer, scheduler, result, fingerprint)
    finally:
        bar.close()
        module.eval()
    if result.best is not None and result.best_step != result.step:
        with torch.no_grad():
            for name, p in named:
                p.copy_(result.best[name])
    result.finished = True
    return result


def _optimizer(named: list[tuple[str, nn.Parameter]], settings: LoopSettings) -> tuple[Any, Any]:
    """AdamW (weight decay on matrices only) and its schedule: linear warm-up over ``settings.warmup`` of the
    steps, then linear decay to 0."""
    groups = [{"params": [p for _, p in named if p.ndim >= 2], "weight_decay": settings.weight_decay},
              {"params": [p for _, p in named if p.ndim < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=settings.lr)
    total, warm = settings.steps, round(settings.warmup * settings.steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    return optimizer, scheduler


def _resume(result: LoopResult, state: dict[str, Any] | None) -> None:
    """Take up a checkpoint's step, losses, scores and best weights (None: a fresh start)."""
    if state is not None:
        result.step = result.resumed_from = int(state["step"])
        result.losses = [float(x) for x in state["losses"]]
        result.evals = [(int(s), float(v)) for s, v in state.get("evals", [])]
        result.best = state.get("best")


def _accumulate(loss_fn: Callable[[list[int]], torch.Tensor], plan: BatchPlan, settings: LoopSettings, step: int,
                device: torch.device, autocast: bool) -> float:
    """The gradients of step ``step`` (0-based) summed over its ``settings.grad_accum`` micro-batches, each loss
    divided by their number; the step's mean loss. A :class:`NonFiniteError` for a loss that is not finite."""
    loss_sum = 0.0
    for k in range(settings.grad_accum):
        rows = plan.batch(step * settings.grad_accum + k)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = loss_fn(rows)
        if not torch.isfinite(loss):
            raise NonFiniteError(f"the loss is {loss.item()} at step {step + 1} (micro-batch {k}); "
                                 "lower the learning rate or check the data")
        (loss.float() / settings.grad_accum).backward()
        loss_sum += float(loss.item()) / settings.grad_accum
    return loss_sum


def _evaluate(module: nn.Module, named: list[tuple[str, nn.Parameter]], evaluate: Callable[[], float],
              result: LoopResult, bar: Any) -> None:
    """Score the model now; keep a copy of its trainable weights when the score is the best so far."""
    module.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            score = float(evaluate())
    finally:
        module.train()
    if not math.isfinite(score):
        raise NonFiniteError(f"the evaluation at step {result.step} scored {score}")
    result.evals.append((result.step, score))
    if result.best_step == result.step:
        result.best = {n: p.detach().to("cpu", copy=True) for n, p in named}
    bar.write(f"step {result.step}: evaluation {score:.4f} (best {max(v for _, v in result.evals):.4f} at step "
              f"{result.best_step})")


def save_checkpoint(directory: Path, params: dict[str, nn.Parameter], optimizer: torch.optim.Optimizer,
                    scheduler: Any, result: LoopResult, fingerprint: dict[str, Any]) -> None:
    """Write the checkpoint to a new folder, then swap it in with renames (a kill never leaves half a checkpoint)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tmp, old = directory.with_name(directory.name + ".tmp"), directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({n: p.detach().contiguous() for n, p in params.items()}, str(tmp / "trainable.safetensors"))
    if result.best is not None:
        save_file({n: p.contiguous() for n, p in result.best.items()}, str(tmp / "best.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}, tmp / "optimizer.pt")
    state = {"format_version": FORMAT_VERSION, "step": result.step, "losses": result.losses,
             "evals": result.evals, "fingerprint": fingerprint}
    (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
    with open(tmp / "state.json", "rb") as f:
        os.fsync(f.fileno())
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(directory: Path, params: dict[str, nn.Parameter], optimizer: torch.optim.Optimizer,
                    scheduler: Any, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """Restore a checkpoint into the parameters, optimizer, scheduler and RNG; None when there is none."""
    from safetensors.torch import load_file

    directory = Path(directory)
    old = directory.with_name(directory.name + ".old")
    where = directory if (directory / "state.json").exists() else old if (old / "state.json").exists() else None
    if where is None:
        return None
    state = json.loads((where / "state.json").read_text(encoding="utf-8"))
    saved = json.loads(json.dumps(state.get("fingerprint")))
    wanted = json.loads(json.dumps(fingerprint))
    if state.get("format_version") != FORMAT_VERSION or saved != wanted:
        diff = sorted(k for k in set(saved or {}) | set(wanted) if (saved or {}).get(k) != wanted.get(k))
        raise InputError(f"the checkpoint in {str(where)!r} was made by a different run (differs in: "
                         f"{', '.join(diff) or 'format version'}); delete that folder to start afresh, or give "
                         "the same settings, data and model to resume it")
    weights = load_file(str(where / "trainable.safetensors"))
    missing = sorted(set(params) - set(weights))
    if missing:
        raise InputError(f"the checkpoint in {str(where)!r} lacks parameters {missing[:3]}; delete it to start afresh")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(weights[name])
    extra = torch.load(where / "optimizer.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    torch.set_rng_state(extra["rng"])
    if extra.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(extra["cuda_rng"])
    if (where / "best.safetensors").exists():
        state["best"] = load_file(str(where / "best.safetensors"))
    return state


def fingerprint_rows(rows: list[Any]) -> str:
    """A short content hash of the training rows (a checkpoint resumes only on the same data)."""
    import hashlib

    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()[:16]
