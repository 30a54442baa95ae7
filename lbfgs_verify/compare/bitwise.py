"""Byte-level comparison of tensors, state dicts and traces, with ULP distances.

"Bitwise" means bytes: dtype, shape and raw memory must agree. ``numpy.testing.assert_array_equal`` is not
enough: it treats NaN == NaN and +0.0 == -0.0 as equal. Containers are compared structurally and Python
types must agree too (an ``int`` 1 is not a ``float`` 1.0 in a state dict: it changes later arithmetic).

One relaxation exists, chosen by the caller (:data:`ZERO_SIGN_MODES`): with ``zero_sign="ignore"`` +0.0 and
-0.0 compare equal and every such place is reported in ``notes`` instead. The property suite uses it for
optimizer *state* at the ``properties`` and ``semantics`` levels only (IEEE 754-2019 §6.3: the sign of a zero
result depends on the operation — ``-g`` of a zero gradient is -0.0 — and a zero direction or step moves no
parameter; parameters and losses stay bitwise, and ``conformance`` stays bitwise everywhere).

ULP distances are exact up to one binade (2^p units for a p-bit significand); beyond that the count says
nothing (a sign change or a NaN on one side), so :class:`Difference` prints "> 2^52 ULP, sign differs" and
the like instead of the raw count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

_ORDERED_INT = {8: torch.int64, 4: torch.int32, 2: torch.int16}

ZERO_SIGN_MODES = ("bitwise", "ignore")
"""How :func:`first_difference` treats +0.0 against -0.0: ``bitwise`` (different bytes, a difference) or
``ignore`` (equal; each place is appended to ``notes``)."""

_SIGNIFICAND_BITS = {torch.float64: 52, torch.float32: 23, torch.float16: 10, torch.bfloat16: 7,
                     torch.complex128: 52, torch.complex64: 23}


def ulp_cap(dtype: torch.dtype) -> int:
    """The exponent ``p`` of the largest meaningful ULP count 2^p for ``dtype`` (its significand bits): a larger
    distance spans more than a binade and means a sign change, an infinity or a factor of 2 or more."""
    return _SIGNIFICAND_BITS.get(dtype, 52)


@dataclass(frozen=True)
class Difference:
    """The first place where two values differ.

    Attributes:
        path: where, e.g. ``state[0].old_dirs[3]`` or ``params[1]``.
        kind: ``type``, ``dtype``, ``shape``, ``device``, ``length``, ``keys`` or ``value``.
        detail: a one-line human description.
        ulps: the largest distance in units in the last place over the elements (``None`` when not a floating
            value, ``math.inf`` when one side is NaN and the other is not).
        max_abs: the largest absolute difference over the elements (``None`` when not numeric; for integer and
            bool tensors the integer distance).
        ulps_text: how :attr:`ulps` reads (``"3 ULP"``, ``"> 2^52 ULP, sign differs"``, ``"NaN on one side"``);
            empty when there is no ULP distance.
    """

    path: str
    kind: str
    detail: str
    ulps: float | None = None
    max_abs: float | None = None
    ulps_text: str = ""

    def __str__(self) -> str:
        parts = []
        if self.ulps is not None:
            parts.append(self.ulps_text or describe_ulps(self.ulps))
        if self.max_abs is not None:
            parts.append(f"max |diff| {_fmt_number(self.max_abs)}")
        extra = f" ({', '.join(parts)})" if parts else ""
        return f"{self.path}: {self.detail}{extra}"


def _fmt_number(value: float | int) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 2**53):
        return str(int(value))
    return f"{value:.3g}"


def describe_ulps(ulps: float, dtype: torch.dtype = torch.float64, why: str = "") -> str:
    """``ulps`` as a reader can use it: the count up to 2^p (:func:`ulp_cap`), else ``"> 2^p ULP"`` with
    ``why`` (e.g. ``"sign differs"``); a NaN against a number is ``"NaN on one side"``."""
    if math.isinf(ulps) or math.isnan(ulps):
        return "NaN on one side"
    cap = ulp_cap(dtype)
    if ulps > 2**cap:
        return f"> 2^{cap} ULP" + (f", {why}" if why else "")
    return f"{int(ulps)} ULP"


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
        return float(_integer_distance(a, b)) if a.numel() else 0.0
    if a.numel() == 0:
        return 0.0
    return float(_ulp_distances(a, b).max())


def _ulp_distances(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise ULP distances (float64; ``inf`` where exactly one side is NaN, 0 for identical NaN bytes) of
    dense real floating tensors. Keys of opposite signs are added in float64: ``inf`` vs ``-inf`` overflows
    int64 (2·0x7ff0… > 2^63)."""
    nan_a, nan_b = torch.isnan(a), torch.isnan(b)
    oa, ob = _ordered(a), _ordered(b)
    same_sign = (oa < 0) == (ob < 0)
    exact = torch.where(same_sign, oa - ob, torch.zeros_like(oa)).abs().to(torch.float64)
    wide = oa.to(torch.float64).abs() + ob.to(torch.float64).abs()
    dist = torch.where(same_sign, exact, wide)
    dist = torch.where(nan_a & nan_b & (oa == ob), torch.zeros_like(dist), dist)
    return torch.where(nan_a ^ nan_b, torch.full_like(dist, math.inf), dist)


