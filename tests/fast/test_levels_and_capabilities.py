"""Levels of claim, declared capabilities (lacks, skips files) and one cause per distinct failure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from lbfgs_verify.cli import main
from lbfgs_verify.engine.capabilities import (
    FEATURES,
    CapabilityError,
    SkipsFileError,
    parse_lacks,
    read_skips_file,
)
from lbfgs_verify.engine.observe import observe
from lbfgs_verify.engine.runs import call_target
from lbfgs_verify.engine.strategies import make_problem, problems
from lbfgs_verify.properties.base import (
    BUDGETS,
    LEVELS,
    REGISTRY,
    CheckContext,
    PropertyFailed,
    Status,
    load_all,
    properties_for,
    register,
    run_property,
)
from lbfgs_verify.properties.runner import run_check, shared_causes, target_version
from lbfgs_verify.targets.load import Target, load_target

load_all()
QUICK = ["--budget", "quick"]
SEEN_DTYPES: list[torch.dtype] = []


class NoComplexLBFGS(torch.optim.LBFGS):
    """torch.optim.LBFGS that refuses complex parameters (records every dtype it is given)."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        params = list(params)
        SEEN_DTYPES.extend(p.dtype for p in params)
        if any(p.is_complex() for p in params):
            raise NotImplementedError("complex parameters are not supported")
        super().__init__(params, **kwargs)


def _target(cls: type = NoComplexLBFGS) -> Target:
    return Target(f"{__name__}:{cls.__name__}", cls)


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    """Properties registered by a test are removed afterwards."""
    load_all()
    before = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


def test_levels_are_nested_and_every_property_has_exactly_one() -> None:
    ids = {level: {p.id for p in properties_for(level)} for level in LEVELS}
    assert ids["properties"] < ids["semantics"] < ids["conformance"]
    for prop in REGISTRY.values():
        assert prop.level in LEVELS
        assert prop.modes == frozenset(LEVELS[LEVELS.index(prop.level):])
    assert all(REGISTRY[i].level == "conformance" for i in REGISTRY if i.startswith("conformance."))
    assert {"mathematics.first_step", "behaviour.iterations", "behaviour.returns_first_loss", "behaviour.defaults",
            "behaviour.history_across_steps", "behaviour.accepts_first_wolfe_point"} <= ids["semantics"] - \
        ids["properties"]


def test_register_maps_the_former_modes_keyword(scratch_registry: None) -> None:
    register("zz.only_conformance", category="zz", title="t", catches="c", modes={"conformance"})(lambda ctx: None)
    register("zz.both", category="zz", title="t", catches="c", modes=("properties", "conformance"))(lambda ctx: None)
    register("zz.default", category="zz", title="t", catches="c")(lambda ctx: None)
    assert REGISTRY["zz.only_conformance"].level == "conformance"
    assert REGISTRY["zz.both"].level == "properties"
    assert REGISTRY["zz.default"].level == "properties"
    with pytest.raises(ValueError, match="not both"):
        register("zz.x", category="zz", title="t", catches="c", level="semantics", modes={"conformance"})
    with pytest.raises(ValueError, match="unknown level"):
        register("zz.y", category="zz", title="t", catches="c", level="bitwise")
    with pytest.raises(ValueError, match="unknown needed feature"):
        register("zz.z", category="zz", title="t", catches="c", needs=("quaternions",))


def test_parse_lacks_names_unknown_features_and_lists_the_known_ones() -> None:
    assert parse_lacks("complex, strong_wolfe") == {"complex", "strong_wolfe"}
    assert parse_lacks(["lr", "max_eval,float16"]) == {"lr", "max_eval", "float16"}
    assert parse_lacks(None) == frozenset()
    with pytest.raises(CapabilityError, match="quaternions") as info:
        parse_lacks("complex,quaternions")
    assert all(name in str(info.value) for name in FEATURES)
    required = {"complex", "float16", "bfloat16", "float32", "float64", "strong_wolfe", "no_line_search", "lr",
                "max_eval", "tolerance_change", "history_size_change", "no_grad_params", "several_tensors"}
    assert required <= set(FEATURES)


def _register_observing_property(name: str) -> None:
    """A property that runs the target on catalogue problems, with an explicit complex example."""

    @register(name, category="zz", title="runs", catches="crashes")
    def check(ctx: CheckContext) -> None:
        @ctx.settings()
        @given(problem=problems(generated=False))
        @example(problem=make_problem("complex_least_squares"))
        def run(problem: Any) -> None:
            observe(ctx.target, problem, {"max_iter": 2, "history_size": 2}, 2)

        run()


