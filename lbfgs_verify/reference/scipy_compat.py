"""scipy's L-BFGS-B interface on our iteration: ``minimize_lbfgsb`` and ``fmin_l_bfgs_b``.

``minimize_lbfgsb(fun, x0, args=(), jac=None, bounds=None, tol=None, callback=None, options=None)`` takes and
returns what ``scipy.optimize.minimize(fun, x0, args, method="L-BFGS-B", jac=jac, bounds=bounds, tol=tol,
callback=callback, options=options)`` does in scipy 1.17 (``scipy/optimize/_minimize.py::minimize`` and
``_lbfgsb_py.py::_minimize_lbfgsb``), and ``fmin_l_bfgs_b`` is scipy's function of that name (same signature,
same ``(x, f, d)`` return). The iterations are those of :mod:`lbfgs_verify.reference.lbfgsb` (the code
:class:`~lbfgs_verify.reference.lbfgsb.LBFGSB` runs), with or without bounds.

What comes from scipy itself, so that the bits are scipy's: the objective wrapper ``ScalarFunction`` (built by
``scipy.optimize._optimize._prepare_scalar_function``: evaluation counting, memoization of the last point, the
finite-difference gradients of ``jac=None`` (forward differences with the absolute step ``eps``) and of
``'2-point'``/``'3-point'``/``'cs'`` (``approx_derivative`` with ``finite_diff_rel_step``, kept inside the
bounds, optionally mapped over ``workers``); ``MemoizeJac`` for ``jac=True``; ``minimize``'s handling of bounds
(``Bounds`` or pairs, the check against x0, the removal of variables fixed by equal bounds when derivatives are
estimated) and of callbacks (``callback(intermediate_result)`` or legacy ``callback(xk)``, a ``StopIteration``
halts with status 99); and ``LbfgsInvHessProduct`` for ``hess_inv``. Everything else — the options, their
defaults, ``tol`` → ``ftol``/``gtol``, the deprecation warnings of ``disp``/``iprint``, the ``OptimizeWarning``
for unknown options, the status and messages — is written here after scipy's code.

The result has scipy's fields (``x, fun, jac, nit, nfev, njev, status, success, message, hess_inv``) and a
``trace``: one dict per iteration with the accepted iterate ``"x"`` (numpy copy), ``"f"`` and ``"nfev"``
(objective calls that iteration used, finite-difference calls included, as scipy counts them).

``maxiter``/``maxfun`` may be floats (compared as numbers, as scipy does); ``maxcor``/``maxls`` given as floats
raise ``TypeError`` after the evaluation at x0, as in scipy (there from its workspace allocation and ``setulb``).
"""

from __future__ import annotations

import inspect
import math
import numbers
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy.optimize import Bounds, LbfgsInvHessProduct, OptimizeResult, OptimizeWarning
from scipy.optimize._constraints import old_bound_to_new
from scipy.optimize._differentiable_functions import FD_METHODS
from scipy.optimize._minimize import (
    _add_to_array,
    _optimize_result_for_equal_bounds,
    _Patch_Callback_Equal_Variables,
    _remove_from_bounds,
    _Remove_From_Func,
    _validate_bounds,
    standardize_bounds,
)
from scipy.optimize._optimize import MemoizeJac, _call_callback_maybe_halt, _prepare_scalar_function, _wrap_callback
from torch import Tensor

from lbfgs_verify.reference.box import BoxBounds
from lbfgs_verify.reference.lbfgsb import (
    IterationRecord,
    LBFGSBOptions,
    LBFGSBState,
    StopReason,
    iterate,
    start,
)

OPTION_NAMES = ("disp", "maxcor", "ftol", "gtol", "eps", "maxfun", "maxiter", "iprint", "maxls",
                "finite_diff_rel_step", "workers")
"""The options of scipy 1.17's ``_minimize_lbfgsb`` (``callback`` comes as its own argument)."""

DEPRECATED_OUTPUT_WARNING = ("scipy.optimize: The `disp` and `iprint` options of the L-BFGS-B solver are "
                             "deprecated and will be removed in SciPy 1.18.0.")
"""scipy 1.17's text for the ``DeprecationWarning`` of ``disp`` and ``iprint`` (one warning per option given)."""

CALLBACK_STOP_MESSAGE = "`callback` raised `StopIteration`."
_NOT_GIVEN = object()


