"""qqn-torch's ``QQN(oracle="lbfgs")`` behind torch.optim.LBFGS's constructor.

``lbfgs-verify check examples.peers.qqn_lbfgs:QQNLBFGS``. QQN searches along the quadratic path
x + t(1-t)(-g) + t²(-Hg) between steepest descent and the L-BFGS direction (qqn_torch/optimizer.py); at t = 1
the step is the L-BFGS step -Hg. Mapping: max_iter -> max_iter, history_size -> history_size,
tolerance_grad -> tol_grad (max-norm), tolerance_change -> tol_change, line_search_fn None -> line_search
"fixed" (t = 1), 'strong_wolfe' -> "strong_wolfe". QQN has no lr and no evaluation budget.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from qqn_torch import QQN


class QQNLBFGS(QQN):
    """QQN with the L-BFGS oracle and torch.optim.LBFGS's constructor arguments."""

    lbfgs_verify_lacks = (
        "lr",  # the path parameter t is chosen by the line search (1 when fixed); there is no lr
        "max_eval",  # no evaluation budget per step
        "history_size_change",  # the oracle's memory size is fixed at construction
        "complex",  # float(torch.dot(g, -g)) of a complex gradient raises (qqn_torch/optimizer.py)
    )

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None) -> None:
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}")
        super().__init__(params, history_size=history_size, oracle="lbfgs",
                         line_search="strong_wolfe" if line_search_fn == "strong_wolfe" else "fixed",
                         max_iter=max_iter, tol_grad=tolerance_grad, tol_change=tolerance_change)
