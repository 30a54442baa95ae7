"""Built-in functional adapter ``lbfgsb``: ``lbfgsb.minimize_lbfgsb`` of the ``lbfgsb`` PyPI package 1.1.0, a pure
Python L-BFGS-B after Byrd, Lu, Nocedal & Zhu (1995) and Morales & Nocedal (2011).

The callback is ``callback(x, OptimizeResult) -> bool``: ``True`` stops the run (lbfgsb/main.py:940–962); it is not
called on the iteration where another stopping rule fires. The package runs its pure-Python path here
(``is_use_numba_jit=False``): numba is not one of its dependencies, and without numba the default ``True`` only
warns and falls back to the same path (main.py:574–580).

Its own resume path is ``checkpoint=``: an earlier ``OptimizeResult`` is passed back with ``x0 = checkpoint.x``,
and the package rebuilds the past iterates and gradients from the stored differences, ``x − cumsum(sk)`` and
``jac − cumsum(yk)`` (``initialize_X_and_G``, main.py), then refactors its matrices (``is_force_update=True``);
``own_resume`` checks it against one uninterrupted call (property ``kinds.own_resume_path``). Measured (Extended
Rosenbrock n = 10, split at 7 of 10): ``sk`` is stored oldest difference first, so ``x − cumsum(sk)`` is no past
iterate but the first (x₀ excepted, 0.18 away from any); the resumed run ends 0.26 from the uninterrupted one.
Rebuilt newest difference first (``x − cumsum(sk[::-1])``, reversed), the same resume ends 1.1e-16 away, the
rounding of the subtraction: the order of the reconstruction is the cause.

Declared conventions, read from lbfgsb 1.1.0 (lbfgsb/main.py, linesearch.py, bfgsmats.py):

- memory ``maxcor`` = 10 (main.py:115);
- first step: d = −g₀ from the Cauchy point with θ = 1, trial step min(1/‖d‖₂, ``max_steplength`` = 1e8) at the
  first iteration of an unbounded problem, 1 afterwards (linesearch.py, ``line_search``);
- H₀: compact form with θ = yᵀy/sᵀy of the newest pair (bfgsmats.py, ``update_lbfgs_matrices``), i.e.
  γ = sᵀy/yᵀy;
- pair skip: the new point is stored only when sᵀy > ``eps_SY``·yᵀy, eps_SY = 2.2e-16 (bfgsmats.py,
  ``is_update_X_and_G``); the package stores iterates, not pairs, so after a skipped pair the next s spans two steps;
- line search: Moré–Thuente (scipy's ``dcsrch``), ``ftol_linesearch`` (c1) = 1e-3, ``gtol_linesearch`` (c2) = 0.9,
  ``xtol_linesearch`` = 0.1, ``maxls`` = 20; a failed search restarts the memory, twice ends the run;
- stopping: max|proj g| ≤ ``gtol`` = 1e-5; (f_old − f)/max(|f_old|, |f|, 1) < ``ftol`` = 1e-5; ``maxiter`` = 50;
  ``maxfun`` = 15000; ``ftarget`` (off); the callback returning True.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lbfgs_verify.targets.protocols import FUNCTIONAL, Conventions, OwnResume

CONVENTIONS = Conventions(
    memory_size=10, memory_name="maxcor",
    first_step="d = -g0, trial step min(1/||d||_2, 1e8); later trial steps 1",
    h0_scaling="sty/yty", pair_skip="point stored only when s'y > 2.2e-16 * y'y (then the next s spans two steps)",
    keeps_negative_pairs=False, line_search="strong_wolfe", c1=1e-3, c2=0.9, approximate_wolfe=None,
    stopping="max|proj g| <= gtol (1e-5); (f_old - f) / max(|f_old|, |f|, 1) < ftol (1e-5); maxiter (50); "
             "maxfun (15000); callback returning True",
    source="lbfgsb 1.1.0: lbfgsb/main.py:95-134, 560-1006 (minimize_lbfgsb, initialize_X_and_G), "
           "lbfgsb/linesearch.py (line_search), lbfgsb/bfgsmats.py (update_lbfgs_matrices, is_update_X_and_G)",
)


class LbfgsbPackageAdapter:
    kind = FUNCTIONAL
    library = "lbfgsb"
    stop_by = "return True"
    conventions = CONVENTIONS

    def library_object(self) -> Any:
        import lbfgsb

        return lbfgsb.minimize_lbfgsb

    def _run(self, fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, maxiter: int,
             callback: Callable[[np.ndarray], Any] | None = None, memory: int | None = None,
             tolerance: float | None = None, checkpoint: Any = None) -> Any:
        import lbfgsb

        options: dict[str, Any] = {"maxiter": maxiter, "is_use_numba_jit": False}
        if memory is not None:
            options["maxcor"] = memory
        if tolerance is not None:
            options["ftol"] = tolerance
            options["gtol"] = tolerance

        def call_back(x: np.ndarray, result: Any) -> bool:
            return bool(callback is not None and callback(x))

        return lbfgsb.minimize_lbfgsb(x0=np.array(x0, dtype=np.float64, copy=True), fun=fun_and_grad, jac=True,
                                      callback=call_back, checkpoint=checkpoint, **options)

    def minimize(self, fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *,
                 maxiter: int, callback: Callable[[np.ndarray], Any] | None = None, memory: int | None = None,
                 tolerance: float | None = None) -> np.ndarray:
        return np.asarray(self._run(fun_and_grad, x0, maxiter, callback, memory, tolerance).x)

    def own_resume(self, objective: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *, split: int,
                   steps: int, jit: bool = False) -> OwnResume:
        """``maxiter=steps`` in one call against ``maxiter=split`` and then ``checkpoint=`` that result with
        ``maxiter=steps`` (``nit`` is restored from the checkpoint, main.py), stopping rules off (``ftol = gtol = 0``).
        ``at_resume``: how far the past iterates the package rebuilds from the checkpoint are from the iterates the
        first call visited (the largest distance of a rebuilt point to its nearest visited iterate)."""
        visited: list[np.ndarray] = []

        def record(x: np.ndarray) -> None:
            visited.append(np.array(x, copy=True))

        whole = self._run(objective, x0, steps, tolerance=0.0)
        part = self._run(objective, x0, split, callback=record, tolerance=0.0)
        resumed = self._run(objective, part.x, steps, tolerance=0.0, checkpoint=part)
        visited = [np.array(x0, dtype=np.float64), *visited]
        rebuilt = part.x - np.cumsum(np.atleast_2d(part.hess_inv.sk), axis=0)  # as initialize_X_and_G does
        gap = max((min(float(np.max(np.abs(r - v))) for v in visited) for r in rebuilt), default=0.0)
        counters = {"nfev": (int(whole.nfev), int(resumed.nfev)), "nit": (int(whole.nit), int(resumed.nit))}
        return OwnResume(path="minimize_lbfgsb(x0=result.x, checkpoint=result)", uninterrupted=np.asarray(whole.x),
                         resumed=np.asarray(resumed.x), counters=counters,
                         at_resume={"max over rebuilt past iterates of max|x - nearest visited iterate|": gap})


ADAPTER = LbfgsbPackageAdapter()
