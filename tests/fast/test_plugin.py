"""The pytest plugin and the suite: options, ini twins, header, missing-target error, inertness (pytester)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lbfgs_verify.targets.load import TARGET_ENV_VAR

pytest_plugins = ["pytester"]

SUITE = ["--pyargs", "lbfgs_verify.suite", "-p", "no:cacheprovider"]
QUICK = ["--lbfgs-budget", "quick"]


@pytest.fixture(autouse=True)
def _no_target_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TARGET_ENV_VAR, raising=False)


def test_suite_runs_properties_as_tests(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*SUITE, "--lbfgs-target", "torch.optim:LBFGS", *QUICK,
                                "--lbfgs-only", "state.snapshot,resume.torch_save,cuda.resume_on_cuda")
    skipped = 0 if _has_cuda() else 1
    result.assert_outcomes(passed=1 + (1 - skipped), failed=1, skipped=skipped)
    result.stdout.fnmatch_lines(["FAILED*test_property?state.snapshot?*"])


def test_failure_shows_the_detail(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*SUITE, "--lbfgs-target", "torch.optim:LBFGS", *QUICK, "--lbfgs-only",
                                "state.load_independence")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "state.load_independence fails for torch.optim:LBFGS:*",
        "catches:*",
        "*first difference at step * params*ULP*",
        "*problem=*split after * step(s)*",
    ])


def test_header_shows_target_versions_profile_and_threads(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*SUITE, "--lbfgs-target", "lbfgs_verify.reference:LBFGS", *QUICK,
                                "--lbfgs-threads", "1", "--lbfgs-only", "resume.torch_save")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "lbfgs-verify: target lbfgs_verify.reference:LBFGS (version *) [[]from --lbfgs-target[]]",
        "lbfgs-verify: python *, torch *, numpy *, scipy *, hypothesis *",
        "lbfgs-verify: level properties, budget quick*hypothesis profile quick (derandomized*threads 1",
        "lbfgs-verify: only resume.torch_save",
    ])


def test_conformance_mode_adds_the_conformance_properties(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*SUITE, "--lbfgs-target", "torch.optim:LBFGS", "--lbfgs-mode", "conformance",
                                "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_property?conformance.trajectory?*", "*test_property?resume.torch_save?*"])
    plain = pytester.runpytest(*SUITE, "--lbfgs-target", "torch.optim:LBFGS", "--collect-only", "-q")
    assert "conformance.trajectory" not in plain.stdout.str()


def test_missing_target_is_a_usage_error_saying_what_to_set(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*SUITE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*lbfgs_verify.suite needs the optimizer to check. Pass --lbfgs-target*"
                                 f"lbfgs_target = module:attr*{TARGET_ENV_VAR}*"])


def test_unloadable_target_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*SUITE, "--lbfgs-target", "no_such_module_xyz:LBFGS")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot import module 'no_such_module_xyz'*"])


def test_target_that_is_not_an_optimizer_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*SUITE, "--lbfgs-target", "builtins:dict")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot be checked*without step, state_dict, load_state_dict*"])


def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlbfgs_target = torch.optim:LBFGS\nlbfgs_budget = enormous\n")
    result = pytester.runpytest(*SUITE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*lbfgs_budget = 'enormous'*quick, ci, thorough*"])


def test_importing_the_suite_into_a_project_with_ini_settings(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlbfgs_target = lbfgs_verify.reference:LBFGS\nlbfgs_budget = quick\n"
                     "lbfgs_only = state.snapshot resume.torch_save\n")
    pytester.makepyfile(test_my_lbfgs="from lbfgs_verify.suite.test_properties import *  # noqa: F403\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*target lbfgs_verify.reference:LBFGS*[[]from ini lbfgs_target[]]"])


def test_target_from_the_environment_variable(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TARGET_ENV_VAR, "lbfgs_verify.reference:LBFGS")
    result = pytester.runpytest(*SUITE, *QUICK, "--lbfgs-only", "resume.torch_save")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*[[]from {TARGET_ENV_VAR}[]]"])


def test_plugin_is_inert_without_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "lbfgs-verify:" not in result.stdout.str()  # no header lines (the plugin list names it, that is all)
    assert result.ret == pytest.ExitCode.OK


def test_options_are_one_prefixed_group_with_ini_twins(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines([
        "lbfgs_verify property suite*",
        "*--lbfgs-target=MODULE:ATTR*", "*--lbfgs-mode*", "*--lbfgs-budget*", "*--lbfgs-threads=N*",
        "*--lbfgs-only=ID*",
    ])
    for ini in ("lbfgs_target", "lbfgs_mode", "lbfgs_budget", "lbfgs_threads", "lbfgs_only"):
        result.stdout.fnmatch_lines([f"  {ini} *"])


def test_plugin_module_does_not_import_torch() -> None:
    code = "import sys, lbfgs_verify.plugin; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0


def test_a_functional_target_gets_the_cli_verdicts_and_scripts(pytester: pytest.Pytester,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """One behaviour, two faces, for a target of another kind (issue 20): the planted line-search bug of our numpy
    L-BFGS fails kinds.wolfe through `check` and through the plugin, and both write the same standalone script."""
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": root}
    target = "tests.quality.kinds.numpy_lbfgs:LineSearchBugNumpyLBFGS"
    cli = subprocess.run([sys.executable, "-m", "lbfgs_verify", "check", target, "--budget", "quick", "--no-baseline",
                          "--only", "kinds.wolfe", "--repro", "cli-repro"], cwd=pytester.path, capture_output=True,
                         text=True, timeout=300, env=env, check=False)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "1 failed" in cli.stdout
    monkeypatch.setenv("PYTHONPATH", root)
    result = pytester.runpytest_subprocess(*SUITE, "--lbfgs-target", target, *QUICK, "--lbfgs-only", "kinds.wolfe",
                                           "--lbfgs-repro", "pytest-repro")
    result.assert_outcomes(failed=1)
    cli_scripts = {p.name: p.read_text() for p in (pytester.path / "cli-repro").iterdir()}
    pytest_scripts = {p.name: p.read_text() for p in (pytester.path / "pytest-repro").iterdir()}
    assert list(cli_scripts) == ["kinds.wolfe.py"] and cli_scripts == pytest_scripts
    ran = subprocess.run([sys.executable, "cli-repro/kinds.wolfe.py"], cwd=pytester.path, capture_output=True,
                         text=True, timeout=120, env={k: v for k, v in env.items() if k != "PYTHONPATH"}, check=False)
    assert ran.returncode == 1 and "the curvature condition fails" in ran.stderr, ran.stdout + ran.stderr


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
