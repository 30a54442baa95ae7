"""Bounded L-BFGS-B against scipy 1.17 on the 35 Moré–Garbow–Hillstrom problems (issue #12).

Two boxes per problem, both built from scipy's own unbounded run from the standard start (autograd gradients, the
same function for both solvers):

- **inactive**: the bounding box of that run's iterates (x0 included), widened by 1 + 10 % of its extent on each
  side, and widened 4× again while scipy's bounded run still ends on a bound (its path differs from the free
  one): no bound is active at the solution, but the bounded code path runs (breakpoints, longest feasible step,
  first step ≤ 1);
- **active**: every variable of the unbounded solution x* is cut off by a bound placed 0.1·(1 + |x*_i|) beyond it
  (an upper bound below x*_i for even i, a lower bound above it for odd i): the bounded solution sits on bounds.

For each run: the same status, ``nit``, evaluations per iteration and iterates as scipy, to the bit; where not,
the first differing iteration is reported. Also from the far starts 10·x0 in boxes the path runs into.
Measured here (scipy 1.17.1, one thread): all 70 + 35 runs bitwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy.optimize import OptimizeResult

from lbfgs_verify.compare.scipy_trace import TraceEntry, record_scipy_lbfgsb
from lbfgs_verify.problems import mgh_suite
from lbfgs_verify.problems.base import Problem
from lbfgs_verify.reference.scipy_compat import minimize_lbfgsb

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class BoundedRun:
    problem: Problem
    box: str
    bounds: list[tuple[float, float]]
    ours: OptimizeResult
    scipy: OptimizeResult
    scipy_trace: list[TraceEntry]

    @property
    def active_at_solution(self) -> int:
        lower = np.array([b[0] for b in self.bounds])
        upper = np.array([b[1] for b in self.bounds])
        return int(np.sum((self.scipy.x == lower) | (self.scipy.x == upper)))

    def first_difference(self) -> str:
        """'' when the runs agree to the bit, else the first iteration (1-based) or field that differs."""
        ours, theirs = self.ours.trace, self.scipy_trace
        for i in range(max(len(ours), len(theirs))):
            if i >= len(ours) or i >= len(theirs):
                return f"iteration {i + 1}: only one run has it ({len(ours)} vs {len(theirs)} iterations)"
            if ours[i]["nfev"] != theirs[i]["nfev"]:
                return f"iteration {i + 1}: evaluations {ours[i]['nfev']} vs {theirs[i]['nfev']}"
            if ours[i]["x"].tobytes() != theirs[i]["x"].tobytes():
                worst = float(np.max(np.abs(ours[i]["x"] - theirs[i]["x"])))
                return f"iteration {i + 1}: iterate differs (max abs {worst:.3g})"
        for key in ("status", "nit", "nfev", "message"):
            if self.ours[key] != self.scipy[key]:
                return f"{key}: {self.ours[key]!r} vs {self.scipy[key]!r}"
        if self.ours.x.tobytes() != self.scipy.x.tobytes() or self.ours.jac.tobytes() != self.scipy.jac.tobytes():
            return "final x or gradient"
        return ""

    def row(self) -> str:
        why = self.first_difference() or "bitwise"
        return (f"{self.problem.name:48s} {self.box:8s} status {self.ours.status}/{self.scipy.status} nit "
                f"{self.ours.nit}/{self.scipy.nit} nfev {self.ours.nfev}/{self.scipy.nfev} active "
                f"{self.active_at_solution}: {why}")


def _boxes(problem: Problem) -> dict[str, list[tuple[float, float]]]:
    fun, x0 = problem.numpy_fun(), problem.flat_start()
    free_run, free_trace = record_scipy_lbfgsb(fun, x0)
    points = np.vstack([x0, *[entry["x"] for entry in free_trace]]) if free_trace else x0[None, :]
    finite = np.where(np.isfinite(points), points, 0.0)
    low, high = finite.min(axis=0), finite.max(axis=0)
    margin = 1.0 + 0.1 * (high - low)
    for _ in range(8):  # widen until scipy's bounded run does not end on a bound (its path differs from the free one)
        inactive = [(float(lo - mg), float(hi + mg)) for lo, hi, mg in zip(low, high, margin, strict=True)]
        bounded_run, _trace = record_scipy_lbfgsb(fun, x0, bounds=inactive)
        if not any(v in bound for v, bound in zip(bounded_run.x, inactive, strict=True)):
            break
        margin = 4.0 * margin
    solution = np.where(np.isfinite(free_run.x), free_run.x, 0.0)
    cut = 0.1 * (1.0 + np.abs(solution))
    active = [(-np.inf, float(v - c)) if i % 2 == 0 else (float(v + c), np.inf)
              for i, (v, c) in enumerate(zip(solution, cut, strict=True))]
    return {"inactive": inactive, "active": active}


def _run(problem: Problem, box: str, bounds: list[tuple[float, float]]) -> BoundedRun:
    torch.set_num_threads(1)
    fun, x0 = problem.numpy_fun(), problem.flat_start()
    scipy_result, scipy_trace = record_scipy_lbfgsb(fun, x0, bounds=bounds)
    ours = minimize_lbfgsb(fun, x0, jac=True, bounds=bounds)
    return BoundedRun(problem, box, bounds, ours, scipy_result, scipy_trace)


@pytest.fixture(scope="module")
def runs() -> list[BoundedRun]:
    out = []
    for problem in mgh_suite():
        for box, bounds in _boxes(problem).items():
            out.append(_run(problem, box, bounds))
    return out


def test_every_bounded_run_is_bitwise_scipys(runs: list[BoundedRun]) -> None:
    assert len(runs) == 70
    differ = [run.row() for run in runs if run.first_difference()]
    assert not differ, f"{len(differ)} of {len(runs)} bounded runs differ from scipy:\n" + "\n".join(differ)


def test_the_boxes_are_what_they_claim(runs: list[BoundedRun]) -> None:
    """Active boxes hold scipy's solution on a bound on most problems; inactive boxes never do."""
    inactive_hits = [run.row() for run in runs if run.box == "inactive" and run.active_at_solution]
    assert not inactive_hits, "inactive boxes active at the solution:\n" + "\n".join(inactive_hits)
    active = [run for run in runs if run.box == "active"]
    on_bounds = [run for run in active if run.active_at_solution > 0]
    assert len(on_bounds) >= 30, f"only {len(on_bounds)} of 35 active boxes hold the solution on a bound"


def _box_around_far_start(x0: np.ndarray) -> list[tuple[float, float]]:
    """A box holding the start 10·x0 that cuts off half of each coordinate's way to the origin (upper side for
    even i, lower side for odd i): the first steps run into bounds."""
    return [(float(min(v, 0.0) - 1.0), float(max(v, 0.0) * 0.5 + 0.5)) if i % 2 == 0
            else (float(min(v, 0.0) * 0.5 - 0.5), float(max(v, 0.0) + 1.0)) for i, v in enumerate(x0)]


def test_far_starts_in_cutting_boxes_are_bitwise_scipys() -> None:
    """From 10·x0 (overflow, long searches) in a box that the path runs into: all 35 runs bitwise scipy's."""
    differ = []
    for problem in mgh_suite(scales=(10.0,)):
        run = _run(problem, "far", _box_around_far_start(problem.flat_start()))
        if run.first_difference():
            differ.append(run.row())
    assert not differ, "not bitwise scipy's:\n" + "\n".join(differ)
