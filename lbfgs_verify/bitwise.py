"""Byte-level comparison of tensors, state dicts and traces, with ULP distances.

"Bitwise" means bytes: dtype, shape and raw memory must agree. ``numpy.testing.assert_array_equal`` is not
enough: it treats NaN == NaN and +0.0 == -0.0 as equal. Containers are compared structurally and Python
types must agree too (an ``int`` 1 is not a ``float`` 1.0 in a state dict: it changes later arithmetic).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

_ORDERED_INT = {8: torch.int64, 4: torch.int32, 2: torch.int16}


@dataclass(frozen=True)
class Difference:
    """The first place where two values differ.

    Attributes:
        path: where, e.g. ``state[0].old_dirs[3]`` or ``params[1]``.
        kind: ``type``, ``dtype``, ``shape``, ``device``, ``length``, ``keys`` or ``value``.
        detail: a one-line human description.
        ulps: the largest distance in units in the last place over the elements (``None`` when not numeric,
            ``math.inf`` when one side is NaN and the other is not).
        max_abs: the largest absolute difference over the elements (``None`` when not numeric).
    """

    path: str
    kind: str
    detail: str
    ulps: float | None = None
    max_abs: float | None = None

    def __str__(self) -> str:
        extra = ""
        if self.ulps is not None:
            extra = f" ({_fmt_ulps(self.ulps)} ULP, max |diff| {self.max_abs:.3g})"
        return f"{self.path}: {self.detail}{extra}"


def _fmt_ulps(ulps: float) -> str:
    return "inf" if math.isinf(ulps) else f"{int(ulps)}"


def dense(t: Tensor) -> Tensor:
    """``t`` on the CPU, detached, with conjugate/negative bits resolved and a standard (row-major, unit last
    stride) layout, so that it can be viewed as raw bytes.

    ``is_contiguous()`` is not enough: a one-element tensor with stride 2 (``v[0:1].real.clone()`` of a complex
    vector) reports it, yet ``view(torch.uint8)`` refuses it ("self.stride(-1) must be 1"); a lazily conjugated
    tensor refuses ``view_as_real``. Only such tensors are copied.
    """
    t = t.detach().cpu().resolve_conj().resolve_neg()
    expected, step = [], 1
    for size in reversed(t.shape):
        expected.append(step)
        step *= size
    if t.numel() > 0 and tuple(reversed(expected)) != t.stride():
        t = t.clone(memory_format=torch.contiguous_format)
        if t.dim() and t.stride(-1) != 1:  # clone keeps a one-element tensor's stride on some builds
            t = torch.empty(t.shape, dtype=t.dtype).copy_(t)
    return t


def _as_bytes(t: Tensor) -> Tensor:
    """The raw bytes of ``t`` as a flat uint8 tensor (any valid tensor: see :func:`dense`)."""
    t = dense(t)
    if t.is_complex():
        t = torch.view_as_real(t)
    if t.dtype == torch.bool:
        return t.reshape(-1).to(torch.uint8)
    return t.reshape(-1).view(torch.uint8)


def _ordered(t: Tensor) -> Tensor:
    """Map float bits onto int64 keys ordered like the floats: +x -> its bits, -x -> -(magnitude bits) - 1."""
    bits = dense(t).view(_ORDERED_INT[t.element_size()]).to(torch.int64)
    magnitude_mask = (1 << (8 * t.element_size() - 1)) - 1
    return torch.where(bits < 0, -(bits & magnitude_mask) - 1, bits)


def ulp_distance(a: Tensor, b: Tensor) -> float:
    """Largest distance in units in the last place between same-dtype floating tensors (elementwise).

    ``+0.0`` and ``-0.0`` are 1 ULP apart here (they are different bytes); two NaNs with identical bytes are
    0 apart; NaN against a number is ``inf``.
    """
    if a.dtype != b.dtype or a.shape != b.shape:
        raise ValueError(f"ulp_distance needs equal dtype and shape, got {a.dtype}{tuple(a.shape)} "
                         f"and {b.dtype}{tuple(b.shape)}")
    a, b = dense(a), dense(b)
    if a.is_complex():
        a, b = torch.view_as_real(a), torch.view_as_real(b)
    if not a.is_floating_point():
        return float((a.to(torch.int64) - b.to(torch.int64)).abs().max()) if a.numel() else 0.0
    if a.numel() == 0:
        return 0.0
    nan_a, nan_b = torch.isnan(a), torch.isnan(b)
    if bool((nan_a ^ nan_b).any()):
        return math.inf
    oa, ob = _ordered(a), _ordered(b)
    both_nan = nan_a & nan_b
    dist = (oa - ob).abs()
    dist = torch.where(both_nan & (oa == ob), torch.zeros_like(dist), dist)
    return float(dist.max())


def bytes_equal(a: Tensor, b: Tensor) -> bool:
    """True when dtype, shape and every byte agree (devices may differ; both are read on the CPU)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.numel() == 0:
        return True
    return torch.equal(_as_bytes(a), _as_bytes(b))


