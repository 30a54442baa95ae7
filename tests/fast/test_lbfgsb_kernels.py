"""The whole-array kernels of the scipy twin give the bits of the C loops they replace (``scipy/optimize/__lbfgsb.c``).

Each kernel is checked against a plain left-to-right Python loop written here (the loop of the C code), bitwise,
NaN payloads included, on random data with ties, signed zeros and non-finite values. The in-order sums and
``subsm``'s update have two paths, numpy and the optional numba kernels (used when numba is installed): both are
checked (the compiled one is skipped without numba), and a whole bounded and unbounded run is bitwise the same on
both.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from scipy.linalg import blas as scipy_blas

from lbfgs_verify.line_search.more_thuente import (
    LBFGSB_SEARCH_PARAMETERS,
    Task,
    c_div,
    c_sqrt,
    dcsrch_iterate,
    dcsrch_start,
)
from lbfgs_verify.reference import cauchy as cauchy_module
from lbfgs_verify.reference import lbfgsb as lbfgsb_module
from lbfgs_verify.reference.box import (
    BoxBounds,
    initial_where,
    longest_feasible_step,
    project,
    projected_gradient_norm,
    step_to_bound,
)
from lbfgs_verify.reference.cauchy import generalized_cauchy_point, sequential_dots
from lbfgs_verify.reference.kernels import small_kernels
from lbfgs_verify.reference.lbfgsb import LBFGSBState, _compact_update
from lbfgs_verify.reference.scipy_compat import minimize_lbfgsb
from lbfgs_verify.reference.subspace import _gram


@pytest.fixture(params=["numpy", "compiled"])
def kernel_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test on the numpy path, then on the numba kernels (skipped when numba is not installed)."""
    if request.param == "numpy":
        monkeypatch.setattr(cauchy_module, "KERNELS_ENABLED", False)
    else:
        pytest.importorskip("numba")
        monkeypatch.setattr(cauchy_module, "KERNELS_ENABLED", True)
        monkeypatch.setattr(cauchy_module, "KERNEL_MIN_SIZE", 0)  # every size takes the compiled path
        assert cauchy_module.compiled_kernels(1) is not None
    return str(request.param)


def _bits(value: object) -> bytes:
    return np.asarray(value, dtype=np.float64).tobytes()


def _loop_dot(a: np.ndarray, b: np.ndarray) -> float:
    total = 0.0
    for u, v in zip(a.tolist(), b.tolist(), strict=True):
        total = total + u * v
    return total


def _wide_range(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape) * np.exp(rng.uniform(-20.0, 20.0, shape))


@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, 129, 16_384, 16_385, 40_001])
@pytest.mark.parametrize("k", [1, 2, 5, 9])
def test_sequential_dots_sum_in_order(n: int, k: int, kernel_path: str) -> None:
    rng = np.random.default_rng(n * 10 + k)
    rows = [_wide_range(rng, n) for _ in range(k)]
    v, w = _wide_range(rng, n), _wide_range(rng, n)
    expected = [[_loop_dot(r, vector) for r in rows] for vector in (v, w)]
    assert _bits(sequential_dots(rows, v)) == _bits(expected[0])
    assert _bits(sequential_dots(rows, [v, w])) == _bits(expected)


def test_numpy_reduces_the_outer_axis_of_a_c_contiguous_array_in_order() -> None:
    """The assumption behind :func:`sequential_dots`: out[j] = out[j] + a[i, j] for i = 0, 1, … (no pairwise sum)."""
    rng = np.random.default_rng(3)
    for rows, columns in [(2, 2), (9, 2), (200, 3), (1000, 20), (3, 128)]:
        a = _wide_range(rng, rows, columns)
        expected = a[0].copy()
        for i in range(1, rows):
            expected = expected + a[i]
        assert _bits(np.add.reduce(a, axis=0)) == _bits(expected), (rows, columns)