def _integer_distance(a: Tensor, b: Tensor) -> int:
    """The largest |a - b| of integer or bool tensors, exact (Python integers: int64 differences overflow)."""
    differ = (a != b).reshape(-1).nonzero().reshape(-1)
    if not differ.numel():
        return 0
    fa, fb = a.reshape(-1)[differ].tolist(), b.reshape(-1)[differ].tolist()
    return max(abs(int(x) - int(y)) for x, y in zip(fa, fb, strict=True))


def bytes_equal(a: Tensor, b: Tensor) -> bool:
    """True when dtype, shape and every byte agree (devices may differ; both are read on the CPU)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.numel() == 0:
        return True
    return torch.equal(_as_bytes(a), _as_bytes(b))


def same_values(a: Tensor, b: Tensor) -> bool:
    """``torch.equal`` (values: +0.0 == -0.0), except that a NaN equals a NaN with the same bytes: two runs that
    reach the same NaN are at the same point (``torch.equal`` says they differ, as NaN != NaN)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.numel() == 0 or torch.equal(a, b):
        return True
    ra, rb = dense(a), dense(b)
    if ra.is_complex():
        ra, rb = torch.view_as_real(ra), torch.view_as_real(rb)
    if not ra.is_floating_point():
        return False
    ra, rb = ra.reshape(-1), rb.reshape(-1)
    return bool(((ra == rb) | _same_bytes(ra, rb)).all())


def tensor_difference(a: Tensor, b: Tensor, path: str = "tensor", *, check_device: bool = False,
                      zero_sign: str = "bitwise", notes: list[str] | None = None) -> Difference | None:
    """The difference between two tensors, or ``None`` when they are bitwise equal (with ``zero_sign="ignore"``:
    equal up to the sign of zeros, each such tensor noted in ``notes``). Never raises on valid tensors."""
    _check_zero_sign(zero_sign)
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
        zero_sign_only = bytes_equal(_positive_zeros(ac), _positive_zeros(bc))
        if zero_sign_only and zero_sign == "ignore":
            if notes is not None:
                flat_a, flat_b = ac.reshape(-1), bc.reshape(-1)
                count = int((~_same_bytes(flat_a, flat_b)).sum())
                notes.append(f"{path}: differs only in the sign of zero ({count} element(s); "
                             f"{_where(flat_a, flat_b, ac.dim()).strip()}); +0.0 and -0.0 compare equal in "
                             "optimizer state at this level")
            return None
        if zero_sign == "ignore":
            ac, bc = _positive_zeros(ac), _positive_zeros(bc)
        flat_a, flat_b = ac.reshape(-1), bc.reshape(-1)
        diff = (ac.to(torch.float64) - bc.to(torch.float64)).abs()
        finite = diff[torch.isfinite(diff)]
        max_abs = float(finite.max()) if finite.numel() else math.inf
        distances = _ulp_distances(flat_a, flat_b)
        worst = int(distances.argmax())
        ulps = float(distances[worst])
        text = ("1 ULP, only the sign of zero differs" if zero_sign_only
                else describe_ulps(ulps, a.dtype, _why_far(flat_a[worst], flat_b[worst])))
        return Difference(path, "value", "values differ" + _where(flat_a, flat_b, ac.dim(), ": "), ulps=ulps,
                          max_abs=max_abs, ulps_text=text)
    flat_a, flat_b = ac.reshape(-1), bc.reshape(-1)
    where = _where(flat_a, flat_b, ac.dim(), ": ")
    differing = int((flat_a != flat_b).sum())
    return Difference(path, "value", f"values differ{where}; {differing} of {flat_a.numel()} element(s) differ",
                      max_abs=_integer_distance(flat_a, flat_b))


