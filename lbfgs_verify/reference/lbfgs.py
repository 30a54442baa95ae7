"""The reference L-BFGS: bitwise equal to ``torch.optim.LBFGS`` (torch 2.13), a drop-in with safe state.

The iteration is L-BFGS as in Nocedal & Wright, *Numerical Optimization* (2nd ed.), Algorithm 7.5, with the
two-loop recursion of Algorithm 7.4 for the direction, H₀ = γI with γ = sᵀy/yᵀy (eq. 7.20), and either a
fixed step or the strong-Wolfe search of :mod:`lbfgs_verify.line_search.strong_wolfe`. Every floating-point
operation is the one ``torch/optim/lbfgs.py`` performs, in the same order and rounded to the same dtype, so that
parameters and state agree to the bit with torch on the same device and thread count. Two things are done with
less work than torch, each proven to give its bits: the two-loop's step coefficients are Python numbers where
torch makes 0-dim tensors first (:data:`_EXACT_SCALAR_DTYPES`), and the new flat gradient is kept as
``prev_flat_grad`` instead of being copied into the old one. That is what makes the reference no slower than
torch (docs/measurements.md, "Speed").

The state lives where torch keeps it, ``optimizer.state[params[0]]``, with torch's keys, types and insertion
order, and is mutated the way torch mutates it (so even a step whose closure raised leaves the same state), so
every generic ``torch.optim.Optimizer`` mechanism works: hooks, ``param_names``, ``add_param_group``,
``zero_grad``, ``__repr__``, ``defaults``. :attr:`LBFGS.lbfgs_state` is a typed view of that dict, not a copy.

Where this optimizer deliberately differs from torch 2.13 (1-6 are torch defects, measured; each difference is
pinned by a test in ``tests/fast``):

1. ``load_state_dict`` validates everything and, on any error, leaves the optimizer exactly as it was
   (torch loads anything and fails later, or silently runs on garbage). Non-finite values load (a diverged
   run), with a ``RuntimeWarning`` naming the keys.
2. A loaded optimizer shares no tensor with the dict it came from; ``state_dict()`` returns a snapshot.
3. ``copy.deepcopy`` and pickling give an optimizer that steps (no cached attributes to lose).
4. Changing ``history_size`` between steps works: a history longer than the new size loses its oldest pairs
   at the next step (and in a ``state_dict()`` taken before it, so no saved state holds more pairs than its
   ``history_size``; a longer one is rejected at load) and ``al`` grows when the history outgrows it (torch
   raises ``IndexError``).
5. A state from parameters of another size is rejected at load time, naming the key.
6. A tensor ``t`` keeps its dtype on load, and the flat state keeps the dtype of the flat gradient (torch casts
   both to ``params[0]``'s dtype: bf16/fp16 parameters with a tensor lr, or parameters of mixed dtypes, then
   resume with other bits).
7. Arguments torch accepts but cannot run with raise at once, naming the argument: ``history_size`` not an int
   >= 1 (torch: ``IndexError``/``TypeError`` at the first curvature pair), ``line_search_fn`` other than
   ``None``/``"strong_wolfe"`` (torch: ``RuntimeError`` at the first iteration, after counting it), a
   non-number (``str``, ``None``, a tensor count) for ``max_iter``/``max_eval``/tolerances (torch:
   ``TypeError`` inside ``step()``), ``max_eval < 1`` with ``"strong_wolfe"`` (torch: ``UnboundLocalError``
   in its line search), ``bool`` for any numeric hyperparameter, a bool or complex tensor lr. The
   same check runs on the saved groups at load and on the group at each ``step()`` (edits between steps).
   Everything else torch accepts is accepted (numpy scalars, floats and ``0`` for ``max_iter``/``max_eval``,
   ``inf``/``-inf`` tolerances, tensor tolerances, integer tensor lr) and its own ``state_dict()`` loads.
8. ``step()`` with more than one parameter group (after ``add_param_group``) raises ``ValueError`` (torch raises
   ``AssertionError``), before touching anything, as torch.
9. A ``step()`` that follows one whose closure raised before any iteration completed raises ``TypeError`` with
   a message saying so (torch raises ``TypeError`` from ``flat_grad.sub(None)``), leaving the same state.
10. A value that is not a tensor, stored in a parameter's state by a hook, loads as it was (torch's load rebuilds
    any iterable through its type, so a string becomes the repr of a generator).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping
from math import nan
from typing import Any

import torch
from torch import Tensor

from lbfgs_verify.line_search.strong_wolfe import strong_wolfe
from lbfgs_verify.reference.checkpoint import load_like_torch, snapshot_state_dict
from lbfgs_verify.reference.state import LBFGSState, validate_saved_state

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
        q.add_(old_dirs[i], alpha=-al[i].item())  # = torch's alpha=-al[i], without a tensor negation
    r = torch.mul(q, H_diag)  # r = H₀ q
    scalar_difference = r.dtype in _EXACT_SCALAR_DTYPES and r.device.type == "cpu"
    for i in range(num_old):  # oldest to newest: β = ρ_i y_iᵀ r;  r ← r + s_i (α_i - β)
        be_i = old_dirs[i].dot(r) * ro[i]
        al_i = al[i]
        alpha = al_i.item() - be_i.item() if scalar_difference and al_i.dtype is be_i.dtype is r.dtype else nan
        if alpha != alpha:  # not taken, or NaN: a NaN's sign and payload are the kernel's, so torch's expression
            alpha = al_i - be_i
        r.add_(old_stps[i], alpha=alpha)  # = torch's alpha=al[i] - be_i (see _EXACT_SCALAR_DTYPES)
    return r


_EXACT_SCALAR_DTYPES = (torch.float32, torch.float64)
"""Dtypes for which ``two_loop_direction`` may form α_i - β_i as Python floats and keep torch's bits.

