"""Stops planted wrong (survivors of the mutation run of the reference, docs/mutation.md):
``stopping.equal_to_tolerance`` against the gradient test written with ``<`` at the start of a step and
after an iteration (with and without line search) and the loss-change test written with ``<=``;
``behaviour.returns_first_loss`` against a step that returns nothing when a test ends it; ``behaviour.iterations``
against a max_eval test written with ``>``;
the reference, torch and the simple L-BFGS pass."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from lbfgs_verify.properties import Status
from lbfgs_verify.reference import LBFGS
from tests.quality.simple_lbfgs import SimpleLBFGS
from tests.quality.verdict import verdict

PROPERTY = "stopping.equal_to_tolerance"


class StrictGradientTestAtStart(SimpleLBFGS):
    """Bug: at the start of a step the gradient test is max|g| < tolerance_grad."""

    def _converged(self, g: Tensor, tolerance_grad: float) -> bool:
        return bool(g.abs().max() < tolerance_grad)


class StrictGradientTestAfterIteration(SimpleLBFGS):
    """Bug: after an iteration the gradient test is max|g| < tolerance_grad."""

    def _stop(self, *, g: Tensor, hp: dict[str, Any], **rest: Any) -> bool:
        loose = {**hp, "tolerance_grad": -1.0}  # the inherited tests without the gradient one
        return bool(g.abs().max() < hp["tolerance_grad"]) or super()._stop(g=g, hp=loose, **rest)


class NoGradientTestAfterSearch(SimpleLBFGS):
    """Bug: after a strong-Wolfe line search the gradient test is skipped (``opt_cond`` left unset)."""

    def _stop(self, *, g: Tensor, hp: dict[str, Any], **rest: Any) -> bool:
        if hp["line_search_fn"] == "strong_wolfe":
            hp = {**hp, "tolerance_grad": -1.0}
        return super()._stop(g=g, hp=hp, **rest)


class LooseLossChangeTest(SimpleLBFGS):
    """Bug: the loss-change test is |f_k - f_(k-1)| <= tolerance_change (torch: strict <)."""

    def _stop(self, *, loss: float, prev_loss: float, hp: dict[str, Any], **rest: Any) -> bool:
        return abs(loss - prev_loss) <= hp["tolerance_change"] or super()._stop(loss=loss, prev_loss=prev_loss,
                                                                                hp=hp, **rest)


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


class ReturnsNothingWhenATestStops(SimpleLBFGS):
    """Bug: a step that ends on max_eval or a tolerance (not on max_iter) returns None (a ``return`` where torch
    has ``break``: a survivor of the mutation run of the reference)."""

    def _stop(self, **tests: Any) -> bool:
        stop = super()._stop(**tests)
        self.ended_early = stop and tests["iteration"] != tests["hp"]["max_iter"]
        return stop

    def step(self, closure: Any) -> Any:
        self.ended_early = False
        loss = super().step(closure)
        return None if self.ended_early else loss


@pytest.mark.parametrize("budget", ["quick", "ci"])
def test_a_step_ended_by_a_test_returns_the_first_loss(budget: str) -> None:
    result = verdict(ReturnsNothingWhenATestStops, "behaviour.returns_first_loss", budget, mode="semantics")
    assert result.status is Status.FAIL and "returned None" in result.detail, (result.status, result.detail)
    assert verdict(SimpleLBFGS, "behaviour.returns_first_loss", budget, mode="semantics").status is Status.PASS


class MaxEvalTestStrict(SimpleLBFGS):
    """Bug: a step stops on its evaluation budget only once it has made more than max_eval calls (> for >=)."""

    def _stop(self, *, evals: int, hp: dict[str, Any], **rest: Any) -> bool:
        return evals > hp["max_eval"] or super()._stop(evals=evals, hp={**hp, "max_eval": float("inf")}, **rest)


@pytest.mark.parametrize("budget", ["quick", "ci"])
def test_a_binding_max_eval_ends_the_step_after_exactly_max_eval_calls(budget: str) -> None:
    result = verdict(MaxEvalTestStrict, "behaviour.iterations", budget, mode="semantics")
    assert result.status is Status.FAIL and "max_eval" in result.detail, (result.status, result.detail)
    assert verdict(SimpleLBFGS, "behaviour.iterations", budget, mode="semantics").status is Status.PASS
