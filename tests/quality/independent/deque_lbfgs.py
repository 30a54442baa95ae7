"""``DequeLBFGS``: a third L-BFGS written from the literature, sharing no code with torch.optim.LBFGS, the project's
reference or the other fixtures here, used as a fixture that a correct optimizer with its own conventions passes
level ``properties``.

Sources:

- outer loop: Nocedal & Wright, *Numerical Optimization* (2nd ed.), Algorithm 7.5 (L-BFGS); direction by the
  two-loop recursion, Algorithm 7.4, with H_k^0 = γ_k I, γ_k = s_{k-1}ᵀy_{k-1} / y_{k-1}ᵀy_{k-1} (eq. 7.20);
- memory: a :class:`Memory` dataclass holding the newest ``history_size`` pairs (s, y, ρ) in a
  ``collections.deque(maxlen=history_size)`` (appending drops the oldest; a lowered ``history_size`` keeps the
  newest); a pair is stored only if sᵀy > ε·yᵀy (ε the dtype's machine epsilon; the scale-invariant skip of
  L-BFGS-B: Byrd, Lu, Nocedal & Zhu, SIAM J. Sci. Comput. 16(5) 1995, section 4);
- line search (``line_search_fn="strong_wolfe"``): Moré & Thuente, "Line search algorithms with guaranteed
  sufficient decrease", ACM TOMS 20(3) 1994: the two-stage search (ψ(α) = φ(α) - φ(0) - c₁αφ'(0) until a point with
  ψ <= 0 and φ' >= 0 is found, then φ), the safeguarded step of section 4 (cases 1 to 4: cubic, quadratic and
  secant steps), bisection when the interval does not shrink by 0.66 in two trials, extrapolation within
  [1.1, 4]·(α - α_l); c₁ = 1e-4, c₂ = 0.9 (N&W §3.1). It returns a point satisfying the strong Wolfe conditions
  (N&W eq. 3.7) or, when its budget (``max_eval`` less the calls so far) or the interval's width ends it first, the
  lowest point it evaluated that satisfies sufficient decrease (N&W eq. 3.4), x_k itself (no move) if none;
- fixed step (``line_search_fn=None``): t = lr;
- first trial step: t = lr·min(1, 1/‖g‖₂) at the first iteration this optimizer ever makes (an empty memory),
  t = lr afterwards;
- stopping (the options as torch.optim.LBFGS documents them): max|g| <= tolerance_grad, gᵀd > -tolerance_change,
  max|x_{k+1} - x_k| <= tolerance_change, |f_{k+1} - f_k| < tolerance_change, max_iter iterations or max_eval
  closure calls per step() (never more than max_eval, the first call included).

Conventions of its own: without a line search the point a step() ends at is not evaluated; the move and the
gradient it started from are kept as a pending pair, completed by the next step()'s first evaluation. step()
returns the loss at its first evaluation. The checkpoint is one entry ``{0: {...}}`` with the pairs stacked
(``s``, ``y``: k x n, ``rho``: k, float64), ``pending_s``/``pending_g`` (or None) and the counters ``iterations``
and ``evaluations``; loading validates the number of unknowns and copies every tensor. Complex parameters are
optimised as pairs of reals (``torch.view_as_real``), sparse gradients are densified, parameters whose ``grad`` is
None are never written, and every point is written as ``x₀ + α·d`` computed on the flat vector and copied into
the parameters (non-contiguous ones included), so the point evaluated is the point accepted, bit for bit.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

C1 = 1e-4
"""Sufficient-decrease constant (N&W §3.1; Moré & Thuente's ftol)."""
C2 = 0.9
"""Curvature constant for quasi-Newton methods (N&W §3.1; Moré & Thuente's gtol)."""
XTOL = 1e-10
"""Relative width of the interval below which the search stops (Moré & Thuente's xtol)."""
STEP_MAX = 1e20
"""Largest step the search tries (Moré & Thuente's stpmax)."""


@dataclass
class Memory:
    """The L-BFGS memory (N&W Alg. 7.5): the newest pairs (s, y, ρ = 1/yᵀs), the pending move of a step() that ended
    at a point it did not evaluate, and counters over the optimizer's whole life."""

    pairs: deque[tuple[Tensor, Tensor, float]] = field(default_factory=deque)
    pending_s: Tensor | None = None
    pending_g: Tensor | None = None
    iterations: int = 0
    evaluations: int = 0

    def fit(self, history_size: int) -> None:
        """Bound the memory to ``history_size`` pairs, keeping the newest."""
        if self.pairs.maxlen != history_size:
            self.pairs = deque(self.pairs, maxlen=history_size)

    def add(self, s: Tensor, y: Tensor) -> None:
        """Store (s, y) when sᵀy > ε·yᵀy (L-BFGS-B's skip: the update keeps H positive definite)."""
        sy = float(torch.dot(s, y))
        yy = float(torch.dot(y, y))
        if sy > torch.finfo(s.dtype).eps * yy and sy > 0 and math.isfinite(sy):
            self.pairs.append((s, y, 1.0 / sy))

    def direction(self, g: Tensor) -> Tensor:
        """-H_k g by the two-loop recursion (N&W Alg. 7.4)."""
        q = g.clone()
        alphas = []
        for s, y, rho in reversed(self.pairs):
            a = rho * float(torch.dot(s, q))
            q.add_(y, alpha=-a)
            alphas.append(a)
        if self.pairs:
            s, y, _ = self.pairs[-1]
            q.mul_(float(torch.dot(s, y)) / float(torch.dot(y, y)))
        for (s, y, rho), a in zip(self.pairs, reversed(alphas), strict=True):
            b = rho * float(torch.dot(y, q))
            q.add_(s, alpha=a - b)
        return q.neg_()

    def to_state(self, n: int, dtype: torch.dtype) -> dict[str, Any]:
        """The checkpoint entry (copies)."""
        empty = torch.empty(0, n, dtype=dtype)
        return {
            "s": torch.stack([s for s, _, _ in self.pairs]).clone() if self.pairs else empty.clone(),
            "y": torch.stack([y for _, y, _ in self.pairs]).clone() if self.pairs else empty.clone(),
            "rho": torch.tensor([rho for _, _, rho in self.pairs], dtype=torch.float64),
            "pending_s": None if self.pending_s is None else self.pending_s.clone(),
            "pending_g": None if self.pending_g is None else self.pending_g.clone(),
            "iterations": self.iterations,
            "evaluations": self.evaluations,
        }

    @classmethod
    def from_state(cls, entry: dict[str, Any], n: int, dtype: torch.dtype, device: torch.device) -> Memory:
        """A memory from a checkpoint entry, validated against ``n`` unknowns (copies, cast to ``dtype``)."""
        missing = {"s", "y", "rho", "pending_s", "pending_g", "iterations", "evaluations"} - set(entry)
        if missing:
            raise ValueError(f"DequeLBFGS state is missing {sorted(missing)}")
        s, y, rho = entry["s"], entry["y"], entry["rho"]
        if not all(isinstance(t, Tensor) for t in (s, y, rho)):
            raise ValueError("DequeLBFGS state: 's', 'y' and 'rho' must be tensors")
        if s.dim() != 2 or s.shape != y.shape or s.shape[1] != n or rho.shape != (s.shape[0],):
            raise ValueError(f"DequeLBFGS state holds pairs of shape {tuple(s.shape)}/{tuple(y.shape)} with "
                             f"{tuple(rho.shape)} ρ; this optimizer has {n} unknowns")
        memory = cls()
        memory.pairs = deque((si.to(device=device, dtype=dtype).clone(), yi.to(device=device, dtype=dtype).clone(),
                              float(r)) for si, yi, r in zip(s, y, rho, strict=True))
        for key in ("pending_s", "pending_g"):
            value = entry[key]
            if value is not None:
                if not isinstance(value, Tensor) or value.shape != (n,):
                    raise ValueError(f"DequeLBFGS state: {key} must be None or a tensor of {n} elements")
                value = value.to(device=device, dtype=dtype).clone()
            setattr(memory, key, value)
        if (memory.pending_s is None) != (memory.pending_g is None):
            raise ValueError("DequeLBFGS state: pending_s and pending_g must be both set or both None")
        memory.iterations = int(entry["iterations"])
        memory.evaluations = int(entry["evaluations"])
        return memory


@dataclass
class SearchResult:
    """What the line search accepted: the step α (0: no move), f and the flat gradient there, and its calls."""

    alpha: float
    f: float
    g: Tensor
    calls: int


def _cubic_min(a: float, fa: float, da: float, b: float, fb: float, db: float, *, clip: bool) -> float | None:
    """The minimiser of the cubic through (a, fa, da), (b, fb, db) (Moré & Thuente section 4, Hermite form); with
    ``clip`` the square root's argument is floored at 0 (case 3: the cubic may not have a minimiser); ``None`` when
    there is none."""
    theta = 3.0 * (fa - fb) / (b - a) + da + db
    s = max(abs(theta), abs(da), abs(db))
    if s == 0 or not math.isfinite(s):
        return None
    disc = (theta / s) ** 2 - (da / s) * (db / s)
    if disc < 0:
        if not clip:
            return None
        disc = 0.0
    gamma = s * math.sqrt(disc)
    if b < a:
        gamma = -gamma
    p = (gamma - da) + theta
    q = ((gamma - da) + gamma) + db
    if q == 0:
        return None
    r = p / q
    if clip and not (r < 0 and gamma != 0):
        return None
    return a + r * (b - a)


def _safeguarded_step(stx: float, fx: float, dx: float, sty: float, fy: float, dy: float, stp: float, fp: float,
                      dp: float, bracketed: bool, lo: float, hi: float) -> tuple[float, float, float, float, float,
                                                                                 float, float, bool]:
    """One trial step of Moré & Thuente (1994) section 4 and the interval update: returns
    (stx, fx, dx, sty, fy, dy, new trial, bracketed)."""
    opposite = dp * math.copysign(1.0, dx) < 0  # the derivatives at stx and stp have opposite signs
    if fp > fx:  # case 1: a higher value, the minimum is bracketed
        cubic = _cubic_min(stx, fx, dx, stp, fp, dp, clip=False)
        quad = stx + dx / ((fx - fp) / (stp - stx) + dx) / 2.0 * (stp - stx)
        if cubic is None:
            new = quad
        elif abs(cubic - stx) < abs(quad - stx):
            new = cubic
        else:
            new = cubic + (quad - cubic) / 2.0
        bracketed = True
    elif opposite:  # case 2: lower value, derivatives of opposite sign: bracketed
        cubic = _cubic_min(stp, fp, dp, stx, fx, dx, clip=False)
        secant = stp + dp / (dp - dx) * (stx - stp)
        new = cubic if cubic is not None and abs(cubic - stp) > abs(secant - stp) else secant
        bracketed = True
    elif abs(dp) < abs(dx):  # case 3: lower value, same sign, the derivative decreases in magnitude
        cubic = _cubic_min(stp, fp, dp, stx, fx, dx, clip=True)
        if cubic is None:
            cubic = hi if stp > stx else lo
        secant = stp + dp / (dp - dx) * (stx - stp)
        if bracketed:
            new = cubic if abs(cubic - stp) < abs(secant - stp) else secant
            limit = stp + 0.66 * (sty - stp)
            new = min(limit, new) if stp > stx else max(limit, new)
        else:
            new = cubic if abs(cubic - stp) > abs(secant - stp) else secant
            new = max(lo, min(hi, new))
    else:  # case 4: lower value, same sign, the derivative does not decrease in magnitude
        if bracketed:
            cubic = _cubic_min(stp, fp, dp, sty, fy, dy, clip=False) if math.isfinite(fy) else None
            new = cubic if cubic is not None else stp + 0.5 * (sty - stp)
        else:
            new = hi if stp > stx else lo
    if fp > fx:
        sty, fy, dy = stp, fp, dp
    else:
        if opposite:
            sty, fy, dy = stx, fx, dx
        stx, fx, dx = stp, fp, dp
    return stx, fx, dx, sty, fy, dy, new, bracketed


def more_thuente(phi: Callable[[float], tuple[float, float, Tensor]], f0: float, d0: float, g0: Tensor,
                 alpha: float, budget: int) -> SearchResult:
    """Moré & Thuente's search for a strong-Wolfe step along a descent direction (``d0 = φ'(0) < 0``), with at most
    ``budget`` evaluations of ``phi(α) -> (φ(α), φ'(α), flat gradient)``."""
    best = SearchResult(0.0, f0, g0, 0)  # the lowest evaluated point with sufficient decrease (x_k at first)
    if budget < 1 or not d0 < 0:
        return best
    test = C1 * d0
    stx, fx, dx = 0.0, f0, d0
    sty, fy, dy = 0.0, f0, d0
    bracketed, second_stage = False, False
    width, width1 = STEP_MAX, 2.0 * STEP_MAX
    lo, hi = 0.0, alpha * 5.0
    stp = min(alpha, STEP_MAX)
    calls = 0
    while calls < budget:
        f, d, g = phi(stp)
        calls += 1
        best.calls = calls
        sufficient = f <= f0 + stp * test
        if sufficient and f < best.f:
            best = SearchResult(stp, f, g, calls)
        if sufficient and abs(d) <= -C2 * d0:
            return SearchResult(stp, f, g, calls)  # strong Wolfe (N&W eq. 3.7)
        if not math.isfinite(f) or not math.isfinite(d):  # too far: bracket and halve towards the best end
            bracketed = True
            sty, fy, dy = stp, math.inf, math.nan
            lo, hi = min(stx, sty), max(stx, sty)
            stp = stx + 0.5 * (stp - stx)
            if stp in (stx, sty):
                break
            continue
        if bracketed and (stp <= lo or stp >= hi or hi - lo <= XTOL * hi):
            break  # rounding prevents progress, or the interval is below xtol
        if stp >= STEP_MAX and sufficient and d <= test:
            break
        if not second_stage and sufficient and d >= 0:
            second_stage = True
        if not second_stage and f <= fx and not sufficient:
            # the modified function ψ (section 3): its values and derivatives
            stx, fxm, dxm, sty, fym, dym, stp, bracketed = _safeguarded_step(
                stx, fx - stx * test, dx - test, sty, fy - sty * test, dy - test, stp, f - stp * test, d - test,
                bracketed, lo, hi)
            fx, dx = fxm + stx * test, dxm + test
            fy, dy = fym + sty * test, dym + test
        else:
            stx, fx, dx, sty, fy, dy, stp, bracketed = _safeguarded_step(
                stx, fx, dx, sty, fy, dy, stp, f, d, bracketed, lo, hi)
        if bracketed:
            if abs(sty - stx) >= 0.66 * width1:
                stp = stx + 0.5 * (sty - stx)
            width1, width = width, abs(sty - stx)
            lo, hi = min(stx, sty), max(stx, sty)
        else:
            lo, hi = stp + 1.1 * (stp - stx), stp + 4.0 * (stp - stx)
        stp = max(0.0, min(stp, STEP_MAX))
        if not math.isfinite(stp) or (bracketed and (stp <= lo or stp >= hi or hi - lo <= XTOL * hi)):
            break  # no further progress is possible (Moré & Thuente: the best point so far is the answer)
    best.calls = calls
    return best


def _real(t: Tensor) -> Tensor:
    """``t`` as real numbers: a complex tensor as its (re, im) pairs (a view)."""
    return torch.view_as_real(t) if t.is_complex() else t


class DequeLBFGS(torch.optim.Optimizer):
    """L-BFGS (N&W Alg. 7.4/7.5) with a deque memory and a Moré–Thuente search (see the module docstring)."""

    def __init__(self, params: Iterable[Any], lr: float | Tensor = 1, max_iter: int = 20,
                 max_eval: int | None = None, tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn: str | None = None) -> None:
        if not float(lr) >= 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if int(max_iter) < 1 or int(history_size) < 1:
            raise ValueError(f"max_iter and history_size must be >= 1, got {max_iter}, {history_size}")
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}")
        if max_eval is None:
            max_eval = int(max_iter) * 5 // 4
        defaults = {"lr": lr, "max_iter": max_iter, "max_eval": max_eval, "tolerance_grad": tolerance_grad,
                    "tolerance_change": tolerance_change, "history_size": history_size,
                    "line_search_fn": line_search_fn}
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("DequeLBFGS supports one parameter group")

    # ----- the flat view of the parameters -----

    def _params(self) -> list[Tensor]:
        return list(self.param_groups[0]["params"])

    def _n(self) -> int:
        return sum(_real(p).numel() for p in self._params())

    def _dtype(self) -> torch.dtype:
        p = self._params()[0]
        return _real(p.detach()).dtype

    def _flat_x(self) -> Tensor:
        return torch.cat([_real(p.detach()).reshape(-1) for p in self._params()])

    def _flat_g(self) -> tuple[Tensor, list[bool]]:
        chunks, has = [], []
        for p in self._params():
            g = p.grad
            has.append(g is not None)
            if g is None:
                chunks.append(torch.zeros(_real(p.detach()).numel(), dtype=self._dtype(), device=p.device))
            else:
                chunks.append(_real(g.to_dense() if g.is_sparse else g).reshape(-1))
        return torch.cat(chunks), has

    def _write(self, x: Tensor, has: list[bool]) -> None:
        offset = 0
        with torch.no_grad():
            for p, written in zip(self._params(), has, strict=True):
                view = _real(p.data)
                n = view.numel()
                if written and n:
                    view.copy_(x[offset:offset + n].view_as(view))
                offset += n

    def _evaluate(self, closure: Callable[[], Any], memory: Memory) -> tuple[Any, float, Tensor, list[bool]]:
        with torch.enable_grad():
            loss = closure()
        memory.evaluations += 1
        g, has = self._flat_g()
        return loss, float(loss), g, has

    # ----- the step -----

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Up to ``max_iter`` L-BFGS iterations (N&W Alg. 7.5) on ``closure``; returns the first loss."""
        if closure is None:
            raise ValueError("DequeLBFGS.step needs a closure that re-evaluates the model and returns the loss")
        group = self.param_groups[0]
        lr = float(group["lr"])
        max_iter, max_eval = int(group["max_iter"]), int(group["max_eval"])
        tol_grad, tol_change = float(group["tolerance_grad"]), float(group["tolerance_change"])
        search = group["line_search_fn"] == "strong_wolfe"
        entry = self.state[self._params()[0]]
        memory: Memory = entry.setdefault("memory", Memory())
        memory.fit(int(group["history_size"]))

        if max_eval < 1:
            return None
        first_loss, f, g, has = self._evaluate(closure, memory)
        calls = 1
        if memory.pending_s is not None and memory.pending_g is not None:  # complete the previous step's pair
            memory.add(memory.pending_s, g - memory.pending_g)
            memory.pending_s = memory.pending_g = None
        if not g.numel() or float(g.abs().max()) <= tol_grad:
            return first_loss
        x = self._flat_x()
        for iteration in range(max_iter):
            d = memory.direction(g)
            gtd = float(torch.dot(g, d))
            if not gtd < -tol_change:
                break
            t = lr * min(1.0, 1.0 / float(g.norm())) if memory.iterations == 0 else lr
            memory.iterations += 1
            if search:
                def phi(alpha: float, x0: Tensor = x, d: Tensor = d,
                        has: list[bool] = has) -> tuple[float, float, Tensor]:
                    self._write(x0 + alpha * d, has)
                    _, fa, ga, _ = self._evaluate(closure, memory)
                    return fa, float(torch.dot(ga, d)), ga

                found = more_thuente(phi, f, gtd, g, t, max_eval - calls)
                calls += found.calls
                if found.alpha == 0.0:
                    self._write(x, has)
                    break
                x_new = x + found.alpha * d
                self._write(x_new, has)
                s = x_new - x
                memory.add(s, found.g - g)
                f_prev, f, x, g = f, found.f, x_new, found.g
            else:
                x_new = x + t * d
                self._write(x_new, has)
                s = x_new - x
                if iteration + 1 == max_iter or calls >= max_eval:
                    memory.pending_s, memory.pending_g = s, g
                    break
                _, f_new, g_new, has = self._evaluate(closure, memory)
                calls += 1
                memory.add(s, g_new - g)
                f_prev, f, x, g = f, f_new, x_new, g_new
            if calls >= max_eval or float(g.abs().max()) <= tol_grad:
                break
            if float(s.abs().max()) <= tol_change or abs(f - f_prev) < tol_change:
                break
        return first_loss

    # ----- the checkpoint -----

    def state_dict(self) -> dict[str, Any]:
        group = self.param_groups[0]
        saved_group = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
        saved_group["params"] = list(range(len(group["params"])))
        entry = self.state.get(self._params()[0], {})
        memory = entry.get("memory") if isinstance(entry, dict) else None
        state = {} if memory is None else {0: memory.to_state(self._n(), self._dtype())}
        return {"state": state, "param_groups": [saved_group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = state_dict.get("param_groups")
        if not isinstance(groups, list) or len(groups) != 1:
            raise ValueError("DequeLBFGS.load_state_dict: expected one parameter group")
        if len(groups[0].get("params", ())) != len(self._params()):
            raise ValueError(f"DequeLBFGS.load_state_dict: the saved group has {len(groups[0].get('params', ()))} "
                             f"parameters, this optimizer has {len(self._params())}")
        state = state_dict.get("state", {})
        if not isinstance(state, dict) or set(state) - {0}:
            raise ValueError("DequeLBFGS.load_state_dict: expected state {} or {0: ...}")
        first = self._params()[0]
        memory = Memory.from_state(state[0], self._n(), self._dtype(), first.device) if 0 in state else None
        self.param_groups[0].update({k: copy.deepcopy(v) for k, v in groups[0].items() if k != "params"})
        self.state.clear()
        if memory is not None:
            self.state[first]["memory"] = memory