``Tensor.add_`` turns a tensor ``alpha`` into a Python number with ``.item()``, and the kernel rounds it to the
tensor's compute type (float32 for float32, float64 for float64, on the CPU and on CUDA). Torch subtracts the
two 0-dim tensors in their dtype first. In float64 that is the same IEEE subtraction as Python's. For float32
operands, the double difference rounded to float32 by the kernel equals the float32 difference: a double has
more than 2·24 + 2 significand bits, so the second rounding cannot change the first (Figueroa, "When is double
rounding innocuous?", SIGNUM Newsletter 30(3), 1995). Half and bfloat16 keep torch's tensor expression: CUDA
computes them in float32, where that argument fails, and the test covers them on the CPU as the fallback.
On a GPU each ``.item()`` is a synchronisation, so the shortcut is taken on the CPU only. Every result but NaN is
fixed by IEEE 754; a NaN's sign and payload are not (NaN - NaN keeps the first operand's in Python and the second's
in torch's CPU kernel, measured), so a NaN difference is formed by torch's expression. The negation in the first
loop flips the sign bit in both, NaN included, so it is always done on the Python number. Pinned by
``tests/fast/test_reference_lbfgs.py::test_two_loop_scalar_shortcut_keeps_torchs_bits``."""


class LBFGS(torch.optim.Optimizer):
    """L-BFGS with ``torch.optim.LBFGS``'s constructor, defaults, semantics, state and ``state_dict`` layout.

    Args are torch's: ``lr=1, max_iter=20, max_eval=None (max_iter*5//4), tolerance_grad=1e-7,
    tolerance_change=1e-9, history_size=100, line_search_fn=None | "strong_wolfe"``. One parameter group.
    The state is ``self.state[params[0]]``, as in torch (see the module docstring for the differences).
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
        if isinstance(lr, Tensor) and lr.numel() != 1:  # torch's two checks, torch's messages
            raise ValueError("Tensor lr must be 1-element")
        _check_lr(lr, "lr")
        if max_eval is None:
            _check_count(max_iter, "max_iter")
            max_eval = max_iter * 5 // 4
        defaults = {
            "lr": lr,
            "max_iter": max_iter,
            "max_eval": max_eval,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "history_size": history_size,
            "line_search_fn": line_search_fn,
        }
        check_options(defaults, "LBFGS()")
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")

    # --- parameters as one flat vector (complex parameters as their real view) -------------------------
    @property
    def _params(self) -> list[Tensor]:
        return self.param_groups[0]["params"]

    @property
    def lbfgs_state(self) -> LBFGSState:
        """A typed view of ``self.state[params[0]]`` (same objects; nothing is copied or stored apart)."""
        return LBFGSState.view(self.state.get(self._params[0], {}))

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

        Returns what the first evaluation returned (at the parameters the step started from), like torch.
        The state is read from and written to ``self.state[params[0]]`` at the points torch does.
        """
        return self._iterate(closure)

    def _iterate(self, closure: Callable[[], Any]) -> Any:
        """The body of :meth:`step`, under ``torch.no_grad()`` (kept undecorated so that mutation testing, which
        skips decorated functions, reaches it: docs/mutation.md)."""
        if len(self.param_groups) != 1:
            raise ValueError(f"LBFGS supports exactly one parameter group, the optimizer has {len(self.param_groups)}"
                             " (add_param_group added one); torch.optim.LBFGS raises AssertionError here")
        group = self.param_groups[0]
        check_options(group, "optimizer.param_groups[0]")
        lr = group["lr"]
        lr = lr.squeeze() if isinstance(lr, Tensor) and lr.dim() != 0 else lr
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]

        state = self.state[self._params[0]]  # torch's place for LBFGS's global state
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        if closure is None:  # torch fails here too (TypeError), with the counters created
            raise TypeError("LBFGS.step() requires a closure that re-evaluates the model and returns the loss")
        closure = torch.enable_grad()(closure)
        _fit_history(state, history_size)

        orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        opt_cond = flat_grad.abs().max() <= tolerance_grad
        if opt_cond:  # already optimal (first-order condition)
            return orig_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag, prev_flat_grad, prev_loss = state.get("H_diag"), state.get("prev_flat_grad"), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # --- search direction ---------------------------------------------------------------------
            if state["n_iter"] == 1:  # first iteration ever: steepest descent, empty history
                d = flat_grad.neg()
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                if prev_flat_grad is None or d is None or old_dirs is None or old_stps is None or ro is None:
                    raise TypeError(f"the LBFGS state has n_iter == {state['n_iter'] - 1} but no search direction "
                                    "or previous gradient: an earlier step() was interrupted by an exception in its "
                                    "closure before completing an iteration (torch.optim.LBFGS raises TypeError "
                                    "here too)")
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
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                if len(al) < len(old_dirs):  # history_size was raised (torch: IndexError)
                    al.extend([None] * (max(history_size, len(old_dirs)) - len(al)))
                d = two_loop_direction(flat_grad, old_dirs, old_stps, ro, H_diag, al)

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            elif prev_flat_grad.dtype is flat_grad.dtype and prev_flat_grad.device == flat_grad.device:
                # flat_grad is a new tensor nothing writes to: keep it instead of torch's copy_ into the old one.
                # Where the old one is the stored one, the copy_ shows in the state at once (a closure raising later
                # in this step leaves it there), so store the new one at once too.
                if state.get("prev_flat_grad") is prev_flat_grad:
                    state["prev_flat_grad"] = flat_grad
                prev_flat_grad = flat_grad
            else:  # a state set by hand in another dtype or device: torch's copy_ keeps it there
                prev_flat_grad.copy_(flat_grad)
            prev_loss = loss

            # --- step length ---------------------------------------------------------------------------
            if state["n_iter"] == 1:  # first step scaled by the gradient's L1 norm
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
                if n_iter != max_iter:
                    with torch.enable_grad():
                        loss = closure()
                    loss = float(loss)
                    flat_grad = self._gather_flat_grad()
                    opt_cond = flat_grad.abs().max() <= tolerance_grad
                    evaluations = 1
            current_evals += evaluations
            state["func_evals"] += evaluations

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

        state["d"] = d
        state["t"] = t
        state["old_dirs"] = old_dirs
        state["old_stps"] = old_stps
        state["ro"] = ro
        state["H_diag"] = H_diag
        state["prev_flat_grad"] = prev_flat_grad
        state["prev_loss"] = prev_loss
        return orig_loss

    # --- state exchange ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """torch's ``state_dict`` (same layout, hooks, ``param_names``), as a snapshot later steps never change.

        A history longer than ``history_size`` (lowered between steps) is saved without its oldest pairs, as the
        next ``step()`` would drop them first (point 4), so a saved state never holds more pairs than its
        ``history_size`` and a longer one is rejected at load."""
        snapshot = snapshot_state_dict(self)
        groups = snapshot.get("param_groups")
        if isinstance(groups, list) and len(groups) == 1 and groups[0].get("params"):
            saved = snapshot.get("state", {}).get(groups[0]["params"][0])
            if isinstance(saved, dict) and isinstance(groups[0].get("history_size"), numbers.Integral):
                _fit_history(saved, groups[0]["history_size"])
        return snapshot

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a ``state_dict`` (ours or ``torch.optim.LBFGS``'s) with torch's semantics, validated, all or nothing.

        Raises ``TypeError``/``ValueError`` naming the offending key; on error the optimizer is unchanged.
        Hyperparameters come from the saved ``param_groups`` (torch's rule); nothing is shared with
        ``state_dict`` afterwards. Non-finite values load with a ``RuntimeWarning`` naming the keys.
        """
        load_like_torch(self, state_dict, check_group=check_options, validate_state=_validate_state)


def _validate_state(saved: Any, params: list[Tensor], where: str, group: Mapping[str, Any]) -> dict[str, Any]:
    return validate_saved_state(saved, params, where=where, history_size=group["history_size"], lr=group["lr"])


def _fit_history(state: dict[str, Any], history_size: int) -> None:
    """``history_size`` lowered below the stored pairs: drop the oldest (torch keeps them, then IndexError)."""
    old_dirs = state.get("old_dirs")
    if isinstance(old_dirs, list) and len(old_dirs) > history_size:
        drop = len(old_dirs) - history_size
        del old_dirs[:drop]
        del state["old_stps"][:drop]
        del state["ro"][:drop]


# --------------------------------------------------------------------------------------------------------
# Hyperparameter checks: one function for the constructor, the saved groups at load, and each step().
# --------------------------------------------------------------------------------------------------------


def _is_real(value: Any) -> bool:
    kind = type(value)
    if kind is float or kind is int:  # the common case, without the slower ABC check (step() calls this)
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _label(where: str, key: str | None) -> str:
    return where if key is None else f"{where}[{key!r}]"


def _check_lr(lr: Any, where: str, key: str | None = None) -> None:
    if _is_real(lr):
        pass
    elif isinstance(lr, Tensor):
        if lr.numel() != 1:
            raise ValueError(f"{_label(where, key)} must be a number or a 1-element tensor, got shape "
                             f"{tuple(lr.shape)}")
        if lr.dtype == torch.bool or lr.is_complex():
            raise TypeError(f"{_label(where, key)} must be a real tensor, got dtype {lr.dtype}")
    else:
        raise TypeError(f"{_label(where, key)} must be a real number or a 1-element tensor, got {type(lr).__name__}")
    if not lr >= 0.0:
        raise ValueError(f"Invalid learning rate: {lr} ({_label(where, key)} must be >= 0)")


def _check_count(value: Any, where: str, key: str | None = None) -> None:
    if not _is_real(value):
        raise TypeError(f"{_label(where, key)} must be a real number (int, float or numpy scalar), got "
                        f"{type(value).__name__}")


def _check_tolerance(value: Any, where: str, key: str | None = None) -> None:
    if _is_real(value):
        return
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{_label(where, key)} must be a real number or a real 1-element tensor, got a "
                            f"{value.dtype} tensor of shape {tuple(value.shape)}")
    else:
        raise TypeError(f"{_label(where, key)} must be a real number or a 1-element tensor, got "
                        f"{type(value).__name__}")