def _signed_limit(name: str, value: Any) -> float:
    """``maxiter``/``maxfun``: scipy compares them as numbers (``nit >= maxiter``, ``nfev > maxfun``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise TypeError(f"option {name!r} must be a number, got {value!r}")
    return float(value)


def _integer_option(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"option {name!r} must be an integer, got {type(value).__name__} {value!r}")
    return int(value)


def _iterations_limit(value: float) -> int:
    """The int n with (nit >= n) ⇔ (nit >= value) for integers nit ≥ 0."""
    return sys.maxsize if value == math.inf else max(math.ceil(value), -sys.maxsize)


def _evaluations_limit(value: float) -> int:
    """The int n with (nfev > n) ⇔ (nfev > value) for integers nfev."""
    return sys.maxsize if value == math.inf else max(math.floor(value), -sys.maxsize)


def _scipy_status(state: LBFGSBState, nfev: int, maxfun: float, maxiter: float) -> int:
    """``_minimize_lbfgsb``'s ``warnflag``: 0 converged, 1 an evaluation/iteration limit reached, else 2."""
    if state.stop is not None and state.stop.converged:
        return 0
    if nfev > maxfun or state.n_iterations >= maxiter:
        return 1
    return 2


def _inverse_hessian(state: LBFGSBState | None, maxcor: int, n: int) -> LbfgsInvHessProduct:
    """scipy's ``hess_inv``: the pairs as the ring buffer holds them (slot order, not age), the first
    min(updates, maxcor) slots, where updates counts the pairs added since the last memory reset (``isave[30]``)."""
    if state is None or state.n_updates == 0 or maxcor <= 0:
        return LbfgsInvHessProduct(np.zeros((0, n)), np.zeros((0, n)))
    col = min(state.n_updates, maxcor)
    head = (state.n_updates - maxcor) % maxcor if state.n_updates > maxcor else 0
    s_slots = np.zeros((col, n))
    y_slots = np.zeros((col, n))
    for age, (s, y) in enumerate(zip(state.s_history, state.y_history, strict=True)):
        slot = (head + age) % maxcor
        s_slots[slot] = s.numpy()
        y_slots[slot] = y.numpy()
    return LbfgsInvHessProduct(s_slots, y_slots)


class _BoundArrays(NamedTuple):
    """Bounds as ``_minimize_lbfgsb`` holds them after ``old_bound_to_new``: float64 arrays, ±inf for no bound."""

    lower: np.ndarray
    upper: np.ndarray


def _bound_arrays(bounds: Bounds, x0: np.ndarray) -> Any:
    """The arrays that ``standardize_bounds(bounds, x0, "l-bfgs-b")`` followed by ``_minimize_lbfgsb``'s
    ``old_bound_to_new`` make of a ``Bounds`` (scipy ``_minimize.py``, ``_constraints.py``), without the round trip
    through a Python list of n pairs: ``new_bounds_to_old`` keeps ``float(x)`` where x > -inf (lower) or x < inf
    (upper) and puts ``None`` elsewhere (NaN included), which ``old_bound_to_new`` reads as -inf / +inf. Bounds of
    another dtype than a real number take scipy's own route."""
    lb, ub = np.asarray(bounds.lb), np.asarray(bounds.ub)
    if lb.dtype.kind not in "fiu" or ub.dtype.kind not in "fiu":
        return standardize_bounds(bounds, x0, "l-bfgs-b")
    n = x0.shape[0]
    try:
        lb = np.broadcast_to(lb, n).astype(np.float64)
        ub = np.broadcast_to(ub, n).astype(np.float64)
    except ValueError:
        return standardize_bounds(bounds, x0, "l-bfgs-b")
    with np.errstate(invalid="ignore"):
        return _BoundArrays(np.where(lb > -np.inf, lb, -np.inf), np.where(ub < np.inf, ub, np.inf))


