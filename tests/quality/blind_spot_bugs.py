"""Planted bugs for the blind spots of issue 11: mutants of :class:`~tests.quality.simple_lbfgs.SimpleLBFGS`
that the properties before ``stopping.*``, ``line_search.*``, ``state.loaded_dict_untouched`` /
``state.same_dict_loaded_twice`` and the NaN-aware comparisons did not catch, or blamed on the wrong property.

``BLIND_SPOT_MUTANTS`` maps each mutant to the property IDs that must FAIL for it; ``BLIND_SPOT_CORRECT``
holds correct optimizers with unusual details that must be judged (PASS), not errored or failed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tests.quality.simple_lbfgs import CircularMemory, SimpleLBFGS

# --------------------------------------------------------------------------------------------------------
# 1. Stops that should happen
# --------------------------------------------------------------------------------------------------------


class NoLossChangeStop(SimpleLBFGS):
    """Never stops on |f_k - f_{k-1}| < tolerance_change (the other stopping tests are kept)."""

    def _stop(self, *, g: Tensor, step: Tensor, loss: float, prev_loss: float, evals: int, hp: dict[str, Any],
              iteration: int) -> bool:
        return (iteration == hp["max_iter"] or evals >= hp["max_eval"] or bool(g.abs().max() <= hp["tolerance_grad"])
                or bool(step.abs().max() <= hp["tolerance_change"]))


class StepTestOnDirection(SimpleLBFGS):
    """Tests max|d| (the direction) instead of max|t·d| (the move) against tolerance_change."""

    def _stop(self, *, g: Tensor, step: Tensor, loss: float, prev_loss: float, evals: int, hp: dict[str, Any],
              iteration: int) -> bool:
        t = hp["lr"] if self.n_iter > 1 else 1.0
        direction = step / t if float(t) != 0.0 else step
        return (iteration == hp["max_iter"] or evals >= hp["max_eval"] or bool(g.abs().max() <= hp["tolerance_grad"])
                or bool(direction.abs().max() * 10 <= hp["tolerance_change"])
                or abs(loss - prev_loss) < hp["tolerance_change"])


class GradientTestOnlyAtStart(SimpleLBFGS):
    """Tests max|g| <= tolerance_grad only at the start of a step(), not after each iteration."""

    def _stop(self, *, g: Tensor, step: Tensor, loss: float, prev_loss: float, evals: int, hp: dict[str, Any],
              iteration: int) -> bool:
        return (iteration == hp["max_iter"] or evals >= hp["max_eval"]
                or bool(step.abs().max() <= hp["tolerance_change"]) or abs(loss - prev_loss) < hp["tolerance_change"])


# --------------------------------------------------------------------------------------------------------
# 2. The dict handed to load_state_dict
# --------------------------------------------------------------------------------------------------------


class LoadKeepsTheDictsTensors(SimpleLBFGS):
    """load_state_dict adopts the given dict's tensors as its live memory (no copy); later steps write the new
    pairs into them in place. Its own state_dict() is a snapshot, so the source optimizer is not affected."""

    def _load_state(self, saved: dict[str, Any]) -> None:
        self._validate(saved)
        self.func_evals = int(saved["func_evals"])
        self.n_iter = int(saved["n_iter"])
        memory = saved["memory"]
        self.memory = CircularMemory(int(memory["capacity"]))
        self.memory.S, self.memory.Y, self.memory.rho = memory["S"], memory["Y"], memory["rho"]
        self.memory.head, self.memory.size = int(memory["head"]), int(memory["size"])
        self.gamma = saved["gamma"]
        self.pending_step = saved["pending_step"]
        self.prev_grad = saved["prev_grad"]
        self.prev_loss = saved["prev_loss"]


# --------------------------------------------------------------------------------------------------------
# 3. The line search off the beaten path
# --------------------------------------------------------------------------------------------------------


class ArmijoWithoutStepLength(SimpleLBFGS):
    """Sufficient decrease tested as f <= f0 + c1·gᵀd, without the step length (identical for t = 1)."""

    def _sufficient_decrease(self, f: float, f0: float, a: float, gtd0: float) -> bool:
        return f <= f0 + self.c1 * gtd0


class CurvatureTestOneSided(SimpleLBFGS):
    """The strong curvature test written without the absolute value: φ'(α) <= c2·|φ'(0)| (any steep descent
    passes it), so a first trial far short of the minimiser is accepted."""

    def _curvature(self, gtd: float, gtd0: float) -> bool:
        return gtd <= -self.c2 * gtd0


class CubicOtherRoot(SimpleLBFGS):
    """The cubic interpolation takes the other root (d2 with the wrong sign): the trial is the cubic's maximiser
    side, clamped by the safeguards, so the search still ends at some Wolfe point, but later and elsewhere."""

    @staticmethod
    def _cubic_min(a0: float, f0: float, g0: float, a1: float, f1: float, g1: float, lo: float, hi: float) -> float:
        if a0 == a1:
            return 0.5 * (lo + hi)
        d1 = g0 + g1 - 3 * (f0 - f1) / (a0 - a1)
        disc = d1 * d1 - g0 * g1
        if disc < 0 or not math.isfinite(disc):
            return 0.5 * (lo + hi)
        d2 = -math.copysign(math.sqrt(disc), a1 - a0)
        denom = g1 - g0 + 2 * d2
        if denom == 0:
            return 0.5 * (lo + hi)
        a = a1 - (a1 - a0) * (g1 + d2 - d1) / denom
        return min(max(a, lo), hi) if math.isfinite(a) else 0.5 * (lo + hi)


class LineSearchBudgetOffByOne(SimpleLBFGS):
    """The line search may make one evaluation more than torch's ``max_ls + 1`` (``<=`` for ``<``): a step can make
    max_eval + 2 closure calls when no Wolfe point is found."""

    def _line_search_budget(self, max_eval: int, evals: int) -> int:
        return max_eval - evals + 2


class ZoomSlopeTestInverted(SimpleLBFGS):
    """Zoom: the test φ'(α)·(α_hi - α_lo) >= 0 written with <= (the bracket keeps the wrong end)."""

    @staticmethod
    def _slope_points_past_low(gtd: float, lo: float, hi: float) -> bool:
        return gtd * (hi - lo) <= 0


