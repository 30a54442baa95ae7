"""One-dimensional functions for driving a line search through ``step()``, as one-unknown problems.

An optimizer's first iteration moves along ``d = -g₀`` from ``x₀`` with the trial step
``t₀ = min(1, 1/||g₀||₁)·lr`` (torch/optim/lbfgs.py). On a one-unknown problem ``f(x) = κ·φ(x)`` started at
``x₀ = 0`` with ``κ = 1/|φ'(0)|`` we have ``g₀ = -1``, ``d = 1`` and ``t₀ = lr``: the first line search of
``step()`` is a search on ``φ`` itself, started at ``α₀ = lr``, and the accepted ``x`` is the accepted ``α``.
Scaling by ``κ > 0`` changes neither the sufficient-decrease nor the curvature condition.

- :data:`MORE_THUENTE_FUNCTIONS`: the six test functions of Moré & Thuente, "Line search algorithms with
  guaranteed sufficient decrease", ACM TOMS 20(3):286–307 (1994), section 5, with their parameters
  (they start their searches at α₀ = 1e-3, 1e-1, 1e1, 1e3).
- :func:`armijo_without_step_length`: a function on which the sufficient-decrease test with the step length
  (``φ(α) ≤ φ(0) + c₁·α·φ'(0)``, Nocedal & Wright eq. 3.4) and without it (``φ(α) ≤ φ(0) + c₁·φ'(0)``)
  disagree at ``α₀ = 10``, where the curvature condition holds: a search that drops ``α`` accepts α₀.
- :func:`curvature_at_far_end`: a function whose first trial fails sufficient decrease and whose points
  satisfying the strong curvature condition lie only in the far part of the bracket ``[0, α₀]``, next to
  α₀; a zoom that updates the wrong end or stops at the near end ends without a Wolfe point.
- :func:`step_up`, :func:`on_sufficient_decrease_line`, :func:`curvature_boundary`, :func:`shallow_kink`,
  :func:`plateau`: piecewise-linear functions whose breakpoints and values are exact in binary floating point
  (for α₀ a power of two), built to take the paths of the search that smooth functions never take: two trials of
  exactly equal value, a trial exactly on the sufficient-decrease line or exactly at |φ'| = c₂·|φ'(0)|, a
  bracket whose low end fails sufficient decrease, a zoom over a flat stretch.

Each ``φ`` is written once against the Python array API standard (its namespace is that of its argument,
:func:`lbfgs_verify.problems.xp.namespace`): it evaluates torch tensors (autograd), numpy arrays and JAX arrays
(``jit``, ``jax.grad``) alike, and :func:`line_problem`'s objective has the ``xp_value`` definition of
:mod:`lbfgs_verify.problems.xp`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from lbfgs_verify.problems.base import Expectation, Problem
from lbfgs_verify.problems.xp import TORCH_XP, namespace

Array = Any
"""A torch tensor, numpy array or JAX array."""

LineFunction = Callable[[Array], Array]
"""``φ(α)`` on a float64 array of any array API namespace (a tensor: differentiable by autograd)."""


@dataclass(frozen=True)
class LineCase:
    """A named ``φ`` with the source of its definition."""

    name: str
    phi: LineFunction
    source: str


_MT = "Moré & Thuente, ACM TOMS 20(3):286-307 (1994), section 5, function "


def _mt1(a: Array, beta: float = 2.0) -> Array:
    return -a / (a * a + beta)


def _mt2(a: Array, beta: float = 0.004) -> Array:
    return (a + beta) ** 5 - 2 * (a + beta) ** 4


def _mt3(a: Array, beta: float = 0.01, ell: int = 39) -> Array:
    xp = namespace(a)
    phi0 = xp.where(a <= 1 - beta, 1 - a, xp.where(a >= 1 + beta, a - 1, (a - 1) ** 2 / (2 * beta) + beta / 2))
    return phi0 + 2 * (1 - beta) / (ell * math.pi) * xp.sin(ell * math.pi / 2 * a)


def _gamma(beta: float) -> float:
    return math.sqrt(1 + beta * beta) - beta


def _mt_yanai(beta1: float, beta2: float) -> LineFunction:
    def phi(a: Array) -> Array:
        xp = namespace(a)
        return _gamma(beta1) * xp.sqrt((1 - a) ** 2 + beta2 ** 2) + _gamma(beta2) * xp.sqrt(a ** 2 + beta1 ** 2)
    return phi


MORE_THUENTE_FUNCTIONS: tuple[LineCase, ...] = (
    LineCase("mt1", _mt1, _MT + "5.1 (β = 2)"),
    LineCase("mt2", _mt2, _MT + "5.2 (β = 0.004)"),
    LineCase("mt3", _mt3, _MT + "5.3 (β = 0.01, l = 39)"),
    LineCase("mt4", _mt_yanai(0.001, 0.001), _MT + "5.4 (β₁ = 0.001, β₂ = 0.001)"),
    LineCase("mt5", _mt_yanai(0.01, 0.001), _MT + "5.4 (β₁ = 0.01, β₂ = 0.001)"),
    LineCase("mt6", _mt_yanai(0.001, 0.01), _MT + "5.4 (β₁ = 0.001, β₂ = 0.01)"),
)

MORE_THUENTE_STARTS = (1e-3, 1e-1, 1e1, 1e3)
"""The initial steps α₀ of Moré & Thuente's tables."""


