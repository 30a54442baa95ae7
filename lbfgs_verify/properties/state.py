"""State-dict properties (``state.*``) and the seed article's restore claim as a target property (``seed.*``).

These are the state-handling contracts of ``torch.optim.Optimizer`` that resume relies on, each checked on
its own so that a failure names the broken contract: exact round trips, independence of an in-memory load,
``state_dict()`` as a snapshot, hyperparameter changes between steps, validation at load time.
The target's state format stays opaque: only its own ``state_dict()``/``load_state_dict()`` are used.

Sources: torch/optim/optimizer.py and torch/optim/lbfgs.py (torch 2.13); pytorch #196083 and #147288
(aliasing after an in-memory load, since PR #106082 removed a deepcopy); docs/torch-2.13-lbfgs.md
(defects #1, #2, #5); the seed article (docs/seed-article.md: "load_state_dict restores the
hyperparameters").
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from hypothesis import example, given
from hypothesis import strategies as st
from torch import Tensor

from lbfgs_verify.compare.environment import comparison_environment, disturb_global_rng
from lbfgs_verify.engine.recordings import uninterrupted
from lbfgs_verify.engine.runs import (
    TORCH_SAVE,
    RecordedRun,
    Scenario,
    Transport,
    call_target,
    cold_start_diagnosis,
    continue_run,
    difference_evidence,
    divergence_failure,
    fresh_params,
    params_at,
    record_run,
    state_difference,
    step_divergence,
    torch_load_bytes,
    torch_save_bytes,
)
from lbfgs_verify.engine.strategies import generated_problem, make_problem, other_hyperparameters, scenarios
from lbfgs_verify.properties.base import CheckContext, PropertyFailed, register
from lbfgs_verify.properties.resume import check_transport


def _snapshot(value: Any) -> Any:
    """A deep copy of a state_dict that keeps the target's own types (the format is opaque here)."""
    return copy.deepcopy(value)


# --------------------------------------------------------------------------------------------------------
# state.round_trip_exact
# --------------------------------------------------------------------------------------------------------


@register(
    "state.round_trip_exact",
    category="state",
    title="state_dict() -> load_state_dict() into a fresh optimizer -> state_dict() gives back the same values "
          "and types (in memory and through torch.save/torch.load(weights_only=True)), at every step boundary",
    catches="state entries dropped, recomputed, re-typed (int 1 vs 1.0, tensor vs float t) or cast on load",
)
def check_round_trip_exact(ctx: CheckContext) -> None:
    routes = (("in memory", lambda sd: sd),
              ("torch.save/torch.load(weights_only=True)", lambda sd: torch_load_bytes(torch_save_bytes(sd))))

    steps = ctx.budget.steps

    @ctx.settings()
    @given(scenario=scenarios(steps))
    # A tensor lr whose dtype differs from the parameters' makes t a tensor of the lr's dtype; a load that casts
    # every floating state tensor to the parameter dtype changes its type (the mechanism of facts defect #6).
    @example(scenario=Scenario(make_problem("coupled_tensors", torch.float64),
                               {"lr": torch.tensor(0.5, dtype=torch.float32), "max_iter": 2, "history_size": 2}, steps))
    @example(scenario=Scenario(make_problem("rosenbrock", torch.float32),
                               {"lr": torch.tensor(0.25, dtype=torch.float64), "max_iter": 2, "history_size": 2,
                                "line_search_fn": "strong_wolfe"}, steps))
    def check(scenario: Scenario) -> None:
        with comparison_environment(ctx.threads, ctx.level):
            run = record_run(ctx.target, scenario, steps=0)
            closure = scenario.problem.make_closure(run.params)
            for boundary in range(scenario.steps + 1):
                if boundary:
                    call_target(f"step {boundary - 1}", lambda: run.optimizer.step(closure), scenario)
                saved = call_target("optimizer.state_dict()", run.optimizer.state_dict, scenario)
                expected = _snapshot(saved)
                for route, carry in routes:
                    params = fresh_params(run.params, run.params)
                    fresh = call_target("constructing the new optimizer",
                                        lambda p=params: scenario.make_optimizer(ctx.target, p), scenario)
                    loaded = call_target(f"carrying the state_dict ({route})", lambda c=carry, s=saved: c(_snapshot(s)),
                                         scenario)
                    call_target("load_state_dict", lambda f=fresh, s=loaded: f.load_state_dict(s), scenario)
                    got = call_target("state_dict() of the loaded optimizer", fresh.state_dict, scenario)
                    difference = state_difference(expected, got, "state_dict")
                    if difference is not None:
                        raise PropertyFailed(
                            f"state_dict after a round trip ({route}) differs from the saved one after {boundary} "
                            f"step(s): {difference}\n  {scenario.describe()}",
                            {**scenario.evidence(), "boundary": boundary, "route": route,
                             **difference_evidence(difference)},
                        )

    check()


