"""CUDA properties (``cuda.*``): moving state between devices mid-run. Skipped without ``torch.cuda``.

CPU and CUDA kernels round differently (pytorch #111508), so a run continued on another device is compared
with a stated tolerance, not bitwise:

- parameters after every continued step satisfy ``|x_dev - x_cpu| <= atol + rtol * |x_cpu|`` elementwise,
  with :data:`FLOAT64_TOLERANCE` (rtol 1e-9, atol 1e-10) on float64 problems and
  :data:`FLOAT32_TOLERANCE` (rtol 1e-4, atol 1e-4) on the seed article's float32 ``nn.Linear`` model, over
  at most ``budget.steps`` steps of well-conditioned problems (no Rosenbrock: its valley amplifies rounding).
- a CUDA run saved and resumed on CUDA must be bitwise equal to the uninterrupted CUDA run when two
  uninterrupted CUDA runs are bitwise equal to each other (deterministic kernels); otherwise within the
  float64 tolerance.

The checks take the device as an argument (``check_*_on(ctx, device)``) so that the harness's own tests
exercise them with ``device="cpu"`` on machines without a GPU.

Sources: the seed article (docs/seed-article.md: "model.to('cuda'); new LBFGS; load_state_dict;
continue"), torch/optim/optimizer.py (``load_state_dict`` casts floating state to the device and dtype of the
parameter), pytorch #111508.
"""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from lbfgs_verify.compare.environment import comparison_environment, disturb_global_rng
from lbfgs_verify.compare.tolerances import FLOAT32_TOLERANCE, FLOAT64_TOLERANCE, Tolerance, first_violation
from lbfgs_verify.compare.trace import StepRecord
from lbfgs_verify.engine.runs import (
    TORCH_SAVE,
    Scenario,
    call_target,
    continue_run,
    divergence_failure,
    fresh_params,
    params_at,
    record_run,
    resume_run,
    step_divergence,
    torch_load_bytes,
    torch_save_bytes,
)
from lbfgs_verify.engine.strategies import hyperparameters, learning_rates, make_problem, scenarios
from lbfgs_verify.properties.base import CheckContext, PropertyFailed, PropertySkipped, register


def require_cuda() -> str:
    """``"cuda"``, or :class:`PropertySkipped` when this torch has no usable CUDA device."""
    if not torch.cuda.is_available():
        raise PropertySkipped("torch.cuda.is_available() is False: no CUDA device on this machine")
    return "cuda"


def _device_scenarios(steps: int) -> st.SearchStrategy[Scenario]:
    """float64, well-conditioned problems; lr int/float/tensor; both line searches."""
    return scenarios(
        steps,
        problem=st.sampled_from(("coupled_tensors", "complex_least_squares", "tiny_mlp_with_unused")).map(
            lambda name: make_problem(name, torch.float64)),
        hyperparameter_strategy=hyperparameters(lr=learning_rates(tensor_dtypes=(torch.float64,), values=(1.0, 0.5)),
                                                allow_defaults=False),
    )


def check_cpu_state_to_device_on(ctx: CheckContext, device: str) -> None:
    """State saved on the CPU mid-run, loaded onto parameters on ``device``: continues within tolerance."""

    @ctx.settings()
    @given(scenario=_device_scenarios(ctx.budget.steps), data=st.data())
    def check(scenario: Scenario, data: st.DataObject) -> None:
        with comparison_environment(ctx.threads, ctx.level):
            cpu = record_run(ctx.target, scenario, save=TORCH_SAVE.save)
            split = data.draw(st.integers(1, scenario.steps - 1), label="split")
            n = scenario.steps - split
            moved = resume_run(ctx.target, scenario, cpu, split, TORCH_SAVE, n, device=device)
            for record in moved:
                devices = {str(p.device) for p in record.params}
                if devices != {str(torch.device(device))} and device != "cpu":
                    raise PropertyFailed(f"parameters left {device}: on {sorted(devices)} after step {record.index}",
                                         {**scenario.evidence(), "split": split})
            violation = first_violation(cpu.trace.steps[split:], moved, FLOAT64_TOLERANCE)
            if violation is not None:
                raise PropertyFailed(
                    f"run continued on {device} from a CPU state leaves the tolerance of the uninterrupted CPU run: "
                    f"{violation}\n  {scenario.describe()}; split after {split} step(s)",
                    {**scenario.evidence(), "split": split, "device": device, "violation": violation,
                     "tolerance": str(FLOAT64_TOLERANCE)},
                )

    check()


def check_device_resume_on(ctx: CheckContext, device: str) -> None:
    """Save/load/continue on ``device`` reproduces the ``device`` run (bitwise when it is deterministic)."""

    @ctx.settings()
    @given(scenario=_device_scenarios(ctx.budget.steps), data=st.data())
    def check(scenario: Scenario, data: st.DataObject) -> None:
        with comparison_environment(ctx.threads, ctx.level):
            run = record_run(ctx.target, scenario, save=TORCH_SAVE.save, device=device)
            again = record_run(ctx.target, scenario, device=device)
            deterministic = step_divergence(run.trace.steps, again.trace.steps) is None
            split = data.draw(st.integers(0, scenario.steps - 1), label="split")
            resumed = resume_run(ctx.target, scenario, run, split, TORCH_SAVE, scenario.steps - split, device=device)
            if deterministic:
                divergence = step_divergence(run.trace.steps[split:], resumed)
                if divergence is not None:
                    raise divergence_failure(f"run resumed on {device} differs from the uninterrupted {device} run "
                                             f"(which is itself reproducible bitwise)", scenario, divergence,
                                             split=split, device=device)
            else:
                violation = first_violation(run.trace.steps[split:], resumed, FLOAT64_TOLERANCE)
                if violation is not None:
                    raise PropertyFailed(
                        f"run resumed on {device} leaves the tolerance of the (non-deterministic) uninterrupted "
                        f"{device} run: {violation}\n  {scenario.describe()}; split after {split} step(s)",
                        {**scenario.evidence(), "split": split, "device": device, "violation": violation})

    check()


