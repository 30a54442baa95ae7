"""Bug classes that only the parameters and run lengths users have reveal (issue 19 point 5, "Draw what users
have"), each planted on torch.optim.LBFGS and caught at ``properties`` at the quick and ci budgets:

- ``LostUpdateOnNonContiguous`` writes its update into ``p.reshape(-1)``: for a parameter without a flat view (a
  strided slice made a leaf, a transposed or channels_last weight) that is a copy, and the update is lost
  silently. The harness draws strided leaves (catalogue and generated problems) and keeps their layout in
  every parameter it makes (:func:`lbfgs_verify.problems.base.leaf_like`).
- ``CounterOutsideState`` keeps a call counter outside ``state_dict()`` and halves ``lr`` from its 7th step on: a
  resumed optimizer restarts the count. Runs of 6 steps (the former quick budget) never split after it; the
  resume checks now split 10-step runs at every budget (``Budget.resume_steps``).

The correct optimizers pass the properties these bugs fail (the reference at both budgets, torch at quick).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from lbfgs_verify import reference
from lbfgs_verify.properties.base import BUDGETS, REGISTRY, Status
from tests.quality.verdict import verdict


class LostUpdateOnNonContiguous(torch.optim.LBFGS):
    """torch's LBFGS whose ``_add_grad`` adds the update to ``p.reshape(-1)`` (a copy when ``p`` has no flat view)."""

    def _add_grad(self, step_size: Any, update: Tensor) -> None:
        offset = 0
        for p in self._params:
            target = torch.view_as_real(p) if torch.is_complex(p) else p
            numel = target.numel()
            target.reshape(-1).add_(update[offset:offset + numel], alpha=step_size)
            offset += numel


class CounterOutsideState(torch.optim.LBFGS):
    """torch's LBFGS with a step counter kept outside ``state_dict()``; from the 7th step on ``lr`` is halved."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._calls = 0

    def step(self, closure: Any) -> Any:  # type: ignore[override]
        self._calls += 1
        if self._calls <= 6:
            return super().step(closure)
        group = self.param_groups[0]
        lr = group["lr"]
        group["lr"] = lr * 0.5
        try:
            return super().step(closure)
        finally:
            group["lr"] = lr


LOST_UPDATE_CATCHERS = ("mathematics.first_direction", "mathematics.invariance", "mathematics.two_loop_direction")


@pytest.mark.parametrize("budget", ["quick", "ci"])
def test_an_update_lost_on_a_non_contiguous_parameter_fails_at_properties(budget: str) -> None:
    assert all(REGISTRY[pid].level == "properties" for pid in LOST_UPDATE_CATCHERS)
    results = {pid: verdict(LostUpdateOnNonContiguous, pid, budget) for pid in LOST_UPDATE_CATCHERS}
    failed = [pid for pid, r in results.items() if r.status is Status.FAIL]
    assert failed, {pid: r.status.value for pid, r in results.items()}
    assert all(r.status is not Status.ERROR for r in results.values()), {p: r.detail[:500] for p, r in results.items()}


@pytest.mark.parametrize("budget", ["quick", "ci"])
def test_the_correct_optimizers_pass_what_catches_the_lost_update(budget: str) -> None:
    for cls in (reference.LBFGS, torch.optim.LBFGS):
        for pid in LOST_UPDATE_CATCHERS:
            result = verdict(cls, pid, budget)
            assert result.status is Status.PASS, f"{cls.__module__}.{cls.__name__} {pid}: {result.detail[:1500]}"


def test_resume_runs_are_long_enough_at_every_budget() -> None:
    assert all(budget.resume_length >= 10 for budget in BUDGETS.values())


@pytest.mark.parametrize("budget", ["quick", "ci"])
def test_a_counter_outside_the_state_acting_after_the_6th_step_fails_resume(budget: str) -> None:
    result = verdict(CounterOutsideState, "resume.torch_save", budget)
    assert result.status is Status.FAIL, result.detail[:1500]
    assert "first difference at step" in result.detail
    step = int(result.detail.split("first difference at step ")[1].split(":")[0])
    assert step >= 6, result.detail[:500]


@pytest.mark.parametrize("cls", [reference.LBFGS, torch.optim.LBFGS])
def test_the_correct_optimizers_resume_over_the_longer_runs(cls: type) -> None:
    result = verdict(cls, "resume.torch_save", "quick")
    assert result.status is Status.PASS, result.detail[:1500]
