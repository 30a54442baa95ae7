"""Box constraints l ≤ x ≤ u as L-BFGS-B sees them: bound kinds, projection, projected gradient, longest step.

Rules from R. H. Byrd, P. Lu, J. Nocedal, C. Zhu, "A limited memory algorithm for bound constrained
optimization", SIAM J. Sci. Comput. 16(5), 1995 (§2: the projected gradient, §5: the line search stays in the box)
and the behaviour of scipy 1.17's ``scipy/optimize/__lbfgsb.c`` (``active``, ``projgr``, ``lnsrlb``) and of its
driver ``_lbfgsb_py.py`` (the ``nbd`` codes). Comparisons use C ``fmax``/``fmin`` (a NaN argument is ignored).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lbfgs_verify.line_search.more_thuente import c_div

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

    @functools.cached_property
    def constrained(self) -> bool:
        """Some variable has a bound (``active``: ``cnstnd``); computed once (the arrays are not to be modified)."""
        return bool((self.kind != UNBOUNDED).any())

    @functools.cached_property
    def boxed(self) -> bool:
        """Every variable has both bounds (``active``: ``boxed``; changes the first trial step); computed once."""
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
    """x moved onto the box where it lies outside (``active``; a copy).

    Per variable with a bound: below = has a lower bound and x ≤ l; if below and x < l, x = l; if not below, it has
    an upper bound and x > u, x = u. A value equal to its bound stays as it is (0.0 stays 0.0 at a bound -0.0); a
    NaN stays NaN.
    """
    out = np.array(x, dtype=np.float64, copy=True)
    has_lower = (box.kind == LOWER_ONLY) | (box.kind == BOTH)
    has_upper = (box.kind == BOTH) | (box.kind == UPPER_ONLY)
    below = has_lower & (out <= box.lower)
    to_lower = below & (out < box.lower)
    to_upper = ~below & has_upper & (out > box.upper)
    out[to_lower] = box.lower[to_lower]
    out[to_upper] = box.upper[to_upper]
    return out


def _c_fmax(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise :func:`c_fmax` (a NaN ``a`` gives ``b``; ties give ``b``); ``b`` holds no NaN here."""
    return np.where(np.isnan(a) | ~(a > b), b, a)


def _c_fmin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise :func:`c_fmin` (a NaN ``a`` gives ``b``; ties give ``b``); ``b`` holds no NaN here."""
    return np.where(np.isnan(a) | ~(a < b), b, a)


def projected_gradient_norm(x: np.ndarray, g: np.ndarray, box: BoxBounds) -> float:
    """‖P(x - g) - x‖∞ (``projgr``): a NaN component of g is returned as is (the scan stops there).

    Per variable with a bound: g_i < 0 with an upper bound becomes fmax(x_i - u_i, g_i); g_i ≥ 0 with a lower bound
    becomes fmin(x_i - l_i, g_i); the norm is fmax over |g_i| from 0.0 (no NaN reaches it, so it is the maximum).
    """
    if box.n == 0:
        return 0.0
    nan = np.isnan(g)
    if nan.any():
        return float(g[int(np.argmax(nan))])
    with np.errstate(invalid="ignore"):
        negative = g < 0.0
        upper = negative & ((box.kind == BOTH) | (box.kind == UPPER_ONLY))
        lower = ~negative & ((box.kind == LOWER_ONLY) | (box.kind == BOTH))
        projected = np.where(upper, _c_fmax(x - box.upper, g), np.where(lower, _c_fmin(x - box.lower, g), g))
    return max(0.0, float(np.max(np.abs(projected))))


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
    """The largest step along d that stays in the box, at most 1e10 (``lnsrlb``'s ``stpmx`` after iteration 0).

    ``lnsrlb`` scans the variables in order, shortening the step at each one that limits it (:func:`step_to_bound`,
    whose test ``d·step < room`` uses the step so far). Only a variable whose own limit room/d is not above the
    smallest limit before it (up to rounding) can shorten the step, so those are found with a running minimum and
    the scan's rule is applied to them alone, in order: the same result.
    """
    step = 1.0e10
    n = box.n
    if n == 0:
        return step
    with np.errstate(all="ignore"):
        lower = (d < 0.0) & ((box.kind == LOWER_ONLY) | (box.kind == BOTH))
        upper = (d > 0.0) & ((box.kind == BOTH) | (box.kind == UPPER_ONLY))
        room = np.where(lower, box.lower - x, np.where(upper, box.upper - x, np.nan))
        limit = np.where((lower & (room >= 0.0)) | (upper & (room <= 0.0)), 0.0, room / d)
        limit = np.where(lower | upper, limit, np.nan)
        before = np.fmin.accumulate(np.concatenate(([step], limit[:-1])))
        # Rounding of d·step against room/d is far below 1e-9 relative; subnormal limits are always scanned.
        candidates = np.flatnonzero((limit <= before * (1.0 + 1e-9)) | ((limit < 1e-290) & (lower | upper)))
        # The scan over the candidates: find the next one whose test passes and whose limit differs from the step so
        # far (a passing test that sets the same step changes nothing), take its limit, go on after it.
        at_lower = lower[candidates]
        dk, rk, lk = d[candidates], room[candidates], limit[candidates]
        zero = np.where(at_lower, rk >= 0.0, rk <= 0.0)
        position, rounds = 0, 0
        while position < candidates.size and rounds < 64:
            passes = zero[position:] | np.where(at_lower[position:], dk[position:] * step < rk[position:],
                                                dk[position:] * step > rk[position:])
            changes = passes & (lk[position:].view(np.int64) != np.float64(step).view(np.int64))
            if not bool(changes.any()):
                return step
            position += int(np.argmax(changes))
            step = float(lk[position])
            position += 1
            rounds += 1
    for i in candidates[position:].tolist():  # many changes: the scan itself
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
