"""The numba side of :mod:`lbfgs_verify.reference.kernels` (imported only when the compiled phases are first used).

The kernels are module-level functions (not closures) so that numba's on-disk cache finds them again in the next
process; scipy's BLAS/LAPACK routines are registered with LLVM under fixed names (``lbfgs_verify_ddot``, …) from
the addresses ``scipy.linalg.cython_blas``/``cython_lapack`` export, so a cached kernel links to them by name.
Every kernel states which Python function it follows; the checks are in ``tests/fast/test_lbfgsb_kernels.py``.
"""

from __future__ import annotations

import math
from typing import Any

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import types
from numba.extending import get_cython_function_address

from lbfgs_verify.line_search.more_thuente import BISECTION_FACTOR as BISECTION
from lbfgs_verify.line_search.more_thuente import EXTRAPOLATION_LOWER, EXTRAPOLATION_UPPER
from lbfgs_verify.reference.cauchy import heap_next_breakpoint

EPSMACH = 2.220446049250313e-16

for name, module in (("ddot", "scipy.linalg.cython_blas"), ("dnrm2", "scipy.linalg.cython_blas"),
                     ("daxpy", "scipy.linalg.cython_blas"),
                     ("dpotrf", "scipy.linalg.cython_lapack"), ("dtrtrs", "scipy.linalg.cython_lapack")):
    llvm.add_symbol(f"lbfgs_verify_{name}", get_cython_function_address(module, name))
int_p, double_p, char_p = types.CPointer(types.int32), types.CPointer(types.float64), types.CPointer(types.uint8)
ddot = types.ExternalFunction("lbfgs_verify_ddot", types.float64(int_p, double_p, int_p, double_p, int_p))
dnrm2 = types.ExternalFunction("lbfgs_verify_dnrm2", types.float64(int_p, double_p, int_p))
daxpy = types.ExternalFunction("lbfgs_verify_daxpy", types.void(int_p, double_p, double_p, int_p, double_p, int_p))
dpotrf = types.ExternalFunction("lbfgs_verify_dpotrf", types.void(char_p, int_p, double_p, int_p, int_p))
dtrtrs = types.ExternalFunction("lbfgs_verify_dtrtrs", types.void(
    char_p, char_p, char_p, int_p, int_p, double_p, int_p, double_p, int_p, int_p))
jit = numba.njit(cache=True, fastmath=False, nogil=True, error_model="numpy")

@jit
def blas_dot(a: Any, b: Any) -> float:
    # ddot(n, a, 1, b, 1) on two contiguous vectors.
    ints = np.empty(3, np.int32)
    ints[0] = a.shape[0]
    ints[1] = 1
    ints[2] = 1
    return ddot(ints[0:].ctypes, a.ctypes, ints[1:].ctypes, b.ctypes, ints[2:].ctypes)

@jit
def blas_nrm2(a: Any) -> float:
    # dnrm2(n, a, 1) on a contiguous vector.
    ints = np.empty(2, np.int32)
    ints[0] = a.shape[0]
    ints[1] = 1
    return dnrm2(ints[0:].ctypes, a.ctypes, ints[1:].ctypes)

@jit
def potrf_upper(at: Any) -> int:
    # dpotrf('U') on the Fortran matrix whose C-order transpose is ``at`` (square, contiguous); like scipy's
    # wrapper with clean=1, the strictly lower triangle (of the Fortran matrix) is set to 0 afterwards.
    n = at.shape[0]
    ints = np.empty(3, np.int32)
    ints[0] = n
    ints[1] = n
    ints[2] = 0
    chars = np.empty(1, np.uint8)
    chars[0] = 85  # 'U'
    dpotrf(chars.ctypes, ints[0:].ctypes, at.ctypes, ints[1:].ctypes, ints[2:].ctypes)
    for j in range(n):  # Fortran (i, j) is at[j, i]; zero i > j
        for i in range(j + 1, n):
            at[j, i] = 0.0
    return ints[2]

@jit
def trtrs_upper(at: Any, bt: Any, transpose: bool) -> int:
    # dtrtrs('U', 'T' or 'N', 'N') with the Fortran matrices whose C-order transposes are ``at`` (n × n) and
    # ``bt`` (nrhs × n); the solution overwrites ``bt``.
    ints = np.empty(5, np.int32)
    ints[0] = at.shape[0]
    ints[1] = bt.shape[0]
    ints[2] = at.shape[0]
    ints[3] = at.shape[0]
    ints[4] = 0
    chars = np.empty(3, np.uint8)
    chars[0] = 85  # 'U'
    chars[1] = 84 if transpose else 78  # 'T' / 'N'
    chars[2] = 78  # 'N'
    dtrtrs(chars[0:].ctypes, chars[1:].ctypes, chars[2:].ctypes, ints[0:].ctypes, ints[1:].ctypes, at.ctypes,
           ints[2:].ctypes, bt.ctypes, ints[3:].ctypes, ints[4:].ctypes)
    return ints[4]

@jit
def has_nan(a: Any) -> bool:
    for q in range(a.shape[0]):  # noqa: SIM110 (a plain loop compiles best)
        if a[q] != a[q]:
            return True
    return False

@jit
def ordered_dot(a: Any, b: Any) -> float:
    # temp = 0; temp = temp + a[k]*b[k] for k in order (formk's and subsm's own loops).
    total = 0.0
    for q in range(a.shape[0]):
        total = total + a[q] * b[q]
    return total

