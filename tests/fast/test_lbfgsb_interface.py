"""scipy's L-BFGS-B interface on our iteration: ``minimize_lbfgsb`` / ``fmin_l_bfgs_b`` against scipy 1.17 itself,
and the torch ``LBFGSB`` with bounds (scipy's iterates, bitwise resume).

Every comparison runs scipy's ``minimize(method="L-BFGS-B")`` / ``fmin_l_bfgs_b`` on the same call and compares
the results byte for byte (NaN positions equal), ``hess_inv`` by its stored pairs.
"""

from __future__ import annotations

import copy
import io
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, OptimizeWarning, minimize, rosen, rosen_der
from scipy.optimize import fmin_l_bfgs_b as scipy_fmin_l_bfgs_b

from lbfgs_verify.compare.bitwise import first_difference
from lbfgs_verify.reference import LBFGSB, fmin_l_bfgs_b, minimize_lbfgsb
from lbfgs_verify.reference.scipy_compat import DEPRECATED_OUTPUT_WARNING
from tests.fast.test_lbfgsb import SplitRosenbrock, _flat

FIELDS = ("x", "fun", "jac", "nit", "nfev", "njev", "status", "success", "message")
X0 = np.array([-1.2, 1.0, 0.5, -0.3])


def rosen_pair(x: np.ndarray) -> tuple[float, np.ndarray]:
    return rosen(x), rosen_der(x)


def differences(ours: Any, theirs: Any) -> list[str]:
    """The fields where two results differ in their bytes (NaN = NaN), ``hess_inv`` by its pairs."""
    bad = []
    if set(ours) - {"trace"} != set(theirs):
        bad.append(f"fields {sorted(set(ours) - {'trace'})} != {sorted(theirs)}")
    for key in (k for k in FIELDS if k in theirs):
        a, b = np.asarray(ours.get(key)), np.asarray(theirs[key])
        if a.shape != b.shape or a.tobytes() != b.tobytes():
            bad.append(f"{key}: {ours[key]!r} != {theirs[key]!r}")
    a_inv, b_inv = ours.get("hess_inv"), theirs.get("hess_inv")
    if (a_inv is None) != (b_inv is None):
        bad.append("hess_inv: one is None")
    elif a_inv is not None and (a_inv.sk.tobytes() != b_inv.sk.tobytes() or a_inv.yk.tobytes() != b_inv.yk.tobytes()
                                or a_inv.sk.shape != b_inv.sk.shape):
        bad.append(f"hess_inv pairs differ ({a_inv.sk.shape} vs {b_inv.sk.shape})")
    return bad


BOUNDS_CASES = {
    "none": None,
    "active-and-fixed": [(-1.0, 0.5), (None, 2.0), (0.0, 0.0), (-0.2, None)],
    "inactive-box": Bounds([-2.0] * 4, [2.0] * 4),
}


@pytest.mark.parametrize("jac", [None, "2-point", "3-point", "cs", True, "callable"])
@pytest.mark.parametrize("bounds", list(BOUNDS_CASES), ids=list(BOUNDS_CASES))
def test_every_jac_kind_with_and_without_bounds_is_scipys_result(jac: Any, bounds: str) -> None:
    fun = rosen_pair if jac is True else rosen
    jac_arg = rosen_der if jac == "callable" else jac
    options = {"maxcor": 3, "maxiter": 1e4, "maxfun": 15000.0}
    theirs = minimize(fun, X0, jac=jac_arg, bounds=BOUNDS_CASES[bounds], method="L-BFGS-B", options=options)
    ours = minimize_lbfgsb(fun, X0, jac=jac_arg, bounds=BOUNDS_CASES[bounds], options=options)
    assert differences(ours, theirs) == []
    assert theirs.nit > 5 and len(ours.trace) == ours.nit


