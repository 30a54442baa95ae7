"""Verdicts an implementer can trust (issue: one root cause is one message, a cause is named after a clean
control, "torch fails this too" only for torch's own cause, the two-loop diagnosis names the mistake).

The user's bug here is a copy of torch.optim.LBFGS that keeps its iteration counter outside the state
(tests/fast/check_repro_targets.py): every resume is a cold start, and torch 2.13 also fails some of the same
property IDs for other reasons (its defects 1, 2, 5, 6).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor

from lbfgs_verify.cli import main
from lbfgs_verify.properties.base import BUDGETS, REGISTRY, CheckContext, Status, load_all, run_property
from lbfgs_verify.targets.load import load_target
from tests.quality.simple_lbfgs import SimpleLBFGS

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
COUNTER = "tests.fast.check_repro_targets:TorchLBFGSWithExternalCounter"
RESUME_FAMILY = ["resume.torch_save", "state.load_independence", "state.same_dict_loaded_twice"]
ONLY = ",".join([*RESUME_FAMILY, "state.snapshot"])
TORCH = f"torch {torch.__version__.split('+')[0]}"


@pytest.fixture(scope="module")
def counter_check(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    path = tmp_path_factory.mktemp("verdicts") / "report.json"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["check", COUNTER, "--budget", "quick", "--only", ONLY, "--json", str(path)]) == 1
    return json.loads(path.read_text()), out.getvalue()


def test_a_lost_counter_is_one_cause_diagnosed_as_a_cold_start(counter_check: tuple[dict, str]) -> None:
    report, text = counter_check
    (group,) = [g for g in report["shared_causes"] if g["key"] == "diagnosis: cold start"]
    assert sorted(group["properties"]) == sorted(RESUME_FAMILY)
    assert "equals a cold start from the split" in group["summary"]
    assert "3 properties fail for one cause: diagnosis: cold start" in text
    # The details show the cause once; the other properties point to it.
    assert text.count("diagnosis (cold start from step") == 1
    assert text.count("the same cause as resume.torch_save (shown there)") == 2


def test_load_independence_does_not_blame_sharing_without_a_clean_control(counter_check: tuple[dict, str]) -> None:
    report, _ = counter_check
    result = next(r for r in report["results"] if r["property"] == "state.load_independence")
    assert "even when the source never steps" in result["detail"] and "share state" not in result["detail"]
    twice = next(r for r in report["results"] if r["property"] == "state.same_dict_loaded_twice")
    assert "the first optimizer loaded" in twice["detail"] and "not a reuse of the dict" in twice["detail"]


def test_the_baseline_marks_only_torchs_own_causes(counter_check: tuple[dict, str]) -> None:
    report, text = counter_check
    marks = {r["property"]: r["baseline_fails"] for r in report["results"]}
    # torch 2.13 fails state.load_independence and state.same_dict_loaded_twice too, for another cause (sharing)
    assert marks == {"resume.torch_save": False, "state.load_independence": False,
                     "state.same_dict_loaded_twice": False, "state.snapshot": True}
    assert f"4 failures: 3 are yours, 1 is also {TORCH}'s (same cause)" in text
    assert f"state.snapshot: {TORCH} fails this too (same cause)" in text
    assert f"state.load_independence: {TORCH} fails this too" not in text


def test_checking_torch_itself_prints_no_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "torch.json"
    assert main(["check", "torch.optim:LBFGS", "--budget", "quick", "--only", "state.snapshot",
                 "--json", str(path)]) == 1
    report = json.loads(path.read_text())
    assert report["baseline"] is None and report["results"][0]["baseline_fails"] is None
    assert "fails this too" not in capsys.readouterr().out


def _section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    out = []
    for line in lines[start:]:
        if not line.strip() or line.startswith("="):
            break
        out.append(line)
    return out


def test_pytest_route_prints_what_the_cli_prints(pytester: pytest.Pytester) -> None:
    """One behaviour, two faces: the same baseline marks, grouped causes and reproductions."""
    cli = subprocess.run([sys.executable, "-m", "lbfgs_verify", "check", COUNTER, "--budget", "quick", "--only", ONLY,
                          "--repro", str(pytester.path / "cli-repro")], cwd=pytester.path, capture_output=True,
                         text=True, timeout=300, env={**_env(), "PYTHONPATH": str(ROOT)})
    assert cli.returncode == 1, cli.stderr
    result = pytester.runpytest_subprocess("--pyargs", "lbfgs_verify.suite", "-p", "no:cacheprovider",
                                           "--lbfgs-target", COUNTER, "--lbfgs-budget", "quick", "--lbfgs-only",
                                           ONLY, "--lbfgs-repro", str(pytester.path / "pytest-repro"))
    result.assert_outcomes(failed=4)
    text = result.stdout.str()
    for title in ("Baseline (", "Failures grouped by shared cause:"):
        assert _section(text, title) == _section(cli.stdout, title)
    assert sorted(p.name for p in (pytester.path / "cli-repro").iterdir()) == \
        sorted(p.name for p in (pytester.path / "pytest-repro").iterdir())
    assert "reproduce_failure" not in text and "reproduce_failure" not in cli.stdout
    assert "catches:" in cli.stdout


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


class GammaSsOverSy(SimpleLBFGS):
    """Planted: initial scaling γ = sᵀs/sᵀy (the 'other Barzilai–Borwein' step), not in the list of usual
    mistakes: the diagnosis must fit γ from the observed direction and name the formula."""

    def _gamma(self, s: Tensor, y: Tensor, ys: Tensor) -> Tensor | float:
        return s.dot(s) / ys


def test_two_loop_diagnosis_names_a_wrong_gamma() -> None:
    load_all()
    ctx = CheckContext(target=load_target("tests.fast.test_verdicts:GammaSsOverSy"), budget=BUDGETS["quick"])
    result = run_property(REGISTRY["mathematics.two_loop_direction"], ctx)
    assert result.status is Status.FAIL
    assert "matches none of the usual mistakes" not in result.detail
    assert re.search(r"it matches: the initial scaling γ: .*γ = sᵀs/sᵀy of the newest pair", result.detail)


def test_a_sign_of_zero_in_the_state_is_a_note_not_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/properties.md, "Signed zeros": at level properties the CLI passes and prints the note once."""
    assert main(["check", "tests.quality.test_signed_zeros:ZeroSignOnLoad", "--budget", "quick", "--only",
                 "resume.torch_save", "--no-baseline"]) == 0
    text = capsys.readouterr().out
    assert "Notes (not failures):" in text
    assert re.search(r"resume\.torch_save: state_dict\.state\[0\]\.d: differs only in the sign of zero", text)