@jit
def quasi_newton_point(x: Any, g: Any, ys: Any, ss: Any, yy: Any, sy_loop: Any, loop_known: Any,
                       sy_diag: Any, theta: float, z: Any, direction: Any) -> int:
    # lbfgsb._quasi_newton_point_unchecked, operation for operation; 0 on success, 1 when a factorization
    # or solve fails, 2 when z holds a NaN (its payload is the compiler's: the caller takes the numpy path).
    # ys/ss: the pairs as rows (k × n, oldest first); yy/sy_loop and
    # loop_known: the table of in-order products, completed here in place (missing columns in order).
    # direction: z - x, as iterate computes it.
    k, n = ys.shape
    r = np.empty(n)
    for q in range(n):
        r[q] = -g[q]
    for i in range(k):
        if not loop_known[i]:
            for j in range(i + 1):  # two sums side by side, each in its loop's order
                total_y = 0.0
                total_s = 0.0
                for q in range(n):
                    total_y = total_y + ys[j, q] * ys[i, q]
                    total_s = total_s + ss[j, q] * ys[i, q]
                yy[j, i] = total_y
                sy_loop[j, i] = total_s
            loop_known[i] = True
    wv = np.empty(2 * k)
    for j in range(k):
        total_y = 0.0
        total_s = 0.0
        for q in range(n):
            total_y = total_y + ys[j, q] * r[q]
            total_s = total_s + ss[j, q] * r[q]
        wv[j] = total_y
        wv[k + j] = total_s
    # formk: F11 = chol(triu(YᵀY)/θ + D), X = F11⁻ᵀ R, F22 = chol(0·θ + XᵀX) (Fortran matrices, transposed).
    f11 = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            f11[j, i] = yy[i, j] / theta
        f11[i, i] += sy_diag[i]
    if potrf_upper(f11) != 0:
        return 1
    x12 = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            x12[j, i] = sy_loop[j, i] if j <= i else -0.0
    trtrs_upper(f11, x12, True)
    f22 = np.zeros((k, k))
    zero_theta = 0.0 * theta
    for a in range(k):
        for b in range(a, k):
            f22[b, a] = zero_theta + blas_dot(x12[a], x12[b])
    if potrf_upper(f22) != 0:
        return 1
    middle = np.zeros((2 * k, 2 * k))
    for i in range(k):
        for j in range(i, k):
            middle[j, i] = f11[j, i]
            middle[k + j, k + i] = f22[j, i]
        for j in range(k):
            middle[k + j, i] = x12[j, i]
    # subsm: wv = [Yᵀr; θ Sᵀr], two triangular solves, then d = r + Σ_j (y_j·wv_j/θ + s_j·wv_{k+j}).
    rhs = np.empty((1, 2 * k))
    for j in range(k):
        rhs[0, j] = wv[j]
        rhs[0, k + j] = theta * wv[k + j]
    if trtrs_upper(middle, rhs, True) != 0:
        return 1
    for j in range(k):
        rhs[0, j] = -rhs[0, j]
    if trtrs_upper(middle, rhs, False) != 0:
        return 1
    inverse_theta = 1.0 / theta
    for q in range(n):
        t = r[q]
        for j in range(k):
            t = t + ys[j, q] * rhs[0, j] / theta
            t = t + ss[j, q] * rhs[0, k + j]
        z[q] = x[q] + t * inverse_theta
        direction[q] = z[q] - x[q]  # mainlb's d = z - x (recomputed from the rounded z)
    if has_nan(z):
        return 2
    return 0

@jit
def middle_factor(ss: Any, ys: Any, ss_blas: Any, sy_blas: Any, blas_known: Any, ss_diag: Any, sy_diag: Any,
                  theta: float, factor_t: Any) -> int:
    # matupd's missing products (ddot, in the order of lbfgsb._PairProducts.blas_products), then formt as
    # lbfgsb._middle_matrix_factor_of computes it; factor_t: the Fortran factor, transposed (k × k). dpotrf's
    # info, or -1 when the factor holds a NaN (the caller takes the numpy path).
    k = ss.shape[0]
    for p in range(k):
        if not blas_known[p]:
            for i in range(p):
                ss_blas[i, p] = blas_dot(ss[i], ss[p])
                sy_blas[p, i] = blas_dot(ss[p], ys[i])
            blas_known[p] = True
    for i in range(k):
        for j in range(k):
            factor_t[j, i] = 0.0
    for i in range(k):
        for j in range(i, k):
            scaled = theta * (ss_diag[i] if i == j else ss_blas[i, j])
            if i == 0:
                factor_t[j, i] = scaled
            else:
                total = 0.0
                for q in range(i):
                    total = total + sy_blas[i, q] * sy_blas[j, q] / sy_diag[q]
                factor_t[j, i] = total + scaled
    info = potrf_upper(factor_t)
    if info == 0:
        for i in range(k):
            if has_nan(factor_t[i]):
                return -1
    return info

@jit
def fmax(a: float, b: float) -> float:
    # C99 fmax as more_thuente.c_fmax (NaN ignored; ties return b).
    if a != a:
        return b
    if b != b:
        return a
    return a if a > b else b

@jit
def fmin(a: float, b: float) -> float:
    if a != a:
        return b
    if b != b:
        return a
    return a if a < b else b

