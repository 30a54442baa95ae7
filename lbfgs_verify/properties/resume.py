"""Resume properties (``resume.*``): save at a ``step()`` boundary, restore, continue -> bitwise the same run.

A resumed run must be indistinguishable from the uninterrupted one, on the CPU and with the same thread
count: parameters, returned losses, closure calls and ``state_dict()`` after every step are compared byte
for byte (:func:`lbfgs_verify.trace.trace_divergence`). The target's state format is opaque here: only its
own ``state_dict()``/``load_state_dict()`` are used and only its own runs are compared.

Every split point is checked cheaply (from the state saved before step ``k``, one step must reproduce
step ``k`` exactly) and ``budget.full_continuations`` random split points are continued to the end.
Before resuming, what a resumed process would not share is disturbed: the global RNGs are reseeded, the
parameters are fresh tensors, and the saved payload is materialised anew for every restore, so no tensor
is shared with the saving optimizer.

Sources: torch/optim/lbfgs.py and torch/optim/optimizer.py (torch 2.13); pytorch issues #35047 (resumed
runs diverge), #196083/#147288 (aliasing after load), mace #1653 (a resume that silently starts a fresh
L-BFGS); /work/shared/facts/torch-lbfgs.md.

The engine (:func:`record_run`, :func:`resume_run`, :func:`expect_same_steps`, the transports) is reused
by :mod:`.state`, :mod:`.conformance` and :mod:`.cuda`.
"""

from __future__ import annotations

import copy
import io
import math
import pickle
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from lbfgs_verify.bitwise import Difference, first_difference
from lbfgs_verify.properties.base import CheckContext, PropertyFailed, register
from lbfgs_verify.strategies import (
    Scenario,
    comparison_environment,
    disturb_global_rng,
    hyperparameters,
    learning_rates,
    make_problem,
    scenarios,
    split_points,
)
from lbfgs_verify.trace import Divergence, StepRecord, Trace, record_steps, trace_divergence

UNINTERRUPTED_SEED = 0
"""Global RNG seed of every uninterrupted run; resumed runs use other seeds (:func:`resume_seed`)."""


def resume_seed(split: int) -> int:
    """The global RNG seed a resumed run starts with: unrelated to :data:`UNINTERRUPTED_SEED`."""
    return 7919 * (split + 1) + 104729


# --------------------------------------------------------------------------------------------------------
# Failure reporting
# --------------------------------------------------------------------------------------------------------


def _json_number(value: float | None) -> float | str | None:
    if value is None:
        return None
    return str(value) if math.isinf(value) or math.isnan(value) else value


def difference_evidence(difference: Difference) -> dict[str, Any]:
    """The JSON-able fields of a :class:`Difference` (``inf`` ULPs as the string ``"inf"``)."""
    return {"path": difference.path, "kind": difference.kind, "difference": difference.detail,
            "ulps": _json_number(difference.ulps), "max_abs": _json_number(difference.max_abs)}


def divergence_failure(
    what: str, scenario: Scenario, divergence: Divergence, *, split: int | None = None, **extra: Any
) -> PropertyFailed:
    """A :class:`PropertyFailed` naming the problem, hyperparameters, split, first differing step, key, ULPs."""
    where = f"; split after {split} step(s)" if split is not None else ""
    extras = "".join(f"; {k}={v}" for k, v in extra.items())
    message = (f"{what}: first difference at step {divergence.step}: {divergence.difference}\n"
               f"  {scenario.describe()}{where}{extras}")
    evidence = {**scenario.evidence(), "split": split, "first_differing_step": divergence.step,
                **difference_evidence(divergence.difference), **extra}
    return PropertyFailed(message, evidence)


def raised_failure(action: str, exc: BaseException, scenario: Scenario | None, **extra: Any) -> PropertyFailed:
    """A :class:`PropertyFailed` for an exception the target raised while ``action``."""
    frames = traceback.extract_tb(exc.__traceback__)
    origin = f" (at {_short_path(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    context = f"\n  {scenario.describe()}" if scenario is not None else ""
    extras = "".join(f"; {k}={v}" for k, v in extra.items())
    message = f"{action} raised {type(exc).__name__}: {exc}{origin}{context}{extras}"
    evidence = {**(scenario.evidence() if scenario is not None else {}), "action": action,
                "exception": type(exc).__name__, "message": str(exc), **extra}
    return PropertyFailed(message, evidence)


