"""A new user's first hour (issue 21): a one-file optimizer in a fresh folder, checked by the installed
``lbfgs-verify`` and ``pytest`` scripts with no ``PYTHONPATH``, its reproduction scripts run from where they were
written, a constructor that does not match told how to adapt, and the fuzz matrix printed once with a legend.

The console scripts are run (not ``python -m``), since ``python -m`` puts the working directory on ``sys.path``
itself and would hide the defect. The checks are restricted with ``--only`` to stay cheap (seconds). The pytest
route from the folder itself (ini ``lbfgs_target``) is run by ``tests/fast/test_readme.py``; here, from a
subfolder (the target found through pytest's rootdir).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lbfgs_verify.cli import main
from lbfgs_verify.fuzz.outcomes import CORRUPT_OUTCOMES, FINDINGS, VALID_OUTCOMES
from lbfgs_verify.targets.load import CONSTRUCTOR_HINT

ROOT = Path(__file__).resolve().parents[2]
MYOPT = ROOT / "examples" / "quickstart" / "myopt.py"
BIN = Path(sys.executable).parent


def _script(name: str) -> str:
    found = shutil.which(name, path=str(BIN))
    if found is None:
        pytest.skip(f"the {name} console script is not installed next to {sys.executable}")
    return found


def _clean_env() -> dict[str, str]:
    """The environment of a new user's shell: no PYTHONPATH, no target variable, one thread."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LBFGS_VERIFY_TARGET")}
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A fresh folder holding only ``myopt.py`` (the README's buggy optimizer)."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(MYOPT, folder / "myopt.py")
    return folder


def test_check_imports_a_target_from_the_working_directory_and_repro_scripts_run_elsewhere(user_dir: Path) -> None:
    done = subprocess.run([_script("lbfgs-verify"), "check", "myopt:MyLBFGS", "--budget", "quick", "--only",
                           "resume.torch_save,resume.pickle_optimizer", "--no-baseline", "--repro", "repro"],
                          cwd=user_dir, env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert "cannot import" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    assert "resume.torch_save" in done.stdout and "FAIL" in done.stdout
    scripts = sorted((user_dir / "repro").glob("*.py"))
    assert [s.name for s in scripts] == ["resume.torch_save.py"], done.stdout
    # Run from the folder it was written to (myopt.py is one level up, not on the script's sys.path).
    replay = subprocess.run([sys.executable, scripts[0].name], cwd=scripts[0].parent, env=_clean_env(),
                            capture_output=True, text=True, timeout=120)
    assert "ModuleNotFoundError" not in replay.stderr, replay.stderr
    assert replay.returncode != 0 and "AssertionError" in replay.stderr, replay.stdout + replay.stderr


def test_pytest_run_from_a_subfolder_imports_the_target_from_the_rootdir(user_dir: Path) -> None:
    """The ini file that names the target sits at pytest's rootdir, next to myopt.py; pytest runs in tests/."""
    (user_dir / "pyproject.toml").write_text('[tool.pytest.ini_options]\nlbfgs_target = "myopt:MyLBFGS"\n')
    (user_dir / "tests").mkdir()
    done = subprocess.run([_script("pytest"), "-q", "-p", "no:cacheprovider", "--pyargs", "lbfgs_verify.suite",
                           "--lbfgs-budget", "quick", "--lbfgs-only", "resume.torch_save"],
                          cwd=user_dir / "tests", env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert "cannot import" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout[-3000:]


def test_fuzz_imports_a_target_from_the_working_directory(user_dir: Path) -> None:
    done = subprocess.run([_script("lbfgs-verify"), "fuzz", "myopt:MyLBFGS", "--examples", "2", "--routes",
                           "save-load", "--classes", "truncated-file", "--database", "none", "--repro-dir", "repro"],
                          cwd=user_dir, env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert "cannot import" not in done.stderr, done.stderr
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "save-load" in done.stdout and "truncated-file" in done.stdout


def test_a_module_not_found_says_where_it_was_looked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["check", "no_such_optimizer_module_xyz:Opt"]) == 2
    err = capsys.readouterr().err
    assert "ModuleNotFoundError" in err and f"searched the working directory {tmp_path}" in err


def test_a_constructor_mismatch_names_the_three_ways_to_adapt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "own_constructor_optimizer.py").write_text(
        "import torch\n\n\nclass Opt(torch.optim.LBFGS):\n"
        "    def __init__(self, params, step_size=1.0, memory=10):\n"
        "        super().__init__(params, lr=step_size, history_size=memory)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["check", "own_constructor_optimizer:Opt", "--budget", "quick"]) == 2
    err = capsys.readouterr().err
    assert "TypeError" in err and "unexpected keyword argument" in err
    assert CONSTRUCTOR_HINT in err
    for way in ("factory function", "lbfgs_verify_arguments", "examples/peers/"):
        assert way in err
    # The example the hint names exists, and the attribute is the one the harness reads.
    assert (ROOT / "examples" / "peers" / "torchmin_lbfgs.py").is_file()
    from lbfgs_verify.targets.load import ARGUMENTS_ATTRIBUTE

    assert ARGUMENTS_ATTRIBUTE == "lbfgs_verify_arguments"


def test_a_factory_as_the_hint_describes_it_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The first way of the hint, followed literally: a factory taking torch's keyword arguments."""
    (tmp_path / "own_constructor_factory.py").write_text(
        "import torch\n\n\nclass Opt(torch.optim.LBFGS):\n"
        "    def __init__(self, params, step_size=1.0, memory=10):\n"
        "        super().__init__(params, lr=step_size, history_size=memory)\n\n\n"
        "def make(params, lr=1, history_size=100, **torch_kwargs):\n"
        "    opt = Opt(params, step_size=lr, memory=history_size)\n"
        "    opt.param_groups[0].update(torch_kwargs)\n"
        "    return opt\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["check", "own_constructor_factory:make", "--budget", "quick", "--only", "convergence",
                 "--no-baseline"]) == 0
    assert "convergence.reaches_f_star" in capsys.readouterr().out


def test_fuzz_matrix_is_printed_once_with_a_legend_of_defects(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fuzz", "torch.optim:LBFGS", "--examples", "3", "--routes", "in-memory,save-load", "--classes",
                 "non-finite", "--database", "none", "--repro-dir", str(tmp_path)])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 1
    header = next(line for line in out.splitlines() if line.startswith("route "))
    assert out.count(header) == 1
    for name in ("in-memory", "save-load"):  # counts once: the matrix row, not a progress line too
        assert sum(line.startswith(f"{name} ") for line in out.splitlines()) == 1
        assert f"route {name}:" not in out
        assert f"route {name}:" in captured.err  # progress goes to stderr, without the counts
    assert "Outcomes marked * are defects" in out
    legend = out[out.index("Outcomes marked * are defects"):]
    shown = [o for o in (*VALID_OUTCOMES, *CORRUPT_OUTCOMES) if f" {o} " in legend]
    assert shown
    for outcome in shown:
        line = next(ln for ln in legend.splitlines() if ln.split()[:2] in (["*", outcome], [outcome]) or
                    ln.split()[:1] == [outcome])
        assert line.lstrip().startswith("*") == (outcome in FINDINGS), line
    assert "*diverged" in header


def test_fuzz_stops_at_a_constructor_mismatch_with_the_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "own_constructor_fuzzed.py").write_text(
        "import torch\n\n\nclass Opt(torch.optim.LBFGS):\n"
        "    def __init__(self, params, step_size=1.0):\n"
        "        super().__init__(params, lr=step_size)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["fuzz", "own_constructor_fuzzed:Opt", "--examples", "1", "--database", "none"]) == 2
    captured = capsys.readouterr()
    assert "cannot be fuzzed" in captured.err and CONSTRUCTOR_HINT in captured.err
    assert "finding" not in captured.out  # stopped before any case


def test_declared_lacks_are_not_passed_to_the_constructor() -> None:
    """A target that lacks an option (LBFGSB: no lr, max_eval, tolerance_change) is built without it, so check and
    fuzz accept it; its translation refuses the option it has no counterpart of."""
    from lbfgs_verify.properties.runner import declared_lacks_of, interface_problem
    from lbfgs_verify.targets.load import load_target

    target = load_target("lbfgs_verify.reference:LBFGSB")
    lacks = [f for fs in declared_lacks_of(target, ("--lacks", [])).values() for f in fs]
    assert "lr" in lacks and interface_problem(target, lacks) is None
    problem = interface_problem(target, [])
    assert problem is not None and "no counterpart of torch.optim.LBFGS's lr=1" in problem