@jit
def csqrt(a: float) -> float:
    if a >= 0.0:
        return math.sqrt(a)
    return math.nan

@jit
def scale(theta: float, d_a: float, d_b: float) -> float:
    return fmax(abs(theta), fmax(abs(d_a), abs(d_b)))

@jit
def cubic_gamma(theta: float, s: float, d_a: float, d_b: float) -> float:
    ratio = theta / s
    return s * csqrt(ratio * ratio - (d_a / s) * (d_b / s))

@jit
def dcstep(b: Any, stp: float, fp: float, dp: float, stpmin: float, stpmax: float) -> float:
    # more_thuente.dcstep on b = [stx, fx, dx, sty, fy, dy, bracketed] (updated in place); the new step.
    stx, fx, dx, sty, fy, dy = b[0], b[1], b[2], b[3], b[4], b[5]
    bracketed = b[6] != 0.0
    sign_product = dp * (dx / abs(dx))
    if fp > fx:  # case 1
        theta = (3.0 * (fx - fp)) / (stp - stx) + dx + dp
        s = scale(theta, dx, dp)
        gamma = cubic_gamma(theta, s, dx, dp)
        if stp < stx:
            gamma = -gamma
        p = (gamma - dx) + theta
        q = ((gamma - dx) + gamma) + dp
        r = p / q
        step_cubic = stx + r * (stp - stx)
        step_quadratic = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
        if abs(step_cubic - stx) < abs(step_quadratic - stx):
            new_step = step_cubic
        else:
            new_step = step_cubic + (step_quadratic - step_cubic) / 2.0
        bracketed = True
    elif sign_product < 0.0:  # case 2
        theta = (3.0 * (fx - fp)) / (stp - stx) + dx + dp
        s = scale(theta, dx, dp)
        gamma = cubic_gamma(theta, s, dx, dp)
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = ((gamma - dp) + gamma) + dx
        r = p / q
        step_cubic = stp + r * (stx - stp)
        step_secant = stp + (dp / (dp - dx)) * (stx - stp)
        new_step = step_cubic if abs(step_cubic - stp) > abs(step_secant - stp) else step_secant
        bracketed = True
    elif abs(dp) < abs(dx):  # case 3
        theta = (3.0 * (fx - fp)) / (stp - stx) + dx + dp
        s = scale(theta, dx, dp)
        ratio = theta / s
        gamma = s * csqrt(fmax(0.0, ratio * ratio - (dx / s) * (dp / s)))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = (gamma + (dx - dp)) + gamma
        r = p / q
        if r < 0.0 and gamma != 0.0:
            step_cubic = stp + r * (stx - stp)
        elif stp > stx:
            step_cubic = stpmax
        else:
            step_cubic = stpmin
        step_secant = stp + (dp / (dp - dx)) * (stx - stp)
        if bracketed:
            new_step = step_cubic if abs(step_cubic - stp) < abs(step_secant - stp) else step_secant
            limit = stp + BISECTION * (sty - stp)
            new_step = fmin(limit, new_step) if stp > stx else fmax(limit, new_step)
        else:
            new_step = step_cubic if abs(step_cubic - stp) > abs(step_secant - stp) else step_secant
            new_step = fmin(stpmax, new_step)
            new_step = fmax(stpmin, new_step)
    else:  # case 4
        if bracketed:
            theta = (3.0 * (fp - fy)) / (sty - stp) + dy + dp
            s = scale(theta, dy, dp)
            gamma = cubic_gamma(theta, s, dy, dp)
            if stp > sty:
                gamma = -gamma
            p = (gamma - dp) + theta
            q = ((gamma - dp) + gamma) + dy
            r = p / q
            new_step = stp + r * (sty - stp)
        elif stp > stx:
            new_step = stpmax
        else:
            new_step = stpmin
    if fp > fx:
        sty, fy, dy = stp, fp, dp
    else:
        if sign_product < 0.0:
            sty, fy, dy = stx, fx, dx
        stx, fx, dx = stp, fp, dp
    b[0], b[1], b[2], b[3], b[4], b[5] = stx, fx, dx, sty, fy, dy
    b[6] = 1.0 if bracketed else 0.0
    return new_step

