"""How each reproduction builds the optimizer under test (torch and the package only, nothing of the harness).

Imported by the scripts next to it; ``python SCRIPT.py PACKAGE`` with PACKAGE one of torch, torchmin,
torchmin-scipy, qqn, sqnm. Every script prints ``REPRODUCED: ...`` and exits 0 when the defect shows, and
prints ``NOT REPRODUCED: ...`` and exits 1 otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch


def make(package: str, params: list[torch.Tensor], **kwargs: object) -> torch.optim.Optimizer:
    """The package's L-BFGS on ``params`` (``kwargs``: lr, max_iter, history_size as the package names them)."""
    if package == "torch":
        return torch.optim.LBFGS(params, line_search_fn="strong_wolfe", **kwargs)  # type: ignore[arg-type]
    if package == "torchmin":
        import torchmin

        return torchmin.Minimizer(params, method="l-bfgs", **kwargs)
    if package == "torchmin-scipy":
        import torchmin

        return torchmin.ScipyMinimizer(params, method="l-bfgs-b", options={"maxiter": 3})
    if package == "qqn":
        from qqn_torch import QQN

        return QQN(params, oracle="lbfgs", line_search="fixed", max_iter=kwargs.get("max_iter", 3))  # type: ignore[arg-type]
    if package == "sqnm":
        from sqnm.optim import LBFGS

        return LBFGS(params, lr=0.1, history_size=1)
    raise SystemExit(f"unknown package {package!r}")


def closure_for(package: str, params: list[torch.Tensor], objective: Callable[[], torch.Tensor]) -> Callable:
    """torch's closure convention (zero the gradients, forward, backward); torchmin's Minimizer back-propagates
    itself, so its closure only evaluates."""

    def closure() -> torch.Tensor:
        for p in params:
            p.grad = None
        loss = objective()
        if package != "torchmin":
            loss.backward()
        return loss

    return closure


def quadratic(params: list[torch.Tensor]) -> Callable[[], torch.Tensor]:
    weights = torch.arange(1.0, 1.0 + sum(p.numel() for p in params), dtype=params[0].dtype)

    def objective() -> torch.Tensor:
        x = torch.cat([p.reshape(-1) for p in params])
        return (weights * (x - 1) ** 2).sum() + 0.1 * (x**4).sum()

    return objective


def verdict(reproduced: bool, what: str) -> None:
    print(("REPRODUCED: " if reproduced else "NOT REPRODUCED: ") + what)
    sys.exit(0 if reproduced else 1)
