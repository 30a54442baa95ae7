"""torch.optim.LBFGS with ``line_search_fn="strong_wolfe"`` forced, whatever the caller asks for.

``lbfgs-verify check examples.peers.torch_strong_wolfe:TorchStrongWolfe``: how users most often run
torch's L-BFGS. It declares that it lacks the fixed-step mode (``no_line_search``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class TorchStrongWolfe(torch.optim.LBFGS):
    """torch.optim.LBFGS that always searches with strong Wolfe."""

    lbfgs_verify_lacks = ("no_line_search",)

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None) -> None:
        super().__init__(params, lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                         tolerance_change=tolerance_change, history_size=history_size, line_search_fn="strong_wolfe")