def test_undeclared_crash_fails_and_a_declared_lack_is_never_drawn(scratch_registry: None) -> None:
    """Nothing is declared by default: the complex crash fails the property. Declared, complex parameters never
    reach the target (neither drawn nor through an explicit example) and the verdict is on the rest."""
    _register_observing_property("zz.observes")
    prop = REGISTRY["zz.observes"]
    undeclared = run_property(prop, CheckContext(_target(), budget=BUDGETS["quick"]))
    assert undeclared.status is Status.FAIL
    assert any(c.key.startswith("NotImplementedError at ") for c in undeclared.causes), undeclared.detail
    SEEN_DTYPES.clear()
    declared = run_property(prop, CheckContext(_target(), budget=BUDGETS["quick"], lacks=frozenset({"complex"})))
    assert declared.status is Status.PASS, declared.detail
    assert SEEN_DTYPES and not any(d.is_complex for d in SEEN_DTYPES)


def test_property_that_needs_a_lacked_feature_skips_with_the_reason() -> None:
    ctx = CheckContext(Target("torch.optim:LBFGS", torch.optim.LBFGS), budget=BUDGETS["quick"],
                       lacks=frozenset({"strong_wolfe"}))
    result = run_property(REGISTRY["mathematics.strong_wolfe"], ctx)
    assert result.status is Status.SKIP
    assert result.detail == "lacks strong_wolfe (declared)"


def test_every_draw_lacking_gives_a_skip_naming_the_feature_hit() -> None:
    """torch.optim.LBFGS lacking float64 and float32 cannot be given any catalogue problem of change_lr."""
    ctx = CheckContext(Target("torch.optim:LBFGS", torch.optim.LBFGS), budget=BUDGETS["quick"],
                       lacks=frozenset({"float64", "float32"}))
    result = run_property(REGISTRY["mathematics.two_loop_direction"], ctx)
    assert result.status is Status.SKIP
    assert "lacks float64 (declared)" in result.detail


def test_one_cause_per_distinct_failure_each_with_its_own_example(scratch_registry: None) -> None:
    """Two distinct failures of one property (a violated condition and an exception the target raises) are both
    reported, each with its own shrunk example; one does not hide the other."""

    def crash(x: int) -> None:
        raise KeyError(f"no entry {x}")

    @register("zz.two_causes", category="zz", title="t", catches="c")
    def check(ctx: CheckContext) -> None:
        @ctx.settings()
        @given(x=st.integers(-100, 100))
        def run(x: int) -> None:
            if x > 10:
                raise PropertyFailed(f"x = {x} is too large")
            if x < -10:
                call_target("calling the target", lambda: crash(x))

        run()

    result = run_property(REGISTRY["zz.two_causes"], CheckContext(_target(), budget=BUDGETS["ci"]))
    assert result.status is Status.FAIL
    assert len(result.causes) == 2, result.detail
    keys = sorted(c.key for c in result.causes)
    assert keys[0].startswith("KeyError at ") and keys[1].startswith("zz.two_causes: ")
    assert all("x=" in c.detail for c in result.causes), "each cause carries its own falsifying example"
    assert "2 distinct causes" in result.reason
    assert "Explanation:" not in result.detail


def test_shared_causes_group_properties_and_suggest_the_declaration(scratch_registry: None) -> None:
    _register_observing_property("zz.first")
    _register_observing_property("zz.second")
    report = run_check(_target(), "properties", "quick", only=["zz."])
    groups = shared_causes(report.results)
    assert groups, [r.detail for r in report.results]
    top = groups[0]
    assert top.key.startswith("NotImplementedError at ")
    assert set(top.properties) == {"zz.first", "zz.second"}
    assert "complex" in top.suggested_lacks
    assert "declare `--lacks complex" in top.describe()
    assert report.to_json()["shared_causes"][0]["properties"] == ["zz.first", "zz.second"]


def test_skips_file_format_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "skips.txt"
    good.write_text("# comment\n\nstate.snapshot  # known aliasing, pytorch #196083\nresume.pickle  # no pickle\n")
    assert read_skips_file(good, REGISTRY) == {"state.snapshot": "known aliasing, pytorch #196083",
                                               "resume.pickle": "no pickle"}
    no_reason = tmp_path / "no_reason.txt"
    no_reason.write_text("state.snapshot\n")
    with pytest.raises(SkipsFileError, match=r"line 1.*no reason"):
        read_skips_file(no_reason, REGISTRY)
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("nothing.here  # why\n")
    with pytest.raises(SkipsFileError, match="not a property ID"):
        read_skips_file(unknown, REGISTRY)
    with pytest.raises(SkipsFileError, match="cannot be read"):
        read_skips_file(tmp_path / "missing.txt", REGISTRY)


