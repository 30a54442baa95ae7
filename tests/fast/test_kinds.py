"""Target kinds (lbfgs_verify.targets.kinds): built-in adapter names, the refusal without the jax extra, the skips
across kinds, the default serializer's template check, the problems' jax.numpy definitions against torch, and cheap
property runs on the built-in adapters (quick budget, one or two properties each)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from lbfgs_verify.cli import main
from lbfgs_verify.problems.frameworks import KIND_PROBLEMS, kind_problem
from lbfgs_verify.properties.base import BUDGETS, REGISTRY, CheckContext, Status, load_all, run_property
from lbfgs_verify.properties.runner import run_check
from lbfgs_verify.targets.kinds import FUNCTIONAL, STEPPER, kind_of
from lbfgs_verify.targets.load import TargetLoadError, load_target

load_all()


def test_scipy_and_reference_are_functional_targets() -> None:
    for spec in ("scipy:L-BFGS-B", "lbfgs_verify.reference:minimize_lbfgsb"):
        assert kind_of(load_target(spec)) == FUNCTIONAL
    assert kind_of(load_target("torch.optim:LBFGS")) == "torch"


def test_jax_targets_are_refused_naming_the_extra_without_jax(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jax", None)  # `import jax` raises ImportError, as when it is not installed
    for spec in ("optax:lbfgs", "jaxopt:LBFGS"):
        with pytest.raises(TargetLoadError, match=r'pip install "lbfgs-verify\[jax\]"'):
            load_target(spec)
    report = run_check(load_target("scipy:L-BFGS-B"), "properties", "quick", only=["functional.callback_stop"])
    assert [r.status for r in report.results] == [Status.PASS]


def test_cli_refuses_a_jax_target_without_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "jax", None)
    assert main(["check", "optax:lbfgs", "--budget", "quick"]) == 2
    assert 'pip install "lbfgs-verify[jax]"' in capsys.readouterr().err


def test_properties_of_other_kinds_skip_saying_why() -> None:
    torch_ctx = CheckContext(target=load_target("torch.optim:LBFGS"), budget=BUDGETS["quick"])
    result = run_property(REGISTRY["kinds.descent"], torch_ctx)
    assert (result.status, result.detail) == (
        Status.SKIP, "not applicable (torch optimizer target: the torch properties check it)")
    scipy_ctx = CheckContext(target=load_target("scipy:L-BFGS-B"), budget=BUDGETS["quick"])
    for pid, reason in (("resume.torch_save", "not applicable (functional target: no step(closure)/state_dict API)"),
                        ("stepper.resume_fresh_process", "not applicable (no state API)")):
        result = run_property(REGISTRY[pid], scipy_ctx)
        assert (result.status, result.detail) == (Status.SKIP, reason)


def test_cli_check_scipy_runs_the_functional_properties(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "scipy:L-BFGS-B", "--budget", "quick", "--only", "functional.maxiter_prefix,kinds.wolfe",
                 "--no-baseline"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "target scipy:L-BFGS-B (version scipy " in out
    assert "2 passed, 0 failed, 0 errors, 0 skipped" in out


def test_reference_minimize_lbfgsb_follows_its_declared_two_loop_direction() -> None:
    ctx = CheckContext(target=load_target("lbfgs_verify.reference:minimize_lbfgsb"), budget=BUDGETS["quick"])
    assert run_property(REGISTRY["kinds.two_loop_direction"], ctx).status == Status.PASS


# ---------------------------------------------------------------------------------------------- JAX (extra)


def test_jax_problems_agree_with_the_torch_definitions() -> None:
    jax = pytest.importorskip("jax")
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        for name in KIND_PROBLEMS:
            problem = kind_problem(name)
            value_and_grad = jax.jit(jax.value_and_grad(problem.jax_objective()))
            for x in (problem.x0, problem.x0 + rng.normal(size=problem.x0.shape)):
                f_torch, g_torch = problem.fun_and_grad()(x)
                f_jax, g_jax = value_and_grad(jax.numpy.asarray(x))
                np.testing.assert_allclose(float(f_jax), f_torch, rtol=1e-12, atol=1e-12, err_msg=name)
                np.testing.assert_allclose(np.asarray(g_jax), g_torch, rtol=1e-10, atol=1e-10, err_msg=name)


def test_default_serializer_round_trips_and_refuses_another_memory() -> None:
    jax = pytest.importorskip("jax")
    from lbfgs_verify.targets.serialize import StateMismatch, deserialize, serialize

    adapter = load_target("optax:lbfgs").adapter  # type: ignore[attr-defined]
    with jax.enable_x64(True):
        params = jax.numpy.arange(4.0)
        state = adapter.make().init(params)
        blob = serialize((params, state), {})
        restored = deserialize(blob, (params, adapter.make().init(params)), {})
        for a, b in zip(jax.tree_util.tree_leaves((params, state)), jax.tree_util.tree_leaves(restored), strict=True):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes() and np.asarray(a).dtype == np.asarray(b).dtype
        with pytest.raises(StateMismatch, match=r"leaf .*\(10, 4\).*\(5, 4\)"):
            deserialize(blob, (params, adapter.make(memory_size=5).init(params)))
        with pytest.raises(StateMismatch, match="hyperparameters"):
            deserialize(blob, (params, state), {"memory_size": 5})


def test_optax_mismatched_state_is_a_finding_not_a_failure() -> None:
    pytest.importorskip("optax")
    target = load_target("optax:lbfgs")
    assert kind_of(target) == STEPPER
    result = run_property(REGISTRY["stepper.load_checked_against_template"],
                          CheckContext(target=target, budget=BUDGETS["quick"]))
    assert result.status == Status.PASS, result.detail
    assert result.detail.startswith("finding: optax accepts a default-memory state under memory_size=5: no error")


# ------------------------------------------------------------------ the other built-in adapters (jax and peers extras)


def test_builtin_targets_are_refused_naming_their_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("jax", "lbfgs", "lbfgsb", "torchmin"):
        monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError, as when not installed
    for spec, extra in (("optimistix:LBFGS", "jax"), ("tfp:lbfgs_minimize", "jax,peers"), ("pylbfgs", "peers"),
                        ("lbfgsb", "peers"), ("torchmin:minimize", "peers")):
        with pytest.raises(TargetLoadError, match=rf'pip install "lbfgs-verify\[{extra}\]"'):
            load_target(spec)


def test_own_resume_path_is_not_applicable_without_one() -> None:
    ctx = CheckContext(target=load_target("scipy:L-BFGS-B"), budget=BUDGETS["quick"])
    result = run_property(REGISTRY["kinds.own_resume_path"], ctx)
    assert (result.status, result.detail) == (Status.SKIP, "not applicable (the library has no own resume path)")


def test_resume_modes_beyond_quick_add_eager_and_float32() -> None:
    from lbfgs_verify.properties.kinds import resume_modes

    ctx = CheckContext(target=load_target("scipy:L-BFGS-B"), budget=BUDGETS["quick"])
    assert [(m.jit, m.x64, m.dtype) for m in resume_modes(ctx)] == [(True, True, "float64")]
    ctx = CheckContext(target=load_target("scipy:L-BFGS-B"), budget=BUDGETS["ci"])
    assert [(m.jit, m.x64, m.dtype) for m in resume_modes(ctx)] == [
        (True, True, "float64"), (False, True, "float64"), (True, False, "float32")]


def test_pylbfgs_passes_the_functional_and_two_loop_checks() -> None:
    pytest.importorskip("lbfgs")
    target = load_target("pylbfgs")
    assert kind_of(target) == FUNCTIONAL and target.adapter.conventions.memory_size == 6  # type: ignore[attr-defined]
    ctx = CheckContext(target=target, budget=BUDGETS["quick"])
    for pid in ("functional.maxiter_prefix", "functional.callback_stop", "kinds.two_loop_direction"):
        result = run_property(REGISTRY[pid], ctx)
        assert result.status == Status.PASS, (pid, result.detail)


def test_lbfgsb_checkpoint_resume_is_a_finding() -> None:
    pytest.importorskip("lbfgsb")
    ctx = CheckContext(target=load_target("lbfgsb"), budget=BUDGETS["quick"])
    assert run_property(REGISTRY["functional.maxiter_prefix"], ctx).status == Status.PASS
    result = run_property(REGISTRY["kinds.own_resume_path"], ctx)
    assert result.status == Status.FAIL
    assert result.detail.startswith(
        "finding (lbfgsb's own resume path minimize_lbfgsb(x0=result.x, checkpoint=result))")
    assert "max over rebuilt past iterates of max|x - nearest visited iterate|" in result.detail


def test_torchmin_callback_stop_returns_the_previous_iterate() -> None:
    pytest.importorskip("torchmin")
    ctx = CheckContext(target=load_target("torchmin:minimize"), budget=BUDGETS["quick"])
    assert run_property(REGISTRY["functional.maxiter_prefix"], ctx).status == Status.PASS
    result = run_property(REGISTRY["functional.callback_stop"], ctx)
    assert result.status == Status.FAIL
    assert "it is iterate 5, the callback was handed iterate 6" in result.detail


def test_optimistix_own_serializer_round_trips_and_refuses_another_memory() -> None:
    jax = pytest.importorskip("jax")
    pytest.importorskip("optimistix")
    from lbfgs_verify.targets.serialize import StateMismatch

    adapter = load_target("optimistix:LBFGS").adapter  # type: ignore[attr-defined]
    with jax.enable_x64(True):
        params = jax.numpy.arange(4.0)
        stepper = adapter.make()
        params1, state, info = stepper.step(params, stepper.init(params), lambda x: jax.numpy.sum((x - 1.0) ** 2))
        assert not bool(info["line_search_failed"])
        blob = stepper.serialize((params1, state))
        restored = stepper.deserialize(blob, (params, stepper.init(params)))
        for a, b in zip(jax.tree_util.tree_leaves((params1, state)), jax.tree_util.tree_leaves(restored),
                        strict=True):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
        with pytest.raises(StateMismatch, match=r"changed shape from \(5, 4\) in `like` to \(10, 4\) on disk"):
            stepper.deserialize(blob, (params, adapter.make(history_length=5).init(params)))


@pytest.mark.slow
def test_tfp_previous_optimizer_results_resumes_bitwise() -> None:
    jax = pytest.importorskip("jax")
    pytest.importorskip("tensorflow_probability.substrates.jax")
    from lbfgs_verify.problems.frameworks import RESUME_PROBLEM, jax_objective

    adapter = load_target("tfp:lbfgs_minimize").adapter  # type: ignore[attr-defined]
    with jax.enable_x64(True):
        x0 = jax.numpy.asarray(kind_problem(RESUME_PROBLEM).x0)
        result = adapter.own_resume(jax_objective(RESUME_PROBLEM), x0, split=3, steps=6, jit=False)
    assert result.resumed.tobytes() == result.uninterrupted.tobytes()
    assert result.counters["num_iterations"] == (6, 6)


@pytest.mark.slow
def test_jaxopt_warm_start_recomputes_and_resets_its_counters() -> None:
    jax = pytest.importorskip("jax")
    pytest.importorskip("jaxopt")
    from lbfgs_verify.problems.frameworks import RESUME_PROBLEM, jax_objective

    adapter = load_target("jaxopt:LBFGS").adapter  # type: ignore[attr-defined]
    with jax.enable_x64(True):
        x0 = jax.numpy.asarray(kind_problem(RESUME_PROBLEM).x0)
        result = adapter.own_resume(jax_objective(RESUME_PROBLEM), x0, split=7, steps=10, jit=True)
    whole, resumed = result.counters["num_fun_eval"]
    assert resumed < whole  # the warm start counts from 1 again (jaxopt/_src/lbfgs.py init_state)
    assert result.counters["iter_num"] == (10, 10)
    assert set(result.at_resume) == {"|f recomputed - f saved|", "max|g recomputed - g saved|"}
