"""The typed description of the reference L-BFGS state, and the validation of a saved state.

``torch.optim.LBFGS`` keeps an untyped dict under ``optimizer.state[params[0]]`` (``torch/optim/lbfgs.py``);
the reference keeps *the same dict in the same place* (so every generic ``torch.optim.Optimizer`` mechanism sees
it). :class:`LBFGSState` documents each entry and gives a typed, read-only view of that dict
(:meth:`LBFGSState.view`); it is never a second store.

:func:`validate_saved_state` is the only way a saved state enters the reference. It checks every LBFGS key
(types, flat sizes, dtypes, signs, which keys exist together) and raises ``ValueError``/``TypeError`` naming the
key; it builds new tensors (never aliases its input). Non-finite values are what a diverged run leaves behind
(torch saves and loads them), so they load, with a ``RuntimeWarning`` naming the keys.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from lbfgs_verify.reference.checkpoint import warn_non_finite

Scalar = int | float | Tensor

FLAT_VECTOR_KEYS = ("d", "prev_flat_grad")
HISTORY_KEYS = ("old_dirs", "old_stps", "ro")
COUNTER_KEYS = ("func_evals", "n_iter")
ITERATED_KEYS = ("d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss")
"""Written together at the end of every ``step()`` that got past its first evaluation, in this order."""
STATE_KEYS = (*COUNTER_KEYS, "al", *ITERATED_KEYS)
"""Every key torch 2.13's LBFGS writes. Insertion order depends on the run (``al`` appears at the first
quasi-Newton iteration, which can be in the first step or a later one), so order is kept, never imposed."""


@dataclass
class LBFGSState:
    """The L-BFGS state, exactly what ``torch.optim.LBFGS`` keeps (``torch/optim/lbfgs.py``).

    ``None`` means "not created yet": torch creates ``func_evals``/``n_iter`` at the first ``step()``, ``al`` at
    the first quasi-Newton iteration, and the rest at the end of the first step that gets past its first
    evaluation (all ``None`` when ``max_iter <= 0`` let it do no iteration).

    Attributes:
        func_evals: closure evaluations over the optimizer's life.
        n_iter: iterations over the optimizer's life; iteration 1 uses the steepest-descent start.
        d: the last search direction (flat, real view of all parameters).
        t: the last step length: int, float (also a numpy scalar when lr is one) or a 0-dim tensor (tensor lr,
            or from the line search).
        old_dirs: gradient differences y_i = g_{i+1} - g_i, oldest first, normally at most ``history_size``.
        old_stps: steps s_i = x_{i+1} - x_i, paired with ``old_dirs``.
        ro: ρ_i = 1 / (y_iᵀ s_i) as 0-dim tensors (N&W eq. 7.17).
        al: scratch α_i of the last two-loop recursion (created with ``history_size`` entries), kept for torch.
        H_diag: γ = sᵀy / yᵀy of the newest pair, the initial inverse-Hessian scale H₀ = γI (N&W eq. 7.20);
            int 1 before the first pair.
        prev_flat_grad: the gradient at the start of the last iteration (flat).
        prev_loss: the loss at the start of the last iteration.
    """

    func_evals: int | None = None
    n_iter: int | None = None
    d: Tensor | None = None
    t: Scalar | None = None
    old_dirs: list[Tensor] | None = None
    old_stps: list[Tensor] | None = None
    ro: list[Tensor] | None = None
    al: list[Tensor | None] | None = None
    H_diag: Scalar | None = None
    prev_flat_grad: Tensor | None = None
    prev_loss: float | None = None

    @staticmethod
    def view(state: Mapping[str, Any]) -> LBFGSState:
        """A typed view of an optimizer's state dict: the same objects (lists and tensors are shared)."""
        return LBFGSState(**{f.name: state.get(f.name) for f in fields(LBFGSState)})

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


# --------------------------------------------------------------------------------------------------------
# Validation of a saved state (the counterpart of torch's unchecked ``Optimizer.load_state_dict``).
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlatLayout:
    """What the flat vectors of the state must look like for the optimizer's parameters."""

    numel: int
    dtype: torch.dtype
    device: torch.device

    @staticmethod
    def of(params: list[Tensor]) -> FlatLayout:
        """Complex parameters count twice (real view), as in ``torch.optim.LBFGS._numel``; the dtype is the one
        ``torch.cat`` gives the flat gradient (the promotion of the parameters' real dtypes)."""
        real_dtypes = [p.real.dtype if p.is_complex() else p.dtype for p in params]
        dtype = real_dtypes[0]
        for other in real_dtypes[1:]:
            dtype = torch.promote_types(dtype, other)
        numel = sum(2 * p.numel() if p.is_complex() else p.numel() for p in params)
        return FlatLayout(numel, dtype, params[0].device)


