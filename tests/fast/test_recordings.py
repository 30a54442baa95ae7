"""Shared uninterrupted recordings (lbfgs_verify.engine.recordings), the resume chain and ``check --jobs``.

What is shared must be exactly what each property would have recorded itself: the same trace bits, payloads
that restore to the same continuation, the same exceptions, the same global-RNG stream when a recording is
extended in pieces, and no way for one property's target to change what another property is handed.
"""

from __future__ import annotations

import pytest
import torch

from lbfgs_verify import reference
from lbfgs_verify.compare.bitwise import first_difference
from lbfgs_verify.compare.environment import comparison_environment
from lbfgs_verify.engine.evidence import PropertyFailed
from lbfgs_verify.engine.recordings import shared_recordings, uninterrupted
from lbfgs_verify.engine.runs import (
    DEEPCOPY_OPTIMIZER,
    PICKLE_OPTIMIZER,
    SAME_DICT,
    TORCH_SAVE,
    Scenario,
    record_run,
    resume_chain,
    resume_run,
    step_divergence,
)
from lbfgs_verify.engine.strategies import make_problem
from lbfgs_verify.targets.load import Target

SCENARIO = Scenario(make_problem("rosenbrock", torch.float64),
                    {"lr": 1, "max_iter": 2, "history_size": 3, "line_search_fn": "strong_wolfe"}, 6)


class NoisyLBFGS(torch.optim.LBFGS):
    """Draws from the global RNG in every step, so that its trajectory depends on the RNG stream."""

    def step(self, closure):  # type: ignore[override]
        self.param_groups[0]["lr"] = 0.5 + 0.5 * float(torch.rand(()))
        return super().step(closure)


class UnpicklableLBFGS(torch.optim.LBFGS):
    def __getstate__(self):  # type: ignore[no-untyped-def]
        return {**super().__getstate__(), "callback": lambda: None}  # pickle raises; the state_dict is fine


class FailsAtThirdStep(torch.optim.LBFGS):
    def step(self, closure):  # type: ignore[override]
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 3:
            raise RuntimeError("planted failure in the third step")
        return super().step(closure)


def same_trace(a, b) -> bool:  # type: ignore[no-untyped-def]
    return step_divergence(a.trace.steps, b.trace.steps) is None and len(a.trace.steps) == len(b.trace.steps)


def test_shared_recording_is_bitwise_the_recorded_run() -> None:
    target = Target("torch.optim:LBFGS", torch.optim.LBFGS)
    with comparison_environment(1):
        alone = record_run(target, SCENARIO, save=TORCH_SAVE.save)
        with shared_recordings() as cache:
            shared = uninterrupted(target, SCENARIO, TORCH_SAVE)
            assert cache.recorded_steps == SCENARIO.steps and cache.served_steps == 0
            again = uninterrupted(target, SCENARIO, DEEPCOPY_OPTIMIZER)  # another transport: served, not re-run
            assert cache.recorded_steps == SCENARIO.steps and cache.served_steps == SCENARIO.steps
    assert shared.optimizer is None  # the live optimizer of a shared recording is never handed out
    assert same_trace(alone, shared) and same_trace(alone, again)
    # The payloads restore to the same continuation as the unshared run's.
    for split in range(SCENARIO.steps):
        expected = resume_run(target, SCENARIO, alone, split, TORCH_SAVE, 1)
        got = resume_run(target, SCENARIO, shared, split, TORCH_SAVE, 1)
        assert step_divergence(expected, got) is None


def test_prefix_is_served_and_longer_requests_extend_the_same_run() -> None:
    target = Target("torch.optim:LBFGS", torch.optim.LBFGS)
    with comparison_environment(1), shared_recordings() as cache:
        two = uninterrupted(target, SCENARIO, steps=2)
        assert cache.recorded_steps == 2
        four = uninterrupted(target, SCENARIO, TORCH_SAVE, steps=4)
        assert cache.recorded_steps == 4 and len(four.payloads) == 4
        one = uninterrupted(target, SCENARIO, steps=1)
        assert cache.recorded_steps == 4 and len(one.trace.steps) == 1
        full = record_run(target, SCENARIO, steps=4)
    assert step_divergence(full.trace.steps[:2], two.trace.steps) is None
    assert step_divergence(full.trace.steps, four.trace.steps) is None


