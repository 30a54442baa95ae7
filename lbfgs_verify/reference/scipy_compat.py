"""``minimize_lbfgsb``: ``scipy.optimize.minimize(method="L-BFGS-B")`` for unconstrained problems, on our iteration.

Same call and meaning as ``scipy.optimize.minimize(fun, x0, method="L-BFGS-B", jac=jac, options=options,
callback=callback)`` without bounds (scipy 1.17, ``scipy/optimize/_lbfgsb_py.py::_minimize_lbfgsb``), with the
iteration of :mod:`lbfgs_verify.reference.lbfgsb` (the same code :class:`~lbfgs_verify.reference.lbfgsb.LBFGSB`
runs). The result has scipy's fields and a ``trace``: one dict per iteration with the accepted iterate
``"x"`` (numpy copy), ``"f"`` and ``"nfev"`` (evaluations that iteration used, counted as scipy counts them).

scipy's driver behaviour mirrored here: the evaluation at x0 happens before anything else (so invalid
``maxcor``/``ftol``/empty x0 give status 2 with ``fun = 0.0`` and ``jac = 0`` like scipy's ``ERROR``
exit, and ``maxls <= 0`` raises ``ValueError`` after that evaluation); ``callback`` runs after each accepted
step and before the stop tests, with ``intermediate_result`` (``x``, ``fun``) or, for a one-argument legacy
callback, a copy of x; raising ``StopIteration`` in it stops the run and, as ``minimize`` does, gives status 99 and
the message "`callback` raised `StopIteration`.". After an ABNORMAL stop scipy returns the
restored x and its gradient but ``fun`` of its last evaluation (the rejected trial point): so does this.

Not mirrored: bounds, finite-difference gradients (``jac`` must be ``True`` or a callable), ``hess_inv``,
non-float64 ``x0`` dtypes (x0 is converted to float64). Unknown options raise ``ValueError`` (scipy warns);
``disp``/``iprint``/``eps``/``finite_diff_rel_step``/``workers`` are accepted and have no effect here.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from scipy.optimize import OptimizeResult
from torch import Tensor

from lbfgs_verify.reference.lbfgsb import IterationRecord, LBFGSBOptions, iterate, scipy_status, start

OPTION_NAMES = ("maxcor", "ftol", "gtol", "maxiter", "maxfun", "maxls")
IGNORED_OPTION_NAMES = ("disp", "iprint", "eps", "finite_diff_rel_step", "workers")


def _as_scalar(value: Any) -> float:
    """The objective's value as a float (``_ScalarFunctionWrapper``: must be a scalar or a size-1 array)."""
    if np.isscalar(value):
        return float(value)
    try:
        return float(np.asarray(value).item())
    except (TypeError, ValueError) as exc:
        raise ValueError("The user-provided objective function must return a scalar value.") from exc


def _make_evaluate(
    fun: Callable[..., Any], jac: bool | Callable[..., Any], n: int
) -> Callable[[Tensor], tuple[float, Tensor]]:
    def evaluate(x: Tensor) -> tuple[float, Tensor]:
        point = x.numpy().copy()
        if jac is True:
            value, grad = fun(point)
        else:
            value = fun(point)
            grad = jac(x.numpy().copy())  # type: ignore[operator]
        grad = np.atleast_1d(np.asarray(grad, dtype=np.float64)).reshape(-1)
        if grad.shape != (n,):
            raise ValueError(f"the gradient has {grad.size} entries, x has {n}")
        return _as_scalar(value), torch.from_numpy(grad.copy())

    return evaluate


def _callback_caller(callback: Callable[..., Any] | None) -> Callable[[IterationRecord], bool] | None:
    """scipy's ``_wrap_callback`` + ``_call_callback_maybe_halt``: True when the callback raised StopIteration."""
    if callback is None:
        return None
    try:
        wants_result = set(inspect.signature(callback).parameters) == {"intermediate_result"}
    except (TypeError, ValueError):
        wants_result = False

    def call(record: IterationRecord) -> bool:
        x = record.x.numpy().copy()
        try:
            if wants_result:
                callback(intermediate_result=OptimizeResult(x=x, fun=record.f))
            else:
                callback(x)
        except StopIteration:
            return True
        return False

    return call


