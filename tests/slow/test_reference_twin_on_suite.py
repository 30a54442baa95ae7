"""The reference LBFGS is bitwise torch.optim.LBFGS on every suite problem (35 MGH at standard and scaled
starts, quadratics, regressions, MLP, complex), float32 and float64, with and without line search."""

from __future__ import annotations

import pytest
import torch

from lbfgs_verify.compare.trace import record_steps, trace_divergence
from lbfgs_verify.problems import Problem, mgh_suite, suite_problems
from lbfgs_verify.reference import LBFGS

pytestmark = pytest.mark.slow


def _problems() -> list[Problem]:
    problems = suite_problems(torch.float64) + mgh_suite(dtype=torch.float64, scales=(10.0, 100.0))
    problems += [p.with_dtype(torch.float32) for p in suite_problems(torch.float64)]
    return problems


PROBLEMS = _problems()


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("problem", PROBLEMS, ids=[p.name for p in PROBLEMS])
def test_twin_on_suite_problem(problem: Problem, line_search_fn: str | None) -> None:
    hyper = {"history_size": 5, "max_iter": 10, "line_search_fn": line_search_fn}
    if line_search_fn is None:
        hyper["lr"] = 0.1  # fixed steps of 1 overflow on several MGH problems; both must still agree
    traces = []
    for cls in (torch.optim.LBFGS, LBFGS):
        params = problem.make_params()
        opt = cls(params, **hyper)
        traces.append(record_steps(opt, params, problem.make_closure(params), 4, label=cls.__name__,
                                   problem=problem.name, hyperparameters=hyper))
    divergence = trace_divergence(traces[0], traces[1])
    assert divergence is None, f"{problem.name} {hyper}: reference differs from torch at {divergence}"
