"""The problem object shared by every part of lbfgs_verify.

A problem is one immutable value: a name, a dimension, a start, an objective written in torch (gradients
by autograd), a dtype, the published optimum when there is one, and what a gradient method is expected to
reach from the start. Optimizers are run on *fresh* parameter tensors made by :meth:`Problem.make_params`,
so two runs never share a tensor.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

Objective = Callable[[Sequence[Tensor]], Tensor]
"""A pure function of the parameter tensors returning a 0-dim real loss tensor."""


class Expectation(enum.Enum):
    """What a correct gradient-based method reaches from the problem's start."""

    REACHES_F_STAR = "reaches f*"
    """Converges to the published optimum ``f_star`` (within the comparison tolerance)."""
    STATIONARY_POINT = "stationary point only"
    """Converges to *a* stationary point; which one depends on the method (MGH notes other minima)."""


@dataclass(frozen=True)
class Problem:
    """One test problem.

    Attributes:
        name: unique, stable identifier, e.g. ``"mgh01_rosenbrock[n=2,x0*1,float64]"``.
        dimension: number of real unknowns (a complex parameter counts twice).
        dtype: floating dtype of the real parameters (complex ones use the matching complex dtype).
        start: the starting parameter values; cloned by :meth:`make_params`, never handed out.
        objective: the loss as a function of the parameter tensors.
        f_star: published optimal value, ``None`` when unknown or not applicable.
        expectation: what a correct method reaches from ``start``.
        source: citation of the definition and of ``f_star``.
        notes: e.g. other stationary points.
        tags: free labels used to select problems (``"mgh"``, ``"quadratic"``, ``"complex"`` ...).
    """

    name: str
    dimension: int
    dtype: torch.dtype
    start: tuple[Tensor, ...]
    objective: Objective
    f_star: float | None = None
    expectation: Expectation = Expectation.STATIONARY_POINT
    source: str = ""
    notes: str = ""
    tags: frozenset[str] = field(default_factory=frozenset)

    def make_params(self, device: torch.device | str | None = None) -> list[Tensor]:
        """Fresh leaf tensors (``requires_grad=True``) holding the start, on ``device``, each with its start
        tensor's memory layout (transposed, channels_last and strided starts give such leaves: :func:`leaf_like`)."""
        return [leaf_like(t, t, device).requires_grad_(True) for t in self.start]

    def make_closure(self, params: Sequence[Tensor]) -> Callable[[], Tensor]:
        """The closure ``optimizer.step`` expects: zero the gradients, evaluate, back-propagate."""

        def closure() -> Tensor:
            for p in params:
                p.grad = None
            loss = self.objective(params)
            loss.backward()
            return loss

        return closure

    def value(self, params: Sequence[Tensor]) -> float:
        """The objective at ``params`` as a Python float (no gradient)."""
        with torch.no_grad():
            return float(self.objective(params))

    def with_dtype(self, dtype: torch.dtype) -> Problem:
        """The same problem in another real dtype (complex starts follow the matching complex dtype)."""
        start = tuple(leaf_like(_cast_like(t, dtype), t) for t in self.start)
        name = self.name.replace(str(self.dtype).removeprefix("torch."), str(dtype).removeprefix("torch."))
        return replace(self, start=start, dtype=dtype, name=name)

    # --- numpy view, used to run scipy on the same problem -------------------------------------------
    def flat_start(self) -> np.ndarray:
        """The start as one float64 vector (complex parameters as interleaved real/imag)."""
        return _flatten([t.detach() for t in self.start])

    def numpy_fun(self) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        """``fun(x) -> (f, g)`` in float64 over the flat vector, for ``scipy.optimize.minimize(jac=True)``."""
        shapes = [(t.shape, t.dtype) for t in self.start]

        def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
            params = _unflatten(np.asarray(x, dtype=np.float64), shapes, self.dtype)
            loss = self.objective(params)
            loss.backward()
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            return float(loss.detach()), _flatten(grads)

        return fun

    def evaluate(self, x: Any, framework: str = "torch") -> tuple[Any, Any]:
        """``(value, gradient)`` at the flat vector ``x`` (this problem's dtype) in ``"torch"``, ``"numpy"`` or
        ``"jax"``, from the objective's one array-API definition (:func:`lbfgs_verify.problems.xp.evaluate`)."""
        from lbfgs_verify.problems.xp import evaluate

        return evaluate(self, x, framework)


def leaf_like(values: Tensor, layout: Tensor, device: torch.device | str | None = None) -> Tensor:
    """A new tensor (no autograd history, nothing shared) holding ``values`` with the strides of ``layout``, on
    ``device`` (default: ``values``' device).

    ``clone()`` keeps only dense layouts (a transposed or channels_last tensor); a strided view with gaps
    (``base[:, ::2]``) clones to a contiguous tensor. Users' leaves have such layouts (a ``w.t()`` or a slice made
    a leaf with ``.detach().requires_grad_()``, ``model.to(memory_format=torch.channels_last)``), and an optimizer
    that writes its update into ``p.reshape(-1)`` or ``p.view(-1)`` loses it or raises only there, so every
    parameter the harness makes keeps its start's strides (torch.empty_strided allocates the gaps).
    """
    target = values.device if device is None else torch.device(device)
    strides = layout.stride()
    if layout.is_contiguous() or values.shape != layout.shape or any(
            stride == 0 and size > 1 for stride, size in zip(strides, layout.shape, strict=True)):
        return values.detach().clone(memory_format=torch.contiguous_format).to(target)
    out = torch.empty_strided(layout.shape, strides, dtype=values.dtype, device=target)
    with torch.no_grad():
        out.copy_(values.detach())
    return out


def layout_of(t: Tensor) -> str:
    """``contiguous``, ``channels_last``, ``transposed`` (dense, not row-major) or ``strided`` (with gaps)."""
    if t.is_contiguous():
        return "contiguous"
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return "channels_last"
    dense_size = 1 + sum((size - 1) * stride for size, stride in zip(t.shape, t.stride(), strict=True))
    return "transposed" if dense_size == t.numel() else "strided"


def _cast_like(t: Tensor, dtype: torch.dtype) -> Tensor:
    if t.is_complex():
        return t.to(torch.complex64 if dtype in (torch.float32, torch.float16, torch.bfloat16) else torch.complex128)
    return t.to(dtype)


def flat(tensors: Sequence[Tensor]) -> Tensor:
    """The tensors as one float64 vector, complex ones as interleaved real/imaginary (torch's flat layout)."""
    parts = [torch.view_as_real(t.detach()).reshape(-1) if t.is_complex() else t.detach().reshape(-1)
             for t in tensors]
    if not parts:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat([p.to(torch.float64) for p in parts])


def _flatten(tensors: Sequence[Tensor]) -> np.ndarray:
    return flat(tensors).numpy().copy()


def _unflatten(x: np.ndarray, shapes: list[tuple[torch.Size, torch.dtype]], dtype: torch.dtype) -> list[Tensor]:
    """Leaf float64 tensors (complex128 for complex parameters) from a flat vector."""
    out: list[Tensor] = []
    offset = 0
    flat = torch.from_numpy(x)
    for shape, pdtype in shapes:
        if pdtype.is_complex:
            n = 2 * int(np.prod(shape, dtype=np.int64))
            t = torch.view_as_complex(flat[offset : offset + n].reshape(*shape, 2).clone())
        else:
            n = int(np.prod(shape, dtype=np.int64))
            t = flat[offset : offset + n].reshape(shape).clone()
        offset += n
        out.append(t.requires_grad_(True))
    return out
