"""Golden traces (``reference/traces``) and ``lbfgs-verify record`` / ``drift``: the shipped records are complete
and small and hold several kernel sets, the installed libraries reproduce them (bitwise under a recorded kernel
set, within the measured tolerance under another), and a change is reported with its first iteration and quantity
(a changed line-search decision named as such)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lbfgs_verify.cli import main
from lbfgs_verify.compare import golden_traces as gt

TRACES = Path(__file__).resolve().parents[2] / "reference" / "traces"
SUBSET = "mgh01_rosenbrock[n=2,x0*1,float"  # 8 torch runs (4 sets x 2 dtypes), 1 scipy run
ROSENBROCK64_WOLFE = "mgh01_rosenbrock[n=2,x0*1,float64]/wolfe_m10_it1"


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_shipped_records_state_their_environment_cover_the_suite_and_stay_small() -> None:
    files = sorted(TRACES.glob("*.json"))
    assert [f.name for f in files] == [gt.SCIPY_FILE, gt.TORCH_FILE]
    assert sum(f.stat().st_size for f in files) < 1_500_000  # several kernel sets, stored as differences
    for f in files:
        data = _load(f)
        assert data["format"] == gt.FORMAT_VERSION and data["only"] is None and data["runs"] == len(data["traces"])
        for section in data["sections"]:
            env = section["environment"]
            for key in ("python", "torch", "numpy", "scipy", "threads"):
                assert env[key], (f.name, key)
            assert set(env["blas"]) == {"torch", "numpy", "scipy"}
            assert env["cpu"]["torch_capability"] and isinstance(env["cpu"]["simd_flags"], list)
        # every torch CPU capability has a record, each with the variables that forced it
        capabilities = {s["kernels"]["torch_capability"]: s["environment"].get("forced", {}) for s in data["sections"]}
        assert {"AVX512", "AVX2", "DEFAULT"} <= set(capabilities)
        assert capabilities["AVX2"]["ATEN_CPU_CAPABILITY"] == "avx2"
        assert capabilities["DEFAULT"]["ATEN_CPU_CAPABILITY"] == "default"
    torch_ids = {t["id"] for t in _load(TRACES / gt.TORCH_FILE)["traces"]}
    problems64 = [p.name for p in gt.golden_problems(gt._DTYPES["float64"])]
    assert len([p for p in problems64 if p.startswith("mgh")]) == 35
    assert any(p.startswith("spd_quadratic") for p in problems64)
    for problem in problems64:
        for dtype in ("float32", "float64"):
            for hp_set in gt.TORCH_HYPERPARAMETER_SETS:
                assert f"{problem.replace('float64', dtype)}/{hp_set}" in torch_ids
    line_searches = {hp.get("line_search_fn") for hp in gt.TORCH_HYPERPARAMETER_SETS.values()}
    assert line_searches == {None, "strong_wolfe"}
    scipy_ids = {t["id"] for t in _load(TRACES / gt.SCIPY_FILE)["traces"]}
    assert scipy_ids == {f"{p}/lbfgsb" for p in problems64}


def test_a_scipy_record_holds_what_scipy_reports() -> None:
    record = gt.read_record_file(TRACES / gt.SCIPY_FILE)
    trace = next(t for t in record.traces if t.id.startswith("mgh01_rosenbrock"))
    assert trace.stop.startswith("status 0: CONVERGENCE")
    nit = int(trace.stop.split("nit ")[1].split(",")[0])
    nfev = int(trace.stop.split("nfev ")[1])
    assert len(trace.iterates) == nit
    assert 1 + sum(it.evals for it in trace.iterates) <= nfev  # x0 and the iterations' evaluations
    assert abs(float(trace.iterates[-1].f)) < 1e-10  # Rosenbrock's f* = 0


@pytest.mark.parametrize("name", [gt.TORCH_FILE, gt.SCIPY_FILE])
def test_installed_libraries_reproduce_the_shipped_records(name: str) -> None:
    report = gt.compare_file(TRACES / name, select=SUBSET)
    assert report.runs, "the subset selected no run"
    if report.same_environment:  # the recording machine: bit for bit
        assert not report.changed, "\n".join(report.lines())
    assert report.ok, "\n".join(report.lines())


@pytest.fixture
def fresh_record(tmp_path: Path) -> Path:
    """A torch record of the Rosenbrock subset made now, in this environment."""
    path = tmp_path / "torch.json"
    gt.record_specs(gt.torch_like_specs(__import__("torch").optim.LBFGS), gt.TORCH_OPTIMIZER, "torch-step", 1,
                    SUBSET).write(path)
    return path


def _edit_iterate(path: Path, run_id: str, iteration: int, *, f_factor: float | None = None,
                  f_ulps: int = 0, evals: int | None = None, torch_version: str | None = None) -> None:
    data = _load(path)
    trace = next(t for t in data["traces"] if t["id"] == run_id)
    row = trace["iterates"][iteration - 1]
    if f_ulps:
        row[2] = float(np.nextafter(row[2], math.inf))
    if f_factor is not None:
        row[2] = row[2] * f_factor
    if evals is not None:
        row[3] = evals
    if torch_version is not None:
        for section in data["sections"]:
            section["environment"]["torch"] = torch_version
    path.write_text(json.dumps(data), encoding="utf-8")


def test_same_environment_demands_bits_and_names_the_first_changed_iteration(fresh_record: Path) -> None:
    assert gt.compare_file(fresh_record).ok
    _edit_iterate(fresh_record, ROSENBROCK64_WOLFE, 3, f_ulps=1)
    report = gt.compare_file(fresh_record)
    assert report.same_environment and not report.ok
    (changed,) = report.changed
    assert (changed.id, changed.first_iteration) == (ROSENBROCK64_WOLFE, 3)
    assert changed.quantity.startswith("f: ") and "1 ULP" in changed.quantity
    text = "\n".join(report.lines())
    assert "changed torch.optim:LBFGS on 1 of 8 runs from iteration 3 (first differing quantity f: " in text
    assert "NOT bitwise although the environment is the same" in text


def test_other_torch_version_is_judged_within_tolerance_and_named(fresh_record: Path) -> None:
    import torch

    _edit_iterate(fresh_record, ROSENBROCK64_WOLFE, 3, f_ulps=1, torch_version="2.0.0")
    report = gt.compare_file(fresh_record)
    assert report.environment_changes[0] == f"torch 2.0.0 -> {torch.__version__}"
    assert report.ok and report.changed[0].within_tolerance
    assert f"torch 2.0.0 -> {torch.__version__} changed torch.optim:LBFGS on 1 of 8 runs from iteration 3" in \
        "\n".join(report.lines())
    _edit_iterate(fresh_record, ROSENBROCK64_WOLFE, 2, f_factor=1 + 1e-6)  # 1e-6 relative: beyond rtol 1e-9
    report = gt.compare_file(fresh_record)
    assert not report.ok
    assert report.changed[0].first_iteration == 2 and not report.changed[0].within_tolerance
    assert "BEYOND tolerance" in "\n".join(report.lines())


def test_an_evaluation_count_change_is_reported_as_such(fresh_record: Path) -> None:
    _edit_iterate(fresh_record, ROSENBROCK64_WOLFE, 4, evals=99, torch_version="2.0.0")
    report = gt.compare_file(fresh_record)
    (changed,) = report.changed
    assert changed.first_iteration == 4
    assert changed.quantity.startswith("line-search decision changed at iteration 4 (evaluations 99 -> ")
    assert changed.quantity.endswith("-> " + str(gt.record_torch_like(
        __import__("torch").optim.LBFGS, next(p for p in gt.golden_problems(__import__("torch").float64)
                                              if p.name.startswith("mgh01_")),
        gt.TORCH_HYPERPARAMETER_SETS["wolfe_m10_it1"], gt.TORCH_STEPS, "x").iterates[3].evals) + ")")
    assert not report.ok  # counts must agree within the horizon across versions
    assert "line-search decision changed at iteration 4" in changed.tolerance_break


UNFORCED = pytest.mark.skipif(
    any(os.environ.get(v) for v in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")),
    reason="records or removes this machine's 'native' kernel set: meaningful only in a process whose CPU "
           "capability is not forced (the forced capabilities are checked in subprocesses by the tests above)")


@UNFORCED
def test_cli_record_and_drift_a_target_of_your_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = tmp_path / "mine.json"
    only = ["--only", "mgh01_rosenbrock[n=2,x0*1,float64]/wolfe"]
    assert main(["record", "--target", "lbfgs_verify.reference:LBFGS", "--output", str(record), "--kernel-sets",
                 "native", *only]) == 0
    assert gt.read_record_file(record).optimizer == "lbfgs_verify.reference:LBFGS"
    assert main(["drift", "--records", str(record), "--target", "lbfgs_verify.reference:LBFGS"]) == 0
    assert "bitwise identical on every run" in capsys.readouterr().out
    # A planted bug (two-loop with the wrong sign) against torch's records: changed from iteration 2.
    code = main(["drift", "--records", str(TRACES / gt.TORCH_FILE), "--target",
                 "tests.quality.planted_bugs:WrongSignTwoLoop", *only])
    out = capsys.readouterr().out
    assert code == 1
    assert "optimizer torch.optim:LBFGS -> tests.quality.planted_bugs:WrongSignTwoLoop" in out
    assert "BEYOND tolerance" in out and "drift: CHANGED" in out


def test_cli_bad_input_is_a_clear_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drift", "--records", str(tmp_path / "missing.json")]) == 2
    assert "missing.json does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 99}', encoding="utf-8")
    assert main(["drift", "--records", str(bad)]) == 2
    assert f"format 99 is not {gt.FORMAT_VERSION}" in capsys.readouterr().err
    assert main(["record", "--target", "lbfgs_verify.reference:LBFGS"]) == 2
    assert "needs --output FILE" in capsys.readouterr().err
    assert main(["drift", "--records", str(TRACES / gt.SCIPY_FILE), "--target", "torch.optim:LBFGS"]) == 2
    assert "torch protocol" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json.*"))  # nothing written beside the inputs


REAL_OLD_RECORD = Path(__file__).parent / "data" / "torch_2.4.1_lbfgs_subset.json"
"""8 runs recorded by ``lbfgs-verify record`` under torch 2.4.1+cu121 (MKL 2022.2) on the machine that made the
shipped records: a real drift, not an edited one."""


@pytest.mark.skipif(tuple(int(v) for v in __import__("torch").__version__.split(".")[:2]) < (2, 5),
                    reason="the max_eval fix of pytorch PR #135026 is in torch >= 2.5")
def test_a_record_made_by_torch_2_4_shows_the_max_eval_fix_and_rounding() -> None:
    import torch

    report = gt.compare_file(REAL_OLD_RECORD)
    assert report.environment_changes[0] == f"torch 2.4.1+cu121 -> {torch.__version__}"
    by_id = {r.id: r for r in report.runs}
    meyer = by_id["mgh10_meyer[n=3,x0*1,float32]/wolfe_m10_it1"]
    # torch 2.4 let strong Wolfe use 25 evaluations whatever max_eval left; torch >= 2.5 passes max_eval - used.
    assert (meyer.first_iteration, meyer.quantity) == (
        1, "line-search decision changed at iteration 1 (evaluations 27 -> 26)")
    assert not meyer.within_tolerance and not report.ok
    quadratic = by_id["spd_quadratic[n=30,kappa=100,seed=1,float64]/fixed_lr1_m100_it1"]
    if not quadratic.identical:  # MKL 2022 -> 2024 sums the matrix-vector product in another order here
        assert quadratic.within_tolerance, quadratic
    assert f"torch 2.4.1+cu121 -> {torch.__version__}" in report.lines()[1]


# --- portable verdicts: kernel sets ------------------------------------------------------------------------------
PROBE_SUBSET = "mgh01_rosenbrock[n=2,x0*1,float"  # 8 torch runs (both dtypes, four sets), 1 scipy run
FORCED = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default"},
}
_PROBE = """
import json, sys
from lbfgs_verify.compare import golden_traces as gt
out = []
for name, target in ((gt.TORCH_FILE, "lbfgs_verify.reference:LBFGS"), (gt.TORCH_FILE, None), (gt.SCIPY_FILE, None)):
    r = gt.compare_file(gt.golden_traces_dir() / name, target=target, select=sys.argv[1])
    out.append({"file": name, "ok": r.ok, "failures": len(r.failures), "demanded": r.demanded, "runs": len(r.runs),
                "kernels": r.kernels_now})
