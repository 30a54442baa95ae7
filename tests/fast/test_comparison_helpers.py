"""The comparison helpers judge any valid tensor, and two NaN runs agree where they agree.

- :mod:`lbfgs_verify.compare.bitwise` views tensors as bytes; it must not crash on a valid tensor whose layout is
  unusual (a one-element tensor with stride 2 reports ``is_contiguous()`` but refuses ``view(torch.uint8)``;
  lazily conjugated or negated tensors; expanded, transposed, sliced tensors), and it must still see every
  difference in them.
- :func:`lbfgs_verify.engine.observe.relative_difference` treats the same non-finite value on both sides as agreeing
  and a non-finite value on one side only as an infinite difference.
"""

from __future__ import annotations

import math

import pytest
import torch

from lbfgs_verify.compare.bitwise import bytes_equal, dense, first_difference, tensor_difference, ulp_distance
from lbfgs_verify.engine.observe import relative_difference


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


# --------------------------------------------------------------------------------------------------------
# Integer and bool tensors, ULP caps, signed zeros, NaN runs (issue 19 points 1 and 4, issue 21)
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "values", "distance"), [
    (torch.tensor([3, 7, 9]), torch.tensor([3, 5, 9]), "element 1: 7 vs 5", 2),
    (torch.tensor(2**62), torch.tensor(-2**62), "4611686018427387904 vs -4611686018427387904", 2**63),
    (torch.tensor([1, 2], dtype=torch.int32), torch.tensor([1, 3], dtype=torch.int32), "element 1: 2 vs 3", 1),
    (torch.tensor([True, False, True]), torch.tensor([True, True, True]), "element 1: False vs True", 1),
    (torch.tensor([250, 1], dtype=torch.uint8), torch.tensor([4, 1], dtype=torch.uint8), "element 0: 250 vs 4", 246),
])
def test_integer_and_bool_differences_name_key_values_and_distance(a: torch.Tensor, b: torch.Tensor, values: str,
                                                                   distance: int) -> None:
    difference = first_difference({"state": {0: {"n_iter": a}}}, {"state": {0: {"n_iter": b}}}, "state_dict")
    assert difference is not None and difference.path == "state_dict.state[0].n_iter"
    assert difference.max_abs == distance and difference.ulps is None
    text = str(difference)  # formerly TypeError: max_abs was None
    assert values in text and f"max |diff| {distance}" in text and "state_dict.state[0].n_iter" in text


@pytest.mark.parametrize(("a", "b", "dtype", "expected"), [
    (1.0, -1.0, torch.float64, "> 2^52 ULP, sign differs"),
    (1.0, -1.0, torch.float32, "> 2^23 ULP, sign differs"),
    (math.inf, -math.inf, torch.float64, "> 2^52 ULP, sign differs"),
    (math.inf, 1.0, torch.float32, "> 2^23 ULP, infinite on one side"),
    (1.0, 3.0, torch.float64, "> 2^52 ULP, a factor of 2 or more apart"),
    (math.nan, 1.0, torch.float64, "NaN on one side"),
    (1.0, 1.0 + 2**-52, torch.float64, "1 ULP"),
    (0.0, -0.0, torch.float64, "1 ULP, only the sign of zero differs"),
])
def test_ulp_distances_are_capped_and_explained(a: float, b: float, dtype: torch.dtype, expected: str) -> None:
    difference = tensor_difference(torch.tensor([a], dtype=dtype), torch.tensor([b], dtype=dtype), "x")
    assert difference is not None and f"({expected}," in str(difference), str(difference)
    assert "9197707542132475904" not in str(difference)


def test_opposite_signs_do_not_overflow_the_ulp_count() -> None:
    """inf vs -inf is 2·0x7ff0000000000000 + 1 keys apart (+0.0 and -0.0 are 1 apart): more than int64 holds."""
    wide = ulp_distance(torch.tensor([math.inf]), torch.tensor([-math.inf]))
    assert wide == 2 * 0x7F800000 + 1 and ulp_distance(torch.tensor([0.0]), torch.tensor([-0.0])) == 1
    assert ulp_distance(torch.tensor([math.inf], dtype=torch.float64),
                        torch.tensor([-math.inf], dtype=torch.float64)) == pytest.approx(2.0 * 0x7FF0000000000000)