@jit
def dcsrch_iterate(f: float, g: float, stp: float, st: Any, ftol: float, gtol: float, xtol: float,
                   stpmin: float, stpmax: float) -> tuple[int, float]:
    # more_thuente.dcsrch_iterate on the state array st (layout: see SEARCH_STATE), updated in place.
    # Returns (task, stp): 0 FG (evaluate at stp), 1 CONVERGENCE, 2 WARNING.
    bracketed = st[0] != 0.0
    stage = st[1]
    f_init, g_init, g_test = st[2], st[3], st[4]
    stmin, stmax = st[11], st[12]
    ftest = f_init + stp * g_test
    if stage == 1.0 and f <= ftest and g >= 0.0:
        stage = 2.0
    st[1] = stage
    task = -1
    if bracketed and (stp <= stmin or stp >= stmax):
        task = 2
    if bracketed and stmax - stmin <= xtol * stmax:
        task = 2
    if stp == stpmax and f <= ftest and g <= g_test:
        task = 2
    if stp == stpmin and (f > ftest or g >= g_test):
        task = 2
    if f <= ftest and abs(g) <= gtol * (-g_init):
        task = 1
    if task >= 0:
        return task, stp
    b = np.empty(7)
    if stage == 1.0 and f <= st[6] and f > ftest:
        b[0], b[1], b[2] = st[5], st[6] - st[5] * g_test, st[7] - g_test
        b[3], b[4], b[5] = st[8], st[9] - st[8] * g_test, st[10] - g_test
        b[6] = st[0]
        stp = dcstep(b, stp, f - stp * g_test, g - g_test, stmin, stmax)
        b[1] = b[1] + b[0] * g_test
        b[2] = b[2] + g_test
        b[4] = b[4] + b[3] * g_test
        b[5] = b[5] + g_test
    else:
        b[0], b[1], b[2], b[3], b[4], b[5], b[6] = st[5], st[6], st[7], st[8], st[9], st[10], st[0]
        stp = dcstep(b, stp, f, g, stmin, stmax)
    width, width_before = st[13], st[14]
    now_bracketed = b[6] != 0.0
    if now_bracketed:
        if abs(b[3] - b[0]) >= BISECTION * width_before:
            stp = b[0] + 0.5 * (b[3] - b[0])
        width_before = width
        width = abs(b[3] - b[0])
    if now_bracketed:
        stmin = fmin(b[0], b[3])
        stmax = fmax(b[0], b[3])
    else:
        stmin = stp + EXTRAPOLATION_LOWER * (stp - b[0])
        stmax = stp + EXTRAPOLATION_UPPER * (stp - b[0])
    stp = fmax(stp, stpmin)
    stp = fmin(stp, stpmax)
    if (now_bracketed and (stp <= stmin or stp >= stmax)) or (now_bracketed and stmax - stmin <= xtol * stmax):
        stp = b[0]
    st[0] = b[6]
    st[5], st[6], st[7], st[8], st[9], st[10] = b[0], b[1], b[2], b[3], b[4], b[5]
    st[11], st[12], st[13], st[14] = stmin, stmax, width, width_before
    return 0, stp

@jit
def infinity_norm(g: Any) -> float:
    # max |g_i| as numpy's max of abs: NaN if any entry is NaN (the maximum itself is exact).
    norm = 0.0
    for q in range(g.shape[0]):
        a = abs(g[q])
        if a != a:
            return math.nan
        if a > norm:
            norm = a
    return norm

@jit
def same_point(a: Any, b: Any) -> bool:
    # numpy.array_equal on two vectors of one size: a[i] == b[i] for all i (-0.0 == 0.0, NaN never equal).
    for q in range(a.shape[0]):  # noqa: SIM110 (a generator is not what numba compiles best)
        if a[q] != b[q]:  # True for NaN: never equal
            return False
    return True

@jit
def reduced_factor(wn1: Any, sy_diag: Any, theta: float, m: int, col: int, wn_t: Any) -> int:
    # subspace.factor_reduced_matrix (formk's second half), operation for operation, into wn_t: the 2col × 2col
    # Fortran matrix wn, transposed (wn[i, j] = wn_t[j, i]); 0 on success, 1 when a dpotrf fails, 2 on a NaN.
    for a in range(2 * col):
        for b in range(2 * col):
            wn_t[a, b] = 0.0
    for i in range(col):
        for j in range(i, col):
            wn_t[j, i] = wn1[j, i] / theta
            wn_t[col + j, col + i] = wn1[m + j, m + i] * theta
        for j in range(col):
            mixed = wn1[m + j, i]
            wn_t[col + j, i] = -mixed if i < j else mixed
    for d in range(col):
        wn_t[d, d] = wn_t[d, d] + sy_diag[d]
    f11 = np.empty((col, col))
    for a in range(col):
        for b in range(col):
            f11[a, b] = wn_t[a, b]
    if potrf_upper(f11) != 0:
        return 1
    x12 = np.empty((col, col))
    for a in range(col):
        for b in range(col):
            wn_t[a, b] = f11[a, b]
            x12[a, b] = wn_t[col + a, b]
    trtrs_upper(f11, x12, True)
    for a in range(col):
        for b in range(col):
            wn_t[col + a, b] = x12[a, b]
    for a in range(col):
        for b in range(a, col):
            wn_t[col + b, col + a] = wn_t[col + b, col + a] + blas_dot(x12[a], x12[b])
    f22 = np.empty((col, col))
    for a in range(col):
        for b in range(col):
            f22[a, b] = wn_t[col + a, col + b]
    if potrf_upper(f22) != 0:
        return 1
    for a in range(col):
        for b in range(col):
            wn_t[col + a, col + b] = f22[a, b]
    for a in range(2 * col):
        if has_nan(wn_t[a]):
            return 2
    return 0

