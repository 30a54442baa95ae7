"""Planted bugs of the classes issue 19 (point 5) found never drawn, each planted on the two independent
implementations (:mod:`tests.quality.independent`) and on a torch-derived optimizer (``torch.optim.LBFGS``
subclassed, or the reference — torch's twin — compiled with one comparison changed):

1. an update written into ``p.reshape(-1)``: for a non-contiguous parameter that is a copy, the update is lost;
2. sufficient decrease tested without the step length: f <= f0 + c1·gᵀd instead of f0 + c1·t·gᵀd
   (N&W eq. 3.6); looser than the right test only where t > 1;
3. state kept outside ``state_dict()`` (an attribute counting step() calls) that acts only after the 6th step;
4. a lowered ``history_size`` that keeps the OLDEST pairs (N&W §7.2: the m most recent pairs);
5. one closure call past ``max_eval`` (``evals > max_eval`` written for ``>=``);
6. the iteration counter kept outside the state (an attribute), so a loaded optimizer starts over.

``TRUST_BUGS`` maps each planted class to the property that must report it. The compact implementation
restarts its memory at every step(), so class 4 has nothing to plant on it (a lowered history_size between
steps meets an empty memory).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import lbfgs_verify.reference.lbfgs as reference_module
from tests.quality.independent import circular_lbfgs, compact_lbfgs
from tests.quality.independent.circular_lbfgs import CircularLBFGS, _real_view
from tests.quality.independent.compact_lbfgs import CompactLBFGS, _as_real
from tests.quality.search_mutants import _PlantedSearch


def _compiled(module: types.ModuleType, name: str, replacements: tuple[tuple[str, str], ...]) -> Any:
    """``module``'s attribute ``name`` compiled from the module's source with each ``old -> new`` applied (each
    ``old`` must occur, so a planted bug cannot silently vanish when the source changes)."""
    source = inspect.getsource(module)
    for old, new in replacements:
        if old not in source:
            raise AssertionError(f"planted bug: {old!r} no longer occurs in {module.__name__}")
        source = source.replace(old, new)
    namespace: dict[str, Any] = {"__name__": module.__name__, "__package__": module.__package__}
    exec(compile(source, module.__file__ or module.__name__, "exec"), namespace)
    return namespace[name]


# --------------------------------------------------------------------------------------------------------
# 1. The update written into p.reshape(-1)
# --------------------------------------------------------------------------------------------------------


class CircularReshapeCopy(CircularLBFGS):
    """Writes the new values into ``p.data.reshape(-1)``: a copy when ``p`` is not contiguous (lost silently)."""

    def _write_x(self, x: Tensor, has: list[bool]) -> None:
        offset = 0
        for p, size, moves in zip(self._params, self._sizes, has, strict=True):
            if moves:
                _real_view(p.data).reshape(-1).copy_(x[offset:offset + size])
            offset += size


class CompactReshapeCopy(CompactLBFGS):
    """As :class:`CircularReshapeCopy`, in the compact implementation."""

    def _set_params(self, flat: Tensor, mask: Tensor) -> None:
        start = 0
        for p, n in zip(self._params, self._numels, strict=True):
            if n and bool(mask[start]):
                _as_real(p.data).reshape(-1).copy_(flat[start:start + n])
            start += n


class TorchReshapeCopy(torch.optim.LBFGS):
    """torch.optim.LBFGS whose ``_add_grad`` adds into ``p.reshape(-1)`` instead of a view of ``p``."""

    def _add_grad(self, step_size: Any, update: Tensor) -> None:
        offset = 0
        for p in self._params:
            real = torch.view_as_real(p) if torch.is_complex(p) else p
            numel = real.numel()
            real.reshape(-1).add_(update[offset:offset + numel], alpha=step_size)
            offset += numel


# --------------------------------------------------------------------------------------------------------
# 2. Sufficient decrease without the step length
# --------------------------------------------------------------------------------------------------------


class CircularArmijoWithoutStep(_compiled(circular_lbfgs, "CircularLBFGS",
                                          (("f_a > f0 + C1 * a * dphi0", "f_a > f0 + C1 * dphi0"),))):
    """Sufficient decrease tested as f <= f0 + c1·gᵀd (no t), in bracketing and zoom."""


class CompactArmijoWithoutStep(_compiled(compact_lbfgs, "CompactLBFGS",
                                         (("f > f0 + WOLFE_C1 * a * slope0", "f > f0 + WOLFE_C1 * slope0"),))):
    """As :class:`CircularArmijoWithoutStep`, in the compact implementation."""


class TorchArmijoWithoutStep(_PlantedSearch):
    """The reference (torch's twin) whose strong-Wolfe search tests f_new > f + c1·gᵀd (no t)."""

    REPLACEMENTS = (("loss + c1 * t * gtd", "loss + c1 * gtd"),)


# --------------------------------------------------------------------------------------------------------
# 3. State outside state_dict() that acts only after the 6th step
# --------------------------------------------------------------------------------------------------------

DECAY_AFTER = 6
"""The planted schedule halves lr from the (DECAY_AFTER + 1)-th step() call of the optimizer object."""


def _with_decay(step: Callable[[Any], Any], optimizer: Any, closure: Any) -> Any:
    """Run ``step(closure)`` with lr halved once the optimizer object has made more than DECAY_AFTER calls (a
    count kept in an attribute, not in the state: a loaded optimizer counts from 0)."""
    optimizer._calls = getattr(optimizer, "_calls", 0) + 1
    group = optimizer.param_groups[0]
    if optimizer._calls <= DECAY_AFTER:
        return step(closure)
    lr = group["lr"]
    group["lr"] = lr * 0.5
    try:
        return step(closure)
    finally:
        group["lr"] = lr


class CircularDecayOutsideState(CircularLBFGS):
    """lr halved after the 6th step(), counted in an attribute (lost by state_dict)."""

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        return _with_decay(super().step, self, closure)


class CompactDecayOutsideState(CompactLBFGS):
    """As :class:`CircularDecayOutsideState`, in the compact implementation."""

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        return _with_decay(super().step, self, closure)


class TorchDecayOutsideState(torch.optim.LBFGS):
    """torch.optim.LBFGS with the same lr schedule counted in an attribute."""

    def step(self, closure: Any) -> Any:  # type: ignore[override]
        return _with_decay(super().step, self, closure)


# --------------------------------------------------------------------------------------------------------
# 4. A lowered history_size keeps the oldest pairs
# --------------------------------------------------------------------------------------------------------


class CircularKeepsOldestPairs(_compiled(circular_lbfgs, "CircularLBFGS",
                                         (("order = self._order(state)[-capacity:]",
                                           "order = self._order(state)[:capacity]"),))):
    """When history_size is lowered the buffer keeps its OLDEST pairs (rows oldest first, sliced from the
    front)."""


class TorchKeepsOldestPairs(torch.optim.LBFGS):
    """torch.optim.LBFGS that, when history_size was lowered below the pairs held, keeps the oldest ones."""

    def step(self, closure: Any) -> Any:  # type: ignore[override]
        group = self.param_groups[0]
        state = self.state[self._params[0]]
        m = group["history_size"]
        if len(state.get("old_dirs", ())) > m:
            for key in ("old_dirs", "old_stps", "ro"):
                state[key] = state[key][:m]
        return super().step(closure)


# --------------------------------------------------------------------------------------------------------
# 5. One closure call past max_eval
# --------------------------------------------------------------------------------------------------------


class CircularMaxEvalStrict(_compiled(circular_lbfgs, "CircularLBFGS", (
        ("if evals >= max_eval:  # no call left", "if evals > max_eval:  # no call left"),
        ("if moves >= max_iter or evals >= max_eval:", "if moves >= max_iter or evals > max_eval:")))):
    """Evaluates the new point while evals == max_eval, and stops only once evals > max_eval."""


class CompactMaxEvalStrict(_compiled(compact_lbfgs, "CompactLBFGS", (
        ("                if calls >= max_eval:\n                    break\n                out_new",
         "                if calls > max_eval:\n                    break\n                out_new"),
        ("if iterations >= max_iter or calls >= max_eval:", "if iterations >= max_iter or calls > max_eval:")))):
    """As :class:`CircularMaxEvalStrict`, in the compact implementation."""


class TorchMaxEvalStrict(_compiled(reference_module, "LBFGS", (
        ("if current_evals >= max_eval:\n                break",
         "if current_evals > max_eval:\n                break"),))):
    """The reference (torch's twin) whose stopping test is ``current_evals > max_eval``."""


# --------------------------------------------------------------------------------------------------------
# 6. The iteration counter outside the state
# --------------------------------------------------------------------------------------------------------


class TorchCounterOutsideState(torch.optim.LBFGS):
    """torch.optim.LBFGS keeping ``n_iter`` in ``self._n_iter``: restored into the state before each step and
    read back after, so a loaded optimizer restarts at 0 and takes the first-iteration branch (memory
    cleared)."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._n_iter = 0

    def step(self, closure: Any) -> Any:  # type: ignore[override]
        state = self.state[self._params[0]]
        state["n_iter"] = getattr(self, "_n_iter", 0)
        loss = super().step(closure)
        self._n_iter = state["n_iter"]
        return loss


class CircularCounterOutsideState(CircularLBFGS):
    """Counts iterations in ``self._iterations``; the first iteration of the object's life clears the memory
    (a fresh start), so a loaded optimizer forgets its pairs."""

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        if getattr(self, "_iterations", 0) == 0:
            state = self.state[self._params[0]]
            if "count" in state:
                state["count"], state["head"], state["pending"] = 0, 0, 0
        loss = super().step(closure)
        self._iterations = getattr(self, "_iterations", 0) + 1
        return loss


class CompactCounterOutsideState(_compiled(compact_lbfgs, "CompactLBFGS", (
        ("if not S and iterations == 0 else lr",
         "if not S and iterations == 0 and not getattr(self, '_started', False) else lr"),
        ("        counters[1] += iterations", "        self._started = True\n        counters[1] += iterations")))):
    """The first-step rule t = lr·min(1, 1/‖g‖₂) only on the first step() of the object, remembered in an
    attribute: a loaded optimizer applies it again."""


TRUST_BUGS: dict[type, str] = {
    CircularReshapeCopy: "mathematics.invariance",
    CompactReshapeCopy: "mathematics.invariance",
    TorchReshapeCopy: "mathematics.invariance",
    CircularArmijoWithoutStep: "line_search.sufficient_decrease",
    CompactArmijoWithoutStep: "line_search.sufficient_decrease",
    TorchArmijoWithoutStep: "line_search.sufficient_decrease",
    CircularDecayOutsideState: "resume.torch_save",
    CompactDecayOutsideState: "resume.torch_save",
    TorchDecayOutsideState: "resume.torch_save",
    CircularKeepsOldestPairs: "behaviour.lowered_history_uses_newest",
    TorchKeepsOldestPairs: "behaviour.lowered_history_uses_newest",
    CircularMaxEvalStrict: "behaviour.max_eval",
    CompactMaxEvalStrict: "behaviour.max_eval",
    TorchMaxEvalStrict: "behaviour.max_eval",
    TorchCounterOutsideState: "resume.torch_save",
    CircularCounterOutsideState: "resume.torch_save",
    CompactCounterOutsideState: "resume.torch_save",
}
"""Planted class -> the property (level ``properties``) that must FAIL for it."""