def _article_model(seed: int = 0) -> tuple[torch.nn.Module, Tensor, Tensor]:
    """The seed article's model and data, made consistent: ``nn.Linear(10, 1)``, X 100x10, y = X w + 10 with 10
    weights (the article writes 9 weights, which raises a shape error)."""
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(10, 1)
    with torch.no_grad():
        model.weight.copy_(0.1 * torch.randn(1, 10, generator=g))
        model.bias.zero_()
    x = torch.randn(100, 10, generator=g)
    y = x @ torch.arange(2.0, 12.0) + 10
    return model, x, y.unsqueeze(1)


def _article_closure(model: torch.nn.Module, optimizer: Any, x: Tensor, y: Tensor) -> Any:
    criterion = torch.nn.MSELoss()

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        return loss

    return closure


def check_article_model_move_on(ctx: CheckContext, device: str) -> None:
    """The seed article's scenario: train on the CPU, save, ``model.to(device)``, new optimizer, load, continue."""
    steps = ctx.budget.steps
    split = max(1, steps // 2)
    with comparison_environment(ctx.threads, ctx.level):
        disturb_global_rng(0)
        model, x, y = _article_model()
        optimizer = call_target("constructing the optimizer (article defaults)",
                                lambda: ctx.target.make(list(model.parameters())))
        closure = _article_closure(model, optimizer, x, y)
        expected: list[list[Tensor]] = []
        saved = None
        for index in range(steps):
            if index == split:
                saved = torch_save_bytes(call_target("state_dict()", optimizer.state_dict))
                cpu_params_at_split = [p.detach().clone() for p in model.parameters()]
            call_target(f"step {index} on the CPU", lambda c=closure: optimizer.step(c))
            expected.append([p.detach().clone() for p in model.parameters()])
        moved_model, _, _ = _article_model()
        with torch.no_grad():
            for p, value in zip(moved_model.parameters(), cpu_params_at_split, strict=True):
                p.copy_(value)
        moved_model = moved_model.to(device)
        moved = call_target("constructing a new optimizer on the moved model",
                            lambda: ctx.target.make(list(moved_model.parameters())))
        call_target("load_state_dict(saved CPU state)", lambda: moved.load_state_dict(torch_load_bytes(saved)))
        moved_closure = _article_closure(moved_model, moved, x.to(device), y.to(device))
        for index in range(split, steps):
            call_target(f"step {index} on {device}", lambda: moved.step(moved_closure))
            got = [p.detach().clone() for p in moved_model.parameters()]
            exp = StepRecord(index, None, expected[index], None)
            violation = first_violation([exp], [StepRecord(index, None, got, None)], FLOAT32_TOLERANCE)
            if violation is not None:
                raise PropertyFailed(
                    f"the article's model moved to {device} with a new optimizer and the loaded state leaves the "
                    f"tolerance of the CPU run: {violation} (split after {split} steps)",
                    {"device": device, "split": split, "violation": violation, "tolerance": str(FLOAT32_TOLERANCE)})


@register(
    "cuda.cpu_state_to_cuda",
    category="cuda",
    title=f"state saved on the CPU mid-run, loaded onto CUDA parameters, continues within {FLOAT64_TOLERANCE} of "
          "the uninterrupted CPU run (float64)",
    catches="state left on the CPU after load (device mismatch errors), state re-initialised on load, device-"
            "specific state formats",
)
def check_cpu_state_to_cuda(ctx: CheckContext) -> None:
    check_cpu_state_to_device_on(ctx, require_cuda())


@register(
    "cuda.resume_on_cuda",
    category="cuda",
    title="save/load/continue on CUDA reproduces the CUDA run: bitwise where CUDA runs are reproducible, else "
          f"within {FLOAT64_TOLERANCE}",
    catches="state that does not survive torch.save/torch.load(weights_only=True) of CUDA tensors, host/device "
            "copies that change values",
)
def check_resume_on_cuda(ctx: CheckContext) -> None:
    check_device_resume_on(ctx, require_cuda())


@register(
    "cuda.article_model_move",
    category="cuda",
    title="the seed article's scenario: train nn.Linear on the CPU, save, model.to('cuda'), new optimizer, "
          f"load_state_dict, continue: within {FLOAT32_TOLERANCE} of the CPU run",
    catches="a loaded state that stays on the CPU or is rebuilt, hyperparameters lost in the move",
)
def check_article_model_move(ctx: CheckContext) -> None:
    check_article_model_move_on(ctx, require_cuda())


__all__ = [
    "FLOAT32_TOLERANCE",
    "FLOAT64_TOLERANCE",
    "Tolerance",
    "check_article_model_move_on",
    "check_cpu_state_to_device_on",
    "check_device_resume_on",
    "continue_run",
    "first_violation",
    "fresh_params",
    "params_at",
    "require_cuda",
]