# --------------------------------------------------------------------------------------------------------
# 4. Blame: correct optimizers that the comparisons used to misjudge, and a NaN bug to be named rightly
# --------------------------------------------------------------------------------------------------------


def _strided_scalar(value: Tensor) -> Tensor:
    """A one-element tensor with stride 2 (it reports is_contiguous()): the real part of a complex pair."""
    pair = torch.stack((value.reshape(()), torch.zeros((), dtype=value.dtype)))
    return torch.view_as_complex(pair.reshape(1, 2).contiguous()).repeat(2)[0:1].real.clone()


class StridedStateScalar(SimpleLBFGS):
    """Correct: keeps γ in its state_dict as a one-element tensor of stride 2 (``v[0:1].real.clone()`` of a complex
    vector). The byte comparison used to raise "self.stride(-1) must be 1" on it: errors instead of verdicts."""

    def _state(self) -> dict[str, Any]:
        state = super()._state()
        if isinstance(state["gamma"], Tensor) and state["gamma"].dtype in (torch.float32, torch.float64):
            state["gamma"] = _strided_scalar(state["gamma"])
        return state

    def _load_state(self, saved: dict[str, Any]) -> None:
        saved = dict(saved)
        if isinstance(saved["gamma"], Tensor):
            saved["gamma"] = saved["gamma"].reshape(())
        super()._load_state(saved)


class DirectionOverflowsToNaN(SimpleLBFGS):
    """From the 5th iteration on, the direction is NaN (an overflow in the two-loop recursion). Its defaults are
    torch's: behaviour.defaults must pass (both of its runs go NaN at the same place); the bug is the direction's."""

    def _direction(self, g: Tensor) -> Tensor:
        d = super()._direction(g)
        return torch.full_like(d, float("nan")) if self.n_iter >= 5 else d