@jit
def bmv(sy: Any, wt_t: Any, v: Any, p: Any) -> int:
    # cauchy.bmv, operation for operation, into p (2col); wt_t: formt's Fortran factor, transposed.
    # 0 on success, 1 when a triangular solve fails, 2 when p holds a NaN (numpy path then).
    col = sy.shape[0]
    for i in range(2 * col):
        p[i] = 0.0
    if col == 0:
        return 0
    p[col] = v[col]
    for i in range(1, col):
        total = 0.0
        for k in range(i):
            total = total + (sy[i, k] * v[k]) / sy[k, k]
        p[col + i] = v[col + i] + total
    rhs = np.empty((1, col))
    for i in range(col):
        rhs[0, i] = p[col + i]
    if trtrs_upper(wt_t, rhs, True) != 0:
        return 1
    for i in range(col):
        p[col + i] = rhs[0, i]
        diagonal = sy[i, i]
        root = math.sqrt(diagonal) if diagonal >= 0.0 else math.nan
        p[i] = v[i] / root
    if trtrs_upper(wt_t, rhs, False) != 0:
        return 1
    for i in range(col):
        p[col + i] = rhs[0, i]
        diagonal = sy[i, i]
        root = math.sqrt(diagonal) if diagonal >= 0.0 else math.nan
        p[i] = -p[i] / root
    for i in range(col):
        total = 0.0
        for k in range(i + 1, col):
            total = total + (sy[k, i] * p[col + k]) / sy[i, i]
        p[i] = p[i] + total
    if has_nan(p):
        return 2
    return 0

@jit
def step_to_bound(lower: Any, upper: Any, kind: Any, k: int, xk: float, dk: float, step: float) -> float:
    # box.step_to_bound; NaN stands for "not limited" (a limit is never NaN where it is returned).
    code = kind[k]
    if code == 0:
        return math.nan
    if dk < 0.0 and code <= 2:
        room = lower[k] - xk
        if room >= 0.0:
            return 0.0
        if dk * step < room:
            return room / dk
    elif dk > 0.0 and code >= 2:
        room = upper[k] - xk
        if room <= 0.0:
            return 0.0
        if dk * step > room:
            return room / dk
    return math.nan

@jit
def longest_feasible_step(x: Any, d: Any, lower: Any, upper: Any, kind: Any) -> float:
    # lnsrlb's scan for stpmx, variable by variable (box.longest_feasible_step's reference loop).
    step = 1.0e10
    for i in range(x.shape[0]):
        limited = step_to_bound(lower, upper, kind, i, x[i], d[i], step)
        if limited == limited:
            step = limited
    return step

@jit
def projected_gradient_norm(x: Any, g: Any, lower: Any, upper: Any, kind: Any) -> float:
    # box.projected_gradient_norm: the first NaN of g as it is, else max over |projected g_i| from 0.0.
    for i in range(g.shape[0]):
        if g[i] != g[i]:
            return g[i]
    norm = 0.0
    for i in range(g.shape[0]):
        gi = g[i]
        code = kind[i]
        if gi < 0.0:
            if code == 2 or code == 3:
                a = x[i] - upper[i]
                gi = gi if (a != a or not a > gi) else a
        elif code == 1 or code == 2:
            a = x[i] - lower[i]
            gi = gi if (a != a or not a < gi) else a
        gi = abs(gi)
        if gi > norm:
            norm = gi
    return norm

@jit
def blas_axpy(a: float, x: Any, y: Any) -> None:
    # y = y + a·x by daxpy(n, a, x, 1, y, 1) (in place; BLAS may fuse the multiply-add, as in scipy).
    ints = np.empty(3, np.int32)
    ints[0] = x.shape[0]
    ints[1] = 1
    ints[2] = 1
    alpha = np.empty(1)
    alpha[0] = a
    daxpy(ints[0:].ctypes, alpha.ctypes, x.ctypes, ints[1:].ctypes, y.ctypes, ints[2:].ctypes)

heap_next = jit(heap_next_breakpoint)  # cauchy's hpsolb, the same code on arrays instead of lists