def tensor_difference(a: Tensor, b: Tensor, path: str = "tensor", *, check_device: bool = False) -> Difference | None:
    """The difference between two tensors, or ``None`` when they are bitwise equal."""
    if a.dtype != b.dtype:
        return Difference(path, "dtype", f"dtype {a.dtype} != {b.dtype}")
    if a.shape != b.shape:
        return Difference(path, "shape", f"shape {tuple(a.shape)} != {tuple(b.shape)}")
    if check_device and a.device != b.device:
        return Difference(path, "device", f"device {a.device} != {b.device}")
    if bytes_equal(a, b):
        return None
    ac, bc = dense(a), dense(b)
    if ac.is_complex():
        ac, bc = torch.view_as_real(ac), torch.view_as_real(bc)
    if ac.is_floating_point():
        diff = (ac.to(torch.float64) - bc.to(torch.float64)).abs()
        finite = diff[torch.isfinite(diff)]
        max_abs = float(finite.max()) if finite.numel() else math.inf
        flat_a, flat_b = ac.reshape(-1), bc.reshape(-1)
        first = _first_unequal_index(flat_a, flat_b)
        where = f" first at element {first}: {flat_a[first].item()!r} vs {flat_b[first].item()!r}" if ac.dim() else (
            f": {ac.item()!r} vs {bc.item()!r}")
        return Difference(path, "value", "values differ" + where, ulps=ulp_distance(ac, bc), max_abs=max_abs)
    return Difference(path, "value", "values differ", ulps=ulp_distance(ac, bc), max_abs=None)


def _first_unequal_index(a: Tensor, b: Tensor) -> int:
    ra = _as_bytes(a).reshape(a.numel(), -1)
    rb = _as_bytes(b).reshape(b.numel(), -1)
    unequal = (ra != rb).any(dim=1).nonzero()
    return int(unequal[0, 0]) if unequal.numel() else 0


def first_difference(a: Any, b: Any, path: str = "value", *, check_device: bool = False) -> Difference | None:
    """Depth-first structural comparison; returns the first :class:`Difference` or ``None`` when identical.

    Tensors are compared by bytes; Python scalars by type and value (floats by bits, so ``-0.0 != 0.0``
    and NaN equals NaN); mappings by their key sets then values in key order; sequences by type, length,
    then items.
    """
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            return Difference(path, "type", f"type {type(a).__name__} != {type(b).__name__}")
        return tensor_difference(a, b, path, check_device=check_device)
    if type(a) is not type(b):
        return Difference(path, "type", f"type {type(a).__name__} ({a!r}) != {type(b).__name__} ({b!r})")
    if isinstance(a, Mapping):
        ka, kb = set(a), set(b)
        if ka != kb:
            return Difference(path, "keys", f"keys differ: only left {sorted(map(str, ka - kb))}, "
                                            f"only right {sorted(map(str, kb - ka))}")
        for k in sorted(a, key=str):
            d = first_difference(a[k], b[k], f"{path}[{k!r}]" if not isinstance(k, str) else f"{path}.{k}",
                                 check_device=check_device)
            if d is not None:
                return d
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return Difference(path, "length", f"length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = first_difference(x, y, f"{path}[{i}]", check_device=check_device)
            if d is not None:
                return d
        return None
    if isinstance(a, float):
        if (a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or (math.isnan(a) and math.isnan(b)):
            return None
        ulps = ulp_distance(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
        return Difference(path, "value", f"{a!r} != {b!r}", ulps=ulps, max_abs=abs(a - b))
    if a != b:
        return Difference(path, "value", f"{a!r} != {b!r}")
    return None


def shares_storage(a: Any, b: Any) -> list[str]:
    """Paths of tensors in ``a`` whose storage is also used by some tensor in ``b`` (aliasing detector)."""
    pointers: dict[int, str] = {}
    for p, t in iter_tensors(b, "right"):
        if t.numel():
            pointers[t.untyped_storage().data_ptr()] = p
    return [p for p, t in iter_tensors(a, "left") if t.numel() and t.untyped_storage().data_ptr() in pointers]


def iter_tensors(value: Any, path: str = "value") -> list[tuple[str, Tensor]]:
    """Every tensor inside a nested structure of mappings and sequences, with its path."""
    out: list[tuple[str, Tensor]] = []
    if isinstance(value, Tensor):
        out.append((path, value))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            out.extend(iter_tensors(v, f"{path}.{k}" if isinstance(k, str) else f"{path}[{k!r}]"))
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        for i, v in enumerate(value):
            out.extend(iter_tensors(v, f"{path}[{i}]"))
    return out


def clone_structure(value: Any) -> Any:
    """A deep copy in which every tensor is ``detach().clone()``-d and containers are rebuilt."""
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, Mapping):
        return {k: clone_structure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone_structure(v) for v in value]
    if isinstance(value, tuple):
        return tuple(clone_structure(v) for v in value)
    return value