# Found by the mutation run of the reference (docs/mutation.md): stops at a tolerance's exact value, steps ended
# by max_eval or a tolerance, sparse gradients, the hyperparameter spellings torch accepts.


class StrictGradientTestAtStart(SimpleLBFGS):
    """Bug: at the start of a step the gradient test is max|g| < tolerance_grad."""

    def _converged(self, g: Tensor, tolerance_grad: float) -> bool:
        return bool(g.abs().max() < tolerance_grad)


class StrictGradientTestAfterIteration(SimpleLBFGS):
    """Bug: after an iteration the gradient test is max|g| < tolerance_grad."""

    def _stop(self, *, g: Tensor, hp: dict[str, Any], **rest: Any) -> bool:
        loose = {**hp, "tolerance_grad": -1.0}  # the inherited tests without the gradient one
        return bool(g.abs().max() < hp["tolerance_grad"]) or super()._stop(g=g, hp=loose, **rest)


class NoGradientTestAfterSearch(SimpleLBFGS):
    """Bug: after a strong-Wolfe line search the gradient test is skipped (``opt_cond`` left unset)."""

    def _stop(self, *, g: Tensor, hp: dict[str, Any], **rest: Any) -> bool:
        if hp["line_search_fn"] == "strong_wolfe":
            hp = {**hp, "tolerance_grad": -1.0}
        return super()._stop(g=g, hp=hp, **rest)


class LooseLossChangeTest(SimpleLBFGS):
    """Bug: the loss-change test is |f_k - f_(k-1)| <= tolerance_change (torch: strict <)."""

    def _stop(self, *, loss: float, prev_loss: float, hp: dict[str, Any], **rest: Any) -> bool:
        return abs(loss - prev_loss) <= hp["tolerance_change"] or super()._stop(loss=loss, prev_loss=prev_loss,
                                                                                hp=hp, **rest)


class DescentTestSignFlipped(SimpleLBFGS):
    """Bug: the descent test is gᵀd > +tolerance_change, so it never fires on a descent direction (mutant 222 of
    the reference's ``_iterate`` in the mutation run, killed then only by the bitwise stage)."""

    def _not_descent(self, gtd: Tensor, tolerance_change: float) -> bool:
        return bool(gtd > tolerance_change)


class ReturnsNothingWhenATestStops(SimpleLBFGS):
    """Bug: a step that ends on max_eval or a tolerance (not on max_iter) returns None (a ``return`` where torch
    has ``break``: a survivor of the mutation run of the reference)."""

    def _stop(self, **tests: Any) -> bool:
        stop = super()._stop(**tests)
        self.ended_early = stop and tests["iteration"] != tests["hp"]["max_iter"]
        return stop

    def step(self, closure: Any) -> Any:
        self.ended_early = False
        loss = super().step(closure)
        return None if self.ended_early else loss


class MaxEvalTestStrict(SimpleLBFGS):
    """Bug: a step stops on its evaluation budget only once it has made more than max_eval calls (> for >=)."""

    def _stop(self, *, evals: int, hp: dict[str, Any], **rest: Any) -> bool:
        return evals > hp["max_eval"] or super()._stop(evals=evals, hp={**hp, "max_eval": float("inf")}, **rest)


class SparseGradientAsZero(SimpleLBFGS):
    """Bug: a sparse gradient counts as no gradient (zeros)."""

    def _gather_grad(self) -> Tensor:
        parts = [torch.zeros_like(p).reshape(-1) if p.grad is None or p.grad.is_sparse else
                 self._real(p.grad).reshape(-1) for p in self.params]
        return torch.cat(parts)


class SparseGradientValuesOnly(SimpleLBFGS):
    """Bug: a sparse gradient contributes its stored values only, zero-padded (the rows land in the wrong place)."""

    def _gather_grad(self) -> Tensor:
        parts = []
        for p in self.params:
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            if g.is_sparse:
                values = g.coalesce().values().reshape(-1)
                g = torch.cat([values, values.new_zeros(p.numel() - values.numel())])
            parts.append(self._real(g).reshape(-1))
        return torch.cat(parts)


