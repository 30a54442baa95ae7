"""sqnm's ``LBFGS`` behind torch.optim.LBFGS's constructor.

``lbfgs-verify check examples.peers.sqnm_lbfgs:SqnmLBFGS``. sqnm's ``step()`` makes one L-BFGS iteration
(sqnm/optim/lbfgs.py: evaluate, move by lr·p, evaluate again); the adapter makes ``max_iter`` of them per
``step()`` and returns the first loss. sqnm's strong-Wolfe search needs a pure function ``fn`` besides the
closure, which torch.optim.LBFGS's interface does not give, so only the fixed step is checked.
Mapping: lr -> lr, history_size -> history_size, tolerance_grad -> grad_tol (2-norm).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from sqnm.optim import LBFGS


class SqnmLBFGS(LBFGS):
    """sqnm's L-BFGS with torch.optim.LBFGS's constructor arguments (max_iter sqnm iterations per step())."""

    lbfgs_verify_lacks = (
        "strong_wolfe",  # needs a pure function fn(x) besides the closure
        "max_eval",  # no evaluation budget
        "tolerance_change",  # no such test
        "history_size_change",  # the history buffers are allocated once, at construction
        "complex",  # the flat vectors are real (complex parameters give size mismatches)
        "non_contiguous",  # crashes on strided leaf parameters: a flat view(-1) of a non-contiguous tensor
    )

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None) -> None:
        if line_search_fn is not None:
            raise ValueError("sqnm's strong-Wolfe search needs fn(x); only line_search_fn=None is supported here")
        super().__init__(params, lr=float(lr), line_search_fn=None, history_size=history_size,
                         grad_tol=tolerance_grad)
        self.param_groups[0]["max_iter"] = max_iter

    def step(self, closure: Callable[[], torch.Tensor]) -> Any:  # type: ignore[override]
        first = super().step(closure)
        for _ in range(int(self.param_groups[0]["max_iter"]) - 1):
            super().step(closure)
        return first
