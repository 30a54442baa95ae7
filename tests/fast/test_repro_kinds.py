"""The reproduction writer for stepper and functional targets (lbfgs_verify/engine/repro_kinds.py): inline
problems equal to the harness's, a script shape for every kinds/stepper/functional property, built-in drivers that
run the library itself. The planted-bug scripts are run in tests/quality/kinds/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lbfgs_verify.engine.repro import NoReproduction, reproduction_for_failure
from lbfgs_verify.engine.repro_kinds import _INLINE_PROBLEMS, problem_definitions
from lbfgs_verify.problems.frameworks import KIND_PROBLEMS, RESUME_PROBLEM, kind_problem

ROSENBROCK = "mgh01_rosenbrock[n=2,x0*1,float64]"


def _inline(name: str) -> dict:
    namespace: dict = {"np": np}
    exec(problem_definitions(name), namespace)
    return namespace


@pytest.mark.parametrize("name", KIND_PROBLEMS)
def test_inline_problem_is_the_harness_problem(name: str) -> None:
    inline = _inline(name)
    kp = kind_problem(name)
    assert inline["X0"].tobytes() == kp.x0.tobytes() and inline["F_STAR"] == kp.f_star
    f, g = kp.fun_and_grad()(kp.x0.copy())
    assert float(inline["value"](np, kp.x0.copy())) == pytest.approx(f, rel=1e-13, abs=1e-13)
    np.testing.assert_allclose(inline["gradient"](kp.x0.copy()), g, rtol=1e-12, atol=1e-12 * float(np.abs(g).max()))


@pytest.mark.parametrize("name", KIND_PROBLEMS)
def test_inline_jax_objective_is_bitwise_the_harness_objective(name: str) -> None:
    jax = pytest.importorskip("jax", reason='the JAX stack is an optional extra: pip install "lbfgs-verify[jax]"')
    import jax.numpy as jnp

    from lbfgs_verify.problems.frameworks import jax_objective

    inline = _inline(name)
    with jax.enable_x64(True):
        x = jnp.asarray(kind_problem(name).x0)
        ours = jax.value_and_grad(lambda v: inline["value"](jnp, v))(x)
        harness = jax.value_and_grad(jax_objective(name))(x)
        assert all(np.asarray(a).tobytes() == np.asarray(b).tobytes() for a, b in zip(ours, harness, strict=True))


def test_a_problem_without_an_inline_form_is_refused_by_name() -> None:
    with pytest.raises(NoReproduction, match=r"problem 'mgh02_freudenstein_roth\[n=2,x0\*1,float64\]': no inline"):
        problem_definitions("mgh02_freudenstein_roth[n=2,x0*1,float64]")
    assert set(KIND_PROBLEMS) <= set(_INLINE_PROBLEMS)


def test_every_kind_property_has_a_script_shape() -> None:
    """No kinds/stepper/functional property is left to "no writer knows this property" (evidence of its shape)."""
    from lbfgs_verify.properties.base import REGISTRY, load_all

    load_all()
    evidence = {"problem": RESUME_PROBLEM, "max_steps": 10, "gtol": 1e-7, "maxiter": 3, "longer": 6, "steps": 8,
                "split": 4, "route": "manifest", "mismatch": {"memory": 5}, "hyperparameters": {}}
    ids = sorted(i for i, p in REGISTRY.items() if p.category in ("kinds", "stepper", "functional"))
    assert ids
    for property_id in ids:
        if property_id.startswith("stepper."):
            continue  # a functional target has no state API; the stepper scripts are run in tests/quality/kinds
        script = reproduction_for_failure("tests.quality.kinds.numpy_lbfgs:CorrectNumpyLBFGS", property_id,
                                          evidence, "a planted message")
        compile(script, property_id, "exec")
        assert f"Reproduction written by lbfgs-verify: {property_id}: a planted message" in script


@pytest.mark.parametrize(("property_id", "evidence"), [
    ("functional.maxiter_prefix", {"problem": RESUME_PROBLEM, "maxiter": 3, "longer": 8}),
    ("functional.callback_stop", {"problem": RESUME_PROBLEM, "maxiter": 3, "longer": 8}),
    ("kinds.wolfe", {"problem": ROSENBROCK, "max_steps": 30, "c1": 1e-3, "c2": 0.9}),
    ("kinds.two_loop_direction", {"problem": ROSENBROCK, "max_steps": 30}),
])
def test_scipy_scripts_call_scipy_alone_and_pass_on_it(property_id: str, evidence: dict, tmp_path: Path) -> None:
    """scipy's L-BFGS-B holds these properties (check scipy:L-BFGS-B passes them), so a script written for a
    failure of them passes on scipy: the driver is scipy.optimize.minimize itself."""
    script = tmp_path / "repro.py"
    script.write_text(reproduction_for_failure("scipy:L-BFGS-B", property_id, evidence, "planted"), encoding="utf-8")
    text = script.read_text(encoding="utf-8")
    assert "lbfgs_verify" not in text.replace("lbfgs-verify", "") and "import torch" not in text
    assert 'scipy.optimize.minimize(fun_and_grad' in text and 'method="L-BFGS-B"' in text
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ran = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env=env, check=False)
    assert ran.returncode == 0 and "no defect: the check passed" in ran.stdout, ran.stdout + ran.stderr


def test_a_torch_target_is_not_sent_to_the_kinds_writer() -> None:
    with pytest.raises(NoReproduction, match="is not a stepper or functional target"):
        reproduction_for_failure("torch.optim:LBFGS", "kinds.wolfe", {"problem": ROSENBROCK, "max_steps": 3}, "x")
