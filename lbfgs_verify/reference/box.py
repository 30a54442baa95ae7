"""Box constraints l ≤ x ≤ u as L-BFGS-B sees them: bound kinds, projection, projected gradient, longest step.

Rules from R. H. Byrd, P. Lu, J. Nocedal, C. Zhu, "A limited memory algorithm for bound constrained
optimization", SIAM J. Sci. Comput. 16(5), 1995 (§2: the projected gradient, §5: the line search stays in the box)
and the behaviour of scipy 1.17's ``scipy/optimize/__lbfgsb.c`` (``active``, ``projgr``, ``lnsrlb``) and of its
driver ``_lbfgsb_py.py`` (the ``nbd`` codes). Comparisons use C ``fmax``/``fmin`` (a NaN argument is ignored).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lbfgs_verify.line_search.more_thuente import c_div, c_fmax, c_fmin

UNBOUNDED, LOWER_ONLY, BOTH, UPPER_ONLY = 0, 1, 2, 3
"""``nbd`` codes of L-BFGS-B: no bound, lower bound only, both bounds, upper bound only."""

WHERE_UNBOUNDED, WHERE_FREE, WHERE_AT_LOWER, WHERE_AT_UPPER, WHERE_FIXED, WHERE_FREE_ZERO_GRADIENT = -1, 0, 1, 2, 3, -3
"""``iwhere`` codes: unbounded (always free), free, held at the lower bound, at the upper bound, fixed (l = u),
free with a zero gradient component (``cauchy``). Codes ≤ 0 are free variables (``freev``)."""


@dataclass(frozen=True)
class BoxBounds:
    """Per-variable bounds in L-BFGS-B's encoding.

    Attributes:
        lower: l_i where a lower bound exists, else 0.0 (float64, shape (n,)).
        upper: u_i where an upper bound exists, else 0.0.
        kind: the ``nbd`` code of each variable (int, shape (n,)).
    """

    lower: np.ndarray
    upper: np.ndarray
    kind: np.ndarray

    @property
    def n(self) -> int:
        return int(self.kind.shape[0])

    @property
    def constrained(self) -> bool:
        """Some variable has a bound (``active``: ``cnstnd``)."""
        return bool((self.kind != UNBOUNDED).any())

    @property
    def boxed(self) -> bool:
        """Every variable has both bounds (``active``: ``boxed``; changes the first trial step)."""
        return bool((self.kind == BOTH).all())

    @classmethod
    def unbounded(cls, n: int) -> BoxBounds:
        return cls(np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64))

    @classmethod
    def from_arrays(cls, lower: Any, upper: Any) -> BoxBounds:
        """From lower/upper arrays with ±inf (or NaN, read as "no bound") where a side is unbounded.

        Raises ``ValueError`` when the shapes differ or a lower bound exceeds its upper bound.
        """
        lo = np.asarray(lower, dtype=np.float64).reshape(-1)
        hi = np.asarray(upper, dtype=np.float64).reshape(-1)
        if lo.shape != hi.shape:
            raise ValueError(f"lower and upper bounds differ in length ({lo.size} vs {hi.size})")
        has_lo = np.isfinite(lo)
        has_hi = np.isfinite(hi)
        if (has_lo & has_hi & (lo > hi)).any():
            bad = int(np.flatnonzero(has_lo & has_hi & (lo > hi))[0])
            raise ValueError(f"lower bound {lo[bad]} exceeds upper bound {hi[bad]} for variable {bad}")
        kind = np.where(has_lo & has_hi, BOTH, np.where(has_lo, LOWER_ONLY, np.where(has_hi, UPPER_ONLY, UNBOUNDED)))
        return cls(np.where(has_lo, lo, 0.0), np.where(has_hi, hi, 0.0), kind.astype(np.int64))

    @classmethod
    def from_pairs(cls, pairs: Sequence[Sequence[float | None]]) -> BoxBounds:
        """From scipy's old-style ``[(lo, hi), ...]`` with ``None`` (or ±inf) for a missing side."""
        lo = [-math.inf if p[0] is None else float(p[0]) for p in pairs]
        hi = [math.inf if p[1] is None else float(p[1]) for p in pairs]
        return cls.from_arrays(lo, hi)

    def lower_or_inf(self) -> np.ndarray:
        return np.where((self.kind == LOWER_ONLY) | (self.kind == BOTH), self.lower, -np.inf)

    def upper_or_inf(self) -> np.ndarray:
        return np.where((self.kind == UPPER_ONLY) | (self.kind == BOTH), self.upper, np.inf)