class LrTensorNotSqueezed(SimpleLBFGS):
    """Bug: a 1-element lr tensor of shape (1,) is used as it is (add_ refuses it as alpha)."""

    def _hyperparameters(self) -> dict[str, Any]:
        return dict(self.param_groups[0])


class RefusesNumpyScalars(SimpleLBFGS):
    """Bug: numpy scalars (a config's values) are refused."""

    def __init__(self, params: Any, **hyperparameters: Any) -> None:
        bad = [k for k, v in hyperparameters.items() if isinstance(v, np.generic)]
        if bad:
            raise TypeError(f"{bad} must be Python numbers")
        super().__init__(params, **hyperparameters)


class RefusesZeroLr(SimpleLBFGS):
    """Bug: lr = 0 is refused (torch builds and steps with it)."""

    def __init__(self, params: Any, lr: float | Tensor = 1, **hyperparameters: Any) -> None:
        if float(lr) <= 0.0:
            raise ValueError("lr must be positive")
        super().__init__(params, lr=lr, **hyperparameters)


class AcceptsNegativeLr(SimpleLBFGS):
    """Bug: a negative lr is accepted (and walks uphill)."""

    def __init__(self, params: Any, lr: float | Tensor = 1, **hyperparameters: Any) -> None:
        super().__init__(params, lr=abs(lr), **hyperparameters)
        self.param_groups[0]["lr"] = lr


BLIND_SPOT_MUTANTS: dict[type[SimpleLBFGS], tuple[str, ...]] = {
    NoLossChangeStop: ("stopping.loss_change",),
    StepTestOnDirection: ("stopping.step_size",),
    GradientTestOnlyAtStart: ("stopping.gradient",),
    LoadKeepsTheDictsTensors: ("state.loaded_dict_untouched", "state.same_dict_loaded_twice"),
    ArmijoWithoutStepLength: ("line_search.sufficient_decrease_scales_with_step", "line_search.sufficient_decrease"),
    CurvatureTestOneSided: ("line_search.more_thuente_functions",),
    ZoomSlopeTestInverted: ("line_search.curvature_at_far_end",),
    CubicOtherRoot: ("line_search.interpolation_exact_on_quadratics",),
    LineSearchBudgetOffByOne: ("line_search.budget_without_wolfe_point",),
    DirectionOverflowsToNaN: ("mathematics.quadratic_termination", "convergence.reaches_f_star"),
    StrictGradientTestAtStart: ("stopping.equal_to_tolerance",),
    StrictGradientTestAfterIteration: ("stopping.equal_to_tolerance",),
    NoGradientTestAfterSearch: ("stopping.equal_to_tolerance",),
    LooseLossChangeTest: ("stopping.equal_to_tolerance",),
    DescentTestSignFlipped: ("stopping.descent_test",),
    ReturnsNothingWhenATestStops: ("behaviour.returns_first_loss",),
    MaxEvalTestStrict: ("behaviour.iterations",),
    SparseGradientAsZero: ("behaviour.sparse_gradients",),
    SparseGradientValuesOnly: ("behaviour.sparse_gradients",),
    LrTensorNotSqueezed: ("behaviour.accepts_what_torch_accepts",),
    RefusesNumpyScalars: ("behaviour.accepts_what_torch_accepts",),
    RefusesZeroLr: ("behaviour.accepts_what_torch_accepts",),
    AcceptsNegativeLr: ("behaviour.accepts_what_torch_accepts",),
}

BLIND_SPOT_CORRECT: dict[type[SimpleLBFGS], tuple[str, ...]] = {
    StridedStateScalar: ("resume.torch_save", "resume.deepcopy_state_dict", "state.round_trip_exact",
                         "state.snapshot", "state.loaded_dict_untouched"),
    DirectionOverflowsToNaN: ("behaviour.defaults",),
}
"""Optimizers and the properties that must PASS for them (judged, not errored; NaN ≠ NaN not blamed)."""
