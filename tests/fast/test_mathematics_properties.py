"""The black-box observation helpers are right, and the mathematics properties hold for torch.optim.LBFGS and
the reference (their failures on planted bugs are shown in tests/quality)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lbfgs_verify.compare.environment import quiet_known_warnings
from lbfgs_verify.engine.observe import (
    Evaluation,
    explain_direction,
    first_step_length,
    flat,
    flat_grad,
    move_difference,
    observe,
    rebuild_directions,
    relative_difference,
    two_loop,
    wolfe_check,
)
from lbfgs_verify.engine.strategies import generated_problem, make_problem
from lbfgs_verify.problems.extra import double_well_problem, wavy_problem
from lbfgs_verify.properties.base import BUDGETS, REGISTRY, CheckContext, Status, load_all, run_property
from lbfgs_verify.properties.mathematics import transformed_problems
from lbfgs_verify.targets.load import Target

load_all()
TORCH = Target("torch.optim:LBFGS", torch.optim.LBFGS)
MATHEMATICS = sorted(pid for pid in REGISTRY if pid.startswith("mathematics."))


def _reference() -> Target:
    from lbfgs_verify.reference import LBFGS

    return Target("lbfgs_verify.reference:LBFGS", LBFGS)


# --------------------------------------------------------------------------------------------------------
# observe: flat layout, two-loop, rebuild, Wolfe quantities
# --------------------------------------------------------------------------------------------------------


def test_flat_layout_is_torchs() -> None:
    """Parameters in order, complex ones as interleaved real/imag, a missing gradient as zeros."""
    problem = make_problem("complex_least_squares")
    params = problem.make_params()
    problem.make_closure(params)()
    optimizer = torch.optim.LBFGS(params)
    assert torch.equal(flat_grad(params), optimizer._gather_flat_grad().to(torch.float64))
    expected = torch.cat([torch.view_as_real(params[0].detach()).reshape(-1), params[1].detach().reshape(-1)])
    assert torch.equal(flat(params), expected)
    unused = make_problem("tiny_mlp_with_unused").make_params()
    make_problem("tiny_mlp_with_unused").make_closure(unused)()
    assert unused[-1].grad is None and bool((flat_grad(unused)[-2:] == 0).all())


def _dense_bfgs_direction(g: torch.Tensor, pairs: list[tuple[torch.Tensor, torch.Tensor]],
                          gamma: float) -> torch.Tensor:
    """-H g with H built by the BFGS inverse update (N&W eq. 6.17) from H₀ = γI, pair by pair."""
    n = g.numel()
    h = gamma * torch.eye(n, dtype=torch.float64)
    eye = torch.eye(n, dtype=torch.float64)
    for s, y in pairs:
        rho = 1.0 / float(y @ s)
        v = eye - rho * torch.outer(y, s)
        h = v.T @ h @ v + rho * torch.outer(s, s)
    return -(h @ g)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 6), m=st.integers(0, 5))
def test_two_loop_equals_dense_bfgs_update(seed: int, n: int, m: int) -> None:
    """Alg. 7.4 equals the dense product form of the L-BFGS matrix (N&W eq. 7.19)."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=gen, dtype=torch.float64)
    hessian = a @ a.T + n * torch.eye(n, dtype=torch.float64)
    pairs = []
    for _ in range(m):
        s = torch.randn(n, generator=gen, dtype=torch.float64)
        pairs.append((s, hessian @ s))
    g = torch.randn(n, generator=gen, dtype=torch.float64)
    gamma = float(pairs[-1][0] @ pairs[-1][1]) / float(pairs[-1][1] @ pairs[-1][1]) if pairs else 1.0
    assert relative_difference(two_loop(g, pairs, gamma), _dense_bfgs_direction(g, pairs, gamma)) < 1e-9


@pytest.mark.parametrize("name", ["rosenbrock", "coupled_tensors", "complex_least_squares", "tiny_mlp_with_unused"])
@pytest.mark.parametrize("history_size", [1, 3])
def test_rebuilt_directions_equal_torchs_internal_direction(name: str, history_size: int) -> None:
    """White-box validation of the black-box model: the direction rebuilt from observed pairs is torch's own
    ``state['d']`` (read here only to validate the helper)."""
    problem = make_problem(name)
    params = problem.make_params()
    optimizer = torch.optim.LBFGS(params, max_iter=1, history_size=history_size)
    closure = problem.make_closure(params)
    xs, gs, ds = [], [], []
    with quiet_known_warnings():
        for _ in range(8):
            xs.append(flat(params))
            optimizer.step(lambda: (closure(), gs.append(flat_grad(params)))[0])
            ds.append(optimizer.state[params[0]]["d"].to(torch.float64).clone())
    rebuilt = rebuild_directions(xs, gs, [history_size] * len(xs), 2.2e-16)
    for k in range(1, len(xs)):
        assert relative_difference(rebuilt[k].d, ds[k]) < 1e-9, k


