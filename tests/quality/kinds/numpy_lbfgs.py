"""A numpy L-BFGS of our own through the functional protocol (lbfgs_verify.targets.protocols), with planted bugs.

``minimize(fun_and_grad, x0, *, maxiter, callback, memory, tolerance)``: Nocedal & Wright (2006) Algorithm 7.4
(two-loop), eq. 7.20 (γ = sᵀy/yᵀy), the strong Wolfe conditions 3.7 by bracketing and bisection; first trial step
1/‖g₀‖₂, later 1; stops at ``maxiter``, at ‖g‖∞ ≤ tolerance (1e-5 by default; 0 switches it off), or when the
callback raises ``StopIteration``.

Variants (``lbfgs_verify_kind = "functional"``):

- :class:`CorrectNumpyLBFGS`: passes every ``functional.*`` and ``kinds.*`` property.
- :class:`HiddenStateNumpyLBFGS` (the functional form of a resume bug): the memory of the previous call is kept
  in a module-level cache and warm-starts the next call from the same start: ``functional.deterministic`` and
  ``functional.maxiter_prefix``.
- :class:`TwoLoopBugNumpyLBFGS`: the second loop runs newest first (the order of the first loop):
  ``kinds.two_loop_direction``.
- :class:`LineSearchBugNumpyLBFGS`: accepts any step with sufficient decrease while declaring strong Wolfe:
  ``kinds.wolfe``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lbfgs_verify.targets.protocols import FUNCTIONAL, Conventions

C1, C2, MAX_LS = 1e-4, 0.9, 40

CONVENTIONS = Conventions(
    memory_size=10, memory_name="memory", first_step="direction -g, trial step 1/||g0||_2",
    h0_scaling="sty/yty", pair_skip="pairs with s'y <= 0 are not stored", keeps_negative_pairs=False,
    line_search="strong_wolfe", c1=C1, c2=C2, approximate_wolfe=None,
    stopping="maxiter; max|g| <= tolerance (1e-5); StopIteration from the callback",
    source="tests/quality/kinds/numpy_lbfgs.py (N&W 2006 Alg. 7.4, eq. 7.20, conditions 3.7)",
)

_CACHE: dict[bytes, list[tuple[np.ndarray, np.ndarray]]] = {}
"""The planted hidden state of :class:`HiddenStateNumpyLBFGS`: pairs left by the previous call, by start."""


def two_loop(g: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]], reversed_second: bool = False) -> np.ndarray:
    q, alphas = g.copy(), []
    for s, y in reversed(pairs):
        alpha = float(s @ q) / float(s @ y)
        alphas.append(alpha)
        q = q - alpha * y
    gamma = float(pairs[-1][0] @ pairs[-1][1]) / float(pairs[-1][1] @ pairs[-1][1]) if pairs else 1.0
    r = gamma * q
    order = list(zip(reversed(pairs), alphas, strict=True))
    for (s, y), alpha in (order if reversed_second else reversed(order)):
        r = r + (alpha - float(y @ r) / float(s @ y)) * s
    return -r


def strong_wolfe(fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x: np.ndarray, f0: float,
                 g0: np.ndarray, d: np.ndarray, t: float, curvature: bool = True
                 ) -> tuple[float, float, np.ndarray]:
    slope0, lo, hi = float(g0 @ d), 0.0, np.inf
    f, g = f0, g0
    for _ in range(MAX_LS):
        f, g = fun_and_grad(x + t * d)
        slope = float(g @ d)
        armijo = f <= f0 + C1 * t * slope0
        if armijo and (not curvature or abs(slope) <= -C2 * slope0):
            return t, f, g
        if armijo and slope < 0:
            lo = t
        else:
            hi = t
        t = 2.0 * t if np.isinf(hi) else 0.5 * (lo + hi)
    return t, f, g


class CorrectNumpyLBFGS:
    lbfgs_verify_kind = FUNCTIONAL
    conventions = CONVENTIONS
    library = ""
    stop_by = "StopIteration"
    bug = ""

    def minimize(self, fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *,
                 maxiter: int, callback: Callable[[np.ndarray], Any] | None = None, memory: int | None = None,
                 tolerance: float | None = None) -> np.ndarray:
        m = memory or CONVENTIONS.memory_size
        tol = 1e-5 if tolerance is None else tolerance
        x = np.array(x0, dtype=np.float64)
        key = x.tobytes()
        pairs = list(_CACHE.get(key, [])) if self.bug == "hidden_state" else []
        f, g = fun_and_grad(x)
        for k in range(maxiter):
            if float(np.max(np.abs(g))) <= tol:
                break
            d = two_loop(g, pairs, reversed_second=self.bug == "two_loop")
            t0 = 1.0 if pairs or k else 1.0 / float(np.linalg.norm(g))
            t, f_new, g_new = strong_wolfe(fun_and_grad, x, f, g, d, t0, curvature=self.bug != "line_search")
            x_new = x + t * d
            s, y = x_new - x, g_new - g
            if float(s @ y) > 0:
                pairs = [*pairs, (s, y)][-m:]
            x, f, g = x_new, f_new, g_new
            if self.bug == "hidden_state":
                _CACHE[key] = pairs
            if callback is not None:
                try:
                    callback(x.copy())
                except StopIteration:
                    break
        return x


class HiddenStateNumpyLBFGS(CorrectNumpyLBFGS):
    bug = "hidden_state"


class TwoLoopBugNumpyLBFGS(CorrectNumpyLBFGS):
    bug = "two_loop"


class LineSearchBugNumpyLBFGS(CorrectNumpyLBFGS):
    bug = "line_search"
