"""``CompactLBFGS``: an L-BFGS in the compact representation, written from the literature, sharing no code with
torch.optim.LBFGS or the project's reference; a fixture for conventions other than torch's at level
``properties``.

Sources:

- direction: d = -H g with the compact representation of Byrd, Nocedal & Schnabel (1994), "Representations of
  quasi-Newton matrices and their use in limited memory methods", Math. Programming 63, Theorem 2.2
  (eq. 2.6), with H_0 = γI (their eq. 3.1 form):
  ``H = γI + [S γY] M [Sᵀ; γYᵀ]``, ``M = [[R⁻ᵀ(D + γYᵀY)R⁻¹, -R⁻ᵀ], [-R⁻¹, 0]]``, R the upper triangle of SᵀY,
  D its diagonal; H g is formed by two small triangular solves (no n×n matrix);
- γ = s_kᵀy_k / y_kᵀy_k, the newest pair (Nocedal & Wright 2nd ed. eq. 7.20);
- a pair is kept only when sᵀy > ε·yᵀy (ε the dtype's machine epsilon; Byrd, Lu, Nocedal & Zhu (1995) §4,
  the L-BFGS-B rule), the m = history_size newest pairs;
- line search ``'strong_wolfe'``: N&W Algorithm 3.5 (doubling the trial) and Algorithm 3.6 (zoom with the
  quadratic interpolation of f(lo), f'(lo), f(hi), N&W eq. 3.57, safeguarded by bisection), c1 = 1e-4,
  c2 = 0.9; ``None``: a fixed step;
- the first iteration of each step() goes along -g with t = lr·min(1, 1/‖g‖₂); later ones t = lr;
- stopping as torch.optim.LBFGS documents its options (tolerance_grad on max|g|, tolerance_change on gᵀd, the
  step and the loss, max_iter, max_eval; never more than max_eval closure calls).

Conventions of its own: the memory is restarted at every step() (only counters persist); step() returns the
loss at the last evaluated point, the final one when the budget allowed its evaluation (scipy's convention);
the checkpoint is one int64 tensor ``counters`` = (step() calls, iterations, closure calls) on the first
parameter. Complex parameters are real pairs (``torch.view_as_real``), sparse gradients are densified,
parameters whose ``grad`` is None are never written, updates go through views of ``p.data``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

WOLFE_C1 = 1e-4
"""Sufficient-decrease constant (N&W §3.1)."""
WOLFE_C2 = 0.9
"""Curvature constant for quasi-Newton directions (N&W §3.1)."""


def _as_real(t: Tensor) -> Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


class CompactLBFGS(torch.optim.Optimizer):
    """L-BFGS by the compact representation, memory restarted at every step() (see the module docstring)."""

    def __init__(self, params: Iterable[Any], lr: float | Tensor = 1, max_iter: int = 20,
                 max_eval: int | None = None, tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn: str | None = None) -> None:
        if float(lr) < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if line_search_fn is not None and line_search_fn != "strong_wolfe":
            raise ValueError(f"line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}")
        super().__init__(params, {
            "lr": lr, "max_iter": max_iter, "max_eval": max_iter * 5 // 4 if max_eval is None else max_eval,
            "tolerance_grad": tolerance_grad, "tolerance_change": tolerance_change, "history_size": history_size,
            "line_search_fn": line_search_fn})
        if len(self.param_groups) != 1:
            raise ValueError("CompactLBFGS takes one parameter group")

    # Optimizer.__getstate__ keeps only defaults, state and param_groups: what is derived from the parameters is
    # recomputed from param_groups, so pickle and copy.deepcopy keep a working optimizer.
    @property
    def _params(self) -> list[Tensor]:
        return list(self.param_groups[0]["params"])

    @property
    def _numels(self) -> list[int]:
        return [_as_real(p).numel() for p in self._params]

    @property
    def _dtype(self) -> torch.dtype:
        dtype = _as_real(self._params[0]).dtype
        for p in self._params[1:]:
            dtype = torch.promote_types(dtype, _as_real(p).dtype)
        return dtype

    # ---------------------------------------------------------------------------------------------------

    def _flat_params(self) -> Tensor:
        return torch.cat([_as_real(p.detach()).reshape(-1).to(self._dtype) for p in self._params])

    def _flat_grad(self) -> tuple[Tensor, Tensor]:
        """The gradient as one real vector (zeros where grad is None) and the mask of entries that have one."""
        chunks, mask = [], []
        for p, n in zip(self._params, self._numels, strict=True):
            grad = p.grad
            if grad is None:
                chunks.append(torch.zeros(n, dtype=self._dtype))
                mask.append(torch.zeros(n, dtype=torch.bool))
            else:
                dense = grad.to_dense() if grad.is_sparse else grad
                chunks.append(_as_real(dense).reshape(-1).to(self._dtype))
                mask.append(torch.ones(n, dtype=torch.bool))
        return torch.cat(chunks), torch.cat(mask)

    def _set_params(self, flat: Tensor, mask: Tensor) -> None:
        """Write ``flat`` into the parameters whose entries are in ``mask``, through views of ``p.data``."""
        start = 0
        for p, n in zip(self._params, self._numels, strict=True):
            if n and bool(mask[start]):
                view = _as_real(p.data)
                view.copy_(flat[start:start + n].view(view.shape))
            start += n

    def _call(self, closure: Callable[[], Any]) -> tuple[Any, float, Tensor, Tensor]:
        with torch.enable_grad():
            out = closure()
        g, mask = self._flat_grad()
        value = float(out.detach()) if isinstance(out, Tensor) else float(out)
        return out, value, g, mask

    # ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _compact_direction(S: list[Tensor], Y: list[Tensor], g: Tensor) -> Tensor:
        """d = -H g, H = γI + [S γY] M [Sᵀ; γYᵀ] (Byrd, Nocedal & Schnabel 1994, eq. 2.6)."""
        if not S:
            return -g
        work = torch.promote_types(g.dtype, torch.float32)  # triangular solves need float32 at least
        Sm = torch.stack(S, dim=1).to(work)  # n × k, oldest first
        Ym = torch.stack(Y, dim=1).to(work)
        S, Y, g_in, g = [Sm[:, i] for i in range(Sm.shape[1])], [Ym[:, i] for i in range(Ym.shape[1])], g, g.to(work)
        gamma = (S[-1] @ Y[-1]) / (Y[-1] @ Y[-1])
        SY = Sm.T @ Ym
        R = torch.triu(SY)
        D = torch.diag(torch.diagonal(SY))
        YY = Ym.T @ Ym
        p1 = (Sm.T @ g).unsqueeze(1)
        p2 = gamma * (Ym.T @ g).unsqueeze(1)
        v = torch.linalg.solve_triangular(R, p1, upper=True)  # R⁻¹ Sᵀg
        top = torch.linalg.solve_triangular(R.T, (D + gamma * YY) @ v - p2, upper=False)
        Hg = gamma * g + Sm @ top.squeeze(1) - gamma * (Ym @ v.squeeze(1))
        return (-Hg).to(g_in.dtype)

    def _wolfe_search(self, closure: Callable[[], Any], x0: Tensor, f0: float, g0: Tensor, d: Tensor,
                      t0: float, calls_left: int, tolerance_change: float, mask: Tensor
                      ) -> tuple[float, Any, float, Tensor, int]:
        """Strong-Wolfe search along d (N&W Alg. 3.5/3.6). Returns (t, loss, f, g, calls); t = 0 is x0."""
        slope0 = float(g0 @ d)
        dnorm = float(d.abs().max())
        calls = 0
        seen: dict[float, tuple[Any, float, Tensor]] = {0.0: (None, f0, g0)}

        def trial(a: float) -> tuple[float, float]:
            nonlocal calls
            self._set_params(x0 + a * d, mask)
            out, f, g, _ = self._call(closure)
            calls += 1
            seen[a] = (out, f, g)
            return f, float(g @ d)

        def finish(a: float) -> tuple[float, Any, float, Tensor, int]:
            out, f, g = seen[a]
            self._set_params(x0 + a * d if a else x0, mask)
            return a, out, f, g, calls

        def armijo_fails(a: float, f: float) -> bool:
            return not math.isfinite(f) or f > f0 + WOLFE_C1 * a * slope0

        def curvature_holds(s: float) -> bool:
            return abs(s) <= -WOLFE_C2 * slope0

        # Algorithm 3.5: bracketing
        lo = (0.0, f0, slope0)
        hi: tuple[float, float, float] | None = None
        a = t0
        while calls < calls_left:
            f, s = trial(a)
            if armijo_fails(a, f) or (lo[0] > 0 and f >= lo[1]):
                hi = (a, f, s)
                break
            if curvature_holds(s):
                return finish(a)
            if s >= 0:
                hi, lo = lo, (a, f, s)
                break
            lo = (a, f, s)
            a = 2.0 * a
        if hi is None:
            return finish(lo[0])
        # Algorithm 3.6: zoom; lo keeps the lowest f satisfying sufficient decrease
        while calls < calls_left and abs(hi[0] - lo[0]) * dnorm >= tolerance_change:
            (a_lo, f_lo, s_lo), (a_hi, f_hi, _) = lo, hi
            width = a_hi - a_lo
            a = math.nan
            if math.isfinite(f_hi):
                curvature = f_hi - f_lo - s_lo * width
                if curvature > 0:
                    a = a_lo - s_lo * width * width / (2.0 * curvature)  # N&W eq. 3.57 about a_lo
            inner_lo, inner_hi = min(a_lo, a_hi), max(a_lo, a_hi)
            if not (inner_lo + 0.1 * abs(width) <= a <= inner_hi - 0.1 * abs(width)):
                a = a_lo + 0.5 * width
            f, s = trial(a)
            if armijo_fails(a, f) or f >= f_lo:
                hi = (a, f, s)
                continue
            if curvature_holds(s):
                return finish(a)
            if s * (a_hi - a_lo) >= 0:
                hi = lo
            lo = (a, f, s)
        return finish(lo[0])

    # ---------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Up to max_iter iterations from an empty memory; returns the loss at the last evaluated point."""
        if closure is None:
            raise ValueError("CompactLBFGS.step needs a closure returning the loss after backward()")
        opts = self.param_groups[0]
        lr, max_iter, max_eval = float(opts["lr"]), int(opts["max_iter"]), int(opts["max_eval"])
        tol_grad, tol_change = float(opts["tolerance_grad"]), float(opts["tolerance_change"])
        m = int(opts["history_size"])
        wolfe = opts["line_search_fn"] == "strong_wolfe"
        state = self.state[self._params[0]]
        counters = state.setdefault("counters", torch.zeros(3, dtype=torch.int64))
        counters[0] += 1

        out, f, g, mask = self._call(closure)
        calls = 1
        S: list[Tensor] = []
        Y: list[Tensor] = []
        eps = torch.finfo(self._dtype).eps
        iterations = 0
        while g.numel() and float(g.abs().max()) > tol_grad:  # no unknowns: nothing to do
            d = self._compact_direction(S, Y, g)
            d = torch.where(mask, d, torch.zeros_like(d))  # no gradient: no move
            gtd = float(g @ d)
            if gtd > -tol_change:
                break
            t = lr * min(1.0, 1.0 / float(g.norm())) if not S and iterations == 0 else lr
            x = self._flat_params()
            if wolfe:
                if calls >= max_eval:
                    break
                t, out_new, f_new, g_new, used = self._wolfe_search(closure, x, f, g, d, t, max_eval - calls,
                                                                    tol_change, mask)
                calls += used
                iterations += 1
                if t == 0:
                    break
                x_new = self._flat_params()
            else:
                self._set_params(x + t * d, mask)
                iterations += 1
                x_new = self._flat_params()
                if calls >= max_eval:
                    break
                out_new, f_new, g_new, mask = self._call(closure)
                calls += 1
            s, y = x_new - x, g_new - g
            if float(s @ y) > eps * float(y @ y):
                S.append(s)
                Y.append(y)
                if len(S) > m:
                    del S[0], Y[0]
            moved = float(s.abs().max())
            change = abs(f_new - f)
            out, f, g = out_new, f_new, g_new
            if iterations >= max_iter or calls >= max_eval:
                break
            if moved <= tol_change or change < tol_change:
                break
        counters[1] += iterations
        counters[2] += calls
        return out

    # ---------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        saved = super().state_dict()
        saved["state"] = {i: {k: v.clone() if isinstance(v, Tensor) else v for k, v in entry.items()}
                          for i, entry in saved["state"].items()}
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        entries = state_dict.get("state", {})
        unknown = sorted(set(entries) - {0})
        if unknown:
            raise ValueError(f"state_dict['state'] has entries for parameters {unknown}; CompactLBFGS keeps "
                             "only its counters, on the first parameter")
        counters = entries.get(0, {}).get("counters")
        if counters is not None and (not isinstance(counters, Tensor) or counters.shape != (3,)):
            raise ValueError("state_dict['state'][0]['counters'] must be an int64 tensor of 3 counters")
        kept = None if counters is None else counters.clone()
        super().load_state_dict(state_dict)
        self.state.clear()
        if kept is not None:
            self.state[self._params[0]] = {"counters": kept}
