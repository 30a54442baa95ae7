"""The kinds' properties catch the planted bugs of our numpy L-BFGS through the functional protocol, and pass its
correct version (tests/quality/kinds/numpy_lbfgs.py)."""

from __future__ import annotations

import pytest

from lbfgs_verify.properties.base import Status
from lbfgs_verify.properties.runner import run_check
from lbfgs_verify.targets.load import load_target

MODULE = "tests.quality.kinds.numpy_lbfgs"


def _statuses(name: str, only: list[str]) -> dict[str, Status]:
    report = run_check(load_target(f"{MODULE}:{name}"), "properties", "quick", only=only)
    return {r.property: r.status for r in report.results}


def test_correct_numpy_lbfgs_passes_every_functional_and_kinds_property() -> None:
    statuses = _statuses("CorrectNumpyLBFGS", ["functional", "kinds"])
    assert statuses and set(statuses.values()) == {Status.PASS}, statuses


def test_torch_properties_do_not_apply_to_a_functional_target() -> None:
    report = run_check(load_target(f"{MODULE}:CorrectNumpyLBFGS"), "properties", "quick",
                       only=["resume.torch_save", "stepper.resume_fresh_process"])
    reasons = {r.property: (r.status, r.detail) for r in report.results}
    assert reasons["resume.torch_save"] == (
        Status.SKIP, "not applicable (functional target: no step(closure)/state_dict API)")
    assert reasons["stepper.resume_fresh_process"] == (Status.SKIP, "not applicable (no state API)")


@pytest.mark.parametrize(("variant", "caught_by"), [
    ("HiddenStateNumpyLBFGS", "functional.deterministic"),
    ("HiddenStateNumpyLBFGS", "functional.maxiter_prefix"),
    ("TwoLoopBugNumpyLBFGS", "kinds.two_loop_direction"),
    ("LineSearchBugNumpyLBFGS", "kinds.wolfe"),
])
def test_planted_bug_fails_its_property(variant: str, caught_by: str) -> None:
    assert _statuses(variant, [caught_by]) == {caught_by: Status.FAIL}