def _run(
    fun: Callable[..., Any],
    x0: Any,
    args: tuple[Any, ...] = (),
    jac: Any = None,
    bounds: Any = None,
    *,
    callback: Callable[..., Any] | None = None,
    options: Mapping[str, Any],
) -> OptimizeResult:
    """``_minimize_lbfgsb``: ``fun``/``jac`` already prepared, ``callback`` already wrapped (scipy's
    ``_wrap_callback``), ``bounds`` old-style pairs or ``None``."""
    unknown = [k for k in options if k not in OPTION_NAMES]
    if unknown:
        warnings.warn(f"Unknown solver options: {', '.join(map(str, unknown))}", OptimizeWarning, stacklevel=3)
    get = {k: options.get(k, _NOT_GIVEN) for k in OPTION_NAMES}
    defaults = LBFGSBOptions()

    def value(name: str, default: Any) -> Any:
        return default if get[name] is _NOT_GIVEN else get[name]

    maxcor = value("maxcor", defaults.maxcor)
    ftol = value("ftol", defaults.ftol)
    gtol = value("gtol", defaults.gtol)
    eps = value("eps", 1e-8)
    maxfun = _signed_limit("maxfun", value("maxfun", defaults.maxfun))
    maxiter = _signed_limit("maxiter", value("maxiter", defaults.maxiter))
    maxls = value("maxls", defaults.maxls)
    factr = ftol / np.finfo(float).eps

    x0 = np.asarray(x0).ravel()
    (n,) = x0.shape
    for name in ("disp", "iprint"):
        if get[name] is not _NOT_GIVEN:
            warnings.warn(DEPRECATED_OUTPUT_WARNING, DeprecationWarning, stacklevel=3)
    box = None
    new_bounds = None
    if bounds is not None:
        if isinstance(bounds, _BoundArrays):
            if bounds.lower.shape[0] != n:
                raise ValueError("length of x0 != length of bounds")
            new_bounds = np.array([bounds.lower, bounds.upper])
        else:
            if len(bounds) != n:
                raise ValueError("length of x0 != length of bounds")
            new_bounds = np.array(old_bound_to_new(bounds))
        if (new_bounds[0] > new_bounds[1]).any():
            raise ValueError("LBFGSB - one of the lower bounds is greater than an upper bound.")
        x0 = np.clip(x0, new_bounds[0], new_bounds[1])
        box = BoxBounds.from_arrays(new_bounds[0], new_bounds[1])
    sf = _prepare_scalar_function(fun, x0, jac=jac, args=args, epsilon=eps, bounds=new_bounds,
                                  finite_diff_rel_step=get["finite_diff_rel_step"] if get[
                                      "finite_diff_rel_step"] is not _NOT_GIVEN else None,
                                  workers=get["workers"] if get["workers"] is not _NOT_GIVEN else None)
    maxcor = _integer_option("maxcor", maxcor)
    if not maxls > 0:
        raise ValueError("maxls must be positive.")
    maxls = _integer_option("maxls", maxls)
    x = np.array(x0, dtype=np.float64)

    # errclb: the last failing check names the error; the run stops before its first step.
    error = ""
    if n <= 0:
        error = "N <= 0"
    if maxcor <= 0:
        error = "M <= 0"
    if factr < 0:
        error = "FACTR < 0"
    if error:
        status = 1 if (sf.nfev > maxfun or maxiter <= 0) else 2
        return OptimizeResult(fun=np.array(0.0), jac=np.zeros(n), nfev=sf.nfev, njev=sf.ngev, nit=0, status=status,
                              message=f"ERROR: {error}", x=x, success=False,
                              hess_inv=_inverse_hessian(None, maxcor, n), trace=[])

    core_options = LBFGSBOptions(maxcor=maxcor, ftol=float(ftol),
                                 gtol=float(gtol), maxiter=_iterations_limit(maxiter),
                                 maxfun=_evaluations_limit(maxfun), maxls=maxls)
    last_value: Any = 0.0

    def evaluate(point: Tensor) -> tuple[float, Tensor]:
        nonlocal last_value
        f, g = sf.fun_and_grad(point.numpy().copy())
        last_value = f
        return float(f), torch.from_numpy(np.array(g, dtype=np.float64).reshape(-1))

    trace: list[dict[str, Any]] = []

    def on_accept(record: IterationRecord) -> bool:
        trace.append({"x": record.x.numpy().copy(), "f": float(record.f), "nfev": int(record.evaluations)})
        if callback is None:  # _call_callback_maybe_halt(None, ...) is False
            return False
        return _call_callback_maybe_halt(callback, OptimizeResult(x=record.x.numpy().copy(), fun=record.f))

    def total() -> int:
        return int(sf.nfev)

    state = start(torch.from_numpy(x), evaluate, core_options, box=box, total=total)
    while state.stop is None:
        iterate(state, evaluate, core_options, on_accept, box=box, total=total)
    assert state.stop is not None
    status = _scipy_status(state, sf.nfev, maxfun, maxiter)
    return OptimizeResult(fun=last_value, jac=state.g.numpy().copy(), nfev=sf.nfev, njev=sf.ngev,
                          nit=state.n_iterations, status=status, message=state.stop.value,
                          x=state.x.numpy().copy(), success=status == 0,
                          hess_inv=_inverse_hessian(state, maxcor, n), trace=trace)


