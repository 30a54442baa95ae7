"""Conformance properties (``conformance.*``, only in ``--mode conformance``): bitwise torch.optim.LBFGS.

On the CPU with the same thread count, the target must be a bitwise twin of ``torch.optim.LBFGS``: the same
parameters, returned losses, closure calls and ``state_dict()`` (values, dtypes and Python types) after every
step, over generated problems and hyperparameters (float32/float64, line_search_fn None/"strong_wolfe", lr as
int/float/0-dim tensor, small history sizes so the history rolls, max_iter, max_eval, tolerances, several and
complex parameters, parameters without grad: :func:`lbfgs_verify.strategies.scenarios`). State must
interchange both ways mid-run: the target's ``state_dict`` loads into torch and torch's into the target, and
the run continues bitwise as torch's uninterrupted run.

Source of the rules: torch/optim/lbfgs.py and torch/optim/optimizer.py of the installed torch (2.13 when this
was written); docs/torch-2.13-lbfgs.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from hypothesis import given

from lbfgs_verify.engine import (
    TORCH_SAVE,
    Scenario,
    comparison_environment,
    divergence_failure,
    record_run,
    step_divergence,
)
from lbfgs_verify.properties.base import CheckContext, PropertyFailed, register
from lbfgs_verify.properties.resume import check_transport
from lbfgs_verify.strategies import make_problem, scenarios
from lbfgs_verify.targets import Target

ORACLE_SPEC = "torch.optim:LBFGS"


def oracle() -> Target:
    """``torch.optim.LBFGS`` of the installed torch, as a :class:`Target`."""
    return Target(spec=ORACLE_SPEC, factory=torch.optim.LBFGS)


MODES_CONFORMANCE = ("conformance",)


@register(
    "conformance.trajectory",
    category="conformance",
    title="parameters, returned losses, closure calls and state_dict() after every step are bitwise equal to "
          "torch.optim.LBFGS's",
    catches="any deviation from torch's arithmetic or control flow (operation order, step-size rule, curvature "
            "test, stopping rules, history roll, evaluation count), or a state format other than torch's",
    modes=MODES_CONFORMANCE,
)
def check_trajectory(ctx: CheckContext) -> None:
    torch_lbfgs = oracle()

    @ctx.settings()
    @given(scenario=scenarios(ctx.budget.steps))
    def check(scenario: Scenario) -> None:
        with comparison_environment(ctx.threads):
            expected = record_run(torch_lbfgs, scenario, device=ctx.device)
            actual = record_run(ctx.target, scenario, device=ctx.device)
            divergence = step_divergence(expected.trace.steps, actual.trace.steps)
            if divergence is not None:
                raise divergence_failure("the target's run differs from torch.optim.LBFGS's", scenario, divergence,
                                         threads=ctx.threads)

    check()


@register(
    "conformance.state_into_torch",
    category="conformance",
    title="the target's state_dict, saved at any step boundary (torch.save, weights_only load), loads into "
          "torch.optim.LBFGS and continues bitwise as torch's uninterrupted run",
    catches="state entries torch cannot use or uses differently (names, types, dtypes, list lengths, the lazily "
            "created 'al', int/float/tensor t and H_diag)",
    modes=MODES_CONFORMANCE,
)
def check_state_into_torch(ctx: CheckContext) -> None:
    torch_lbfgs = oracle()
    check_transport(ctx, TORCH_SAVE, saver=ctx.target, loader=torch_lbfgs, expected=torch_lbfgs,
                    what="torch.optim.LBFGS resumed from the target's state_dict differs from torch's uninterrupted "
                         "run")


@register(
    "conformance.state_from_torch",
    category="conformance",
    title="torch.optim.LBFGS's state_dict, saved at any step boundary, loads into the target and continues bitwise "
          "as torch's uninterrupted run",
    catches="a target that cannot read torch's checkpoints, or reads them differently (migration from torch.optim)",
    modes=MODES_CONFORMANCE,
)
def check_state_from_torch(ctx: CheckContext) -> None:
    torch_lbfgs = oracle()
    check_transport(ctx, TORCH_SAVE, saver=torch_lbfgs, loader=ctx.target, expected=torch_lbfgs,
                    what="the target resumed from torch.optim.LBFGS's state_dict differs from torch's uninterrupted "
                         "run")


def _api_cases() -> list[tuple[str, Callable[[Any], Any]]]:
    """(description, action(factory)) pairs; each action builds and maybe steps an optimizer."""
    problem = make_problem("coupled_tensors", torch.float64)

    def build(**kwargs: Any) -> Callable[[Any], Any]:
        def action(factory: Any) -> Any:
            return factory(problem.make_params(), **kwargs).state_dict()["param_groups"]

        return action

    def two_groups(factory: Any) -> Any:
        a, b, c = problem.make_params()
        return factory([{"params": [a]}, {"params": [b, c], "lr": 0.5}])

    def step_without_closure(factory: Any) -> Any:
        return factory(problem.make_params()).step()

    def step_unknown_line_search(factory: Any) -> Any:
        params = problem.make_params()
        return float(factory(params, line_search_fn="bogus").step(problem.make_closure(params)))

    return [
        ("defaults", build()),
        ("max_iter=7 (max_eval defaults to max_iter*5//4)", build(max_iter=7)),
        ("lr=-1", build(lr=-1.0)),
        ("lr=tensor of two elements", build(lr=torch.tensor([0.1, 0.2]))),
        ("lr=0-dim tensor", build(lr=torch.tensor(0.5))),
        ("two parameter groups", two_groups),
        ("step() without a closure", step_without_closure),
        ("line_search_fn='bogus' then step()", step_unknown_line_search),
    ]


def _outcome(action: Callable[[Any], Any], factory: Any) -> tuple[str, Any]:
    try:
        return "returned", action(factory)
    except Exception as exc:
        return "raised", type(exc).__name__


@register(
    "conformance.api_errors",
    category="conformance",
    title="construction and step() accept what torch.optim.LBFGS accepts (same param_groups and defaults) and "
          "reject what it rejects (with some exception; earlier or more specific errors are fine)",
    catches="different defaults (max_eval = max_iter*5//4), missing validation (negative lr, multi-element lr, "
            "several parameter groups, unknown line search, step() without a closure), arguments torch accepts "
            "but the target refuses",
    modes=MODES_CONFORMANCE,
)
def check_api_errors(ctx: CheckContext) -> None:
    from lbfgs_verify.bitwise import first_difference

    mismatches: list[str] = []
    with comparison_environment(ctx.threads):
        for description, action in _api_cases():
            expected = _outcome(action, torch.optim.LBFGS)
            actual = _outcome(action, ctx.target.factory)
            if expected[0] != actual[0]:
                mismatches.append(f"{description}: torch {expected[0]} {_short(expected[1])}, "
                                  f"target {actual[0]} {_short(actual[1])}")
            elif expected[0] == "returned":
                difference = first_difference(expected[1], actual[1], "param_groups")
                if difference is not None:
                    mismatches.append(f"{description}: {difference}")
    if mismatches:
        raise PropertyFailed(f"{len(mismatches)} API case(s) differ from torch.optim.LBFGS: " + "; ".join(mismatches),
                             {"mismatches": mismatches})


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 120 else text[:117] + "..."
