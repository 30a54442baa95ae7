"""Planted bugs: mutants of :class:`~tests.quality.simple_lbfgs.SimpleLBFGS`, each with exactly ONE bug class,
and correct variants that only round differently or keep their state in another format.

Each mutant names in ``MUTANTS`` the property IDs that must report it (the first is the property named for
its bug class); ``tests/quality/test_planted_bugs.py`` runs them. Correct variants are in ``CORRECT_VARIANTS``
and must pass every property at level properties. ``CONVENTION_CONTROLS`` are correct L-BFGS with other
conventions than torch's: they pass level properties and fail level semantics; ``CONVENTIONS`` lists the
mutants that are only departures from torch's conventions (caught at level semantics).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.quality.simple_lbfgs import CircularMemory, SimpleLBFGS, _clone

# --------------------------------------------------------------------------------------------------------
# The two-loop recursion and the memory
# --------------------------------------------------------------------------------------------------------


class WrongSignTwoLoop(SimpleLBFGS):
    """First loop adds α·y instead of subtracting it (q ← q + α_i y_i)."""

    def _direction(self, g: Tensor) -> Tensor:
        memory = self.memory
        slots = memory.slots_oldest_first()
        q = g.neg()
        alphas: dict[int, Tensor] = {}
        for i in reversed(slots):
            alphas[i] = memory.rho[i] * memory.S[i].dot(q)
            q = q + alphas[i] * memory.Y[i]
        r = q * self.gamma
        for i in slots:
            beta = memory.rho[i] * memory.Y[i].dot(r)
            r = r + (alphas[i] - beta) * memory.S[i]
        return r


class SwappedLoopOrder(SimpleLBFGS):
    """Both loops run oldest to newest (the first loop must go newest to oldest)."""

    def _direction(self, g: Tensor) -> Tensor:
        memory = self.memory
        slots = memory.slots_oldest_first()
        q = g.neg()
        alphas: dict[int, Tensor] = {}
        for i in slots:
            alphas[i] = memory.rho[i] * memory.S[i].dot(q)
            q = q - alphas[i] * memory.Y[i]
        r = q * self.gamma
        for i in slots:
            beta = memory.rho[i] * memory.Y[i].dot(r)
            r = r + (alphas[i] - beta) * memory.S[i]
        return r


class InverseGamma(SimpleLBFGS):
    """Initial scaling γ = yᵀy/sᵀy (the Hessian scale, not the inverse-Hessian scale)."""

    def _gamma(self, s: Tensor, y: Tensor, ys: Tensor) -> Tensor | float:
        return y.dot(y) / ys


class UnitGamma(SimpleLBFGS):
    """No initial scaling: H₀ = I (γ = 1)."""

    def _gamma(self, s: Tensor, y: Tensor, ys: Tensor) -> Tensor | float:
        return 1.0


class GammaFromOldestPair(SimpleLBFGS):
    """γ computed from the oldest pair in memory instead of the newest."""

    def _remember(self, s: Tensor, y: Tensor) -> None:
        ys = y.dot(s)
        if self._curvature_ok(ys):
            self.memory.push(s, y, self._rho(ys))
            oldest = self.memory.slots_oldest_first()[0]
            S, Y = self.memory.S, self.memory.Y
            self.gamma = S[oldest].dot(Y[oldest]) / Y[oldest].dot(Y[oldest])


class RhoNotInverted(SimpleLBFGS):
    """ρ = yᵀs instead of 1/(yᵀs)."""

    def _rho(self, ys: Tensor) -> Tensor:
        return ys


class _ShortMemory(CircularMemory):
    def __init__(self, capacity: int):
        super().__init__(max(capacity - 1, 0))

    def resize(self, capacity: int) -> None:
        super().resize(max(capacity - 1, 0))


class HistoryOneShort(SimpleLBFGS):
    """The memory holds history_size - 1 pairs (off-by-one in the capacity)."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.memory = _ShortMemory(self.param_groups[0]["history_size"])

    def step(self, closure: Callable[[], Any]) -> Any:
        if not isinstance(self.memory, _ShortMemory):
            self.memory = _ShortMemory(self.memory.capacity + 1)
        return super().step(closure)


