"""The state_dict fuzzer: torch's known defects found without special-casing, the reference clean, lacks never
drawn, corruption classes applied where they can be, reproductions standalone, CLI exit codes and JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lbfgs_verify.cli import main
from lbfgs_verify.engine.runs import ROUTES, Scenario
from lbfgs_verify.fuzz import FINDINGS, evaluate_route, run_fuzz
from lbfgs_verify.fuzz.corruptions import CORRUPTIONS, walk
from lbfgs_verify.fuzz.states import FUZZ_PROBLEMS, FuzzState, fuzz_states
from lbfgs_verify.targets.load import load_target

TORCH = load_target("torch.optim:LBFGS")
REFERENCE = load_target("lbfgs_verify.reference:LBFGS")


def _state(split: int = 3, n_after: int = 2, **hp: object) -> FuzzState:
    problem = FUZZ_PROBLEMS["rosenbrock"]
    hyperparameters = {"max_iter": 2, "history_size": 2, **hp}
    return FuzzState("history", problem, Scenario(problem.problem(torch.float64), hyperparameters, split + n_after),
                     split, n_after)


def test_torch_defects_are_found_without_special_casing() -> None:
    report = run_fuzz(TORCH, examples=12, routes=["in-memory", "snapshot", "save-load"],
                      classes=["wrong-size", "non-finite"])
    matrix = report.matrix()
    assert matrix["routes"]["save-load"] == {"exact": 12}
    assert matrix["routes"]["in-memory"].get("diverged", 0) >= 1        # aliasing of an in-memory load
    assert matrix["routes"]["snapshot"].get("diverged", 0) >= 1         # state_dict() is not a snapshot
    assert matrix["classes"]["wrong-size"].get("error-at-step", 0) >= 1  # another flat size loads silently
    assert matrix["classes"]["non-finite"].get("silent", 0) >= 1         # NaN in a finite state accepted
    assert report.exit_code == 1
    for finding in report.findings:
        assert finding.reproduction is not None and "import torch" in finding.reproduction


def test_reference_is_exact_on_every_route_and_rejects_or_warns() -> None:
    routes = [name for name, route in ROUTES.items() if not route.needs_cuda]
    report = run_fuzz(REFERENCE, examples=6, routes=routes, classes=["non-finite", "wrong-size", "hostile-pickle"])
    for route in routes:
        assert report.matrix()["routes"][route] == {"exact": 6}, route
    classes = report.matrix()["classes"]
    assert set(classes["non-finite"]) <= {"warned-at-load", "rejected-at-load", "absorbed"}
    assert set(classes["wrong-size"]) == {"rejected-at-load"}
    assert set(classes["hostile-pickle"]) == {"rejected-at-load"}


def test_route_outcome_names_step_and_key() -> None:
    outcome = evaluate_route(TORCH, ROUTES["in-memory"], _state())
    assert outcome.outcome == "diverged"
    assert "step" in outcome.message and outcome.example["first_differing_step"] >= 3
    assert evaluate_route(TORCH, ROUTES["save-load"], _state()).outcome == "exact"
    crashed = evaluate_route(TORCH, ROUTES["optimizer-copy"], _state())
    assert crashed.outcome == "crashed" and "AttributeError" in crashed.message and "lbfgs.py" in crashed.message


LACKS = frozenset({"complex", "float16", "bfloat16", "strong_wolfe", "lr", "several_tensors", "tolerance_change"})


@settings(max_examples=40)
@given(state=fuzz_states(LACKS))
def test_lacked_features_are_never_drawn(state: FuzzState) -> None:
    hp = state.scenario.hyperparameters
    assert state.scenario.problem.dtype in (torch.float32, torch.float64)
    assert hp.get("line_search_fn") != "strong_wolfe" and "lr" not in hp and "tolerance_change" not in hp
    assert len(state.scenario.problem.start) == 1 and not state.scenario.problem.start[0].is_complex()


def _saved_state() -> dict:
    params = FUZZ_PROBLEMS["coupled_tensors"].problem(torch.float64).make_params()
    optimizer = torch.optim.LBFGS(params, max_iter=2, history_size=2)
    closure = FUZZ_PROBLEMS["coupled_tensors"].problem(torch.float64).make_closure(params)
    for _ in range(4):
        optimizer.step(closure)
    import copy

    return copy.deepcopy(optimizer.state_dict())


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
@settings(max_examples=10)
@given(data=st.data())
def test_each_corruption_changes_the_saved_state(name: str, data: st.DataObject) -> None:
    import warnings

    original = _saved_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        applied = CORRUPTIONS[name].apply(_saved_state(), data.draw)
    assert applied is not None
    assert applied.description and applied.code and applied.key
    if applied.delivery == "bytes":
        assert isinstance(applied.corrupted, bytes)
    else:
        from lbfgs_verify.compare.bitwise import first_difference

        assert first_difference(original, applied.corrupted) is not None
        assert list(walk(applied.corrupted))


def _run_script(tmp_path, text: str) -> subprocess.CompletedProcess:
    script = tmp_path / "repro.py"
    script.write_text(text)
    return subprocess.run([sys.executable, "-W", "ignore", str(script)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


def test_reproduction_is_standalone_and_fails_only_on_the_defect(tmp_path) -> None:
    report = run_fuzz(TORCH, examples=6, routes=["in-memory"], classes=[])
    script = next(r for r in report.findings if r.name == "in-memory").reproduction
    assert "lbfgs_verify" not in script
    failing = _run_script(tmp_path, script)
    assert failing.returncode != 0 and "AssertionError" in failing.stderr
    fixed = _run_script(tmp_path, script.replace("from torch.optim import LBFGS as _target_root",
                                                 "from lbfgs_verify.reference import LBFGS as _target_root"))
    assert fixed.returncode == 0, fixed.stderr
    assert "no defect" in fixed.stdout


def test_cli_usage_errors_exit_2(capsys) -> None:
    assert main(["fuzz", "torch.optim:LBFGS", "--routes", "nowhere"]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["fuzz", "torch.optim:LBFGS", "--lacks", "wings"]) == 2
    assert main(["fuzz", "no_such_module:X"]) == 2
    assert main(["fuzz", "torch.optim:LBFGS", "--database", "redis://nohostname"]) == 2


def test_cli_prints_matrix_writes_json_and_reproductions(tmp_path, capsys) -> None:
    out = tmp_path / "fuzz.json"
    code = main(["fuzz", "torch.optim:LBFGS", "--examples", "4", "--routes", "in-memory,save-load", "--classes",
                 "non-finite", "--json", str(out), "--database", str(tmp_path / "db"), "--repro-dir",
                 str(tmp_path / "repro")])
    printed = capsys.readouterr().out
    assert code == 1
    assert "route" in printed and "exact" in printed and "diverged" in printed
    data = json.loads(out.read_text())
    assert data["target"] == "torch.optim:LBFGS" and data["versions"]["torch"] == torch.__version__
    for entry in data["results"]:
        assert {"kind", "route", "class", "outcome", "message", "example"} <= set(entry)
        assert entry["kind"] in ("valid", "corrupt")
    assert any(e["outcome"] in FINDINGS for e in data["results"])
    assert list((tmp_path / "repro").glob("*.py"))


def test_cli_clean_target_exits_0(tmp_path) -> None:
    assert main(["fuzz", "lbfgs_verify.reference:LBFGS", "--examples", "3", "--routes", "save-load", "--classes",
                 "truncated-file", "--database", "none", "--repro-dir", str(tmp_path)]) == 0


def test_bad_options_are_values_no_constructor_accepts() -> None:
    """param-groups-mismatch only writes hyperparameters no optimizer could have saved: the reference's
    constructor refuses each; max_iter=0 is not one of them (torch runs it: no iteration)."""
    from lbfgs_verify.fuzz.corruptions import _BAD_OPTIONS
    from lbfgs_verify.reference import LBFGS

    for key, value in _BAD_OPTIONS:
        with pytest.raises((ValueError, TypeError), match=key):
            LBFGS([torch.zeros(2, requires_grad=True)], **{key: value})
    assert "max_iter" not in {key for key, _ in _BAD_OPTIONS}
    torch.optim.LBFGS([torch.zeros(2, requires_grad=True)], max_iter=0)


def _diverged_state() -> FuzzState:
    problem = FUZZ_PROBLEMS["rosenbrock"]
    hyperparameters = {"lr": 100.0, "max_iter": 3, "history_size": 3, "line_search_fn": None}
    return FuzzState("diverged", problem, Scenario(problem.problem(torch.float32), hyperparameters, 6), 5, 1)


@settings(max_examples=5)
@given(data=st.data())
def test_warnings_of_the_undamaged_state_do_not_count_as_noticing(data: st.DataObject) -> None:
    """A diverged state warns at load anyway: that warning is not the target noticing a corruption."""
    from lbfgs_verify.fuzz import evaluate_corruption

    state = _diverged_state()
    too_long = evaluate_corruption(REFERENCE, CORRUPTIONS["history-too-long"], state, data.draw)
    assert too_long is not None and too_long.outcome == "rejected-at-load", too_long
    assert "old_dirs" in too_long.message
    extra = evaluate_corruption(REFERENCE, CORRUPTIONS["extra-key"], state, data.draw)
    assert extra is not None and extra.outcome in ("absorbed", "rejected-at-load"), extra


def test_reference_rejects_every_structural_corruption() -> None:
    """Issue 8's contract on the reference: the damaged states it could never have produced are rejected at load."""
    classes = ["wrong-dtype", "history-too-long", "history-inconsistent", "param-groups-mismatch", "bad-counter"]
    report = run_fuzz(REFERENCE, examples=8, routes=[], classes=classes)
    matrix = report.matrix()["classes"]
    for name in classes:
        assert set(matrix[name]) <= {"rejected-at-load"}, (name, matrix[name])
    assert report.exit_code == 0