def test_hess_inv_holds_scipys_ring_buffer_after_wrap_around() -> None:
    """maxcor 3 over ~40 iterations: the pairs sit in slot order (not age order) in scipy's ``hess_inv``."""
    theirs = minimize(rosen_pair, X0, jac=True, method="L-BFGS-B", options={"maxcor": 3})
    ours = minimize_lbfgsb(rosen_pair, X0, jac=True, options={"maxcor": 3})
    assert theirs.nit > 10 and differences(ours, theirs) == []
    assert type(ours.hess_inv) is type(theirs.hess_inv)
    v = np.arange(4.0)
    assert (ours.hess_inv @ v).tobytes() == (theirs.hess_inv @ v).tobytes()


def test_args_tol_and_callbacks_are_scipys() -> None:
    def shifted(x: np.ndarray, a: float, b: float) -> float:
        return float(rosen(x - a) + b)

    seen_ours: list[np.ndarray] = []
    seen_theirs: list[np.ndarray] = []
    theirs = minimize(shifted, X0, args=(0.1, 2.0), method="L-BFGS-B", tol=1e-3,
                      callback=lambda xk: seen_theirs.append(xk))
    ours = minimize_lbfgsb(shifted, X0, args=(0.1, 2.0), tol=1e-3, callback=lambda xk: seen_ours.append(xk))
    assert differences(ours, theirs) == []
    assert [a.tobytes() for a in seen_ours] == [b.tobytes() for b in seen_theirs] and len(seen_ours) == theirs.nit


@pytest.mark.parametrize("bounds", [None, [(-1.0, 0.5)] * 4])
def test_stop_iteration_in_the_callback_halts_with_status_99(bounds: Any) -> None:
    def halt(intermediate_result: Any) -> None:
        if intermediate_result.fun < 3.0:
            raise StopIteration

    theirs = minimize(rosen_pair, X0, jac=True, bounds=bounds, method="L-BFGS-B", callback=halt)
    ours = minimize_lbfgsb(rosen_pair, X0, jac=True, bounds=bounds, callback=halt)
    assert theirs.status == 99 and differences(ours, theirs) == []


def test_deprecated_and_unknown_options_warn_as_scipy_does() -> None:
    with pytest.warns(DeprecationWarning, match="`disp` and `iprint` options") as record:
        minimize_lbfgsb(rosen_pair, X0, jac=True, options={"disp": True, "iprint": 5})
    assert [str(w.message) for w in record] == [DEPRECATED_OUTPUT_WARNING] * 2
    with pytest.warns(OptimizeWarning, match="Unknown solver options: foo, bar"):
        minimize_lbfgsb(rosen_pair, X0, jac=True, options={"foo": 1, "bar": 2})
    with pytest.warns(DeprecationWarning, match="`disp` and `iprint` options"):
        minimize(rosen_pair, X0, jac=True, method="L-BFGS-B", options={"disp": True})


def test_float_limits_and_integer_only_options() -> None:
    for options in ({"maxiter": 2.5}, {"maxfun": 3.5}, {"maxiter": np.inf}):
        theirs = minimize(rosen_pair, X0, jac=True, method="L-BFGS-B", options=options)
        ours = minimize_lbfgsb(rosen_pair, X0, jac=True, options=options)
        assert differences(ours, theirs) == [], options
    with pytest.raises(TypeError):
        minimize_lbfgsb(rosen_pair, X0, jac=True, options={"maxcor": 5.0})
    with pytest.raises(ValueError, match="maxls must be positive"):
        minimize_lbfgsb(rosen_pair, X0, jac=True, options={"maxls": 0})


def test_bad_bounds_are_refused_like_scipy() -> None:
    with pytest.raises(ValueError, match="upper bound is less than"):
        minimize_lbfgsb(rosen, X0, bounds=[(1.0, 0.0)] * 4)
    with pytest.raises(ValueError, match="not compatible with the length"):
        minimize_lbfgsb(rosen, X0, bounds=[(0.0, 1.0)] * 3)
    everything_fixed = minimize_lbfgsb(rosen, X0, bounds=[(0.5, 0.5)] * 4)
    assert everything_fixed.success and everything_fixed.x.tolist() == [0.5] * 4


