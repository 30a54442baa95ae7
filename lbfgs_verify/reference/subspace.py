"""Subspace minimization of L-BFGS-B: minimize the quadratic model over the variables that are free at the
generalized Cauchy point, then bring the result back into the box.

Direct primal method of R. H. Byrd, P. Lu, J. Nocedal, C. Zhu (1995), §5.1, with the compact representation
(Byrd–Nocedal–Schnabel 1994) of the reduced matrix, K = [[-D - YᵀZZᵀY/θ, L_aᵀ - R_zᵀ], [L_a - R_z, θ SᵀAAᵀS]]
factored as in Zhu, Byrd, Lu & Nocedal (ACM TOMS 23(4), 1997); the projection step of J. L. Morales and
J. Nocedal, "Remark on Algorithm 778" (ACM TOMS 38(1), 2011): if the projected subspace step is not a descent
direction, the step is instead backtracked to the box. Arithmetic, summation orders, the incremental update of
the inner products when variables enter or leave the free set, and the BLAS/LAPACK calls follow scipy 1.17's
``scipy/optimize/__lbfgsb.c`` (``freev``, ``formk``, ``cmprlb``, ``subsm``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack as scipy_lapack

from lbfgs_verify.line_search.more_thuente import c_div
from lbfgs_verify.reference.box import BOTH, LOWER_ONLY, UNBOUNDED, UPPER_ONLY, BoxBounds, step_to_bound
from lbfgs_verify.reference.cauchy import (
    Pairs,
    bmv,
    compact_update,
    ddot,
    ordered_sum,
    pair_columns,
    sequential_dots,
    trtrs_upper,
)
from lbfgs_verify.reference.kernels import small_kernels


@dataclass(frozen=True)
class FreeSet:
    """The free variables at the Cauchy point (``freev``).

    Attributes:
        index: free variables (ascending) then the active ones (descending), length n (``index``).
        n_free: how many of ``index`` are free.
        entering: variables that became free since the previous iteration, in ``freev``'s order.
        leaving: variables that left the free set, in ``freev``'s order.
        changed: the reduced matrix must be rebuilt (``wrk``: a variable entered or left, or the memory changed).
    """

    index: np.ndarray
    n_free: int
    entering: np.ndarray
    leaving: np.ndarray
    changed: bool


def free_set(previous_index: np.ndarray, previous_n_free: int, where: np.ndarray, updated: bool,
             constrained: bool, iteration: int) -> FreeSet:
    """``freev``: the new free set, and what entered/left relative to the previous one (from iteration 1 on)."""
    empty = np.zeros(0, dtype=np.int64)
    entering, leaving = empty, empty
    previous_index = np.asarray(previous_index, dtype=np.int64)
    if iteration > 0 and constrained:
        was_free = previous_index[:previous_n_free]
        was_active = previous_index[previous_n_free:]
        leaving = was_free[where[was_free] > 0]
        entering = was_active[where[was_active] <= 0]
    changed = bool(leaving.size) or bool(entering.size) or updated
    free = np.flatnonzero(where <= 0)
    active = np.flatnonzero(where > 0)[::-1]
    # freev fills the leaving list from the end of its array: formk reads it last-found first.
    return FreeSet(np.concatenate([free, active]).astype(np.int64), int(free.size), entering.astype(np.int64),
                   leaving[::-1].astype(np.int64), changed)


def _gram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """G[i, j] = 0.0 + Σ_e a[e, i]·b[e, j], summed over the rows e in order (``formk``'s loops over a set of variables).

    The products go into a C-contiguous (rows + 1, c, c) array reduced over its outer axis, which numpy adds in
    order (:func:`~lbfgs_verify.reference.cauchy.sequential_dots`); blocks of rows carry the sums so far in row 0.
    """
    rows, c = a.shape
    width = max(c, 2)  # (·, 1, 1) would leave the summed axis as the contiguous one
    if c < width:
        a = np.concatenate([a, a], axis=1)[:, :width]
        b = np.concatenate([b, b], axis=1)[:, :width]
    sums = np.zeros((width, width))
    block = 4096
    for start in range(0, rows, block):
        stop = min(start + block, rows)
        products = np.empty((stop - start + 1, width, width))
        products[0] = sums
        np.multiply(a[start:stop, :, None], b[start:stop, None, :], out=products[1:])
        sums = np.add.reduce(products, axis=0)
    return sums[:c, :c]


def _sum_products(a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> float:
    return ordered_sum(a[rows] * b[rows]) if rows.size else 0.0


def update_inner_products(wn1: np.ndarray, s: Pairs, y: Pairs, free: FreeSet, updated: bool,
                          n_updates: int, m: int) -> None:
    """``formk``, first half: bring ``wn1`` (2m × 2m; YᵀZZᵀY, SᵀAAᵀS and the mixed SᵀY blocks) up to date, in place.

    After a new pair the newest row/column is computed over the current free/active sets (and the blocks are
    shifted by one when the memory wrapped around); the older entries are corrected with the variables that
    entered or left the free set. ``s``, ``y``: n × col, oldest first.
    """
    col = s.shape[1]
    index, n_free = free.index, free.n_free
    free_rows, active_rows = index[:n_free], index[n_free:]
    if updated:
        if n_updates > m:
            for jy in range(m - 1):
                js = m + jy
                wn1[jy:m - 1, jy] = wn1[jy + 1:m, jy + 1]
                wn1[js:2 * m - 1, js] = wn1[js + 1:2 * m, js + 1]
                wn1[m:2 * m - 1, jy] = wn1[m + 1:2 * m, jy + 1]
        iy, is_ = col - 1, m + col - 1
        y_free = pair_columns(y, free_rows)
        s_free = pair_columns(s, free_rows)
        # Over the free variables, against y_iy (iy = col - 1): y_jy·y_iy (row iy of YᵀZZᵀY) and s_i·y_iy (the new
        # column of the (2,1) block); over the active ones, against s_iy: s_jy·s_iy and y_jy·s_iy.
        free_dots = sequential_dots(y_free + s_free, y_free[iy])
        on_free, new_column = free_dots[:col], free_dots[col:]
        on_active = sequential_dots(pair_columns(s, active_rows) + pair_columns(y, active_rows),
                                    s[active_rows, iy])
        for jy in range(col):
            js = m + jy
            wn1[iy, jy] = on_free[jy]
            wn1[is_, js] = on_active[jy]
            wn1[is_, jy] = on_active[col + jy]
        for i in range(col):
            wn1[m + i, col - 1] = new_column[i]
        upcl = col - 1
    else:
        upcl = col
    if upcl == 0:
        return
    entering, leaving = free.entering, free.leaving
    y_in, s_in = y[entering, :upcl], s[entering, :upcl]
    y_out, s_out = y[leaving, :upcl], s[leaving, :upcl]
    yy_in, ss_in, sy_in = _gram(y_in, y_in), _gram(s_in, s_in), _gram(s_in, y_in)
    yy_out, ss_out, sy_out = _gram(y_out, y_out), _gram(s_out, s_out), _gram(s_out, y_out)
    lower = np.tri(upcl, dtype=bool)  # jy <= iy
    yy_block = wn1[:upcl, :upcl]
    ss_block = wn1[m:m + upcl, m:m + upcl]
    yy_block[lower] = ((yy_block + yy_in) - yy_out)[lower]
    ss_block[lower] = ((ss_block - ss_in) + ss_out)[lower]
    sy_block = wn1[m:m + upcl, :upcl]  # row i (s_i), column jy (y_jy)
    upper = ~np.tri(upcl, k=-1, dtype=bool)  # i <= jy
    sy_block[...] = np.where(upper, (sy_block + sy_in) - sy_out, (sy_block - sy_in) + sy_out)


def factor_reduced_matrix(wn1: np.ndarray, sy_diagonal: list[float], theta: float, m: int,
                          col: int) -> np.ndarray | None:
    """``formk``, second half: the upper triangular 2col × 2col factor of K (two Cholesky factorizations), or
    ``None`` when K is not positive definite in the needed sense (the memory is then reset).

    With the compiled kernels (:mod:`~lbfgs_verify.reference.kernels`) the same operations run in one call."""
    kernels = small_kernels()
    if kernels is not None and col > 0:
        wn_t = np.empty((2 * col, 2 * col))
        failed = kernels.reduced_factor(np.ascontiguousarray(wn1, dtype=np.float64),
                                        np.asarray(sy_diagonal[:col], dtype=np.float64), float(theta), m, col, wn_t)
        if failed != 2:  # 2: a NaN came up, computed again below
            return None if failed else wn_t.T
    wn = np.zeros((2 * col, 2 * col), order="F")
    # formk's loops over iy, jy, as whole blocks (the same single operations per entry; jy is the row here):
    # wn[jy, iy] = wn1[iy, jy]/θ and wn[col+jy, col+iy] = wn1[m+iy, m+jy]·θ for jy <= iy; wn[jy, col+iy] is
    # -wn1[m+iy, jy] for jy < iy and wn1[m+iy, jy] for jy >= iy; then the diagonal of the first block gets sᵀy.
    i, j = np.indices((col, col))  # i: row (jy), j: column (iy)
    upper, strictly_upper = i <= j, i < j
    with np.errstate(all="ignore"):
        wn[:col, :col] = np.where(upper, wn1[:col, :col].T / theta, 0.0)
        wn[col:, col:] = np.where(upper, wn1[m:m + col, m:m + col].T * theta, 0.0)
    mixed = wn1[m:m + col, :col].T
    wn[:col, col:] = np.where(strictly_upper, -mixed, mixed)
    diagonal = np.arange(col)
    wn[diagonal, diagonal] = wn[diagonal, diagonal] + np.asarray(sy_diagonal[:col], dtype=np.float64)
    factor, info = scipy_lapack.dpotrf(wn[:col, :col].copy(order="F"), lower=0, clean=1)
    if info != 0:
        return None
    wn[:col, :col] = factor
    solved, _ = scipy_lapack.dtrtrs(factor, wn[:col, col:].copy(order="F"), lower=0, trans=1)
    wn[:col, col:] = solved
    columns = list(np.ascontiguousarray(wn[:col, col:].T))  # column col + a of wn over its first col rows
    for a in range(col):
        for b in range(a, col):
            wn[col + a, col + b] = float(wn[col + a, col + b]) + ddot(columns[a], columns[b])
    factor2, info = scipy_lapack.dpotrf(wn[col:, col:].copy(order="F"), lower=0, clean=1)
    if info != 0:
        return None
    wn[col:, col:] = factor2
    return wn


def reduced_gradient(x: np.ndarray, g: np.ndarray, cauchy_point: np.ndarray, c: np.ndarray, s: Pairs,
                     y: Pairs, sy: np.ndarray, wt: np.ndarray, theta: float,
                     free: FreeSet) -> np.ndarray | None:
    """``cmprlb`` (bounded case): r = -Zᵀ(g + θ(x^c - x) - W M c) on the free variables; ``None`` if bmv fails."""
    col = s.shape[1]
    rows = free.index[:free.n_free]
    r = -theta * (cauchy_point[rows] - x[rows]) - g[rows]
    v = bmv(sy, wt, c)
    if v is None:
        return None
    y_free, s_free = pair_columns(y, rows), pair_columns(s, rows)
    for j in range(col):
        a1 = float(v[j])
        a2 = theta * float(v[col + j])
        r = r + y_free[j] * a1 + s_free[j] * a2
    return r


def subspace_step(cauchy_point: np.ndarray, r: np.ndarray, box: BoxBounds, s: Pairs, y: Pairs,
                  theta: float, x: np.ndarray, g: np.ndarray, wn: np.ndarray, free: FreeSet) -> np.ndarray | None:
    """``subsm``: the subspace Newton step from the Cauchy point, projected into the box (Morales–Nocedal 2011).

    Returns the new point z, or ``None`` when a triangular solve fails.
    """
    col = s.shape[1]
    nsub = free.n_free
    rows = free.index[:nsub]
    if nsub <= 0:
        return cauchy_point.copy()
    y_free = pair_columns(y, rows)
    s_free = pair_columns(s, rows)
    wv = sequential_dots(y_free + s_free, r)
    wv[col:] = theta * wv[col:]
    solved = trtrs_upper(wn, wv, transpose=True)
    if solved is None:
        return None
    solved[:col] = -solved[:col]
    solved = trtrs_upper(wn, solved, transpose=False)
    if solved is None:
        return None
    d = compact_update(r, y_free, s_free, solved, theta)
    if d is None:
        d = r.copy()
        for jy in range(col):
            d = d + (y_free[jy] * float(solved[jy])) / theta + s_free[jy] * float(solved[col + jy])
    d = d * c_div(1.0, theta)

    z = cauchy_point.copy()
    kind = box.kind[rows]
    lower, upper = box.lower[rows], box.upper[rows]
    moved = z[rows] + d
    # C fmax(l, v) / fmin(u, v): a NaN v gives the bound, ties give v (bounds are never NaN here).
    raised = np.where(np.isnan(moved) | (lower > moved), lower, moved)
    lowered = np.where(np.isnan(moved) | (upper < moved), upper, moved)
    both = np.where(np.isnan(raised) | (upper < raised), upper, raised)
    projected = np.where(kind == LOWER_ONLY, raised,
                         np.where(kind == BOTH, both, np.where(kind == UPPER_ONLY, lowered, moved)))
    z[rows] = projected
    hit_bound = bool((((kind == LOWER_ONLY) | (kind == BOTH)) & (projected == lower)).any()
                     or (((kind == BOTH) | (kind == UPPER_ONLY)) & (projected == upper)).any())
    if not hit_bound:
        return z
    slope = ordered_sum((z - x) * g)
    if not slope > 0.0:
        return z
    # The projected step points uphill: go back to the Cauchy point and move along d only as far as the box allows.
    z = cauchy_point.copy()
    alpha, temp1, ibd = 1.0, 1.0, 0
    for i in range(nsub):
        k = int(rows[i])
        if box.kind[k] == UNBOUNDED:
            continue
        limited = step_to_bound(box, k, float(z[k]), float(d[i]), alpha)
        if limited is not None:
            temp1 = limited  # otherwise temp1 keeps its last value, as in subsm
        if temp1 < alpha:
            alpha, ibd = temp1, i
    if alpha < 1.0:
        dk = float(d[ibd])
        k = int(rows[ibd])
        if dk > 0.0:
            z[k] = box.upper[k]
            d[ibd] = 0.0
        elif dk < 0.0:
            z[k] = box.lower[k]
            d[ibd] = 0.0
    for i in range(nsub):
        k = int(rows[i])
        z[k] = float(z[k]) + alpha * float(d[i])
    return z
