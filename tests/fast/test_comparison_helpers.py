"""The comparison helpers judge any valid tensor, and two NaN runs agree where they agree.

- :mod:`lbfgs_verify.bitwise` views tensors as bytes; it must not crash on a valid tensor whose layout is
  unusual (a one-element tensor with stride 2 reports ``is_contiguous()`` but refuses ``view(torch.uint8)``;
  lazily conjugated or negated tensors; expanded, transposed, sliced tensors), and it must still see every
  difference in them.
- :func:`lbfgs_verify.observe.relative_difference` treats the same non-finite value on both sides as agreeing
  and a non-finite value on one side only as an infinite difference.
"""

from __future__ import annotations

import math

import pytest
import torch

from lbfgs_verify.bitwise import bytes_equal, dense, first_difference, tensor_difference, ulp_distance
from lbfgs_verify.observe import relative_difference


def _odd_layouts() -> dict[str, torch.Tensor]:
    z = torch.tensor([1 + 2j, 3 - 4j, -5 + 0.5j], dtype=torch.complex128)
    m = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7
    return {
        "one-element real part of a complex vector (stride 2)": z[0:1].real.clone(),
        "real part of a complex vector (stride 2)": z.real,
        "one-element float32 with stride 3": m.reshape(-1)[0:1].as_strided((1,), (3,)),
        "0-dim view of a complex vector's imaginary part": z.imag[1],
        "lazily conjugated complex": z.conj(),
        "lazily negated (neg bit) view": z.conj().imag,
        "transposed matrix": m.t(),
        "every second column": m[:, ::2],
        "expanded (stride 0)": torch.tensor([0.25], dtype=torch.float64).expand(4),
        "bfloat16 column": m.to(torch.bfloat16)[:, 1:2],
        "complex64 one-element slice": z.to(torch.complex64)[2:3],
        "bool mask slice": (m > 0.5)[:, ::3],
        "empty slice": m[:, 4:],
    }


LAYOUTS = _odd_layouts()


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_equal_copies_compare_equal(name: str) -> None:
    t = LAYOUTS[name]
    copy = t.resolve_conj().resolve_neg().clone(memory_format=torch.contiguous_format)
    assert bytes_equal(t, copy) and bytes_equal(copy, t)
    assert first_difference({"x": [t]}, {"x": [copy]}) is None
    assert dense(t).dtype == t.dtype and torch.equal(dense(t), copy)


@pytest.mark.parametrize("name", [n for n in LAYOUTS if LAYOUTS[n].numel() and LAYOUTS[n].dtype != torch.bool])
def test_a_one_ulp_change_is_seen_and_measured(name: str) -> None:
    t = LAYOUTS[name]
    changed = t.resolve_conj().resolve_neg().clone(memory_format=torch.contiguous_format)
    flat = torch.view_as_real(changed).reshape(-1) if changed.is_complex() else changed.reshape(-1)
    flat[-1] = torch.nextafter(flat[-1], torch.tensor(math.inf, dtype=flat.dtype))
    assert not bytes_equal(t, changed)
    difference = tensor_difference(t, changed, "x")
    assert difference is not None and difference.kind == "value" and difference.ulps == 1
    assert ulp_distance(t, changed) == 1


def test_the_reported_crash_case() -> None:
    """``v[0:1].real.clone()``: is_contiguous() is True, stride (2,), and the old byte view raised."""
    t = torch.tensor([1 + 2j, 3 + 4j], dtype=torch.complex128)[0:1].real.clone()
    assert t.is_contiguous() and t.stride() == (2,)
    with pytest.raises(RuntimeError, match="stride"):
        t.reshape(-1).view(torch.uint8)
    difference = first_difference({"t": t}, {"t": t + 1})
    assert difference is not None and difference.path == "value.t" and difference.max_abs == 1.0


@pytest.mark.parametrize(("a", "b", "expected"), [
    ([math.nan, 1.0], [math.nan, 1.0], 0.0),
    ([math.nan, math.nan], [math.nan, math.nan], 0.0),
    ([math.inf, 2.0], [math.inf, 2.0], 0.0),
    ([math.nan, 1.0], [math.nan, 1.5], 1 / 3),
    ([math.nan, 1.0], [0.0, 1.0], math.inf),
    ([1.0, 1.0], [math.nan, 1.0], math.inf),
    ([math.inf, 1.0], [-math.inf, 1.0], math.inf),
    ([math.inf, 1.0], [math.nan, 1.0], math.inf),
    ([0.0, 0.0], [0.0, 0.0], 0.0),
    ([1e-3, 0.0], [0.0, 0.0], math.inf),
])
def test_relative_difference_with_non_finite_values(a: list[float], b: list[float], expected: float) -> None:
    got = relative_difference(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    assert got == pytest.approx(expected) if math.isfinite(expected) else got == expected