def initial_where(box: BoxBounds) -> np.ndarray:
    """``iwhere`` at the start (``active``): -1 unbounded, 3 fixed (u - l ≤ 0), 0 otherwise."""
    where = np.zeros(box.n, dtype=np.int64)
    where[box.kind == UNBOUNDED] = WHERE_UNBOUNDED
    fixed = (box.kind == BOTH) & (box.upper - box.lower <= 0.0)
    where[fixed] = WHERE_FIXED
    return where


def project(x: np.ndarray, box: BoxBounds) -> np.ndarray:
    """x moved onto the box where it lies outside (``active``; a copy)."""
    out = np.array(x, dtype=np.float64, copy=True)
    for i in range(box.n):
        k = box.kind[i]
        if k == UNBOUNDED:
            continue
        # A value equal to its bound stays as it is (so 0.0 stays 0.0 at a bound -0.0).
        below = k <= BOTH and out[i] <= box.lower[i]
        if below and out[i] < box.lower[i]:
            out[i] = box.lower[i]
        elif not below and k >= BOTH and out[i] > box.upper[i]:
            out[i] = box.upper[i]
    return out


def projected_gradient_norm(x: np.ndarray, g: np.ndarray, box: BoxBounds) -> float:
    """‖P(x - g) - x‖∞ (``projgr``): a NaN component of g is returned as is (the scan stops there)."""
    norm = 0.0
    for i in range(box.n):
        gi = float(g[i])
        if gi != gi:
            return gi
        k = box.kind[i]
        if k != UNBOUNDED:
            if gi < 0.0:
                if k >= BOTH:
                    gi = c_fmax(float(x[i]) - float(box.upper[i]), gi)
            elif k <= BOTH:
                gi = c_fmin(float(x[i]) - float(box.lower[i]), gi)
        norm = c_fmax(norm, abs(gi))
    return norm


def step_to_bound(box: BoxBounds, k: int, xk: float, dk: float, step: float) -> float | None:
    """The step at which coordinate ``k`` moving from ``xk`` along ``dk`` leaves the box, when that is shorter than
    ``step`` (0 when it already sits on the bound it moves towards); ``None`` when the step is not limited there.
    The per-coordinate rule of ``lnsrlb``'s ``stpmx`` and of ``subsm``'s backtrack (scipy ``__lbfgsb.c``)."""
    kind = box.kind[k]
    if kind == UNBOUNDED:
        return None
    if dk < 0.0 and kind <= BOTH:
        room = float(box.lower[k]) - xk
        if room >= 0.0:
            return 0.0
        if dk * step < room:
            return c_div(room, dk)
    elif dk > 0.0 and kind >= BOTH:
        room = float(box.upper[k]) - xk
        if room <= 0.0:
            return 0.0
        if dk * step > room:
            return c_div(room, dk)
    return None


def longest_feasible_step(x: np.ndarray, d: np.ndarray, box: BoxBounds) -> float:
    """The largest step along d that stays in the box, at most 1e10 (``lnsrlb``'s ``stpmx`` after iteration 0)."""
    step = 1.0e10
    for i in range(box.n):
        limited = step_to_bound(box, i, float(x[i]), float(d[i]), step)
        if limited is not None:
            step = limited
    return step


def clamp_trial_point(point: np.ndarray, box: BoxBounds) -> np.ndarray:
    """``lnsrlb``: a trial point x + stp·d put back into the box (in place, returned)."""
    low = (box.kind == LOWER_ONLY) | (box.kind == BOTH)
    high = (box.kind == BOTH) | (box.kind == UPPER_ONLY)
    # C fmax(x, l) / fmin(x, u); a NaN x gives the bound. On a ±0 tie (left unspecified by C99) scipy 1.17.1's
    # build returns l from fmax (a libm call) but x from fmin (inlined as minsd with the bound first): measured.
    point[low] = np.where(point[low] > box.lower[low], point[low], box.lower[low])
    point[high] = np.where((point[high] <= box.upper[high]) | np.isnan(box.upper[high]), point[high], box.upper[high])
    point[high] = np.where(np.isnan(point[high]), box.upper[high], point[high])
    return point
