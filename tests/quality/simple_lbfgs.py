"""A small, independent L-BFGS with ``torch.optim.LBFGS``'s constructor and semantics: the planted-bug host.

It is written from Nocedal & Wright, *Numerical Optimization* (2nd ed.), not from ``torch/optim/lbfgs.py``,
and is deliberately structured differently so that the harness's black-box properties are shown to hold
for an implementation that is correct but not torch's twin:

- the memory is a circular buffer of stacked tensors ``S``, ``Y`` (shape ``(capacity, n)``) and ``rho``
  (shape ``(capacity,)``) with a write head, instead of Python lists that are popped and appended;
- the step taken is kept as one vector ``pending_step = t·d`` instead of ``d`` and ``t`` apart;
- the line search is Nocedal & Wright's Algorithms 3.5 (bracketing) and 3.6 (zoom) with safeguarded cubic
  interpolation, not torch's port of Lua ``lswolfe``;
- ``state_dict()`` has its own layout (only the counters ``func_evals``/``n_iter`` use torch's names) and is
  always a snapshot; ``load_state_dict`` copies.

Semantics shared with torch (see docs/torch-2.13-lbfgs.md): every ``step()`` evaluates the closure
once first and returns that loss; the first iteration ever moves along ``-g`` with ``t = min(1, 1/||g||_1)·lr``,
later ones start from ``t = lr``; a pair is stored only if ``yᵀs > 1e-10``; H₀ = γI with γ = sᵀy/yᵀy of the
newest stored pair; without a line search the closure is not evaluated after the last iteration; the
stopping tests are torch's; a step makes at most ``max_eval + 1`` closure calls; hyperparameters are read
from ``param_groups[0]`` at every step; changing ``history_size`` keeps the newest pairs.

Every piece of the iteration is a small method so that ``planted_bugs.py`` can replace exactly one of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

HYPERPARAMETERS = ("lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size",
                   "line_search_fn")


def _clone(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


class CircularMemory:
    """The (s, y) pairs as stacked rows of ``S`` and ``Y`` with ``rho = 1/(yᵀs)``, written at ``head``.

    Slots are allocated lazily (dtype and size of the first pair). ``size`` pairs are valid; the oldest valid
    slot is ``(head - size) mod capacity``.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.S: Tensor | None = None
        self.Y: Tensor | None = None
        self.rho: Tensor | None = None
        self.head = 0
        self.size = 0

    def slots_oldest_first(self) -> list[int]:
        start = (self.head - self.size) % self.capacity if self.capacity else 0
        return [(start + i) % self.capacity for i in range(self.size)]

    def push(self, s: Tensor, y: Tensor, rho: Tensor) -> None:
        """Store a pair; when full, it overwrites the oldest."""
        if self.capacity == 0:
            return
        if self.S is None or self.Y is None or self.rho is None:
            self.S = s.new_zeros((self.capacity, s.numel()))
            self.Y = y.new_zeros((self.capacity, y.numel()))
            self.rho = rho.new_zeros((self.capacity,))
        self.S[self.head] = s
        self.Y[self.head] = y
        self.rho[self.head] = rho
        self.head = (self.head + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def resize(self, capacity: int) -> None:
        """A new capacity, keeping the newest pairs (history_size changed between steps)."""
        if capacity == self.capacity:
            return
        slots = self.slots_oldest_first()[-capacity:] if capacity else []
        old = (self.S, self.Y, self.rho)
        self.capacity, self.head, self.size = capacity, 0, 0
        self.S = self.Y = self.rho = None
        if old[0] is not None and old[1] is not None and old[2] is not None:
            for i in slots:
                self.push(old[0][i], old[1][i], old[2][i])

    def to_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "S": _clone(self.S), "Y": _clone(self.Y), "rho": _clone(self.rho),
                "head": self.head, "size": self.size}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> CircularMemory:
        memory = cls(int(saved["capacity"]))
        memory.S, memory.Y, memory.rho = _clone(saved["S"]), _clone(saved["Y"]), _clone(saved["rho"])
        memory.head, memory.size = int(saved["head"]), int(saved["size"])
        return memory