@pytest.mark.parametrize("kind", ["fprime", "pair", "approx"])
def test_fmin_l_bfgs_b_returns_scipys_tuple(kind: str) -> None:
    call: dict[str, Any] = {"bounds": [(-1.0, 0.5), (None, None), (0.0, 3.0), (None, 1.0)], "m": 4, "factr": 1e5}
    if kind == "fprime":
        args: tuple[Any, ...] = (rosen, X0, rosen_der)
    elif kind == "pair":
        args = (rosen_pair, X0)
    else:
        args = (rosen, X0)
        call["approx_grad"] = True
    x_t, f_t, d_t = scipy_fmin_l_bfgs_b(*args, **call)
    x_o, f_o, d_o = fmin_l_bfgs_b(*args, **call)
    assert x_o.tobytes() == x_t.tobytes() and np.float64(f_o).tobytes() == np.float64(f_t).tobytes()
    assert set(d_o) == set(d_t) == {"grad", "task", "funcalls", "nit", "warnflag"}
    assert d_o["grad"].tobytes() == d_t["grad"].tobytes()
    assert [d_o[k] for k in ("task", "funcalls", "nit", "warnflag")] == [d_t[k] for k in
                                                                         ("task", "funcalls", "nit", "warnflag")]


# --- the torch optimizer with bounds ---------------------------------------------------------------------

LOWER = np.array([-1.0, -0.5, 0.0, -np.inf, -1.0, 0.2, -np.inf])
UPPER = np.array([0.5, np.inf, 0.8, 0.3, 1.0, 0.9, np.inf])


def test_torch_optimizer_with_bounds_follows_scipy_iterate_for_iterate() -> None:
    problem = SplitRosenbrock()
    params = problem.params()
    optimizer = LBFGSB(params, max_iter_per_step=1, maxcor=4, bounds=(LOWER, UPPER))
    closure = problem.closure(params)
    iterates = []
    while optimizer.stopped is None:
        optimizer.step(closure)
        iterates.append(_flat(params))
    seen: list[np.ndarray] = []
    theirs = minimize(problem.numpy_fun(), problem.x0, jac=True, method="L-BFGS-B", options={"maxcor": 4},
                      bounds=list(zip(LOWER, UPPER, strict=True)),
                      callback=lambda intermediate_result: seen.append(intermediate_result.x.copy()))
    assert len(iterates) == theirs.nit > 5
    assert [a.tobytes() for a in iterates] == [b.tobytes() for b in seen]
    active = (iterates[-1] == LOWER) | (iterates[-1] == UPPER)
    assert active.any(), "the box is active at the solution"


