"""``check --jobs N``: properties in worker processes give the verdicts of a serial run."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lbfgs_verify.properties.base import load_all
from lbfgs_verify.properties.runner import property_chunks, run_check, select_properties
from lbfgs_verify.targets.load import Target, load_target


def test_chunks_cover_every_property_once_by_category_largest_first() -> None:
    load_all()
    selected = select_properties("properties")
    chunks = property_chunks(selected)
    assert sorted(p.id for c in chunks for p in c) == sorted(p.id for p in selected)
    assert all(len({p.id.split(".")[0] for p in chunk}) == 1 for chunk in chunks)  # a category shares recordings
    assert [len(c) for c in chunks] == sorted((len(c) for c in chunks), reverse=True)


def test_two_processes_give_the_serial_verdicts() -> None:
    load_all()
    selected = select_properties("properties", ["resume.torch_save", "resume.deepcopy_optimizer", "state.snapshot",
                                                "behaviour.defaults"])
    target = load_target("torch.optim:LBFGS")
    serial = run_check(target, "properties", "quick", properties=selected)
    shown: list[str] = []
    parallel = run_check(target, "properties", "quick", properties=selected, jobs=2,
                         on_result=lambda result: shown.append(result.property))
    assert [r.property for r in parallel.results] == [p.id for p in selected]
    assert shown == [p.id for p in selected]  # the terminal table's rows come in the serial order
    assert [(r.property, r.status, r.detail) for r in parallel.results] == \
        [(r.property, r.status, r.detail) for r in serial.results]
    assert any(r.status.value == "fail" for r in serial.results)  # torch 2.13 fails deepcopy_optimizer


def test_a_target_that_workers_cannot_import_is_refused_before_running() -> None:
    load_all()
    local = Target("tests.nowhere:LBFGS", torch.optim.LBFGS)
    with pytest.raises(ValueError, match="cannot be loaded by its spec"):
        run_check(local, "properties", "quick", properties=select_properties("properties", ["resume.torch_save",
                                                                                           "state.snapshot"]), jobs=2)


def test_auto_jobs_reads_the_environment_and_refuses_a_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from lbfgs_verify.properties.runner import JOBS_VARIABLE, MAX_AUTO_JOBS, auto_jobs

    monkeypatch.setenv(JOBS_VARIABLE, "3")
    assert auto_jobs() == 3
    monkeypatch.delenv(JOBS_VARIABLE)
    assert 1 <= auto_jobs() <= MAX_AUTO_JOBS
    for bad in ("0", "two"):
        monkeypatch.setenv(JOBS_VARIABLE, bad)
        with pytest.raises(ValueError, match=f"{JOBS_VARIABLE}='{bad}' is not a positive integer"):
            auto_jobs()


def test_jobs_auto_gives_one_process_to_a_target_workers_cannot_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--jobs auto`` (the default) never refuses a target: one a worker could not load by its spec runs in this
    process, where an explicit ``--jobs 2`` is refused by the runner (previous test)."""
    from lbfgs_verify.cli import _resolve_jobs
    from lbfgs_verify.properties.runner import JOBS_VARIABLE

    monkeypatch.setenv(JOBS_VARIABLE, "2")
    assert _resolve_jobs("auto", Target("tests.nowhere:LBFGS", torch.optim.LBFGS)) == 1
    assert _resolve_jobs("auto", load_target("torch.optim:LBFGS")) == 2
    assert _resolve_jobs(3, Target("tests.nowhere:LBFGS", torch.optim.LBFGS)) == 3
    assert _resolve_jobs("auto", load_target("torch.optim:LBFGS"), "quick") == 1  # seconds: not worth a worker


def test_report_verdict_sections_in_a_worker_equal_one_process(tmp_path: Any) -> None:
    """``report --jobs 2``: the property, fuzz and resume sections computed in a spawned worker are those of one
    process (timings apart); where the worker fails, this process computes them."""
    import dataclasses

    from lbfgs_verify.problems import mgh_problem
    from lbfgs_verify.report import REPORT_BUDGETS, ReportOptions, collect, without_timings

    budget = dataclasses.replace(REPORT_BUDGETS["quick"], resume_steps=3, fuzz_examples=2)
    options = ReportOptions(out=tmp_path, budget=budget, targets=("tests.fast.report_targets:FlakyLBFGS",),
                            problems=[mgh_problem(1)], problem_set="tiny", default_solvers=("torch-strong_wolfe",),
                            check_only=("state.round_trip_exact",), sections=frozenset({"properties", "fuzz",
                                                                                        "resume"}),
                            benchmark_dir=None, progress=False)
    serial = without_timings(collect(options))
    parallel = without_timings(collect(dataclasses.replace(options, jobs=2)))
    serial_fuzz, parallel_fuzz = serial.pop("fuzz"), parallel.pop("fuzz")
    assert parallel == serial  # every field but the fuzz section's shrunk examples, which are not seeded
    matrices = {spec: report["matrix"] for spec, report in serial_fuzz["reports"].items()}
    assert {spec: report["matrix"] for spec, report in parallel_fuzz["reports"].items()} == matrices
    statuses = {r["property"]: r["status"] for r in serial["check"]["reports"]["tests.fast.report_targets:FlakyLBFGS"]
                ["results"]}
    assert statuses == {"state.round_trip_exact": "fail"}  # torch 2.13's defect, inherited by FlakyLBFGS
    assert set(matrices) == {"torch.optim:LBFGS", "tests.fast.report_targets:FlakyLBFGS"} and serial["resume"]["rows"]


def test_report_runs_the_verdict_sections_itself_when_the_worker_fails(tmp_path: Any) -> None:
    from concurrent.futures import Future, ThreadPoolExecutor

    from lbfgs_verify.report import REPORT_BUDGETS, ReportOptions
    from lbfgs_verify.report.collect import Progress, _join, _solvers_of

    options = ReportOptions(out=tmp_path, budget=REPORT_BUDGETS["quick"], default_solvers=("torch",),
                            check_only=("state.round_trip_exact",), sections=frozenset({"properties"}),
                            benchmark_dir=None, progress=False)
    solvers, targets, _ = _solvers_of(options)
    failed: Future[Any] = Future()
    failed.set_exception(RuntimeError("the worker could not import the target"))
    verdict = _join((ThreadPoolExecutor(1), failed), options, solvers, targets, options.check_only,
                    Progress(0, False), 0)
    assert [r["status"] for r in verdict["check"]["torch.optim:LBFGS"]["results"]] == ["fail"]
