"""The kinds' properties catch the planted bugs of our JAX L-BFGS through the stepper protocol, and pass its
correct version (tests/quality/kinds/jax_lbfgs.py); each failure gets a standalone reproduction that fails on the
buggy version and passes on the correct one (lbfgs_verify/engine/repro_kinds.py). Skipped without the jax extra."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("jax", reason='the JAX stack is an optional extra: pip install "lbfgs-verify[jax]"')

from lbfgs_verify.properties.base import Status
from tests.quality.kinds.standalone import check, run_script, scripts_of, statuses

MODULE = "tests.quality.kinds.jax_lbfgs"


@pytest.mark.slow
def test_correct_jax_lbfgs_passes_resume_and_mathematics() -> None:
    only = ["stepper.resume_fresh_process", "kinds.descent", "kinds.wolfe", "kinds.two_loop_direction"]
    assert statuses(check(f"{MODULE}:CorrectJaxLBFGS", only)) == dict.fromkeys(only, Status.PASS)


@pytest.mark.parametrize(("variant", "caught_by"), [
    pytest.param("ResumeBugJaxLBFGS", "stepper.resume_fresh_process", marks=pytest.mark.slow),
    ("TwoLoopBugJaxLBFGS", "kinds.two_loop_direction"),
    pytest.param("LineSearchBugJaxLBFGS", "kinds.wolfe", marks=pytest.mark.slow),
])
def test_planted_bug_fails_with_a_standalone_reproduction(variant: str, caught_by: str, tmp_path: Path) -> None:
    report = check(f"{MODULE}:{variant}", [caught_by])
    assert statuses(report) == {caught_by: Status.FAIL}
    scripts = scripts_of(report, tmp_path / "repro")
    assert list(scripts) == [f"{caught_by}.py"]
    script = scripts[f"{caught_by}.py"]
    buggy = run_script(script, tmp_path)
    assert buggy.returncode == 1, buggy.stdout + buggy.stderr
    assert "AssertionError" in buggy.stderr
    fixed = run_script(script, tmp_path, replace=(f"import {variant} ", "import CorrectJaxLBFGS "))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "no defect: the check passed" in fixed.stdout
