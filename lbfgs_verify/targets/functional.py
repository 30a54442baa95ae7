"""Driving a functional-minimizer target: every evaluation and every accepted iterate recorded.

The objective is wrapped (each call's x, f, g copied: scipy's callback hands out its live work array,
scipy/optimize/_lbfgsb_py.py 1.17.1) and so is the callback (accepted iterates; it raises ``StopIteration`` or
returns ``True`` after ``stop_after`` iterates, as the adapter declares).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lbfgs_verify.problems.frameworks import kind_problem


@dataclass
class FunctionalRun:
    """What one ``minimize`` call did: evaluations (x, f, g), accepted iterates x₀..x_k, the returned x."""

    evaluations: list[tuple[np.ndarray, float, np.ndarray]] = field(default_factory=list)
    iterates: list[np.ndarray] = field(default_factory=list)
    x: np.ndarray | None = None
    error: str = ""


def run_functional(adapter: Any, problem: str, maxiter: int, *, stop_after: int | None = None,
                   memory: int | None = None, tolerance: float | None = 0.0) -> FunctionalRun:
    """One recorded run on ``problem`` from its standard start (``tolerance=0``: only ``maxiter`` stops)."""
    kp = kind_problem(problem)
    fun_and_grad = kp.fun_and_grad()
    run = FunctionalRun(iterates=[kp.x0.copy()])

    def recorded(x: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = fun_and_grad(np.asarray(x, dtype=np.float64))
        run.evaluations.append((np.array(x, dtype=np.float64, copy=True), f, g.copy()))
        return f, g

    def callback(xk: Any) -> Any:
        x = getattr(xk, "x", xk)
        run.iterates.append(np.array(x, dtype=np.float64, copy=True))
        if stop_after is not None and len(run.iterates) - 1 >= stop_after:
            if adapter.stop_by == "StopIteration":
                raise StopIteration
            return True
        return None

    x = adapter.minimize(recorded, kp.x0.copy(), maxiter=maxiter, callback=callback, memory=memory,
                         tolerance=tolerance)
    run.x = np.array(x, dtype=np.float64, copy=True)
    return run


def value_and_gradient_at(run: FunctionalRun, x: np.ndarray, problem: str) -> tuple[float, np.ndarray]:
    """(f, g) at ``x`` as the target saw it (its last evaluation at these exact bytes), else evaluated here."""
    for point, f, g in reversed(run.evaluations):
        if point.tobytes() == x.tobytes():
            return f, g
    return kind_problem(problem).fun_and_grad()(x)
