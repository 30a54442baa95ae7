"""Whole phases of one L-BFGS-B iteration compiled by numba, for small problems (optional, the ``speed`` extra).

Below :data:`~lbfgs_verify.reference.cauchy.KERNEL_MIN_SIZE` entries an iteration of the twin costs Python's
per-call overhead, not arithmetic: ``formk`` + ``subsm`` alone made about 25 numpy calls and 55 BLAS calls through
f2py. Here each phase is one compiled call, doing what ``scipy/optimize/__lbfgsb.c`` does in the same order:

- :func:`quasi_newton_point`: ``formk`` + ``subsm`` without bounds (the in-order sums of the new pair's products,
  the middle matrix K factored by two ``dpotrf`` and one ``dtrtrs``, ``ddot`` for its lower-right block, the two
  ``dtrtrs`` solves of ``subsm`` and its update d = d + y·wv/θ + s·wv), giving z = x + d/θ… as in ``lbfgsb.py``.
- :func:`middle_factor`: ``matupd``'s new ``ddot`` products and ``formt`` (T = θ SᵀS + L D⁻¹ Lᵀ, ``dpotrf``).

The BLAS/LAPACK routines are scipy's own (``scipy.linalg.cython_blas``/``cython_lapack``, the library scipy's
``_lbfgsb`` links), registered with LLVM by name so that the kernels can be cached on disk; the loops are compiled
with ``fastmath`` off (no reassociation, no fused multiply-add: each product and sum is rounded as in the C code)
and IEEE division (``error_model="numpy"``). Both are checked bitwise against the numpy path in
``tests/fast/test_lbfgsb_kernels.py``. ``LBFGS_VERIFY_KERNELS=numpy`` turns them off; numba is imported on the
first iteration that would use them, never by importing this module.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from lbfgs_verify.line_search.more_thuente import BISECTION_FACTOR as BISECTION
from lbfgs_verify.line_search.more_thuente import EXTRAPOLATION_LOWER, EXTRAPOLATION_UPPER
from lbfgs_verify.reference import cauchy as _cauchy

SEARCH_STATE = ("bracketed", "stage", "f_init", "g_init", "g_test", "stx", "fx", "gx", "sty", "fy", "gy", "stmin",
                "stmax", "width", "width_before")
"""Layout of the float64 state array of the compiled ``dcsrch`` (the fields of ``more_thuente.SearchState``;
``bracketed`` 0/1, ``stage`` 1/2)."""

_SMALL_KERNELS: Any = None  # None: not built yet; False: numba missing; else the namespace


def _build() -> SimpleNamespace | None:
    try:
        import math

        import llvmlite.binding as llvm
        import numba
        import numpy as np
        from numba import types
        from numba.extending import get_cython_function_address
    except ImportError:
        return None

    for name, module in (("ddot", "scipy.linalg.cython_blas"), ("dnrm2", "scipy.linalg.cython_blas"),
                         ("dpotrf", "scipy.linalg.cython_lapack"), ("dtrtrs", "scipy.linalg.cython_lapack")):
        llvm.add_symbol(f"lbfgs_verify_{name}", get_cython_function_address(module, name))
    int_p, double_p, char_p = types.CPointer(types.int32), types.CPointer(types.float64), types.CPointer(types.uint8)
    ddot = types.ExternalFunction("lbfgs_verify_ddot", types.float64(int_p, double_p, int_p, double_p, int_p))
    dnrm2 = types.ExternalFunction("lbfgs_verify_dnrm2", types.float64(int_p, double_p, int_p))
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
    def ordered_dot(a: Any, b: Any) -> float:
        # temp = 0; temp = temp + a[k]*b[k] for k in order (formk's and subsm's own loops).
        total = 0.0
        for q in range(a.shape[0]):
            total = total + a[q] * b[q]
        return total

    @jit
    def quasi_newton_point(x: Any, g: Any, ys: Any, ss: Any, yy: Any, sy_loop: Any, loop_known: Any,
                           sy_diag: Any, theta: float, z: Any) -> int:
        # lbfgsb._quasi_newton_point_unchecked, operation for operation; 0 on success, 1 when a factorization
        # or solve fails (z is then not written). ys/ss: the pairs as rows (k × n, oldest first); yy/sy_loop and
        # loop_known: the table of in-order products, completed here in place (missing columns in order).
        k, n = ys.shape
        r = np.empty(n)
        for q in range(n):
            r[q] = -g[q]
        for i in range(k):
            if not loop_known[i]:
                for j in range(i + 1):
                    yy[j, i] = ordered_dot(ys[j], ys[i])
                    sy_loop[j, i] = ordered_dot(ss[j], ys[i])
                loop_known[i] = True
        wv = np.empty(2 * k)
        for j in range(k):
            wv[j] = ordered_dot(ys[j], r)
            wv[k + j] = ordered_dot(ss[j], r)
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
        return 0

    @jit
    def middle_factor(ss: Any, ys: Any, ss_blas: Any, sy_blas: Any, blas_known: Any, ss_diag: Any, sy_diag: Any,
                      theta: float, factor_t: Any) -> int:
        # matupd's missing products (ddot, in the order of lbfgsb._PairProducts.blas_products), then formt as
        # lbfgsb._middle_matrix_factor_of computes it; factor_t: the Fortran factor, transposed (k × k).
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
        return potrf_upper(factor_t)

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

    return SimpleNamespace(infinity_norm=infinity_norm, same_point=same_point, quasi_newton_point=quasi_newton_point,
                           middle_factor=middle_factor, blas_dot=blas_dot, blas_nrm2=blas_nrm2,
                           ordered_dot=ordered_dot,
                           dcsrch_iterate=dcsrch_iterate, dcstep=dcstep)


def small_kernels() -> SimpleNamespace | None:
    """The compiled phases, or ``None`` (numba missing or ``LBFGS_VERIFY_KERNELS=numpy``: the numpy path)."""
    global _SMALL_KERNELS
    if not _cauchy.KERNELS_ENABLED:
        return None
    if _SMALL_KERNELS is None:
        _SMALL_KERNELS = _build() or False
    return _SMALL_KERNELS or None