def test_double_well_exercises_the_curvature_skip() -> None:
    """The harness problem makes yᵀs < 0 at the first pair, so the skip is tested at once."""
    with quiet_known_warnings():
        obs = observe(TORCH, double_well_problem(0), {"lr": 0.1, "max_iter": 1, "history_size": 3}, 3)
    xs = [s.start.x for s in obs.steps]
    gs = [s.start.g for s in obs.steps]
    assert rebuild_directions(xs, gs, [3] * 3, 2.2e-16)[1].skipped == [0]


def test_wolfe_check_on_a_one_dimensional_quadratic() -> None:
    """f = x²/2 from x = 1 along -g: the exact step satisfies both conditions, a tiny step fails the curvature
    condition, an overshoot to x = -1.1 fails sufficient decrease."""

    def at(x: float) -> Evaluation:
        point = torch.tensor([x], dtype=torch.float64)
        return Evaluation(loss=x * x / 2, x=point, g=point.clone())

    exact = wolfe_check(at(1.0), at(0.0), 2.2e-16)
    assert exact.sufficient_decrease and exact.curvature_condition
    tiny = wolfe_check(at(1.0), at(0.99), 2.2e-16)
    assert tiny.sufficient_decrease and not tiny.curvature_condition
    over = wolfe_check(at(1.0), at(-1.1), 2.2e-16)
    assert not over.sufficient_decrease


def test_first_step_length_is_torchs_rule() -> None:
    assert first_step_length(torch.tensor([0.1, -0.2]), 0.5) == 0.5
    assert math.isclose(first_step_length(torch.tensor([3.0, -1.0]), 0.5), 0.125)


def test_move_difference_allows_rounding_of_large_parameters() -> None:
    x0 = torch.tensor([1e5], dtype=torch.float32).to(torch.float64)
    x1 = torch.tensor([1e5 + 1e-3], dtype=torch.float32).to(torch.float64)  # rounds back to 1e5
    eps = float(torch.finfo(torch.float32).eps)
    assert relative_difference(x1 - x0, torch.tensor([1e-3], dtype=torch.float64)) > 0.1
    assert move_difference(x1 - x0, torch.tensor([1e-3], dtype=torch.float64), x0, x1, eps) == 0.0


def test_explain_direction_names_the_inverted_scaling() -> None:
    problem = generated_problem(3, [4], torch.float64)
    with quiet_known_warnings():
        obs = observe(TORCH, problem, {"max_iter": 1, "history_size": 2}, 4)
    xs = [s.start.x for s in obs.steps]
    gs = [s.start.g for s in obs.steps]
    wrong = rebuild_directions(xs, gs, [2] * 4, 2.2e-16, gamma_rule="inverse")[3].d
    names = explain_direction(xs, gs, [2] * 4, 2.2e-16, 3, wrong, 1e-6)
    assert "γ = yᵀy/sᵀy (inverted scaling)" in names


def test_transformed_problem_maps_start_and_value() -> None:
    """z₀ = Q x₀ + c, σ·f equal at the mapped points, and ||g₀||₁ <= 0.5 in both systems."""
    problem = make_problem("coupled_tensors")
    scaled, transformed, q, c = transformed_problems(problem, seed=5)
    assert torch.allclose(q.T @ q, torch.eye(q.shape[0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(transformed.start[0], q @ flat(problem.start) + c)
    for p in (scaled, transformed):
        params = p.make_params()
        p.make_closure(params)()
        assert float(flat_grad(params).abs().sum()) <= 0.5 + 1e-12
    assert math.isclose(scaled.value(scaled.make_params()), transformed.value(transformed.make_params()),
                        rel_tol=1e-12)


def test_wavy_problem_is_deterministic() -> None:
    a, b = wavy_problem(2), wavy_problem(2)
    assert torch.equal(a.start[0], b.start[0]) and a.value(a.make_params()) == b.value(b.make_params())


# --------------------------------------------------------------------------------------------------------
# The properties hold for torch and the reference
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prop", MATHEMATICS)
def test_torch_satisfies(prop: str) -> None:
    result = run_property(REGISTRY[prop], CheckContext(TORCH, budget=BUDGETS["ci"]))
    assert result.status is Status.PASS, result.detail


@pytest.mark.parametrize("prop", MATHEMATICS)
def test_reference_satisfies(prop: str) -> None:
    result = run_property(REGISTRY[prop], CheckContext(_reference(), budget=BUDGETS["ci"]))
    assert result.status is Status.PASS, result.detail


def test_a_target_that_raises_fails_with_the_action_named() -> None:
    class Broken(torch.optim.LBFGS):
        def step(self, closure):  # type: ignore[no-untyped-def, override]
            raise RuntimeError("boom")

    result = run_property(REGISTRY["mathematics.first_step"],
                          CheckContext(Target("tests:Broken", Broken), budget=BUDGETS["quick"]))
    assert result.status is Status.FAIL
    assert "step 0 raised RuntimeError: boom" in result.detail