def test_a_target_with_its_own_argument_names_is_fuzzed_through_its_translation() -> None:
    """LBFGSB names its options like scipy; its lbfgs_verify_arguments translation lets the fuzzer run it."""
    target = load_target("lbfgs_verify.reference:LBFGSB")
    optimizer = target.make([torch.zeros(2, requires_grad=True)], max_iter=2, history_size=3,
                            line_search_fn="strong_wolfe")
    assert optimizer.param_groups[0]["max_iter_per_step"] == 2 and optimizer.param_groups[0]["maxcor"] == 3
    with pytest.raises(TypeError, match="lr"):
        target.make([torch.zeros(2, requires_grad=True)], lr=0.5)
    assert target.make([torch.zeros(2, requires_grad=True)], maxcor=4).param_groups[0]["maxcor"] == 4
    report = run_fuzz(target, examples=3, routes=["save-load", "in-memory"], classes=["non-finite", "wrong-size"])
    matrix = report.matrix()
    assert matrix["routes"]["save-load"] == {"exact": 3} and matrix["routes"]["in-memory"] == {"exact": 3}
    assert matrix["classes"]["non-finite"] == {"warned-at-load": 3}
    assert matrix["classes"]["wrong-size"] == {"rejected-at-load": 3}


def test_corruptions_use_the_targets_own_option_names() -> None:
    """history-too-long and the bad options reach LBFGSB's maxcor through its translation (torch's name there is
    history_size), and it rejects them naming the key."""
    from lbfgs_verify.targets.load import option_names

    target = load_target("lbfgs_verify.reference:LBFGSB")
    assert option_names(target.factory)["history_size"] == "maxcor" and "lr" not in option_names(target.factory)
    report = run_fuzz(target, examples=6, routes=[], classes=["history-too-long", "param-groups-mismatch"])
    classes = report.matrix()["classes"]
    assert classes["history-too-long"] == {"rejected-at-load": 6}
    assert set(classes["param-groups-mismatch"]) == {"rejected-at-load"}
    too_long = next(r for r in report.results if r.name == "history-too-long")
    assert "maxcor" in too_long.message and "names the key" in too_long.message