print(json.dumps(out))
"""


@pytest.mark.parametrize("forced", list(FORCED))
def test_drift_and_golden_traces_pass_under_a_forced_cpu_capability(forced: str) -> None:
    """The verdict does not depend on the CPU: with torch's and MKL's lower code paths forced (what an AVX2-only or
    pre-AVX2 machine runs), the reference and torch reproduce the shipped records; where the forced kernel set is
    recorded (this machine), bit for bit."""
    env = {k: v for k, v in os.environ.items() if k not in gt.FORCING_VARIABLES} | FORCED[forced]
    done = subprocess.run([sys.executable, "-c", _PROBE, PROBE_SUBSET], env=env, capture_output=True, text=True,
                          check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for result in results:
        assert result["runs"] > 0 and result["ok"] and result["failures"] == 0, result
        assert result["kernels"].startswith(forced.upper()), result
        if result["demanded"] is not None:  # a recorded kernel set: bits were demanded
            assert result["demanded"].startswith(forced), result


def _without_sets(names: set[str], path: Path) -> Path:
    record = gt.read_record_file(TRACES / gt.TORCH_FILE)
    kept = [s for s in record.sections if s.name not in names]
    gt.RecordFile(record.optimizer, record.protocol, kept, record.only).write(path)
    return path


@UNFORCED
def test_an_unrecorded_kernel_set_is_judged_with_the_measured_tolerance(tmp_path: Path) -> None:
    """This machine's kernel sets removed from the file: the runs are judged against the others (an Intel AVX-512
    set and this machine's DEFAULT set) with the tolerance measured from their own differences, and pass."""
    path = _without_sets({"native", "avx2"}, tmp_path / "torch.json")
    report = gt.compare_file(path, select=SUBSET)
    assert report.demanded is None and not report.same_environment
    assert "recorded kernel sets' own differences" in report.tolerance
    assert report.ok, "\n".join(report.lines())
    assert "is not recorded" in report.lines()[1]


