"""Three correct L-BFGS written from the literature, independently of torch's code and the reference
(``tests/quality/independent/``), pass every level-``properties`` property at the ci budget (issue 19,
"Independent correct implementations as fixtures"): a property that fails one of them is a false verdict.

Properties that still fail one of them falsely are marked ``xfail(strict=True)`` with the false verdict named, so
that the mark must go when the property is fixed. Also fast checks that both really minimise and round-trip
their state exactly, so that passing the properties is not passing by doing nothing.
"""

from __future__ import annotations

import io

import pytest
import torch

from lbfgs_verify.properties.base import Status
from lbfgs_verify.properties.runner import select_properties
from lbfgs_verify.targets.kinds import KIND_CATEGORIES
from tests.quality.independent.circular_lbfgs import CircularLBFGS
from tests.quality.independent.compact_lbfgs import CompactLBFGS
from tests.quality.independent.deque_lbfgs import DequeLBFGS
from tests.quality.verdict import verdict

IMPLEMENTATIONS: tuple[type[torch.optim.Optimizer], ...] = (CircularLBFGS, CompactLBFGS, DequeLBFGS)
PROPERTIES = [p.id for p in select_properties("properties") if p.category not in KIND_CATEGORIES]
"""Every properties-level property of a torch optimizer (those of stepper and functional targets do not apply)."""

FALSE_VERDICTS: dict[tuple[type, str], str] = {}
"""(implementation, property) -> why its failure is a false verdict (the notes of issue 19 give the evidence)."""


def _cases() -> list[object]:
    cases = []
    for cls in IMPLEMENTATIONS:
        for pid in PROPERTIES:
            marks = [pytest.mark.slow]
            reason = FALSE_VERDICTS.get((cls, pid))
            if reason is not None:
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            cases.append(pytest.param(cls, pid, marks=marks, id=f"{cls.__name__}-{pid}"))
    return cases


@pytest.mark.parametrize(("cls", "property_id"), _cases())
def test_independent_implementation_passes_property_at_ci(cls: type, property_id: str) -> None:
    torch.set_num_threads(1)
    result = verdict(cls, property_id, budget="ci")
    assert result.status in (Status.PASS, Status.SKIP), f"{result.status.value}: {result.detail[:3000]}"
    if result.status is Status.SKIP:  # CUDA properties on a CPU machine, properties for other kinds of target
        assert property_id.startswith("cuda.") or "not applicable" in result.detail, result.detail


# --------------------------------------------------------------------------------------------------------
# Fast: they minimise, and their checkpoints round-trip
# --------------------------------------------------------------------------------------------------------


def _rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