class _Checker:
    """Checks one saved state; collects the keys holding non-finite values (loaded, then warned about)."""

    def __init__(self, layout: FlatLayout, where: str) -> None:
        self.layout = layout
        self.where = where
        self.non_finite: list[str] = []

    def name(self, key: str) -> str:
        """``old_dirs[2]`` -> ``state['old_dirs'][2]``."""
        base, _, index = key.partition("[")
        return f"{self.where}[{base!r}]" + (f"[{index}" if index else "")

    def type_error(self, key: str, expected: str, value: Any) -> TypeError:
        return TypeError(f"{self.name(key)} must be {expected}, got {type(value).__name__}")

    def note_finite(self, key: str, value: float | Tensor) -> None:
        finite = bool(torch.isfinite(value).all()) if isinstance(value, Tensor) else math.isfinite(value)
        if not finite:
            self.non_finite.append(key)

    def count(self, key: str, value: Any) -> int:
        if not _is_int(value):
            raise self.type_error(key, "an int", value)
        if value < 0:
            raise ValueError(f"{self.name(key)} must be >= 0, got {value}")
        return int(value)

    def vector(self, key: str, value: Any) -> Tensor:
        """A floating flat tensor of the parameters' total size; a new tensor in the layout's dtype and device."""
        if not isinstance(value, Tensor):
            raise self.type_error(key, "a tensor", value)
        if value.is_sparse or value.layout != torch.strided:
            raise TypeError(f"{self.name(key)} must be a dense tensor, got layout {value.layout}")
        if not value.is_floating_point():
            raise TypeError(f"{self.name(key)} must be a floating tensor, got dtype {value.dtype}")
        if tuple(value.shape) != (self.layout.numel,):
            raise ValueError(f"{self.name(key)} must be a flat tensor of {self.layout.numel} elements (the "
                             f"parameters' size), got shape {tuple(value.shape)}")
        self.note_finite(key, value)
        return value.detach().to(dtype=self.layout.dtype, device=self.layout.device, copy=True)

    def scalar(self, key: str, value: Any, *, minimum: float | None, tensor_only: bool = False,
               keep_dtype: bool = False, floating_only: bool = True) -> Scalar:
        """An int/float (numpy scalars included) or a real 0-dim tensor, >= ``minimum`` unless non-finite (warned).

        Tensors move to the layout's device and are cast to its dtype unless ``keep_dtype``."""
        if isinstance(value, Tensor):
            if value.dim() != 0:
                raise ValueError(f"{self.name(key)} must be a 0-dim tensor, got shape {tuple(value.shape)}")
            if value.is_complex() or value.dtype == torch.bool or (floating_only and not value.is_floating_point()):
                kind = "floating" if floating_only else "real"
                raise TypeError(f"{self.name(key)} must be a {kind} tensor, got dtype {value.dtype}")
            number = float(value)
            dtype = value.dtype if keep_dtype else self.layout.dtype
            converted: Scalar = value.detach().to(dtype=dtype, device=self.layout.device, copy=True)
        elif not tensor_only and _is_real_number(value):
            number = float(value)
            converted = value
        else:
            expected = "a 0-dim tensor" if tensor_only else "an int, a float or a 0-dim tensor"
            raise self.type_error(key, expected, value)
        self.note_finite(key, number)
        if minimum is not None and math.isfinite(number) and number < minimum:  # non-finite: warned, as loaded
            raise ValueError(f"{self.name(key)} must be >= {minimum}, got {number}")
        return converted

    def tensor_list(self, key: str, value: Any) -> list[Any]:
        if not isinstance(value, (list, tuple)):
            raise self.type_error(key, "a list", value)
        return list(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def validate_saved_state(saved: Any, params: list[Tensor], *, where: str = "state", history_size: int | None = None,
                         lr: Any = None) -> dict[str, Any]:
    """Check ``saved`` (torch's per-parameter LBFGS state) and return a new dict to install, in ``saved``'s key
    order: LBFGS entries validated and copied, other entries (a hook's notes, say) deep-copied as they are.

    Raises ``TypeError`` (wrong type) or ``ValueError`` (wrong value, size, length; keys that never exist
    together) naming the key. Non-finite values load, with one ``RuntimeWarning`` naming their keys. Tensors are
    copied to the parameters' device and real flat dtype, except ``t`` which keeps its dtype (torch 2.13 casts it
    to the parameters' dtype and loses the bits of a tensor lr: defect 6 in the module docs of ``lbfgs``).

    ``history_size`` and ``lr`` are those of the group the state will run with (the saved group): the history
    may hold at most ``history_size`` pairs (``LBFGS.state_dict`` never saves more), and an integer-dtype tensor
    ``t`` is reachable only as ``t = lr`` with ``lr`` a tensor of that dtype (``torch/optim/lbfgs.py``: ``t = lr``
    after the first iteration); otherwise ``t`` is a number or a floating tensor.
    """
    import copy

    if not isinstance(saved, Mapping):
        raise TypeError(f"{where} must be a dict, got {type(saved).__name__}")
    check = _Checker(FlatLayout.of(params), where)
    validated: dict[str, Any] = {}
    present = [k for k in STATE_KEYS if k in saved]
    if present:
        missing = [k for k in COUNTER_KEYS if k not in saved]
        if missing:
            raise ValueError(f"{where} has {present} but is missing {missing} (created at the first step())")
        validated.update(_validate_lbfgs_entries(saved, check, history_size, lr))
    warn_non_finite(where, check.non_finite, stacklevel=4)
    out: dict[str, Any] = {}
    for key in saved:
        if key in validated:
            out[key] = validated[key]
        else:  # not an LBFGS key: carried, as torch carries it (but copied)
            out[key] = _copy_to(copy.deepcopy(saved[key]), check.layout.device)
    return out


def _copy_to(value: Any, device: torch.device) -> Any:
    if isinstance(value, Tensor):
        return value.to(device=device)
    if isinstance(value, dict):
        return {k: _copy_to(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_to(v, device) for v in value]
    return value


def _validate_lbfgs_entries(saved: Mapping[str, Any], check: _Checker, history_size: int | None,
                            lr: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["func_evals"] = check.count("func_evals", saved["func_evals"])
    out["n_iter"] = n_iter = check.count("n_iter", saved["n_iter"])
    iterated = [k for k in ITERATED_KEYS if k in saved]
    if iterated and len(iterated) != len(ITERATED_KEYS):
        missing = [k for k in ITERATED_KEYS if k not in saved]
        raise ValueError(f"{check.where} has {iterated} but is missing {missing}: step() writes them together")
    never_iterated = not iterated or all(saved[k] is None for k in ITERATED_KEYS)
    if never_iterated:
        # No iteration completed: none yet, steps with max_iter <= 0 (which write the keys as None), or a first
        # iterating step whose closure raised (torch keeps the incremented counters and nothing else; its next
        # iterating step() raises TypeError, and so does ours).
        if "al" in saved:
            raise ValueError(f"{check.where} has 'al' but no {list(ITERATED_KEYS)}: 'al' is created after them")
        if iterated:
            out.update(dict.fromkeys(ITERATED_KEYS))
        return out
    if n_iter == 0:
        raise ValueError(f"{check.where} has n_iter == 0 but also {iterated}: those keys exist only after an "
                         "iteration")
    if out["func_evals"] < n_iter:
        raise ValueError(f"{check.where}['func_evals'] ({out['func_evals']}) < {check.where}['n_iter'] ({n_iter}):"
                         " every iteration evaluates the closure at least once")

    out["d"] = check.vector("d", saved["d"])
    out["prev_flat_grad"] = check.vector("prev_flat_grad", saved["prev_flat_grad"])
    t = saved["t"]
    integer_t = isinstance(t, Tensor) and not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)
    if integer_t and not (isinstance(lr, Tensor) and lr.dtype == t.dtype):
        lr_kind = f"a {lr.dtype} tensor" if isinstance(lr, Tensor) else type(lr).__name__
        raise TypeError(f"{check.name('t')} is a {t.dtype} tensor, which only an lr tensor of that dtype gives "
                        f"(t = lr); the saved lr is {lr_kind}")
    out["t"] = check.scalar("t", t, minimum=0.0, keep_dtype=True, floating_only=False)
    h_diag = saved["H_diag"]
    if _is_int(h_diag) and h_diag != 1:
        raise ValueError(f"{check.name('H_diag')} is an int only before the first curvature pair, and then 1; "
                         f"got {h_diag}")
    out["H_diag"] = check.scalar("H_diag", h_diag, minimum=0.0)
    prev_loss = saved["prev_loss"]
    if not isinstance(prev_loss, float):
        raise check.type_error("prev_loss", "a float", prev_loss)
    check.note_finite("prev_loss", prev_loss)
    out["prev_loss"] = prev_loss

    lists = {k: check.tensor_list(k, saved[k]) for k in HISTORY_KEYS}
    lengths = {k: len(v) for k, v in lists.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{check.where}: history lists must have equal lengths, got {lengths}")
    if history_size is not None and lengths["old_dirs"] > history_size:
        raise ValueError(f"{check.name('old_dirs')} holds {lengths['old_dirs']} pairs but the saved history_size is "
                         f"{history_size} (LBFGS.state_dict() never saves more)")
    out["old_dirs"] = [check.vector(f"old_dirs[{i}]", v) for i, v in enumerate(lists["old_dirs"])]
    out["old_stps"] = [check.vector(f"old_stps[{i}]", v) for i, v in enumerate(lists["old_stps"])]
    out["ro"] = [check.scalar(f"ro[{i}]", v, minimum=0.0, tensor_only=True) for i, v in enumerate(lists["ro"])]
    if out["ro"] and isinstance(out["H_diag"], int):
        raise ValueError(f"{check.name('H_diag')} is the int 1 (no curvature pair yet) but the history holds pairs")

    if "al" in saved:
        al = check.tensor_list("al", saved["al"])
        if len(al) < len(out["old_dirs"]):
            raise ValueError(f"{check.name('al')} has {len(al)} entries but the history holds {len(out['old_dirs'])} "
                             "pairs: step() keeps one per pair")
        out["al"] = [None if v is None else check.scalar(f"al[{i}]", v, minimum=None, tensor_only=True)
                     for i, v in enumerate(al)]
    elif n_iter >= 2:
        raise ValueError(f"{check.where} has n_iter == {n_iter} but no 'al' (created at the second iteration)")
    return out