def test_a_real_change_is_still_named_per_run(tmp_path: Path) -> None:
    """Other library versions (edited in every kernel set) and a planted change of f at iteration 2 of one run in
    every set: the run is named, beyond the measured tolerance; a changed evaluation count in another run is named
    as a line-search decision, a failure with other versions."""
    data = _load(TRACES / gt.TORCH_FILE)
    for section in data["sections"]:
        section["environment"]["torch"] = "2.0.0"
    rows = {t["id"]: t for t in data["traces"]}
    rows[ROSENBROCK64_WOLFE]["iterates"][1][2] *= 1 + 1e-3
    other = "mgh01_rosenbrock[n=2,x0*1,float32]/wolfe_m10_it1"
    rows[other]["iterates"][2][3] += 1
    for delta in data["deltas"]:  # the other sets store these runs only where they differ from their reference
        delta["runs"] = [r for r in delta["runs"] if r["id"] not in (ROSENBROCK64_WOLFE, other)]
    path = tmp_path / "torch.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    report = gt.compare_file(path, select=SUBSET)
    assert not report.ok and report.versions_changed
    by_id = {r.id: r for r in report.runs}
    assert by_id[ROSENBROCK64_WOLFE].first_iteration == 2 and not by_id[ROSENBROCK64_WOLFE].within_tolerance
    assert by_id[ROSENBROCK64_WOLFE].quantity.startswith("f: ")
    assert by_id[other].decision == "line-search decision changed at iteration 3 (evaluations " + \
        f"{rows[other]['iterates'][2][3]} -> {rows[other]['iterates'][2][3] - 1})"
    assert not by_id[other].within_tolerance
    text = "\n".join(report.lines())
    assert f"torch 2.0.0 -> {__import__('torch').__version__}" in text
    assert ROSENBROCK64_WOLFE in text and other in text


