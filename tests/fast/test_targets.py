"""Loading the optimizer under test from ``module:attr`` or ``LBFGS_VERIFY_TARGET`` (lbfgs_verify.targets.load)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from lbfgs_verify.targets.load import TARGET_ENV_VAR, Target, TargetLoadError, import_directory, load_target


def test_loads_a_class_by_module_and_attribute() -> None:
    target = load_target("torch.optim:LBFGS")
    assert target.factory is torch.optim.LBFGS
    assert target.spec == target.name == "torch.optim:LBFGS"


def test_attribute_may_be_dotted_and_spec_is_stripped() -> None:
    assert load_target("  torch:optim.LBFGS ").factory is torch.optim.LBFGS


def test_environment_variable_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TARGET_ENV_VAR, "lbfgs_verify.reference:LBFGS")
    from lbfgs_verify.reference import LBFGS

    assert load_target().factory is LBFGS


def test_no_spec_and_no_environment_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TARGET_ENV_VAR, raising=False)
    with pytest.raises(TargetLoadError, match=TARGET_ENV_VAR):
        load_target()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("torch.optim.LBFGS", "must be written module:attr"),
        (":LBFGS", "must be written module:attr"),
        ("torch.optim:", "must be written module:attr"),
        ("no_such_module_xyz:LBFGS", "cannot import module 'no_such_module_xyz'"),
        ("torch.optim:NoSuchOptimizer", "has no attribute 'NoSuchOptimizer'"),
        ("math:pi", "is a float, not a class or factory"),
    ],
)
def test_bad_specs_raise_target_load_error_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(TargetLoadError, match=message):
        load_target(spec)


def test_a_module_that_fails_to_import_is_reported_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_optimizer_module.py").write_text("raise RuntimeError('half-written module')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TargetLoadError, match="RuntimeError: half-written module"):
        load_target("broken_optimizer_module:LBFGS")


def test_make_passes_params_and_hyperparameters() -> None:
    target = load_target("torch.optim:LBFGS")
    params = [torch.zeros(3, requires_grad=True)]
    optimizer = target.make(params, lr=0.5, history_size=4)
    group = optimizer.param_groups[0]
    assert group["params"][0] is params[0]
    assert (group["lr"], group["history_size"], group["max_eval"]) == (0.5, 4, 25)


def test_a_factory_function_is_a_target() -> None:
    def factory(params, **kwargs):
        return torch.optim.LBFGS(params, **{"history_size": 2, **kwargs})

    target = Target("tests:factory", factory)
    assert target.make([torch.zeros(1, requires_grad=True)]).param_groups[0]["history_size"] == 2


def test_version_comes_from_the_top_level_package() -> None:
    assert load_target("torch.optim:LBFGS").version == torch.__version__
    assert load_target("lbfgs_verify.reference:LBFGS").version == __import__("lbfgs_verify").__version__


def test_working_directory_comes_first_as_with_python_m(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cwd_only_optimizer_module.py").write_text("import torch\nLBFGS = torch.optim.LBFGS\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    assert load_target("cwd_only_optimizer_module:LBFGS").factory is torch.optim.LBFGS
    assert sys.path[0] == str(tmp_path)
    assert import_directory("cwd_only_optimizer_module:LBFGS") == str(tmp_path)


def test_import_directory_is_none_for_installed_packages() -> None:
    load_target("torch.optim:LBFGS")
    assert import_directory("torch.optim:LBFGS") is None