def armijo_without_step_length(alpha0: float = 10.0, c1: float = 1e-4) -> LineCase:
    """``φ(α) = -α·exp(-α/τ)`` (φ'(0) = -1) with τ chosen so that φ(α₀) = -c₁·√α₀: between
    φ(0) + c₁·α₀·φ'(0) = -c₁·α₀ (sufficient decrease with α fails, for α₀ > 1) and φ(0) + c₁·φ'(0) = -c₁ (without
    α it holds). For α₀ >= 5, α₀/τ >= 7 and |φ'(α₀)| = |1 - α₀/τ|·e^{-α₀/τ} <= 0.9 (curvature holds at α₀).
    Defaults: α₀ = 10 (τ ≈ 1.29)."""
    if not alpha0 > 1:
        raise ValueError(f"α₀ must exceed 1 for the two tests to disagree, got {alpha0}")
    tau = alpha0 / math.log(alpha0 / (c1 * math.sqrt(alpha0)))

    def phi(a: Array) -> Array:
        return -a * namespace(a).exp(-a / tau)

    return LineCase(f"armijo_without_alpha[alpha0={alpha0:g}]", phi,
                    "constructed: N&W eq. 3.4 with and without the step length disagree at α₀")


def curvature_at_far_end(alpha0: float = 10.0, far: float = 0.9) -> LineCase:
    """``φ(α) = -α + k·(α - a)₊²`` with ``a = far·α₀`` and ``k = 2/(α₀ - a)²·α₀``: the slope is -1 up to ``a``
    (strong curvature |φ'| <= 0.9 fails), φ' = -1 + 2k(α - a) sweeps through [-0.9, 0.9] in the short interval
    a + [0.05, 0.95]/k just after ``a``, and φ(α₀) = -α₀ + 2α₀ = α₀ > φ(0) fails sufficient decrease: the
    zoom on [0, α₀] must move its low end all the way up to the far part (N&W Alg. 3.6)."""
    a = far * alpha0
    k = 2 * alpha0 / (alpha0 - a) ** 2

    def phi(x: Array) -> Array:
        return -x + k * namespace(x).clip(x - a, min=0) ** 2

    return LineCase(f"curvature_at_far_end[alpha0={alpha0:g},far={far:g}]", phi,
                    "constructed: strong-Wolfe points only at the far end of the first bracket (N&W Alg. 3.6)")


def quadratic_with_minimizer(alpha_star: float) -> LineCase:
    """``φ(α) = (α - α*)² - α*²``: a parabola with its minimiser at α*. The cubic through two points with values
    and slopes of a quadratic is that quadratic (N&W eq. 3.59), so an interpolating zoom's first trial is α*."""

    def phi(a: Array) -> Array:
        return (a - alpha_star) ** 2 - alpha_star**2

    return LineCase(f"quadratic[alpha_star={alpha_star:g}]", phi, "constructed: N&W eq. 3.59 is exact on a quadratic")


def linear_descent() -> LineCase:
    """``φ(α) = -α``: every trial satisfies sufficient decrease and none the curvature condition (φ' = -1
    everywhere), so a strong-Wolfe search extrapolates until its evaluation budget is spent."""

    def phi(a: Array) -> Array:
        return -a

    return LineCase("linear_descent", phi, "constructed: no strong-Wolfe point exists (N&W Alg. 3.5 never brackets)")


SUFFICIENT_DECREASE_C1 = 1e-4
CURVATURE_C2 = 0.9
"""N&W eq. 3.7's constants as torch's ``_strong_wolfe`` uses them (the boundaries below are built on them)."""


def step_up(at: float, jump: float) -> LineCase:
    """``φ(α) = -α + jump·[α >= at]``: slope -1 everywhere (no strong-Wolfe point), a jump up at ``at``. With
    ``at = 50·α₀, jump = 90·α₀`` the trials α₀, 10α₀, 100α₀ of an extrapolation by 10 give φ(100α₀) = φ(10α₀)
    exactly: a trial exactly as high as the previous one (N&W Alg. 3.5: "φ(α_i) >= φ(α_{i-1})" brackets)."""

    def phi(a: Array) -> Array:
        return -a + jump * namespace(a).astype(a >= at, a.dtype)

    return LineCase(f"step_up[at={at:g},jump={jump:g}]", phi,
                    "constructed: two trials of exactly equal value (N&W Alg. 3.5, the test φ(α_i) >= φ(α_{i-1}))")


