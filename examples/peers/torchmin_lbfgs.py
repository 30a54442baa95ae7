"""pytorch-minimize's ``torchmin.Minimizer(method="l-bfgs")`` behind torch.optim.LBFGS's constructor.

``lbfgs-verify check examples.peers.torchmin_lbfgs:TorchminLBFGS``. Each ``step()`` is a whole torchmin
minimization (torchmin/optim/minimizer.py, ``minimize(self, x0, **kwargs)``) of up to ``max_iter`` iterations
from a fresh memory. Mapping: lr -> lr, max_iter -> max_iter, history_size -> history_size, line_search_fn
None/'strong_wolfe' -> line_search 'none'/'strong-wolfe', tolerance_grad -> gtol (max-norm: normp=inf),
tolerance_change -> xtol and gtd_tol (torch uses tolerance_change for both tests). torchmin's closure
convention differs (it calls ``backward()`` itself), so the adapter hands it a closure that has already
back-propagated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torchmin

TORCH_NAMES = ("lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size", "line_search_fn")


class TorchminLBFGS(torchmin.Minimizer):
    """torchmin's L-BFGS with torch.optim.LBFGS's constructor arguments, kept under torch's names in
    ``param_groups[0]`` (so that changing them between steps works as with torch) and translated into
    torchmin's ``minimize(..., max_iter=, options=)`` at every ``step()``."""

    lbfgs_verify_lacks = (
        "max_eval",  # torchmin has no evaluation budget per step
        "complex",  # torchmin/bfgs.py does not support complex parameters
        "non_contiguous",  # crashes on strided leaf parameters: a flat view(-1) of a non-contiguous tensor
    )

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None) -> None:
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}")
        super().__init__(params, method="l-bfgs")
        self.param_groups[0].update(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                                    tolerance_change=tolerance_change, history_size=history_size,
                                    line_search_fn=line_search_fn)

    def step(self, closure: Callable[[], torch.Tensor]) -> Any:  # type: ignore[override]
        def already_backpropagated() -> torch.Tensor:
            loss = closure()  # zero_grad, forward, backward: torch's closure convention
            return loss.detach().requires_grad_(True)  # torchmin's own backward() then adds nothing

        group = self.param_groups[0]
        saved = {k: group.pop(k) for k in TORCH_NAMES}
        group["max_iter"] = int(saved["max_iter"])
        group["options"] = {"lr": float(saved["lr"]), "history_size": int(saved["history_size"]),
                            "line_search": "strong-wolfe" if saved["line_search_fn"] == "strong_wolfe" else "none",
                            "gtol": float(saved["tolerance_grad"]), "xtol": float(saved["tolerance_change"]),
                            "gtd_tol": float(saved["tolerance_change"]),
                            "normp": float("inf")}
        try:
            return super().step(already_backpropagated)
        finally:
            del group["options"]
            group.update(saved)