def check_options(group: Mapping[str, Any], where: str) -> None:
    """Check LBFGS's hyperparameters in ``group``; ``TypeError``/``ValueError`` naming ``where[key]``.

    Accepts what ``torch.optim.LBFGS`` can run with (see the module docstring, point 7)."""
    missing = [k for k in HYPERPARAMETER_KEYS if k not in group]
    if missing:
        raise ValueError(f"{where} is missing {missing}")
    _check_lr(group["lr"], where, "lr")
    _check_count(group["max_iter"], where, "max_iter")
    _check_count(group["max_eval"], where, "max_eval")
    _check_tolerance(group["tolerance_grad"], where, "tolerance_grad")
    _check_tolerance(group["tolerance_change"], where, "tolerance_change")
    history_size = group["history_size"]
    if type(history_size) is not int and (not isinstance(history_size, numbers.Integral)
                                          or isinstance(history_size, bool)):
        raise TypeError(f"{where}['history_size'] must be an int >= 1, got {type(history_size).__name__}")
    if history_size < 1:
        raise ValueError(f"{where}['history_size'] must be an int >= 1, got {history_size}")
    if group["line_search_fn"] not in (None, "strong_wolfe"):
        raise ValueError(f"{where}['line_search_fn'] must be None or 'strong_wolfe', got {group['line_search_fn']!r}")
    if group["line_search_fn"] == "strong_wolfe" and not group["max_eval"] >= 1:
        raise ValueError(f"{where}['max_eval'] must be >= 1 with line_search_fn='strong_wolfe', got "
                         f"{group['max_eval']!r} (torch.optim.LBFGS's line search then fails with UnboundLocalError)")
