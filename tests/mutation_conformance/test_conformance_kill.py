"""Second stage of the mutation run (``scripts/mutation.sh``): the reference's strong-Wolfe search is bitwise
torch's on searches that interpolate, bracket and zoom.

A mutant of ``lbfgs_verify/line_search/strong_wolfe.py`` that survives the properties-mode kill set
(``tests/mutation/``) either changes bits (it picks other trial points, none of which violates a property) or
is equivalent. Here the reference and ``torch.optim.LBFGS`` run one ``strong_wolfe`` step on the line-search
problems (:mod:`lbfgs_verify.problems.line_functions`: Moré–Thuente functions from four starts, the constructed
functions, quadratics), where the first trial is rarely accepted, and every closure call and the final point
must be bitwise equal. Unmutated, the reference is torch's twin, so these pass.
"""

from __future__ import annotations

import pytest
import torch

from lbfgs_verify.compare.bitwise import first_difference
from lbfgs_verify.engine.observe import observe
from lbfgs_verify.problems.line_functions import (
    MORE_THUENTE_FUNCTIONS,
    MORE_THUENTE_STARTS,
    LineCase,
    armijo_without_step_length,
    curvature_at_far_end,
    curvature_boundary,
    line_problem,
    linear_descent,
    on_sufficient_decrease_line,
    plateau,
    quadratic_with_minimizer,
    shallow_kink,
    step_up,
)
from lbfgs_verify.reference import LBFGS
from lbfgs_verify.targets.load import Target

CASES: list[tuple[LineCase, float]] = [(c, a) for c in MORE_THUENTE_FUNCTIONS for a in MORE_THUENTE_STARTS]
CASES += [(armijo_without_step_length(10.0), 10.0), (curvature_at_far_end(10.0, 0.9), 10.0),
          (curvature_at_far_end(300.0, 0.7), 300.0), (quadratic_with_minimizer(1.0), 4.0),
          (quadratic_with_minimizer(3.0), 50.0), (quadratic_with_minimizer(2.0), 0.01)]
# the paths smooth functions never take: equal trial values (in the extrapolation, and against the low end of the
# zoom), a bracket whose low end fails sufficient decrease (the ends reordered after a high-end update), trials on
# the boundaries of the strong Wolfe conditions, a straight line
CASES += [(linear_descent(), 1.0), (step_up(5.0, 9.0), 1.0), (step_up(50.0, 90.0), 1.0), (plateau(10.0), 1.0),
          (shallow_kink(2.0**-20, 2.0**-21), 64.0), (shallow_kink(2.0**-20, 2.0**-21), 1.0),
          (on_sufficient_decrease_line(0.5, 4.0), 1.0), (on_sufficient_decrease_line(1 / 16, 15 / 16), 1.0),
          (curvature_boundary(0.75), 1.0), (curvature_boundary(0.125), 1.0), (curvature_boundary(0.25), 1.0)]


def _run(factory: type, case: LineCase, alpha0: float, max_eval: int) -> list[torch.Tensor]:
    hp = {"lr": alpha0, "max_iter": 3, "max_eval": max_eval, "line_search_fn": "strong_wolfe"}
    obs = observe(Target(factory.__name__, factory), line_problem(case), hp, 2)
    return [t for step in obs.steps for t in [*(e.x for e in step.evaluations), step.x_after]]


@pytest.mark.parametrize("max_eval", [100, 7])
def test_reference_search_is_bitwise_torch_on_line_problems(max_eval: int) -> None:
    for case, alpha0 in CASES:
        expected = _run(torch.optim.LBFGS, case, alpha0, max_eval)
        actual = _run(LBFGS, case, alpha0, max_eval)
        difference = first_difference(expected, actual, "points")
        assert difference is None, f"{case.name} from α₀ = {alpha0}: {difference}"
