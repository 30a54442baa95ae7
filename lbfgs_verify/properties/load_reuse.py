"""The dict handed to ``load_state_dict`` (``state.loaded_dict_untouched``, ``state.same_dict_loaded_twice``).

A user who keeps a state_dict in memory — a rollback point, or one checkpoint handed to two workers — loads
the same dict object more than once, and expects it to be a value: loading it must not tie the dict to the
optimizer. Two contracts of ``torch.optim.Optimizer.load_state_dict`` (torch/optim/optimizer.py: the loaded
state is the optimizer's own, "deepcopy"-like semantics documented for ``state_dict``), checked on the
target's own runs (its state format stays opaque):

- the dict is unchanged (bytes, types, keys) after the loaded optimizer has stepped to the end of the run;
- loading the same in-memory dict into two fresh optimizers, one after the other (the first steps to the end
  before the second is made), gives two runs that both continue bitwise as the uninterrupted run.

The dict is a snapshot the harness makes at a ``step()`` boundary (:func:`lbfgs_verify.compare.bitwise.clone_structure`
of ``state_dict()``), so a live ``state_dict()`` (torch 2.13 defect 2) does not enter here; torch 2.13 fails
both through defect 1 (the loaded optimizer shares the dict's tensors and rewrites ``prev_flat_grad`` in place).
Recording and resuming: :mod:`lbfgs_verify.engine.runs`.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lbfgs_verify.compare.bitwise import clone_structure, first_difference
from lbfgs_verify.compare.environment import comparison_environment
from lbfgs_verify.engine.recordings import uninterrupted
from lbfgs_verify.engine.runs import (
    SAME_DICT,
    RecordedRun,
    Scenario,
    cold_start_diagnosis,
    difference_evidence,
    divergence_failure,
    resume_run,
    step_divergence,
)
from lbfgs_verify.engine.strategies import scenarios, split_points
from lbfgs_verify.properties.base import CheckContext, PropertyFailed, register


def _record(ctx: CheckContext, scenario: Scenario, steps: int | None = None) -> RecordedRun:
    return uninterrupted(ctx.target, scenario, SAME_DICT, device=ctx.device, steps=steps)


@register(
    "state.loaded_dict_untouched",
    category="state",
    title="the dict handed to load_state_dict is unchanged after the loaded optimizer has stepped",
    catches="load_state_dict keeping the given dict's tensors or lists as live state (written in place by later "
            "steps: torch 2.13 shares prev_flat_grad, defect 1), a load that pops or rewrites keys of its argument",
)
def check_loaded_dict_untouched(ctx: CheckContext) -> None:
    @ctx.settings()
    @given(scenario=scenarios(ctx.budget.steps), data=st.data())
    def run(scenario: Scenario, data: st.DataObject) -> None:
        split = data.draw(split_points(scenario.steps), label="split")
        with comparison_environment(ctx.threads, ctx.level):
            saved = _record(ctx, scenario, split + 1)  # the payload at the split is all that is needed
            payload = saved.payloads[split]
            kept = clone_structure(payload)
            # Looked at after every step, so that the run stops at the first change.
            stepped = resume_run(ctx.target, scenario, saved, split, SAME_DICT, scenario.steps - split,
                                 device=ctx.device,
                                 stop=lambda _: first_difference(kept, payload, "loaded_dict") is not None)
        difference = first_difference(kept, payload, "loaded_dict")
        if difference is not None:
            raise PropertyFailed(
                f"the dict handed to load_state_dict changed while the loaded optimizer stepped "
                f"{len(stepped)} time(s): {difference}\n  {scenario.describe()}; split after {split} "
                f"step(s)", {**scenario.evidence(), "split": split, "steps_after_load": len(stepped),
                             **difference_evidence(difference)})

    run()


@register(
    "state.same_dict_loaded_twice",
    category="state",
    title="the same in-memory state_dict loaded into two fresh optimizers, one after the other, gives two runs "
          "that both continue bitwise as the uninterrupted run (a rollback, two workers)",
    catches="a load that consumes or aliases its argument, so that the second load starts from the state the "
            "first loaded optimizer left behind (torch 2.13: defect 1), state moved out of the dict on load",
)
def check_same_dict_loaded_twice(ctx: CheckContext) -> None:
    @ctx.settings()
    @given(scenario=scenarios(ctx.budget.steps), data=st.data())
    def run(scenario: Scenario, data: st.DataObject) -> None:
        split = data.draw(split_points(scenario.steps), label="split")
        n = scenario.steps - split
        with comparison_environment(ctx.threads, ctx.level):
            saved = _record(ctx, scenario)
            expected = saved.trace.steps[split:]
            for attempt in ("first", "second"):
                resumed = resume_run(ctx.target, scenario, saved, split, SAME_DICT, n, device=ctx.device)
                divergence = step_divergence(expected, resumed)
                if divergence is not None and attempt == "first":
                    # The first load is the control: a reuse of the dict is named only when it is clean.
                    raise divergence_failure(
                        "the first optimizer loaded from the in-memory state_dict already differs from the "
                        "uninterrupted run: a resume difference (see resume.*), not a reuse of the dict",
                        scenario, divergence, split=split, load=attempt,
                        **cold_start_diagnosis(ctx.target, scenario, saved, split, resumed, ctx.device))
                if divergence is not None:
                    raise divergence_failure(
                        "the second optimizer loaded from the same in-memory state_dict differs from the "
                        "uninterrupted run, though the first load of it continued exactly: the first load "
                        "consumed or aliased the dict", scenario, divergence, split=split, load=attempt,
                        control="the first load follows the run")

    run()