def test_cli_lacks_skips_file_level_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    skips = tmp_path / "skips.txt"
    skips.write_text("state.snapshot  # torch aliases its state (pytorch #196083)\n")
    report_path = tmp_path / "report.json"
    code = main(["check", "torch.optim:LBFGS", *QUICK, "--level", "semantics", "--lacks", "strong_wolfe",
                 "--skips-file", str(skips), "--only", "state.snapshot,mathematics.strong_wolfe",
                 "--json", str(report_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "level semantics" in out
    assert "declared lacks: strong_wolfe (strong_wolfe by --lacks)" in out
    assert "skips file: 1 entry (state.snapshot)" in out
    report = json.loads(report_path.read_text())
    assert report["level"] == "semantics" and report["lacks"] == ["strong_wolfe"]
    assert report["skips"] == {"state.snapshot": "torch aliases its state (pytorch #196083)"}
    statuses = {r["property"]: (r["status"], r["detail"]) for r in report["results"]}
    assert statuses["mathematics.strong_wolfe"] == ("skip", "lacks strong_wolfe (declared)")
    assert statuses["state.snapshot"][0] == "skip" and "pytorch #196083" in statuses["state.snapshot"][1]


def test_cli_rejects_unknown_lacks_and_bad_skips_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "torch.optim:LBFGS", "--lacks", "quaternions"]) == 2
    assert "quaternions" in capsys.readouterr().err
    bad = tmp_path / "skips.txt"
    bad.write_text("state.snapshot\n")
    assert main(["check", "torch.optim:LBFGS", "--skips-file", str(bad)]) == 2
    assert "no reason" in capsys.readouterr().err
    assert main(["check", "torch.optim:LBFGS", "--mode", "semantics", "--list"]) == 0
    assert "behaviour.iterations" in capsys.readouterr().out


def test_lacks_attribute_on_the_target_is_declared(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "examples.peers.torch_strong_wolfe:TorchStrongWolfe", *QUICK, "--only",
                 "mathematics.two_loop_direction"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "declared lacks: no_line_search (no_line_search by attribute lbfgs_verify_lacks)" in out
    assert "lacks no_line_search (declared)" in out


def test_version_of_a_factory_module_is_that_of_the_distribution_behind_it() -> None:
    assert target_version(load_target("examples.peers.torch_strong_wolfe:TorchStrongWolfe")) == \
        f"torch {torch.__version__}, through examples.peers.torch_strong_wolfe"
    assert target_version(load_target("torch.optim:LBFGS")) == f"torch {torch.__version__}"


def test_plugin_lacks_option_and_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlbfgs_target = torch.optim:LBFGS\nlbfgs_budget = quick\n"
                     "lbfgs_lacks = strong_wolfe\nlbfgs_only = mathematics.strong_wolfe\n")
    pytester.makepyfile(test_suite="from lbfgs_verify.suite.test_properties import *  # noqa: F403\n")
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*declared lacks: strong_wolfe (strong_wolfe by ini lbfgs_lacks)*",
                                 "*lacks strong_wolfe (declared)*"])
    result.assert_outcomes(skipped=1)


def test_convergence_collects_every_problem_even_after_a_crash() -> None:
    """convergence.* reports all problems, those that raised included, instead of stopping at the first one;
    with complex declared lacking, the complex problem is left out and the rest pass."""
    prop = REGISTRY["convergence.reaches_f_star"]
    undeclared = run_property(prop, CheckContext(_target(), budget=BUDGETS["quick"]))
    assert undeclared.status is Status.FAIL
    assert "1 problem(s) did not reach f*" in undeclared.detail and "(1 of them raised)" in undeclared.detail
    assert "complex_least_squares" in undeclared.detail and "NotImplementedError" in undeclared.detail
    declared = run_property(prop, CheckContext(_target(), budget=BUDGETS["quick"], lacks=frozenset({"complex"})))
    assert declared.status is Status.PASS, declared.detail


def test_plugin_skips_file_and_level(pytester: pytest.Pytester) -> None:
    skips = pytester.path / "skips.txt"
    skips.write_text("behaviour.iterations  # our schedule evaluates the final point\n")
    pytester.makepyfile(test_suite="from lbfgs_verify.suite.test_properties import *  # noqa: F403\n")
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider", "--lbfgs-target", "torch.optim:LBFGS",
                                "--lbfgs-budget", "quick", "--lbfgs-level", "semantics", "--lbfgs-skips-file",
                                str(skips), "--lbfgs-only", "behaviour.iterations")
    result.stdout.fnmatch_lines(["*level semantics*", "*skips file: 1 entry (behaviour.iterations)*",
                                 "*skipped by the skips file: our schedule evaluates the final point*"])
    result.assert_outcomes(skipped=1)


def test_an_id_registered_by_two_functions_is_refused_and_a_reimported_module_replaces_its_own() -> None:
    """Two checks under one id are refused, naming both; the same function registered again (its module
    imported a second time, as pytester's inline runs do) replaces the first instead of failing collection."""
    from lbfgs_verify.properties.base import REGISTRY, register

    def first(ctx: object) -> None:
        return None

    def other(ctx: object) -> None:
        return None

    try:
        register("zz_test.duplicate", category="zz_test", title="t", catches="c")(first)
        register("zz_test.duplicate", category="zz_test", title="t", catches="c")(first)
        assert REGISTRY["zz_test.duplicate"].check is first
        with pytest.raises(ValueError, match=r"registered twice \(.*first and .*other\)"):
            register("zz_test.duplicate", category="zz_test", title="t", catches="c")(other)
    finally:
        REGISTRY.pop("zz_test.duplicate", None)