@pytest.mark.parametrize("n", [1, 2, 100, 16_385])
@pytest.mark.parametrize("col", [1, 3, 6])
def test_compact_update_adds_each_entry_in_the_loop_order(n: int, col: int, kernel_path: str) -> None:
    """``subsm``: d_i = d_i + y_ji·wv_j/θ + s_ji·wv_{col+j} for j in order."""
    rng = np.random.default_rng(n + col)
    theta = 0.7
    r = _wide_range(rng, n)
    ys = [_wide_range(rng, n) for _ in range(col)]
    ss = [_wide_range(rng, n) for _ in range(col)]
    wv = _wide_range(rng, 2 * col)
    expected = r.copy()
    for j in range(col):
        expected = expected + ys[j] * wv[j] / theta + ss[j] * wv[col + j]
    assert _bits(_compact_update(r, ys, ss, wv, theta)) == _bits(expected)


@pytest.mark.parametrize("rows", [0, 1, 5, 5000])
@pytest.mark.parametrize("c", [1, 3])
def test_gram_sums_over_rows_in_order(rows: int, c: int) -> None:
    rng = np.random.default_rng(rows + c)
    a, b = _wide_range(rng, rows, c), _wide_range(rng, rows, c)
    expected = [[_loop_dot(a[:, i], b[:, j]) for j in range(c)] for i in range(c)]
    assert _bits(_gram(a, b)) == _bits(expected)


def _random_box(rng: np.random.Generator, n: int) -> BoxBounds:
    lower = rng.choice([-math.inf, -2.0, -1.0, 0.0, -0.0], n)
    upper = rng.choice([math.inf, 0.5, 1.0, 0.0, 2.0], n)
    return BoxBounds.from_arrays(lower, np.where(upper < lower, lower, upper))


def _random_vector(rng: np.random.Generator, n: int) -> np.ndarray:
    if rng.random() < 0.3:  # ties
        v = rng.choice([-1.0, 1.0, 0.5, -2.0, 0.0, -0.0], n)
    else:
        v = rng.standard_normal(n) * np.exp(rng.uniform(-5.0, 5.0, n))
    if rng.random() < 0.3:
        v[rng.integers(0, n, rng.integers(0, n + 1))] = rng.choice([math.nan, math.inf, -math.inf, -0.0, 1e-310])
    return v


def _scan_longest_step(x: np.ndarray, d: np.ndarray, box: BoxBounds) -> float:
    step = 1.0e10
    for i in range(box.n):
        limited = step_to_bound(box, i, float(x[i]), float(d[i]), step)
        if limited is not None:
            step = limited
    return step


def _scan_projected_gradient_norm(x: np.ndarray, g: np.ndarray, box: BoxBounds) -> float:
    norm = 0.0
    for i in range(box.n):
        gi = float(g[i])
        if gi != gi:
            return gi
        kind = box.kind[i]
        if kind != 0:
            if gi < 0.0:
                if kind >= 2:
                    bound = float(x[i]) - float(box.upper[i])
                    gi = gi if bound != bound or not bound > gi else bound
            elif kind <= 2:
                bound = float(x[i]) - float(box.lower[i])
                gi = gi if bound != bound or not bound < gi else bound
        norm = abs(gi) if abs(gi) >= norm else norm
    return norm


def test_box_kernels_match_the_scans_of_lnsrlb_projgr_and_active() -> None:
    rng = np.random.default_rng(11)
    with np.errstate(all="ignore"):
        for _ in range(400):
            n = int(rng.integers(1, 60))
            box = _random_box(rng, n)
            x, g, d = _random_vector(rng, n), _random_vector(rng, n), _random_vector(rng, n)
            assert _bits(longest_feasible_step(x, d, box)) == _bits(_scan_longest_step(x, d, box))
            assert _bits(projected_gradient_norm(x, g, box)) == _bits(_scan_projected_gradient_norm(x, g, box))
            expected = x.copy()
            for i in range(n):
                kind = box.kind[i]
                below = kind != 0 and kind <= 2 and expected[i] <= box.lower[i]
                if below and expected[i] < box.lower[i]:
                    expected[i] = box.lower[i]
                elif kind != 0 and not below and kind >= 2 and expected[i] > box.upper[i]:
                    expected[i] = box.upper[i]
            assert _bits(project(x, box)) == _bits(expected)