def test_extension_in_pieces_sees_the_uninterrupted_rng_stream() -> None:
    """A recording extended after other work drew from the global RNG continues the stream it had."""
    target = Target("noisy", NoisyLBFGS)
    with comparison_environment(1):
        alone = record_run(target, SCENARIO)
        with shared_recordings():
            uninterrupted(target, SCENARIO, steps=2)
            torch.rand(1000)  # another property's work between the two requests
            pieces = uninterrupted(target, SCENARIO)
    assert same_trace(alone, pieces)


def test_same_dict_payloads_cannot_be_changed_by_another_property() -> None:
    """torch 2.13 writes into a dict it has loaded (prev_flat_grad shared): each request gets its own copy."""
    target = Target("torch.optim:LBFGS", torch.optim.LBFGS)
    with comparison_environment(1), shared_recordings():
        first = uninterrupted(target, SCENARIO, SAME_DICT)
        pristine = [torch.clone(first.payloads[3]["state"][0]["prev_flat_grad"])]
        resume_run(target, SCENARIO, first, 3, SAME_DICT, 3)  # the loaded optimizer writes into payloads[3]
        assert first_difference(pristine, [first.payloads[3]["state"][0]["prev_flat_grad"]]) is not None
        second = uninterrupted(target, SCENARIO, SAME_DICT)
    assert first_difference(pristine, [second.payloads[3]["state"][0]["prev_flat_grad"]]) is None


def test_a_failing_save_is_raised_only_for_its_transport() -> None:
    target = Target("unpicklable", UnpicklableLBFGS)
    with comparison_environment(1), shared_recordings():
        with pytest.raises(PropertyFailed, match="pickle"):
            uninterrupted(target, SCENARIO, PICKLE_OPTIMIZER)
        assert len(uninterrupted(target, SCENARIO, TORCH_SAVE).payloads) == SCENARIO.steps


def test_a_failing_step_is_raised_for_every_longer_request() -> None:
    target = Target("fails", FailsAtThirdStep)
    with comparison_environment(1), shared_recordings() as cache:
        assert len(uninterrupted(target, SCENARIO, steps=2).trace.steps) == 2
        with pytest.raises(PropertyFailed, match="planted failure") as first:
            uninterrupted(target, SCENARIO)
        with pytest.raises(PropertyFailed, match="planted failure") as second:
            uninterrupted(target, SCENARIO, TORCH_SAVE)
        assert first.value is second.value and cache.recorded_steps == 3
        with pytest.raises(PropertyFailed, match="planted failure"):
            record_run(target, SCENARIO)  # what a property recording its own run would have raised


def test_resume_chain_is_the_uninterrupted_run_for_a_correct_optimizer() -> None:
    target = Target("lbfgs_verify.reference:LBFGS", reference.LBFGS)
    with comparison_environment(1), shared_recordings():
        run = uninterrupted(target, SCENARIO, TORCH_SAVE)
        steps = resume_chain(target, SCENARIO, run, [4, 1, 3], TORCH_SAVE)
    assert [s.index for s in steps] == list(range(1, SCENARIO.steps))  # steps - min(splits), not three runs
    assert step_divergence(run.trace.steps[1:], steps) is None


def test_resume_chain_failure_names_the_chain() -> None:
    """A target that cannot continue after a load fails in the chain with the splits in the evidence."""
    target = Target("fails", FailsAtThirdStep)
    with comparison_environment(1), shared_recordings():
        run = uninterrupted(Target("torch.optim:LBFGS", torch.optim.LBFGS), SCENARIO, TORCH_SAVE)
        with pytest.raises(PropertyFailed, match="planted failure") as raised:
            resume_chain(target, SCENARIO, run, [1, 2], TORCH_SAVE)
    assert raised.value.evidence["split"] == 1 and raised.value.evidence["chain"] == [1, 2]


def test_early_exit_stops_at_the_first_differing_step() -> None:
    """A continuation that must reproduce ``expected`` is not run past its first difference."""
    target = Target("torch.optim:LBFGS", torch.optim.LBFGS)
    other = Scenario(SCENARIO.problem, {**SCENARIO.hyperparameters, "lr": 0.5}, SCENARIO.steps)
    with comparison_environment(1):
        run = record_run(target, SCENARIO, save=TORCH_SAVE.save)
        wrong = record_run(target, other)
        resumed = resume_run(target, SCENARIO, run, 0, TORCH_SAVE, SCENARIO.steps, expected=wrong.trace.steps)
    assert len(resumed) == 1
