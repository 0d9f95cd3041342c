"""The shared training loop's periodic evaluation: it keeps the best weights, does not change the training it
watches, and survives a kill like the rest of the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inbedder.errors import InputError, NonFiniteError
from inbedder.training.loop import BatchPlan, LoopResult, LoopSettings, run_loop

SCORES = {2: 0.5, 4: 0.9, 6: 0.7}  # the evaluation's score at each step it runs: the best is step 4


def _run(tmp: Path | None, evaluate: bool, stop_after: int | None = None, scores: dict | None = None
         ) -> tuple[torch.nn.Module, LoopResult]:
    torch.manual_seed(0)
    module = torch.nn.Linear(4, 1)
    target = torch.arange(4.0)
    step = [json.loads((tmp / "state.json").read_text())["step"] if tmp and (tmp / "state.json").exists() else 0]

    def loss_fn(rows: list[int]) -> torch.Tensor:  # once a step; noisy, so the loop's RNG shows in every loss
        step[0] += 1
        x = torch.randn(len(rows), 4)
        return ((module(x).squeeze(-1) - x @ target) ** 2).mean()

    def score() -> float:
        torch.randn(100)  # an evaluation that draws random numbers must not change the training
        return (scores or SCORES)[step[0]]

    settings = LoopSettings(steps=6, batch_size=2, lr=0.05, warmup=0.0, save_every=1, progress=False,
                            eval_every=2 if evaluate else None, stop_after=stop_after)
    result = run_loop(module, loss_fn, BatchPlan([list(range(8))], 2, seed=0), settings, tmp,
                      evaluate=score if evaluate else None)
    return module, result


def test_the_run_ends_with_the_weights_of_the_best_score() -> None:
    watched, result = _run(None, evaluate=True)
    assert result.evals == [(2, 0.5), (4, 0.9), (6, 0.7)] and result.best_step == 4
    plain, plain_result = _run(None, evaluate=False)
    assert result.losses == plain_result.losses  # the evaluation did not change the training
    at_four, _ = _run(None, evaluate=False, stop_after=4)
    assert torch.equal(watched.weight, at_four.weight) and not torch.equal(watched.weight, plain.weight)


def test_the_last_weights_stay_when_the_last_score_is_the_best() -> None:
    watched, result = _run(None, evaluate=True, scores={2: 0.1, 4: 0.2, 6: 0.3})
    plain, _ = _run(None, evaluate=False)
    assert result.best_step == 6 and torch.equal(watched.weight, plain.weight)


def test_a_killed_run_resumes_with_its_evaluations_and_best_weights(tmp_path: Path) -> None:
    whole, whole_result = _run(tmp_path / "whole", evaluate=True)
    _, killed = _run(tmp_path / "split", evaluate=True, stop_after=5)
    assert killed.evals == [(2, 0.5), (4, 0.9)] and not killed.finished
    resumed, result = _run(tmp_path / "split", evaluate=True)
    assert result.resumed_from == 5 and result.evals == whole_result.evals
    assert torch.equal(resumed.weight, whole.weight) and result.losses == whole_result.losses


def test_bad_scores_and_settings_are_refused() -> None:
    with pytest.raises(NonFiniteError, match="evaluation at step 2 scored nan"):
        _run(None, evaluate=True, scores={2: float("nan")})
    with pytest.raises(InputError, match="eval_every must be an int >= 1"):
        LoopSettings(eval_every=0)