class _GrowingMemory(CircularMemory):
    def push(self, s: Tensor, y: Tensor, rho: Tensor) -> None:
        if self.size == self.capacity:
            self.resize(self.capacity + 1)
        super().push(s, y, rho)

    def resize(self, capacity: int) -> None:
        super().resize(max(capacity, self.capacity))


class HistoryNeverTrimmed(SimpleLBFGS):
    """Pairs are never discarded: the memory grows beyond history_size."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.memory = _GrowingMemory(self.param_groups[0]["history_size"])


class _KeepOldestMemory(CircularMemory):
    def push(self, s: Tensor, y: Tensor, rho: Tensor) -> None:
        if self.size == self.capacity:
            return
        super().push(s, y, rho)


class DropsNewestPair(SimpleLBFGS):
    """When the memory is full the new pair is dropped (the oldest are kept) — but γ still comes from it."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.memory = _KeepOldestMemory(self.param_groups[0]["history_size"])


class CurvatureCheckInverted(SimpleLBFGS):
    """Pairs are stored only when yᵀs <= 1e-10 (the test is inverted)."""

    def _curvature_ok(self, ys: Tensor) -> bool:
        return bool(ys <= self.curvature_threshold)


class CurvatureCheckMissing(SimpleLBFGS):
    """Every pair is stored, whatever its curvature (yᵀs <= 0 included)."""

    def _curvature_ok(self, ys: Tensor) -> bool:
        return bool(ys != 0)