def test_zero_sign_ignore_notes_instead_of_differing() -> None:
    left = {"d": torch.tensor([0.0, 1.0, -0.0]), "t": 0.0, "n": 2}
    right = {"d": torch.tensor([-0.0, 1.0, 0.0]), "t": -0.0, "n": 2}
    assert first_difference(left, right, "state") is not None
    notes: list[str] = []
    assert first_difference(left, right, "state", zero_sign="ignore", notes=notes) is None
    assert len(notes) == 2 and "state.d: differs only in the sign of zero (2 element(s)" in notes[0]
    changed = {**right, "d": torch.tensor([-0.0, 2.0, 0.0])}
    difference = first_difference(left, changed, "state", zero_sign="ignore")
    assert difference is not None and "element 1: 1.0 vs 2.0" in str(difference)
    with pytest.raises(ValueError, match="zero_sign must be one of bitwise, ignore"):
        first_difference(left, right, zero_sign="values")


def test_same_values_is_torch_equal_with_identical_nans_equal() -> None:
    from lbfgs_verify.compare.bitwise import same_values

    nan = torch.tensor([math.nan, 0.0, 1.0])
    assert not torch.equal(nan, nan.clone()) and same_values(nan, nan.clone())
    assert same_values(nan, torch.tensor([math.nan, -0.0, 1.0]))  # values: +0.0 == -0.0, as torch.equal
    assert not same_values(nan, torch.tensor([math.nan, 0.0, 2.0]))
    assert not same_values(nan, torch.tensor([1.0, 0.0, 1.0]))
    assert not same_values(nan, nan.to(torch.float64))


class _Int64Counter(torch.optim.LBFGS):
    """torch's LBFGS with a step counter kept as an int64 tensor in the state, which a load resets (lost)."""

    def step(self, closure):  # type: ignore[no-untyped-def,override]
        loss = super().step(closure)
        state = self.state[self.param_groups[0]["params"][0]]
        state["calls"] = state.get("calls", torch.tensor(0, dtype=torch.int64)) + 1
        return loss

    def load_state_dict(self, state_dict):  # type: ignore[no-untyped-def]
        super().load_state_dict(state_dict)
        for state in self.state.values():
            if "calls" in state:
                state["calls"] = torch.zeros((), dtype=torch.int64)


class _NaNAfterFirstStep(torch.optim.LBFGS):
    """torch's LBFGS that leaves NaN parameters after its first step: two runs of it reach the same NaN bytes."""

    def step(self, closure):  # type: ignore[no-untyped-def,override]
        loss = super().step(closure)
        with torch.no_grad():
            for p in self.param_groups[0]["params"]:
                p.fill_(math.nan)
        return loss


def _verdict(cls: type, property_id: str):  # type: ignore[no-untyped-def]
    from lbfgs_verify.properties.base import BUDGETS, REGISTRY, CheckContext, load_all, run_property
    from lbfgs_verify.targets.load import Target

    load_all()
    return run_property(REGISTRY[property_id], CheckContext(Target(f"{__name__}:{cls.__qualname__}", cls),
                                                            budget=BUDGETS["quick"]))


def test_an_int64_counter_lost_on_load_fails_naming_the_key() -> None:
    """Formerly an ERROR with a TypeError traceback (``Difference.__str__`` formatted ``max_abs=None``)."""
    result = _verdict(_Int64Counter, "resume.torch_save")
    assert result.status.value == "fail", result.detail[:2000]
    assert ".calls: values differ" in result.detail and "max |diff|" in result.detail
    assert "TypeError" not in result.detail


def test_two_runs_reaching_the_same_nan_agree_in_sparse_gradients() -> None:
    """``behaviour.sparse_gradients`` compared with ``torch.equal`` (NaN != NaN): identical NaN runs 'differed'."""
    result = _verdict(_NaNAfterFirstStep, "behaviour.sparse_gradients")
    assert result.status.value == "pass", result.detail[:2000]
