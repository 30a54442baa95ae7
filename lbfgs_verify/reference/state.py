"""The explicit, typed state of the reference L-BFGS, and its exchange with torch's ``state_dict`` layout.

``torch.optim.LBFGS`` keeps an untyped dict under ``state[params[0]]``; :class:`LBFGSState` is the same data
with every field documented. The field names are torch's keys, so a torch ``state_dict`` converts to and from
this structure without renaming, and the two optimizers can exchange checkpoints mid-run.

:func:`state_from_torch_layout` is the *only* way a saved state enters the reference. It checks every key
(types, lengths, flat sizes, dtypes, finiteness, history length against ``history_size``) and raises
``ValueError``/``TypeError`` naming the key; it builds new tensors (never aliases its input).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

Scalar = int | float | Tensor

FLAT_VECTOR_KEYS = ("d", "prev_flat_grad")
HISTORY_KEYS = ("old_dirs", "old_stps", "ro")
STATE_KEYS = ("func_evals", "n_iter", "al", "d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad",
              "prev_loss")
"""torch 2.13's key order (``al`` appears at the second iteration, the rest at the end of the first step)."""


@dataclass
class LBFGSState:
    """The L-BFGS state, exactly what ``torch.optim.LBFGS`` keeps (``torch/optim/lbfgs.py``).

    ``None`` means "not created yet": torch creates ``func_evals``/``n_iter`` at the first ``step()``,
    ``al`` at the first quasi-Newton iteration, and the rest at the end of the first step that iterates.

    Attributes:
        func_evals: closure evaluations over the optimizer's life.
        n_iter: iterations over the optimizer's life; iteration 1 uses the steepest-descent start.
        d: the last search direction (flat, real view of all parameters).
        t: the last step length: Python int/float or a 0-dim tensor (tensor lr, or from the line search).
        old_dirs: gradient differences y_i = g_{i+1} - g_i, oldest first, at most ``history_size``.
        old_stps: steps s_i = x_{i+1} - x_i, paired with ``old_dirs``.
        ro: ρ_i = 1 / (y_iᵀ s_i) as 0-dim tensors (N&W eq. 7.17).
        al: scratch α_i of the last two-loop recursion (length ``history_size``), kept for torch layout.
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

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def to_torch_layout(self) -> dict[str, Any]:
        """A snapshot in torch's layout (torch's key order; tensors cloned, lists new)."""
        out: dict[str, Any] = {}
        for key in STATE_KEYS:
            value = getattr(self, key)
            if value is not None:
                out[key] = _clone(value)
        return out

    def resize_history(self, history_size: int) -> None:
        """Keep the newest ``history_size`` pairs and give ``al`` that length (history_size changed)."""
        if self.old_dirs is not None and len(self.old_dirs) > history_size:
            drop = len(self.old_dirs) - history_size
            assert self.old_stps is not None and self.ro is not None
            del self.old_dirs[:drop], self.old_stps[:drop], self.ro[:drop]
        if self.al is not None and len(self.al) != history_size:
            self.al = (self.al + [None] * history_size)[:history_size]


def _clone(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


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
        """Complex parameters count twice (real view), as in ``torch.optim.LBFGS._numel``."""
        real_dtypes = [p.real.dtype if p.is_complex() else p.dtype for p in params]
        dtype = real_dtypes[0]
        for other in real_dtypes[1:]:
            dtype = torch.promote_types(dtype, other)
        numel = sum(2 * p.numel() if p.is_complex() else p.numel() for p in params)
        return FlatLayout(numel, dtype, params[0].device)


def _fail_type(key: str, expected: str, value: Any) -> TypeError:
    return TypeError(f"state[{key!r}] must be {expected}, got {type(value).__name__}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_count(key: str, value: Any) -> int:
    if not _is_int(value):
        raise _fail_type(key, "an int", value)
    if value < 0:
        raise ValueError(f"state[{key!r}] must be >= 0, got {value}")
    return int(value)


def _check_tensor(key: str, value: Any, layout: FlatLayout, *, shape: tuple[int, ...]) -> Tensor:
    """A finite floating tensor of ``shape``; returned as a new tensor in the layout's dtype and device."""
    if not isinstance(value, Tensor):
        raise _fail_type(key, "a tensor", value)
    if not (value.is_floating_point()):
        raise TypeError(f"state[{key!r}] must be a floating tensor, got dtype {value.dtype}")
    if tuple(value.shape) != shape:
        what = "a 0-dim tensor" if shape == () else f"a flat tensor of {shape[0]} elements (the parameters' size)"
        raise ValueError(f"state[{key!r}] must be {what}, got shape {tuple(value.shape)}")
    if value.is_sparse or value.layout != torch.strided:
        raise TypeError(f"state[{key!r}] must be a dense tensor, got layout {value.layout}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"state[{key!r}] contains NaN or inf")
    return value.detach().to(dtype=layout.dtype, device=layout.device, copy=True)


def _check_scalar(key: str, value: Any, layout: FlatLayout, *, positive: bool, keep_dtype: bool = False) -> Scalar:
    """An int, float or finite 0-dim tensor (moved to the layout's device; cast unless ``keep_dtype``)."""
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.dim() != 0:
            raise ValueError(f"state[{key!r}] must be a 0-dim tensor, got shape {tuple(value.shape)}")
        if not value.is_floating_point():
            raise TypeError(f"state[{key!r}] must be a floating tensor, got dtype {value.dtype}")
        number = float(value)
        dtype = value.dtype if keep_dtype else layout.dtype
        converted: Scalar = value.detach().to(dtype=dtype, device=layout.device, copy=True)
    elif _is_real_number(value):
        number = float(value)
        converted = value
    else:
        raise _fail_type(key, "an int, a float or a 0-dim tensor", value)
    if not math.isfinite(number):
        raise ValueError(f"state[{key!r}] is not finite: {number}")
    if positive and not number > 0:
        raise ValueError(f"state[{key!r}] must be > 0, got {number}")
    return converted


def _check_list(key: str, value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise _fail_type(key, "a list", value)
    return list(value)


def state_from_torch_layout(saved: Mapping[str, Any], params: list[Tensor], history_size: int) -> LBFGSState:
    """Validate ``saved`` (torch's per-parameter state dict for LBFGS) and build a new :class:`LBFGSState`.

    Raises ``TypeError`` (wrong type) or ``ValueError`` (wrong value, size, length, non-finite) naming the key.
    Tensors are copied to the parameters' device and real flat dtype, except ``t`` which keeps its dtype
    (torch 2.13 casts it down to bf16/fp16 and loses the bits of a tensor lr: defect 6 in the facts).
    """
    if not isinstance(saved, Mapping):
        raise TypeError(f"the optimizer state must be a dict, got {type(saved).__name__}")
    unknown = set(saved) - set(STATE_KEYS)
    if unknown:
        raise ValueError(f"unknown state keys {sorted(map(str, unknown))}; an LBFGS state has {list(STATE_KEYS)}")
    layout = FlatLayout.of(params)
    state = LBFGSState()
    if not saved:
        return state
    for key in ("func_evals", "n_iter"):
        if key not in saved:
            raise ValueError(f"state is missing {key!r} (present whenever the state is not empty)")
    state.func_evals = _check_count("func_evals", saved["func_evals"])
    state.n_iter = _check_count("n_iter", saved["n_iter"])

    iterated_keys = ("d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss")
    present = [k for k in iterated_keys if k in saved]
    if state.n_iter == 0:
        if present or "al" in saved:
            raise ValueError(f"state has n_iter == 0 but also {present + (['al'] if 'al' in saved else [])}: "
                             "those keys exist only after an iteration")
        return state
    missing = [k for k in iterated_keys if k not in saved]
    if missing:
        raise ValueError(f"state has n_iter == {state.n_iter} but is missing {missing}")
    if state.func_evals < state.n_iter:
        raise ValueError(f"state['func_evals'] ({state.func_evals}) < state['n_iter'] ({state.n_iter}): "
                         "every iteration evaluates the closure at least once")

    vector = (layout.numel,)
    state.d = _check_tensor("d", saved["d"], layout, shape=vector)
    state.prev_flat_grad = _check_tensor("prev_flat_grad", saved["prev_flat_grad"], layout, shape=vector)
    state.t = _check_scalar("t", saved["t"], layout, positive=False, keep_dtype=True)
    if (float(state.t) if isinstance(state.t, Tensor) else state.t) < 0:
        raise ValueError(f"state['t'] must be >= 0, got {float(state.t)}")
    h_diag = saved["H_diag"]
    if _is_int(h_diag) and h_diag != 1:
        raise ValueError(f"state['H_diag'] is an int only before the first curvature pair, and then 1; got {h_diag}")
    state.H_diag = _check_scalar("H_diag", h_diag, layout, positive=True)
    prev_loss = saved["prev_loss"]
    if not isinstance(prev_loss, float):
        raise _fail_type("prev_loss", "a float", prev_loss)
    if math.isnan(prev_loss):
        raise ValueError("state['prev_loss'] is NaN")
    state.prev_loss = prev_loss

    lists = {k: _check_list(k, saved[k]) for k in HISTORY_KEYS}
    lengths = {k: len(v) for k, v in lists.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"history lists must have equal lengths, got {lengths}")
    if lengths["old_dirs"] > history_size:
        raise ValueError(f"history holds {lengths['old_dirs']} pairs (old_dirs/old_stps/ro) but history_size is "
                         f"{history_size}")
    state.old_dirs = [_check_tensor(f"old_dirs[{i}]", v, layout, shape=vector) for i, v in enumerate(lists["old_dirs"])]
    state.old_stps = [_check_tensor(f"old_stps[{i}]", v, layout, shape=vector) for i, v in enumerate(lists["old_stps"])]
    state.ro = []
    for i, v in enumerate(lists["ro"]):
        if not isinstance(v, Tensor):
            raise _fail_type(f"ro[{i}]", "a 0-dim tensor", v)
        state.ro.append(_check_scalar(f"ro[{i}]", v, layout, positive=True))  # type: ignore[arg-type]
    if state.ro and isinstance(state.H_diag, int):
        raise ValueError("state['H_diag'] is the int 1 (no curvature pair yet) but the history holds pairs")

    if "al" in saved:
        al = _check_list("al", saved["al"])
        if len(al) != history_size:
            raise ValueError(f"state['al'] must have history_size ({history_size}) entries, got {len(al)}")
        state.al = [None if v is None else _check_scalar(f"al[{i}]", v, layout, positive=False)  # type: ignore[misc]
                    for i, v in enumerate(al)]
        if any(v is not None and not isinstance(v, Tensor) for v in state.al):
            raise TypeError("state['al'] entries must be 0-dim tensors or None")
    elif state.n_iter >= 2:
        raise ValueError(f"state has n_iter == {state.n_iter} but no 'al' (created at the second iteration)")
    return state
