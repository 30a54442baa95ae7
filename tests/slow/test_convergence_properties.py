"""Convergence properties on every suite problem (the ``ci`` budget visits all of them): torch.optim.LBFGS and
the reference reach f* and agree; the exclusion list still describes torch's behaviour."""

from __future__ import annotations

import pytest
import torch

from lbfgs_verify.problems import Expectation, get_problem, suite_problems
from lbfgs_verify.properties.base import BUDGETS, REGISTRY, CheckContext, Status, load_all, run_property
from lbfgs_verify.properties.convergence import (
    EXCLUDED,
    convergence_problems,
    f_star_tolerance,
    solve,
)
from lbfgs_verify.targets.load import Target

load_all()
pytestmark = pytest.mark.slow
TORCH = Target("torch.optim:LBFGS", torch.optim.LBFGS)
CONVERGENCE = ("convergence.reaches_f_star", "convergence.agrees_with_torch")


def _reference() -> Target:
    from lbfgs_verify.reference import LBFGS

    return Target("lbfgs_verify.reference:LBFGS", LBFGS)


@pytest.mark.parametrize("prop", CONVERGENCE)
@pytest.mark.parametrize("which", ["torch", "reference"])
def test_all_problems(prop: str, which: str) -> None:
    target = TORCH if which == "torch" else _reference()
    result = run_property(REGISTRY[prop], CheckContext(target, budget=BUDGETS["ci"]))
    assert result.status is Status.PASS, result.detail


def test_problem_selection() -> None:
    """Every REACHES_F_STAR problem with a published f* is visited except the documented exclusions; the quick
    budget takes the varied priority problems first."""
    expected = {p.name for p in suite_problems(torch.float64)
                if p.expectation is Expectation.REACHES_F_STAR and p.f_star is not None} - set(EXCLUDED)
    assert {p.name for p in convergence_problems(None)} == expected
    quick = [p.name for p in convergence_problems(BUDGETS["quick"].problems)]
    assert quick[0].startswith("mgh01_rosenbrock") and len(quick) == BUDGETS["quick"].problems


@pytest.mark.parametrize("name", sorted(EXCLUDED))
def test_exclusions_are_still_needed(name: str) -> None:
    """If torch.optim.LBFGS starts solving an excluded problem, the exclusion must go."""
    problem = get_problem(name)
    f, _ = solve(TORCH, problem)
    assert problem.f_star is not None
    assert f - problem.f_star > f_star_tolerance(problem.f_star), f"torch now reaches f* on {name}: {f!r}"
