"""Tests of the scipy-compatible L-BFGS-B (lbfgs_verify.reference.lbfgsb / scipy_compat / scipy_trace).

Reference behaviour: scipy 1.17 ``scipy.optimize.minimize(method="L-BFGS-B")`` run here, recorded with
:func:`lbfgs_verify.compare.scipy_trace.record_scipy_lbfgsb`. Bit comparisons run single-threaded (conftest).
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from scipy.optimize import minimize

from lbfgs_verify.compare.bitwise import first_difference, shares_storage
from lbfgs_verify.compare.scipy_trace import compare_traces, record_scipy_lbfgsb, relative_difference
from lbfgs_verify.problems import complex_least_squares, mgh_problem, rosenbrock_problems, spd_quadratics
from lbfgs_verify.problems.base import Problem
from lbfgs_verify.reference.lbfgsb import LBFGSB, LBFGSBOptions, LBFGSBState, StopReason
from lbfgs_verify.reference.scipy_compat import minimize_lbfgsb

NumpyFun = Callable[[np.ndarray], tuple[float, np.ndarray]]


def rosenbrock(x: np.ndarray) -> tuple[float, np.ndarray]:
    """Chained Rosenbrock (scipy.optimize.rosen) and its gradient."""
    g = np.zeros_like(x)
    f = np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    g[:-1] += -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return float(f), g


def quadratic(x: np.ndarray) -> tuple[float, np.ndarray]:
    scales = np.arange(1.0, x.size + 1.0) ** 2
    return float(0.5 * np.sum(scales * (x - 1.0) ** 2)), scales * (x - 1.0)


def bounded_domain(x: np.ndarray) -> tuple[float, np.ndarray]:
    """A smooth bowl that is +inf (with a NaN gradient) outside |x_i| < 3: line searches meet overflow."""
    if np.any(np.abs(x) >= 3.0):
        return math.inf, np.full_like(x, math.nan)
    return rosenbrock(x)


def assert_same_as_scipy(fun: NumpyFun, x0: np.ndarray, options: dict[str, Any] | None = None, *,
                         label: str = "") -> None:
    """Our minimize_lbfgsb reproduces scipy: result fields, and the trace bit for bit."""
    ref, ref_trace = record_scipy_lbfgsb(fun, x0, options)
    ours = minimize_lbfgsb(fun, x0, options=options, jac=True)
    for key in ("status", "nit", "nfev", "njev", "message", "success"):
        assert ours[key] == ref[key], f"{label}: {key} ours {ours[key]!r} vs scipy {ref[key]!r}"
    assert ours.x.tobytes() == ref.x.tobytes(), f"{label}: final x differs ({relative_difference(ours.x, ref.x):.3g})"
    assert np.float64(ours.fun).tobytes() == np.float64(ref.fun).tobytes(), f"{label}: fun {ours.fun} vs {ref.fun}"
    comparison = compare_traces(ours.trace, ref_trace, first_k=len(ref_trace))
    assert comparison.counts_identical, f"{label}: {comparison.describe()}"
    for i, (a, b) in enumerate(zip(ours.trace, ref_trace, strict=True)):
        assert a["x"].tobytes() == b["x"].tobytes(), f"{label}: iterate {i + 1} differs from scipy's"


# --- scipy's own expectations ----------------------------------------------------------------------------------


class MaxEntropy:
    """scipy's ``CheckOptimize`` problem (``scipy/optimize/tests/test_optimize.py``): Berger et al.'s max-entropy."""

    F = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 1], [1, 0, 0], [1, 0, 0]])
    K = np.array([1.0, 0.3, 0.5])

    def __init__(self) -> None:
        self.function_calls = 0
        self.gradient_calls = 0
        self.points: list[np.ndarray] = []

    def func(self, x: np.ndarray) -> float:
        self.function_calls += 1
        log_pdot = self.F @ x
        self.points.append(np.copy(x))
        return float(np.log(np.sum(np.exp(log_pdot))) - self.K @ x)

    def grad(self, x: np.ndarray) -> np.ndarray:
        self.gradient_calls += 1
        log_pdot = self.F @ x
        p = np.exp(log_pdot - np.log(np.sum(np.exp(log_pdot))))
        return self.F.T @ p - self.K


def test_scipy_test_l_bfgs_b_expectations() -> None:
    """``TestOptimizeSimple.test_l_bfgs_b``: 7 function calls (5 by the solver + 2 in the assertion), 5 gradient
    calls, and the 4th and 5th evaluated points."""
    problem = MaxEntropy()
    result = minimize_lbfgsb(problem.func, np.zeros(3), jac=problem.grad, options={"maxiter": 1000})
    solution = np.array([0.0, -0.524869316, 0.487525860])
    np.testing.assert_allclose(problem.func(result.x), problem.func(solution), atol=1e-6)
    assert problem.function_calls == 7, problem.function_calls
    assert problem.gradient_calls == 5, problem.gradient_calls
    assert (result.nfev, result.njev) == (5, 5)
    np.testing.assert_allclose(problem.points[3:5], [[8.117083e-16, -5.196198e-01, 4.897617e-01],
                                                     [0.0, -0.52489628, 0.48753042]], atol=1e-14, rtol=1e-7)


# --- same as scipy: deterministic problems --------------------------------------------------------------------


@pytest.mark.parametrize(("n", "nit", "nfev"), [(2, 36, 44), (10, 71, 88)])
def test_rosenbrock_counts_and_trajectory_are_scipys(n: int, nit: int, nfev: int) -> None:
    x0 = np.array([-1.2 if i % 2 == 0 else 1.0 for i in range(n)])
    result = minimize_lbfgsb(rosenbrock, x0, jac=True)
    assert (result.nit, result.nfev) == (nit, nfev), "scipy 1.17.1's counts, measured"
    assert_same_as_scipy(rosenbrock, x0, label=f"rosenbrock n={n}")


def test_trace_records_every_iteration_with_its_evaluations() -> None:
    result = minimize_lbfgsb(rosenbrock, np.array([-1.2, 1.0]), jac=True)
    assert len(result.trace) == result.nit
    assert 1 + sum(entry["nfev"] for entry in result.trace) == result.nfev
    assert result.trace[-1]["x"].tobytes() == result.x.tobytes()
    assert set(result.trace[0]) == {"x", "f", "nfev"}


def test_overflowing_objective_is_handled_like_scipy() -> None:
    """f = inf with a NaN gradient outside a box: C fmax/fmin semantics in the line search, like scipy."""
    assert_same_as_scipy(bounded_domain, np.array([-2.0, 2.5]), label="bounded domain")
    assert_same_as_scipy(bounded_domain, np.array([2.9, -2.9, 1.0]), {"maxls": 3}, label="bounded domain maxls=3")


EDGE_OPTIONS = [
    {"maxiter": 0}, {"maxiter": 1}, {"maxiter": 2}, {"maxiter": 7},
    {"maxfun": 0}, {"maxfun": 1}, {"maxfun": 2}, {"maxfun": 9},
    {"maxls": 1}, {"maxls": 2}, {"maxls": 3},
    {"maxcor": 1}, {"maxcor": 2}, {"maxcor": 3},
    {"gtol": -1.0, "ftol": 0.0}, {"gtol": 1e3}, {"ftol": 1e-2}, {"maxcor": 2, "maxls": 2, "maxfun": 30},
]


@pytest.mark.parametrize("options", EDGE_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_limits_and_tolerances_match_scipy(options: dict[str, Any]) -> None:
    assert_same_as_scipy(rosenbrock, np.array([-1.2, 1.0, -1.2, 1.0]), options, label=str(options))


def test_start_at_a_stationary_point_stops_before_iterating() -> None:
    assert_same_as_scipy(quadratic, np.ones(3), label="start at optimum")
    assert minimize_lbfgsb(quadratic, np.ones(3), jac=True).nit == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [({"maxcor": 0}, "ERROR: M <= 0"), ({"ftol": -1.0}, "ERROR: FACTR < 0"),
     ({"maxcor": 0, "ftol": -1.0}, "ERROR: FACTR < 0")],
)
def test_input_errors_return_scipys_error_result(options: dict[str, Any], message: str) -> None:
    ref = minimize(quadratic, np.array([3.0, -2.0]), jac=True, method="L-BFGS-B", options=options)
    ours = minimize_lbfgsb(quadratic, np.array([3.0, -2.0]), options=options, jac=True)
    assert (ours.status, ours.message, ours.nit, ours.nfev, ours.fun) == (ref.status, ref.message, ref.nit, ref.nfev,
                                                                          ref.fun) == (2, message, 0, 1, 0.0)
    assert ours.x.tobytes() == ref.x.tobytes() and ours.jac.tobytes() == ref.jac.tobytes()


def test_maxls_must_be_positive_as_in_scipy() -> None:
    with pytest.raises(ValueError, match="maxls must be positive"):
        minimize(quadratic, np.ones(2) * 3, jac=True, method="L-BFGS-B", options={"maxls": 0})
    with pytest.raises(ValueError, match="maxls must be positive"):
        minimize_lbfgsb(quadratic, np.ones(2) * 3, options={"maxls": 0}, jac=True)


def test_callback_stop_iteration_halts_like_scipy() -> None:
    def halt_at_three(intermediate_result: Any) -> None:
        if intermediate_result.fun < 3.0:
            raise StopIteration

    x0 = np.array([-1.2, 1.0])
    ref = minimize(rosenbrock, x0, jac=True, method="L-BFGS-B", callback=halt_at_three)
    ours = minimize_lbfgsb(rosenbrock, x0, callback=halt_at_three, jac=True)
    assert (ours.nit, ours.nfev, ours.status, ours.message) == (ref.nit, ref.nfev, ref.status, ref.message)
    assert ours.x.tobytes() == ref.x.tobytes()
    seen: list[np.ndarray] = []
    minimize_lbfgsb(rosenbrock, x0, callback=lambda xk: seen.append(xk), options={"maxiter": 3}, jac=True)
    assert len(seen) == 3, "a one-argument legacy callback gets x once per iteration"


# --- same as scipy: hypothesis ------------------------------------------------------------------------------


def _assert_tracks_scipy(problem: Problem, rtol: float = 1e-10, first_k: int = 10) -> None:
    fun, x0 = problem.numpy_fun(), problem.flat_start()
    ref, ref_trace = record_scipy_lbfgsb(fun, x0)
    ours = minimize_lbfgsb(fun, x0, jac=True)
    comparison = compare_traces(ours.trace, ref_trace, first_k=first_k)
    assert ours.status == ref.status, f"{problem.name}: status {ours.status} vs scipy {ref.status}"
    assert comparison.counts_identical, f"{problem.name}: {comparison.describe()}"
    assert comparison.max_relative_iterate_difference <= rtol, f"{problem.name}: {comparison.describe()}"


@settings(max_examples=15)
@given(problem=spd_quadratics(min_n=1, max_n=12, max_log10_condition=5))
def test_spd_quadratics_track_scipy(problem: Problem) -> None:
    _assert_tracks_scipy(problem)


@settings(max_examples=15)
@given(problem=rosenbrock_problems(min_n=2, max_n=8, max_offset=1.0))
def test_rosenbrock_from_random_starts_tracks_scipy(problem: Problem) -> None:
    _assert_tracks_scipy(problem)


# --- the torch optimizer ------------------------------------------------------------------------------------------


class SplitRosenbrock:
    """Chained Rosenbrock over two parameter tensors (shapes (2, 2) and (3,)): the optimizer flattens them."""

    x0 = np.array([-1.2, 1.0, -1.2, 1.0, -1.2, 1.0, -1.2])

    def params(self) -> list[torch.Tensor]:
        start = torch.from_numpy(self.x0.copy())
        return [start[:4].reshape(2, 2).clone().requires_grad_(True), start[4:].clone().requires_grad_(True)]

    def closure(self, params: list[torch.Tensor]) -> Callable[[], torch.Tensor]:
        def closure() -> torch.Tensor:
            for p in params:
                p.grad = None
            x = torch.cat([p.reshape(-1) for p in params])
            loss = torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
            loss.backward()
            return loss

        return closure

    def numpy_fun(self) -> NumpyFun:
        def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
            t = torch.from_numpy(x.copy()).requires_grad_(True)
            loss = torch.sum(100.0 * (t[1:] - t[:-1] ** 2) ** 2 + (1.0 - t[:-1]) ** 2)
            loss.backward()
            return float(loss.detach()), t.grad.numpy().copy()

        return fun


def _flat(params: list[torch.Tensor]) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in params]).numpy().copy()


def _run_per_iteration(problem: SplitRosenbrock, **options: Any) -> tuple[LBFGSB, list[np.ndarray], list[int]]:
    params = problem.params()
    optimizer = LBFGSB(params, max_iter_per_step=1, **options)
    closure = problem.closure(params)
    calls = 0

    def counted() -> torch.Tensor:
        nonlocal calls
        calls += 1
        return closure()

    iterates, evaluations = [], []
    while optimizer.stopped is None:
        before = calls
        optimizer.step(counted)
        iterates.append(_flat(params))
        evaluations.append(calls - before)
    return optimizer, iterates, evaluations


def test_optimizer_iterates_are_minimize_lbfgsbs_and_scipys() -> None:
    problem = SplitRosenbrock()
    optimizer, iterates, evaluations = _run_per_iteration(problem)
    reference = minimize_lbfgsb(problem.numpy_fun(), problem.x0, jac=True)
    _, scipy_trace = record_scipy_lbfgsb(problem.numpy_fun(), problem.x0)
    state = optimizer.lbfgsb_state
    assert state is not None and state.stop in (StopReason.FTOL, StopReason.GTOL)
    assert len(iterates) == reference.nit == len(scipy_trace)
    for i, (x, entry, scipy_entry) in enumerate(zip(iterates, reference.trace, scipy_trace, strict=True)):
        assert x.tobytes() == entry["x"].tobytes() == scipy_entry["x"].tobytes(), f"iteration {i + 1}"
    evaluations[0] -= 1  # the first step also evaluated x0
    assert evaluations == [entry["nfev"] for entry in scipy_trace]
    assert state.n_evaluations == reference.nfev and state.n_iterations == reference.nit


def test_complex_and_mixed_parameters_follow_scipy() -> None:
    """A complex parameter is optimized as its real view (interleaved real/imag), like scipy on Problem.numpy_fun."""
    problem = complex_least_squares()
    params = problem.make_params()
    assert any(p.is_complex() for p in params) and len(params) > 1
    optimizer = LBFGSB(params, max_iter_per_step=1)
    closure = problem.make_closure(params)
    _, scipy_trace = record_scipy_lbfgsb(problem.numpy_fun(), problem.flat_start())
    for i, entry in enumerate(scipy_trace):
        optimizer.step(closure)
        views = [torch.view_as_real(p) if p.is_complex() else p for p in params]
        x = torch.cat([v.detach().reshape(-1) for v in views]).numpy()
        assert x.tobytes() == entry["x"].tobytes(), f"{problem.name}: iteration {i + 1} differs from scipy's"
    assert optimizer.stopped is not None


def test_float32_parameters_hold_the_rounded_float64_iterate() -> None:
    problem = mgh_problem(1, dtype=torch.float32)
    params = problem.make_params()
    optimizer = LBFGSB(params)
    value = optimizer.step(problem.make_closure(params))
    state = optimizer.lbfgsb_state
    assert state is not None and optimizer.stopped is not None and value == state.f
    assert params[0].dtype == torch.float32 and state.x.dtype == torch.float64
    assert torch.equal(params[0].detach(), state.x.to(torch.float32))


def test_one_step_runs_to_the_end_and_a_stopped_optimizer_does_nothing() -> None:
    problem = SplitRosenbrock()
    params = problem.params()
    optimizer = LBFGSB(params)
    closure = problem.closure(params)
    value = optimizer.step(closure)
    reference = minimize_lbfgsb(problem.numpy_fun(), problem.x0, jac=True)
    assert optimizer.stopped is not None and optimizer.lbfgsb_state is not None
    assert optimizer.lbfgsb_state.n_iterations == reference.nit and value == reference.fun
    assert _flat(params).tobytes() == reference.x.tobytes()
    saved = optimizer.state_dict()

    def must_not_run() -> torch.Tensor:
        raise AssertionError("a stopped optimizer called the closure")

    assert optimizer.step(must_not_run) == value
    assert first_difference(optimizer.state_dict(), saved) is None


def test_maxiter_counts_over_the_whole_run() -> None:
    problem = SplitRosenbrock()
    optimizer, iterates, _ = _run_per_iteration(problem, maxiter=5)
    assert len(iterates) == 5 and optimizer.stopped is StopReason.MAXITER


def test_constructor_rejects_invalid_options() -> None:
    params = SplitRosenbrock().params()
    for bad in ({"maxcor": 0}, {"maxls": 0}, {"ftol": -1.0}, {"max_iter_per_step": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LBFGSB(params, **bad)
    with pytest.raises(TypeError, match="maxiter"):
        LBFGSB(params, maxiter=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="option 'maxcor'"):
        LBFGSBOptions(maxcor=True)


# --- resume ------------------------------------------------------------------------------------------------------


def _torch_roundtrip(state_dict: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _bitwise(a: Any, b: Any) -> str | None:
    difference = first_difference(a, b, "state_dict")
    return None if difference is None else str(difference)


@pytest.mark.parametrize("transport", ["torch.save", "deepcopy"])
def test_resume_at_every_iteration_boundary_is_bitwise(transport: str) -> None:
    """Save after every iteration, load into a fresh optimizer on fresh parameters, continue: every later state,
    the parameters and the returned values are the uninterrupted run's, byte for byte. (maxcor = 3 so that the
    memory wraps around; maxiter = 30 keeps the O(iterations²) test quick and ends the run on MAXITER.)"""
    problem = SplitRosenbrock()
    params = problem.params()
    optimizer = LBFGSB(params, max_iter_per_step=1, maxcor=3, maxiter=30)
    closure = problem.closure(params)
    states, values, flats = [optimizer.state_dict()], [], []
    while optimizer.stopped is None:
        values.append(optimizer.step(closure))
        states.append(optimizer.state_dict())
        flats.append(_flat(params))
    assert len(states) == 31 and optimizer.stopped is StopReason.MAXITER

    for boundary in range(len(states) - 1):
        if transport == "torch.save":
            saved = _torch_roundtrip(states[boundary])
            fresh_params = problem.params()
            resumed = LBFGSB(fresh_params)  # the options come from the saved param_groups
            resumed.load_state_dict(saved)
        else:
            source_params = problem.params()
            source = LBFGSB(source_params)
            source.load_state_dict(states[boundary])
            resumed = copy.deepcopy(source)
            fresh_params = resumed.param_groups[0]["params"]
        fresh_closure = problem.closure(fresh_params)
        for later in range(boundary, len(states) - 1):
            value = resumed.step(fresh_closure)
            where = f"resumed at boundary {boundary}, after iteration {later + 1} ({transport})"
            assert _bitwise(resumed.state_dict(), states[later + 1]) is None, (
                f"{where}: {_bitwise(resumed.state_dict(), states[later + 1])}")
            assert np.float64(value).tobytes() == np.float64(values[later]).tobytes(), f"{where}: returned value"
            assert _flat(fresh_params).tobytes() == flats[later].tobytes(), f"{where}: parameters"
        assert resumed.stopped is optimizer.stopped


def test_state_dict_is_a_snapshot_of_plain_values() -> None:
    problem = SplitRosenbrock()
    params = problem.params()
    optimizer = LBFGSB(params, max_iter_per_step=1)
    closure = problem.closure(params)
    assert optimizer.state_dict()["state"] == {}
    for _ in range(4):
        optimizer.step(closure)
    saved = optimizer.state_dict()
    inner = saved["state"][0]
    assert set(inner) == {"x", "f", "g", "n_iterations", "n_evaluations", "s_history", "y_history", "sy_history",
                          "ss_history", "theta", "stop", "n_updates", "updated", "where", "free_index", "n_free",
                          "inner_products"}
    assert type(inner["f"]) is float and type(inner["theta"]) is float and type(inner["n_iterations"]) is int
    assert all(type(v) is float for v in inner["sy_history"] + inner["ss_history"])
    assert not shares_storage(saved, optimizer.lbfgsb_state.__dict__), "state_dict aliases the live state"
    frozen = copy.deepcopy(saved)
    inner["x"].add_(1.0)  # editing the returned dict does not reach the optimizer
    inner["s_history"][0].zero_()
    assert _bitwise(optimizer.state_dict(), frozen) is None, "editing a returned dict changed the optimizer"
    later = optimizer.state_dict()
    later_copy = copy.deepcopy(later)
    optimizer.step(closure)  # stepping does not change a returned dict
    assert _bitwise(later, later_copy) is None, "a step changed a previously returned state_dict"
    assert _bitwise(optimizer.state_dict(), later) is not None, "the state moved on"


def test_loaded_optimizer_shares_no_tensor_with_the_dict() -> None:
    problem = SplitRosenbrock()
    params = problem.params()
    optimizer = LBFGSB(params, max_iter_per_step=1)
    closure = problem.closure(params)
    for _ in range(5):
        optimizer.step(closure)
    saved = optimizer.state_dict()
    fresh = LBFGSB(problem.params(), max_iter_per_step=1)
    fresh.load_state_dict(saved)
    assert fresh.lbfgsb_state is not None
    assert not shares_storage(fresh.lbfgsb_state.__dict__, saved)
    assert _bitwise(fresh.state_dict(), saved) is None


def _corrupt(saved: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(saved)
    if key.startswith("group."):
        broken["param_groups"][0][key.removeprefix("group.")] = value
    elif value is _DELETE:
        del broken["state"][0][key]
    else:
        broken["state"][0][key] = value
    return broken


_DELETE = object()


def _bad_entries(inner: dict[str, Any]) -> list[tuple[str, Any, type[Exception], str]]:
    n = inner["x"].numel()
    return [
        ("x", inner["x"].float(), TypeError, "'x'"),
        ("x", torch.zeros(n + 1, dtype=torch.float64), ValueError, "'x'"),
        ("x", inner["x"].tolist(), TypeError, "'x'"),
        ("g", torch.zeros(n, 1, dtype=torch.float64), ValueError, "'g'"),
        ("f", 1, TypeError, "'f'"),
        ("n_iterations", 2.0, TypeError, "'n_iterations'"),
        ("n_iterations", -1, ValueError, "'n_iterations'"),
        ("n_evaluations", 0, ValueError, "'n_evaluations'"),
        ("s_history", inner["s_history"][:-1], ValueError, "equal lengths"),
        ("s_history", tuple(inner["s_history"]), TypeError, "'s_history'"),
        ("sy_history", [*inner["sy_history"][:-1], -1.0], ValueError, "'sy_history'"),
        ("theta", 0.0, ValueError, "'theta'"),
        ("stop", "DONE", ValueError, "'stop'"),
        ("stop", 3, TypeError, "'stop'"),
        ("n_evaluations", _DELETE, ValueError, "missing"),
        ("unexpected", 1, ValueError, "unknown keys"),
        ("group.maxcor", 2, ValueError, "maxcor"),
        ("group.maxls", "20", TypeError, "'maxls'"),
        ("group.ftol", math.nan, ValueError, "'ftol'"),
        ("group.max_iter_per_step", 0, ValueError, "'max_iter_per_step'"),
    ]


def test_load_state_dict_validates_every_key_and_changes_nothing_on_failure() -> None:
    problem = SplitRosenbrock()
    params = problem.params()
    source = LBFGSB(params, max_iter_per_step=1)
    closure = problem.closure(params)
    for _ in range(6):
        source.step(closure)
    saved = source.state_dict()
    assert len(saved["state"][0]["s_history"]) >= 3

    target = LBFGSB(problem.params(), max_iter_per_step=1, maxcor=7)
    target_closure = problem.closure(target.param_groups[0]["params"])
    target.step(target_closure)
    before = target.state_dict()
    for key, value, error, fragment in _bad_entries(saved["state"][0]):
        with pytest.raises(error) as caught:
            target.load_state_dict(_corrupt(saved, key, value))
        assert fragment in str(caught.value), f"{key}: the error does not name the key: {caught.value}"
        assert _bitwise(target.state_dict(), before) is None, f"{key}: a failed load changed the optimizer"
    with pytest.raises(ValueError, match="lists 2 parameters, the optimizer has 1"):
        LBFGSB([torch.zeros(7, dtype=torch.float64, requires_grad=True)]).load_state_dict(saved)
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        LBFGSB([torch.zeros(2, 2, requires_grad=True), torch.zeros(4, requires_grad=True)]).load_state_dict(saved)

    target.load_state_dict(saved)  # the intact dict loads, with its options
    assert target.param_groups[0]["maxcor"] == 10
    assert _bitwise(target.state_dict(), saved) is None


@pytest.mark.parametrize(("key", "named"), [("x", "'x'"), ("y_history", "'y_history[1]'"),
                                            ("ss_history", "'ss_history[1]'"), ("theta", "'theta'")])
def test_non_finite_values_load_with_a_warning_naming_the_key(key: str, named: str) -> None:
    """The references' load policy (checkpoint.warn_non_finite): NaN/inf, as a diverged run leaves them, load."""
    problem = SplitRosenbrock()
    params = problem.params()
    source = LBFGSB(params, max_iter_per_step=1)
    closure = problem.closure(params)
    for _ in range(3):
        source.step(closure)
    saved = source.state_dict()
    inner = saved["state"][0]
    assert len(inner["s_history"]) >= 2
    n = inner["x"].numel()
    bad = {"x": torch.full((n,), math.nan, dtype=torch.float64),
           "y_history": [inner["y_history"][0], torch.full((n,), math.inf, dtype=torch.float64),
                         *inner["y_history"][2:]],
           "ss_history": [inner["ss_history"][0], math.nan, *inner["ss_history"][2:]],
           "theta": -math.inf}[key]
    target = LBFGSB(problem.params(), max_iter_per_step=1)
    with pytest.warns(RuntimeWarning, match="non-finite") as caught:
        target.load_state_dict(_corrupt(saved, key, bad))
    assert named in str(caught[0].message)
    assert _bitwise(target.state_dict(), _corrupt(saved, key, bad)) is None


def test_memory_state_is_typed_and_documented() -> None:
    documented = LBFGSBState.__doc__ or ""
    for name in LBFGSBState.__dataclass_fields__:
        assert f"{name}:" in documented, f"LBFGSBState.{name} is not documented"


def test_torch_cumsum_sums_in_order() -> None:
    """The kernel assumption behind the C loops: float64 cumsum on the CPU accumulates strictly left to right."""
    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 15, 16, 17, 255, 4096):
        terms = torch.from_numpy(rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 8, n))
        total = 0.0
        for value in terms.tolist():
            total = total + value
        assert float(torch.cumsum(terms, 0)[-1]) == total, f"n={n}"