def test_cauchy_whole_array_scan_and_sorted_walk_match_the_loop_and_heap(monkeypatch: pytest.MonkeyPatch,
                                                                        kernel_path: str) -> None:
    """``cauchy``: the vectorized first loop and the sorted breakpoint walk give the loop's and the heap's bits."""
    rng = np.random.default_rng(5)
    cases = []
    for _ in range(300):
        n = int(rng.integers(1, 120))
        box = _random_box(rng, n)
        x = _random_vector(rng, n)
        if rng.random() < 0.7:
            x = project(np.where(np.isnan(x), 0.0, x), box)
        g = _random_vector(rng, n)
        col = int(rng.integers(0, 3))
        s = rng.standard_normal((n, col))
        y = 2.0 * s + 0.1 * rng.standard_normal((n, col))
        sy = np.tril(s.T @ y)
        wt = np.linalg.cholesky(3.0 * np.eye(col) + 0.1).T.copy(order="F") if col else None
        cases.append((x, g, box, initial_where(box), s, y, sy, wt, 1.3 if col else 1.0, 1.0))
    with np.errstate(all="ignore"):
        fast = [generalized_cauchy_point(*case) for case in cases]
        monkeypatch.setattr(cauchy_module, "_scan_variables", lambda *args: None)
        monkeypatch.setattr(cauchy_module, "_walk_sorted_breakpoints", lambda *args: None)
        slow = [generalized_cauchy_point(*case) for case in cases]
    for a, b in zip(fast, slow, strict=True):
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert _bits(a.point) == _bits(b.point)
            assert _bits(a.c) == _bits(b.c)
            assert a.where.tobytes() == b.where.tobytes()



def _chained_rosenbrock(x: np.ndarray) -> tuple[float, np.ndarray]:
    head, tail = x[:-1], x[1:]
    inner = tail - head * head
    g = np.zeros_like(x)
    g[:-1] = -400.0 * head * inner - 2.0 * (1.0 - head)
    g[1:] += 200.0 * inner
    return float(np.sum(100.0 * inner * inner + (1.0 - head) ** 2)), g