def minimize_lbfgsb(
    fun: Callable[..., Any],
    x0: Any,
    args: Any = (),
    jac: Any = None,
    bounds: Any = None,
    tol: float | None = None,
    callback: Callable[..., Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> OptimizeResult:
    """``scipy.optimize.minimize(fun, x0, args, method="L-BFGS-B", jac, bounds=bounds, tol, callback, options)``.

    See the module docstring. Status 0 converged, 1 iteration/evaluation limit, 2 abnormal or error, 99 the
    callback raised ``StopIteration``.
    """
    x0 = np.atleast_1d(np.asarray(x0))
    if x0.ndim != 1:
        raise ValueError("'x0' must only have one dimension.")
    if x0.dtype.kind in np.typecodes["AllInteger"]:
        x0 = np.asarray(x0, dtype=float)
    if not isinstance(args, tuple):
        args = (args,)
    options = {} if options is None else options
    if options.get("return_all", False):
        warnings.warn("Method L-BFGS-B does not support the return_all option.", RuntimeWarning, stacklevel=2)
    if callable(jac):
        pass
    elif jac is True:
        fun = MemoizeJac(fun)
        jac = fun.derivative
    elif not (isinstance(jac, str) and jac in FD_METHODS):
        jac = None
    if tol is not None:
        options = dict(options)
        options.setdefault("ftol", tol)
        options.setdefault("gtol", tol)

    remove_vars = False
    i_fixed = x_fixed = None
    if bounds is not None:
        bounds = standardize_bounds(bounds, x0, "new")
        bounds = _validate_bounds(bounds, x0, "l-bfgs-b")
        i_fixed = bounds.lb == bounds.ub
        if np.all(i_fixed):
            fixed = _optimize_result_for_equal_bounds(fun, bounds, "l-bfgs-b", args=args)
            fixed.trace = []  # no iteration runs
            return fixed
        # Finite differences cannot step a variable fixed by its bounds: such variables leave the problem.
        remove_vars = bool(i_fixed.any()) and not callable(jac)
        if remove_vars:
            x_fixed = bounds.lb[i_fixed]
            x0 = x0[~i_fixed]
            bounds = _remove_from_bounds(bounds, i_fixed)
            fun = _Remove_From_Func(fun, i_fixed, x_fixed)
            if callable(callback):
                if set(inspect.signature(callback).parameters) == {"intermediate_result"}:
                    callback = _Patch_Callback_Equal_Variables(callback, i_fixed, x_fixed)
                else:
                    callback = _Remove_From_Func(callback, i_fixed, x_fixed)
        bounds = _bound_arrays(bounds, x0)
    wrapped = _wrap_callback(callback, "l-bfgs-b")
    result = _run(fun, x0, args, jac, bounds, callback=wrapped, options=options)
    if remove_vars:
        result.x = _add_to_array(result.x, i_fixed, x_fixed)
        result.jac = _add_to_array(result.jac, i_fixed, np.nan)
        result.hess_inv = None
        for entry in result.trace:
            entry["x"] = _add_to_array(entry["x"], i_fixed, x_fixed)
    if getattr(wrapped, "stop_iteration", False):
        result.success = False
        result.status = 99
        result.message = CALLBACK_STOP_MESSAGE
    return result


def fmin_l_bfgs_b(
    func: Callable[..., Any],
    x0: Any,
    fprime: Callable[..., Any] | None = None,
    args: Sequence[Any] = (),
    approx_grad: int = 0,
    bounds: Any = None,
    m: int = 10,
    factr: float = 1e7,
    pgtol: float = 1e-5,
    epsilon: float = 1e-8,
    iprint: Any = _NOT_GIVEN,
    maxfun: int = 15000,
    maxiter: int = 15000,
    disp: Any = _NOT_GIVEN,
    callback: Callable[..., Any] | None = None,
    maxls: int = 20,
) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """scipy's ``fmin_l_bfgs_b`` (``_lbfgsb_py.py``): returns ``(x, f, d)`` with ``d`` holding ``grad``, ``task``,
    ``funcalls``, ``nit``, ``warnflag`` (0 converged, 1 a limit reached, 2 otherwise). ``ftol = factr · eps``."""
    if approx_grad:
        fun, jac = func, None
    elif fprime is None:
        fun = MemoizeJac(func)
        jac = fun.derivative
    else:
        fun, jac = func, fprime
    options: dict[str, Any] = {"maxcor": m, "ftol": factr * np.finfo(float).eps, "gtol": pgtol, "eps": epsilon,
                               "maxfun": maxfun, "maxiter": maxiter, "maxls": maxls}
    if disp is not _NOT_GIVEN:
        options["disp"] = disp
    if iprint is not _NOT_GIVEN:
        options["iprint"] = iprint
    result = _run(fun, x0, tuple(args), jac, bounds, callback=_wrap_callback(callback), options=options)
    info = {"grad": result["jac"], "task": result["message"], "funcalls": result["nfev"], "nit": result["nit"],
            "warnflag": result["status"]}
    return result["x"], result["fun"], info


__all__ = ["CALLBACK_STOP_MESSAGE", "DEPRECATED_OUTPUT_WARNING", "OPTION_NAMES", "StopReason", "fmin_l_bfgs_b",
           "minimize_lbfgsb"]
