"""pytorch-minimize's ``torchmin.ScipyMinimizer(method="L-BFGS-B")`` (scipy.optimize.minimize) behind
torch.optim.LBFGS's constructor.

``lbfgs-verify check examples.peers.torchmin_scipy:ScipyLBFGSB``. Each ``step()`` is a whole scipy L-BFGS-B
minimization (its own line search, Moré–Thuente ``dcsrch``, first trial step 1/||g|| then 1) from a fresh
memory. Mapping (at every step, so that param_groups changes take effect): max_iter -> options maxiter,
max_eval -> maxfun, tolerance_grad -> gtol (max-norm of the projected gradient), tolerance_change -> ftol (scipy:
(f_k - f_{k+1})/max(|f_k|, |f_{k+1}|, 1) <= ftol, torch's absolute test where |f| <= 1), history_size -> maxcor.
scipy has no fixed-step mode and no lr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torchmin

TORCH_NAMES = ("lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size", "line_search_fn")


class ScipyLBFGSB(torchmin.ScipyMinimizer):
    """scipy's L-BFGS-B (through torchmin) with torch.optim.LBFGS's constructor arguments, kept under torch's
    names in ``param_groups[0]`` and translated into scipy's options at every ``step()``."""

    lbfgs_verify_lacks = (
        "lr",  # scipy chooses its own step lengths
        "no_line_search",  # L-BFGS-B always runs its line search
        "complex",  # scipy works on real float64 vectors
        "non_contiguous",  # crashes on strided leaf parameters: a flat view(-1) of a non-contiguous tensor
    )

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None) -> None:
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}")
        super().__init__(params, method="l-bfgs-b")
        self.param_groups[0].update(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                                    tolerance_change=tolerance_change, history_size=history_size,
                                    line_search_fn=line_search_fn)

    def step(self, closure: Callable[[], torch.Tensor]) -> Any:  # type: ignore[override]
        group = self.param_groups[0]
        saved = {k: group[k] for k in TORCH_NAMES}
        max_iter = int(saved["max_iter"])
        max_eval = max_iter * 5 // 4 if saved["max_eval"] is None else int(saved["max_eval"])
        group["options"] = {"maxiter": max_iter, "maxfun": max_eval, "gtol": float(saved["tolerance_grad"]),
                            "ftol": float(saved["tolerance_change"]), "maxcor": int(saved["history_size"])}
        return super().step(closure)