# --------------------------------------------------------------------------------------------------------
# state.load_independence
# --------------------------------------------------------------------------------------------------------


def _load_in_memory(ctx: CheckContext, scenario: Scenario, split: int) -> tuple[RecordedRun, Any, list[Tensor]]:
    """A source run of ``split`` steps and a new optimizer that loaded ``source.state_dict()`` in memory."""
    reference = uninterrupted(ctx.target, scenario, steps=split)
    source = record_run(ctx.target, scenario, steps=split, label="source")
    loaded_params = fresh_params(params_at(reference.trace, split), reference.params)
    loaded = call_target("constructing the optimizer to load into",
                         lambda: scenario.make_optimizer(ctx.target, loaded_params), scenario)
    state = call_target("source.state_dict()", source.optimizer.state_dict, scenario)
    call_target("loaded.load_state_dict(source.state_dict()) in memory", lambda: loaded.load_state_dict(state),
                scenario)
    return source, loaded, loaded_params


def _alone(ctx: CheckContext, scenario: Scenario, split: int, name: str, n_steps: int) -> tuple[Any, list[Any]]:
    """Differential control of ``state.load_independence``: the same in-memory load, then only the ``name``
    optimizer steps (``n_steps`` times) while the other never does. The first divergence from the
    uninterrupted run (or ``None``) and the steps made (up to that divergence)."""
    source, loaded, loaded_params = _load_in_memory(ctx, scenario, split)
    optimizer, params = (loaded, loaded_params) if name == "loaded" else (source.optimizer, source.params)
    expected = uninterrupted(ctx.target, scenario, steps=split + n_steps).trace.steps[split:]
    steps: list[Any] = []
    for index in range(split, split + n_steps):
        disturb_global_rng(index)  # as in the property's own loop
        steps += continue_run(optimizer, params, scenario, index, 1, f"{name} alone")
        divergence = step_divergence(expected[:len(steps)], steps)
        if divergence is not None:
            return divergence, steps
    return None, steps


@register(
    "state.load_independence",
    category="state",
    title="after b.load_state_dict(a.state_dict()) in memory, stepping b leaves a's run unchanged and stepping a "
          "leaves b's unchanged (both continue exactly as the uninterrupted run)",
    catches="tensors shared between the source and the loaded optimizer, rewritten in place (torch 2.13 shares d, "
            "H_diag, prev_flat_grad and the history: pytorch #196083, #147288; facts defect #1)",
)
def check_load_independence(ctx: CheckContext) -> None:
    """Sharing is named only after a clean control (docs/properties.md, "Differential controls"): the diverging
    optimizer, run again after the same load while the other one never steps, must follow the uninterrupted
    run. If it does not, the difference belongs to the load itself and is reported as a resume difference (with
    the cold-start diagnosis where it applies)."""
    steps = max(ctx.budget.steps, 3)

    @ctx.settings()
    @given(scenario=scenarios(steps), data=st.data())
    def check(scenario: Scenario, data: st.DataObject) -> None:
        with comparison_environment(ctx.threads, ctx.level):
            split = data.draw(st.integers(1, scenario.steps - 1), label="split")
            source, loaded, loaded_params = _load_in_memory(ctx, scenario, split)
            for index in range(split, scenario.steps):
                reference = uninterrupted(ctx.target, scenario, steps=index + 1)  # extended as far as compared
                for name, optimizer, params, other in (("loaded", loaded, loaded_params, "source"),
                                                       ("source", source.optimizer, source.params, "loaded")):
                    disturb_global_rng(index)
                    record = continue_run(optimizer, params, scenario, index, 1, name)
                    divergence = step_divergence(reference.trace.steps[index:index + 1], record)
                    if divergence is None:
                        continue
                    control, alone = _alone(ctx, scenario, split, name, index - split + 1)
                    if control is None:
                        raise divergence_failure(
                            f"the {name} optimizer no longer follows the uninterrupted run once the {other} "
                            f"optimizer has stepped, though it does when the {other} never steps: the two share "
                            f"state after an in-memory load_state_dict", scenario, divergence, split=split,
                            stepped_first="loaded", control=f"the {name} optimizer alone follows the run")
                    diagnosis = (cold_start_diagnosis(ctx.target, scenario, reference, split, alone)
                                 if name == "loaded" else {})
                    raise divergence_failure(
                        f"the {name} optimizer differs from the uninterrupted run even when the {other} never "
                        f"steps: the in-memory load itself differs (a resume difference, see resume.*), not "
                        f"sharing", scenario, control, split=split, control_run=f"the {name} optimizer alone",
                        **diagnosis)

    check()


