"""Resume properties (``resume.*``): save at a ``step()`` boundary, restore, continue -> bitwise the same run.

A resumed run must be indistinguishable from the uninterrupted one, on the CPU and with the same thread
count: parameters, returned losses, closure calls and ``state_dict()`` after every step are compared byte
for byte (:func:`lbfgs_verify.compare.trace.trace_divergence`). The target's state format is opaque here: only its
own ``state_dict()``/``load_state_dict()`` are used and only its own runs are compared.

Every split point is checked cheaply (from the state saved before step ``k``, one step must reproduce
step ``k`` exactly), and ``budget.full_continuations`` random split points form one resume chain
(:func:`lbfgs_verify.engine.runs.resume_chain`): restored at the first, continued to the end, re-saved through the
same transport and restored afresh at each later one, so that each is a load followed by a run to the end.
The uninterrupted run is shared with the other properties of the check (:mod:`lbfgs_verify.engine.recordings`).
Before resuming, what a resumed process would not share is disturbed: the global RNGs are reseeded, the
parameters are fresh tensors, and the saved payload is materialised anew for every restore, so no tensor
is shared with the saving optimizer.

Sources: torch/optim/lbfgs.py and torch/optim/optimizer.py (torch 2.13); pytorch issues #35047 (resumed
runs diverge), #196083/#147288 (aliasing after load), mace #1653 (a resume that silently starts a fresh
L-BFGS).

The recording and resuming machinery is :mod:`lbfgs_verify.engine.runs`; :func:`check_transport` (every split,
one step each, plus full continuations) is reused by :mod:`.state`, :mod:`.conformance` and :mod:`.cuda`.
"""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import given
from hypothesis import strategies as st

from lbfgs_verify.compare.bitwise import first_difference
from lbfgs_verify.compare.environment import comparison_environment, disturb_global_rng
from lbfgs_verify.engine.recordings import uninterrupted
from lbfgs_verify.engine.runs import (
    DEEPCOPY_OPTIMIZER,
    DEEPCOPY_STATE_DICT,
    PICKLE_OPTIMIZER,
    PICKLE_STATE_DICT,
    TORCH_SAVE,
    Scenario,
    Transport,
    call_target,
    cold_start_diagnosis,
    continue_run,
    divergence_failure,
    fresh_params,
    params_at,
    resume_chain,
    resume_run,
    resume_seed,
    state_after_load,
    step_divergence,
)
from lbfgs_verify.engine.strategies import hyperparameters, learning_rates, make_problem, scenarios, split_points
from lbfgs_verify.properties.base import CheckContext, PropertyFailed, PropertySkipped, register


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
    """Every split point (one step) and a resume chain through ``budget.full_continuations`` random splits (to
    the end) of generated scenarios must continue bitwise after ``transport``.

    By default the target saves, loads and provides the expected (uninterrupted) run; conformance checks
    pass other ``saver``/``loader``/``expected`` optimizers (torch.optim.LBFGS) for state interchange.
    """
    saver = ctx.target if saver is None else saver
    loader = ctx.target if loader is None else loader
    expected = saver if expected is None else expected
    label = what or f"run resumed through {transport.name} differs from the uninterrupted run"

    @ctx.settings()
    @given(scenario=strategy if strategy is not None else scenarios(ctx.budget.resume_length), data=st.data())
    def check(scenario: Scenario, data: st.DataObject) -> None:
        with comparison_environment(ctx.threads, ctx.level):
            for split in range(scenario.steps):
                # Recorded as far as needed (one more step per split): a failure at an early split costs
                # only the steps before it.
                saved = uninterrupted(saver, scenario, transport, device=ctx.device, steps=split + 1)
                reference = (saved if expected is saver
                             else uninterrupted(expected, scenario, device=ctx.device, steps=split + 1))
                resumed = resume_run(loader, scenario, saved, split, transport, 1, device=ctx.device)
                divergence = step_divergence(reference.trace.steps[split:split + 1], resumed)
                if divergence is not None:
                    raise divergence_failure(label + " (one step after the split)", scenario, divergence,
                                             split=split, transport=transport.name,
                                             **state_after_load(loader, scenario, saved, split, transport,
                                                                ctx.device),
                                             **cold_start_diagnosis(loader, scenario, reference, split, resumed,
                                                                    ctx.device))
            count = min(ctx.budget.full_continuations, scenario.steps)
            splits = data.draw(st.lists(split_points(scenario.steps), min_size=count, max_size=count, unique=True),
                               label="full-continuation splits")
            if not splits:
                return
            chain = sorted(splits)
            expected_steps = reference.trace.steps[chain[0]:]
            resumed = resume_chain(loader, scenario, saved, chain, transport, device=ctx.device,
                                   expected=expected_steps)
            divergence = step_divergence(expected_steps, resumed)
            if divergence is not None:
                load = max(s for s in chain if s <= divergence.step)
                reloads = [s for s in chain[1:] if s <= divergence.step]
                how = (f" (continued from the split; re-saved and re-loaded through the same transport at "
                       f"{', '.join(map(str, reloads))})" if reloads else " (full continuation)")
                diagnosis = {} if reloads else state_after_load(loader, scenario, saved, load, transport, ctx.device)
                diagnosis.update(cold_start_diagnosis(loader, scenario, reference, load, resumed[load - chain[0]:],
                                                      ctx.device))
                raise divergence_failure(label + how, scenario, divergence, split=chain[0], chain=chain,
                                         last_load=load, transport=transport.name, **diagnosis)

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
    level="semantics",
    why="a correct L-BFGS may restart its memory at every step(); keeping the history across step() (so that "
        "the saved state matters) is torch's documented behaviour",
    title="uninterrupted == resumed != cold-started: after a split with a non-empty history the saved state "
          "changes the next steps",
    catches="a resume path that silently starts a fresh L-BFGS (mace #1653), load_state_dict that ignores the "
            "history, an optimizer whose 'state' does not influence the iteration",
)
def check_uses_saved_state(ctx: CheckContext) -> None:
    """A scenario after whose split the target does not move (converged, stalled or non-finite) says nothing
    about the saved state and is passed over; if that happens in every scenario, the property skips."""
    from lbfgs_verify.engine.capabilities import allowed, features_of_hyperparameters, features_of_problem

    informative = 0
    with comparison_environment(ctx.threads, ctx.level):
        for scenario, split in _SAVED_STATE_SCENARIOS:
            if not allowed(features_of_problem(scenario.problem) | features_of_hyperparameters(
                    scenario.hyperparameters)):
                continue
            reference = uninterrupted(ctx.target, scenario, TORCH_SAVE, device=ctx.device)
            n = scenario.steps - split
            resumed = resume_run(ctx.target, scenario, reference, split, TORCH_SAVE, n, device=ctx.device,
                                 expected=reference.trace.steps[split:])
            divergence = step_divergence(reference.trace.steps[split:], resumed)
            if divergence is not None:
                raise divergence_failure("resumed run differs from the uninterrupted run", scenario, divergence,
                                         split=split, transport=TORCH_SAVE.name)
            after = [params_at(reference.trace, i) for i in range(split, scenario.steps + 1)]
            finite = all(bool(torch.isfinite(t).all()) for ps in after for t in ps if t.is_floating_point())
            if not finite or all(first_difference(after[0], ps) is None for ps in after[1:]):
                continue  # the run did not move after the split: the state cannot show an effect here
            informative += 1
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
    if not informative:
        raise PropertySkipped("in no scenario did the target move after the split with finite parameters, so the "
                              "effect of the saved state cannot be seen")


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
