"""Built-in functional adapter ``pylbfgs``: ``lbfgs.fmin_lbfgs`` of PyLBFGS 0.2.0.16, the Cython wrapper of
Naoaki Okazaki's liblbfgs (the C library is compiled into the wheel from the copy PyLBFGS vendors as
liblbfgs/lbfgs.c, setup.py; liblbfgs' lib/lbfgs.c upstream).

No state goes in or out: the memory lives in C for one call. The accepted iterates come from the ``progress``
callback (called once per iteration with the new x, liblbfgs lib/lbfgs.c, ``lbfgs()``); a non-zero return stops the
run, which PyLBFGS reports by raising ``LBFGSError`` without the point reached, so the adapter returns the last
iterate ``progress`` saw. A line search that ends in an error code (rounding error, step limits) raises
``LBFGSError`` too; the adapter then returns the last accepted iterate as well. Reaching ``max_iterations`` is a
warning in PyLBFGS ("reaches the maximum number of iterations"), silenced here since the harness asked for it.

Declared conventions, read from PyLBFGS 0.2.0.16 (lbfgs/__init__.py, ``fmin_lbfgs`` defaults) and liblbfgs
lib/lbfgs.c (``lbfgs()`` main loop and ``line_search_morethuente``):

- memory ``m`` = 6 (PyLBFGS default, as liblbfgs');
- first step: d = −g₀ (H₀ = I), trial step 1/‖d‖₂ (``vec2norminv``); every later trial step is 1. Measured with
  this wheel: the first trial is 1/‖g₀‖₂ to 1 ulp (liblbfgs' current master overrides it with ``step = 1.0``; the
  vendored copy does not);
- H₀ = γI with γ = yᵀs/yᵀy of the newest pair (``vecscale(d, ys / yy)``);
- pair skip: none: every pair is stored and used with ρ = 1/yᵀs whatever its sign;
- line search: ``default`` = Moré–Thuente, strong Wolfe with ``ftol`` (c1) = 1e-4 and ``gtol`` (c2) = 0.9,
  ``xtol`` = 1e-30, at most ``max_linesearch`` = 20 evaluations, steps in [1e-20, 1e20];
- stopping: ‖g‖₂ / max(1, ‖x‖₂) ≤ ``epsilon`` = 1e-5; the ``past``/``delta`` test is off (past = 0);
  ``max_iterations`` = 0 means no limit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from lbfgs_verify.targets.protocols import FUNCTIONAL, Conventions

CONVENTIONS = Conventions(
    memory_size=6, memory_name="m",
    first_step="d = -g0, trial step 1/||d||_2; later trial steps 1",
    h0_scaling="sty/yty", pair_skip="none: every pair is stored, rho = 1/y's whatever its sign",
    keeps_negative_pairs=True, line_search="strong_wolfe", c1=1e-4, c2=0.9, approximate_wolfe=None,
    stopping="||g||_2 / max(1, ||x||_2) <= epsilon (1e-5); past/delta test off; max_iterations 0 = no limit",
    source="PyLBFGS 0.2.0.16: lbfgs/__init__.py (fmin_lbfgs defaults); liblbfgs lib/lbfgs.c (lbfgs() main loop, "
           "line_search_morethuente)",
)

MAXITER_WARNING = "The algorithm routine reaches the maximum number of iterations"


class PyLBFGSAdapter:
    kind = FUNCTIONAL
    library = "PyLBFGS"
    stop_by = "return True"
    conventions = CONVENTIONS

    def library_object(self) -> Any:
        import lbfgs

        return lbfgs.fmin_lbfgs

    def minimize(self, fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *,
                 maxiter: int, callback: Callable[[np.ndarray], Any] | None = None, memory: int | None = None,
                 tolerance: float | None = None) -> np.ndarray:
        import lbfgs

        last = [np.array(x0, dtype=np.float64, copy=True)]

        def evaluate(x: np.ndarray, g: np.ndarray) -> float:
            f, gradient = fun_and_grad(np.array(x, copy=True))
            g[:] = gradient
            return float(f)

        def progress(x: np.ndarray, g: np.ndarray, fx: float, xnorm: float, gnorm: float, step: float, k: int,
                     ls: int) -> int:
            last[0] = np.array(x, copy=True)  # liblbfgs hands out its own buffer
            return 1 if callback is not None and callback(last[0]) else 0

        options: dict[str, Any] = {"max_iterations": maxiter}
        if memory is not None:
            options["m"] = memory
        if tolerance is not None:
            options["epsilon"] = tolerance
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=MAXITER_WARNING)
            try:
                return np.asarray(lbfgs.fmin_lbfgs(evaluate, np.asarray(x0, dtype=np.float64), progress=progress,
                                                   **options))
            except lbfgs.LBFGSError:
                return last[0]


ADAPTER = PyLBFGSAdapter()
