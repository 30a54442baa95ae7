"""``CircularLBFGS``: an L-BFGS written from the literature, sharing no code with torch.optim.LBFGS or the
project's reference, used as a fixture that a correct optimizer with other conventions passes level
``properties``.

Sources:

- direction: the two-loop recursion, Nocedal & Wright (2nd ed.) Algorithm 7.4, with H_k^0 = γ_k I and
  γ_k = s_{k-1}ᵀy_{k-1} / y_{k-1}ᵀy_{k-1} (N&W eq. 7.20); the outer loop is N&W Algorithm 7.5;
- memory: the m newest pairs (s_i, y_i) and ρ_i = 1 / y_iᵀs_i kept in preallocated 2-D tensors used as a
  circular buffer (a head index and a count); a pair with y_iᵀs_i <= 1e-10 is not stored (N&W §6.1 and §7.2:
  the update needs the curvature condition sᵀy > 0);
- line search: strong Wolfe (N&W eq. 3.7, c1 = 1e-4, c2 = 0.9) by Algorithm 3.5 (bracketing) and
  Algorithm 3.6 (zoom) with the cubic interpolation of N&W eq. 3.59, safeguarded by bisection;
- first trial step t = lr at every iteration, the first included (the direction -g of an empty memory is not
  rescaled);
- stopping (as torch.optim.LBFGS documents its options): max|g| <= tolerance_grad, gᵀd > -tolerance_change,
  max|x_{k+1} - x_k| <= tolerance_change, |f_{k+1} - f_k| < tolerance_change, max_iter iterations or max_eval
  closure calls per step() (never more than max_eval calls, the first included unless max_eval < 1).

Conventions of its own: the point a step ends at is evaluated when the budget allows, so the newest pair is
formed within the step; otherwise the step (s) and the gradient it started from are kept as a pending pair,
completed by the first evaluation of the next step(). The checkpoint is flat keys on the first parameter:
``buffer_s``, ``buffer_y``, ``buffer_rho``, ``head``, ``count``, ``iterations``, ``evaluations``, ``pending``,
``pending_s``, ``pending_g``. Complex parameters are optimised as pairs of reals (``torch.view_as_real``), sparse
gradients are densified, parameters whose ``grad`` is None are never written, and updates go through views of
``p.data`` (never a ``reshape(-1)`` copy), so non-contiguous parameters move.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

C1 = 1e-4
"""Sufficient-decrease constant (N&W §3.1, "c1 = 1e-4" in practice)."""
C2 = 0.9
"""Curvature constant for quasi-Newton methods (N&W §3.1)."""
CURVATURE_FLOOR = 1e-10
"""A pair is stored only when yᵀs exceeds this (N&W §7.2: positive curvature keeps H positive definite)."""


def _real_view(t: Tensor) -> Tensor:
    """``t`` as real numbers: a complex tensor as its (re, im) pairs (a view, no copy)."""
    return torch.view_as_real(t) if t.is_complex() else t


class CircularLBFGS(torch.optim.Optimizer):
    """L-BFGS with a circular-buffer memory and its own strong-Wolfe search (see the module docstring)."""

    def __init__(self, params: Iterable[Any], lr: float | Tensor = 1, max_iter: int = 20,
                 max_eval: int | None = None, tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn: str | None = None) -> None:
        if float(lr) < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = {"lr": lr, "max_iter": max_iter, "max_eval": max_eval, "tolerance_grad": tolerance_grad,
                    "tolerance_change": tolerance_change, "history_size": history_size,
                    "line_search_fn": line_search_fn}
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("CircularLBFGS takes one parameter group (all parameters share one memory)")

    # Derived from param_groups on every use: Optimizer.__getstate__ keeps only defaults, state and param_groups,
    # so attributes set in __init__ would be lost by pickle and copy.deepcopy.
    @property
    def _params(self) -> list[Tensor]:
        return list(self.param_groups[0]["params"])

    @property
    def _sizes(self) -> list[int]:
        return [_real_view(p).numel() for p in self._params]

    @property
    def _n(self) -> int:
        return sum(self._sizes)

    @property
    def _dtype(self) -> torch.dtype:
        dtypes = [_real_view(p).dtype for p in self._params]
        dtype = dtypes[0]
        for other in dtypes[1:]:
            dtype = torch.promote_types(dtype, other)
        return dtype

    # ---------------------------------------------------------------------------------------------------
    # Flat vectors <-> parameters
    # ---------------------------------------------------------------------------------------------------

    def _gather_x(self) -> Tensor:
        parts = [_real_view(p.detach()).reshape(-1).to(self._dtype) for p in self._params]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=self._dtype)

    def _gather_g(self) -> tuple[Tensor, list[bool]]:
        parts: list[Tensor] = []
        has: list[bool] = []
        for p, size in zip(self._params, self._sizes, strict=True):
            g = p.grad
            if g is None:
                parts.append(torch.zeros(size, dtype=self._dtype, device=p.device))
                has.append(False)
                continue
            if g.is_sparse:
                g = g.coalesce().to_dense()
            parts.append(_real_view(g).reshape(-1).to(self._dtype))
            has.append(True)
        flat = torch.cat(parts) if parts else torch.zeros(0, dtype=self._dtype)
        return flat, has

    def _write_x(self, x: Tensor, has: list[bool]) -> None:
        """Copy the flat ``x`` into the parameters that have a gradient, through views of ``p.data``."""
        offset = 0
        for p, size, moves in zip(self._params, self._sizes, has, strict=True):
            if moves:
                target = _real_view(p.data)
                target.copy_(x[offset:offset + size].view(target.shape))
            offset += size

    def _evaluate(self, closure: Callable[[], Any]) -> tuple[Any, float, Tensor, list[bool]]:
        with torch.enable_grad():
            loss = closure()
        g, has = self._gather_g()
        return loss, float(loss.detach() if isinstance(loss, Tensor) else loss), g, has

    # ---------------------------------------------------------------------------------------------------
    # The circular memory
    # ---------------------------------------------------------------------------------------------------

    def _order(self, state: dict[str, Any]) -> list[int]:
        """Buffer rows oldest first."""
        cap = state["buffer_s"].shape[0]
        head, count = state["head"], state["count"]
        return [(head - count + i) % cap for i in range(count)]

    def _repack(self, state: dict[str, Any], capacity: int) -> None:
        """Rewrite the buffer oldest first with ``capacity`` rows, keeping the newest ``capacity`` pairs."""
        order = self._order(state)[-capacity:] if capacity > 0 else []
        s = torch.zeros(capacity, self._n, dtype=self._dtype)
        y = torch.zeros(capacity, self._n, dtype=self._dtype)
        rho = torch.zeros(capacity, dtype=self._dtype)
        for row, old in enumerate(order):
            s[row] = state["buffer_s"][old]
            y[row] = state["buffer_y"][old]
            rho[row] = state["buffer_rho"][old]
        state["buffer_s"], state["buffer_y"], state["buffer_rho"] = s, y, rho
        state["count"] = len(order)
        state["head"] = len(order) % capacity if capacity > 0 else 0

    def _fit_history(self, state: dict[str, Any], history_size: int) -> None:
        """A lowered history_size keeps the newest pairs; capacity never exceeds history_size."""
        if state["buffer_s"].shape[0] > history_size:
            self._repack(state, history_size)

    def _push(self, state: dict[str, Any], s: Tensor, y: Tensor, history_size: int) -> None:
        ys = float(y @ s)
        if not ys > CURVATURE_FLOOR or history_size < 1:
            return
        cap = state["buffer_s"].shape[0]
        if state["count"] == cap and cap < history_size:  # full but allowed to grow: double (oldest first)
            self._repack(state, min(history_size, max(2 * cap, 4)))
            cap = state["buffer_s"].shape[0]
        head = state["head"]
        state["buffer_s"][head] = s
        state["buffer_y"][head] = y
        state["buffer_rho"][head] = 1.0 / ys
        state["head"] = (head + 1) % cap
        state["count"] = min(state["count"] + 1, cap)

    def _direction(self, state: dict[str, Any], g: Tensor) -> Tensor:
        """d = -H g by the two-loop recursion (N&W Algorithm 7.4)."""
        order = self._order(state)
        if not order:
            return g.neg()
        S, Y, rho = state["buffer_s"], state["buffer_y"], state["buffer_rho"]
        q = g.clone()
        alpha: dict[int, Tensor] = {}
        for i in reversed(order):
            alpha[i] = rho[i] * (S[i] @ q)
            q.sub_(Y[i] * alpha[i])
        newest = order[-1]
        gamma = (S[newest] @ Y[newest]) / (Y[newest] @ Y[newest])  # N&W eq. 7.20
        r = q * gamma
        for i in order:
            beta = rho[i] * (Y[i] @ r)
            r.add_(S[i] * (alpha[i] - beta))
        return r.neg()

    # ---------------------------------------------------------------------------------------------------
    # Strong-Wolfe line search (N&W Algorithms 3.5 and 3.6)
    # ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _cubic(a: float, fa: float, da: float, b: float, fb: float, db: float) -> float:
        """The minimiser of the cubic interpolating f and f' at a and b (N&W eq. 3.59); NaN if none."""
        d1 = da + db - 3 * (fa - fb) / (a - b)
        radicand = d1 * d1 - da * db
        if not math.isfinite(radicand) or radicand < 0:
            return math.nan
        d2 = math.copysign(math.sqrt(radicand), b - a)
        denominator = db - da + 2 * d2
        if denominator == 0:
            return math.nan
        return b - (b - a) * (db + d2 - d1) / denominator

    def _line_search(self, closure: Callable[[], Any], x0: Tensor, f0: float, g0: Tensor, d: Tensor, t: float,
                     budget: int, tolerance_change: float, has: list[bool]
                     ) -> tuple[float, Any, float, Tensor, int]:
        """Search along d from x0; returns (t, loss, f, g, evaluations) of the accepted point (t = 0: x0)."""
        dphi0 = float(g0 @ d)
        dmax = float(d.abs().max())
        evals = 0
        cache: dict[float, tuple[Any, float, Tensor, float]] = {}

        def phi(a: float) -> tuple[float, float]:
            nonlocal evals
            self._write_x(x0 + a * d, has)
            loss, f, g, _ = self._evaluate(closure)
            evals += 1
            slope = float(g @ d)
            cache[a] = (loss, f, g, slope)
            return f, slope

        def accept(a: float) -> tuple[float, Any, float, Tensor, int]:
            if a == 0:
                self._write_x(x0, has)
                return 0.0, None, f0, g0, evals
            loss, f, g, _ = cache[a]
            self._write_x(x0 + a * d, has)
            return a, loss, f, g, evals

        def usable(f: float) -> bool:
            return math.isfinite(f)

        def zoom(lo: float, f_lo: float, d_lo: float, hi: float, f_hi: float, d_hi: float
                 ) -> tuple[float, Any, float, Tensor, int]:
            while evals < budget:
                if abs(hi - lo) * dmax < tolerance_change:
                    break
                width = abs(hi - lo)
                left, right = min(lo, hi), max(lo, hi)
                a = self._cubic(lo, f_lo, d_lo, hi, f_hi, d_hi) if usable(f_hi) and math.isfinite(d_hi) else math.nan
                if not math.isfinite(a) or a < left + 0.1 * width or a > right - 0.1 * width:
                    a = 0.5 * (lo + hi)
                f_a, d_a = phi(a)
                if not usable(f_a) or f_a > f0 + C1 * a * dphi0 or f_a >= f_lo:
                    hi, f_hi, d_hi = a, f_a, d_a
                else:
                    if abs(d_a) <= -C2 * dphi0:
                        return accept(a)
                    if d_a * (hi - lo) >= 0:
                        hi, f_hi, d_hi = lo, f_lo, d_lo
                    lo, f_lo, d_lo = a, f_a, d_a
            return accept(lo)

        a_prev, f_prev, d_prev = 0.0, f0, dphi0
        a = t
        first = True
        while evals < budget:
            f_a, d_a = phi(a)
            if not usable(f_a) or f_a > f0 + C1 * a * dphi0 or (not first and f_a >= f_prev):
                return zoom(a_prev, f_prev, d_prev, a, f_a, d_a)
            if abs(d_a) <= -C2 * dphi0:
                return accept(a)
            if d_a >= 0:
                return zoom(a, f_a, d_a, a_prev, f_prev, d_prev)
            a_next = a + 2.0 * (a - a_prev)  # the trial interval triples (N&W Alg. 3.5: a_{i+1} > a_i)
            a_prev, f_prev, d_prev = a, f_a, d_a
            a = a_next
            first = False
        return accept(a_prev)

    # ---------------------------------------------------------------------------------------------------
    # The step (N&W Algorithm 7.5)
    # ---------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Up to max_iter L-BFGS iterations; returns the loss of the first closure call."""
        if closure is None:
            raise ValueError("CircularLBFGS.step needs a closure that re-evaluates the loss and its gradient")
        group = self.param_groups[0]
        lr = float(group["lr"])
        max_iter = int(group["max_iter"])
        max_eval = int(group["max_eval"])
        tolerance_grad = float(group["tolerance_grad"])
        tolerance_change = float(group["tolerance_change"])
        history_size = int(group["history_size"])
        strong_wolfe = group["line_search_fn"] == "strong_wolfe"

        state = self.state[self._params[0]]
        if "buffer_s" not in state:
            cap = min(history_size, 4)
            state.update({"buffer_s": torch.zeros(cap, self._n, dtype=self._dtype),
                          "buffer_y": torch.zeros(cap, self._n, dtype=self._dtype),
                          "buffer_rho": torch.zeros(cap, dtype=self._dtype),
                          "head": 0, "count": 0, "iterations": 0, "evaluations": 0, "pending": 0,
                          "pending_s": torch.zeros(self._n, dtype=self._dtype),
                          "pending_g": torch.zeros(self._n, dtype=self._dtype)})
        self._fit_history(state, history_size)

        first_loss, f, g, has = self._evaluate(closure)
        evals = 1
        if state["pending"]:
            self._push(state, state["pending_s"].clone(), g - state["pending_g"], history_size)
            state["pending"] = 0
        if g.numel() == 0 or float(g.abs().max()) <= tolerance_grad:
            state["evaluations"] += evals
            return first_loss

        moves = 0
        while True:
            d = self._direction(state, g)
            d[~self._mask(has)] = 0.0  # parameters without a gradient never move
            gtd = float(g @ d)
            if not gtd < -tolerance_change:
                break
            x = self._gather_x()
            if strong_wolfe:
                if evals >= max_eval:
                    break
                t, _, f_new, g_new, used = self._line_search(closure, x, f, g, d, lr, max_eval - evals,
                                                             tolerance_change, has)
                evals += used
                moves += 1
                state["iterations"] += 1
                x_new = self._gather_x()
                if t == 0:
                    break
                self._push(state, x_new - x, g_new - g, history_size)
            else:
                self._write_x(x + lr * d, has)
                moves += 1
                state["iterations"] += 1
                x_new = self._gather_x()
                if evals >= max_eval:  # no call left: the pair is completed by the next step()
                    state["pending"] = 1
                    state["pending_s"] = x_new - x
                    state["pending_g"] = g.clone()
                    break
                _, f_new, g_new, has = self._evaluate(closure)
                evals += 1
                self._push(state, x_new - x, g_new - g, history_size)
            change = abs(f_new - f)
            step_size = float((x_new - x).abs().max())
            f, g = f_new, g_new
            if moves >= max_iter or evals >= max_eval:
                break
            if float(g.abs().max()) <= tolerance_grad:
                break
            if step_size <= tolerance_change or change < tolerance_change:
                break
        state["evaluations"] += evals
        return first_loss

    def _mask(self, has: list[bool]) -> Tensor:
        return torch.cat([torch.full((size,), moves, dtype=torch.bool)
                          for size, moves in zip(self._sizes, has, strict=True)]) if self._sizes else \
            torch.zeros(0, dtype=torch.bool)

    # ---------------------------------------------------------------------------------------------------
    # Checkpoints: copies in, copies out, sizes validated before anything changes
    # ---------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["state"] = {key: {k: v.clone() if isinstance(v, Tensor) else v for k, v in entry.items()}
                       for key, entry in sd["state"].items()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("state", {})
        own = saved.get(0, {})
        for key in ("buffer_s", "buffer_y", "pending_s", "pending_g"):
            value = own.get(key)
            if isinstance(value, Tensor) and value.shape[-1] != self._n:
                raise ValueError(f"state_dict['state'][0][{key!r}] has {value.shape[-1]} elements per vector but "
                                 f"the parameters have {self._n} real unknowns: saved for other parameters")
        if set(saved) - {0}:
            raise ValueError(f"state_dict['state'] has entries for parameters {sorted(set(saved) - {0})}; "
                             "CircularLBFGS keeps its state on the first parameter only")
        copies = {k: v.clone() if isinstance(v, Tensor) else v for k, v in own.items()}
        super().load_state_dict(state_dict)
        self.state.clear()
        if copies:
            self.state[self._params[0]] = copies
