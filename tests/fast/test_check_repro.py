"""``lbfgs-verify check --repro DIR`` (standalone scripts of failures) and the baseline marks of ``check``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lbfgs_verify.cli import main
from lbfgs_verify.engine.repro import NoReproduction, problem_from_name, problem_source
from tests.repro_scripts import (
    assert_passes_on_the_reference,
    assert_reproduces,
    causes_by_script,
    run_check,
)

QUICK = ["--budget", "quick"]
TORCH = f"torch {torch.__version__.split('+')[0]}"

TORCH_213_FAILURES = {
    "behaviour.lowered_history_uses_newest": "list assignment index out of range",
    "resume.deepcopy_optimizer": "'LBFGS' object has no attribute '_params'",
    "resume.pickle_optimizer": "'LBFGS' object has no attribute '_params'",
    "resume.low_precision_tensor_lr": "the continuation differs from the uninterrupted run",
    "state.load_independence": "the source differs from the uninterrupted run after the loaded copy stepped",
    "state.load_validates_size": "load_state_dict accepted a state saved for parameters of another size",
    "state.loaded_dict_untouched": "the dict handed to load_state_dict changed while the loaded optimizer stepped",
    "state.round_trip_exact": "state_dict() after load_state_dict(state_dict()) differs from the saved one",
    "state.same_dict_loaded_twice": "the second optimizer loaded from the same in-memory state_dict differs",
    "state.snapshot": "the dict returned by state_dict() changed when the optimizer stepped afterwards",
}
"""torch.optim.LBFGS 2.13's failures at `check --budget quick` (level properties) and what each script's failing
line says (docs/torch-2.13-lbfgs.md: defects 1, 2, 3, 4, 5, 6)."""


@pytest.fixture(scope="module")
def torch_check(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """`check torch.optim:LBFGS --budget quick --repro DIR --json`: the scripts, the JSON, the terminal."""
    return run_check(tmp_path_factory.mktemp("repro"), "torch.optim:LBFGS", *QUICK)


def test_a_script_per_failure(torch_check: tuple[Path, dict, str]) -> None:
    scripts, report, text = torch_check
    failed = {r["property"] for r in report["results"] if r["status"] == "fail"}
    written = {p.stem for p in scripts.glob("*.py")}
    if torch.__version__.startswith("2.13"):
        assert failed == set(TORCH_213_FAILURES)
    assert written == failed
    assert "no script (" not in text


def test_scripts_need_only_torch_and_fail_with_the_assertion(torch_check: tuple[Path, dict, str]) -> None:
    scripts, report, _ = torch_check
    causes = causes_by_script(report)
    for script in sorted(scripts.glob("*.py")):
        assert_reproduces(script, causes[script.stem], TORCH_213_FAILURES.get(script.stem, ""))


def test_scripts_pass_on_a_correct_optimizer(torch_check: tuple[Path, dict, str], tmp_path: Path) -> None:
    scripts, _, _ = torch_check
    for script in sorted(scripts.glob("*.py")):
        assert "from torch.optim import LBFGS as _target_root" in script.read_text()
        assert_passes_on_the_reference(script, tmp_path)


def test_checking_torch_marks_no_baseline(torch_check: tuple[Path, dict, str]) -> None:
    """torch.optim.LBFGS is the baseline: checking it compares it with nothing."""
    _, report, text = torch_check
    assert report["baseline"] is None
    assert all(result["baseline_fails"] is None for result in report["results"])
    assert "fails this too" not in text and "Baseline (" not in text


def test_baseline_runs_torch_on_the_failed_properties_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A failure torch shares is marked, one it does not share is not; passing properties are not asked."""
    shared = tmp_path / "shared.json"
    assert main(["check", "tests.fast.check_repro_targets:TorchLBFGSUnderAnotherName", *QUICK,
                 "--only", "state.snapshot,behaviour.max_iter", "--json", str(shared)]) == 1
    results = {r["property"]: r for r in json.loads(shared.read_text())["results"]}
    assert results["state.snapshot"]["status"] == "fail" and results["state.snapshot"]["baseline_fails"] is True
    assert results["behaviour.max_iter"]["baseline_fails"] is None
    assert f"state.snapshot: {TORCH} fails this too (same cause)" in capsys.readouterr().out

    own = tmp_path / "own.json"
    assert main(["check", "tests.quality.planted_bugs:WrongSignTwoLoop", *QUICK,
                 "--only", "mathematics.two_loop_direction", "--json", str(own)]) == 1
    (result,) = json.loads(own.read_text())["results"]
    assert result["status"] == "fail" and result["baseline_fails"] is False
    assert f"1 failure: 1 is yours, 0 are also {TORCH}'s (same cause)" in capsys.readouterr().out