@jit
def cauchy_point(x: Any, g: Any, lower: Any, upper: Any, kind: Any, where: Any, ys: Any, ss: Any, sy: Any,
                 wt_t: Any, theta: float, gradient_norm: float, xcp: Any, c: Any) -> int:
    # cauchy.generalized_cauchy_point with the scan variable by variable (_scan_variables_in_order, the loop of
    # __lbfgsb.c) and the heap walk (hpsolb); writes xcp, c (2col) and where (in place). 0, or 1 if bmv fails,
    # 2 when a NaN came up (NaN payloads are the compiler's: the caller takes the numpy path).
    n, col = x.shape[0], ys.shape[0]
    for i in range(n):
        xcp[i] = x[i]
    for i in range(2 * col):
        c[i] = 0.0
    if gradient_norm <= 0.0:
        return 0
    bounded_path = True
    n_free = n
    nbreak = -1
    t = np.empty(n)
    order = np.empty(n, np.int64)
    least, least_at = 0.0, 0
    f1 = 0.0
    d = np.zeros(n)
    tl = tu = 0.0
    contributing = np.empty(n, np.int64)
    n_contributing = 0
    for i in range(n):
        neggi = -g[i]
        code = kind[i]
        if where[i] != 3 and where[i] != -1:
            if code <= 2:
                tl = x[i] - lower[i]
            if code >= 2:
                tu = upper[i] - x[i]
            at_lower = code <= 2 and tl <= 0.0
            at_upper = code >= 2 and tu <= 0.0
            where[i] = 0
            if at_lower:
                if neggi <= 0.0:
                    where[i] = 1
            elif at_upper:
                if neggi >= 0.0:
                    where[i] = 2
            elif abs(neggi) <= 0.0:
                where[i] = -3
        if where[i] != 0 and where[i] != -1:
            d[i] = 0.0
            continue
        d[i] = neggi
        f1 = f1 - neggi * neggi
        contributing[n_contributing] = i
        n_contributing += 1
        if code <= 2 and code != 0 and neggi < 0.0:
            value = tl / -neggi
        elif code >= 2 and neggi > 0.0:
            value = tu / neggi
        else:
            n_free -= 1
            if abs(neggi) > 0.0:
                bounded_path = False
            continue
        nbreak += 1
        t[nbreak] = value
        order[nbreak] = i
        if nbreak == 0 or value < least:
            least, least_at = value, nbreak
    p = np.zeros(2 * col)
    for j in range(col):
        total_y = 0.0
        total_s = 0.0
        for q in range(n_contributing):
            e = contributing[q]
            total_y = total_y + ys[j, e] * d[e]
            total_s = total_s + ss[j, e] * d[e]
        p[j] = total_y
        p[col + j] = total_s
    if theta != 1.0:
        for j in range(col):
            p[col + j] = p[col + j] * theta
    if nbreak == -1 and n_free == n:
        return 0
    f2 = -theta * f1
    f2_org = f2
    v = np.empty(2 * col)
    if col > 0:
        status = bmv(sy, wt_t, p, v)
        if status != 0:
            return status
        f2 = f2 - blas_dot(v, p)
    dtm = -f1 / f2
    tsum = 0.0
    if nbreak >= 0:
        nleft = nbreak
        step_count = 0
        tj = 0.0
        wbp = np.empty(2 * col)
        while True:
            tj0 = tj
            if step_count == 0:
                tj = least
                ibp = order[least_at]
            else:
                if step_count == 1 and least_at != nbreak:
                    t[least_at] = t[nbreak]
                    order[least_at] = order[nbreak]
                heap_next(nleft, t, order, step_count - 1 != 0)
                tj = t[nleft]
                ibp = order[nleft]
            dt = tj - tj0
            if dtm < dt:
                break
            tsum = tsum + dt
            nleft -= 1
            step_count += 1
            dibp = d[ibp]
            d[ibp] = 0.0
            if dibp > 0.0:
                zibp = upper[ibp] - x[ibp]
                xcp[ibp] = upper[ibp]
                where[ibp] = 2
            else:
                zibp = lower[ibp] - x[ibp]
                xcp[ibp] = lower[ibp]
                where[ibp] = 1
            dibp2 = dibp * dibp
            f1 = f1 + dt * f2 + dibp2 - theta * dibp * zibp
            f2 = f2 - theta * dibp2
            if col > 0:
                blas_axpy(dt, p, c)
                for j in range(col):
                    wbp[j] = ys[j, ibp]
                    wbp[col + j] = theta * ss[j, ibp]
                status = bmv(sy, wt_t, wbp, v)
                if status != 0:
                    return status
                wmc = blas_dot(c, v)
                wmp = blas_dot(p, v)
                wmw = blas_dot(wbp, v)
                blas_axpy(-dibp, wbp, p)
                f1 = f1 + dibp * wmc
                f2 = f2 + dibp * 2.0 * wmp - dibp2 * wmw
            f2 = fmax(EPSMACH * f2_org, f2)
            if nleft >= 0:
                dtm = -f1 / f2
            elif bounded_path:
                dtm = 0.0
                break
            else:
                dtm = -f1 / f2
                break
    if dtm <= 0.0:
        dtm = 0.0
    tsum = tsum + dtm
    blas_axpy(tsum, d, xcp)
    if col > 0:
        blas_axpy(dtm, p, c)
    if has_nan(xcp) or has_nan(c):
        return 2
    return 0

@jit
def update_inner(wn1: Any, ys: Any, ss: Any, index: Any, n_free: int, entering: Any, leaving: Any,
                 updated: bool, n_updates: int, m: int) -> None:
    # subspace.update_inner_products (formk's first half), operation for operation, on wn1 in place.
    col = ys.shape[0]
    n = index.shape[0]
    if updated:
        if n_updates > m:
            for jy in range(m - 1):
                js = m + jy
                for r in range(jy, m - 1):
                    wn1[r, jy] = wn1[r + 1, jy + 1]
                for r in range(js, 2 * m - 1):
                    wn1[r, js] = wn1[r + 1, js + 1]
                for r in range(m, 2 * m - 1):
                    wn1[r, jy] = wn1[r + 1, jy + 1]
        iy, is_ = col - 1, m + col - 1
        for jy in range(col):
            on_free = 0.0
            new_column = 0.0
            for q in range(n_free):
                e = index[q]
                on_free = on_free + ys[jy, e] * ys[iy, e]
                new_column = new_column + ss[jy, e] * ys[iy, e]
            ss_active = 0.0
            ys_active = 0.0
            for q in range(n_free, n):
                e = index[q]
                ss_active = ss_active + ss[jy, e] * ss[iy, e]
                ys_active = ys_active + ys[jy, e] * ss[iy, e]
            wn1[iy, jy] = on_free
            wn1[is_, m + jy] = ss_active
            wn1[is_, jy] = ys_active
            wn1[m + jy, col - 1] = new_column
        upcl = col - 1
    else:
        upcl = col
    if upcl == 0:
        return
    for r in range(upcl):
        for cc in range(upcl):
            yy_in = yy_out = ss_in = ss_out = sy_in = sy_out = 0.0
            for q in range(entering.shape[0]):
                e = entering[q]
                yy_in = yy_in + ys[r, e] * ys[cc, e]
                ss_in = ss_in + ss[r, e] * ss[cc, e]
                sy_in = sy_in + ss[r, e] * ys[cc, e]
            for q in range(leaving.shape[0]):
                e = leaving[q]
                yy_out = yy_out + ys[r, e] * ys[cc, e]
                ss_out = ss_out + ss[r, e] * ss[cc, e]
                sy_out = sy_out + ss[r, e] * ys[cc, e]
            if cc <= r:
                wn1[r, cc] = (wn1[r, cc] + yy_in) - yy_out
                wn1[m + r, m + cc] = (wn1[m + r, m + cc] - ss_in) + ss_out
            if r <= cc:
                wn1[m + r, cc] = (wn1[m + r, cc] + sy_in) - sy_out
            else:
                wn1[m + r, cc] = (wn1[m + r, cc] - sy_in) + sy_out

