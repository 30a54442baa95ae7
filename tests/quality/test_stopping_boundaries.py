"""``stopping.gradient_equal_to_tolerance`` against the gradient test written with ``<`` (a survivor of the
mutation run of the reference, docs/mutation.md), at the start of a step and after an iteration; the reference,
torch and the simple L-BFGS pass."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from lbfgs_verify.properties import Status
from lbfgs_verify.reference import LBFGS
from tests.quality.simple_lbfgs import SimpleLBFGS
from tests.quality.verdict import verdict

PROPERTY = "stopping.gradient_equal_to_tolerance"


class StrictGradientTestAtStart(SimpleLBFGS):
    """Bug: at the start of a step the gradient test is max|g| < tolerance_grad."""

    def _converged(self, g: Tensor, tolerance_grad: float) -> bool:
        return bool(g.abs().max() < tolerance_grad)


class StrictGradientTestAfterIteration(SimpleLBFGS):
    """Bug: after an iteration the gradient test is max|g| < tolerance_grad."""

    def _stop(self, *, g: Tensor, hp: dict[str, Any], **rest: Any) -> bool:
        loose = {**hp, "tolerance_grad": -1.0}  # the inherited tests without the gradient one
        return bool(g.abs().max() < hp["tolerance_grad"]) or super()._stop(g=g, hp=loose, **rest)


@pytest.mark.parametrize("budget", ["quick", "ci"])
@pytest.mark.parametrize("mutant", [StrictGradientTestAtStart, StrictGradientTestAfterIteration])
def test_strict_gradient_tests_fail(mutant: type, budget: str) -> None:
    result = verdict(mutant, PROPERTY, budget, mode="semantics")
    assert result.status is Status.FAIL, (result.status, result.detail)
    assert "tolerance_grad" in result.detail, result.detail


@pytest.mark.parametrize("correct", [LBFGS, SimpleLBFGS, torch.optim.LBFGS])
def test_correct_optimizers_pass(correct: type) -> None:
    result = verdict(correct, PROPERTY, mode="semantics")
    assert result.status is Status.PASS, result.detail
