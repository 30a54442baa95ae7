"""Recording what scipy's L-BFGS-B does, iteration by iteration, and comparing two such recordings.

:func:`record_scipy_lbfgsb` runs the real ``scipy.optimize.minimize(method="L-BFGS-B")`` with a counting
wrapper around ``fun`` and a ``callback(intermediate_result)`` that copies the iterate (scipy passes its live
work array, which it overwrites afterwards). Each iteration becomes a dict with the keys that
:func:`lbfgs_verify.reference.scipy_compat.minimize_lbfgsb` puts in its ``trace``:

- ``"x"``: the accepted iterate (numpy copy),
- ``"f"``: f there,
- ``"nfev"``: evaluations the iteration used, as scipy counts them (scipy calls ``fun`` only for a point other
  than the last one it evaluated, so calls of the wrapper = scipy's ``nfev``, except at a point holding a NaN,
  where ``MemoizeJac`` calls ``fun`` twice for one counted evaluation; the evaluation at x0 belongs to no
  iteration).

:func:`compare_traces` is the one comparison that tests and reports share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import OptimizeResult, minimize

TraceEntry = dict[str, Any]
"""``{"x": np.ndarray, "f": float, "nfev": int}`` for one iteration."""


def record_scipy_lbfgsb(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    options: Mapping[str, Any] | None = None,
    bounds: Any = None,
) -> tuple[OptimizeResult, list[TraceEntry]]:
    """Run scipy's L-BFGS-B (``jac=True``: ``fun`` returns ``(f, g)``; ``bounds`` as ``minimize`` takes them) and
    return its result and trace."""
    half_calls = 0  # twice the evaluations scipy counts (see below)
    counted_before = 2  # the evaluation at x0 (scipy makes it before the first iteration)
    trace: list[TraceEntry] = []

    def counted_fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        # At a point with a NaN, scipy's MemoizeJac (x == x_last fails) calls fun twice for one counted
        # evaluation (once for f, once for g): such a call counts one half.
        nonlocal half_calls
        half_calls += 1 if np.isnan(x).any() else 2
        return fun(x)

    def callback(intermediate_result: OptimizeResult) -> None:
        nonlocal counted_before
        trace.append({
            "x": np.array(intermediate_result.x, dtype=np.float64, copy=True),
            "f": float(intermediate_result.fun),
            "nfev": (half_calls - counted_before) // 2,
        })
        counted_before = half_calls

    result = minimize(counted_fun, np.asarray(x0, dtype=np.float64), jac=True, method="L-BFGS-B",
                      options=dict(options or {}), callback=callback, bounds=bounds)
    if 2 * result.nfev != half_calls:
        raise AssertionError(f"scipy reports nfev={result.nfev} but the recorder counted {half_calls / 2}")
    return result, trace


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """‖a - b‖∞ / ‖b‖∞ (the absolute difference when b = 0); 0 for equal NaN positions, inf for a lone NaN."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if (nan_a != nan_b).any():
        return math.inf
    keep = ~nan_a
    a, b = a[keep], b[keep]
    if a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        same = a == b  # equal infinities count as equal
        diff = np.where(same, 0.0, np.abs(a - b))
    scale = float(np.max(np.abs(b[np.isfinite(b)]), initial=0.0))
    worst = float(np.max(diff))
    if math.isnan(worst):
        return math.inf
    return worst / scale if scale > 0 else worst


@dataclass(frozen=True)
class TraceComparison:
    """How two per-iteration traces differ.

    Attributes:
        iterations: (len(ours), len(reference)).
        counts_identical: same number of iterations and the same ``nfev`` in every iteration.
        first_count_difference: 0-based index of the first iteration whose ``nfev`` differs or that only one
            trace has; ``None`` when ``counts_identical``.
        compared_iterations: iterations compared for iterates (the first ``first_k`` both traces have).
        max_relative_iterate_difference: the largest :func:`relative_difference` of ``x`` over them.
        worst_iteration: 0-based index where that maximum occurs (``None`` when nothing was compared).
        max_relative_f_difference: the largest |f_ours - f_ref| / max(|f_ref|, tiny) over them.
    """

    iterations: tuple[int, int]
    counts_identical: bool
    first_count_difference: int | None
    compared_iterations: int
    max_relative_iterate_difference: float
    worst_iteration: int | None
    max_relative_f_difference: float

    def describe(self) -> str:
        """One line for assertion messages and reports."""
        counts = "counts identical" if self.counts_identical else (
            f"counts differ first at iteration {self.first_count_difference}")
        return (f"{self.iterations[0]} vs {self.iterations[1]} iterations, {counts}; max rel iterate diff over "
                f"the first {self.compared_iterations}: {self.max_relative_iterate_difference:.3g}"
                + (f" (iteration {self.worst_iteration})" if self.worst_iteration is not None else ""))


def compare_traces(
    ours: Sequence[TraceEntry], reference: Sequence[TraceEntry], *, first_k: int = 10
) -> TraceComparison:
    """Compare per-iteration counts over whole traces and iterates over the first ``first_k`` iterations."""
    first_count_difference = None
    for i in range(max(len(ours), len(reference))):
        if i >= len(ours) or i >= len(reference) or ours[i]["nfev"] != reference[i]["nfev"]:
            first_count_difference = i
            break
    compared = min(first_k, len(ours), len(reference))
    worst, worst_at, worst_f = 0.0, None, 0.0
    for i in range(compared):
        diff = relative_difference(ours[i]["x"], reference[i]["x"])
        if worst_at is None or diff > worst:
            worst, worst_at = diff, i
        fa, fb = float(ours[i]["f"]), float(reference[i]["f"])
        if math.isnan(fa) != math.isnan(fb):
            worst_f = math.inf
        elif not (fa == fb or math.isnan(fa)):
            worst_f = max(worst_f, abs(fa - fb) / max(abs(fb), np.finfo(np.float64).tiny))
    return TraceComparison(
        iterations=(len(ours), len(reference)),
        counts_identical=first_count_difference is None,
        first_count_difference=first_count_difference,
        compared_iterations=compared,
        max_relative_iterate_difference=worst,
        worst_iteration=worst_at,
        max_relative_f_difference=worst_f,
    )