@jit
def subspace_point(x: Any, g: Any, lower: Any, upper: Any, kind: Any, ys: Any, ss: Any, sy: Any, wt_t: Any,
                   theta: float, index: Any, n_free: int, xcp: Any, c: Any, wn_t: Any, z: Any) -> int:
    # cmprlb (subspace.reduced_gradient) then subsm (subspace.subspace_step), operation for operation; writes z.
    # 0 on success, 1 when bmv or a triangular solve fails, 2 when z holds a NaN (numpy path then).
    n, col = x.shape[0], ys.shape[0]
    nsub = n_free
    for i in range(n):
        z[i] = xcp[i]
    if nsub <= 0:
        return 0
    v = np.empty(2 * col)
    status = bmv(sy, wt_t, c, v)
    if status != 0:
        return status
    r = np.empty(nsub)
    for q in range(nsub):
        e = index[q]
        r[q] = -theta * (xcp[e] - x[e]) - g[e]
    for j in range(col):
        a1 = v[j]
        a2 = theta * v[col + j]
        for q in range(nsub):
            e = index[q]
            r[q] = r[q] + ys[j, e] * a1 + ss[j, e] * a2
    rhs = np.empty((1, 2 * col))
    for j in range(col):
        total_y = 0.0
        total_s = 0.0
        for q in range(nsub):
            e = index[q]
            total_y = total_y + ys[j, e] * r[q]
            total_s = total_s + ss[j, e] * r[q]
        rhs[0, j] = total_y
        rhs[0, col + j] = theta * total_s
    if trtrs_upper(wn_t, rhs, True) != 0:
        return 1
    for j in range(col):
        rhs[0, j] = -rhs[0, j]
    if trtrs_upper(wn_t, rhs, False) != 0:
        return 1
    d = np.empty(nsub)
    inverse_theta = 1.0 / theta
    for q in range(nsub):
        e = index[q]
        t = r[q]
        for j in range(col):
            t = t + ys[j, e] * rhs[0, j] / theta
            t = t + ss[j, e] * rhs[0, col + j]
        d[q] = t * inverse_theta
    hit_bound = False
    for q in range(nsub):
        e = index[q]
        code = kind[e]
        lo, hi = lower[e], upper[e]
        moved = z[e] + d[q]
        raised = lo if (moved != moved or lo > moved) else moved
        lowered = hi if (moved != moved or hi < moved) else moved
        both = hi if (raised != raised or hi < raised) else raised
        if code == 1:
            projected = raised
        elif code == 2:
            projected = both
        elif code == 3:
            projected = lowered
        else:
            projected = moved
        z[e] = projected
        if ((code == 1 or code == 2) and projected == lo) or ((code == 2 or code == 3) and projected == hi):
            hit_bound = True
    if not hit_bound:
        return 2 if has_nan(z) else 0
    slope = 0.0
    for i in range(n):
        slope = slope + (z[i] - x[i]) * g[i]
    if not slope > 0.0:
        return 2 if has_nan(z) else 0
    for i in range(n):
        z[i] = xcp[i]
    alpha, temp1, ibd = 1.0, 1.0, 0
    for q in range(nsub):
        e = index[q]
        if kind[e] == 0:
            continue
        limited = step_to_bound(lower, upper, kind, e, z[e], d[q], alpha)
        if limited == limited:
            temp1 = limited
        if temp1 < alpha:
            alpha, ibd = temp1, q
    if alpha < 1.0:
        dk = d[ibd]
        e = index[ibd]
        if dk > 0.0:
            z[e] = upper[e]
            d[ibd] = 0.0
        elif dk < 0.0:
            z[e] = lower[e]
            d[ibd] = 0.0
    for q in range(nsub):
        e = index[q]
        z[e] = z[e] + alpha * d[q]
    if has_nan(z):
        return 2
    return 0

@jit
def free_variables(previous_index: Any, previous_n_free: int, where: Any, compare: bool) -> Any:
    # subspace.free_set (freev): the free variables ascending then the active ones descending, how many are
    # free, and (when ``compare``) those that entered and those that left (the latter last-found first).
    n = where.shape[0]
    entering = np.empty(n, np.int64)
    leaving = np.empty(n, np.int64)
    n_entering = n_leaving = 0
    if compare:
        for q in range(previous_n_free):
            e = previous_index[q]
            if where[e] > 0:
                leaving[n_leaving] = e
                n_leaving += 1
        for q in range(previous_n_free, n):
            e = previous_index[q]
            if where[e] <= 0:
                entering[n_entering] = e
                n_entering += 1
    index = np.empty(n, np.int64)
    n_free = 0
    for e in range(n):
        if where[e] <= 0:
            index[n_free] = e
            n_free += 1
    position = n_free
    for e in range(n - 1, -1, -1):
        if where[e] > 0:
            index[position] = e
            position += 1
    return index, n_free, entering[:n_entering].copy(), leaving[:n_leaving][::-1].copy()

