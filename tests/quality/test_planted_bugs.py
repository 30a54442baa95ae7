"""The harness catches planted bugs: every mutant of ``SimpleLBFGS`` fails the property named for its bug class,
and the correct variants (other rounding, other state format) pass every property in properties mode.

Quick budget (few hypothesis examples plus each property's explicit examples), so the default part runs in a
couple of minutes; the sweep of every mutant against every property at the ``ci`` budget is ``slow``.
"""

from __future__ import annotations

import functools

import pytest
import torch

from lbfgs_verify.properties.base import (
    BUDGETS,
    REGISTRY,
    CheckContext,
    PropertyResult,
    Status,
    load_all,
    properties_for,
    run_property,
)
from lbfgs_verify.targets.kinds import KIND_CATEGORIES
from lbfgs_verify.targets.load import Target
from tests.quality import planted_bugs
from tests.quality.blind_spot_bugs import BLIND_SPOT_MUTANTS
from tests.quality.planted_bugs import CONVENTION_CONTROLS, CONVENTIONS, CORRECT_VARIANTS, MUTANTS
from tests.quality.property_claim_bugs import CLAIM_MUTANTS

load_all()

MY_CATEGORIES = ("mathematics", "behaviour", "convergence")

EXPECTED_SKIPS: dict[str, set[str]] = {
    "OpaqueState": {"behaviour.func_evals"},
}
"""Properties a correct variant may skip (besides ``cuda.*`` without a CUDA device), and why: OpaqueState keeps
no torch-style ``func_evals`` in its state, so the counter property does not apply."""


def target_of(cls: type) -> Target:
    return Target(spec=f"tests.quality.planted_bugs:{cls.__name__}", factory=cls)


def run(property_id: str, cls: type, budget: str = "quick") -> PropertyResult:
    return run_property(REGISTRY[property_id], CheckContext(target_of(cls), budget=BUDGETS[budget]))


def describe(result: PropertyResult) -> str:
    return f"{result.property}: {result.status.value}\n{result.detail[:3000]}"


@pytest.mark.parametrize("mutant", list(MUTANTS), ids=lambda c: c.__name__)
def test_mutant_fails_the_property_named_for_its_bug(mutant: type) -> None:
    """Each property listed for the mutant must report FAIL (not ERROR: a failure names the bug)."""
    for property_id in MUTANTS[mutant]:
        result = run(property_id, mutant)
        assert result.status is Status.FAIL, (
            f"{mutant.__name__} ({mutant.__doc__.strip().splitlines()[0]}) was not caught by {property_id}:\n"
            + describe(result))
        assert result.detail, "a failure must say what differs"


