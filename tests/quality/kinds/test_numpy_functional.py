"""The kinds' properties catch the planted bugs of our numpy L-BFGS through the functional protocol, and pass its
correct version (tests/quality/kinds/numpy_lbfgs.py); each failure gets a standalone reproduction that fails on
the buggy version and passes on the correct one (lbfgs_verify/engine/repro_kinds.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbfgs_verify.properties.base import Status
from tests.quality.kinds.standalone import check, run_script, scripts_of, statuses

MODULE = "tests.quality.kinds.numpy_lbfgs"


def test_correct_numpy_lbfgs_passes_every_functional_and_kinds_property() -> None:
    report = check(f"{MODULE}:CorrectNumpyLBFGS", ["functional", "kinds"])
    applicable = {r.property: r.status for r in report.results if not r.detail.startswith("not applicable")}
    assert len(applicable) >= 7 and set(applicable.values()) == {Status.PASS}, applicable


def test_torch_properties_do_not_apply_to_a_functional_target() -> None:
    report = check(f"{MODULE}:CorrectNumpyLBFGS", ["resume.torch_save", "stepper.resume_fresh_process"])
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
def test_planted_bug_fails_with_a_standalone_reproduction(variant: str, caught_by: str, tmp_path: Path) -> None:
    report = check(f"{MODULE}:{variant}", [caught_by])
    assert statuses(report) == {caught_by: Status.FAIL}
    scripts = scripts_of(report, tmp_path / "repro")
    assert list(scripts) == [f"{caught_by}.py"]
    script = scripts[f"{caught_by}.py"]
    text = script.read_text(encoding="utf-8")
    assert "import torch" not in text and "lbfgs_verify" not in text.split("# The target:")[0]
    buggy = run_script(script, tmp_path)
    assert buggy.returncode == 1, buggy.stdout + buggy.stderr
    assert "AssertionError" in buggy.stderr
    fixed = run_script(script, tmp_path, replace=(f"import {variant} ", "import CorrectNumpyLBFGS "))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "no defect: the check passed" in fixed.stdout
