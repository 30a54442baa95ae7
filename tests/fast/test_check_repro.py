"""``lbfgs-verify check --repro DIR`` (standalone scripts of failures) and the baseline marks of ``check``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lbfgs_verify.cli import main
from lbfgs_verify.repro import SUPPORTED_PROPERTIES, NoReproduction, problem_from_name, problem_source

QUICK = ["--budget", "quick"]
ROOT = Path(__file__).resolve().parents[2]
TORCH = f"torch {torch.__version__.split('+')[0]}"


def _python(script: Path, *, isolated: bool = True) -> subprocess.CompletedProcess[str]:
    """Plain python on the script: isolated (-I: no PYTHONPATH, no current directory on sys.path)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if not isolated:
        env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-W", "ignore", *(["-I"] if isolated else []), str(script)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=script.parent, env=env)


@pytest.fixture(scope="module")
def torch_check(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """`check torch.optim:LBFGS --budget quick --repro DIR --json`: the scripts, the JSON, the terminal."""
    import contextlib
    import io

    directory = tmp_path_factory.mktemp("repro")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["check", "torch.optim:LBFGS", *QUICK, "--repro", str(directory / "scripts"),
                     "--json", str(directory / "report.json")])
    assert code == 1
    return directory / "scripts", json.loads((directory / "report.json").read_text()), out.getvalue()


def test_a_script_per_failure_of_a_supported_property(torch_check: tuple[Path, dict, str]) -> None:
    scripts, report, text = torch_check
    failed = {r["property"] for r in report["results"] if r["status"] == "fail"}
    written = {p.stem for p in scripts.glob("*.py")}
    assert written == failed & set(SUPPORTED_PROPERTIES)
    assert len(written) >= 5  # torch 2.13: snapshot, round trip, load independence, optimizer copies, low precision
    for pid in failed - written:
        assert f"{pid}: no script (" in text


def test_scripts_need_only_torch_and_fail_with_the_assertion(torch_check: tuple[Path, dict, str]) -> None:
    scripts, report, _ = torch_check
    causes = {r["property"]: r["causes"][0]["evidence"] for r in report["results"] if r["status"] == "fail"}
    for script in sorted(scripts.glob("*.py")):
        source = script.read_text()
        assert "lbfgs_verify" not in source.split('"""', 2)[2] and "hypothesis" not in source
        assert len(source.splitlines()) < 180, f"{script.name} is too long to paste into a bug report"
        done = _python(script)
        assert done.returncode != 0, f"{script.name} passed on torch: {done.stdout}"
        exception = causes[script.stem].get("exception", "AssertionError")
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(f"{exception}: "), f"{script.name}: {last}"
        if exception == "AssertionError":
            assert len(last) > len("AssertionError: ") + 10  # the message says what differs


def test_scripts_pass_on_a_correct_optimizer(torch_check: tuple[Path, dict, str], tmp_path: Path) -> None:
    scripts, _, _ = torch_check
    for script in sorted(scripts.glob("*.py")):
        source = script.read_text()
        target_line = "from torch.optim import LBFGS as _target_root"
        assert target_line in source
        retargeted = tmp_path / script.name
        retargeted.write_text(source.replace(target_line, "from lbfgs_verify.reference import LBFGS as _target_root"))
        done = _python(retargeted, isolated=False)
        assert done.returncode == 0, f"{script.name} fails on the reference: {done.stderr[-600:]}"
        assert done.stdout.strip().endswith("no defect: the check passed")


def test_torch_failures_are_marked_as_the_baselines(torch_check: tuple[Path, dict, str]) -> None:
    _, report, text = torch_check
    assert report["baseline"] == {"target": "torch.optim:LBFGS", "version": TORCH}
    for result in report["results"]:
        assert result["baseline_fails"] is (True if result["status"] == "fail" else None)
        if result["status"] == "fail":
            assert f"  - {result['property']}: {TORCH} fails this too" in text
            assert f"{result['property']}: " in text and f"({TORCH} fails this too)" in text


def test_baseline_runs_torch_on_the_failed_properties_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A failure torch shares is marked, one it does not share is not; passing properties are not asked."""
    shared = tmp_path / "shared.json"
    assert main(["check", "tests.fast.check_repro_targets:TorchLBFGSUnderAnotherName", *QUICK,
                 "--only", "state.snapshot,behaviour.max_iter", "--json", str(shared)]) == 1
    results = {r["property"]: r for r in json.loads(shared.read_text())["results"]}
    assert results["state.snapshot"]["status"] == "fail" and results["state.snapshot"]["baseline_fails"] is True
    assert results["behaviour.max_iter"]["baseline_fails"] is None
    assert f"state.snapshot: {TORCH} fails this too" in capsys.readouterr().out

    own = tmp_path / "own.json"
    assert main(["check", "tests.quality.planted_bugs:WrongSignTwoLoop", *QUICK,
                 "--only", "mathematics.two_loop_direction", "--json", str(own)]) == 1
    (result,) = json.loads(own.read_text())["results"]
    assert result["status"] == "fail" and result["baseline_fails"] is False
    assert "passes every property failed here" in capsys.readouterr().out


def test_no_baseline_flag(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    assert main(["check", "tests.quality.planted_bugs:WrongSignTwoLoop", *QUICK, "--no-baseline",
                 "--only", "mathematics.two_loop_direction", "--json", str(path)]) == 1
    report = json.loads(path.read_text())
    assert report["baseline"] is None and report["results"][0]["baseline_fails"] is None


@pytest.mark.parametrize("name", ["rosenbrock[float32]", "coupled_tensors[float64]", "separable_quadratic[bfloat16]",
                                  "separable_quadratic[float16]", "generated[seed=1,sizes=(3,)+complex+unused,float32]",
                                  "complex_least_squares[float64]", "generated[seed=11,sizes=(3, 2),float64]"])
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
    from lbfgs_verify.repro import reproduction_for_failure

    evidence = {"problem": "rosenbrock[float32]", "hyperparameters": {"lr": "1"}, "steps": 6, "split": 1}
    with pytest.raises(NoReproduction, match=r"mathematics\.two_loop_direction: no standalone script is written"):
        reproduction_for_failure("torch.optim:LBFGS", "mathematics.two_loop_direction", evidence, "differs")
    with pytest.raises(NoReproduction, match=r"state\.snapshot: the evidence lacks the split"):
        reproduction_for_failure("torch.optim:LBFGS", "state.snapshot", {**evidence, "split": None}, "changed")
    with pytest.raises(NoReproduction, match="lacks problem"):
        reproduction_for_failure("torch.optim:LBFGS", "state.snapshot", {"steps": 6, "split": 1}, "changed")


def test_repro_path_that_is_a_file_is_refused_before_any_work(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a-file"
    path.write_text("keep")
    assert main(["check", "torch.optim:LBFGS", *QUICK, "--only", "state.snapshot", "--repro", str(path)]) == 2
    captured = capsys.readouterr()
    assert f"--repro {path}: not a directory" in captured.err and "PROPERTY" not in captured.out
    assert path.read_text() == "keep"