@pytest.mark.parametrize("variant", CORRECT_VARIANTS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("prop", [p.id for p in properties_for("properties")])
def test_correct_variant_passes(variant: type, prop: str) -> None:
    """Correct variants pass every property in properties mode (skips only where the property does not apply)."""
    result = run(prop, variant)
    allowed_skip = (prop.startswith("cuda.") and not torch.cuda.is_available()) or \
        prop in EXPECTED_SKIPS.get(variant.__name__, set()) or \
        REGISTRY[prop].category in KIND_CATEGORIES  # stepper/functional targets' properties: not applicable here
    if result.status is Status.SKIP:
        assert allowed_skip, f"{variant.__name__} unexpectedly skipped {prop}: {result.detail}"
        return
    assert result.status is Status.PASS, f"{variant.__name__} is correct but:\n" + describe(result)


def test_every_mutant_is_one_class_of_bug_and_documented() -> None:
    """The tables are consistent: every mutant named, documented, expected to fail registered properties."""
    mutants = {name: cls for name, cls in vars(planted_bugs).items()
               if isinstance(cls, type) and issubclass(cls, planted_bugs.SimpleLBFGS)
               and cls is not planted_bugs.SimpleLBFGS and cls not in CORRECT_VARIANTS
               and cls not in CONVENTION_CONTROLS}
    assert set(mutants.values()) == set(MUTANTS), "every mutant class is listed in MUTANTS"
    assert len(MUTANTS) >= 20
    for cls, ids in MUTANTS.items():
        assert cls.__doc__, cls.__name__
        assert ids, cls.__name__
        for property_id in ids:
            assert property_id in REGISTRY, f"{cls.__name__}: unknown property {property_id}"


CONTROL_CATCHES: dict[type, str] = {
    planted_bugs.TorchFinalEvaluation: "behaviour.iterations",
    planted_bugs.FirstStepLr: "mathematics.first_step",
    planted_bugs.TorchStricterWolfe: "behaviour.accepts_first_wolfe_point",
    planted_bugs.RestartsMemoryEachStep: "behaviour.history_across_steps",
}
"""The semantics property that each convention control must fail (its departure from torch's conventions)."""


def test_every_mutant_is_caught_at_level_properties_unless_it_is_a_torch_convention() -> None:
    """A planted bug is caught by a property of level ``properties``; the only exceptions are the mutants that
    depart from torch's conventions, not from L-BFGS (``CONVENTIONS``), which are caught at ``semantics``."""
    for cls, ids in MUTANTS.items():
        levels = {REGISTRY[pid].level for pid in ids}
        if cls in CONVENTIONS:
            assert levels == {"semantics"}, f"{cls.__name__} is a convention: {sorted(levels)}"
        else:
            assert "properties" in levels, f"{cls.__name__} is caught only at {sorted(levels)}"


@functools.cache
def torch_quick(property_id: str) -> PropertyResult:
    """torch.optim.LBFGS's result of a property at the quick budget, run once per property and process: both
    torch-based convention controls compare their failures with torch's (the same runs, hypothesis shrinking
    included)."""
    return run_property(REGISTRY[property_id], CheckContext(Target("torch.optim:LBFGS", torch.optim.LBFGS),
                                                            budget=BUDGETS["quick"]))


@pytest.mark.parametrize("control", CONVENTION_CONTROLS, ids=lambda c: c.__name__)
def test_convention_control_passes_properties_and_fails_semantics(control: type) -> None:
    """Correct L-BFGS with another convention (final evaluation, t₀ = lr, stricter c2) passes level properties
    completely, torch's own defects aside (a torch-based control may fail only where torch.optim.LBFGS itself
    fails), and fails the semantics property that names its convention."""
    failing = {}
    for prop in properties_for("properties"):
        result = run(prop.id, control)
        if result.status in (Status.FAIL, Status.ERROR):
            failing[prop.id] = result
    if issubclass(control, torch.optim.LBFGS):
        own = {pid for pid in failing if torch_quick(pid).status in (Status.FAIL, Status.ERROR)}
    else:
        own = set()
    unexplained = {pid: describe(r) for pid, r in failing.items() if pid not in own}
    assert not unexplained, f"{control.__name__} is correct but fails at level properties: {unexplained}"
    semantics = run(CONTROL_CATCHES[control], control)
    assert semantics.status is Status.FAIL, describe(semantics)
    assert REGISTRY[CONTROL_CATCHES[control]].level == "semantics"


def test_every_mathematics_behaviour_convergence_property_catches_some_mutant() -> None:
    """No property of these categories is without a planted bug (here, or among the blind-spot mutants of
    ``tests/quality/blind_spot_bugs.py``; or a convention control, for the semantics properties) that it is
    shown to catch."""
    caught = ({pid for ids in MUTANTS.values() for pid in ids} | set(CONTROL_CATCHES.values())
              | {pid for ids in BLIND_SPOT_MUTANTS.values() for pid in ids}
              | {pid for ids in CLAIM_MUTANTS.values() for pid in ids})
    mine = {pid for pid in REGISTRY if pid.split(".")[0] in MY_CATEGORIES}
    uncovered = mine - caught - {"convergence.reaches_f_star", "convergence.reaches_tabulated_f_star",
                                 "convergence.agrees_with_torch"}
    assert not uncovered, f"properties without a planted bug: {sorted(uncovered)}"


@pytest.mark.parametrize("mutant", [planted_bugs.WrongSignTwoLoop, planted_bugs.WolfeConstantsSwapped,
                                    planted_bugs.RhoNotInverted], ids=lambda c: c.__name__)
def test_convergence_properties_catch_broken_iterations(mutant: type) -> None:
    """The convergence properties are a net: an iteration broken badly enough misses f* and torch's result."""
    for property_id in ("convergence.reaches_f_star", "convergence.reaches_tabulated_f_star",
                        "convergence.agrees_with_torch"):
        result = run(property_id, mutant)
        assert result.status is Status.FAIL, describe(result)


def test_failure_messages_name_problem_hyperparameters_step_and_quantity() -> None:
    """Diagnosable failures: the problem, the hyperparameters, the step and the differing quantity."""
    result = run("mathematics.two_loop_direction", planted_bugs.InverseGamma)
    assert result.status is Status.FAIL
    assert "problem=" in result.detail and "history_size=" in result.detail and "step " in result.detail
    assert "relative max-norm" in result.detail
    assert "γ = yᵀy/sᵀy (inverted scaling)" in result.detail, "the likely mistake is named"
    assert result.evidence["step"] >= 1 and result.evidence["relative_difference"] > 1e-6


def test_torch_fails_only_the_history_size_change_among_these_properties() -> None:
    """torch.optim.LBFGS 2.13 satisfies the mathematics/behaviour/convergence properties of level semantics
    (its own documented behaviour) except the history_size change between steps (IndexError, facts defect #4)."""
    failing = {}
    for prop in properties_for("semantics"):
        if prop.category not in MY_CATEGORIES:
            continue
        result = torch_quick(prop.id)
        if result.status is not Status.PASS:
            failing[prop.id] = result
    lowering = {"behaviour.change_history_size", "behaviour.lowered_history_uses_newest"}
    assert set(failing) == lowering, {k: describe(v) for k, v in failing.items()}
    assert all("IndexError" in failing[pid].detail for pid in lowering)


@pytest.mark.slow
@pytest.mark.parametrize("mutant", list(MUTANTS), ids=lambda c: c.__name__)
def test_mutant_caught_at_ci_budget(mutant: type) -> None:
    """At the ci budget too (more examples, every problem for convergence) the named properties fail."""
    for property_id in MUTANTS[mutant]:
        result = run(property_id, mutant, "ci")
        assert result.status is Status.FAIL, describe(result)


@pytest.mark.slow
@pytest.mark.parametrize("variant", CORRECT_VARIANTS, ids=lambda c: c.__name__)
def test_correct_variant_passes_at_ci_budget(variant: type) -> None:
    failures = []
    for prop in properties_for("properties"):
        result = run(prop.id, variant, "ci")
        if result.status in (Status.FAIL, Status.ERROR):
            failures.append(describe(result))
    assert not failures, "\n\n".join(failures)