class StaleGradientPair(SimpleLBFGS):
    """y is formed with the gradient of two iterations ago (prev_grad updated one iteration late)."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.older_grad: Tensor | None = None

    def _update_memory(self, g: Tensor) -> None:
        stale = self.older_grad if self.older_grad is not None else self.prev_grad
        if self.pending_step is not None and stale is not None:
            self._remember(self.pending_step, g - stale)
        self.older_grad = self.prev_grad


class StepStoresIterate(SimpleLBFGS):
    """s is stored as the new iterate x_{k+1} instead of the displacement x_{k+1} - x_k."""

    def _update_memory(self, g: Tensor) -> None:
        if self.pending_step is not None and self.prev_grad is not None:
            x = torch.cat([self._real(p.detach()).reshape(-1) for p in self.params])
            self._remember(x, g - self.prev_grad)


class ElementwiseGamma(SimpleLBFGS):
    """A diagonal H₀ = diag(|s_i y_i| / y_i²) (per coordinate) instead of γI: not rotation invariant."""

    def _gamma(self, s: Tensor, y: Tensor, ys: Tensor) -> Tensor | float:
        diag = (s * y).abs() / (y * y).clamp_min(1e-30)
        return diag.clamp(1e-8, 1e8)


class NoDescentGuard(SimpleLBFGS):
    """Pairs with negative curvature are stored AND the gᵀd >= 0 safeguard is gone: uphill moves."""

    def _curvature_ok(self, ys: Tensor) -> bool:
        return bool(ys != 0)

    def _not_descent(self, gtd: Tensor, tolerance_change: float) -> bool:
        return False


# --------------------------------------------------------------------------------------------------------
# Step lengths and the line search
# --------------------------------------------------------------------------------------------------------


class FirstStepUnscaled(SimpleLBFGS):
    """The first iteration uses t = lr (no min(1, 1/||g||₁) scaling)."""

    def _first_step_length(self, g: Tensor, lr: Any) -> Any:
        return lr


class FirstStepL2Norm(SimpleLBFGS):
    """The first-step scaling uses the L2 norm of g instead of the L1 norm."""

    def _first_step_length(self, g: Tensor, lr: Any) -> Any:
        return min(1.0, 1.0 / float(g.norm())) * lr


class FirstDirectionSign(SimpleLBFGS):
    """The first direction is -sign(g) (a descent direction, but not steepest descent)."""

    def _search_direction(self, g: Tensor, lr: Any) -> tuple[Tensor, Any]:
        if self.n_iter == 1:
            return g.sign().neg(), self._first_step_length(g, lr)
        return super()._search_direction(g, lr)


class WolfeConstantsSwapped(SimpleLBFGS):
    """c1 = 0.9 and c2 = 1e-4: no point satisfies both conditions, every search ends on its budget."""

    c1 = 0.9
    c2 = 1e-4


class ArmijoIgnored(SimpleLBFGS):
    """The sufficient-decrease test is missing: any trial with a small enough slope is accepted, even uphill."""

    def _sufficient_decrease(self, f: float, f0: float, a: float, gtd0: float) -> bool:
        return True


class CurvatureConditionIgnored(SimpleLBFGS):
    """The search accepts the first point with sufficient decrease (Armijo backtracking, no curvature test)."""

    def _curvature(self, gtd: float, gtd0: float) -> bool:
        return True


# --------------------------------------------------------------------------------------------------------
# Evaluations, iterations, stops
# --------------------------------------------------------------------------------------------------------


class MaxEvalIgnored(SimpleLBFGS):
    """The line search always gets 25 evaluations, whatever max_eval says."""

    def _line_search_budget(self, max_eval: int, evals: int) -> int:
        return 25


class ReevaluatesAfterLastIteration(SimpleLBFGS):
    """Without line search the closure is also called after the last move (one call too many per step)."""

    def _reevaluate_after_move(self, iteration: int, max_iter: int) -> bool:
        return True


class MaxIterOffByOne(SimpleLBFGS):
    """A step runs max_iter + 1 iterations."""

    def _max_iterations(self, max_iter: int) -> int:
        return max_iter + 1

    def _stop(self, *, iteration: int, hp: dict[str, Any], **kwargs: Any) -> bool:
        return super()._stop(iteration=iteration - 1, hp=hp, **kwargs)


class StopsOneIterationEarly(SimpleLBFGS):
    """A step runs max_iter - 1 iterations (at least one)."""

    def _max_iterations(self, max_iter: int) -> int:
        return max(1, max_iter - 1)


class StopsWhenLossRises(SimpleLBFGS):
    """A step ends as soon as the loss went up (a stopping rule torch does not have)."""

    def _stop(self, *, loss: float, prev_loss: float, **kwargs: Any) -> bool:
        return loss > prev_loss or super()._stop(loss=loss, prev_loss=prev_loss, **kwargs)


class GradToleranceOnMean(SimpleLBFGS):
    """tolerance_grad compared with the mean |g| instead of the max |g| (stops too early)."""

    def _stop(self, *, g: Tensor, hp: dict[str, Any], **kwargs: Any) -> bool:
        return bool(g.abs().mean() <= hp["tolerance_grad"]) or super()._stop(g=g, hp=hp, **kwargs)

    def _converged(self, g: Tensor, tolerance_grad: float) -> bool:
        return bool(g.abs().mean() <= tolerance_grad)


class FuncEvalsMiscounted(SimpleLBFGS):
    """The state's func_evals counts steps, not closure calls."""

    def _evaluate(self, closure: Callable[[], Any]) -> tuple[Any, float, Tensor]:
        before = self.func_evals
        out = super()._evaluate(closure)
        self.func_evals = before
        return out

    def step(self, closure: Callable[[], Any]) -> Any:
        self.func_evals += 1
        return super().step(closure)


class MovesWhenConverged(SimpleLBFGS):
    """The gradient test is only made after the first iteration: a converged point is still moved once."""

    def _converged(self, g: Tensor, tolerance_grad: float) -> bool:
        return False


class MovesParamsWithoutGrad(SimpleLBFGS):
    """A parameter without gradient gets its own value as 'gradient' (as if weight decay were applied)."""

    def _gather_grad(self) -> Tensor:
        parts = []
        for p in self.params:
            g = p.grad if p.grad is not None else p.detach()
            parts.append(self._real(g).reshape(-1))
        return torch.cat(parts)