def test_record_refuses_without_output_and_leaves_the_shipped_records(capsys: pytest.CaptureFixture[str]) -> None:
    before = {f.name: f.read_bytes() for f in TRACES.glob("*.json")}
    assert main(["record", "--only", ROSENBROCK64_WOLFE]) == 2
    err = capsys.readouterr().err
    assert "record needs --output DIR" in err and "never overwrites the shipped records" in err
    assert {f.name: f.read_bytes() for f in TRACES.glob("*.json")} == before


def test_drift_says_how_many_runs_a_file_holds_and_fails_a_shrunk_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = gt.read_record_file(TRACES / gt.SCIPY_FILE)
    for section in record.sections:
        section.traces = [t for t in section.traces if t.id.startswith("mgh01_")]
    shrunk = tmp_path / gt.SCIPY_FILE
    record.write(shrunk)  # claims every run (only=None) but holds 1 of 38
    assert main(["drift", "--records", str(shrunk)]) == 1
    out = capsys.readouterr().out
    assert "1 recorded runs (every run) of the 38 its selection covers" in out
    assert "INCOMPLETE: the file holds 1 runs but its selection covers 38" in out and "drift: CHANGED" in out
    assert main(["drift", "--records", str(TRACES / gt.SCIPY_FILE), "--only", "mgh01_"]) == 0
    assert "38 recorded runs (every run) of the 38 its selection covers" in capsys.readouterr().out