def test_a_scipy_style_optimizer_is_not_failed_for_torchs_conventions(capsys: pytest.CaptureFixture[str]) -> None:
    """lbfgs_verify.reference:LBFGSB (scipy's L-BFGS-B behind torch's constructor; it declares that it lacks lr,
    max_eval, tolerance_change and the fixed step) keeps f and g of the point it accepts instead of re-evaluating
    it, and returns without a closure call once it has converged: neither is a defect at level properties. It
    used to fail mathematics.strong_wolfe, mathematics.descent_direction and convergence.reaches_f_star for it,
    and every property that passed torch's default lr=1 to its constructor."""
    assert main(["check", "lbfgs_verify.reference:LBFGSB", "--budget", "quick", "--no-baseline"]) == 0, \
        capsys.readouterr().out


# --------------------------------------------------------------------------------------------------------
# portability.resume_other_thread_count: the thread count is judged against the target's own thread sensitivity
# (false verdict on CircularLBFGS at the thorough budget, and on torch itself on a ci draw: a correct iteration
# whose uninterrupted runs under 1 and 2 threads differ as much as its resumed run does)
# --------------------------------------------------------------------------------------------------------


def _records(*rows: list[float]) -> list:
    from lbfgs_verify.compare.trace import StepRecord

    return [StepRecord(k, None, [torch.tensor(row, dtype=torch.float64)], None) for k, row in enumerate(rows)]