def _torch_roundtrip(state_dict: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("transport", ["torch.save", "deepcopy"])
def test_bounded_resume_at_every_iteration_boundary_is_bitwise(transport: str) -> None:
    """Save after every iteration of a bounded run (maxcor 3: the memory wraps), load into a fresh optimizer with
    the same bounds, continue: every later state, value and parameter vector is the uninterrupted run's."""
    problem = SplitRosenbrock()
    params = problem.params()
    optimizer = LBFGSB(params, max_iter_per_step=1, maxcor=3, maxiter=25, bounds=(LOWER, UPPER))
    closure = problem.closure(params)
    states, values, flats = [optimizer.state_dict()], [], []
    while optimizer.stopped is None:
        values.append(optimizer.step(closure))
        states.append(optimizer.state_dict())
        flats.append(_flat(params))
    assert len(states) > 10
    for boundary in range(len(states) - 1):
        if transport == "torch.save":
            fresh_params = problem.params()
            resumed = LBFGSB(fresh_params, bounds=(LOWER, UPPER))
            resumed.load_state_dict(_torch_roundtrip(states[boundary]))
        else:
            source = LBFGSB(problem.params(), bounds=(LOWER, UPPER))
            source.load_state_dict(states[boundary])
            resumed = copy.deepcopy(source)
            fresh_params = resumed.param_groups[0]["params"]
        fresh_closure = problem.closure(fresh_params)
        for later in range(boundary, len(states) - 1):
            value = resumed.step(fresh_closure)
            difference = first_difference(resumed.state_dict(), states[later + 1], "state_dict")
            assert difference is None, f"resumed at {boundary}, iteration {later + 1}: {difference}"
            assert np.float64(value).tobytes() == np.float64(values[later]).tobytes()
            assert _flat(fresh_params).tobytes() == flats[later].tobytes()
        assert resumed.stopped is optimizer.stopped


def test_bounded_state_does_not_load_into_an_unbounded_optimizer() -> None:
    problem = SplitRosenbrock()
    params = problem.params()
    optimizer = LBFGSB(params, max_iter_per_step=1, bounds=(LOWER, UPPER))
    optimizer.step(problem.closure(params))
    plain = LBFGSB(problem.params(), max_iter_per_step=1)
    with pytest.raises(ValueError, match="with bounds"):
        plain.load_state_dict(optimizer.state_dict())
    assert plain.lbfgsb_state is None
    with pytest.raises(ValueError, match="lower has 3 entries"):
        LBFGSB(problem.params(), bounds=([0.0] * 3, [1.0] * 3))
    plain.step(problem.closure(plain.param_groups[0]["params"]))
    bounded = LBFGSB(problem.params(), bounds=(LOWER, UPPER))
    with pytest.raises(ValueError, match="without bounds"):
        bounded.load_state_dict(plain.state_dict())
    assert bounded.lbfgsb_state is None and plain.stopped is None


# --- bounded runs on generated boxes (hypothesis) --------------------------------------------------------


@st.composite
def boxed_rosenbrock(draw: st.DrawFn) -> tuple[np.ndarray, list[tuple[float | None, float | None]], int]:
    """A start in [-2, 2]ⁿ, per-variable bounds of every kind (none, lower, upper, both, fixed), a memory size."""
    n = draw(st.integers(2, 8))
    coordinate = st.floats(-2.0, 2.0, allow_nan=False).map(lambda v: round(v, 3))
    x0 = np.array(draw(st.lists(coordinate, min_size=n, max_size=n)))
    bounds: list[tuple[float | None, float | None]] = []
    for _ in range(n):
        kind = draw(st.sampled_from(["none", "lower", "upper", "both", "fixed"]))
        a = draw(coordinate)
        width = draw(st.floats(0.05, 2.0).map(lambda v: round(v, 3)))
        bounds.append({"none": (None, None), "lower": (a, None), "upper": (None, a), "both": (a, a + width),
                       "fixed": (a, a)}[kind])
    return x0, bounds, draw(st.integers(1, 6))


@settings(max_examples=25)
@given(case=boxed_rosenbrock())
def test_generated_boxes_are_bitwise_scipys(case: tuple[np.ndarray, list[Any], int]) -> None:
    """Any box, any start (projected into the box), any memory: iterates, counts and result are scipy's."""
    x0, bounds, maxcor = case
    seen_ours: list[bytes] = []
    seen_theirs: list[bytes] = []
    theirs = minimize(rosen_pair, x0, jac=True, bounds=bounds, method="L-BFGS-B", options={"maxcor": maxcor},
                      callback=lambda intermediate_result: seen_theirs.append(intermediate_result.x.tobytes()))
    ours = minimize_lbfgsb(rosen_pair, x0, jac=True, bounds=bounds, options={"maxcor": maxcor},
                           callback=lambda intermediate_result: seen_ours.append(intermediate_result.x.tobytes()))
    assert seen_ours == seen_theirs
    assert differences(ours, theirs) == []
