"""Built-in functional adapters ``scipy:L-BFGS-B`` (``scipy.optimize.minimize(method="L-BFGS-B")``) and
``lbfgs_verify.reference:minimize_lbfgsb`` (the reference's function with scipy's signature).

Without bounds L-BFGS-B is L-BFGS with the Moré–Thuente search. Declared conventions, read from scipy 1.17.1
(scipy/optimize/_lbfgsb_py.py:294–298 for the defaults; scipy/optimize/__lbfgsb.c, the C translation of
L-BFGS-B 3.0 that replaced the Fortran in 1.15.0, for the rest):

- memory ``maxcor`` = 10;
- first step: d = −g (Cauchy point with θ = 1), trial step min(1/‖d‖₂, 1e10); later trial steps 1;
- H₀ = (1/θ)I with θ = yᵀy/sᵀy of the newest pair (compact form, Byrd, Nocedal & Schnabel 1994), i.e. γ = sᵀy/yᵀy;
- pair skip: sᵀy ≤ eps·(−gᵀd·stp) (a skipped pair keeps memory and θ);
- line search: ``dcsrch`` (Moré & Thuente 1994), ftol (c1) = 1e-3, gtol (c2) = 0.9, xtol = 0.1, strong Wolfe,
  ``maxls`` = 20; a dcsrch warning (rounding, xtol) is accepted like convergence, a failed search resets the memory;
- stopping: iterations ≥ maxiter; (f_old − f) ≤ ftol·max(|f_old|, |f|, 1) with ftol = 2.2e-9; max|g| ≤ gtol = 1e-5;
  a callback raising ``StopIteration`` stops (scipy ≥ 1.11).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lbfgs_verify.targets.protocols import FUNCTIONAL, Conventions

CONVENTIONS = Conventions(
    memory_size=10, memory_name="maxcor",
    first_step="d = -g, trial step min(1/||d||_2, 1e10)",
    h0_scaling="sty/yty", pair_skip="s'y <= eps * (-g'd * stp) skipped",
    keeps_negative_pairs=False, line_search="strong_wolfe", c1=1e-3, c2=0.9, approximate_wolfe=None,
    stopping="maxiter; (f_old - f) <= ftol * max(|f_old|, |f|, 1), ftol 2.2e-9; max|g| <= gtol 1e-5; "
             "StopIteration from the callback",
    source="scipy 1.17.1: scipy/optimize/_lbfgsb_py.py:294-298, scipy/optimize/__lbfgsb.c (lnsrlb: ftol 1e-3, "
           "gtol 0.9, xtol 0.1)",
)


class ScipySignatureLBFGSB:
    """A ``minimize(fun, x0, jac=True, callback=, options=)`` with scipy's L-BFGS-B options, as a
    :class:`~lbfgs_verify.targets.protocols.FunctionalAdapter`."""

    kind = FUNCTIONAL
    stop_by = "StopIteration"
    conventions = CONVENTIONS

    def __init__(self, library: str, load: Callable[[], Callable[..., Any]], scipy_method: bool) -> None:
        self.library = library
        self._load = load
        self._scipy_method = scipy_method

    def library_object(self) -> Any:
        return self._load()

    def minimize(self, fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *,
                 maxiter: int, callback: Callable[[np.ndarray], Any] | None = None, memory: int | None = None,
                 tolerance: float | None = None) -> np.ndarray:
        options: dict[str, Any] = {"maxiter": maxiter}
        if memory is not None:
            options["maxcor"] = memory
        if tolerance is not None:
            options["ftol"] = tolerance
            options["gtol"] = tolerance
        minimize = self._load()

        def call_back(xk: np.ndarray) -> Any:  # the xk form (scipy passes the live work array: callers copy)
            return None if callback is None else callback(xk)

        extra = {"method": "L-BFGS-B"} if self._scipy_method else {}
        result = minimize(fun_and_grad, np.asarray(x0, dtype=np.float64), jac=True, callback=call_back,
                          options=options, **extra)
        return np.asarray(result.x)


def _scipy_minimize() -> Callable[..., Any]:
    import scipy.optimize

    return scipy.optimize.minimize


def _reference_minimize() -> Callable[..., Any]:
    from lbfgs_verify.reference import minimize_lbfgsb

    return minimize_lbfgsb


SCIPY = ScipySignatureLBFGSB("scipy", _scipy_minimize, scipy_method=True)
REFERENCE = ScipySignatureLBFGSB("lbfgs-verify", _reference_minimize, scipy_method=False)