def on_sufficient_decrease_line(start: float, end: float) -> LineCase:
    """``φ(α) = -α`` before ``start``, ``-c₁·α`` (exactly on the sufficient-decrease line, slope -c₁ so the curvature
    condition holds) on ``[start, end)``, then rising with slope 1: every trial in ``[start, end)`` satisfies both
    strong Wolfe conditions, sufficient decrease with equality (N&W eq. 3.7a is ``<=``)."""
    c1 = SUFFICIENT_DECREASE_C1

    def phi(a: Array) -> Array:
        xp = namespace(a)
        return xp.where(a < start, -a, xp.where(a < end, -c1 * a, -c1 * end + (a - end)))

    return LineCase(f"on_sufficient_decrease_line[start={start:g},end={end:g}]", phi,
                    "constructed: trials exactly on the sufficient-decrease line (N&W eq. 3.7a, non-strict)")


def curvature_boundary(at: float) -> LineCase:
    """``φ(α) = -α`` before ``at``, then ``-at + c₂·(α - at)``: past the kink the slope is exactly
    c₂·|φ'(0)| = 0.9, the boundary of the strong curvature condition (N&W eq. 3.7b is ``<=``)."""
    c2 = CURVATURE_C2

    def phi(a: Array) -> Array:
        return namespace(a).where(a < at, -a, -at + c2 * (a - at))

    return LineCase(f"curvature_boundary[at={at:g}]", phi,
                    "constructed: slope exactly c₂·|φ'(0)| past a kink (N&W eq. 3.7b, non-strict)")


def shallow_kink(depth: float, rise: float) -> LineCase:
    """``φ(α) = max(-α, -depth + rise·(α - depth))``: the minimum -depth at α = depth, then a slow rise. For
    depth = 2⁻²⁰ and α₀ >= 1 the first trial fails sufficient decrease yet lies below φ(0), and so do the zoom's
    first trials: a bracket whose low (lower-valued) end fails sufficient decrease, where torch reorders the ends
    after each high-end update (docs/torch-2.13-lbfgs.md, defect 9)."""

    def phi(a: Array) -> Array:
        return namespace(a).maximum(-a, -depth + rise * (a - depth))

    return LineCase(f"shallow_kink[depth={depth:g},rise={rise:g}]", phi,
                    "constructed: both ends of the bracket fail sufficient decrease (N&W Alg. 3.6)")


def plateau(at: float) -> LineCase:
    """``φ(α) = -α`` up to ``at``, then flat at ``-at``: zoom trials on the flat stretch are exactly as high as the
    low end (N&W Alg. 3.6: "φ(α_j) >= φ(α_lo)" makes them the high end)."""

    def phi(a: Array) -> Array:
        return namespace(a).where(a <= at, -a, -at + 0 * a)

    return LineCase(f"plateau[at={at:g}]", phi, "constructed: zoom trials as high as the low end (N&W Alg. 3.6)")


def line_problem(case: LineCase, scale: float = 1.0) -> Problem:
    """The one-unknown problem ``f(x) = s·φ(x)/|φ'(0)|`` from ``x₀ = 0`` (float64): ``g₀ = -s``, ``d = s``.

    With ``s >= 1`` the first trial ``t₀·d = min(1, 1/s)·lr·s`` is still ``α₀ = lr``, but ``gᵀd = -s²`` is not -1,
    so a test that divides by ``gᵀd`` where it should multiply, or measures the bracket in ``t`` instead of in
    ``|t·d|``, is seen."""
    if not scale >= 1.0:
        raise ValueError(f"scale must be >= 1 (the first trial is then α₀ = lr), got {scale}")
    zero = torch.zeros((), dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(case.phi(zero), zero)
    kappa = 1.0 / abs(float(slope))
    if not float(slope) < 0:
        raise ValueError(f"{case.name}: φ'(0) = {float(slope)} is not a descent slope")

    return Problem(
        name=f"line_{case.name}[n=1,scale={scale:g},float64]", dimension=1, dtype=torch.float64,
        start=(torch.zeros(1, dtype=torch.float64),), objective=LineObjective(case.phi, scale * kappa),
        expectation=Expectation.STATIONARY_POINT, source=case.source, tags=frozenset({"line_search"}),
    )


@dataclass(frozen=True)
class LineObjective:
    """``factor·sum(φ(x))`` over the parameter list ``[x]`` (x of shape (1,)): the objective of :func:`line_problem`,
    one definition for every array namespace (:mod:`lbfgs_verify.problems.xp`); calling it runs it in torch."""

    phi: LineFunction
    factor: float

    def xp_value(self, xp: ModuleType, params: Sequence[Array]) -> Array:
        """``factor·sum(φ(x))`` in namespace ``xp``."""
        return self.factor * xp.sum(self.phi(params[0]))

    def __call__(self, params: Sequence[Tensor]) -> Tensor:
        return self.xp_value(TORCH_XP, params)