def test_no_baseline_flag(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    assert main(["check", "tests.quality.planted_bugs:WrongSignTwoLoop", *QUICK, "--no-baseline",
                 "--only", "mathematics.two_loop_direction", "--json", str(path)]) == 1
    report = json.loads(path.read_text())
    assert report["baseline"] is None and report["results"][0]["baseline_fails"] is None


@pytest.mark.parametrize("name", ["rosenbrock[float32]", "coupled_tensors[float64]", "separable_quadratic[bfloat16]",
                                  "separable_quadratic[float16]", "generated[seed=1,sizes=(3,)+complex+unused,float32]",
                                  "complex_least_squares[float64]", "generated[seed=11,sizes=(3, 2),float64]",
                                  "double_well[n=4,seed=0,float64]", "wavy[n=3,seed=5,float32]",
                                  "separable_quadratic[float32]@x*"])
def test_problem_source_is_literal_and_exact(name: str) -> None:
    problem = problem_from_name(name)
    assert problem.name == name
    source = problem_source(problem)
    namespace: dict = {"torch": torch}
    exec(source, namespace)
    params = problem.make_params()
    assert torch.equal(namespace["objective"](params), problem.objective(params))
    assert "lbfgs_verify" not in source


def test_problem_without_a_literal_form_is_refused_by_name() -> None:
    from lbfgs_verify.problems import spd_quadratic

    with pytest.raises(NoReproduction, match=r"spd_quadratic\[.*\]: its objective is not a plain function"):
        problem_source(spd_quadratic(n=3, condition_number=10.0))
    with pytest.raises(NoReproduction, match="'nonsense': not a name of the problem catalogue"):
        problem_from_name("nonsense")


def test_failures_without_a_script_say_why() -> None:
    from lbfgs_verify.engine.repro import reproduction_for_failure

    evidence = {"problem": "rosenbrock[float32]", "hyperparameters": {"lr": "1"}, "steps": 6, "split": 1}
    with pytest.raises(NoReproduction, match=r"mathematics\.two_loop_direction: no standalone script is written .*"
                                             r"two-loop rebuild"):
        reproduction_for_failure("torch.optim:LBFGS", "mathematics.two_loop_direction", {**evidence, "step": 1}, "x")
    with pytest.raises(NoReproduction, match=r"state\.snapshot: the evidence lacks the split"):
        reproduction_for_failure("torch.optim:LBFGS", "state.snapshot", {**evidence, "split": None}, "changed")
    with pytest.raises(NoReproduction, match="lacks problem"):
        reproduction_for_failure("torch.optim:LBFGS", "state.snapshot", {"steps": 6, "split": 1}, "changed")
    raised = {**evidence, "action": "step 1", "exception": "RuntimeError"}
    with pytest.raises(NoReproduction, match=r"behaviour\.change_lr: .*raised RuntimeError during step 1, not in a "
                                             r"plain run"):
        reproduction_for_failure("torch.optim:LBFGS", "behaviour.change_lr", raised, "raised")
    assert "observe(N_STEPS)" in reproduction_for_failure("torch.optim:LBFGS", "behaviour.change_lr",
                                                          {**raised, "action": "step 0"}, "raised")
    with pytest.raises(NoReproduction, match=r"behaviour\.change_history_size: the directions after the change"):
        reproduction_for_failure("torch.optim:LBFGS", "behaviour.change_history_size",
                                 {**evidence, "step": 3, "h1": 1, "h2": 3, "changed_before_step": 2}, "differs")
    with pytest.raises(NoReproduction, match=r"mathematics\.strong_wolfe: only a search that returns to x_k"):
        reproduction_for_failure("torch.optim:LBFGS", "mathematics.strong_wolfe",
                                 {**evidence, "step": 2, "decrease": 1.0, "curvature": 0.0, "gtp": -1.0}, "violates")


def test_repro_path_that_is_a_file_is_refused_before_any_work(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a-file"
    path.write_text("keep")
    assert main(["check", "torch.optim:LBFGS", *QUICK, "--only", "state.snapshot", "--repro", str(path)]) == 2
    captured = capsys.readouterr()
    assert f"--repro {path}: not a directory" in captured.err and "PROPERTY" not in captured.out
    assert path.read_text() == "keep"