class ReturnsFinalLoss(SimpleLBFGS):
    """step() returns the loss of its last closure call instead of the first one."""

    def _evaluate(self, closure: Callable[[], Any]) -> tuple[Any, float, Tensor]:
        out = super()._evaluate(closure)
        self._last_loss = out[0]
        return out

    def step(self, closure: Callable[[], Any]) -> Any:
        super().step(closure)
        return self._last_loss


# --------------------------------------------------------------------------------------------------------
# Hyperparameters
# --------------------------------------------------------------------------------------------------------


class DefaultHistorySize10(SimpleLBFGS):
    """history_size defaults to 10 instead of torch's 100."""

    def __init__(self, params: Any, lr: Any = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 10,
                 line_search_fn: str | None = None) -> None:
        super().__init__(params, lr, max_iter, max_eval, tolerance_grad, tolerance_change, history_size,
                         line_search_fn)


class DefaultMaxEvalEqualsMaxIter(SimpleLBFGS):
    """max_eval defaults to max_iter instead of max_iter * 5 // 4."""

    def __init__(self, params: Any, lr: Any = 1, max_iter: int = 20, max_eval: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(params, lr, max_iter, max_iter if max_eval is None else max_eval, **kwargs)


class IgnoresLrChange(SimpleLBFGS):
    """lr is read once, at construction; later changes of param_groups[0]['lr'] have no effect."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._lr_at_start = _clone(self.param_groups[0]["lr"])

    def _hyperparameters(self) -> dict[str, Any]:
        hp = super()._hyperparameters()
        hp["lr"] = self._lr_at_start
        return hp


class IgnoresMaxIterChange(SimpleLBFGS):
    """max_iter is read once, at construction."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._max_iter_at_start = self.param_groups[0]["max_iter"]

    def _hyperparameters(self) -> dict[str, Any]:
        hp = super()._hyperparameters()
        hp["max_iter"] = self._max_iter_at_start
        return hp


class IgnoresHistorySizeChange(SimpleLBFGS):
    """The memory keeps the capacity it was built with; a new history_size is ignored."""

    def _hyperparameters(self) -> dict[str, Any]:
        hp = super()._hyperparameters()
        hp["history_size"] = self.memory.capacity
        return hp


# --------------------------------------------------------------------------------------------------------
# State and resume (caught by helper-3's resume.* / state.* properties)
# --------------------------------------------------------------------------------------------------------


class CounterLostOnSave(SimpleLBFGS):
    """state_dict() omits n_iter and func_evals: a resumed optimizer restarts its counters (and applies the
    first-step rule again)."""

    def _state(self) -> dict[str, Any]:
        state = super()._state()
        del state["n_iter"], state["func_evals"]
        return state

    def _load_state(self, saved: dict[str, Any]) -> None:
        super()._load_state({**saved, "n_iter": 0, "func_evals": 0})


class HistoryRestartedOnLoad(SimpleLBFGS):
    """load_state_dict restores the counters but starts an empty memory."""

    def _load_state(self, saved: dict[str, Any]) -> None:
        super()._load_state(saved)
        self.memory = CircularMemory(self.param_groups[0]["history_size"])
        self.gamma = 1.0


class AliasedState(SimpleLBFGS):
    """state_dict() hands out the live tensors and load_state_dict keeps the given ones (no copies). The memory
    is written in place (``S[head] = s``), so a saved dict keeps changing and two optimizers loaded from one
    dict share their memory (pytorch #196083 in another shape)."""

    def _state(self) -> dict[str, Any]:
        m = self.memory
        return {"func_evals": self.func_evals, "n_iter": self.n_iter,
                "memory": {"capacity": m.capacity, "S": m.S, "Y": m.Y, "rho": m.rho, "head": m.head,
                           "size": m.size},
                "gamma": self.gamma, "pending_step": self.pending_step, "prev_grad": self.prev_grad,
                "prev_loss": self.prev_loss}

    def _load_state(self, saved: dict[str, Any]) -> None:
        self.func_evals, self.n_iter = int(saved["func_evals"]), int(saved["n_iter"])
        m = CircularMemory(int(saved["memory"]["capacity"]))
        m.S, m.Y, m.rho = saved["memory"]["S"], saved["memory"]["Y"], saved["memory"]["rho"]
        m.head, m.size = int(saved["memory"]["head"]), int(saved["memory"]["size"])
        self.memory = m
        self.gamma, self.pending_step = saved["gamma"], saved["pending_step"]
        self.prev_grad, self.prev_loss = saved["prev_grad"], saved["prev_loss"]

    def _remember_gradient(self, g: Tensor, loss: float) -> None:
        """torch's pattern: ``prev_flat_grad.copy_(flat_grad)``, in place into a tensor that may be shared."""
        if self.prev_grad is None:
            self.prev_grad = g.clone()
        else:
            self.prev_grad.copy_(g)
        self.prev_loss = loss


class RngDependent(SimpleLBFGS):
    """The trial step length is jittered by up to 5 % with the global RNG (torch.rand): runs depend on the seed."""

    def _line_search(self, closure: Callable[[], Any], d: Tensor, t: Any, *args: Any) -> Any:
        jitter = 1.0 + 0.05 * float(torch.rand(()))
        return super()._line_search(closure, d, float(t) * jitter, *args)

    def _search_direction(self, g: Tensor, lr: Any) -> tuple[Tensor, Any]:
        d, t = super()._search_direction(g, lr)
        if self.param_groups[0]["line_search_fn"] is None:
            t = t * (1.0 + 0.05 * float(torch.rand(())))
        return d, t


# --------------------------------------------------------------------------------------------------------
# Correct variants: they round differently or store their state differently, and must pass everything
# --------------------------------------------------------------------------------------------------------


class Float64Accumulation(SimpleLBFGS):
    """Correct: the two-loop recursion runs in float64 and the direction is cast back."""

    def _direction(self, g: Tensor) -> Tensor:
        memory = self.memory
        slots = memory.slots_oldest_first()
        q = g.neg().to(torch.float64)
        alphas: dict[int, Tensor] = {}
        for i in reversed(slots):
            s, y = memory.S[i].to(torch.float64), memory.Y[i].to(torch.float64)
            alphas[i] = memory.rho[i].to(torch.float64) * s.dot(q)
            q = q - alphas[i] * y
        gamma = self.gamma.to(torch.float64) if isinstance(self.gamma, Tensor) else self.gamma
        r = q * gamma
        for i in slots:
            s, y = memory.S[i].to(torch.float64), memory.Y[i].to(torch.float64)
            beta = memory.rho[i].to(torch.float64) * y.dot(r)
            r = r + (alphas[i] - beta) * s
        return r.to(g.dtype)


class ReorderedSummation(SimpleLBFGS):
    """Correct: inner products as (a * b).sum() in reversed element order (another summation order)."""

    def _dot(self, a: Tensor, b: Tensor) -> Tensor:
        return (a.flip(0) * b.flip(0)).sum()


class OpaqueState(SimpleLBFGS):
    """Correct: the whole state is one nested dict under its own key, without torch's names (properties that
    read torch's ``func_evals``/``n_iter`` must SKIP)."""

    def state_dict(self) -> dict[str, Any]:
        inner = self._state()
        return {"simple_lbfgs_v1": {"evaluations": inner.pop("func_evals"), "iterations": inner.pop("n_iter"),
                                    **inner},
                "hyperparameters": {k: _clone(v) for k, v in self.param_groups[0].items() if k != "params"}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        inner = dict(state_dict["simple_lbfgs_v1"])
        inner["func_evals"], inner["n_iter"] = inner.pop("evaluations"), inner.pop("iterations")
        self._validate(inner)
        for key, value in state_dict["hyperparameters"].items():
            self.param_groups[0][key] = _clone(value)
        self._load_state(inner)


# --------------------------------------------------------------------------------------------------------
# Controls: correct L-BFGS with other conventions than torch's (pass level properties, fail semantics)
# --------------------------------------------------------------------------------------------------------


class TorchFinalEvaluation(torch.optim.LBFGS):
    """Correct, other evaluation schedule: torch.optim.LBFGS plus one closure call at the final point of every
    ``step()`` (what scipy, torchmin and QQN do). Iterates and state are torch's own."""

    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        loss = super().step(closure)
        with torch.enable_grad():
            closure()
        return loss


class FirstStepLr(SimpleLBFGS):
    """Correct, other first-step rule: the first iteration ever takes t = lr along -g (no min(1, 1/||g||₁)
    scaling; Nocedal & Wright's Algorithm 7.5 leaves the first step to the line search)."""

    def _first_step_length(self, g: Tensor, lr: Any) -> Any:
        return lr


class TorchStricterWolfe(torch.optim.LBFGS):
    """Correct, stricter line search: torch.optim.LBFGS whose strong-Wolfe search uses c2 = 0.5 (its accepted
    points also satisfy c2 = 0.9, so every strong-Wolfe claim holds; torch's acceptance order does not)."""

    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        import functools

        import torch.optim.lbfgs as torch_lbfgs

        original = torch_lbfgs._strong_wolfe
        torch_lbfgs._strong_wolfe = functools.partial(original, c2=0.5)
        try:
            return super().step(closure)
        finally:
            torch_lbfgs._strong_wolfe = original


class StrongWolfeNeverMoves(SimpleLBFGS):
    """The strong-Wolfe search tries trial points but always returns the starting point (step length 0)."""

    def _line_search(self, closure: Callable[[], Any], d: Tensor, t: Any, f0: float, g0: Tensor, gtd0_t: Tensor,
                     budget: int, tolerance_change: float) -> tuple[float, Tensor, float, int]:
        x0 = self._get_x()
        _, used = super()._line_search(closure, d, t, f0, g0, gtd0_t, budget, tolerance_change)[2:]
        self._set_x(x0, 0.0, d)
        return f0, g0, 0.0, used


class RestartsMemoryEachStep(SimpleLBFGS):
    """Correct, no memory across step(): every ``step()`` starts a fresh L-BFGS (empty memory, first-step rule),
    as torchmin's and scipy's minimizers do; ``step()`` is then a whole minimization of up to max_iter
    iterations."""

    def step(self, closure: Callable[[], Any]) -> Any:
        self.memory = CircularMemory(self.param_groups[0]["history_size"])
        self.gamma, self.pending_step, self.prev_grad, self.prev_loss, self.n_iter = 1.0, None, None, None, 0
        return super().step(closure)


CONVENTION_CONTROLS: tuple[type, ...] = (TorchFinalEvaluation, FirstStepLr, TorchStricterWolfe,
                                         RestartsMemoryEachStep)
"""Correct L-BFGS with conventions other than torch's: they must pass level ``properties`` completely (torch's
own defects aside, :data:`TORCH_OWN_DEFECTS`) and fail level ``semantics``."""

TORCH_OWN_DEFECTS: dict[type, set[str]] = {
    TorchFinalEvaluation: {"behaviour.change_history_size"},
    TorchStricterWolfe: {"behaviour.change_history_size"},
}
"""Properties the torch-based controls inherit failures of from torch.optim.LBFGS 2.13 itself (IndexError
after a history_size change: facts defect #4)."""


MUTANTS: dict[type[SimpleLBFGS], tuple[str, ...]] = {
    WrongSignTwoLoop: ("mathematics.two_loop_direction",),
    SwappedLoopOrder: ("mathematics.two_loop_direction",),
    InverseGamma: ("mathematics.two_loop_direction",),
    UnitGamma: ("mathematics.two_loop_direction",),
    GammaFromOldestPair: ("mathematics.two_loop_direction",),
    RhoNotInverted: ("mathematics.two_loop_direction",),
    HistoryOneShort: ("mathematics.two_loop_direction",),
    HistoryNeverTrimmed: ("mathematics.two_loop_direction",),
    DropsNewestPair: ("mathematics.two_loop_direction",),
    CurvatureCheckInverted: ("mathematics.two_loop_direction",),
    CurvatureCheckMissing: ("mathematics.two_loop_direction",),
    StaleGradientPair: ("mathematics.two_loop_direction", "mathematics.quadratic_termination"),
    StepStoresIterate: ("mathematics.invariance", "mathematics.two_loop_direction"),
    ElementwiseGamma: ("mathematics.invariance", "mathematics.two_loop_direction"),
    NoDescentGuard: ("mathematics.descent_direction",),
    FirstStepUnscaled: ("mathematics.first_step",),
    FirstDirectionSign: ("mathematics.first_direction", "mathematics.first_step"),
    StrongWolfeNeverMoves: ("mathematics.strong_wolfe",),
    FirstStepL2Norm: ("mathematics.first_step",),
    WolfeConstantsSwapped: ("mathematics.strong_wolfe",),
    ArmijoIgnored: ("mathematics.strong_wolfe",),
    CurvatureConditionIgnored: ("mathematics.strong_wolfe",),
    MaxEvalIgnored: ("behaviour.max_eval",),
    ReevaluatesAfterLastIteration: ("behaviour.iterations",),
    MaxIterOffByOne: ("mathematics.two_loop_direction", "behaviour.iterations"),
    StopsOneIterationEarly: ("behaviour.max_iter", "behaviour.iterations"),
    StopsWhenLossRises: ("behaviour.stop_reasons",),
    GradToleranceOnMean: ("behaviour.stop_reasons",),
    FuncEvalsMiscounted: ("behaviour.func_evals",),
    MovesWhenConverged: ("behaviour.converged_no_move",),
    MovesParamsWithoutGrad: ("behaviour.no_grad_params",),
    ReturnsFinalLoss: ("behaviour.returns_first_loss",),
    DefaultHistorySize10: ("behaviour.defaults",),
    DefaultMaxEvalEqualsMaxIter: ("behaviour.defaults",),
    IgnoresLrChange: ("behaviour.change_lr",),
    IgnoresMaxIterChange: ("behaviour.change_max_iter",),
    IgnoresHistorySizeChange: ("behaviour.change_history_size",),
    CounterLostOnSave: ("resume.torch_save",),
    HistoryRestartedOnLoad: ("resume.torch_save", "resume.uses_saved_state"),
    AliasedState: ("state.snapshot", "state.load_independence"),
    RngDependent: ("resume.torch_save",),
}
"""Mutant → the property IDs that must FAIL for it (the first is the one named for its bug class)."""

CONVENTIONS: dict[type[SimpleLBFGS], str] = {
    FirstStepUnscaled: "t₀ = lr is another first-step rule (the FirstStepLr control is this very optimizer)",
    FirstStepL2Norm: "the length of the first step along -g is a convention; the direction is right",
    ReevaluatesAfterLastIteration: "evaluating the final point is another evaluation schedule (scipy, torchmin)",
    FuncEvalsMiscounted: "the state format, counters included, is free at level properties",
    ReturnsFinalLoss: "which loss step() returns is a convention (scipy-style optimizers return the final one)",
    DefaultHistorySize10: "defaults are torch's documented ones, not a property of L-BFGS",
    DefaultMaxEvalEqualsMaxIter: "defaults are torch's documented ones, not a property of L-BFGS",
    IgnoresHistorySizeChange: "a history_size change between steps matters only for a memory kept across step() "
                              "(torch's behaviour; an L-BFGS may restart its memory at every step())",
}
"""Mutants whose "bug" is a departure from torch's conventions or documented behaviour, not from L-BFGS: they
are caught at level ``semantics`` only (their properties belong there), and why. Every other mutant is caught
at level ``properties``."""

CORRECT_VARIANTS: tuple[type[SimpleLBFGS], ...] = (SimpleLBFGS, Float64Accumulation, ReorderedSummation,
                                                   OpaqueState)