@settings(max_examples=30)
@given(data=st.data())
def test_bad_counter_makes_a_fraction_only_of_an_integer_that_counted(data: st.DataObject) -> None:
    """``t`` is the int lr=1 after these steps, but a float after an lr edit: a fraction there is a state the
    optimizer could produce. Counters (func_evals, n_iter) counted across the run's states and may get one."""
    from lbfgs_verify.fuzz.corruptions import Context
    from lbfgs_verify.reference import LBFGS

    problem = FUZZ_PROBLEMS["rosenbrock"].problem(torch.float64)
    params = problem.make_params()
    optimizer = LBFGS(params, lr=1, max_iter=2, history_size=2)
    closure = problem.make_closure(params)
    states = []
    for _ in range(3):
        optimizer.step(closure)
        states.append(optimizer.state_dict())
    later = states[1:]  # t = lr = 1 (int) after these steps; the counters still count
    assert all(s["state"][0]["t"] == 1 and isinstance(s["state"][0]["t"], int) for s in later)
    saved = optimizer.state_dict()
    applied = CORRUPTIONS["bad-counter"].apply(saved, data.draw, Context(run_states=tuple(later)))
    assert applied is not None
    if applied.key == "t":
        assert saved["state"][0]["t"] == -2, applied.description
    else:
        assert applied.key in ("func_evals", "n_iter")


