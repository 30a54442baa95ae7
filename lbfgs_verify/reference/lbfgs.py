"""The reference L-BFGS: bitwise equal to ``torch.optim.LBFGS`` (torch 2.13), with safe, explicit state.

The iteration is L-BFGS as in Nocedal & Wright, *Numerical Optimization* (2nd ed.), Algorithm 7.5, with the
two-loop recursion of Algorithm 7.4 for the direction, H₀ = γI with γ = sᵀy/yᵀy (eq. 7.20), and either a
fixed step or the strong-Wolfe search of :mod:`lbfgs_verify.line_search.strong_wolfe`. Every floating-point
operation is the one ``torch/optim/lbfgs.py`` performs, in the same order, so that parameters and state agree
to the bit with torch on the same device and thread count.

Where this optimizer deliberately differs from torch 2.13 (each a defect listed in ``facts/torch-lbfgs.md``):

1. ``load_state_dict`` validates everything and, on any error, leaves the optimizer exactly as it was.
2. A loaded optimizer shares no tensor with the dict it came from; ``state_dict()`` returns a snapshot.
3. ``copy.deepcopy`` and pickling give an optimizer that steps (no cached attributes to lose).
4. Changing ``history_size`` between steps keeps the newest pairs (no ``IndexError``).
5. A state from parameters of another size is rejected at load time, naming the key.
6. A tensor ``t`` keeps its dtype on load (bf16/fp16 parameters with a tensor lr resume bitwise).
7. Constructor arguments that torch only fails on later (``max_iter < 1``, ``history_size < 1``,
   ``max_eval < 1``, an unknown ``line_search_fn``) raise ``ValueError`` at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from lbfgs_verify.line_search.strong_wolfe import strong_wolfe
from lbfgs_verify.reference.checkpoint import finish_load, pack_state_dict, unpack_state_dict
from lbfgs_verify.reference.state import LBFGSState, state_from_torch_layout

Scalar = int | float | Tensor
CURVATURE_THRESHOLD = 1e-10
"""A pair (s, y) enters the history only if yᵀs > 1e-10 (absolute), as in torch (keeps H positive definite)."""

HYPERPARAMETER_KEYS = ("lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size",
                       "line_search_fn")


def two_loop_direction(
    flat_grad: Tensor, old_dirs: list[Tensor], old_stps: list[Tensor], ro: list[Tensor], H_diag: Scalar,
    al: list[Any],
) -> Tensor:
    """d = -H g by the L-BFGS two-loop recursion (Nocedal & Wright Alg. 7.4), torch's operation order.

    ``old_dirs`` are the y_i, ``old_stps`` the s_i (oldest first), ``ro`` the ρ_i = 1/(y_iᵀs_i), ``H_diag``
    the scale γ of H₀ = γI. ``al`` (length ≥ number of pairs) receives the α_i as torch stores them.
    """
    num_old = len(old_dirs)
    q = flat_grad.neg()
    for i in range(num_old - 1, -1, -1):  # newest to oldest: α_i = ρ_i s_iᵀ q;  q ← q - α_i y_i
        al[i] = old_stps[i].dot(q) * ro[i]
        q.add_(old_dirs[i], alpha=-al[i])
    r = torch.mul(q, H_diag)  # r = H₀ q
    for i in range(num_old):  # oldest to newest: β = ρ_i y_iᵀ r;  r ← r + s_i (α_i - β)
        be_i = old_dirs[i].dot(r) * ro[i]
        r.add_(old_stps[i], alpha=al[i] - be_i)
    return r


class LBFGS(torch.optim.Optimizer):
    """L-BFGS with ``torch.optim.LBFGS``'s constructor, defaults, semantics and ``state_dict`` layout.

    Args are torch's: ``lr=1, max_iter=20, max_eval=None (max_iter*5//4), tolerance_grad=1e-7,
    tolerance_change=1e-9, history_size=100, line_search_fn=None | "strong_wolfe"``. One parameter group.

    The whole algorithmic state is :attr:`lbfgs_state`, an :class:`~lbfgs_verify.reference.state.LBFGSState`;
    the optimizer keeps no other mutable attribute (``self.state`` of the base class stays empty).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, Tensor]],
        lr: float | Tensor = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        _check_hyperparameters(max_iter, max_eval, history_size, line_search_fn)
        defaults = {
            "lr": lr,
            "max_iter": max_iter,
            "max_eval": max_eval,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "history_size": history_size,
            "line_search_fn": line_search_fn,
        }
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self.lbfgs_state = LBFGSState()

    # --- parameters as one flat vector (complex parameters as their real view) -------------------------
    @property
    def _params(self) -> list[Tensor]:
        return self.param_groups[0]["params"]

    def _numel(self) -> int:
        return sum(2 * p.numel() if torch.is_complex(p) else p.numel() for p in self._params)

    def _gather_flat_grad(self) -> Tensor:
        views = []
        for p in self._params:
            if p.grad is None:
                view = p.new(p.numel()).zero_()
            elif p.grad.is_sparse:
                view = p.grad.to_dense().view(-1)
            else:
                view = p.grad.view(-1)
            if torch.is_complex(view):
                view = torch.view_as_real(view).view(-1)
            views.append(view)
        return torch.cat(views, 0)

    def _add_grad(self, step_size: Scalar, update: Tensor) -> None:
        offset = 0
        for p in self._params:
            if torch.is_complex(p):
                p = torch.view_as_real(p)
            numel = p.numel()
            p.add_(update[offset : offset + numel].view_as(p), alpha=step_size)
            offset += numel

    def _clone_param(self) -> list[Tensor]:
        return [p.clone(memory_format=torch.contiguous_format) for p in self._params]

    def _set_param(self, params_data: list[Tensor]) -> None:
        for p, pdata in zip(self._params, params_data, strict=True):
            p.copy_(pdata)

    def _directional_evaluate(self, closure: Callable[[], Any], x: list[Tensor], t: Scalar, d: Tensor):
        """f and ∇f at x + t·d; the parameters are restored to ``x`` afterwards."""
        self._add_grad(t, d)
        loss = float(closure())
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    # --- the iteration -----------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Run up to ``max_iter`` L-BFGS iterations; ``closure`` re-evaluates the loss and its gradients.

        Returns the loss of the first evaluation (at the parameters the step started from), like torch.
        """
        if closure is None:
            raise TypeError("LBFGS.step() requires a closure that re-evaluates the model and returns the loss")
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr = group["lr"]
        lr = lr.squeeze() if isinstance(lr, Tensor) and lr.dim() != 0 else lr
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]
        _check_hyperparameters(max_iter, max_eval, history_size, line_search_fn)

        state = self.lbfgs_state
        state.resize_history(history_size)
        if state.func_evals is None:
            state.func_evals, state.n_iter = 0, 0
        assert state.n_iter is not None

        orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state.func_evals += 1
        flat_grad = self._gather_flat_grad()
        if flat_grad.abs().max() <= tolerance_grad:  # already optimal (first-order condition)
            return orig_loss

        d, t, H_diag = state.d, state.t, state.H_diag
        old_dirs, old_stps, ro = state.old_dirs, state.old_stps, state.ro
        prev_flat_grad, prev_loss = state.prev_flat_grad, state.prev_loss

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state.n_iter += 1

            # --- search direction ---------------------------------------------------------------------
            if state.n_iter == 1:  # first iteration ever: steepest descent, empty history
                d = flat_grad.neg()
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                assert old_dirs is not None and old_stps is not None and ro is not None and d is not None
                y = flat_grad.sub(prev_flat_grad)
                s = d.mul(t)
                ys = y.dot(s)
                if ys > CURVATURE_THRESHOLD:  # curvature condition: keep the pair
                    if len(old_dirs) == history_size:  # full: forget the oldest pair
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)  # γ = sᵀy / yᵀy
                if state.al is None:
                    state.al = [None] * history_size
                d = two_loop_direction(flat_grad, old_dirs, old_stps, ro, H_diag, state.al)

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            else:
                prev_flat_grad.copy_(flat_grad)
            prev_loss = loss

            # --- step length ---------------------------------------------------------------------------
            if state.n_iter == 1:  # first step scaled by the gradient's L1 norm
                t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr
            else:
                t = lr
            gtd = flat_grad.dot(d)  # directional derivative gᵀd
            if gtd > -tolerance_change:  # not (sufficiently) a descent direction
                break

            evaluations = 0
            if line_search_fn is not None:
                x_init = self._clone_param()

                def evaluate(x: list[Tensor], step: Scalar, direction: Tensor) -> tuple[float, Tensor]:
                    return self._directional_evaluate(closure, x, step, direction)

                found = strong_wolfe(evaluate, x_init, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals)
                loss, flat_grad, t, evaluations = found.loss, found.flat_grad, found.t, found.evaluations
                self._add_grad(t, d)
                opt_cond = flat_grad.abs().max() <= tolerance_grad
            else:  # fixed step; no evaluation after the last iteration (torch's rule)
                self._add_grad(t, d)
                opt_cond = False
                if n_iter != max_iter:
                    with torch.enable_grad():
                        loss = float(closure())
                    flat_grad = self._gather_flat_grad()
                    opt_cond = flat_grad.abs().max() <= tolerance_grad
                    evaluations = 1
            current_evals += evaluations
            state.func_evals += evaluations

            # --- stopping tests, in torch's order --------------------------------------------------------
            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            if d.mul(t).abs().max() <= tolerance_change:  # step too small
                break
            if abs(loss - prev_loss) < tolerance_change:  # loss stalled
                break

        state.d, state.t, state.H_diag = d, t, H_diag
        state.old_dirs, state.old_stps, state.ro = old_dirs, old_stps, ro
        state.prev_flat_grad, state.prev_loss = prev_flat_grad, prev_loss
        return orig_loss

    # --- state exchange ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A snapshot in ``torch.optim.LBFGS``'s layout: later steps never change a returned dict."""
        return pack_state_dict(self, self.lbfgs_state.to_torch_layout())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Validate and load a ``state_dict`` (ours or ``torch.optim.LBFGS``'s). All or nothing.

        Raises ``TypeError``/``ValueError`` naming the offending key; on error the optimizer is unchanged.
        Hyperparameters come from the saved ``param_groups`` (torch's rule); nothing is shared with
        ``state_dict`` afterwards.
        """
        unpacked = unpack_state_dict(self, state_dict, HYPERPARAMETER_KEYS, reject_unknown_options=False)
        _check_group_values(unpacked.options)
        try:
            new_state = state_from_torch_layout(unpacked.inner or {}, self._params, unpacked.options["history_size"])
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{unpacked.where}: {exc}") from exc
        # Everything is valid: commit both at once.
        self.param_groups[0] = {**unpacked.options, "params": self._params}
        self.lbfgs_state = new_state
        finish_load(self)

    # --- copying -----------------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["lbfgs_state"] = self.lbfgs_state
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if "lbfgs_state" not in self.__dict__:
            self.lbfgs_state = LBFGSState()


def _check_hyperparameters(max_iter: Any, max_eval: Any, history_size: Any, line_search_fn: Any) -> None:
    for name, value in (("max_iter", max_iter), ("max_eval", max_eval), ("history_size", history_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if line_search_fn not in (None, "strong_wolfe"):
        raise ValueError(f"line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}")


def _check_group_values(group: dict[str, Any]) -> None:
    """Check saved hyperparameters; the message names the key."""
    where = "state_dict['param_groups'][0]"
    try:
        _check_hyperparameters(group["max_iter"], group["max_eval"], group["history_size"], group["line_search_fn"])
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    lr = group["lr"]
    if isinstance(lr, Tensor):
        if lr.numel() != 1 or not lr.is_floating_point():
            raise ValueError(f"{where}['lr'] must be a 1-element floating tensor, got {lr.dtype}{tuple(lr.shape)}")
        value = float(lr)
    elif isinstance(lr, (int, float)) and not isinstance(lr, bool):
        value = float(lr)
    else:
        raise TypeError(f"{where}['lr'] must be a number or a 1-element tensor, got {type(lr).__name__}")
    if not (value >= 0 and value != float("inf")):
        raise ValueError(f"{where}['lr'] must be finite and >= 0, got {value}")
    for key in ("tolerance_grad", "tolerance_change"):
        tol = group[key]
        if isinstance(tol, bool) or not isinstance(tol, (int, float)):
            raise TypeError(f"{where}[{key!r}] must be a number, got {type(tol).__name__}")
        if not (tol >= 0):
            raise ValueError(f"{where}[{key!r}] must be >= 0, got {tol}")