@jit
def bounded_point(x: Any, g: Any, lower: Any, upper: Any, kind: Any, where: Any, ys: Any, ss: Any,
                  sy_blas: Any, wt_t: Any, theta: float, gradient_norm: float, previous_index: Any,
                  previous_n_free: int, compare: bool, updated: bool, n_updates: int, m: int, inner: Any,
                  sy_diag: Any, z: Any, direction: Any) -> Any:
    # One pass of lbfgsb._bounded_search_point from the Cauchy point to z: cauchy, freev, formk (both halves),
    # cmprlb, subsm (SᵀY from its strictly lower part sy_blas and its diagonal sy_diag). ``where`` and
    # ``inner`` are copies, updated in place. Returns (status, index, n_free,
    # changed): status 0 (z written), 1 (cauchy failed: nothing to keep), 3 (a later factorization or solve
    # failed: keep where, the free set and, when changed, inner), 2 (a NaN came up: take the numpy path).
    n, col = x.shape[0], ys.shape[0]
    sy = np.zeros((col, col))  # SᵀY as matupd keeps it (lbfgsb._sy_matrix)
    for i in range(col):
        for k in range(i):
            sy[i, k] = sy_blas[i, k]
        sy[i, i] = sy_diag[i]
    xcp = np.empty(n)
    c = np.empty(2 * col)
    status = cauchy_point(x, g, lower, upper, kind, where, ys, ss, sy, wt_t, theta, gradient_norm, xcp, c)
    if status != 0:
        return status, previous_index, previous_n_free, False
    index, n_free, entering, leaving = free_variables(previous_index, previous_n_free, where, compare)
    if n_free == 0 or col == 0:
        for q in range(n):
            z[q] = xcp[q]
            direction[q] = z[q] - x[q]
        return 0, index, n_free, False
    changed = entering.shape[0] > 0 or leaving.shape[0] > 0 or updated
    if changed:
        update_inner(inner, ys, ss, index, n_free, entering, leaving, updated, n_updates, m)
    wn_t = np.empty((2 * col, 2 * col))
    status = reduced_factor(inner, sy_diag, theta, m, col, wn_t)
    if status == 0:
        status = subspace_point(x, g, lower, upper, kind, ys, ss, sy, wt_t, theta, index, n_free, xcp, c,
                                wn_t, z)
    if status == 1:
        status = 3
    if status == 0:
        for q in range(n):
            direction[q] = z[q] - x[q]  # mainlb's d = z - x
    return status, index, n_free, changed



@jit
def shift_pairs(tables: Any, known: Any, stacked: Any, y: Any, s: Any) -> None:
    # lbfgsb._PairProducts.push with a full memory: every table, flag and stored row moves up by one (the oldest
    # pair leaves), the newest pair's products are unknown, its rows are y and s (copies, no arithmetic).
    k = tables.shape[1]
    keep = k - 1
    for t in range(tables.shape[0]):
        for i in range(keep):
            for j in range(keep):
                tables[t, i, j] = tables[t, i + 1, j + 1]
        for j in range(k):
            tables[t, keep, j] = 0.0
            tables[t, j, keep] = 0.0
    for t in range(known.shape[0]):
        for i in range(keep):
            known[t, i] = known[t, i + 1]
        known[t, keep] = False
    for i in range(keep):
        for q in range(stacked.shape[2]):
            stacked[0, i, q] = stacked[0, i + 1, q]
            stacked[1, i, q] = stacked[1, i + 1, q]
    for q in range(stacked.shape[2]):
        stacked[0, keep, q] = y[q]
        stacked[1, keep, q] = s[q]


@jit
def step_pair(g_new: Any, g_old: Any, d: Any, step: float, y: Any, s: Any) -> float:
    # lbfgsb._update_memory's vectors: y = g_new - g_old, s = stp·d (when stp != 1), and yᵀy as dnrm2(y)².
    for q in range(y.shape[0]):
        y[q] = g_new[q] - g_old[q]
    if step != 1.0:
        for q in range(s.shape[0]):
            s[q] = d[q] * step
    norm = blas_nrm2(y)
    return norm * norm


KERNELS = {
    "step_pair": step_pair,
    "shift_pairs": shift_pairs,
    "bounded_point": bounded_point,
    "free_variables": free_variables,
    "cauchy_point": cauchy_point,
    "update_inner": update_inner,
    "subspace_point": subspace_point,
    "blas_axpy": blas_axpy,
    "infinity_norm": infinity_norm,
    "reduced_factor": reduced_factor,
    "bmv": bmv,
    "longest_feasible_step": longest_feasible_step,
    "box_projected_gradient_norm": projected_gradient_norm,
    "same_point": same_point,
    "quasi_newton_point": quasi_newton_point,
    "middle_factor": middle_factor,
    "blas_dot": blas_dot,
    "blas_nrm2": blas_nrm2,
    "ordered_dot": ordered_dot,
    "dcsrch_iterate": dcsrch_iterate,
    "dcstep": dcstep,
}
"""The compiled phases by name (the namespace :func:`lbfgs_verify.reference.kernels.small_kernels` returns)."""