class SimpleLBFGS:
    """L-BFGS (N&W Alg. 7.5) with torch.optim.LBFGS's constructor, defaults and semantics; own state layout."""

    c1 = 1e-4
    """Sufficient-decrease constant of the strong-Wolfe search (N&W eq. 3.7a)."""
    c2 = 0.9
    """Curvature constant of the strong-Wolfe search (N&W eq. 3.7b)."""
    curvature_threshold = 1e-10
    """A pair is stored only if yᵀs exceeds this (torch's absolute threshold)."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float | Tensor = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        params = list(params)
        if not params:
            raise ValueError("SimpleLBFGS got an empty parameter list")
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not float(lr) >= 0.0:
            raise ValueError(f"invalid learning rate {lr}")
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        self.param_groups: list[dict[str, Any]] = [{
            "params": params, "lr": lr, "max_iter": max_iter, "max_eval": max_eval,
            "tolerance_grad": tolerance_grad, "tolerance_change": tolerance_change, "history_size": history_size,
            "line_search_fn": line_search_fn,
        }]
        self.memory = CircularMemory(history_size)
        self.gamma: Tensor | float = 1.0
        self.func_evals = 0
        self.n_iter = 0
        self.pending_step: Tensor | None = None
        self.prev_grad: Tensor | None = None
        self.prev_loss: float | None = None

    # --- parameters as one flat vector ---------------------------------------------------------------------
    @property
    def params(self) -> list[Tensor]:
        return self.param_groups[0]["params"]

    @staticmethod
    def _real(p: Tensor) -> Tensor:
        return torch.view_as_real(p) if p.is_complex() else p

    def _gather_grad(self) -> Tensor:
        """The gradient as one flat vector; a parameter without gradient contributes zeros, a sparse one its dense
        values."""
        parts = []
        for p in self.params:
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            g = g.to_dense() if g.is_sparse else g
            parts.append(self._real(g).reshape(-1))
        return torch.cat(parts)

    def _get_x(self) -> list[Tensor]:
        return [p.detach().clone() for p in self.params]

    def _set_x(self, x: list[Tensor], t: Any = 0.0, d: Tensor | None = None) -> None:
        """Parameters ← x + t·d."""
        offset = 0
        for p, x0 in zip(self.params, x, strict=True):
            p.copy_(x0)
            if d is not None:
                view = self._real(p)
                view.add_(d[offset:offset + view.numel()].view_as(view), alpha=t)
                offset += view.numel()

    def _move(self, t: Any, d: Tensor) -> None:
        """Parameters ← parameters + t·d."""
        offset = 0
        for p in self.params:
            view = self._real(p)
            view.add_(d[offset:offset + view.numel()].view_as(view), alpha=t)
            offset += view.numel()

    def _evaluate(self, closure: Callable[[], Any]) -> tuple[Any, float, Tensor]:
        with torch.enable_grad():
            loss = closure()
        self.func_evals += 1
        return loss, float(loss), self._gather_grad()

    # --- hyperparameters -----------------------------------------------------------------------------------
    def _hyperparameters(self) -> dict[str, Any]:
        """``param_groups[0]``, with a 1-element lr tensor of any shape as a 0-dim tensor (torch squeezes it)."""
        hp = dict(self.param_groups[0])
        if isinstance(hp["lr"], Tensor) and hp["lr"].dim() != 0:
            hp["lr"] = hp["lr"].squeeze()
        return hp

    # --- the pieces of an iteration --------------------------------------------------------------------------
    def _first_step_length(self, g: Tensor, lr: Any) -> Any:
        """t₀ = min(1, 1/||g||₁)·lr (torch's rule for the first iteration)."""
        return min(1.0, 1.0 / float(g.abs().sum())) * lr

    def _curvature_ok(self, ys: Tensor) -> bool:
        return bool(ys > self.curvature_threshold)

    def _rho(self, ys: Tensor) -> Tensor:
        return 1.0 / ys

    def _gamma(self, s: Tensor, y: Tensor, ys: Tensor) -> Tensor | float:
        """γ = sᵀy / yᵀy (N&W eq. 7.20)."""
        return ys / y.dot(y)

    def _remember(self, s: Tensor, y: Tensor) -> None:
        """Store (s, y) if it has positive curvature; update γ from it."""
        ys = y.dot(s)
        if self._curvature_ok(ys):
            self.memory.push(s, y, self._rho(ys))
            self.gamma = self._gamma(s, y, ys)

    def _dot(self, a: Tensor, b: Tensor) -> Tensor:
        return a.dot(b)

    def _direction(self, g: Tensor) -> Tensor:
        """d = -H g by the two-loop recursion over the circular buffer (N&W Alg. 7.4)."""
        memory = self.memory
        slots = memory.slots_oldest_first()
        q = g.neg()
        alphas: dict[int, Tensor] = {}
        if slots:
            assert memory.S is not None and memory.Y is not None and memory.rho is not None
            for i in reversed(slots):
                alphas[i] = memory.rho[i] * self._dot(memory.S[i], q)
                q = q - alphas[i] * memory.Y[i]
        r = q * self.gamma
        for i in slots:
            assert memory.S is not None and memory.Y is not None and memory.rho is not None
            beta = memory.rho[i] * self._dot(memory.Y[i], r)
            r = r + (alphas[i] - beta) * memory.S[i]
        return r

    def _search_direction(self, g: Tensor, lr: Any) -> tuple[Tensor, Any]:
        """Direction and initial step length of the current iteration (memory already updated)."""
        if self.n_iter == 1:
            return g.neg(), self._first_step_length(g, lr)
        return self._direction(g), lr

    def _update_memory(self, g: Tensor) -> None:
        """Form the pair from the last step and the gradient change, and remember it."""
        if self.pending_step is not None and self.prev_grad is not None:
            self._remember(self.pending_step, g - self.prev_grad)

    def _line_search_budget(self, max_eval: int, evals: int) -> int:
        """Evaluations the line search may make: torch's ``max_ls + 1`` with ``max_ls = max_eval - evals``."""
        return max_eval - evals + 1

    def _stop(self, *, g: Tensor, step: Tensor, loss: float, prev_loss: float, evals: int, hp: dict[str, Any],
              iteration: int) -> bool:
        """torch's stopping tests after an iteration: max_iter, max_eval, gradient, step, loss change."""
        if iteration == hp["max_iter"]:
            return True
        if evals >= hp["max_eval"]:
            return True
        if g.abs().max() <= hp["tolerance_grad"]:
            return True
        if step.abs().max() <= hp["tolerance_change"]:
            return True
        return abs(loss - prev_loss) < hp["tolerance_change"]

    def _converged(self, g: Tensor, tolerance_grad: float) -> bool:
        return bool(g.abs().max() <= tolerance_grad)

    def _reevaluate_after_move(self, iteration: int, max_iter: int) -> bool:
        """Without a line search the closure is not evaluated after the last iteration (torch's rule)."""
        return iteration != max_iter

    def _max_iterations(self, max_iter: int) -> int:
        return max_iter

    def _remember_gradient(self, g: Tensor, loss: float) -> None:
        """Keep g and f of the iteration's start for the next pair (a new tensor: nothing is written in place)."""
        self.prev_grad, self.prev_loss = g, loss

    def _not_descent(self, gtd: Tensor, tolerance_change: float) -> bool:
        return bool(gtd > -tolerance_change)

    # --- step ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:
        if closure is None:
            raise TypeError("SimpleLBFGS.step() needs a closure that re-evaluates the loss and its gradients")
        hp = self._hyperparameters()
        self.memory.resize(hp["history_size"])
        orig_loss, loss, g = self._evaluate(closure)
        evals = 1
        if self._converged(g, hp["tolerance_grad"]):
            return orig_loss
        for iteration in range(1, self._max_iterations(hp["max_iter"]) + 1):
            self.n_iter += 1
            self._update_memory(g)
            d, t = self._search_direction(g, hp["lr"])
            self._remember_gradient(g, loss)
            prev_loss = loss
            gtd = g.dot(d)
            if self._not_descent(gtd, hp["tolerance_change"]):
                self.pending_step = None
                break
            if hp["line_search_fn"] == "strong_wolfe":
                budget = self._line_search_budget(hp["max_eval"], evals)
                loss, g, t, used = self._line_search(closure, d, t, loss, g, gtd, budget, hp["tolerance_change"])
            else:
                self._move(t, d)
                used = 0
                if self._reevaluate_after_move(iteration, hp["max_iter"]):
                    _, loss, g = self._evaluate(closure)
                    used = 1
            evals += used
            self.pending_step = d * t
            if self._stop(g=g, step=self.pending_step, loss=loss, prev_loss=prev_loss, evals=evals, hp=hp,
                          iteration=iteration):
                break
        return orig_loss

    # --- strong-Wolfe line search (N&W Alg. 3.5 and 3.6) -----------------------------------------------------
    def _sufficient_decrease(self, f: float, f0: float, a: float, gtd0: float) -> bool:
        return f <= f0 + self.c1 * a * gtd0

    def _curvature(self, gtd: float, gtd0: float) -> bool:
        return abs(gtd) <= -self.c2 * gtd0

    @staticmethod
    def _slope_points_past_low(gtd: float, lo: float, hi: float) -> bool:
        """Zoom: the slope at the new low point says the minimiser lies on the far side from ``hi`` (N&W Alg. 3.6,
        "if φ'(αj)(αhi - αlo) >= 0 then αhi ← αlo")."""
        return gtd * (hi - lo) >= 0

    @staticmethod
    def _cubic_min(a0: float, f0: float, g0: float, a1: float, f1: float, g1: float, lo: float, hi: float) -> float:
        """Minimiser of the cubic through (a0, f0, g0), (a1, f1, g1), clipped to [lo, hi]; midpoint if none."""
        if a0 == a1:
            return 0.5 * (lo + hi)
        d1 = g0 + g1 - 3 * (f0 - f1) / (a0 - a1)
        disc = d1 * d1 - g0 * g1
        if disc < 0 or not math.isfinite(disc):
            return 0.5 * (lo + hi)
        d2 = math.copysign(math.sqrt(disc), a1 - a0)
        denom = g1 - g0 + 2 * d2
        if denom == 0:
            return 0.5 * (lo + hi)
        a = a1 - (a1 - a0) * (g1 + d2 - d1) / denom
        if not math.isfinite(a):
            return 0.5 * (lo + hi)
        return min(max(a, lo), hi)

    def _line_search(self, closure: Callable[[], Any], d: Tensor, t: Any, f0: float, g0: Tensor, gtd0_t: Tensor,
                     budget: int, tolerance_change: float) -> tuple[float, Tensor, float, int]:
        """A step length satisfying the strong Wolfe conditions, or the best point within ``budget`` evaluations
        or once the bracket is narrower than ``tolerance_change`` (max-norm of the move). Leaves the parameters
        at x + t·d and returns (loss, gradient, t, evaluations)."""
        x0 = self._get_x()
        gtd0 = float(gtd0_t)
        d_norm = float(d.abs().max())
        used = 0

        def phi(a: float) -> tuple[float, Tensor, float]:
            nonlocal used
            self._set_x(x0, a, d)
            _, f, g = self._evaluate(closure)
            used += 1
            return f, g, float(g.dot(d))

        best = (0.0, f0, g0)

        def finish(a: float, f: float, g: Tensor) -> tuple[float, Tensor, float, int]:
            self._set_x(x0, a, d)
            return f, g, a, used

        a_prev, f_prev, g_prev, gtd_prev = 0.0, f0, g0, gtd0
        a = float(t)
        bracket: tuple[tuple[float, float, Tensor, float], tuple[float, float, Tensor, float]] | None = None
        while used < budget:
            f, g, gtd = phi(a)
            if f < best[1]:
                best = (a, f, g)
            if not self._sufficient_decrease(f, f0, a, gtd0) or (used > 1 and f >= f_prev):
                bracket = ((a_prev, f_prev, g_prev, gtd_prev), (a, f, g, gtd))
                break
            if self._curvature(gtd, gtd0):
                return finish(a, f, g)
            if gtd >= 0:
                bracket = ((a, f, g, gtd), (a_prev, f_prev, g_prev, gtd_prev))
                break
            a_next = self._cubic_min(a_prev, f_prev, gtd_prev, a, f, gtd, a + 0.01 * (a - a_prev), 10 * a)
            a_prev, f_prev, g_prev, gtd_prev = a, f, g, gtd
            a = a_next
        if bracket is None:
            return finish(*best)
        lo, hi = bracket
        while used < budget:
            if abs(hi[0] - lo[0]) * d_norm < tolerance_change:
                break
            left, right = min(lo[0], hi[0]), max(lo[0], hi[0])
            width = right - left
            a = self._cubic_min(lo[0], lo[1], lo[3], hi[0], hi[1], hi[3], left + 0.1 * width, right - 0.1 * width)
            f, g, gtd = phi(a)
            if not self._sufficient_decrease(f, f0, a, gtd0) or f >= lo[1]:
                hi = (a, f, g, gtd)
            else:
                if self._curvature(gtd, gtd0):
                    return finish(a, f, g)
                if self._slope_points_past_low(gtd, lo[0], hi[0]):
                    hi = lo
                lo = (a, f, g, gtd)
        if lo[1] <= best[1]:
            return finish(lo[0], lo[1], lo[2])
        return finish(*best)

    # --- state ---------------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "func_evals": self.func_evals,
            "n_iter": self.n_iter,
            "memory": self.memory.to_dict(),
            "gamma": _clone(self.gamma),
            "pending_step": _clone(self.pending_step),
            "prev_grad": _clone(self.prev_grad),
            "prev_loss": self.prev_loss,
        }

    def _numel(self) -> int:
        return sum(self._real(p).numel() for p in self.params)

    def _validate(self, saved: dict[str, Any]) -> None:
        """Reject a state saved for parameters of another total size (before anything is changed)."""
        n = self._numel()
        vectors = {"pending_step": saved.get("pending_step"), "prev_grad": saved.get("prev_grad")}
        memory = saved.get("memory") or {}
        for key in ("S", "Y"):
            if memory.get(key) is not None:
                vectors[f"memory.{key} rows"] = memory[key][0]
        for key, value in vectors.items():
            if value is not None and value.numel() != n:
                raise ValueError(f"state entry {key} has {value.numel()} elements; the parameters have {n}")

    def _load_state(self, saved: dict[str, Any]) -> None:
        self._validate(saved)
        self.func_evals = int(saved["func_evals"])
        self.n_iter = int(saved["n_iter"])
        self.memory = CircularMemory.from_dict(saved["memory"])
        self.gamma = _clone(saved["gamma"])
        self.pending_step = _clone(saved["pending_step"])
        self.prev_grad = _clone(saved["prev_grad"])
        self.prev_loss = saved["prev_loss"]

    def state_dict(self) -> dict[str, Any]:
        """A snapshot: ``{"state": {0: ...}, "param_groups": [hyperparameters + parameter indices]}``."""
        group = {k: _clone(v) for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(self.params)))
        return {"state": {0: self._state()}, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a snapshot (copied); hyperparameters come from the saved ``param_groups`` (torch's rule)."""
        saved_group = state_dict["param_groups"][0]
        self._validate(state_dict["state"][0])
        for key in HYPERPARAMETERS:
            self.param_groups[0][key] = _clone(saved_group[key])
        self._load_state(state_dict["state"][0])
