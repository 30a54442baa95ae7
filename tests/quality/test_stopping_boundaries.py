"""Stops planted wrong (survivors of the mutation run of the reference, docs/mutation.md):
``stopping.equal_to_tolerance`` against the gradient test written with ``<`` at the start of a step and
after an iteration (with and without line search) and the loss-change test written with ``<=``;
``stopping.descent_test`` against the descent test written gᵀd > +tolerance_change;
``behaviour.returns_first_loss`` against a step that returns nothing when a test ends it; ``behaviour.iterations``
against a max_eval test written with ``>``;
the reference, torch and the simple L-BFGS pass."""

from __future__ import annotations

import pytest
import torch

from lbfgs_verify.properties import Status
from lbfgs_verify.reference import LBFGS
from tests.quality.blind_spot_bugs import (
    DescentTestSignFlipped,
    LooseLossChangeTest,
    MaxEvalTestStrict,
    NoGradientTestAfterSearch,
    ReturnsNothingWhenATestStops,
    StrictGradientTestAfterIteration,
    StrictGradientTestAtStart,
)
from tests.quality.simple_lbfgs import SimpleLBFGS
from tests.quality.verdict import verdict

PROPERTY = "stopping.equal_to_tolerance"


@pytest.mark.parametrize("budget", ["quick", "ci"])
@pytest.mark.parametrize("mutant", [StrictGradientTestAtStart, StrictGradientTestAfterIteration,
                                    NoGradientTestAfterSearch, LooseLossChangeTest])
def test_strict_gradient_tests_fail(mutant: type, budget: str) -> None:
    result = verdict(mutant, PROPERTY, budget, mode="semantics")
    assert result.status is Status.FAIL, (result.status, result.detail)
    assert "tolerance_grad" in result.detail or "tolerance_change" in result.detail, result.detail


@pytest.mark.parametrize("correct", [LBFGS, SimpleLBFGS, torch.optim.LBFGS])
def test_correct_optimizers_pass(correct: type) -> None:
    result = verdict(correct, PROPERTY, mode="semantics")
    assert result.status is Status.PASS, result.detail


@pytest.mark.parametrize("budget", ["quick", "ci"])
def test_a_step_ended_by_a_test_returns_the_first_loss(budget: str) -> None:
    result = verdict(ReturnsNothingWhenATestStops, "behaviour.returns_first_loss", budget, mode="semantics")
    assert result.status is Status.FAIL and "returned None" in result.detail, (result.status, result.detail)
    assert verdict(SimpleLBFGS, "behaviour.returns_first_loss", budget, mode="semantics").status is Status.PASS


@pytest.mark.parametrize("budget", ["quick", "ci"])
def test_a_binding_max_eval_ends_the_step_after_exactly_max_eval_calls(budget: str) -> None:
    result = verdict(MaxEvalTestStrict, "behaviour.iterations", budget, mode="semantics")
    assert result.status is Status.FAIL and "max_eval" in result.detail, (result.status, result.detail)
    assert verdict(SimpleLBFGS, "behaviour.iterations", budget, mode="semantics").status is Status.PASS


@pytest.mark.parametrize("budget", ["quick", "ci"])
def test_a_descent_test_with_the_wrong_sign_fails(budget: str) -> None:
    result = verdict(DescentTestSignFlipped, "stopping.descent_test", budget, mode="semantics")
    assert result.status is Status.FAIL and "before moving" in result.detail, (result.status, result.detail)
    assert result.evidence["calls"] == result.evidence["expected_calls"] + 1, result.evidence


@pytest.mark.parametrize("correct", [LBFGS, SimpleLBFGS, torch.optim.LBFGS])
def test_correct_optimizers_pass_the_descent_test(correct: type) -> None:
    result = verdict(correct, "stopping.descent_test", mode="semantics")
    assert result.status is Status.PASS, result.detail
