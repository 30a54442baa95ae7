"""Step speed from pytest-benchmark, as ratios to torch.optim.LBFGS.

The numbers come from the repository's ``benchmarks/`` (pytest-benchmark, no assertions on time): the report
either reads a ``--benchmark-json`` file a user made with ``python -m pytest benchmarks --benchmark-only
--benchmark-json PATH``, or runs :data:`STEP_SPEED` itself when it is started from a checkout that has it
(the other benchmarks take minutes and gigabytes); targets are passed to it in :data:`TARGETS_ENV_VAR`. A
ratio is the median time of a benchmark divided by the median of torch.optim.LBFGS's run with the same other
parameters. Every number here is a timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TARGETS_ENV_VAR = "LBFGS_VERIFY_BENCHMARK_TARGETS"
"""Comma-separated ``module:attr`` targets the benchmarks time besides torch and the reference."""
TORCH_NAME = "torch.optim.LBFGS"
XDIST_ENV_PREFIX = "PYTEST_XDIST_"
"""pytest-xdist marks its workers with ``PYTEST_XDIST_WORKER`` (and ``..._COUNT``, ``..._TESTRUNUID``);
pytest-benchmark (``pytest_benchmark/session.py``) disables benchmarks in any process that has it, so a report
built inside a worker must not hand these to its own benchmark run, which is a separate, serial pytest session."""


STEP_SPEED = Path("benchmarks") / "test_step_speed.py"
"""The benchmark the report runs itself: 20 iterations per optimizer, torch, the reference and the targets."""


def run_benchmarks(directory: Path, out_json: Path, *, targets: Sequence[str], max_time: float,
                   timeout: float = 600.0) -> str:
    """Run ``pytest DIRECTORY --benchmark-only --benchmark-json OUT_JSON`` (a folder or one file); return "" or
    what went wrong."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(XDIST_ENV_PREFIX)}
    env[TARGETS_ENV_VAR] = ",".join(targets)
    command = [sys.executable, "-m", "pytest", str(directory), "--benchmark-only", f"--benchmark-json={out_json}",
               f"--benchmark-max-time={max_time}", "--benchmark-min-rounds=3", "--benchmark-warmup=on",
               "-q", "-p", "no:cacheprovider",
               "-p", "no:randomly"]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"the benchmarks did not finish in {timeout:.0f} s"
    if not out_json.exists():
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        return f"pytest exited {done.returncode} without writing {out_json.name}: " + " | ".join(tail)
    if done.returncode != 0:
        return f"pytest exited {done.returncode} (some benchmarks failed; those are missing below)"
    return ""


INTERLEAVED_RATIO = "median_ratio_reference_over_torch"
"""``extra_info`` key of benchmarks that time the reference and torch interleaved in one benchmark
(``benchmarks/test_reference_vs_torch.py``): their ratio is taken as measured there."""


PAIRED_RATIO = "median_ratio_to_torch_paired"
"""``extra_info`` key of a benchmark of one optimizer that also ran it in turn with torch.optim.LBFGS
(``benchmarks/test_step_speed.py``): the median of those per-pair ratios, preferred to a ratio of two medians."""


def benchmark_ratios(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per benchmark of a pytest-benchmark JSON: median seconds; ``ratio_of_medians`` (its median over the
    median of torch's run with the same other parameters); ``paired_ratio`` (the interleaved or paired ratio a
    benchmark recorded itself: the median over rounds of the per-round ratio); ``ratio_to_torch`` (the paired
    ratio where there is one, else the ratio of medians: what the bar plot draws)."""
    rows = []
    for bench in data.get("benchmarks", []):
        params = dict(bench.get("params") or {})
        extra = bench.get("extra_info") or {}
        interleaved = INTERLEAVED_RATIO in extra and "optimizer" not in params
        optimizer = "lbfgs_verify.reference.LBFGS" if interleaved else str(params.pop("optimizer", "?"))
        case = bench.get("name", "").split("[")[0] + (
            "[" + ", ".join(f"{k}={v}" for k, v in sorted(params.items())) + "]" if params else "")
        paired = float(extra[INTERLEAVED_RATIO]) if interleaved else (
            float(extra[PAIRED_RATIO]) if PAIRED_RATIO in extra else None)
        rows.append({"case": case, "optimizer": optimizer, "median_seconds": float(bench["stats"]["median"]),
                     "rounds": int(bench["stats"].get("rounds", 0)), "ratio_of_medians": None,
                     "paired_ratio": paired, "ratio_to_torch": paired})
    torch_median = {r["case"]: r["median_seconds"] for r in rows if r["optimizer"] == TORCH_NAME}
    for row in rows:
        base = torch_median.get(row["case"])
        if base:
            row["ratio_of_medians"] = row["median_seconds"] / base
        if row["ratio_to_torch"] is None:
            row["ratio_to_torch"] = row["ratio_of_medians"]
    rows.sort(key=lambda r: (r["case"], r["optimizer"] != TORCH_NAME, r["optimizer"]))
    return rows


def benchmark_section(*, json_path: Path | None, directory: Path | None, out_dir: Path, targets: Sequence[str],
                      max_time: float) -> dict[str, Any]:
    """The benchmark part of report.json: source, note, machine info, rows."""
    note = ""
    if json_path is None:
        if directory is None or not directory.exists():
            return {"source": None, "note": "no benchmark results: pass --benchmark-json PATH (written by `python -m "
                    "pytest benchmarks --benchmark-only --benchmark-json PATH`) or run from a checkout with "
                    f"{STEP_SPEED.as_posix()}", "rows": []}
        json_path = out_dir / "benchmarks.json"
        note = run_benchmarks(directory, json_path, targets=targets, max_time=max_time)
        if not json_path.exists():
            return {"source": None, "note": note, "rows": []}
    data = json.loads(Path(json_path).read_text(encoding="utf-8"))
    machine = data.get("machine_info", {})
    return {"source": json_path.name if json_path.parent == out_dir else str(json_path), "note": note,
            "machine": {"cpu": (machine.get("cpu") or {}).get("brand_raw"), "python": machine.get("python_version")},
            "datetime": data.get("datetime"), "rows": benchmark_ratios(data)}