# --------------------------------------------------------------------------------------------------------
# state.snapshot
# --------------------------------------------------------------------------------------------------------


@register(
    "state.snapshot",
    category="state",
    title="a dict returned by state_dict() does not change when the optimizer steps afterwards",
    catches="state_dict() returning live state (torch 2.13 returns the live per-parameter dict and tensors that "
            "step() rewrites in place: checkpoints taken 'now' silently hold later state; facts defect #2)",
)
def check_snapshot(ctx: CheckContext) -> None:
    @ctx.settings()
    @given(scenario=scenarios(ctx.budget.steps))
    def check(scenario: Scenario) -> None:
        with comparison_environment(ctx.threads, ctx.level):
            returned: list[tuple[int, Any, Any]] = []

            def keep(optimizer: Any, params: list[Tensor]) -> None:
                state = call_target("optimizer.state_dict()", optimizer.state_dict, scenario)
                returned.append((len(returned), state, _snapshot(state)))

            run = record_run(ctx.target, scenario, save=keep)
            keep(run.optimizer, run.params)
            for boundary, state, snapshot in returned:
                difference = state_difference(snapshot, state, "state_dict")
                if difference is not None:
                    later = len(returned) - 1 - boundary
                    raise PropertyFailed(
                        f"the dict returned by state_dict() after {boundary} step(s) changed during the {later} "
                        f"later step(s): {difference}\n  {scenario.describe()}",
                        {**scenario.evidence(), "boundary": boundary, "later_steps": later,
                         **difference_evidence(difference)},
                    )

    check()


# --------------------------------------------------------------------------------------------------------
# state.load_validates_size
# --------------------------------------------------------------------------------------------------------


def _mismatched_cases() -> list[tuple[str, Scenario, Scenario]]:
    from lbfgs_verify.engine.capabilities import active_lacks

    hp: dict[str, Any] = {"lr": 0.5, "max_iter": 3, "history_size": 3}
    if "lr" in active_lacks():
        hp["lr"] = 1
    if "no_line_search" in active_lacks():
        hp["line_search_fn"] = "strong_wolfe"
    source = generated_problem(11, (3, 2))
    return [
        ("same number of tensors, larger total size", Scenario(source, hp, 2),
         Scenario(generated_problem(12, (3, 4)), hp, 3)),
        ("same number of tensors, smaller total size", Scenario(source, hp, 2),
         Scenario(generated_problem(13, (2, 1)), hp, 3)),
        ("another number of tensors", Scenario(source, hp, 2), Scenario(generated_problem(14, (3, 2, 2)), hp, 3)),
    ]


def _step_once_report(run: RecordedRun, scenario: Scenario) -> str:
    """What happens when the optimizer that accepted a mismatched state steps (for the failure message)."""
    try:
        run.optimizer.step(scenario.problem.make_closure(run.params))
    except Exception as exc:
        return f"the error comes only at step(): {type(exc).__name__}: {str(exc)[:200]}"
    finite = all(bool(torch.isfinite(p).all()) for p in run.params)
    return HARMLESS_LOAD if finite else "step() then runs and produces non-finite parameters"


HARMLESS_LOAD = "step() then runs silently"
"""A load that was accepted and after which ``step()`` runs to finite parameters: the target keeps no state
whose size depends on the parameters (it restarts its memory, say), so there is nothing to validate."""


