"""The report across target kinds (issue 20): the cause of parting classified from declared conventions and
recorded trial points, a functional target through the report (agreement, resume verdict "not applicable"), a
JAX stepper (jit timing apart from compile), built-ins left out with the extra named, the scipy-twin table; every
number on the page equal to report.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lbfgs_verify.problems import mgh_problem
from lbfgs_verify.report import REPORT_BUDGETS, ReportOptions
from lbfgs_verify.report import kinds as report_kinds
from lbfgs_verify.report.kinds import IterationRecord, pair_agreement, twin_benchmark
from lbfgs_verify.report.kinds_document import twin_benchmark_blocks, why_line
from lbfgs_verify.report.write import write_report
from lbfgs_verify.targets.adapters.scipy_lbfgsb import CONVENTIONS as SCIPY_CONVENTIONS
from tests.fast.test_report import md_tables, table_with

BUDGET = dataclasses.replace(REPORT_BUDGETS["quick"], max_iter=200, stepper_problems=1)
G0 = np.array([3.0, -4.0])
X0 = np.array([1.0, 1.0])


def _record(first_steps: list[float], trials_per_iteration: list[int], n: int) -> IterationRecord:
    """Iterates along -G0 (a synthetic run): iteration k tries ``first_steps[k]`` (default 1) then its other
    trials; the accepted point is the last trial."""
    record = IterationRecord(iterates=[X0.copy()])
    x = X0.copy()
    for k in range(n):
        step = first_steps[k] if k < len(first_steps) else 1.0
        trials = [(x - step * G0 * (0.5 ** j), 0.0) for j in range(trials_per_iteration[k])]
        record.trials.append(trials)
        x = trials[-1][0]
        record.iterates.append(x.copy())
    return record


def test_first_step_rule_is_named_from_the_trial_points() -> None:
    torch_like = dataclasses.replace(report_kinds.TORCH_CONVENTIONS, memory_size=10)
    a = _record([1 / np.abs(G0).sum()], [1, 1, 1], 3)
    b = _record([1 / np.linalg.norm(G0)], [1, 1, 1], 3)
    row = pair_agreement("torch", "scipy", a, b, torch_like, SCIPY_CONVENTIONS, G0)
    assert (row["parts_at"], row["tracked_iterations"], row["cause"]) == (1, 0, "first-step rule")
    assert "torch min(1, 1/||g0||_1)" in row["detail"] and "scipy min(1, 1/||g0||_2)" in row["detail"]


def test_the_first_interpolating_line_search_is_found() -> None:
    a = _record([0.2, 0.1, 0.1], [1, 1, 2], 3)
    b = _record([0.2, 0.1, 0.1], [1, 1, 1], 3)
    row = pair_agreement("a", "b", a, b, SCIPY_CONVENTIONS, SCIPY_CONVENTIONS, G0)
    assert (row["bitwise_iterations"], row["tracked_iterations"], row["parts_at"]) == (2, 2, 3)
    assert row["cause"] == "line search"
    assert "the first line search that interpolates (iteration 3)" in row["detail"]
    assert "a evaluated 2 point(s), b 1" in row["detail"]
    assert why_line(row).startswith("`a` and `b` track for 2 iteration(s) (2 bitwise), part at iteration 3")


def test_memory_size_is_named_past_the_smaller_memory() -> None:
    small = dataclasses.replace(SCIPY_CONVENTIONS, memory_size=2)
    a = _record([0.2, 0.1, 0.1, 0.1], [1, 1, 1, 1], 4)
    b = _record([0.2, 0.1, 0.1, 0.05], [1, 1, 1, 1], 4)
    row = pair_agreement("m2", "m10", a, b, small, SCIPY_CONVENTIONS, G0)
    assert (row["parts_at"], row["cause"]) == (4, "memory size")


def test_equal_runs_never_part_and_a_shorter_one_stops_by_its_rule() -> None:
    a = _record([0.2, 0.1], [1, 1], 2)
    assert pair_agreement("a", "b", a, a, None, None, G0)["cause"] == "never"
    shorter = _record([0.2], [1], 1)
    shorter.stop = "gtol"
    row = pair_agreement("a", "b", a, shorter, None, None, G0)
    assert (row["cause"], row["tracked_iterations"]) == ("stopping rule", 1)
    assert "b stops first, after iteration 1 (gtol)" in row["detail"]


def test_twin_benchmark_table_is_read_with_its_source(tmp_path: Path) -> None:
    assert twin_benchmark(tmp_path)["rows"] == []
    folder = tmp_path / "reports" / "speed"
    folder.mkdir(parents=True)
    info = {"n": 100, "bounds": None, "nit": 50, "median_twin_s": 0.02, "median_scipy_s": 0.002,
            "median_ratio_twin_over_scipy": 10.0, "min_ratio_twin_over_scipy": 4.0, "max_ratio_twin_over_scipy": 15.0,
            "physical_limit_s": 5e-5}
    (folder / "lbfgsb_vs_scipy.json").write_text(json.dumps(
        {"datetime": "2026-12-05T03:13:36", "commit_info": {"id": "e7b27b12ed00"}, "benchmarks": [
            {"extra_info": info}]}), encoding="utf-8")
    twin = twin_benchmark(tmp_path)
    assert twin["source"] == "reports/speed/lbfgsb_vs_scipy.json" and "e7b27b12ed" in twin["note"]
    assert twin["rows"][0]["median_ratio"] == 10.0 and twin["rows"][0]["physical_limit_s"] == 5e-5
    paragraph, table = twin_benchmark_blocks({"benchmarks": {"twin_vs_scipy": twin}})
    assert paragraph.text == twin["note"]  # type: ignore[attr-defined]
    assert table.rows == [["100", "none", "50", "0.02", "0.002", "10", "4–15", "5e-05"]]  # type: ignore[attr-defined]


def _written(out: Path, **changes: Any) -> tuple[dict[str, Any], str]:
    settings: dict[str, Any] = {"default_solvers": ("scipy",), "sections": frozenset({"convergence", "agreement"}),
                                **changes}
    options = ReportOptions(out=out, budget=BUDGET, problems=[mgh_problem(1)], problem_set="rosenbrock",
                            progress=False, **settings)
    write_report(options)
    return (json.loads((out / "report.json").read_text(encoding="utf-8")),
            (out / "index.md").read_text(encoding="utf-8"))


def test_a_functional_target_through_the_report(tmp_path: Path) -> None:
    """scipy's L-BFGS-B as a functional target beside the scipy solver: the same library through two routes is
    bitwise to the end; its resume verdict is "not applicable (no state API)", on the page as in the JSON."""
    data, markdown = _written(tmp_path, targets=("scipy:L-BFGS-B",),
                              sections=frozenset({"convergence", "agreement", "resume"}))
    tid = "target:scipy:L-BFGS-B"
    assert [s["id"] for s in data["solvers"]] == ["scipy", tid]
    runs = {r["solver"]: r for r in data["convergence"]["runs"]}
    assert runs[tid]["status"] == "ok" and runs[tid]["final_f"] == runs["scipy"]["final_f"]
    (row,) = data["agreement"]["kinds"]["rows"]
    assert (row["a"], row["b"], row["cause"]) == ("scipy", tid, "never")
    assert row["bitwise_iterations"] == row["tracked_iterations"] == runs["scipy"]["iterations"]
    assert why_line(row).replace("`", "") in markdown.replace("`", "")
    names = {s["id"]: s["name"] for s in data["solvers"]}
    (matrix,) = [t for t in md_tables(markdown) if t and "" in t[0]]
    assert matrix[0][names[tid]] == f"{row['tracked_iterations']} ({row['bitwise_iterations']})"
    verdicts = {r["solver"]: r for r in data["resume"]["kinds"]}
    assert verdicts[tid]["status"] == verdicts["scipy"]["status"] == "not applicable"
    assert verdicts[tid]["message"] == "not applicable (no state API)"
    (table,) = [t for t in md_tables(markdown) if t and {"property", "verdict", "message"} <= set(t[0])]
    page = {r["solver"]: r for r in table}
    assert page[names[tid]]["message"] == "not applicable (no state API)"


def test_builtins_left_out_name_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lbfgs_verify.targets import kinds as target_kinds

    monkeypatch.setattr(target_kinds, "BUILTINS", {
        "nosuch:LBFGS": ("lbfgs_verify.targets.adapters.optax_lbfgs", "ADAPTER", ("no_such_module_for_test",))})
    solvers, left_out = report_kinds.builtin_solvers(BUDGET)
    assert solvers == []
    assert left_out[0]["spec"] == "nosuch:LBFGS"
    assert 'pip install "lbfgs-verify[' in left_out[0]["reason"] and "no_such_module_for_test" in left_out[0]["reason"]


def test_a_jax_stepper_in_the_report(tmp_path: Path) -> None:
    """optax:lbfgs (a default built-in when the jax extra is installed) on one problem: compiled once, seconds per
    iteration and compile seconds in the JSON and the same on the page; scipy and optax part at iteration 1 on
    Rosenbrock, and the page gives the same line as the JSON."""
    pytest.importorskip("optax")
    data, markdown = _written(tmp_path, default_solvers=("scipy", "optax:lbfgs"))
    (jit,) = data["convergence"]["jit"]
    run = next(r for r in data["convergence"]["runs"] if r["solver"] == "optax:lbfgs")
    assert run["status"] == "ok" and run["solved"] and jit["iterations"] == run["iterations"]
    assert jit["compile_seconds"] > 0 and 0 < jit["median_seconds_per_iteration"] < jit["compile_seconds"]
    page = table_with(markdown, "median seconds per iteration")[0]
    assert float(page["median seconds per iteration"]) == pytest.approx(jit["median_seconds_per_iteration"],
                                                                        rel=1e-3)
    (row,) = data["agreement"]["kinds"]["rows"]
    assert row["cause"] in {"first-step rule", "line search", "rounding"}
    assert why_line(row).replace("`", "") in markdown.replace("`", "")


def test_profiles_leave_out_solvers_the_budget_did_not_run_everywhere() -> None:
    runs = [{"solver": "optax:lbfgs", "problem": "a", "status": "ok", "message": ""},
            {"solver": "optax:lbfgs", "problem": "b", "status": "skipped",
             "message": report_kinds.budget_skip(BUDGET)},
            {"solver": "torch", "problem": "b", "status": "skipped", "message": "lacks float32"}]
    assert report_kinds.profile_solvers(["torch", "optax:lbfgs"], runs) == ["torch"]


@pytest.mark.slow
def test_a_stepper_resume_verdict_comes_from_the_property() -> None:
    """optax:lbfgs's row is ``stepper.resume_fresh_process``'s own result (a fresh process: slow)."""
    pytest.importorskip("optax")
    from lbfgs_verify.report.solvers import report_solvers

    solvers = report_solvers(BUDGET, defaults=("optax:lbfgs", "scipy"))
    rows = {r["solver"]: r for r in report_kinds.resume_verdicts(solvers, "quick", threads=1)}
    assert rows["optax:lbfgs"]["property"] == "stepper.resume_fresh_process"
    assert rows["optax:lbfgs"]["status"] == "pass" and "continued bitwise" in rows["optax:lbfgs"]["message"]
    assert rows["scipy"]["message"] == "not applicable (no state API)"