def _where(flat_a: Tensor, flat_b: Tensor, dim: int, lead: str = "") -> str:
    """``first at element i: x vs y`` (``x vs y`` for a 0-dim tensor) for the first elements whose bytes differ."""
    first = _first_unequal_index(flat_a, flat_b)
    values = f"{flat_a[first].item()!r} vs {flat_b[first].item()!r}"
    return f" first at element {first}: {values}" if dim else f"{lead}{values}"


def _check_zero_sign(zero_sign: str) -> None:
    if zero_sign not in ZERO_SIGN_MODES:
        raise ValueError(f"zero_sign must be one of {', '.join(ZERO_SIGN_MODES)}, got {zero_sign!r}")


def _positive_zeros(t: Tensor) -> Tensor:
    """``t`` with every -0.0 replaced by +0.0 (other bytes, NaN payloads included, kept)."""
    return torch.where(t == 0, torch.zeros_like(t), t)


def _same_bytes(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise: do the bytes of the elements of two flat same-dtype tensors agree?"""
    ra = _as_bytes(a).reshape(a.numel(), -1)
    rb = _as_bytes(b).reshape(b.numel(), -1)
    return (ra == rb).all(dim=1)


def _why_far(x: Tensor, y: Tensor) -> str:
    """Why two floats are more than a binade apart, for :func:`describe_ulps`."""
    if bool(torch.isinf(x)) or bool(torch.isinf(y)):
        return "infinite on one side" if bool(torch.isinf(x)) != bool(torch.isinf(y)) else "sign differs"
    if bool(torch.isnan(x)) and bool(torch.isnan(y)):
        return "NaN payloads differ"
    if bool(torch.signbit(x)) != bool(torch.signbit(y)):
        return "sign differs"
    return "a factor of 2 or more apart"


def _first_unequal_index(a: Tensor, b: Tensor) -> int:
    ra = _as_bytes(a).reshape(a.numel(), -1)
    rb = _as_bytes(b).reshape(b.numel(), -1)
    unequal = (ra != rb).any(dim=1).nonzero()
    return int(unequal[0, 0]) if unequal.numel() else 0


def first_difference(a: Any, b: Any, path: str = "value", *, check_device: bool = False,
                     zero_sign: str = "bitwise", notes: list[str] | None = None) -> Difference | None:
    """Depth-first structural comparison; returns the first :class:`Difference` or ``None`` when identical.

    Tensors are compared by bytes; Python scalars by type and value (floats by bits, so ``-0.0 != 0.0``
    and NaN equals NaN); mappings by their key sets then values in key order; sequences by type, length,
    then items. With ``zero_sign="ignore"`` +0.0 equals -0.0 (in tensors and Python floats) and every place
    where only that differs is appended to ``notes`` (:data:`ZERO_SIGN_MODES`).
    """
    _check_zero_sign(zero_sign)
    same = {"check_device": check_device, "zero_sign": zero_sign, "notes": notes}
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            return Difference(path, "type", f"type {type(a).__name__} != {type(b).__name__}")
        return tensor_difference(a, b, path, **same)
    if type(a) is not type(b):
        return Difference(path, "type", f"type {type(a).__name__} ({a!r}) != {type(b).__name__} ({b!r})")
    if isinstance(a, Mapping):
        ka, kb = set(a), set(b)
        if ka != kb:
            return Difference(path, "keys", f"keys differ: only left {sorted(map(str, ka - kb))}, "
                                            f"only right {sorted(map(str, kb - ka))}")
        for k in sorted(a, key=str):
            d = first_difference(a[k], b[k], f"{path}[{k!r}]" if not isinstance(k, str) else f"{path}.{k}", **same)
            if d is not None:
                return d
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return Difference(path, "length", f"length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = first_difference(x, y, f"{path}[{i}]", **same)
            if d is not None:
                return d
        return None
    if isinstance(a, float):
        if (a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or (math.isnan(a) and math.isnan(b)):
            return None
        if a == b == 0 and zero_sign == "ignore":
            if notes is not None:
                notes.append(f"{path}: differs only in the sign of zero ({a!r} vs {b!r}); +0.0 and -0.0 compare "
                             "equal in optimizer state at this level")
            return None
        d = tensor_difference(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), path)
        assert d is not None  # the bits differ: neither equal with the same sign nor both NaN
        return replace(d, detail=f"{a!r} != {b!r}")
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
