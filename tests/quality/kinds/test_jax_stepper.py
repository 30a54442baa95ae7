"""The kinds' properties catch the planted bugs of our JAX L-BFGS through the stepper protocol, and pass its
correct version (tests/quality/kinds/jax_lbfgs.py). Skipped without the jax extra."""

from __future__ import annotations

import pytest

pytest.importorskip("jax", reason='the JAX stack is an optional extra: pip install "lbfgs-verify[jax]"')

from lbfgs_verify.properties.base import Status
from lbfgs_verify.properties.runner import run_check
from lbfgs_verify.targets.load import load_target

MODULE = "tests.quality.kinds.jax_lbfgs"


def _statuses(name: str, only: list[str]) -> dict[str, Status]:
    report = run_check(load_target(f"{MODULE}:{name}"), "properties", "quick", only=only)
    return {r.property: r.status for r in report.results}


@pytest.mark.slow
def test_correct_jax_lbfgs_passes_resume_and_mathematics() -> None:
    only = ["stepper.resume_fresh_process", "kinds.descent", "kinds.wolfe", "kinds.two_loop_direction"]
    assert _statuses("CorrectJaxLBFGS", only) == dict.fromkeys(only, Status.PASS)


@pytest.mark.slow
def test_resume_bug_fails_in_a_fresh_process() -> None:
    assert _statuses("ResumeBugJaxLBFGS", ["stepper.resume_fresh_process"]) == {
        "stepper.resume_fresh_process": Status.FAIL}


@pytest.mark.parametrize(("variant", "caught_by"), [
    ("TwoLoopBugJaxLBFGS", "kinds.two_loop_direction"),
    ("LineSearchBugJaxLBFGS", "kinds.wolfe"),
])
def test_planted_bug_fails_its_property(variant: str, caught_by: str) -> None:
    assert _statuses(variant, [caught_by]) == {caught_by: Status.FAIL}
