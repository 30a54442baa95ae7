"""Properties-level claims that every correct L-BFGS meets (issue 19): correct optimizers with other conventions
pass them, the planted bugs of :mod:`tests.quality.property_claim_bugs` fail them at the ci and quick budgets, and
each claim's differential control (torch's own call count, the optimizer's own memory convention, the target's
declared c₁) decides what is allowed."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lbfgs_verify.engine.strategies import make_problem
from lbfgs_verify.problems import get_problem
from lbfgs_verify.problems.base import Problem
from lbfgs_verify.properties.base import BUDGETS, REGISTRY, CheckContext, PropertyResult, Status, load_all, run_property
from lbfgs_verify.properties.behaviour import torch_calls_per_step
from lbfgs_verify.properties.convergence import local_minimum_defect, solve
from lbfgs_verify.properties.line_search import C1_ATTRIBUTE, C1_FLOOR, declared_c1
from lbfgs_verify.targets.load import Target
from tests.quality.blind_spot_bugs import ArmijoWithoutStepLength, MaxEvalTestStrict
from tests.quality.planted_bugs import FirstStepLr, RestartsMemoryEachStep, TorchFinalEvaluation
from tests.quality.property_claim_bugs import CLAIM_MUTANTS
from tests.quality.simple_lbfgs import SimpleLBFGS

load_all()

TORCH = Target("torch.optim:LBFGS", torch.optim.LBFGS)
CHANGED = ("convergence.reaches_f_star", "line_search.sufficient_decrease", "behaviour.max_eval",
           "behaviour.lowered_history_uses_newest")


def _target(factory: Any) -> Target:
    if factory is torch.optim.LBFGS:
        return TORCH
    return Target(f"{factory.__module__}:{factory.__qualname__}", factory)


def _run(property_id: str, factory: Any, budget: str = "ci") -> PropertyResult:
    return run_property(REGISTRY[property_id], CheckContext(_target(factory), mode="properties",
                                                            budget=BUDGETS[budget]))


def _reference() -> type:
    from lbfgs_verify.reference import LBFGS

    return LBFGS


def test_the_claims_are_properties_and_the_f_star_one_semantics() -> None:
    for property_id in CHANGED:
        assert REGISTRY[property_id].level == "properties", property_id
    assert REGISTRY["convergence.reaches_tabulated_f_star"].level == "semantics"
    assert REGISTRY["behaviour.change_history_size"].level == "semantics"


@pytest.mark.parametrize("property_id", CHANGED)
@pytest.mark.parametrize("factory", [_reference(), SimpleLBFGS, FirstStepLr, RestartsMemoryEachStep],
                         ids=lambda f: f.__name__)
def test_correct_optimizers_pass(property_id: str, factory: Any) -> None:
    result = _run(property_id, factory)
    assert result.status is Status.PASS, result.detail


@pytest.mark.parametrize("property_id", [p for p in CHANGED if p != "behaviour.lowered_history_uses_newest"])
def test_torch_passes(property_id: str) -> None:
    result = _run(property_id, torch.optim.LBFGS)
    assert result.status is Status.PASS, result.detail


def test_torch_fails_the_lowered_history_claim_with_its_index_error() -> None:
    """torch.optim.LBFGS 2.13 raises IndexError after history_size is lowered (its ``al`` buffer keeps the old
    length): a real defect of torch, reported at level properties as well."""
    result = _run("behaviour.lowered_history_uses_newest", torch.optim.LBFGS, "quick")
    assert result.status in (Status.FAIL, Status.ERROR)
    assert "IndexError" in result.detail


@pytest.mark.parametrize("budget", ["ci", "quick"])
@pytest.mark.parametrize("mutant", list(CLAIM_MUTANTS), ids=lambda c: c.__name__)
def test_planted_bugs_fail_at_properties(mutant: type, budget: str) -> None:
    for property_id in CLAIM_MUTANTS[mutant]:
        result = _run(property_id, mutant, budget)
        assert result.status is Status.FAIL, f"{property_id}: {result.status} {result.detail}"


# --------------------------------------------------------------------------------------------------------
# convergence.reaches_f_star: a local minimum is enough at level properties
# --------------------------------------------------------------------------------------------------------


def test_another_local_minimum_passes_properties_and_fails_the_tabulated_f_star() -> None:
    """First step t = lr: Broyden banded (n = 10) ends at f = 3.06, a local minimum (not f* = 0)."""
    problem = get_problem("mgh31_broyden_banded[n=10,x0*1,float64]")
    f, obs = solve(_target(FirstStepLr), problem)
    assert f > 1.0
    assert local_minimum_defect(problem, obs.params) is None
    semantics = run_property(REGISTRY["convergence.reaches_tabulated_f_star"],
                             CheckContext(_target(FirstStepLr), mode="semantics", budget=BUDGETS["ci"]))
    assert semantics.status is Status.FAIL
    assert "mgh31_broyden_banded" in semantics.detail and "did not reach f*" in semantics.detail


def _saddle() -> Problem:
    def objective(params: list[torch.Tensor]) -> torch.Tensor:
        x = params[0]
        return x[0] ** 2 - x[1] ** 2 + x[1] ** 4

    return Problem("saddle[n=2,float64]", 2, torch.float64, (torch.zeros(2, dtype=torch.float64),), objective)


def test_local_minimum_defect_names_a_saddle_and_a_large_gradient() -> None:
    problem = _saddle()
    at_saddle = local_minimum_defect(problem, [torch.zeros(2, dtype=torch.float64)])
    assert at_saddle is not None and "negative curvature" in at_saddle and "-2" in at_saddle
    at_minimum = local_minimum_defect(problem, [torch.tensor([0.0, 2 ** -0.5], dtype=torch.float64)])
    assert at_minimum is None
    away = local_minimum_defect(problem, [torch.tensor([1.0, 0.0], dtype=torch.float64)])
    assert away is not None and "not a stationary point" in away


# --------------------------------------------------------------------------------------------------------
# line_search.sufficient_decrease: the c1 floor, or the target's own
# --------------------------------------------------------------------------------------------------------


class DeclaresTorchC1(SimpleLBFGS):
    """Correct, and says so: its sufficient-decrease constant is 1e-4."""

    lbfgs_verify_c1 = 1e-4


class ArmijoWithoutStepLengthDeclared(ArmijoWithoutStepLength):
    lbfgs_verify_c1 = 1e-4


class DeclaresNonsense(SimpleLBFGS):
    lbfgs_verify_c1 = 2.0


def test_declared_c1_is_read_and_checked() -> None:
    assert declared_c1(_target(SimpleLBFGS)) == C1_FLOOR == 1e-10
    assert declared_c1(_target(DeclaresTorchC1)) == 1e-4
    with pytest.raises(ValueError, match=C1_ATTRIBUTE):
        declared_c1(_target(DeclaresNonsense))
    assert _run("line_search.sufficient_decrease", DeclaresTorchC1, "quick").status is Status.PASS
    declared = _run("line_search.sufficient_decrease", ArmijoWithoutStepLengthDeclared, "quick")
    assert declared.status is Status.FAIL and "declared by the target" in declared.detail
    nonsense = _run("line_search.sufficient_decrease", DeclaresNonsense, "quick")
    assert nonsense.status is Status.ERROR and C1_ATTRIBUTE in nonsense.detail


def test_faulty_test_is_caught_with_a_step_far_beyond_one() -> None:
    result = _run("line_search.sufficient_decrease", ArmijoWithoutStepLength, "quick")
    assert result.status is Status.FAIL
    assert result.evidence["lr"] > 1e6 and "sufficient decrease fails" in result.detail


# --------------------------------------------------------------------------------------------------------
# behaviour.max_eval: torch's extra call is measured, not assumed
# --------------------------------------------------------------------------------------------------------


def test_torch_control_measures_its_own_extra_call() -> None:
    """Without line search torch makes max_eval calls (max_eval >= 2); its strong-Wolfe search may make one more."""
    rosenbrock = make_problem("rosenbrock")
    plain = {"lr": 1, "max_iter": 6, "max_eval": 3, "history_size": 3, "line_search_fn": None}
    assert max(torch_calls_per_step(rosenbrock, plain, 3)) == 3
    wolfe = {"lr": 100.0, "max_iter": 3, "max_eval": 2, "history_size": 3, "line_search_fn": "strong_wolfe"}
    assert max(torch_calls_per_step(rosenbrock, wolfe, 3)) == 3


def test_a_final_evaluation_of_the_result_is_not_a_call_past_max_eval() -> None:
    """torch's schedule plus a closure call at the final point of every step (scipy, torchmin, QQN do this)."""
    result = _run("behaviour.max_eval", TorchFinalEvaluation)
    assert result.status is Status.PASS, result.detail


def test_one_call_past_max_eval_is_named_with_the_control() -> None:
    result = _run("behaviour.max_eval", MaxEvalTestStrict, "quick")
    assert result.status is Status.FAIL
    assert "on the same scenario torch.optim.LBFGS makes [3, 3, 3]" in result.detail
    assert set(result.evidence["torch_calls"]) == {"the same scenario", "φ(α) = -α (the budget ends every search)"}
    assert result.evidence["calls"] == result.evidence["max_eval"] + 1 == result.evidence["allowed"] + 1