@pytest.mark.parametrize("bounds", [None, (-2.0, 0.5)], ids=["unbounded", "bounded"])
def test_whole_runs_are_bitwise_the_same_on_both_kernel_paths(bounds: tuple[float, float] | None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numba")
    n = 300
    x0 = np.full(n, -1.2)
    x0[1::2] = 1.0
    box = None if bounds is None else [bounds] * n
    results = []
    monkeypatch.setattr(cauchy_module, "KERNEL_MIN_SIZE", 0)
    for enabled in (False, True):
        monkeypatch.setattr(cauchy_module, "KERNELS_ENABLED", enabled)
        results.append(minimize_lbfgsb(_chained_rosenbrock, x0, jac=True, bounds=box,
                                       options={"maxiter": 40, "maxcor": 5}))
    numpy_run, compiled_run = results
    assert numpy_run.nit == compiled_run.nit > 10
    assert (numpy_run.nfev, numpy_run.status) == (compiled_run.nfev, compiled_run.status)
    assert _bits(numpy_run.x) == _bits(compiled_run.x)
    assert _bits(numpy_run.fun) == _bits(compiled_run.fun)


def _loop_bmv(sy: np.ndarray, wt: np.ndarray, v: np.ndarray) -> np.ndarray | None:
    """``bmv`` of ``__lbfgsb.c`` as its loops run, entry by entry (the reference for the whole-array version)."""
    col = sy.shape[0]
    p = np.zeros(2 * col)
    p[col] = v[col]
    for i in range(1, col):
        total = 0.0
        for k in range(i):
            total = total + c_div(float(sy[i, k]) * float(v[k]), float(sy[k, k]))
        p[col + i] = float(v[col + i]) + total
    lower = cauchy_module.trtrs_upper(wt, p[col:].copy(), transpose=True)
    if lower is None:
        return None
    p[col:] = lower
    for i in range(col):
        p[i] = c_div(float(v[i]), c_sqrt(float(sy[i, i])))
    upper = cauchy_module.trtrs_upper(wt, p[col:].copy(), transpose=False)
    if upper is None:
        return None
    p[col:] = upper
    for i in range(col):
        p[i] = c_div(-float(p[i]), c_sqrt(float(sy[i, i])))
    for i in range(col):
        total = 0.0
        for k in range(i + 1, col):
            total = total + c_div(float(sy[k, i]) * float(p[col + k]), float(sy[i, i]))
        p[i] = float(p[i]) + total
    return p


def test_bmv_matches_the_loops_of_bmv() -> None:
    """On the diagonals the solver can hold: D = diag(sᵢᵀyᵢ) > 0 (the skip rule), or NaN after a non-finite step.
    (A zero or negative diagonal would give NaN of another sign: the loop's ``c_div``/``c_sqrt`` return +NaN where
    the hardware, and so C and numpy, return its default NaN.)"""
    rng = np.random.default_rng(17)
    for _ in range(300):
        col = int(rng.integers(1, 8))
        sy = _random_vector(rng, col * col).reshape(col, col)
        if rng.random() < 0.6:
            sy = np.tril(rng.standard_normal((col, col)))
        if rng.random() < 0.2:
            sy[rng.integers(0, col), rng.integers(0, col)] = rng.choice([0.0, -0.0, -1.0, math.nan])
        diagonal = np.where(np.isnan(sy.diagonal()), sy.diagonal(), np.abs(sy.diagonal()) + rng.uniform(0.1, 3.0, col))
        sy[np.arange(col), np.arange(col)] = diagonal
        wt = np.triu(rng.standard_normal((col, col))) + np.diag(rng.uniform(0.5, 2.0, col))
        if rng.random() < 0.1:
            wt[0, 0] = 0.0  # a zero pivot: the solve fails
        wt = np.asfortranarray(wt)
        v = _random_vector(rng, 2 * col)
        with np.errstate(all="ignore"):
            expected = _loop_bmv(sy, wt, v)
            got = cauchy_module.bmv(sy, wt, v)
        assert (expected is None) == (got is None)
        if expected is not None:
            assert _bits(got) == _bits(expected)


@pytest.mark.parametrize("lower, upper", [
    ([-math.inf, -2.0, -0.0, math.nan, 0.0], [math.inf, 0.5, 0.0, math.nan, math.inf]),
    (-1.0, 2.0),
    (np.array([0, -3, 1, 2, -5]), np.array([1, 4, 1, 9, 5])),
    (np.array([-1.5, 0.0, -math.inf, 2.0, 1e30], dtype=np.float32), math.inf),
])
def test_bound_arrays_are_what_scipys_round_trip_makes(lower: object, upper: object) -> None:
    """Bounds -> old pairs -> arrays (``standardize_bounds`` + ``old_bound_to_new``), made without the lists."""
    from scipy.optimize import Bounds
    from scipy.optimize._constraints import old_bound_to_new
    from scipy.optimize._minimize import standardize_bounds

    from lbfgs_verify.reference.scipy_compat import _bound_arrays

    x0 = np.zeros(5)
    with np.errstate(all="ignore"):
        bounds = Bounds(lower, upper)
        expected = np.array(old_bound_to_new(standardize_bounds(bounds, x0, "l-bfgs-b")))
        got = _bound_arrays(Bounds(lower, upper), x0)
    assert _bits(np.array([got.lower, got.upper])) == _bits(expected)


# --- the compiled phases of small problems (lbfgs_verify/reference/kernels.py) ----------------------------------


@pytest.fixture
def phases() -> Any:
    """The compiled phases (skipped without numba)."""
    pytest.importorskip("numba")
    compiled = small_kernels()
    if compiled is None:
        pytest.skip("compiled kernels are turned off (LBFGS_VERIFY_KERNELS=numpy)")
    return compiled


def test_compiled_blas_bindings_are_scipys_routines(phases: Any) -> None:
    """``ddot``/``dnrm2`` reached through cython_blas give the bits of scipy.linalg.blas (the same routines)."""
    rng = np.random.default_rng(11)
    for n in (1, 3, 8, 17, 100, 1001):
        a, b = _wide_range(rng, n), _wide_range(rng, n)
        assert _bits(phases.blas_dot(a, b)) == _bits(scipy_blas.ddot(a, b)), n
        assert _bits(phases.blas_nrm2(a)) == _bits(scipy_blas.dnrm2(a)), n


def test_compiled_norm_and_point_test_follow_numpy(phases: Any) -> None:
    """‖g‖∞ as numpy's max of abs (NaN wins, signed zeros), and the memo test as np.array_equal."""
    cases = [np.array([0.0, -0.0]), np.array([-3.0, 2.0, np.inf]), np.array([1.0, np.nan, 5.0]),
             np.array([-0.0]), _wide_range(np.random.default_rng(2), 50)]
    for g in cases:
        expected = float(np.max(np.abs(g)))
        assert _bits(phases.infinity_norm(g)) == _bits(expected) or (math.isnan(expected)
                                                                     and math.isnan(phases.infinity_norm(g)))
    a = np.array([0.0, 1.0, np.nan])
    for b in (np.array([-0.0, 1.0, np.nan]), np.array([0.0, 1.0, 2.0]), a.copy()):
        assert phases.same_point(a[:2], b[:2]) == np.array_equal(a[:2], b[:2])
        assert phases.same_point(a, b) == np.array_equal(a, b)


def _search_trials(phi: Any, step: float, maxls: int, *, compiled: Any | None, stpmax: float = 1e10) -> list[Any]:
    """The (task, step) sequence of one Moré–Thuente search on φ, by more_thuente or by the compiled kernel."""
    f0, g0 = phi(0.0)
    params = replace(LBFGSB_SEARCH_PARAMETERS, stpmax=stpmax)
    trials: list[Any] = []
    if compiled is None:
        outcome = dcsrch_start(f0, g0, step, params)
        while outcome.task is Task.FG and len(trials) < maxls:
            f, g = phi(outcome.stp)
            assert outcome.state is not None
            outcome = dcsrch_iterate(f, g, outcome.stp, outcome.state, params)
            trials.append((outcome.task.name, _bits(outcome.stp)))
        return trials
    names = {0: "FG", 1: "CONVERGENCE", 2: "WARNING"}
    state = np.array([0.0, 1.0, f0, g0, params.ftol * g0, 0.0, f0, g0, 0.0, f0, g0, 0.0, step + 4.0 * step,
                      params.stpmax - params.stpmin, (params.stpmax - params.stpmin) / 0.5])
    task = 0
    while task == 0 and len(trials) < maxls:
        f, g = phi(step)
        task, step = compiled.dcsrch_iterate(f, g, step, state, params.ftol, params.gtol, params.xtol,
                                             params.stpmin, params.stpmax)
        trials.append((names[task], _bits(step)))
    return trials


def test_compiled_line_search_takes_more_thuentes_steps(phases: Any) -> None:
    """The compiled dcsrch/dcstep give the same tasks and step bits as more_thuente's, trial by trial, on functions
    that exercise the four dcstep cases, stage 1's modified function, bisection and the step limits."""
    rng = np.random.default_rng(5)
    functions: list[Any] = [
        lambda t: ((t - 3.0) ** 2 - 9.0, 2.0 * (t - 3.0)),
        lambda t: ((t - 0.01) ** 2 - 1e-4, 2.0 * (t - 0.01)),
        lambda t: (-t + 0.5 * t ** 4, -1.0 + 2.0 * t ** 3),
        lambda t: (math.sin(5.0 * t) - 0.3 * t, 5.0 * math.cos(5.0 * t) - 0.3),
        lambda t: (-t, -1.0),  # unbounded below: extrapolates to stpmax
        lambda t: (-math.log1p(t) + 1e-3 * t * t, -1.0 / (1.0 + t) + 2e-3 * t),
    ]
    for _ in range(40):
        a, b, c = rng.uniform(0.1, 5.0), rng.uniform(0.01, 20.0), rng.uniform(-2.0, 2.0)
        functions.append(lambda t, a=a, b=b, c=c: (a * (t - b) ** 2 + c * math.sin(t) - c * t,
                                                   2.0 * a * (t - b) + c * math.cos(t) - c))
    for phi in functions:
        if phi(0.0)[1] >= 0.0:
            continue
        for step, stpmax in ((1.0, 1e10), (0.001, 1e10), (37.0, 1e10), (1.0, 2.5)):
            expected = _search_trials(phi, step, 30, compiled=None, stpmax=stpmax)
            assert _search_trials(phi, step, 30, compiled=phases, stpmax=stpmax) == expected


def _random_state(rng: np.random.Generator, n: int, pairs: int) -> LBFGSBState:
    """A state with ``pairs`` curvature pairs (sᵀy > 0) of wide-ranging entries, as matupd would store them."""
    x, g = torch.from_numpy(rng.standard_normal(n)), torch.from_numpy(_wide_range(rng, n) * 1e-3)
    state = LBFGSBState(x=x, f=1.0, g=g, n_iterations=pairs, n_evaluations=pairs + 1)
    for _ in range(pairs):
        s = rng.standard_normal(n)
        y = s * rng.uniform(0.5, 2.0, n) + 0.1 * rng.standard_normal(n)
        state.s_history.append(torch.from_numpy(s))
        state.y_history.append(torch.from_numpy(y))
        state.sy_history.append(float(s @ y))
        state.ss_history.append(float(scipy_blas.dnrm2(s)) ** 2)
    state.theta = float(np.dot(state.y_history[-1].numpy(), state.y_history[-1].numpy()) / state.sy_history[-1])
    return state


@pytest.mark.parametrize(("n", "pairs"), [(1, 1), (5, 3), (100, 10), (257, 7)])
def test_compiled_formk_subsm_and_formt_give_the_numpy_paths_bits(n: int, pairs: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """z of the quasi-Newton step (formk + subsm) and formt's factor: the same bits from the compiled phases as
    from the numpy path (each from a fresh table of products, and again after a new pair shifted the table)."""
    pytest.importorskip("numba")
    results: dict[bool, list[bytes]] = {}
    for enabled in (False, True):
        monkeypatch.setattr(cauchy_module, "KERNELS_ENABLED", enabled)
        assert (small_kernels() is not None) == enabled
        state = _random_state(np.random.default_rng(n + pairs), n, pairs)
        out = []
        for _ in range(2):
            z = lbfgsb_module._quasi_newton_point(state)
            factor = lbfgsb_module._middle_matrix_factor(state)
            out += [b"none" if z is None else z.numpy().tobytes(),
                    b"none" if factor is None else np.asarray(factor).tobytes()]
            s = torch.from_numpy(np.random.default_rng(len(out)).standard_normal(n))
            y = s * 1.5
            old = (state.s_history, state.y_history)
            state.s_history, state.y_history = [*state.s_history[1:], s], [*state.y_history[1:], y]
            state.sy_history = [*state.sy_history[1:], float(s.numpy() @ y.numpy())]
            state.ss_history = [*state.ss_history[1:], float(s.numpy() @ s.numpy())]
            lbfgsb_module._pair_products(state).push(old, (state.s_history, state.y_history))
        results[enabled] = out
    assert results[True] == results[False]
    assert b"none" not in results[True][:2]


def test_a_failed_factorization_is_a_failure_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """formt with θ < 0 (T not positive definite) gives no factor, formk with D < 0 (K's first block not positive
    definite) no point, on both paths."""
    pytest.importorskip("numba")
    for enabled in (False, True):
        monkeypatch.setattr(cauchy_module, "KERNELS_ENABLED", enabled)
        state = _random_state(np.random.default_rng(1), 20, 3)
        state.theta = -1e6
        assert lbfgsb_module._middle_matrix_factor(state) is None
        state = _random_state(np.random.default_rng(1), 20, 3)
        state.sy_history = [-1e9 * abs(v) for v in state.sy_history]
        assert lbfgsb_module._quasi_newton_point(state) is None


def _fenced_quadratic(x: np.ndarray) -> tuple[float, np.ndarray]:
    """Σ i·(x_i - 3)², and +inf with a NaN gradient outside |x_i| ≤ 1.1 (the quasi-Newton step overshoots there)."""
    if np.max(np.abs(x)) > 1.1:
        return math.inf, np.full_like(x, math.nan)
    weights = np.arange(1, x.size + 1, dtype=np.float64)
    return float(np.sum((x - 3.0) ** 2 * weights)), 2.0 * (x - 3.0) * weights


@pytest.mark.parametrize("bounds", [None, [(-1.5, 1.5), (None, 1.2), (-1.5, None), (None, None), (-1.0, 1.5),
                                           (-0.5, 0.5)]], ids=["unbounded", "bounded"])
def test_a_search_meeting_a_non_finite_value_gives_the_same_bits_on_both_paths(
        bounds: list[Any] | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial point where f = inf (the compiled search hands that step to more_thuente's own arithmetic): the same
    run on both paths, and scipy's."""
    pytest.importorskip("numba")
    from scipy.optimize import minimize

    x0 = np.array([0.0, 0.1, -0.2, 0.3, 0.5, 0.3])
    values: list[float] = []

    def counted(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = _fenced_quadratic(x)
        values.append(value)
        return value, gradient

    runs = []
    for enabled in (False, True):
        monkeypatch.setattr(cauchy_module, "KERNELS_ENABLED", enabled)
        values.clear()
        runs.append(minimize_lbfgsb(counted, x0, jac=True, bounds=bounds, options={"maxcor": 3}))
        assert any(not math.isfinite(v) for v in values)
    scipy_run = minimize(_fenced_quadratic, x0, jac=True, bounds=bounds, method="L-BFGS-B", options={"maxcor": 3})
    for run in runs:
        assert (run.nit, run.nfev, run.status) == (scipy_run.nit, scipy_run.nfev, scipy_run.status)
        assert _bits(run.x) == _bits(scipy_run.x) and _bits(run.fun) == _bits(scipy_run.fun)


def test_bounded_runs_with_every_kind_of_bound_are_scipys_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random boxes mixing lower-only, upper-only, two-sided, fixed and free variables (the branches of cauchy,
    freev, formk's updates and subsm's backtrack), chained Rosenbrock at n = 40: scipy's bits on both paths."""
    pytest.importorskip("numba")
    from scipy.optimize import minimize

    rng = np.random.default_rng(7)
    n = 40
    for trial in range(3):
        x0 = rng.uniform(-2.0, 2.0, n)
        lower, upper = rng.uniform(-1.5, 0.0, n), rng.uniform(0.2, 1.5, n)
        kinds = rng.integers(0, 5, n)
        bounds = [(None if k in (0, 2) else float(lo), None if k in (0, 1) else float(hi)) if k != 4
                  else (float(lo), float(lo)) for k, lo, hi in zip(kinds, lower, upper, strict=True)]
        scipy_run = minimize(_chained_rosenbrock, x0, jac=True, bounds=bounds, method="L-BFGS-B",
                             options={"maxcor": 4, "maxiter": 60})
        for enabled in (False, True):
            monkeypatch.setattr(cauchy_module, "KERNELS_ENABLED", enabled)
            run = minimize_lbfgsb(_chained_rosenbrock, x0, jac=True, bounds=bounds,
                                  options={"maxcor": 4, "maxiter": 60})
            assert (run.nit, run.nfev, run.status) == (scipy_run.nit, scipy_run.nfev, scipy_run.status), trial
            assert _bits(run.x) == _bits(scipy_run.x), (trial, enabled)