@register(
    "state.load_validates_size",
    category="state",
    title="loading a state_dict saved for parameters of another total size raises at load time and leaves the "
          "optimizer unchanged (it continues its own run exactly)",
    catches="missing validation in load_state_dict (torch 2.13 accepts flat buffers of the wrong length; the "
            "error comes later inside step() as an opaque size mismatch: facts defect #5), partial loads",
    why="a wrong-size state must be refused at load time or be harmless; a target whose state has no "
        "size-dependent part passes (the load is accepted and step() runs)",
)
def check_load_validates_size(ctx: CheckContext) -> None:
    with comparison_environment(ctx.threads, ctx.level):
        for case, source_scenario, victim_scenario in _mismatched_cases():
            source = record_run(ctx.target, source_scenario)
            saved = _snapshot(call_target("source.state_dict()", source.optimizer.state_dict, source_scenario))
            reference = uninterrupted(ctx.target, victim_scenario)
            split = victim_scenario.steps - 1
            victim = record_run(ctx.target, victim_scenario, steps=split, label="victim")
            before = _snapshot(call_target("state_dict()", victim.optimizer.state_dict, victim_scenario))
            try:
                victim.optimizer.load_state_dict(saved)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                outcome = _step_once_report(victim, victim_scenario)
                if outcome == HARMLESS_LOAD:
                    continue  # the target keeps no state that depends on the parameter count: nothing to validate
                raise PropertyFailed(
                    f"load_state_dict accepted a state saved for {source_scenario.problem.name} into an optimizer of "
                    f"{victim_scenario.problem.name} ({case}) without an error; {outcome}",
                    {"case": case, "saved_for": source_scenario.problem.name, "saved_after": source_scenario.steps,
                     "loaded_into": victim_scenario.problem.name, "raised_at_load": False,
                     **victim_scenario.evidence(), "split": split},
                )
            after = _snapshot(call_target("state_dict() after the failed load", victim.optimizer.state_dict,
                                          victim_scenario))
            difference = state_difference(before, after, "state_dict")
            if difference is None:
                steps = continue_run(victim.optimizer, victim.params, victim_scenario, split, 1, "after failed load")
                divergence = step_divergence(reference.trace.steps[split:], steps)
                if divergence is not None:
                    raise divergence_failure(f"after the rejected load ({case}; {error}) the optimizer no longer "
                                             f"continues its own run", victim_scenario, divergence, split=split)
            else:
                raise PropertyFailed(
                    f"load_state_dict raised ({error}) but changed the optimizer first ({case}): {difference}",
                    {"case": case, "raised": error, **difference_evidence(difference)},
                )


# --------------------------------------------------------------------------------------------------------
# seed.load_restores_hyperparameters
# --------------------------------------------------------------------------------------------------------


def _restore_with_other_hyperparameters() -> Transport:
    def restore(payload: Any, scenario: Scenario, target: Any, params: list[Tensor]) -> tuple[Any, list[Tensor]]:
        state = call_target("torch.load(weights_only=True)", lambda: torch_load_bytes(payload))
        other = other_hyperparameters(scenario.hyperparameters)
        optimizer = call_target(f"constructing the new optimizer with other hyperparameters {other}",
                                lambda: target.make(params, **other) if hasattr(target, "make") else target(params,
                                                                                                          **other))
        call_target("load_state_dict", lambda: optimizer.load_state_dict(state))
        return optimizer, params

    return Transport("torch.save, then load into an optimizer constructed with other hyperparameters",
                     TORCH_SAVE.save, restore)


@register(
    "seed.load_restores_hyperparameters",
    category="seed",
    title="load_state_dict restores the saved hyperparameters: an optimizer constructed with other lr, max_iter, "
          "max_eval, tolerances, history_size and line search continues bitwise as the saved one",
    catches="hyperparameters taken from the constructor instead of the saved param_groups (the seed article claims "
            "load_state_dict restores them; torch does, through param_groups)",
)
def check_load_restores_hyperparameters(ctx: CheckContext) -> None:
    check_transport(ctx, _restore_with_other_hyperparameters(),
                    what="run resumed into an optimizer constructed with other hyperparameters differs from the "
                         "uninterrupted run")