def minimize_lbfgsb(
    fun: Callable[..., Any],
    x0: Any,
    *,
    jac: bool | Callable[..., Any] = True,
    options: Mapping[str, Any] | None = None,
    callback: Callable[..., Any] | None = None,
) -> OptimizeResult:
    """Minimize ``fun`` from ``x0`` like scipy's L-BFGS-B without bounds; see the module docstring.

    Returns an ``OptimizeResult`` with ``x, fun, jac, nit, nfev, njev, status, success, message`` (scipy's
    meaning: status 0 converged, 1 iteration/evaluation limit, 2 abnormal or error, 99 callback halt) and
    ``trace``.
    """
    if not (jac is True or callable(jac)):
        raise ValueError("minimize_lbfgsb needs an analytic gradient: jac=True (fun returns (f, g)) or a callable")
    given = dict(options or {})
    unknown = sorted(k for k in given if k not in OPTION_NAMES + IGNORED_OPTION_NAMES)
    if unknown:
        raise ValueError(f"unknown L-BFGS-B options {unknown}; known: {list(OPTION_NAMES)}")
    values = {k: given[k] for k in OPTION_NAMES if k in given}
    defaults = LBFGSBOptions()
    settings = {k: values.get(k, getattr(defaults, k)) for k in OPTION_NAMES}

    x0 = np.atleast_1d(np.asarray(x0))
    if x0.ndim != 1:
        raise ValueError("'x0' must only have one dimension.")
    x0 = x0.astype(np.float64)
    n = x0.shape[0]
    evaluate = _make_evaluate(fun, jac, n)

    # scipy's input errors (errclb: the last failing check names the error) after the evaluation at x0.
    error = ""
    if n <= 0:
        error = "N <= 0"
    if settings["maxcor"] <= 0:
        error = "M <= 0"
    if settings["ftol"] < 0:
        error = "FACTR < 0"
    if error or settings["maxls"] <= 0:
        evaluate(torch.from_numpy(x0.copy()))
        if settings["maxls"] <= 0:
            raise ValueError("maxls must be positive.")
        return OptimizeResult(x=x0.copy(), fun=0.0, jac=np.zeros(n), nit=0, nfev=1, njev=1, status=2,
                              success=False, message=f"ERROR: {error}", trace=[])

    opts = LBFGSBOptions(**settings)
    trace: list[dict[str, Any]] = []
    call_back = _callback_caller(callback)
    halted = False

    def on_accept(record: IterationRecord) -> bool:
        nonlocal halted
        trace.append({"x": record.x.numpy().copy(), "f": float(record.f), "nfev": int(record.evaluations)})
        if call_back is not None and call_back(record):
            halted = True
        return halted

    last_value = math.nan

    def remembering_evaluate(x: Tensor) -> tuple[float, Tensor]:
        nonlocal last_value
        value, grad = evaluate(x)
        last_value = value
        return value, grad

    state = start(torch.from_numpy(x0.copy()), remembering_evaluate, opts)
    while state.stop is None:
        iterate(state, remembering_evaluate, opts, on_accept)
    assert state.stop is not None
    status = scipy_status(state, opts)
    message = state.stop.value
    if halted:  # scipy.optimize.minimize overrides whatever the solver said
        status, message = 99, "`callback` raised `StopIteration`."
    # scipy returns the f of its last evaluation: after ABNORMAL that is the rejected trial point, not f(x).
    return OptimizeResult(
        x=state.x.numpy().copy(),
        fun=float(last_value),
        jac=state.g.numpy().copy(),
        nit=state.n_iterations,
        nfev=state.n_evaluations,
        njev=state.n_evaluations,
        status=status,
        success=status == 0,
        message=message,
        trace=trace,
    )
