"""Planted bugs (and correct controls) for the properties-level claims of issue 19: each bug departs from what
every correct L-BFGS does, on an independent implementation (:class:`~tests.quality.simple_lbfgs.SimpleLBFGS`)
and, where the bug can be planted without copying code, on the reference or on torch.optim.LBFGS itself.

- :class:`LoweredHistoryKeepsOldest`, :class:`ReferenceLoweredHistoryKeepsOldest`: a lowered ``history_size``
  keeps the oldest pairs (``behaviour.lowered_history_uses_newest``);
- ``MaxEvalTestStrict`` (``tests/quality/blind_spot_bugs.py``): one closure call past ``max_eval``
  (``behaviour.max_eval``);
- ``ArmijoWithoutStepLength`` (``tests/quality/blind_spot_bugs.py``): sufficient decrease tested without the step
  length (``line_search.sufficient_decrease``);
- :class:`TorchLostIterationCounter`: torch.optim.LBFGS keeping ``n_iter`` outside its state (every resume
  restarts with the first-iteration rule), for the fuzzer's differential control;
- :class:`FirstStepLr` (correct): the first step t = lr ends in another local minimum of Broyden banded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from lbfgs_verify.reference import LBFGS
from tests.quality.blind_spot_bugs import ArmijoWithoutStepLength, MaxEvalTestStrict
from tests.quality.planted_bugs import FirstStepLr
from tests.quality.simple_lbfgs import CircularMemory, SimpleLBFGS


class _OldestKeptMemory(CircularMemory):
    """A circular memory whose resize keeps the oldest pairs."""

    def resize(self, capacity: int) -> None:
        if capacity == self.capacity:
            return
        slots = self.slots_oldest_first()[:capacity]
        old = (self.S, self.Y, self.rho)
        self.capacity, self.head, self.size = capacity, 0, 0
        self.S = self.Y = self.rho = None
        if old[0] is not None and old[1] is not None and old[2] is not None:
            for i in slots:
                self.push(old[0][i], old[1][i], old[2][i])


class LoweredHistoryKeepsOldest(SimpleLBFGS):
    """Bug: when ``history_size`` is lowered between steps, the memory keeps its oldest pairs (the newest are
    dropped), then rolls on as usual."""

    def step(self, closure: Callable[[], Any]) -> Any:
        if type(self.memory) is CircularMemory:
            self.memory.__class__ = _OldestKeptMemory
        return super().step(closure)


class ReferenceLoweredHistoryKeepsOldest(LBFGS):
    """Bug, on the reference: before each step the history lists are cut to ``history_size`` from the end
    (``del old_dirs[h:]``), which keeps the oldest pairs."""

    def step(self, closure: Callable[[], Any]) -> Any:
        h = self.param_groups[0]["history_size"]
        state = self.state[self.param_groups[0]["params"][0]]
        for key in ("old_dirs", "old_stps", "ro"):
            if key in state and len(state[key]) > h:
                del state[key][h:]
        return super().step(closure)


class TorchLostIterationCounter(torch.optim.LBFGS):
    """Bug: torch.optim.LBFGS keeping its iteration counter ``n_iter`` in an attribute instead of the state, so
    ``state_dict()`` lacks it and every loaded optimizer restarts with the first-iteration rule."""

    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        state = self.state[self._params[0]]
        state["n_iter"] = getattr(self, "_outside_n_iter", 0)
        try:
            return super().step(closure)
        finally:
            self._outside_n_iter = state.pop("n_iter", 0)


CLAIM_MUTANTS: dict[type, tuple[str, ...]] = {
    LoweredHistoryKeepsOldest: ("behaviour.lowered_history_uses_newest",),
    ReferenceLoweredHistoryKeepsOldest: ("behaviour.lowered_history_uses_newest",),
    MaxEvalTestStrict: ("behaviour.max_eval",),
    ArmijoWithoutStepLength: ("line_search.sufficient_decrease",),
}
"""Each planted bug and the properties-level properties that must fail on it at the ci and quick budgets."""

__all__ = ["CLAIM_MUTANTS", "FirstStepLr", "LoweredHistoryKeepsOldest", "ReferenceLoweredHistoryKeepsOldest",
           "TorchLostIterationCounter"]
