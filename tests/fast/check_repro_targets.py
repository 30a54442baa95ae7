"""Targets for tests/fast/test_check_repro.py."""

from __future__ import annotations

import torch


class TorchLBFGSUnderAnotherName(torch.optim.LBFGS):
    """torch.optim.LBFGS itself, reached through another class: its failures are the baseline's failures."""


class TorchLBFGSWithExternalCounter(torch.optim.LBFGS):
    """A user's copy of torch.optim.LBFGS that keeps its iteration counter in an attribute instead of the state
    (a real porting bug): after a load the counter restarts at 0, so the first resumed iteration takes the
    first-iteration branch (steepest descent, history cleared): the resumed run is a cold start."""

    def __init__(self, params, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(params, **kwargs)
        self._n_iter = 0

    def step(self, closure):  # type: ignore[no-untyped-def,override]
        state = self.state[self._params[0]]
        state["n_iter"] = self._n_iter
        loss = super().step(closure)
        self._n_iter = state["n_iter"]
        return loss
