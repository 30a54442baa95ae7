"""``check --repro`` on planted bugs of the observed-run properties: each script fails with the cause the check
found (its assertion, or the exception the faulty optimizer raised) and passes against lbfgs_verify.reference.LBFGS.
The planted optimizers live in this test tree, so their scripts run with the repository on the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.repro_scripts import ROOT, assert_passes_on_the_reference, causes_by_script, run_check, run_script

PLANTED = {
    "FirstDirectionSign": ("mathematics.first_direction", "is not a positive multiple of -g0"),
    "StrongWolfeNeverMoves": ("mathematics.strong_wolfe", "returned to x_k without moving"),
    "MaxEvalIgnored": ("behaviour.max_eval", "closure calls with max_eval = "),
    "StopsOneIterationEarly": ("behaviour.max_iter", "iterations (distinct moves"),
    "MovesWhenConverged": ("behaviour.converged_no_move", "moved the parameters"),
    "MovesParamsWithoutGrad": ("behaviour.no_grad_params", "parameters without gradient moved"),
    "ReturnsFinalLoss": ("behaviour.returns_first_loss", "its first closure call returned"),
    "IgnoresMaxIterChange": ("behaviour.change_max_iter", "instead of max_iter = "),
}


@pytest.mark.parametrize("bug", list(PLANTED))
def test_script_of_a_planted_bug(bug: str, tmp_path: Path) -> None:
    property_id, says = PLANTED[bug]
    scripts, report, _ = run_check(tmp_path, f"tests.quality.planted_bugs:{bug}", "--budget", "quick", "--mode",
                                   "conformance", "--only", property_id, "--no-baseline")
    causes = causes_by_script(report)
    assert {p.stem for p in scripts.glob("*.py")} == set(causes)
    asserted = 0
    for script in sorted(scripts.glob("*.py")):
        done = run_script(script, pythonpath=ROOT, harness=True)
        last = done.stderr.strip().splitlines()[-1]
        exception = causes[script.stem].get("exception")
        assert done.returncode != 0 and last.startswith(f"{exception or 'AssertionError'}: "), f"{script.name}: {last}"
        if exception is None:
            assert says in last, last
            asserted += 1
        assert_passes_on_the_reference(script, tmp_path)
    assert asserted, "no script reproduced the property's own assertion"