@pytest.mark.parametrize("cls", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_minimises_rosenbrock(cls: type) -> None:
    """From (-1.2, 1) with strong Wolfe both reach f < 1e-8 and x within 1e-4 of (1, 1) (N&W §7.2, Table 7.1's
    kind of problem)."""
    torch.set_num_threads(1)
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    opt = cls([x], line_search_fn="strong_wolfe", max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        f = _rosenbrock(x)
        f.backward()
        return f

    for _ in range(5):
        opt.step(closure)
    assert float(_rosenbrock(x.detach())) < 1e-8
    assert torch.allclose(x.detach(), torch.ones(2, dtype=torch.float64), atol=1e-4)


def _noncontiguous_problem() -> tuple[list[torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 4, dtype=torch.float64, generator=gen).t().requires_grad_()  # non-contiguous
    z = torch.randn(2, dtype=torch.complex128, generator=gen).requires_grad_()
    unused = torch.tensor([-0.0, 1.0], dtype=torch.float64, requires_grad=True)  # never gets a gradient
    target = torch.randn(4, 3, dtype=torch.float64, generator=gen)
    return [weight, z, unused], target


def _loss(params: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    weight, z, _ = params
    return ((weight - target) ** 4).sum() + ((z - (1 + 2j)).abs() ** 2).sum() + (weight.sum() * z.real.sum()) ** 2


@pytest.mark.parametrize("cls", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_moves_noncontiguous_and_complex_parameters_never_the_unused_one(cls: type) -> None:
    params, target = _noncontiguous_problem()
    start = [p.detach().clone() for p in params]
    opt = cls(params, line_search_fn="strong_wolfe", history_size=3)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        f = _loss(params, target)
        f.backward()
        return f

    f0 = float(_loss(start, target))
    for _ in range(3):
        opt.step(closure)
    assert float(_loss([p.detach() for p in params], target)) < 1e-3 * f0
    assert not torch.equal(params[0].detach(), start[0]) and not torch.equal(params[1].detach(), start[1])
    assert torch.equal(params[2].detach(), start[2]) and torch.signbit(params[2].detach()[0])


def _equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("cls", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_state_round_trips_and_resumes_bitwise(cls: type, line_search_fn: str | None) -> None:
    """state_dict -> torch.save -> torch.load(weights_only=True) -> a fresh optimizer: the same dict back, and
    the resumed run equal bit for bit to the uninterrupted one."""
    torch.set_num_threads(1)
    hp = {"line_search_fn": line_search_fn, "history_size": 2, "max_iter": 3,
          "lr": 1.0 if line_search_fn else 0.05}

    def run(split: int | None, steps: int = 5) -> list[torch.Tensor]:
        params, target = _noncontiguous_problem()
        opt = cls(params, **hp)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            f = _loss(params, target)
            f.backward()
            return f

        for k in range(steps):
            if k == split:
                saved = opt.state_dict()
                buffer = io.BytesIO()
                torch.save(saved, buffer)
                buffer.seek(0)
                loaded = torch.load(buffer, weights_only=True)
                opt = cls(params, lr=0.3, max_iter=7, history_size=9)  # other hyperparameters: restored by the load
                opt.load_state_dict(loaded)
                assert _equal(opt.state_dict(), saved)
            opt.step(closure)
        return [p.detach().clone() for p in params]

    uninterrupted = run(None)
    assert all(torch.equal(a, b) for a, b in zip(run(2), uninterrupted, strict=True))


# --------------------------------------------------------------------------------------------------------
# The curvature skip rule of the rebuilt two-loop direction: L-BFGS-B's scale-invariant rule is accepted too
# (a false verdict before: observe.rebuild_directions knew only torch's absolute yᵀs > 1e-10)
# --------------------------------------------------------------------------------------------------------


def test_two_loop_check_accepts_a_scale_invariant_curvature_skip() -> None:
    """The check ``mathematics.two_loop_direction`` applies (one step, no line search, tolerances 0, history 2),
    on an SPD quadratic whose f is multiplied by 1e-6: the minimiser and a scale-invariant method's iterates do
    not change, so a correct L-BFGS's directions must still be accepted."""
    import dataclasses

    from lbfgs_verify.engine.observe import observe
    from lbfgs_verify.problems.extra import spd_quadratic
    from lbfgs_verify.properties.mathematics import check_directions, iterations_as_steps
    from lbfgs_verify.targets.load import Target

    torch.set_num_threads(1)
    base = spd_quadratic(4, 10.0, seed=1)
    scaled = dataclasses.replace(base, name="spd_quadratic[n=4,kappa=10,seed=1]*1e-6",
                                 objective=lambda params: 1e-6 * base.objective(params))
    hp = {"lr": 1, "max_iter": 8, "max_eval": 18, "history_size": 2, "line_search_fn": None,
          "tolerance_grad": 0.0, "tolerance_change": 0.0}
    obs = iterations_as_steps(observe(Target(f"{__name__}:CompactLBFGS", CompactLBFGS), scaled, hp, 1))
    g0 = float(obs.steps[0].start.g.abs().max())
    far = next((i for i, s in enumerate(obs.steps) if not float(s.start.g.abs().max()) > 1e-6 * g0), len(obs.steps))
    assert far >= 4, "the run must make several comparable iterations"
    check_directions(dataclasses.replace(obs, steps=obs.steps[:far]), [2] * far)


def test_two_loop_direction_passes_compact_at_thorough() -> None:
    torch.set_num_threads(1)
    result = verdict(CompactLBFGS, "mathematics.two_loop_direction", budget="thorough")
    assert result.status is Status.PASS, result.detail[:3000]


def test_stop_reasons_accept_a_memory_restarted_at_each_step() -> None:
    """complex_least_squares[float64], lr=1, max_iter=3, max_eval=4, history_size=3, no line search,
    tolerance_grad=1e-7, tolerance_change=1e-12 (found by behaviour.stop_reasons at the thorough budget): step 24
    ends after 2 moves and 3 calls because CompactLBFGS's direction from this step's 2 pairs has gᵀd > -1e-12."""
    from lbfgs_verify.engine.observe import observe
    from lbfgs_verify.engine.strategies import make_problem
    from lbfgs_verify.properties.behaviour import _distinct_evaluations, _stop_reasons, moves_of
    from lbfgs_verify.targets.load import Target

    torch.set_num_threads(1)
    hp = {"lr": 1, "max_iter": 3, "max_eval": 4, "history_size": 3, "line_search_fn": None,
          "tolerance_grad": 1e-7, "tolerance_change": 1e-12}
    obs = observe(Target(f"{__name__}:CompactLBFGS", CompactLBFGS), make_problem("complex_least_squares"), hp, 25)
    steps = [_distinct_evaluations(step) for step in obs.steps]
    assert moves_of(steps[24]) == 2 and steps[24].calls == 3  # the early stop the property judges
    assert _stop_reasons(steps, 24, hp, 3, obs.eps), "no documented reason found for a documented stop"


# --------------------------------------------------------------------------------------------------------
# portability.resume_other_thread_count judged against the target's own thread sensitivity (a false verdict on
# CircularLBFGS at the thorough budget: its correct iteration amplifies the rounding of 2 threads ~1000x, as much
# without a resume as with one; torch on a ci draw likewise)
# --------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("factory", "kappa", "seed", "hp", "split"), [
    pytest.param(CircularLBFGS, 1e3, 0, {"line_search_fn": None, "history_size": 10, "max_iter": 4, "lr": 0.5}, 1,
                 id="CircularLBFGS-thorough-draw"),
    pytest.param(torch.optim.LBFGS, 10.0, 1, {"line_search_fn": "strong_wolfe", "history_size": 10, "max_iter": 4,
                                              "lr": 1}, 5, id="torch-ci-draw"),
])
def test_a_correct_resume_under_another_thread_count_is_not_blamed(factory: type, kappa: float, seed: int,
                                                                   hp: dict, split: int) -> None:
    """The two draws on which the property failed a correct optimizer (measured here: CircularLBFGS's resumed run
    1.64e-11 from the uninterrupted one at step 7, its uninterrupted runs under 1 and 2 threads 1.07e-11 apart;
    torch's 9.55e-10 and 9.56e-10): the same-thread resume is exact, and the resumed run stays within 10 times the
    target's own thread sensitivity. Whether THREAD_TOLERANCE alone is left depends on the CPU's reductions, so it
    is not asserted."""
    from lbfgs_verify.engine.runs import Scenario
    from lbfgs_verify.properties.portability import (
        THREAD_TOLERANCE,
        beyond_sensitivity,
        long_quadratic,
        resume_under,
        same_thread_difference,
        thread_sensitivity,
    )
    from lbfgs_verify.targets.load import Target

    target = Target(f"{factory.__module__}:{factory.__qualname__}", factory)
    scenario = Scenario(long_quadratic(condition_number=kappa, seed=seed), hp, 8)
    expected, runs = resume_under(target, scenario, split, 1, (1, 2))
    assert same_thread_difference(expected, runs[1]) is None
    other, _ = resume_under(target, scenario, split, 2, ())
    sensitivity = thread_sensitivity(expected, other)
    assert beyond_sensitivity(expected, runs[2], sensitivity, THREAD_TOLERANCE) is None
