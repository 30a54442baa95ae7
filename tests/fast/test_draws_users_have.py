"""The harness makes the parameters users have (issue 19, "Draw what users have"): non-contiguous leaves (a
transposed weight, a channels_last conv weight, a strided slice ``base[:, ::2]`` made a leaf) and zero-element
parameters, and it keeps their layout wherever it makes parameters (a problem's start, a resumed run's fresh
parameters, a dtype change); the generated problems draw them.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lbfgs_verify.engine.runs import fresh_params
from lbfgs_verify.engine.strategies import (
    DRAWN_LAYOUTS,
    LAYOUT_SIZES,
    LAYOUTS,
    generated_problem,
    generated_problems,
    make_problem,
    with_layout,
)
from lbfgs_verify.problems.base import layout_of, leaf_like


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n", [8, 12])
def test_a_layout_changes_memory_not_values(layout: str, n: int) -> None:
    values = torch.arange(n, dtype=torch.float64) / 7
    laid = with_layout(values, layout)
    assert layout_of(laid) == layout and torch.equal(laid.reshape(-1), values)
    if layout != "contiguous":  # no flat view: an update written into p.reshape(-1) or p.view(-1) is lost or raises
        assert laid.reshape(-1).data_ptr() != laid.data_ptr()


@pytest.mark.parametrize("layout", ["strided", "transposed", "channels_last"])
def test_made_parameters_keep_the_layout(layout: str) -> None:
    problem = generated_problem(3, [LAYOUT_SIZES[layout][0], 2], layouts=[layout, "contiguous"])
    assert f"layouts=({layout},contiguous)" in problem.name and "non-contiguous" in problem.tags
    params = problem.make_params()
    assert [layout_of(p) for p in params] == [layout, "contiguous"]
    assert all(p.is_leaf and p.requires_grad for p in params)
    assert params[0].stride() == problem.start[0].stride()
    again = fresh_params([p.detach().clone() for p in params], params)
    assert [layout_of(p) for p in again] == [layout, "contiguous"] and all(p.is_leaf for p in again)
    assert all(torch.equal(a, p) for a, p in zip(again, params, strict=True))
    assert layout_of(problem.with_dtype(torch.float32).make_params()[0]) == layout


def test_the_same_numbers_whatever_the_layout() -> None:
    plain = generated_problem(5, [6, 3], torch.float32)
    laid = generated_problem(5, [6, 3], torch.float32, layouts=["strided", "contiguous"])
    assert plain.name == "generated[seed=5,sizes=(6, 3),float32]"
    for a, b in zip(plain.start, laid.start, strict=True):
        assert torch.equal(a.reshape(-1), b.reshape(-1))
    params = laid.make_params()
    assert laid.value(params) == plain.value(plain.make_params())


def test_zero_element_parameters() -> None:
    problem = generated_problem(2, [0, 3, 0], with_unused=True)
    assert problem.name == "generated[seed=2,sizes=(0, 3, 0)+unused,float64]" and "zero-element" in problem.tags
    params = problem.make_params()
    assert [p.numel() for p in params] == [0, 3, 0, 2]
    problem.make_closure(params)().item()
    assert params[0].grad is not None and params[0].grad.numel() == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sizes": [3], "layouts": ["strided"]}, "two factors >= 2"),
    ({"sizes": [6], "layouts": ["channels_last"]}, "multiple of 4"),
    ({"sizes": [4], "layouts": ["diagonal"]}, "unknown layout"),
    ({"sizes": [4, 2], "layouts": ["strided"]}, "one layout per size"),
    ({"sizes": [0]}, "at least one parameter element"),
])
def test_bad_layouts_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generated_problem(1, **kwargs)


def test_leaf_like_keeps_gaps_and_copies() -> None:
    base = torch.arange(15, dtype=torch.float32).reshape(3, 5)
    view = base[:, ::2]
    copy = leaf_like(view, view)
    assert copy.stride() == view.stride() and torch.equal(copy, view)
    assert copy.untyped_storage().data_ptr() != base.untyped_storage().data_ptr()
    assert leaf_like(view, torch.empty(3, 3)).is_contiguous()


def test_catalogue_problems_hold_strided_leaves() -> None:
    for name in ("coupled_tensors", "tiny_mlp_with_unused"):
        assert "strided" in [layout_of(p) for p in make_problem(name).make_params()], name


def test_generated_problems_draw_non_contiguous_and_zero_element_parameters() -> None:
    seen: set[str] = set()

    @settings(max_examples=60, derandomize=True, database=None)
    @given(problem=generated_problems())
    def draw(problem: object) -> None:
        params = problem.make_params()  # type: ignore[attr-defined]
        seen.update(layout_of(p) for p in params)
        if any(p.numel() == 0 for p in params):
            seen.add("zero-element")

    draw()
    assert seen >= {*DRAWN_LAYOUTS, "zero-element"}, seen


def test_drawn_layouts_respect_a_declared_lack_of_several_tensors() -> None:
    from lbfgs_verify.engine.capabilities import lacking

    with lacking({"several_tensors"}):
        @settings(max_examples=30, derandomize=True, database=None)
        @given(problem=generated_problems())
        def draw(problem: object) -> None:
            assert len(problem.start) == 1  # type: ignore[attr-defined]

        draw()


def test_drawn_layouts_can_be_restricted() -> None:
    @settings(max_examples=30, derandomize=True, database=None)
    @given(problem=generated_problems(layouts=("contiguous",)), data=st.data())
    def draw(problem: object, data: st.DataObject) -> None:
        assert all(layout_of(p) == "contiguous" for p in problem.make_params())  # type: ignore[attr-defined]

    draw()


@pytest.mark.parametrize("layout", ["transposed", "channels_last"])
def test_why_dense_non_row_major_layouts_are_not_drawn_yet(layout: str) -> None:
    """torch 2.13's LBFGS (and the reference, which follows it) raise in ``_gather_flat_grad`` on a transposed or
    channels_last leaf (``p.grad.view(-1)``; pytorch #126625, #130346); strided leaves with gaps they handle. When
    this test fails, torch accepts them: add them to ``DRAWN_LAYOUTS``."""
    from lbfgs_verify import reference

    problem = generated_problem(4, [LAYOUT_SIZES[layout][0], 2], layouts=[layout, "contiguous"])
    assert layout not in DRAWN_LAYOUTS
    for cls in (torch.optim.LBFGS, reference.LBFGS):
        params = problem.make_params()
        with pytest.raises(RuntimeError, match="view size is not compatible"):
            cls(params, max_iter=2).step(problem.make_closure(params))
    strided = generated_problem(4, [6, 2], layouts=["strided", "contiguous"])
    params = strided.make_params()
    torch.optim.LBFGS(params, max_iter=2).step(strided.make_closure(params))
    assert "strided" in DRAWN_LAYOUTS and not torch.equal(params[0], strided.start[0])
