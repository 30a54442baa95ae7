"""The generalized Cauchy point of L-BFGS-B: the first local minimizer of the quadratic model along the
projected steepest-descent path x(t) = P(x - t g).

Algorithm CP of R. H. Byrd, P. Lu, J. Nocedal, C. Zhu (1995), §4: the breakpoints t_i where variables reach a
bound are visited in increasing order (a heap, ``hpsolb``); on each segment the model's slope f' and curvature
f'' are updated with the compact representation B = θI - W M Wᵀ (Byrd–Nocedal–Schnabel 1994), where M is applied
by ``bmv`` (two triangular solves with the Cholesky factor of T = θ SᵀS + L D⁻¹ Lᵀ). The floating-point
expressions, the summation orders and the BLAS calls (``ddot``, ``daxpy``, ``dscal``, ``dtrtrs``) follow scipy
1.17's ``scipy/optimize/__lbfgsb.c`` (``cauchy``, ``bmv``, ``hpsolb``) so the result is scipy's to the bit; the
BLAS/LAPACK routines are scipy's own (``scipy.linalg.blas``/``lapack``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy.linalg import blas as scipy_blas
from scipy.linalg import lapack as scipy_lapack

from lbfgs_verify.line_search.more_thuente import c_div, c_fmax
from lbfgs_verify.reference.box import (
    BOTH,
    UNBOUNDED,
    WHERE_AT_LOWER,
    WHERE_AT_UPPER,
    WHERE_FIXED,
    WHERE_FREE,
    WHERE_FREE_ZERO_GRADIENT,
    WHERE_UNBOUNDED,
    BoxBounds,
)

EPSMACH = 2.220446049250313e-16


def ordered_sum(values: np.ndarray) -> float:
    """0.0 + v₀ + v₁ + … summed left to right (the C loops' ``s = s + v``), as a Python float."""
    if values.size == 0:
        return 0.0
    return float(np.add.accumulate(np.concatenate(([0.0], values)))[-1])


_CHUNK = 16384
"""Rows per block of :func:`sequential_dots` (the block's products stay in the cache)."""
_SMALL = 2048
"""Up to this length the numpy paths work on all pairs at once (fewer numpy calls; same products, same order)."""


# --------------------------------------------------------------------------------------------------------
# Optional compiled kernels (numba): the same loops as __lbfgsb.c, at memory speed.
# --------------------------------------------------------------------------------------------------------

KERNELS_ENABLED = os.environ.get("LBFGS_VERIFY_KERNELS", "").lower() != "numpy"
"""Use the compiled kernels when numba is installed (``LBFGS_VERIFY_KERNELS=numpy`` or setting this to False
forces the numpy path; both give the same bits, ``tests/fast/test_lbfgsb_kernels.py``)."""

KERNEL_MIN_SIZE = 4096
"""Vectors shorter than this take the numpy path: there the cost is per call, not per entry, and a process that
only meets small problems never imports numba (its import and first compilation or cache load take seconds)."""

_KERNELS: Any = None  # None: not built yet; False: numba missing; else the namespace of compiled kernels


def _build_kernels() -> SimpleNamespace | None:
    """The loops of ``formk``/``subsm``/``cauchy`` compiled by numba (``fastmath`` off: no reassociation and no
    fused multiply-add, so each ``temp = temp + a[k]*b[k]`` rounds the product and the sum as the C code does)."""
    try:
        import numba  # optional, imported on first use (~0.3 s)
    except ImportError:
        return None

    @numba.njit(cache=True, fastmath=False, nogil=True)
    def dots8(a0: Any, a1: Any, a2: Any, a3: Any, a4: Any, a5: Any, a6: Any, a7: Any,
              b0: Any, b1: Any, b2: Any, b3: Any, b4: Any, b5: Any, b6: Any, b7: Any, out: Any) -> None:
        # Eight sums side by side, each 0.0 + a[0]*b[0] + a[1]*b[1] + ... in order (independent chains).
        t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = 0.0
        for i in range(a0.shape[0]):
            t0 = t0 + a0[i] * b0[i]
            t1 = t1 + a1[i] * b1[i]
            t2 = t2 + a2[i] * b2[i]
            t3 = t3 + a3[i] * b3[i]
            t4 = t4 + a4[i] * b4[i]
            t5 = t5 + a5[i] * b5[i]
            t6 = t6 + a6[i] * b6[i]
            t7 = t7 + a7[i] * b7[i]
        out[0], out[1], out[2], out[3] = t0, t1, t2, t3
        out[4], out[5], out[6], out[7] = t4, t5, t6, t7

    @numba.njit(cache=True, fastmath=False, nogil=True)
    def update4(d: Any, y0: Any, y1: Any, y2: Any, y3: Any, s0: Any, s1: Any, s2: Any, s3: Any,
                cy: Any, cs: Any, theta: float, count: int) -> None:
        # subsm: d_i = d_i + y_ji*wv_j/theta + s_ji*wv_{col+j} for the first ``count`` pairs j, in order.
        for i in range(d.shape[0]):
            t = d[i]
            t = t + y0[i] * cy[0] / theta + s0[i] * cs[0]
            if count > 1:
                t = t + y1[i] * cy[1] / theta + s1[i] * cs[1]
                if count > 2:
                    t = t + y2[i] * cy[2] / theta + s2[i] * cs[2]
                    if count > 3:
                        t = t + y3[i] * cy[3] / theta + s3[i] * cs[3]
            d[i] = t

    @numba.njit(cache=True, fastmath=False, nogil=True, error_model="numpy")
    def sorted_walk(times: Any, slopes: Any, rooms: Any, starts: Any, f1: float, f2: float, f2_org: float,
                    dtm: float, theta: float, bounded_path: bool) -> tuple[bool, float, float, int]:
        # The loop of _walk_sorted_breakpoints (IEEE division: error_model="numpy"; fmax as C's).
        nleft = times.shape[0] - 1
        tj = 0.0
        tsum = 0.0
        passed = 0
        floor = EPSMACH * f2_org
        for position in range(times.shape[0]):
            tj0 = tj
            tj = times[position]
            dt = tj - tj0
            if dtm < dt:
                if not starts[position]:
                    return False, tsum, dtm, passed
                break
            tsum = tsum + dt
            nleft -= 1
            dibp = slopes[position]
            zibp = rooms[position]
            dibp2 = dibp * dibp
            f1 = f1 + dt * f2 + dibp2 - theta * dibp * zibp
            f2 = f2 - theta * dibp2
            if floor != floor:
                pass
            elif f2 != f2 or floor > f2:
                f2 = floor
            passed += 1
            if nleft >= 0:
                dtm = -f1 / f2
            elif bounded_path:
                dtm = 0.0
                break
            else:
                dtm = -f1 / f2
                break
        return True, tsum, dtm, passed

    return SimpleNamespace(dots8=dots8, update4=update4, sorted_walk=sorted_walk)


def compiled_kernels(size: int | None = None) -> SimpleNamespace | None:
    """The compiled kernels, or ``None`` (numba not installed, :data:`KERNELS_ENABLED` False, or vectors of ``size``
    entries below :data:`KERNEL_MIN_SIZE`)."""
    global _KERNELS
    if not KERNELS_ENABLED or (size is not None and size < KERNEL_MIN_SIZE):
        return None
    if _KERNELS is None:
        _KERNELS = _build_kernels() or False
    return _KERNELS or None


def _as_vector(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _compiled_dots(kernels: SimpleNamespace, rows: list[np.ndarray], vectors: list[np.ndarray]) -> np.ndarray:
    """(len(vectors), len(rows)) sequential dots by ``dots8``, eight at a time (a row's sums with every vector in
    the same call, so the row is read once)."""
    k, nv = len(rows), len(vectors)
    rows = [_as_vector(row) for row in rows]
    vectors = [_as_vector(vector) for vector in vectors]
    left = [row for row in rows for _ in range(nv)]  # pair q = j·nv + i: row j with vector i
    right = vectors * k
    pad = -len(left) % 8  # padding: computed and ignored
    left += [left[0]] * pad
    right += [right[0]] * pad
    result = np.empty(len(left))
    dots8 = kernels.dots8
    for start in range(0, len(left), 8):
        dots8(*left[start:start + 8], *right[start:start + 8], result[start:start + 8])
    return result[:k * nv].reshape(k, nv).T.copy()


def compact_update(r: np.ndarray, y_rows: list[np.ndarray], s_rows: list[np.ndarray], coefficients: np.ndarray,
                   theta: float) -> np.ndarray | None:
    """``subsm``'s d = r, then d_i = d_i + y_ji·c_j/θ + s_ji·c_{col+j} for j in order, by the compiled kernel;
    ``None`` when it is not available (the caller has a numpy path)."""
    kernels = compiled_kernels(r.shape[0])
    if kernels is None:
        return None
    col = len(y_rows)
    d = np.array(r, dtype=np.float64, copy=True, order="C")
    cy = np.ascontiguousarray(coefficients[:col], dtype=np.float64)
    cs = np.ascontiguousarray(coefficients[col:2 * col], dtype=np.float64)
    for start in range(0, col, 4):
        count = min(4, col - start)
        ys = [_as_vector(y_rows[start + min(q, count - 1)]) for q in range(4)]
        ss = [_as_vector(s_rows[start + min(q, count - 1)]) for q in range(4)]
        cy4 = np.zeros(4)
        cs4 = np.zeros(4)
        cy4[:count] = cy[start:start + count]
        cs4[:count] = cs[start:start + count]
        kernels.update4(d, *ys, *ss, cy4, cs4, float(theta), count)
    return d


class PairColumns:
    """The n × col matrix whose column j is ``rows[j]`` (the stored pairs, oldest first), without stacking them.

    Supports what ``cauchy``/``freev``/``formk``/``cmprlb``/``subsm`` read of ``ws``/``wy``: ``m[index, j]`` (a
    column gathered over a set of variables, a copy), ``m[k, :]`` (one variable across the pairs) and
    ``m[index, :c]`` (an array of gathered columns); ``shape``. A column gathered over an index array is kept for
    the next read over the same array (the free set is read by ``formk``, ``cmprlb`` and ``subsm``); the array is
    held, so its memory cannot be taken by another one while the entry lives.
    """

    __slots__ = ("_gathered", "rows", "shape")

    def __init__(self, rows: list[np.ndarray], n: int) -> None:
        self.rows = rows
        self.shape = (n, len(rows))
        self._gathered: dict[tuple[Any, ...], tuple[np.ndarray, dict[int, np.ndarray]]] = {}

    def _column(self, index: np.ndarray, j: int) -> np.ndarray:
        # Same memory, shape, strides and type: the same indices (the entry holds the array it was made for, so no
        # other array can occupy that memory meanwhile; index arrays are never written to here).
        key = (index.__array_interface__["data"][0], index.shape, index.strides, index.dtype.str)
        entry = self._gathered.get(key)
        if entry is None:
            entry = (index, {})
            self._gathered[key] = entry
        column = entry[1].get(j)
        if column is None:
            column = self.rows[j][index]
            column.setflags(write=False)
            entry[1][j] = column
        return column

    def columns(self, index: np.ndarray) -> list[np.ndarray]:
        """Every column gathered over ``index`` (kept like single columns); short vectors in one gather."""
        index = np.asarray(index)
        col = self.shape[1]
        if self.shape[0] > _SMALL or index.dtype.kind != "i" or index.ndim != 1:
            return [self[index, j] for j in range(col)]
        key = (index.__array_interface__["data"][0], index.shape, index.strides, index.dtype.str)
        entry = self._gathered.get(key)
        if entry is None:
            entry = (index, {})
            self._gathered[key] = entry
        if len(entry[1]) < col:
            gathered = np.array(self.rows, dtype=np.float64)[:, index] if col else np.zeros((0, index.shape[0]))
            gathered.setflags(write=False)
            entry[1].update(enumerate(gathered))
        return [entry[1][j] for j in range(col)]

    def __getitem__(self, key: tuple[Any, Any]) -> Any:
        index, j = key
        if isinstance(j, (int, np.integer)):
            if isinstance(index, np.ndarray) and index.ndim == 1 and index.dtype.kind == "i":
                return self._column(index, int(j))
            return self.rows[j][index]
        rows = self.rows[j]
        if isinstance(index, (int, np.integer)):
            return np.array([r[index] for r in rows], dtype=np.float64)
        index = np.asarray(index)
        out = np.empty((index.shape[0], len(rows)))
        for c, r in enumerate(rows):
            out[:, c] = r[index]
        return out


Pairs = np.ndarray | PairColumns
"""The n × col matrix of stored vectors (S or Y, oldest first): an array, or a :class:`PairColumns` view."""


def pair_columns(m: Pairs, index: np.ndarray) -> list[np.ndarray]:
    """[m[index, j] for every column j] of an n × col array or a :class:`PairColumns`."""
    if isinstance(m, PairColumns):
        return m.columns(index)
    return [m[index, j] for j in range(m.shape[1])]


def sequential_dots(rows: list[np.ndarray], v: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """[0.0 + r[0]·v[0] + r[1]·v[1] + … for r in rows], each summed left to right like the C loops of ``formk`` /
    ``subsm`` (``temp = temp + a[k]*b[k]``), for all rows in one pass over v. With a list of vectors, the array
    (len(v), len(rows)) of every row against every vector, in the same pass.

    The products of a block of entries go into a (block + 1, ·) array whose first row is the sums so far, and
    ``np.add.reduce(·, axis=0)`` adds the rows of that array in order: a reduction over the outer axis of a
    C-contiguous array runs as ``out[j] = out[j] + a[i, j]`` for i = 0, 1, … (numpy's pairwise summation applies
    only along the contiguous axis; checked in ``tests/fast/test_lbfgsb_kernels.py``). The columns are summed side
    by side, so the time is that of streaming the rows rather than one addition's latency per entry.
    """
    vectors = v if isinstance(v, list) else [v]
    k = len(rows)
    if k == 0 or not vectors:
        return np.zeros((len(vectors), k) if isinstance(v, list) else 0)
    kernels = compiled_kernels(vectors[0].shape[0])
    if kernels is not None:
        sums = _compiled_dots(kernels, rows, vectors)
        return sums if isinstance(v, list) else sums[0]
    if k * len(vectors) == 1:  # one column would make the outer axis the contiguous one: add a twin column
        return sequential_dots([rows[0], rows[0]], vectors[0])[:1].reshape((1, 1) if isinstance(v, list) else 1)
    n = vectors[0].shape[0]
    if n <= _SMALL:  # one block: the rows stacked once, one multiply per vector (the same products and sums)
        stacked = np.array(rows, dtype=np.float64).T
        block = np.empty((n + 1, k * len(vectors)))
        block[0] = 0.0
        for i, vector in enumerate(vectors):
            np.multiply(stacked, np.asarray(vector)[:, None], out=block[1:, i * k:(i + 1) * k])
        sums = np.add.reduce(block, axis=0)
        return sums.reshape(len(vectors), k) if isinstance(v, list) else sums
    size = max(1, min(n, _CHUNK))
    block = np.empty((size + 1, k * len(vectors)))
    sums = np.zeros(k * len(vectors))
    for start in range(0, n, size):
        stop = min(start + size, n)
        block[0] = sums
        out = block[1:stop - start + 1]
        for i, vector in enumerate(vectors):
            part = vector[start:stop]
            for j, row in enumerate(rows):
                np.multiply(row[start:stop], part, out=out[:, i * k + j])
        sums = np.add.reduce(block[:stop - start + 1], axis=0)
    return sums.reshape(len(vectors), k) if isinstance(v, list) else sums


def sequential_rows_sum(first: np.ndarray, terms: list[np.ndarray]) -> np.ndarray:
    """((first + terms[0]) + terms[1]) + … elementwise, in that order (one C statement's additions per entry)."""
    if not terms:
        return first.copy()
    return np.add.reduce(np.stack([first, *terms]), axis=0)


def daxpy(a: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """y + a·x by scipy's BLAS ``daxpy`` (it may fuse the multiply-add; plain numpy would not)."""
    if y.size == 0:
        return y.copy()
    return scipy_blas.daxpy(np.ascontiguousarray(x), np.array(y, dtype=np.float64, copy=True), a=a)


def ddot(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0:
        return 0.0
    return float(scipy_blas.ddot(np.ascontiguousarray(a), np.ascontiguousarray(b)))


def trtrs_upper(factor: np.ndarray, rhs: np.ndarray, *, transpose: bool) -> np.ndarray | None:
    """Solve U x = b or Uᵀ x = b by LAPACK ``dtrtrs('U')``; ``None`` on a zero pivot."""
    solution, info = scipy_lapack.dtrtrs(factor, rhs, lower=0, trans=1 if transpose else 0)
    return solution if info == 0 else None


def bmv(sy: np.ndarray, wt: np.ndarray, v: np.ndarray) -> np.ndarray | None:
    """M v for the 2col × 2col middle matrix of the compact form (``bmv``); ``None`` if a solve fails.

    ``sy`` holds SᵀY (its lower triangle and diagonal are used), ``wt`` the upper Cholesky factor of T. The C loops'
    sums (``sum = sum + sy[i,k]*v[k]/sy[k,k]`` over k < i, and over k > i later) run on whole arrays: the terms of
    each sum are a column of a C-contiguous array reduced over its outer axis in order, from 0.0, with exact +0.0
    where the loop has no term (a sum from +0.0 is never -0.0, so adding +0.0 changes nothing). The diagonal of
    ``sy`` is sᵢᵀyᵢ > 0 (the skip rule) or NaN, where these are the loops' bits; a zero or negative one, which the
    solver cannot hold, would give the hardware's NaN where :func:`c_div` gives +NaN.
    """
    col = sy.shape[0]
    if col == 0:
        return np.zeros(0)
    sy = np.asarray(sy, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    from lbfgs_verify.reference.kernels import small_kernels  # (kernels imports this module)

    kernels = small_kernels()
    if kernels is not None:  # the same operations in one compiled call
        p = np.empty(2 * col)
        failed = kernels.bmv(np.ascontiguousarray(sy), np.asfortranarray(wt).T, np.ascontiguousarray(v), p)
        if failed != 2:  # 2: a NaN came up (its payload is the compiler's), computed again below
            return None if failed else p
    diagonal = sy.diagonal().copy()
    k_index = np.arange(col)[:, None]  # rows: k; columns: i
    i_index = np.arange(col)[None, :]
    p = np.zeros(2 * col)
    with np.errstate(all="ignore"):
        terms = np.zeros((col + 1, col))
        terms[1:] = np.where(k_index < i_index, (sy.T * v[:col, None]) / diagonal[:, None], 0.0)
        totals = np.add.reduce(terms, axis=0)
        p[col] = v[col]
        p[col + 1:] = v[col + 1:2 * col] + totals[1:]
        lower = trtrs_upper(wt, p[col:].copy(), transpose=True)
        if lower is None:
            return None
        p[col:] = lower
        root = np.where(diagonal >= 0.0, np.sqrt(diagonal), np.nan)  # c_sqrt: +NaN below zero or for NaN
        p[:col] = v[:col] / root
        upper = trtrs_upper(wt, p[col:].copy(), transpose=False)
        if upper is None:
            return None
        p[col:] = upper
        p[:col] = -p[:col] / root
        terms[1:] = np.where(k_index > i_index, (sy * p[col:, None]) / diagonal[None, :], 0.0)
        totals = np.add.reduce(terms, axis=0)
        p[:col] = p[:col] + totals
    return p


def heap_next_breakpoint(count: int, t: list[float], order: list[int], built: bool) -> None:
    """``hpsolb``: with ``t[0:count+1]``, move the least breakpoint to ``t[count]`` (and its variable in ``order``).

    When ``built`` is False the first ``count`` entries are first arranged into a heap. Works in place.
    """
    if not built:
        for k in range(2, count + 2):
            value, index = t[k - 1], order[k - 1]
            i = k
            while i > 1:
                j = i // 2
                if value < t[j - 1]:
                    t[i - 1], order[i - 1] = t[j - 1], order[j - 1]
                    i = j
                else:
                    break
            t[i - 1], order[i - 1] = value, index
    if count > 0:
        i = 1
        out, out_index = t[0], order[0]
        value, index = t[count], order[count]
        while True:
            j = i + i
            if j > count:
                break
            if t[j] < t[j - 1]:
                j += 1
            if t[j - 1] < value:
                t[i - 1], order[i - 1] = t[j - 1], order[j - 1]
                i = j
            else:
                break
        t[i - 1], order[i - 1] = value, index
        t[count], order[count] = out, out_index


@dataclass(frozen=True)
class CauchyPoint:
    """The result of :func:`generalized_cauchy_point`.

    Attributes:
        point: the generalized Cauchy point x^c.
        c: Wᵀ(x^c - x) (length 2·col), used by the subspace minimization (``cmprlb``).
        where: the updated ``iwhere`` codes (variables that reached a bound are marked 1/2).
    """

    point: np.ndarray
    c: np.ndarray
    where: np.ndarray


_Scan = tuple[np.ndarray, float, "np.ndarray | list[float]", "np.ndarray | list[int]", float, int, int, bool,
              np.ndarray]
"""What ``cauchy``'s first loop over the variables leaves: d, f1, the breakpoints t and their variables, the least
breakpoint and its position, the free count, whether the path is bounded, the contributing variables (in order)."""


def _scan_variables_in_order(x: np.ndarray, g: np.ndarray, box: BoxBounds, where: np.ndarray) -> _Scan:
    """``cauchy``'s first loop, variable by variable (updates ``where`` in place)."""
    n = x.shape[0]
    bounded_path = True
    n_free = n
    breaks: list[int] = []
    t: list[float] = []
    least, least_at = 0.0, 0
    f1 = 0.0
    d = np.zeros(n)
    tl = tu = 0.0
    contributing: list[int] = []
    for i in range(n):
        neggi = -float(g[i])
        kind = box.kind[i]
        if where[i] != WHERE_FIXED and where[i] != WHERE_UNBOUNDED:
            if kind <= BOTH:
                tl = float(x[i]) - float(box.lower[i])
            if kind >= BOTH:
                tu = float(box.upper[i]) - float(x[i])
            at_lower = kind <= BOTH and tl <= 0.0
            at_upper = kind >= BOTH and tu <= 0.0
            where[i] = WHERE_FREE
            if at_lower:
                if neggi <= 0.0:
                    where[i] = WHERE_AT_LOWER
            elif at_upper:
                if neggi >= 0.0:
                    where[i] = WHERE_AT_UPPER
            elif abs(neggi) <= 0.0:
                where[i] = WHERE_FREE_ZERO_GRADIENT
        if where[i] != WHERE_FREE and where[i] != WHERE_UNBOUNDED:
            d[i] = 0.0
            continue
        d[i] = neggi
        f1 = f1 - neggi * neggi
        contributing.append(i)
        if kind <= BOTH and kind != UNBOUNDED and neggi < 0.0:
            t.append(c_div(tl, -neggi))
        elif kind >= BOTH and neggi > 0.0:
            t.append(c_div(tu, neggi))
        else:
            n_free -= 1
            if abs(neggi) > 0.0:
                bounded_path = False
            continue
        breaks.append(i)
        if len(t) == 1 or t[-1] < least:
            least, least_at = t[-1], len(t) - 1
    return d, f1, t, breaks, least, least_at, n_free, bounded_path, np.asarray(contributing, dtype=np.int64)


def _scan_variables(x: np.ndarray, g: np.ndarray, box: BoxBounds, where: np.ndarray) -> _Scan | None:
    """:func:`_scan_variables_in_order` on whole arrays (updates ``where`` in place); ``None`` when a case the
    loop handles through its carried state could arise (an ``iwhere`` of -1 on a bounded variable, a NaN
    breakpoint), and nothing is changed then."""
    kind = box.kind
    unbounded_where = where == WHERE_UNBOUNDED
    if bool((unbounded_where & (kind != UNBOUNDED)).any()):
        return None
    with np.errstate(all="ignore"):
        neggi = -g
        scanned = (where != WHERE_FIXED) & ~unbounded_where
        has_lower = kind <= BOTH  # as the loop tests it (UNBOUNDED variables are never scanned)
        has_upper = kind >= BOTH
        tl = x - box.lower
        tu = box.upper - x
        at_lower = has_lower & (tl <= 0.0)
        at_upper = has_upper & (tu <= 0.0)
        code = np.full(x.shape[0], WHERE_FREE, dtype=where.dtype)
        code[at_lower & (neggi <= 0.0)] = WHERE_AT_LOWER
        code[~at_lower & at_upper & (neggi >= 0.0)] = WHERE_AT_UPPER
        code[~at_lower & ~at_upper & (np.abs(neggi) <= 0.0)] = WHERE_FREE_ZERO_GRADIENT
        new_where = np.where(scanned, code, where)
        contributing = np.flatnonzero((new_where == WHERE_FREE) | (new_where == WHERE_UNBOUNDED))
        d = np.zeros(x.shape[0])
        d[contributing] = neggi[contributing]
        nc = neggi[contributing]
        kc = kind[contributing]
        to_lower = (kc <= BOTH) & (kc != UNBOUNDED) & (nc < 0.0)
        to_upper = ~to_lower & (kc >= BOTH) & (nc > 0.0)
        breaking = to_lower | to_upper
        t_all = np.where(to_lower, tl[contributing] / -nc, tu[contributing] / nc)
        t_values = t_all[breaking]
    if bool(np.isnan(t_values).any()):
        return None
    where[:] = new_where
    f1 = float(np.subtract.accumulate(np.concatenate(([0.0], nc * nc)))[-1])  # f1 = f1 - neggi², in order
    not_breaking = ~breaking
    n_free = x.shape[0] - int(not_breaking.sum())
    bounded_path = not bool((np.abs(nc[not_breaking]) > 0.0).any())
    breaks = contributing[breaking]  # arrays: the heap walk makes lists only if it goes past the first breakpoint
    t = t_values
    least_at = int(np.argmin(t_values)) if t.size else 0
    least = float(t[least_at]) if t.size else 0.0
    return d, f1, t, breaks, least, least_at, n_free, bounded_path, contributing


def _walk_sorted_breakpoints(x: np.ndarray, box: BoxBounds, d: np.ndarray, t: np.ndarray | list[float],
                             breaks: np.ndarray | list[int],
                             f1: float, f2: float, f2_org: float, dtm: float, theta: float,
                             bounded_path: bool) -> tuple[float, float, np.ndarray] | None:
    """``cauchy``'s walk over the breakpoints with an empty memory (no ``bmv``), in sorted order instead of the heap.

    The heap (``hpsolb``) hands out the breakpoints in increasing order; among equal breakpoints its order depends on
    the heap's layout. The walk's arithmetic sees only (t, d_i, z_i = bound - x_i) of each, and marks each variable it
    passes, so any order of equal breakpoints with equal (d_i, z_i) gives the same result, unless the walk stops
    inside such a group. Returns (tsum, dtm, variables passed), or ``None`` when that cannot be shown (then the heap
    is walked as ``cauchy`` walks it).
    """
    times = np.asarray(t, dtype=np.float64)
    if bool(np.isnan(times).any()):
        return None
    order = np.argsort(times, kind="stable")
    times = times[order]
    variables = np.asarray(breaks, dtype=np.int64)[order]
    slopes = d[variables]
    with np.errstate(all="ignore"):
        rooms = np.where(slopes > 0.0, box.upper[variables] - x[variables], box.lower[variables] - x[variables])
    starts = np.concatenate(([True], times[1:] != times[:-1]))
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    for values in (times, slopes, rooms):
        bits = values.view(np.int64)
        if not bool((bits == bits[first][group]).all()):
            return None
    kernels = compiled_kernels(times.shape[0])
    if kernels is not None:
        ok, tsum, dtm, passed = kernels.sorted_walk(times, slopes, rooms, starts, float(f1), float(f2),
                                                    float(f2_org), float(dtm), float(theta), bool(bounded_path))
        return (float(tsum), float(dtm), variables[:passed]) if ok else None
    nleft = len(times) - 1
    tj, tsum, passed = 0.0, 0.0, 0
    time_list, slope_list, room_list = times.tolist(), slopes.tolist(), rooms.tolist()
    for position in range(len(time_list)):
        tj0 = tj
        tj = time_list[position]
        dt = tj - tj0
        if dtm < dt:
            if not starts[position]:
                return None  # stopped inside a group of equal breakpoints: the heap decides which were passed
            break
        tsum = tsum + dt
        nleft -= 1
        dibp, zibp = slope_list[position], room_list[position]
        dibp2 = dibp * dibp
        f1 = f1 + dt * f2 + dibp2 - theta * dibp * zibp
        f2 = f2 - theta * dibp2
        f2 = c_fmax(EPSMACH * f2_org, f2)
        passed += 1
        if nleft >= 0:
            dtm = c_div(-f1, f2)
        elif bounded_path:
            dtm = 0.0
            break
        else:
            dtm = c_div(-f1, f2)
            break
    return tsum, dtm, variables[:passed]


def generalized_cauchy_point(
    x: np.ndarray,
    g: np.ndarray,
    box: BoxBounds,
    where: np.ndarray,
    s: Pairs,
    y: Pairs,
    sy: np.ndarray,
    wt: np.ndarray | None,
    theta: float,
    gradient_norm: float,
) -> CauchyPoint | None:
    """Algorithm CP (``cauchy``). ``s``, ``y``: n × col correction pairs, oldest first. ``None`` if ``bmv`` fails."""
    n, col = x.shape[0], s.shape[1]
    where = where.copy()
    if gradient_norm <= 0.0:
        return CauchyPoint(x.copy(), np.zeros(2 * col), where)
    scan = _scan_variables(x, g, box, where)
    if scan is None:
        scan = _scan_variables_in_order(x, g, box, where)
    d, f1, t, breaks, least, least_at, n_free, bounded_path, contributing = scan
    # p = Wᵀd summed over the contributing variables in their order, then its S half scaled by θ (dscal).
    p = np.zeros(2 * col)
    if col > 0 and contributing.size:
        dvals = d[contributing]
        p[:] = sequential_dots(pair_columns(y, contributing) + pair_columns(s, contributing),
                               dvals)
    if theta != 1.0:
        p[col:] = p[col:] * theta
    xcp = x.copy()
    nbreak = len(breaks) - 1
    if nbreak == -1 and n_free == n:
        return CauchyPoint(xcp, np.zeros(2 * col), where)
    c = np.zeros(2 * col)
    f2 = -theta * f1
    f2_org = f2
    if col > 0:
        assert wt is not None
        v = bmv(sy, wt, p)
        if v is None:
            return None
        f2 = f2 - ddot(v, p)
    dtm = c_div(-f1, f2)
    tsum = 0.0
    sorted_walk = None
    if nbreak >= 16 and col == 0:
        sorted_walk = _walk_sorted_breakpoints(x, box, d, t, breaks, f1, f2, f2_org, dtm, theta, bounded_path)
    if sorted_walk is not None:
        tsum, dtm, processed = sorted_walk
        upper_side = d[processed] > 0.0
        xcp[processed] = np.where(upper_side, box.upper[processed], box.lower[processed])
        where[processed] = np.where(upper_side, WHERE_AT_UPPER, WHERE_AT_LOWER)
        d[processed] = 0.0
    elif nbreak >= 0:
        order: Any = breaks
        nleft = nbreak
        step_count = 0
        tj = 0.0
        while True:
            tj0 = tj
            if step_count == 0:
                tj = least
                ibp = int(order[least_at])
            else:
                if step_count == 1:  # the heap works on lists (copies: the scan's arrays stay as they are)
                    t = t.tolist() if isinstance(t, np.ndarray) else list(t)
                    order = order.tolist() if isinstance(order, np.ndarray) else list(order)
                if step_count == 1 and least_at != nbreak:
                    t[least_at] = t[nbreak]
                    order[least_at] = order[nbreak]
                heap_next_breakpoint(nleft, t, order, built=step_count - 1 != 0)
                tj = t[nleft]
                ibp = order[nleft]
            dt = tj - tj0
            if dtm < dt:
                break
            tsum = tsum + dt
            nleft -= 1
            step_count += 1
            dibp = float(d[ibp])
            d[ibp] = 0.0
            if dibp > 0.0:
                zibp = float(box.upper[ibp]) - float(x[ibp])
                xcp[ibp] = box.upper[ibp]
                where[ibp] = WHERE_AT_UPPER
            else:
                zibp = float(box.lower[ibp]) - float(x[ibp])
                xcp[ibp] = box.lower[ibp]
                where[ibp] = WHERE_AT_LOWER
            # (__lbfgsb.c tests "nleft == -1 && nbreak == n" here, which cannot hold: no early exit.)
            dibp2 = dibp * dibp
            f1 = f1 + dt * f2 + dibp2 - theta * dibp * zibp
            f2 = f2 - theta * dibp2
            if col > 0:
                c = daxpy(dt, p, c)
                wbp = np.empty(2 * col)
                wbp[:col] = y[ibp, :]
                wbp[col:] = theta * s[ibp, :]
                v = bmv(sy, wt, wbp)  # type: ignore[arg-type]
                if v is None:
                    return None
                wmc = ddot(c, v)
                wmp = ddot(p, v)
                wmw = ddot(wbp, v)
                p = daxpy(-dibp, wbp, p)
                f1 = f1 + dibp * wmc
                f2 = f2 + dibp * 2.0 * wmp - dibp2 * wmw
            f2 = c_fmax(EPSMACH * f2_org, f2)
            if nleft >= 0:
                dtm = c_div(-f1, f2)
            elif bounded_path:
                dtm = 0.0
                break
            else:
                dtm = c_div(-f1, f2)
                break
    if dtm <= 0.0:
        dtm = 0.0
    tsum = tsum + dtm
    xcp = daxpy(tsum, d, xcp)
    if col > 0:
        c = daxpy(dtm, p, c)
    return CauchyPoint(xcp, c, where)


__all__ = [
    "CauchyPoint",
    "PairColumns",
    "Pairs",
    "bmv",
    "compact_update",
    "compiled_kernels",
    "daxpy",
    "ddot",
    "generalized_cauchy_point",
    "heap_next_breakpoint",
    "ordered_sum",
    "pair_columns",
    "sequential_dots",
    "sequential_rows_sum",
    "trtrs_upper",
]