def _short_path(filename: str) -> str:
    """``torch/optim/lbfgs.py`` rather than the full site-packages path."""
    for marker in ("site-packages/", "dist-packages/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def call_target(action: str, fn: Callable[[], Any], scenario: Scenario | None = None, **extra: Any) -> Any:
    """Call into the target; an exception it raises becomes a :class:`PropertyFailed` saying what was done."""
    try:
        return fn()
    except PropertyFailed:
        raise
    except Exception as exc:
        raise raised_failure(action, exc, scenario, **extra) from exc


# --------------------------------------------------------------------------------------------------------
# Recording and resuming
# --------------------------------------------------------------------------------------------------------


Payload = Any
SaveFn = Callable[[Any, list[Tensor]], Payload]
"""``save(optimizer, params) -> payload``: called at a step boundary; the payload must be a snapshot."""
RestoreFn = Callable[[Payload, Scenario, Any, list[Tensor]], tuple[Any, list[Tensor]]]
"""``restore(payload, scenario, target, fresh_params) -> (optimizer, params it optimizes)``."""


@dataclass(frozen=True)
class Transport:
    """One way to carry an optimizer across a process boundary.

    Attributes:
        name: what is done, for messages (``torch.save -> torch.load(weights_only=True)``).
        save: takes the snapshot at the boundary.
        restore: makes a fresh optimizer from the snapshot (a new copy of it for every restore).
    """

    name: str
    save: SaveFn
    restore: RestoreFn


def torch_save_bytes(state: Any) -> bytes:
    """``torch.save`` into memory."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def torch_load_bytes(data: bytes) -> Any:
    """``torch.load(..., weights_only=True)`` from memory (always weights_only: the safe loader users must use)."""
    return torch.load(io.BytesIO(data), weights_only=True)


def state_dict_transport(name: str, dump: Callable[[Any], Payload], load: Callable[[Payload], Any]) -> Transport:
    """A transport of ``optimizer.state_dict()``: ``dump`` at the boundary, ``load`` + ``load_state_dict``
    into a new optimizer (same hyperparameters) on fresh parameter tensors."""

    def save(optimizer: Any, params: list[Tensor]) -> Payload:
        state = call_target("optimizer.state_dict()", optimizer.state_dict)
        return call_target(f"saving the state_dict ({name})", lambda: dump(state))

    def restore(payload: Payload, scenario: Scenario, target: Any, params: list[Tensor]) -> tuple[Any, list[Tensor]]:
        state = call_target(f"loading the saved state_dict ({name})", lambda: load(payload))
        optimizer = call_target("constructing the new optimizer", lambda: scenario.make_optimizer(target, params))
        call_target("new_optimizer.load_state_dict(saved)", lambda: optimizer.load_state_dict(state))
        return optimizer, params

    return Transport(name, save, restore)


def optimizer_transport(name: str, dump: Callable[[Any], Payload], load: Callable[[Payload], Any]) -> Transport:
    """A transport of the optimizer object itself together with its parameters (as a user pickles a model
    and its optimizer together); the restored optimizer optimizes the restored parameter copies."""

    def save(optimizer: Any, params: list[Tensor]) -> Payload:
        return call_target(f"{name} of (optimizer, params)", lambda: dump((optimizer, list(params))))

    def restore(payload: Payload, scenario: Scenario, target: Any, params: list[Tensor]) -> tuple[Any, list[Tensor]]:
        optimizer, restored = call_target(f"{name}: restoring (optimizer, params)", lambda: load(payload))
        return optimizer, list(restored)

    return Transport(name, save, restore)


TORCH_SAVE = state_dict_transport("torch.save -> torch.load(weights_only=True)", torch_save_bytes, torch_load_bytes)
DEEPCOPY_STATE_DICT = state_dict_transport("copy.deepcopy(state_dict)", copy.deepcopy, copy.deepcopy)
PICKLE_STATE_DICT = state_dict_transport("pickle of the state_dict", pickle.dumps, pickle.loads)
DEEPCOPY_OPTIMIZER = optimizer_transport("copy.deepcopy", copy.deepcopy, copy.deepcopy)
PICKLE_OPTIMIZER = optimizer_transport("pickle round trip", pickle.dumps, pickle.loads)


@dataclass
class RecordedRun:
    """An uninterrupted run: its trace, the payloads saved before each step, the live optimizer and params."""

    trace: Trace
    payloads: list[Payload]
    optimizer: Any
    params: list[Tensor]


def record_run(
    target: Any,
    scenario: Scenario,
    *,
    save: SaveFn | None = None,
    device: str | torch.device = "cpu",
    seed: int = UNINTERRUPTED_SEED,
    steps: int | None = None,
    label: str = "uninterrupted",
) -> RecordedRun:
    """Run ``scenario`` uninterrupted, recording every step; ``save`` is called before each step."""
    problem = scenario.problem
    params = problem.make_params(device)
    optimizer = call_target("constructing the optimizer", lambda: scenario.make_optimizer(target, params), scenario)
    closure = problem.make_closure(params)
    disturb_global_rng(seed)
    trace = Trace(label, problem.name, scenario.hyperparameters, [p.detach().clone() for p in params])
    payloads: list[Payload] = []
    for k in range(scenario.steps if steps is None else steps):
        if save is not None:
            payloads.append(save(optimizer, params))
        call_target(f"step {k} of the {label} run", lambda: record_steps(optimizer, params, closure, 1, trace=trace),
                    scenario)
    return RecordedRun(trace, payloads, optimizer, params)


def params_at(trace: Trace, boundary: int) -> list[Tensor]:
    """The parameter values after ``boundary`` steps of ``trace`` (clones, safe to hand out)."""
    source = trace.initial_params if boundary == 0 else trace.steps[boundary - 1].params
    return [p.detach().clone() for p in source]


def fresh_params(
    values: Sequence[Tensor], like: Sequence[Tensor], device: str | torch.device | None = None
) -> list[Tensor]:
    """New leaf tensors holding ``values`` (on ``device``), ``requires_grad`` as in ``like``."""
    out = []
    for v, ref in zip(values, like, strict=True):
        t = v.detach().clone()
        if device is not None:
            t = t.to(device)
        out.append(t.requires_grad_(ref.requires_grad))
    return out


def continue_run(
    optimizer: Any, params: list[Tensor], scenario: Scenario, first_index: int, n_steps: int, label: str
) -> list[StepRecord]:
    """``n_steps`` recorded steps of ``optimizer``, numbered from ``first_index`` (the uninterrupted numbering)."""
    closure = scenario.problem.make_closure(params)
    trace = Trace(label, scenario.problem.name, scenario.hyperparameters, [p.detach().clone() for p in params])
    for i in range(n_steps):
        call_target(f"step {first_index + i} of the {label} run",
                    lambda: record_steps(optimizer, params, closure, 1, trace=trace), scenario)
    for record in trace.steps:
        record.index += first_index
    return trace.steps


def resume_run(
    target: Any,
    scenario: Scenario,
    reference: RecordedRun,
    split: int,
    transport: Transport,
    n_steps: int,
    *,
    device: str | torch.device = "cpu",
    seed: int | None = None,
) -> list[StepRecord]:
    """Restore the payload saved before step ``split`` in a disturbed process and record ``n_steps`` steps."""
    params = fresh_params(params_at(reference.trace, split), reference.params, device)
    disturb_global_rng(resume_seed(split) if seed is None else seed)
    try:
        optimizer, params = transport.restore(reference.payloads[split], scenario, target, params)
        return continue_run(optimizer, params, scenario, split, n_steps, "resumed")
    except PropertyFailed as exc:
        if "split" in exc.evidence:
            raise
        where = f"split after {split} step(s); transport={transport.name}"
        message = str(exc) if scenario.problem.name in str(exc) else f"{exc}\n  {scenario.describe()}"
        raise PropertyFailed(f"{message}; {where}", {**scenario.evidence(), **exc.evidence, "split": split,
                                                       "transport": transport.name}) from exc


def state_after_load(
    loader: Any, scenario: Scenario, saved: RecordedRun, split: int, transport: Transport,
    device: str | torch.device = "cpu",
) -> dict[str, str]:
    """Diagnosis for a failed resume: does ``state_dict()`` right after the restore already differ from the state
    saved at the split? (``{"state_right_after_load": ...}``; empty when it cannot be told.)"""
    if split == 0 or saved.trace.steps[split - 1].state is None:
        return {}
    try:
        params = fresh_params(params_at(saved.trace, split), saved.params, device)
        optimizer, _ = transport.restore(saved.payloads[split], scenario, loader, params)
        difference = first_difference(saved.trace.steps[split - 1].state, optimizer.state_dict(), "state_dict")
    except Exception as exc:
        return {"state_right_after_load": f"could not be read: {type(exc).__name__}: {exc}"}
    if difference is None:
        return {"state_right_after_load": "equal to the saved state (the difference arises while stepping)"}
    return {"state_right_after_load": f"already differs from the saved state: {difference}"}


def step_divergence(expected: Sequence[StepRecord], actual: Sequence[StepRecord], *,
                    compare_state: bool = True) -> Divergence | None:
    """First bitwise difference between two step sequences: params, returned loss, state, then closure calls."""
    expected_trace = Trace("expected", "", {}, [], list(expected))
    actual_trace = Trace("actual", "", {}, [], list(actual))
    divergence = trace_divergence(expected_trace, actual_trace, compare_state=compare_state)
    if divergence is not None:
        return divergence
    for e, a in zip(expected, actual, strict=False):
        if e.closure_calls != a.closure_calls:
            return Divergence(e.index, Difference("closure calls", "length",
                                                  f"{e.closure_calls} closure calls != {a.closure_calls}"))
        difference = first_difference([ev.loss for ev in e.evaluations], [ev.loss for ev in a.evaluations],
                                      "closure losses")
        if difference is not None:
            return Divergence(e.index, difference)
    return None


def check_transport(
    ctx: CheckContext,
    transport: Transport,
    strategy: st.SearchStrategy[Scenario] | None = None,
    *,
    what: str | None = None,
    saver: Any = None,
    loader: Any = None,
    expected: Any = None,
) -> None:
    """Every split point (one step) and ``budget.full_continuations`` random splits (to the end) of generated
    scenarios must continue bitwise after ``transport``.

    By default the target saves, loads and provides the expected (uninterrupted) run; conformance checks
    pass other ``saver``/``loader``/``expected`` optimizers (torch.optim.LBFGS) for state interchange.
    """
    saver = ctx.target if saver is None else saver
    loader = ctx.target if loader is None else loader
    expected = saver if expected is None else expected
    label = what or f"run resumed through {transport.name} differs from the uninterrupted run"

    @ctx.settings()
    @given(scenario=strategy if strategy is not None else scenarios(ctx.budget.steps), data=st.data())
    def check(scenario: Scenario, data: st.DataObject) -> None:
        with comparison_environment(ctx.threads):
            saved = record_run(saver, scenario, save=transport.save, device=ctx.device)
            reference = saved if expected is saver else record_run(expected, scenario, device=ctx.device)
            for split in range(scenario.steps):
                resumed = resume_run(loader, scenario, saved, split, transport, 1, device=ctx.device)
                divergence = step_divergence(reference.trace.steps[split:split + 1], resumed)
                if divergence is not None:
                    raise divergence_failure(label + " (one step after the split)", scenario, divergence,
                                             split=split, transport=transport.name,
                                             **state_after_load(loader, scenario, saved, split, transport,
                                                                ctx.device))
            count = min(ctx.budget.full_continuations, scenario.steps)
            splits = data.draw(st.lists(split_points(scenario.steps), min_size=count, max_size=count, unique=True),
                               label="full-continuation splits")
            for split in splits:
                n = scenario.steps - split
                resumed = resume_run(loader, scenario, saved, split, transport, n, device=ctx.device)
                divergence = step_divergence(reference.trace.steps[split:], resumed)
                if divergence is not None:
                    raise divergence_failure(label + " (full continuation)", scenario, divergence,
                                             split=split, transport=transport.name,
                                             **state_after_load(loader, scenario, saved, split, transport,
                                                                ctx.device))

    check()


# --------------------------------------------------------------------------------------------------------
# The properties
# --------------------------------------------------------------------------------------------------------


@register(
    "resume.torch_save",
    category="resume",
    title="save with torch.save, torch.load(weights_only=True), load into a fresh optimizer: continues bitwise",
    catches="state lost or altered in serialization (counters, history, step size t and its type), state not "
            "loadable with weights_only=True, dependence on global RNG or tensor identity (pytorch #35047)",
)
def check_torch_save(ctx: CheckContext) -> None:
    check_transport(ctx, TORCH_SAVE)


@register(
    "resume.deepcopy_state_dict",
    category="resume",
    title="copy.deepcopy(state_dict()) loaded into a fresh optimizer continues bitwise",
    catches="state that does not survive copy.deepcopy (custom objects, shared references between entries)",
)
def check_deepcopy_state_dict(ctx: CheckContext) -> None:
    check_transport(ctx, DEEPCOPY_STATE_DICT)


@register(
    "resume.pickle_state_dict",
    category="resume",
    title="a pickle round trip of state_dict() loaded into a fresh optimizer continues bitwise",
    catches="unpicklable or pickle-altered state (lambdas, generators, views that pickle as copies)",
)
def check_pickle_state_dict(ctx: CheckContext) -> None:
    check_transport(ctx, PICKLE_STATE_DICT)


@register(
    "resume.deepcopy_optimizer",
    category="resume",
    title="copy.deepcopy of (optimizer, params) gives an optimizer that steps and continues bitwise",
    catches="attributes lost by __getstate__/__setstate__ (torch 2.13 loses _params/_numel_cache: step() raises "
            "AttributeError, facts defect #3)",
)
def check_deepcopy_optimizer(ctx: CheckContext) -> None:
    check_transport(ctx, DEEPCOPY_OPTIMIZER)


@register(
    "resume.pickle_optimizer",
    category="resume",
    title="a pickle round trip of (optimizer, params) gives an optimizer that steps and continues bitwise",
    catches="attributes lost by __getstate__/__setstate__ (torch 2.13: AttributeError in step(), facts defect #3), "
            "unpicklable optimizer attributes",
)
def check_pickle_optimizer(ctx: CheckContext) -> None:
    check_transport(ctx, PICKLE_OPTIMIZER)


_SAVED_STATE_SCENARIOS: tuple[tuple[Scenario, int], ...] = (
    (Scenario(make_problem("rosenbrock", torch.float64),
              {"lr": 1, "max_iter": 3, "history_size": 3, "line_search_fn": "strong_wolfe"}, 4), 2),
    (Scenario(make_problem("coupled_tensors", torch.float32),
              {"lr": 0.5, "max_iter": 3, "history_size": 2, "line_search_fn": None}, 4), 2),
    (Scenario(make_problem("complex_least_squares", torch.float64),
              {"lr": torch.tensor(0.25, dtype=torch.float64), "max_iter": 2, "history_size": 2}, 4), 1),
)


@register(
    "resume.uses_saved_state",
    category="resume",
    title="uninterrupted == resumed != cold-started: after a split with a non-empty history the saved state "
          "changes the next steps",
    catches="a resume path that silently starts a fresh L-BFGS (mace #1653), load_state_dict that ignores the "
            "history, an optimizer whose 'state' does not influence the iteration",
)
def check_uses_saved_state(ctx: CheckContext) -> None:
    with comparison_environment(ctx.threads):
        for scenario, split in _SAVED_STATE_SCENARIOS:
            reference = record_run(ctx.target, scenario, save=TORCH_SAVE.save, device=ctx.device)
            n = scenario.steps - split
            resumed = resume_run(ctx.target, scenario, reference, split, TORCH_SAVE, n, device=ctx.device)
            divergence = step_divergence(reference.trace.steps[split:], resumed)
            if divergence is not None:
                raise divergence_failure("resumed run differs from the uninterrupted run", scenario, divergence,
                                         split=split, transport=TORCH_SAVE.name)
            cold_params = fresh_params(params_at(reference.trace, split), reference.params, ctx.device)
            disturb_global_rng(resume_seed(split))
            cold = call_target("constructing a cold-started optimizer",
                               lambda p=cold_params, s=scenario: s.make_optimizer(ctx.target, p), scenario)
            cold_steps = continue_run(cold, cold_params, scenario, split, n, "cold-started")
            if all(first_difference(r.params, c.params) is None for r, c in zip(resumed, cold_steps, strict=True)):
                raise PropertyFailed(
                    f"a cold-started optimizer (no load_state_dict) reproduces the resumed parameters for {n} steps "
                    f"after the split: the saved state has no effect\n  {scenario.describe()}; split after {split} "
                    f"step(s)",
                    {**scenario.evidence(), "split": split, "compared_steps": n},
                )


LOW_PRECISION_MAX_STEPS = 5
"""Low-precision runs are kept short: near convergence float16 L-BFGS breaks down by itself (``ro = 1/ys``
overflows to inf once ``ys`` is tiny), and the defect under test shows from the first split on."""


def _low_precision_scenarios(steps: int) -> st.SearchStrategy[Scenario]:
    steps = min(steps, LOW_PRECISION_MAX_STEPS)
    lr = learning_rates(kinds=("tensor",), tensor_dtypes=(torch.float32, torch.float64), values=(0.1, 0.3))
    return st.builds(
        lambda dtype, hp: Scenario(make_problem("separable_quadratic", dtype), hp, steps),
        st.sampled_from((torch.bfloat16, torch.float16)),
        hyperparameters(lr=lr, max_iter=(1, 3), history_size=(1, 3), allow_defaults=False,
                        line_search_fns=(None,)),
    )


@register(
    "resume.low_precision_tensor_lr",
    category="resume",
    title="bfloat16/float16 parameters with a float32/float64 tensor lr resume bitwise through torch.save",
    catches="state entries silently cast to the parameter dtype on load (torch 2.13 casts the step size t from the "
            "lr's dtype down to bfloat16, 0.1 -> 0.1000977: facts defect #6)",
)
def check_low_precision_tensor_lr(ctx: CheckContext) -> None:
    check_transport(ctx, TORCH_SAVE, _low_precision_scenarios(ctx.budget.steps),
                    what="low-precision run resumed through torch.save differs from the uninterrupted run")
