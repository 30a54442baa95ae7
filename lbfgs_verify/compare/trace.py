"""Recording optimizer runs: the one data structure that properties, comparisons and reports share.

A :class:`Trace` holds, for each ``step()`` call, the value it returned, the parameters after it, a snapshot
of ``state_dict()`` after it, and every closure evaluation made during it. Properties compare traces with
:func:`trace_divergence` (first step, which tensor or state key, how many ULPs); reports read the same
objects instead of re-running optimizers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lbfgs_verify.compare.bitwise import Difference, clone_structure, first_difference
from lbfgs_verify.problems.base import flat


def flat_grad(params: Sequence[Tensor]) -> Tensor:
    """The gradients of ``params`` as one float64 vector; a missing gradient counts as zeros and a sparse one
    as its dense equivalent (torch's rules, ``torch/optim/lbfgs.py`` ``_gather_flat_grad``)."""
    return flat([torch.zeros_like(p) if p.grad is None else p.grad.to_dense() if p.grad.is_sparse else p.grad
                 for p in params])


@dataclass
class Evaluation:
    """One call of the closure: the loss it returned and, when recorded, the point and the gradient there
    (flat float64 vectors, see :func:`flat`)."""

    loss: float
    x: Tensor | None = None
    g: Tensor | None = None


@dataclass
class StepRecord:
    """What one ``optimizer.step(closure)`` call did.

    Attributes:
        index: 0-based number of the ``step()`` call within the run (continues across a resume).
        returned: the value ``step()`` returned, as a float (``None`` if it returned ``None``).
        params: clones of the parameters after the step.
        state: a deep snapshot of ``optimizer.state_dict()`` after the step (``None`` if not recorded).
        evaluations: the closure calls made during the step, in order.
    """

    index: int
    returned: float | None
    params: list[Tensor]
    state: dict[str, Any] | None
    evaluations: list[Evaluation] = field(default_factory=list)

    @property
    def closure_calls(self) -> int:
        return len(self.evaluations)


@dataclass
class Trace:
    """A recorded run: the labels that identify it, the start, and one :class:`StepRecord` per step."""

    label: str
    problem: str
    hyperparameters: dict[str, Any]
    initial_params: list[Tensor]
    steps: list[StepRecord] = field(default_factory=list)

    @property
    def final_params(self) -> list[Tensor]:
        return self.steps[-1].params if self.steps else self.initial_params

    @property
    def losses(self) -> list[float | None]:
        return [s.returned for s in self.steps]

    @property
    def evaluation_count(self) -> int:
        return sum(s.closure_calls for s in self.steps)


class CountingClosure:
    """Wraps a closure, recording each call's loss and (with ``keep_points``) the point and gradient."""

    def __init__(self, closure: Callable[[], Tensor], params: Sequence[Tensor], *, keep_points: bool = False):
        self._closure = closure
        self._params = list(params)
        self._keep_points = keep_points
        self.evaluations: list[Evaluation] = []

    def __call__(self) -> Tensor:
        x = flat(self._params) if self._keep_points else None
        loss = self._closure()
        value = float(loss.detach()) if isinstance(loss, Tensor) else float(loss)
        g = flat_grad(self._params) if self._keep_points else None
        self.evaluations.append(Evaluation(value, x, g))
        return loss

    def take(self) -> list[Evaluation]:
        """The evaluations since the last ``take()``."""
        out, self.evaluations = self.evaluations, []
        return out


def snapshot_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A deep, tensor-cloned copy of ``optimizer.state_dict()`` that later steps cannot change."""
    return clone_structure(optimizer.state_dict())


def record_steps(
    optimizer: torch.optim.Optimizer,
    params: Sequence[Tensor],
    closure: Callable[[], Tensor],
    n_steps: int,
    *,
    trace: Trace | None = None,
    label: str = "",
    problem: str = "",
    hyperparameters: dict[str, Any] | None = None,
    record_state: bool = True,
    keep_evaluation_points: bool = False,
) -> Trace:
    """Run ``n_steps`` calls of ``optimizer.step(closure)`` and record each; extend ``trace`` if given."""
    if trace is None:
        trace = Trace(label, problem, dict(hyperparameters or {}), [p.detach().clone() for p in params])
    counting = CountingClosure(closure, params, keep_points=keep_evaluation_points)
    start = len(trace.steps)
    for i in range(start, start + n_steps):
        returned = optimizer.step(counting)
        trace.steps.append(
            StepRecord(
                index=i,
                returned=None if returned is None else float(returned),
                params=[p.detach().clone() for p in params],
                state=snapshot_state(optimizer) if record_state else None,
                evaluations=counting.take(),
            )
        )
    return trace


@dataclass(frozen=True)
class Divergence:
    """Where two traces first differ: the step, and the :class:`~lbfgs_verify.compare.bitwise.Difference` there."""

    step: int
    difference: Difference

    def __str__(self) -> str:
        return f"step {self.step}: {self.difference}"


def trace_divergence(
    expected: Trace, actual: Trace, *, compare_state: bool = True, compare_returned: bool = True
) -> Divergence | None:
    """First step at which ``actual`` differs bitwise from ``expected`` (params, then returned loss, then state)."""
    if len(expected.steps) != len(actual.steps):
        n = min(len(expected.steps), len(actual.steps))
        diff = Difference("steps", "length", f"{len(expected.steps)} recorded steps != {len(actual.steps)}")
        first = _first_step_divergence(expected.steps[:n], actual.steps[:n], compare_state, compare_returned)
        return first or Divergence(n, diff)
    return _first_step_divergence(expected.steps, actual.steps, compare_state, compare_returned)


def _first_step_divergence(
    expected: list[StepRecord], actual: list[StepRecord], compare_state: bool, compare_returned: bool
) -> Divergence | None:
    for e, a in zip(expected, actual, strict=True):
        d = first_difference(e.params, a.params, "params")
        if d is None and compare_returned:
            d = first_difference(e.returned, a.returned, "returned loss")
        if d is None and compare_state and e.state is not None and a.state is not None:
            d = first_difference(e.state, a.state, "state_dict")
        if d is not None:
            return Divergence(e.index, d)
    return None
