"""Built-in functional adapter ``torchmin:minimize``: pytorch-minimize 0.1.0's functional
``torchmin.minimize(fun, x0, method='l-bfgs')`` (torchmin/minimize.py, torchmin/bfgs.py ``_minimize_lbfgs``).

torchmin differentiates ``fun`` with autograd (torchmin/function.py, ``ScalarFunction.closure``); the harness's
``fun_and_grad`` is numpy, so it enters as a ``torch.autograd.Function`` whose backward returns the harness's
gradient (float64 throughout). ``callback(x_new)`` is called once per iteration with the accepted point; returning
``True`` stops the run (bfgs.py:225–229) *before* x is updated to x_new, so the returned ``x`` is then the previous
iterate: a library convention the property ``functional.callback_stop`` reports. No state goes in or out.

Declared conventions, read from pytorch-minimize 0.1.0 (torchmin/bfgs.py, torchmin/line_search.py, which calls
torch.optim.lbfgs's ``_strong_wolfe``):

- memory ``history_size`` = 100 (bfgs.py:348);
- first step: d = −g₀, trial step min(1, 1/‖g₀‖₁)·lr with lr = 1 (bfgs.py:182–183); later trial steps lr = 1
  (bfgs.py:255);
- H₀ = γI with γ = yᵀs/yᵀy of the newest stored pair (bfgs.py:63, ``H_diag``);
- pair skip: yᵀs ≤ 1e-10 is not stored (bfgs.py:24–27);
- line search: strong Wolfe (torch.optim.lbfgs ``_strong_wolfe``), c1 = 1e-4, c2 = 0.9, ``tolerance_change`` 1e-9,
  ``max_ls`` = 25 (line_search.py:9–11);
- stopping: gᵀd > −``gtd_tol`` (1e-10) ends the run; ‖s‖∞ ≤ ``xtol`` (1e-8) or |Δf| ≤ xtol; ‖g‖∞ ≤ ``gtol``
  (1e-5); a non-finite f; ``max_iter`` = 200·n (bfgs.py:158–159, 195–270).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lbfgs_verify.targets.protocols import FUNCTIONAL, Conventions

CONVENTIONS = Conventions(
    memory_size=100, memory_name="history_size",
    first_step="d = -g0, trial step min(1, 1/||g0||_1) * lr (lr = 1); later trial steps lr",
    h0_scaling="sty/yty", pair_skip="y's <= 1e-10 not stored",
    keeps_negative_pairs=False, line_search="strong_wolfe", c1=1e-4, c2=0.9, approximate_wolfe=None,
    stopping="g'd > -gtd_tol (1e-10); ||s||_inf <= xtol (1e-8) or |df| <= xtol; ||g||_inf <= gtol (1e-5); "
             "non-finite f; max_iter 200 * n",
    source="pytorch-minimize 0.1.0: torchmin/bfgs.py:15-70, 101-290, 347-400 (_minimize_lbfgs), "
           "torchmin/line_search.py:9-11, 163-190, torchmin/minimize.py:22-100",
)


def _torch_function(fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]]) -> Callable[[Any], Any]:
    """``fun_and_grad`` as a differentiable torch function of a float64 tensor."""
    import torch

    class Objective(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            with torch.enable_grad():  # fun_and_grad may use autograd itself; forward runs under no_grad
                f, g = fun_and_grad(x.detach().cpu().numpy().astype(np.float64, copy=True))
            ctx.save_for_backward(torch.as_tensor(np.asarray(g, dtype=np.float64)))
            return torch.as_tensor(float(f), dtype=torch.float64)

        @staticmethod
        def backward(ctx: Any, grad_output: Any) -> Any:
            (g,) = ctx.saved_tensors
            return grad_output * g

    return Objective.apply


class TorchminAdapter:
    kind = FUNCTIONAL
    library = "pytorch-minimize"
    stop_by = "return True"
    conventions = CONVENTIONS

    def library_object(self) -> Any:
        import torchmin

        return torchmin.minimize

    def minimize(self, fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *,
                 maxiter: int, callback: Callable[[np.ndarray], Any] | None = None, memory: int | None = None,
                 tolerance: float | None = None) -> np.ndarray:
        import torch
        import torchmin

        options: dict[str, Any] = {}
        if memory is not None:
            options["history_size"] = memory
        if tolerance is not None:
            options.update(gtol=tolerance, xtol=tolerance, gtd_tol=tolerance)

        def call_back(x: Any) -> bool:
            return bool(callback is not None and callback(x.detach().cpu().numpy().astype(np.float64, copy=True)))

        result = torchmin.minimize(_torch_function(fun_and_grad), torch.as_tensor(np.array(x0, dtype=np.float64)),
                                   method="l-bfgs", max_iter=maxiter, callback=call_back, options=options)
        return result.x.detach().cpu().numpy().astype(np.float64, copy=True)


ADAPTER = TorchminAdapter()
