"""The strong-Wolfe line search of ``torch.optim.LBFGS`` (bracketing + zoom with cubic interpolation).

The algorithm is Nocedal & Wright, *Numerical Optimization* (2nd ed.), Algorithms 3.5 (bracketing) and 3.6
(zoom), with the step chosen by cubic interpolation of two points with values and slopes (N&W eq. 3.59).
torch ported it from Lua torch's ``optim/lswolfe.lua`` and ``polyinterp.lua`` (see
``torch/optim/lbfgs.py::_strong_wolfe``); this module performs exactly the same floating-point operations,
in the same order and with the same mix of Python floats and 0-dim tensors, so that the reference optimizer
is bitwise equal to torch. Do not "simplify" an expression here without checking the bitwise tests.

The conditions accepted (N&W eq. 3.7, strong Wolfe), with ``φ(t) = f(x + t d)``:
    sufficient decrease  φ(t) ≤ φ(0) + c1 · t · φ'(0)        (c1 = 1e-4)
    curvature            |φ'(t)| ≤ -c2 · φ'(0)                (c2 = 0.9)
The search also stops without those conditions when it has used ``max_ls`` evaluations or when the bracket
is shorter than ``tolerance_change`` (measured as ``|Δt| · max|d|``); it then returns the best point seen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Scalar = float | int | Tensor
DirectionalEvaluate = Callable[[list[Tensor], Scalar, Tensor], tuple[float, Tensor]]
"""``obj(x0, t, d) -> (f(x0 + t d), ∇f(x0 + t d) flattened)``; leaves the parameters at ``x0``."""

SUFFICIENT_DECREASE_C1 = 1e-4
CURVATURE_C2 = 0.9


def cubic_interpolate(
    x1: Scalar, f1: Scalar, g1: Scalar, x2: Scalar, f2: Scalar, g2: Scalar,
    bounds: tuple[Scalar, Scalar] | None = None,
) -> Scalar:
    """Minimizer of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to ``bounds``.

    N&W eq. (3.59): d1 = g1 + g2 - 3 (f1 - f2)/(x1 - x2), d2 = sqrt(d1² - g1 g2),
    x = x2 - (x2 - x1) (g2 + d2 - d1)/(g2 - g1 + 2 d2). When the cubic has no minimizer (d1² < g1 g2) the
    midpoint of the bounds is returned. Same operations as torch's ``_cubic_interpolate``.

    Deviation from torch (documented, pytorch PR #42093): when x1 == x2 are Python numbers torch divides by
    zero and raises ZeroDivisionError; here the midpoint of the bounds is returned instead.
    """
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    if not isinstance(x1 - x2, Tensor) and x1 == x2:
        return (xmin_bound + xmax_bound) / 2.0
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = d2_square.sqrt()
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


@dataclass
class LineSearchResult:
    """What the search returns: the accepted step, its loss and flat gradient, and evaluations used."""

    loss: float | Tensor
    flat_grad: Tensor
    t: Scalar
    evaluations: int


def strong_wolfe(
    evaluate: DirectionalEvaluate,
    x0: list[Tensor],
    t: Scalar,
    d: Tensor,
    loss: float,
    flat_grad: Tensor,
    gtd: Tensor,
    c1: float = SUFFICIENT_DECREASE_C1,
    c2: float = CURVATURE_C2,
    tolerance_change: float = 1e-9,
    max_ls: int = 25,
) -> LineSearchResult:
    """Find ``t`` satisfying the strong Wolfe conditions along ``d`` from ``x0`` (N&W Alg. 3.5 + 3.6).

    ``loss``, ``flat_grad``, ``gtd`` are φ(0), ∇f(x0), φ'(0). ``max_ls`` bounds the evaluations (torch passes
    ``max_eval - evaluations already used in this step()``).
    """
    d_norm = d.abs().max()
    flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
    f_new, g_new = evaluate(x0, t, d)
    evaluations = 1
    gtd_new = g_new.dot(d)

    # --- Bracketing phase (N&W Alg. 3.5) ------------------------------------------------------------
    t_prev, f_prev, g_prev, gtd_prev = 0, loss, flat_grad, gtd
    done = False
    ls_iter = 0
    bracket: list[Scalar] = []
    bracket_f: list[Scalar] = []
    bracket_g: list[Tensor] = []
    bracket_gtd: list[Scalar] = []
    while ls_iter < max_ls:
        armijo_fails = f_new > (loss + c1 * t * gtd)
        if armijo_fails or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g = [g_prev, g_new.clone(memory_format=torch.contiguous_format)]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:  # strong Wolfe curvature holds: accept t
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:  # slope turned positive: a minimizer lies between t_prev and t
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g = [g_prev, g_new.clone(memory_format=torch.contiguous_format)]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        # extrapolate: cubic step restricted to [t + 0.01 (t - t_prev), 10 t]
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        previous_t = t
        t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev = previous_t, f_new
        g_prev = g_new.clone(memory_format=torch.contiguous_format)
        gtd_prev = gtd_new
        f_new, g_new = evaluate(x0, t, d)
        evaluations += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

    if ls_iter == max_ls:  # evaluation budget spent while bracketing
        bracket, bracket_f, bracket_g = [0, t], [loss, f_new], [flat_grad, g_new]

    # --- Zoom phase (N&W Alg. 3.6) ------------------------------------------------------------------
    insufficient_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:  # bracket too small
            break
        t = cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])

        # Safeguard: a trial too close to an end of the bracket is moved 10% of the bracket inside,
        # if the previous trial already made insufficient progress or t sits on/over the end.
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insufficient_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False

        f_new, g_new = evaluate(x0, t, d)
        evaluations += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

        if f_new > (loss + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            # sufficient decrease fails, or no better than the low end: t becomes the high end
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos] = g_new.clone(memory_format=torch.contiguous_format)
            bracket_gtd[high_pos] = gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                # the old low end becomes the high end
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos] = g_new.clone(memory_format=torch.contiguous_format)
            bracket_gtd[low_pos] = gtd_new

    return LineSearchResult(bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], evaluations)