def test_thread_blame_needs_more_than_the_targets_own_thread_sensitivity() -> None:
    """A resumed run 1.5 times as far from the uninterrupted run as the uninterrupted runs under the two thread
    counts are from each other passes; one 1e4 times as far (a lost or float32-rounded state) still fails, and so
    does a difference where the thread count changes nothing at all."""
    from lbfgs_verify.compare.tolerances import first_violation
    from lbfgs_verify.properties.portability import THREAD_TOLERANCE, beyond_sensitivity, thread_sensitivity

    expected = _records([1.0, 2.0], [0.5, 1.0], [0.25, 0.5])
    other_threads = _records([1.0, 2.0], [0.5 + 1e-10, 1.0], [0.25 + 2e-10, 0.5])
    sensitivity = thread_sensitivity(expected, other_threads)
    assert sensitivity == pytest.approx([0.0, 1e-10, 2e-10], rel=1e-3)
    amplified = _records([1.0, 2.0], [0.5 + 1.5e-10, 1.0], [0.25 + 3e-10, 0.5])
    assert first_violation(expected, amplified, THREAD_TOLERANCE) is not None  # the old verdict: a failure
    assert beyond_sensitivity(expected, amplified, sensitivity, THREAD_TOLERANCE) is None
    lost = _records([1.0, 2.0], [0.5 + 1e-7, 1.0], [0.25 + 2e-7, 0.5])
    assert "exceeds rtol 1e-10, atol 1e-11 + 10 ×" in str(beyond_sensitivity(expected, lost, sensitivity,
                                                                             THREAD_TOLERANCE))
    insensitive = thread_sensitivity(expected, expected)
    assert beyond_sensitivity(expected, amplified, insensitive, THREAD_TOLERANCE) is not None
    assert beyond_sensitivity(expected, _records([1.0, 2.0], [float("nan"), 1.0], [0.25, 0.5]), sensitivity,
                              THREAD_TOLERANCE) is not None


def test_a_line_search_that_stops_on_its_own_budget_is_named_so() -> None:
    """line_search.sufficient_decrease on a search that keeps the lower-valued bracket end although it fails
    sufficient decrease (torch 2.13's defect 9) and has a budget of its own (25 iterations: torch's ``_strong_wolfe``
    default, as pytorch-minimize calls it): the message names its own budget, the open bracket and the accepted
    trial, and not the harness's budget (docs/peers.md, pytorch-minimize)."""
    load_all()
    ctx = CheckContext(target=load_target("tests.fast.test_verdicts:OwnBudgetStrongWolfe"), budget=BUDGETS["quick"])
    result = run_property(REGISTRY["line_search.sufficient_decrease"], ctx)
    assert result.status is Status.FAIL, result.detail
    assert "its line search exhausted its own budget and accepted a point without sufficient decrease (control: it " \
           "stopped after 27 closure calls although max_eval = 100 allowed more, with its bracket still open" \
           in result.detail, result.detail
    assert "the accepted point is its trial 2 of 26" in result.detail
    assert "used up max_eval" not in result.detail


class OwnBudgetStrongWolfe(torch.optim.LBFGS):
    """torch.optim.LBFGS whose strong-Wolfe search gets torch's default ``max_ls = 25`` instead of the rest of
    ``max_eval`` (as pytorch-minimize 0.1.0 calls torch's ``_strong_wolfe``): torch's own search otherwise."""

    def step(self, closure: object) -> object:  # type: ignore[override]
        import torch.optim.lbfgs as torch_lbfgs

        original = torch_lbfgs._strong_wolfe

        def own_budget(*args: object, **kwargs: object) -> object:
            kwargs.pop("max_ls", None)
            return original(*args, **kwargs)  # type: ignore[arg-type]

        torch_lbfgs._strong_wolfe = own_budget  # type: ignore[assignment]
        try:
            return super().step(closure)  # type: ignore[arg-type]
        finally:
            torch_lbfgs._strong_wolfe = original