def test_names_importable_without_torch_equal_the_registries() -> None:
    from lbfgs_verify.engine.runs import ROUTES
    from lbfgs_verify.fuzz.corruptions import CORRUPTIONS
    from lbfgs_verify.fuzz.names import CLASS_NAMES, ROUTE_NAMES

    assert tuple(ROUTES) == ROUTE_NAMES
    assert tuple(CORRUPTIONS) == CLASS_NAMES


def test_help_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, lbfgs_verify.cli as c; c.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


@settings(max_examples=3)
@given(data=st.data())
def test_a_corruption_is_judged_only_where_the_undamaged_load_continues_exactly(data: st.DataObject) -> None:
    """Differential control (issue 19): torch's LBFGS keeping n_iter outside its state diverges after every load,
    the undamaged one too, so a damaged counter (func_evals, or t = 1 as an int) that loads silently is not
    blamed (``every-load-diverges``, not ``silent``); torch itself (its undamaged load is exact) is judged as usual."""
    from lbfgs_verify.fuzz import evaluate_corruption
    from lbfgs_verify.fuzz.outcomes import EVERY_LOAD_DIVERGES, FINDINGS
    from lbfgs_verify.targets.load import Target
    from tests.quality.property_claim_bugs import TorchLostIterationCounter

    lost = Target("tests.quality.property_claim_bugs:TorchLostIterationCounter", TorchLostIterationCounter)
    outcome = evaluate_corruption(lost, CORRUPTIONS["bad-counter"], _state(), data.draw)
    assert outcome is not None and outcome.outcome == EVERY_LOAD_DIVERGES, outcome
    assert EVERY_LOAD_DIVERGES not in FINDINGS
    assert outcome.applied.key in ("func_evals", "t"), outcome.applied  # the integers torch's state keeps
    assert "the undamaged state loaded the same way differs" in outcome.message
    assert outcome.example["undamaged_load"].startswith("differs at step")
    torch_outcome = evaluate_corruption(TORCH, CORRUPTIONS["non-finite"], _state(), data.draw)
    assert torch_outcome is not None and torch_outcome.outcome != EVERY_LOAD_DIVERGES, torch_outcome


def test_every_load_diverges_is_said_once() -> None:
    from lbfgs_verify.fuzz.outcomes import EVERY_LOAD_DIVERGES
    from lbfgs_verify.fuzz.runner import EVERY_LOAD_MESSAGE
    from lbfgs_verify.targets.load import Target
    from tests.quality.property_claim_bugs import TorchLostIterationCounter

    lost = Target("tests.quality.property_claim_bugs:TorchLostIterationCounter", TorchLostIterationCounter)
    report = run_fuzz(lost, examples=4, routes=["save-load"], classes=["bad-counter", "non-finite"])
    classes = report.matrix()["classes"]
    assert all("silent" not in counts for counts in classes.values()), classes
    assert any(counts.get(EVERY_LOAD_DIVERGES) for counts in classes.values()), classes
    assert [n for n in report.notes if n.startswith(EVERY_LOAD_MESSAGE)] == report.notes and len(report.notes) == 1
    assert report.to_json()["notes"] == report.notes
    assert report.matrix()["routes"]["save-load"].get("diverged", 0) >= 1  # the resume failure is still found
    assert all(case.outcome != EVERY_LOAD_DIVERGES for case in report.findings)
