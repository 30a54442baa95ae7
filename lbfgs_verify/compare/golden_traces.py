"""Golden traces: recorded trajectories of torch.optim.LBFGS and scipy's L-BFGS-B, and drift against them.

A *golden trace* is what an optimizer did on a fixed problem with fixed hyperparameters: for every accepted
iterate, a hash of its bytes, its first coordinates, f there and the evaluations it cost; and the reason the
run stopped. A *record file* (``reference/traces/*.json``, shipped as ``lbfgs_verify.golden/traces``) holds the
traces of every run once per *kernel set* it was recorded under, with the environment that made each set.

Kernel sets. The same torch, numpy and scipy give other bits on another CPU because the libraries pick their
kernels at run time: torch by its CPU capability (``torch.backends.cpu.get_cpu_capability()``: DEFAULT, AVX2,
AVX512; aten/src/ATen/native/DispatchStub.cpp), MKL by CPU vendor and instruction set (it takes its generic
path on non-Intel CPUs; ``MKL_CBWR`` selects its reproducible branches), OpenBLAS by CPU core (scipy's and
numpy's BLAS; ``OPENBLAS_CORETYPE``). :func:`kernel_key` names the set a run used; ``lbfgs-verify record``
records every set this CPU can force (:data:`KERNEL_SETS`: ``ATEN_CPU_CAPABILITY``, ``MKL_ENABLE_INSTRUCTIONS``,
``OPENBLAS_CORETYPE`` in a subprocess each) and keeps the sets of other machines already in the file.
Measured on one AMD EPYC (AVX-512), torch 2.13.0: AVX2 and AVX512 give the same bits on every torch run,
DEFAULT changes 264 of 304; an Intel Xeon (AVX-512, same versions) changes 192 of 304 (MKL's vendor path); the
OpenBLAS core changes 31 of 38 scipy runs.

:func:`record_suite` makes the files (``lbfgs-verify record --output DIR``); :func:`compare_file` re-runs every
trace with the installed libraries and says where they first differ (``lbfgs-verify drift``):

- **recorded kernel set** (same library versions and BLAS builds, and this CPU's kernel set is in the file):
  every hash, f and evaluation count must equal that set's record, bit for bit; anything else is a change.
- **kernel set not recorded** (same versions): a run bitwise equal to any recorded set passes. Otherwise it is
  judged with a tolerance *measured from the recorded sets' own differences* (:class:`MeasuredTolerance`): at
  each iteration, f and the recorded coordinates must lie within the recorded sets' range widened by the largest
  of: the 95th percentile over the file's runs of the sets' difference so far relative to each run's scale, the
  median ULP distance between the sets so far, and this run's own spread among the sets. Judging runs over the
  first :data:`TOLERANCE_HORIZON` iterations and
  stops at the first *branch decision* where the recorded sets themselves part (different evaluation counts). A
  run whose own line search takes another number of evaluations where the recorded sets agree is named
  "line-search decision changed at iteration k" (not a value drift); it passes when the recorded sets show such
  decision changes themselves (the file's measured evidence that kernel rounding flips decisions) and the values
  before it were within the tolerance.
- **other library versions or BLAS builds** (a real change): the same judging, except that a changed line-search
  decision within the horizon is a failure; every changed run is named. A file with one kernel set measures
  nothing: then the ``cuda.*`` tolerance (:mod:`lbfgs_verify.compare.tolerances`) is used and the report says so.

Past the horizon rounding differences are amplified (measured: within one 20-iteration step of torch 2.4.1 vs
2.13.0, 1 ULP in f grew to 3e-10 relative on a κ = 1e4 quadratic), so only the first difference is reported.

Protocols (what an "accepted iterate" is):

- torch-like optimizers (``torch.optim.LBFGS``, ``--target``): one record per ``step()`` call. With
  ``max_iter=1`` that is every iteration; the ``max_iter=20`` sets record ``step()`` boundaries, so the
  inner stop tests of torch/optim/lbfgs.py are covered too. Evaluations = closure calls during the step.
- scipy: one record per iteration from ``callback(intermediate_result)`` (scipy/optimize/_lbfgsb_py.py),
  evaluations as scipy counts them (:mod:`lbfgs_verify.compare.scipy_trace`).

Iterations are numbered from 1 (iteration 1 is the first accepted iterate after the start).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lbfgs_verify.compare.environment import comparison_environment
from lbfgs_verify.compare.tolerances import FLOAT32_TOLERANCE, FLOAT64_TOLERANCE, Tolerance
from lbfgs_verify.problems import mgh_suite, spd_quadratic
from lbfgs_verify.problems.base import Problem

FORMAT_VERSION = 2
"""Record-file format: 2 holds several kernel sets (format 1, one environment, is still read)."""
HASH_CHARS = 16
"""Hex characters of the SHA-256 of an iterate's bytes kept per iteration (64 bits: collisions are irrelevant)."""
COORDINATES = 2
"""Leading coordinates of every iterate kept in clear (for a readable 'first differing quantity')."""
TOLERANCE_HORIZON = 10
"""Iterations judged with the tolerance away from the recorded kernel set (see the module docstring)."""
TORCH_STEPS = 30
"""``step()`` calls per torch run with ``max_iter=1``."""
TORCH_STEPS_MAX_ITER = 8
"""``step()`` calls per torch run with the default ``max_iter=20``."""
SCIPY_OPTIONS: dict[str, Any] = {"maxiter": 200}
"""scipy options of the recorded L-BFGS-B runs (others at scipy's defaults)."""
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "amx_tile", "asimd", "sve")
"""CPU flags recorded with every kernel set (informative; the kernel key is :func:`kernel_key`)."""
FORCING_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "OPENBLAS_CORETYPE")
"""Environment variables that select kernels (torch's DispatchStub, MKL, OpenBLAS): recorded with each set."""
KERNEL_SETS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "avx2+openblas_zen": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                          "OPENBLAS_CORETYPE": "Zen"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "default+openblas_sandybridge": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                                     "OPENBLAS_CORETYPE": "Sandybridge"},
}
"""The kernel sets ``lbfgs-verify record`` forces, each in its own process (a set a CPU cannot run falls back to
one it can, and equal keys are stored once). ``avx2+openblas_zen`` is an AVX2-only AMD CPU (OpenBLAS picks its
Zen core there), ``default+openblas_sandybridge`` a CPU without AVX2."""

TORCH_HYPERPARAMETER_SETS: dict[str, dict[str, Any]] = {
    "fixed_lr1_m100_it1": {"max_iter": 1},
    "fixed_lr0.1_m3_it1": {"lr": 0.1, "history_size": 3, "max_iter": 1},
    "wolfe_m10_it1": {"line_search_fn": "strong_wolfe", "history_size": 10, "max_iter": 1, "max_eval": 25},
    "wolfe_m5_it20": {"line_search_fn": "strong_wolfe", "history_size": 5},
}
"""The hyperparameter sets of the torch-protocol runs (torch's defaults for everything not named). With
``max_iter=1`` and strong Wolfe, ``max_eval`` must be given: its default ``max_iter * 5 // 4 = 1`` leaves the line
search no evaluation and torch's step does not move (torch/optim/lbfgs.py, ``max_eval - current_evals``)."""

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class GoldenTraceError(Exception):
    """A record file that cannot be used (missing, malformed, unknown format); the message says which and why."""


# --------------------------------------------------------------------------------------------------------
# Environment and kernel sets
# --------------------------------------------------------------------------------------------------------


def _version(module: str) -> str:
    try:
        return str(getattr(importlib.import_module(module), "__version__", "unknown"))
    except Exception:
        return "missing"


def _torch_blas() -> str:
    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=([^,\s]+)", config)
    mkl = re.search(r"Math Kernel Library Version ([^\s]+)", config)
    return (blas.group(1) if blas else "unknown") + (f" {mkl.group(1)}" if mkl else "")


def _numpy_like_blas(module: str) -> str:
    try:
        config = importlib.import_module(module).show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', 'unknown')} {blas.get('version', '')}".strip()
    except Exception:
        return "unknown"


def _mkl_branch() -> int | None:
    """MKL's dispatched code path as MKL reports it (``mkl_serv_cpu_detect`` of the MKL linked into torch; 0 on
    non-Intel CPUs, where MKL takes its generic path), ``None`` where torch has no MKL or does not export it."""
    if not torch.backends.mkl.is_available():
        return None
    with contextlib.suppress(Exception):
        torch.dot(torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))  # MKL initialises
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        detect = lib.mkl_serv_cpu_detect
        detect.restype = ctypes.c_int
        return int(detect())
    return None


def _openblas_cores() -> dict[str, str]:
    """The OpenBLAS core (kernel family) numpy's and scipy's BLAS dispatched to (threadpoolctl's ``architecture``)."""
    cores: dict[str, str] = {}
    with contextlib.suppress(Exception):
        import scipy.optimize  # noqa: F401  (loads scipy's BLAS)
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            if info.get("internal_api") != "openblas":
                continue
            path = str(info.get("filepath", ""))
            owner = "scipy" if "scipy.libs" in path or "/scipy/" in path else "numpy"
            cores[owner] = str(info.get("architecture"))
    return cores


def _cpu() -> dict[str, Any]:
    model, vendor, flags = platform.processor() or "unknown", "unknown", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("unknown", platform.processor()):
                model = value.strip()
            if key.strip() == "vendor_id" and vendor == "unknown":
                vendor = value.strip()
            if key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    return {"model": model, "vendor": vendor, "machine": platform.machine(),
            "torch_capability": torch.backends.cpu.get_cpu_capability(), "mkl_branch": _mkl_branch(),
            "openblas_cores": _openblas_cores(), "simd_flags": sorted(flags & set(SIMD_FLAGS))}


def current_environment(threads: int) -> dict[str, Any]:
    """What makes bits: versions, BLAS builds, the kernel set (CPU kind, the variables that force kernels) and the
    torch thread count."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": _version("scipy"),
        "lbfgs_verify": _version("lbfgs_verify"),
        "blas": {"torch": _torch_blas(), "numpy": _numpy_like_blas("numpy"), "scipy": _numpy_like_blas("scipy")},
        "cpu": _cpu(),
        "forced": {name: os.environ[name] for name in FORCING_VARIABLES if os.environ.get(name)},
        "threads": threads,
        "platform": platform.system(),
    }


def _vendor(cpu: dict[str, Any]) -> str:
    vendor = str(cpu.get("vendor", "unknown"))
    if vendor == "unknown":  # format-1 records kept only the model name
        model = str(cpu.get("model", ""))
        vendor = "GenuineIntel" if "Intel" in model else "AuthenticAMD" if "AMD" in model else "unknown"
    return vendor


def kernel_key(environment: dict[str, Any], library: str) -> dict[str, Any]:
    """What picks the kernels of a run (``library``: ``torch`` or ``scipy``): machine, torch's CPU capability, CPU
    vendor and MKL's code path (MKL dispatches by vendor and instruction set), ``MKL_CBWR``; for scipy also the
    OpenBLAS cores. A field a record lacks is ``None`` and matches nothing."""
    cpu = environment.get("cpu", {})
    key: dict[str, Any] = {"machine": cpu.get("machine"), "torch_capability": cpu.get("torch_capability"),
                           "cpu_vendor": _vendor(cpu), "mkl_branch": cpu.get("mkl_branch"),
                           "MKL_CBWR": environment.get("forced", {}).get("MKL_CBWR")}
    if library == "scipy":
        key["openblas_cores"] = cpu.get("openblas_cores") or None
    return key


def describe_key(key: dict[str, Any]) -> str:
    """``AVX512, AuthenticAMD, MKL branch 0`` (+ ``OpenBLAS SkylakeX``)."""
    parts = [str(key.get("torch_capability")), str(key.get("cpu_vendor")),
             f"MKL branch {key.get('mkl_branch') if key.get('mkl_branch') is not None else 'unknown'}"]
    if key.get("MKL_CBWR"):
        parts.append(f"MKL_CBWR={key['MKL_CBWR']}")
    if "openblas_cores" in key:
        cores = key["openblas_cores"] or {}
        parts.append("OpenBLAS " + ("/".join(sorted(set(cores.values()))) if cores else "unknown"))
    return ", ".join(parts)


def environment_differences(recorded: dict[str, Any], now: dict[str, Any], library: str) -> list[str]:
    """``"torch 2.13.0 -> 2.12.0"`` for every library version, BLAS build or thread count that differs
    (``library``: ``torch`` or ``scipy``; scipy's runs also depend on numpy and scipy, both on torch, which evaluates
    the problems). The CPU is not here: it picks the kernel set (:func:`kernel_key`)."""
    keys = ["torch"] + (["numpy", "scipy"] if library == "scipy" else [])
    out = [f"{k} {recorded.get(k)} -> {now.get(k)}" for k in keys if recorded.get(k) != now.get(k)]
    rb, nb = recorded.get("blas", {}), now.get("blas", {})
    out += [f"{k} BLAS {rb.get(k)} -> {nb.get(k)}" for k in keys if rb.get(k) != nb.get(k)]
    if recorded.get("threads") != now.get("threads"):
        out.append(f"threads {recorded.get('threads')} -> {now.get('threads')}")
    return out


# --------------------------------------------------------------------------------------------------------
# One trace
# --------------------------------------------------------------------------------------------------------


def _number(value: float) -> float | str:
    """JSON-safe float: finite floats as themselves (repr round-trips exactly), others as strings."""
    return value if math.isfinite(value) else repr(value)


def _float(value: float | str) -> float:
    return float(value)


def iterate_hash(values: Sequence[Tensor] | np.ndarray) -> str:
    """SHA-256 (first :data:`HASH_CHARS` hex digits) of the raw bytes of an iterate in its own dtype."""
    digest = hashlib.sha256()
    if isinstance(values, np.ndarray):
        digest.update(np.ascontiguousarray(values).tobytes())
    else:
        for t in values:
            t = t.detach().cpu()
            t = torch.view_as_real(t) if t.is_complex() else t
            digest.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:HASH_CHARS]


def _leading(values: Sequence[Tensor] | np.ndarray) -> list[float | str]:
    if isinstance(values, np.ndarray):
        flat = values.reshape(-1)
    else:
        flat = torch.cat([(torch.view_as_real(t) if t.is_complex() else t).detach().reshape(-1).to(torch.float64)
                          for t in values]).numpy()
    return [_number(float(v)) for v in flat[:COORDINATES]]


@dataclass
class Iterate:
    """One accepted iterate: hash of its bytes, leading coordinates, f, evaluations it cost. ``x`` is ``None``
    where a record file does not store it (kernel sets after the first, past the tolerance horizon: the hash
    identifies the iterate)."""

    hash: str
    x: list[float | str] | None
    f: float | str
    evals: int

    def to_json(self) -> list[Any]:
        if self.x is None:
            return [self.hash, self.f, self.evals]
        return [self.hash, self.x, self.f, self.evals]

    def short(self) -> Iterate:
        return Iterate(self.hash, None, self.f, self.evals)

    def same(self, other: Iterate) -> bool:
        """Bitwise the same iterate (the hash covers every coordinate), f and evaluation count."""
        return self.hash == other.hash and self.evals == other.evals and repr(self.f) == repr(other.f)

    @classmethod
    def from_json(cls, row: Sequence[Any]) -> Iterate:
        if len(row) == 3:
            h, f, evals = row
            return cls(str(h), None, f, int(evals))
        h, x, f, evals = row
        return cls(str(h), list(x), f, int(evals))


@dataclass
class GoldenTrace:
    """A recorded run: its id, problem, hyperparameters or options, iterates and stop reason."""

    id: str
    problem: str
    settings: dict[str, Any]
    iterates: list[Iterate] = field(default_factory=list)
    stop: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "problem": self.problem, "settings": self.settings, "stop": self.stop,
                "iterates": [it.to_json() for it in self.iterates]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GoldenTrace:
        return cls(data["id"], data["problem"], dict(data["settings"]),
                   [Iterate.from_json(row) for row in data["iterates"]], str(data["stop"]))


# --------------------------------------------------------------------------------------------------------
# Problems and recording
# --------------------------------------------------------------------------------------------------------


def golden_problems(dtype: torch.dtype) -> list[Problem]:
    """The 35 MGH problems (standard sizes, standard start) and three SPD quadratics (n = 30; κ = 1e2, 1e4, 1e6)."""
    return mgh_suite(dtype=dtype) + [spd_quadratic(30, kappa, seed=1, dtype=dtype) for kappa in (1e2, 1e4, 1e6)]


def _state_iterations(optimizer: Any) -> int | None:
    with contextlib.suppress(Exception):
        state = optimizer.state_dict().get("state", {})
        value = state.get(0, {}).get("n_iter") if state else 0
        return int(value) if value is not None else None
    return None


def record_torch_like(factory: Callable[..., Any], problem: Problem, hyperparameters: dict[str, Any],
                      steps: int, run_id: str) -> GoldenTrace:
    """Run ``factory(params, **hyperparameters)`` for up to ``steps`` ``step()`` calls, one iterate per call.

    Stops early when a step makes no iteration (torch's ``n_iter`` state counter unchanged: the gradient test
    at the start of ``step()`` held), when the parameters do not move, or when f or the parameters are not finite.
    """
    params = problem.make_params()
    closure = problem.make_closure(params)
    calls = 0

    def counting() -> Tensor:
        nonlocal calls
        calls += 1
        return closure()

    optimizer = factory(params, **hyperparameters)
    trace = GoldenTrace(run_id, problem.name, {"dtype": str(problem.dtype).removeprefix("torch."), **hyperparameters})
    previous_bytes = iterate_hash(params)
    trace.stop = f"step limit {steps} reached"
    for _ in range(steps):
        before_iter = _state_iterations(optimizer)
        calls = 0
        returned = optimizer.step(counting)
        f = float(returned) if returned is not None else math.nan
        now = iterate_hash(params)
        after_iter = _state_iterations(optimizer)
        if after_iter is not None and after_iter == before_iter:
            trace.stop = "no iteration in the step (gradient below tolerance_grad at its start)"
            break
        trace.iterates.append(Iterate(now, _leading(params), _number(f), calls))
        finite = math.isfinite(f) and all(bool(torch.isfinite(p).all()) for p in params)
        if not finite:
            trace.stop = "non-finite f or parameters"
            break
        if now == previous_bytes:
            trace.stop = "parameters did not move"
            break
        previous_bytes = now
    return trace


def record_scipy(problem: Problem, run_id: str, options: dict[str, Any] | None = None) -> GoldenTrace:
    """scipy's L-BFGS-B on ``problem`` (float64), one iterate per iteration."""
    from lbfgs_verify.compare.scipy_trace import record_scipy_lbfgsb

    options = dict(SCIPY_OPTIONS if options is None else options)
    with np.errstate(all="ignore"):
        result, entries = record_scipy_lbfgsb(problem.numpy_fun(), problem.flat_start(), options)
    trace = GoldenTrace(run_id, problem.name, {"method": "L-BFGS-B", **options})
    for entry in entries:
        x = np.asarray(entry["x"], dtype=np.float64)
        trace.iterates.append(Iterate(iterate_hash(x), _leading(x), _number(float(entry["f"])), int(entry["nfev"])))
    trace.stop = f"status {int(result.status)}: {result.message}; nit {int(result.nit)}, nfev {int(result.nfev)}"
    return trace


@dataclass(frozen=True)
class RunSpec:
    """One run of a record file: how to (re)make its trace."""

    id: str
    run: Callable[[], GoldenTrace]


def torch_like_specs(factory: Callable[..., Any], *, dtypes: Iterable[str] = ("float32", "float64"),
                     hyperparameter_sets: dict[str, dict[str, Any]] | None = None) -> list[RunSpec]:
    """Every (problem, hyperparameter set, dtype) run of the torch protocol for ``factory``."""
    sets = TORCH_HYPERPARAMETER_SETS if hyperparameter_sets is None else hyperparameter_sets
    specs = []
    for dtype_name in dtypes:
        for problem in golden_problems(_DTYPES[dtype_name]):
            for set_name, hp in sets.items():
                steps = TORCH_STEPS if hp.get("max_iter") == 1 else TORCH_STEPS_MAX_ITER
                run_id = f"{problem.name}/{set_name}"
                specs.append(RunSpec(run_id, lambda p=problem, h=hp, s=steps, r=run_id:
                                     record_torch_like(factory, p, dict(h), s, r)))
    return specs


def scipy_specs() -> list[RunSpec]:
    """scipy L-BFGS-B on every golden problem (float64)."""
    return [RunSpec(f"{p.name}/lbfgsb", lambda p=p: record_scipy(p, f"{p.name}/lbfgsb"))
            for p in golden_problems(torch.float64)]


# --------------------------------------------------------------------------------------------------------
# Record files
# --------------------------------------------------------------------------------------------------------


@dataclass
class KernelSection:
    """The traces of every run of a record file under one kernel set, and the environment that made them."""

    name: str
    environment: dict[str, Any]
    traces: list[GoldenTrace]


def _common_prefix(a: GoldenTrace, b: GoldenTrace) -> int:
    n = 0
    for x, y in zip(a.iterates, b.iterates, strict=False):
        if not x.same(y):
            break
        n += 1
    return n


def _same_trace(a: GoldenTrace, b: GoldenTrace) -> bool:
    return a.stop == b.stop and len(a.iterates) == len(b.iterates) and _common_prefix(a, b) == len(a.iterates)


def _delta_rows(reference: GoldenTrace, trace: GoldenTrace) -> dict[str, Any] | None:
    """``trace`` as its difference from ``reference`` (``None``: the same): the common prefix length, then its own
    iterates, without coordinates past the tolerance horizon."""
    if _same_trace(reference, trace):
        return None
    k = _common_prefix(reference, trace)
    horizon = tolerance_horizon(trace)
    return {"id": trace.id, "from": k, "stop": trace.stop,
            "iterates": [(it if i < horizon else it.short()).to_json() for i, it in enumerate(trace.iterates[k:], k)]}


@dataclass
class RecordFile:
    """A record file: what was run (``optimizer``), its protocol, the selection it was recorded with (``only``:
    ``None`` = every run; ``selection_known`` is False for format-1 files, which did not store it), and one
    :class:`KernelSection` per kernel set (the first one is stored whole, the others as their differences)."""

    optimizer: str
    protocol: str
    sections: list[KernelSection]
    only: str | None = None
    selection_known: bool = True

    @property
    def environment(self) -> dict[str, Any]:
        return self.sections[0].environment

    @property
    def traces(self) -> list[GoldenTrace]:
        return self.sections[0].traces

    @property
    def library(self) -> str:
        return "scipy" if self.protocol == "scipy-iteration" else "torch"

    def to_json(self) -> dict[str, Any]:
        return json.loads(self._text())

    def _text(self) -> str:
        header = {"format": FORMAT_VERSION, "optimizer": self.optimizer, "protocol": self.protocol, "only": self.only,
                  "runs": len(self.traces), "tolerance_horizon": TOLERANCE_HORIZON,
                  "sections": [{"name": s.name, "kernels": kernel_key(s.environment, self.library),
                                "environment": s.environment} for s in self.sections]}
        lines = [json.dumps(header, sort_keys=True)[:-1] + ', "traces": [']
        lines.append(",\n".join(json.dumps(t.to_json(), separators=(",", ":")) for t in self.traces))
        lines.append('], "deltas": [')
        deltas = []
        for j, section in enumerate(self.sections[1:], 1):
            candidates = []
            for r in range(j):  # the difference from the nearest earlier set
                rows = [_delta_rows(a, b) for a, b in zip(self.sections[r].traces, section.traces, strict=True)]
                text = ",\n".join(json.dumps(row, separators=(",", ":")) for row in rows if row is not None)
                candidates.append((len(text), r, text))
            _, r, text = min(candidates)
            deltas.append(f'{{"ref": {r}, "runs": [' + text + "]}")
        lines.append(",\n".join(deltas))
        lines.append("]}")
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self._text(), encoding="utf-8")


def read_record_file(path: Path) -> RecordFile:
    """A record file, or :class:`GoldenTraceError` naming the file and what is wrong with it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GoldenTraceError(f"record file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GoldenTraceError(f"record file {path} cannot be read as JSON: {exc}") from exc
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt not in (1, FORMAT_VERSION):
        raise GoldenTraceError(f"record file {path}: format {fmt!r} is not {FORMAT_VERSION} (re-record it with "
                               "`lbfgs-verify record --output ...`)")
    try:
        base = [GoldenTrace.from_json(t) for t in data["traces"]]
        if fmt == 1:
            return RecordFile(str(data["optimizer"]), str(data["protocol"]),
                              [KernelSection("recorded", dict(data["environment"]), base)], None, False)
        sections = [KernelSection(str(data["sections"][0]["name"]), dict(data["sections"][0]["environment"]), base)]
        by_id = {t.id: t for t in base}
        for header, delta in zip(data["sections"][1:], data["deltas"], strict=True):
            changed = {row["id"]: row for row in delta["runs"]}
            reference = sections[int(delta["ref"])].traces
            traces = []
            for t in reference:
                row = changed.get(t.id)
                if row is None:
                    traces.append(t)
                    continue
                k = int(row["from"])
                traces.append(GoldenTrace(t.id, t.problem, t.settings, t.iterates[:k]
                                          + [Iterate.from_json(r) for r in row["iterates"]], str(row["stop"])))
            unknown = set(changed) - set(by_id)
            if unknown:
                raise ValueError(f"section {header['name']!r} has runs the first section lacks: {sorted(unknown)[:3]}")
            sections.append(KernelSection(str(header["name"]), dict(header["environment"]), traces))
        if int(data["runs"]) != len(base):
            raise ValueError(f"it says it holds {data['runs']} runs but holds {len(base)}")
        return RecordFile(str(data["optimizer"]), str(data["protocol"]), sections,
                          None if data["only"] is None else str(data["only"]))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise GoldenTraceError(f"record file {path} is malformed: {type(exc).__name__}: {exc}") from exc


def golden_traces_dir() -> Path:
    """The shipped record files: ``reference/traces`` of a source checkout, else the ``traces`` folder of the
    installed ``lbfgs_verify.golden`` package (the same folder, see pyproject.toml)."""
    checkout = Path(__file__).resolve().parent.parent / "reference"
    if (checkout / "mgh_optima.toml").is_file():
        return checkout / "traces"
    from importlib import resources

    return Path(str(resources.files("lbfgs_verify.golden"))) / "traces"


TORCH_FILE = "torch_lbfgs.json"
SCIPY_FILE = "scipy_lbfgsb.json"
TORCH_OPTIMIZER = "torch.optim:LBFGS"
SCIPY_OPTIMIZER = "scipy.optimize:minimize(method='L-BFGS-B')"


def record_specs(specs: Sequence[RunSpec], optimizer: str, protocol: str, threads: int, select: str | None,
                 progress: Callable[[str], None] | None = None, *, name: str = "native") -> RecordFile:
    """Record ``specs`` in this process (one kernel set, named ``name``)."""
    traces = []
    with comparison_environment(threads):
        for spec in specs:
            if select and select not in spec.id:
                continue
            if progress:
                progress(spec.id)
            traces.append(spec.run())
    return RecordFile(optimizer, protocol, [KernelSection(name, current_environment(threads), traces)], select)


def merge_records(records: Sequence[RecordFile], existing: RecordFile | None = None) -> RecordFile:
    """One file from single-set records of the same runs (a later set with a kernel key already present is
    dropped), keeping the sets of ``existing`` (recorded on other machines) when it holds the same runs with the
    same library versions and BLAS builds; a set of ``existing`` with a key recorded now is replaced."""
    first = records[0]
    library = first.library
    ids = [t.id for t in first.traces]
    kept: list[KernelSection] = []
    if existing is not None and existing.optimizer == first.optimizer and existing.protocol == first.protocol \
            and [t.id for t in existing.traces] == ids and existing.only == first.only \
            and not environment_differences(existing.environment, first.environment, library):
        kept = list(existing.sections)
    recorded: list[KernelSection] = []
    for record in records:
        if [t.id for t in record.traces] != ids:
            raise GoldenTraceError(f"kernel set {record.sections[0].name!r} recorded other runs than "
                                   f"{first.sections[0].name!r}")
        for section in record.sections:
            key = kernel_key(section.environment, library)
            if all(kernel_key(s.environment, library) != key for s in recorded):
                recorded.append(section)
    keys = [kernel_key(s.environment, library) for s in recorded]
    sections = [s for s in kept if kernel_key(s.environment, library) not in keys] + recorded
    return RecordFile(first.optimizer, first.protocol, sections, first.only)


def _record_worker(arguments: dict[str, Any]) -> None:
    """Entry point of one recording subprocess (:func:`record_in_kernel_sets`)."""
    out = Path(arguments["out"])
    progress = (lambda run_id: print(f"  recording {run_id} [{arguments['name']}]", file=sys.stderr, flush=True)) \
        if arguments["progress"] else None
    if arguments["target"] is None:
        record_specs(torch_like_specs(torch.optim.LBFGS), TORCH_OPTIMIZER, "torch-step", arguments["threads"],
                     arguments["select"], progress, name=arguments["name"]).write(out / TORCH_FILE)
        record_specs(scipy_specs(), SCIPY_OPTIMIZER, "scipy-iteration", arguments["threads"], arguments["select"],
                     progress, name=arguments["name"]).write(out / SCIPY_FILE)
    else:
        from lbfgs_verify.targets.load import load_target

        target = load_target(arguments["target"])
        record_specs(torch_like_specs(target.make), arguments["target"], "torch-step", arguments["threads"],
                     arguments["select"], progress, name=arguments["name"]).write(out / "target.json")


def record_in_kernel_sets(out: Path, *, target: str | None, threads: int, select: str | None,
                          kernel_sets: Iterable[str] | None = None, progress: bool = False) -> list[Path]:
    """Record in one subprocess per kernel set (:data:`KERNEL_SETS`, the forcing variables set and every other
    one cleared) into ``out/<set>/``; returns those folders."""
    names = list(KERNEL_SETS if kernel_sets is None else kernel_sets)
    unknown = [n for n in names if n not in KERNEL_SETS]
    if unknown:
        raise GoldenTraceError(f"unknown kernel set(s) {unknown}: choose from {sorted(KERNEL_SETS)}")
    folders = []
    for name in names:
        folder = Path(out) / name
        folder.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in FORCING_VARIABLES}
        env.update(KERNEL_SETS[name])
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)
        arguments = {"out": str(folder), "name": name, "target": target, "threads": threads, "select": select,
                     "progress": False}
        code = "import json, sys; from lbfgs_verify.compare.golden_traces import _record_worker; " \
               "_record_worker(json.loads(sys.argv[1]))"
        if progress:
            print(f"  recording kernel set {name} ({KERNEL_SETS[name] or 'nothing forced'})", file=sys.stderr,
                  flush=True)
        done = subprocess.run([sys.executable, "-c", code, json.dumps(arguments)], env=env, capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            raise GoldenTraceError(f"recording kernel set {name!r} failed (exit {done.returncode}): "
                                   f"{(done.stderr or '').strip()[-2000:]}")
        folders.append(folder)
    return folders


def _merge_into(path: Path, parts: Sequence[Path]) -> Path:
    existing = None
    if path.is_file():
        with contextlib.suppress(GoldenTraceError):
            existing = read_record_file(path)
    merge_records([read_record_file(p) for p in parts], existing).write(path)
    return path


def record_suite(directory: Path, *, threads: int = 1, select: str | None = None,
                 progress: Callable[[str], None] | None = None,
                 kernel_sets: Iterable[str] | None = None) -> list[Path]:
    """Record torch.optim.LBFGS and scipy L-BFGS-B into ``directory`` under every kernel set (``select``: substring
    of run ids), keeping the kernel sets of other machines already in the files there (same runs and versions)."""
    with tempfile.TemporaryDirectory() as tmp:
        folders = record_in_kernel_sets(Path(tmp), target=None, threads=threads, select=select,
                                        kernel_sets=kernel_sets, progress=progress is not None)
        return [_merge_into(Path(directory) / name, [f / name for f in folders]) for name in (TORCH_FILE, SCIPY_FILE)]


def record_target(spec: str, path: Path, *, threads: int = 1, select: str | None = None,
                  progress: Callable[[str], None] | None = None, kernel_sets: Iterable[str] | None = None) -> Path:
    """Record the torch protocol for a target ``module:attr`` into ``path`` under every kernel set."""
    from lbfgs_verify.targets.load import load_target

    load_target(spec)  # a bad target is a clear error here, not in a subprocess
    with tempfile.TemporaryDirectory() as tmp:
        folders = record_in_kernel_sets(Path(tmp), target=spec, threads=threads, select=select,
                                        kernel_sets=kernel_sets, progress=progress is not None)
        return _merge_into(Path(path), [f / "target.json" for f in folders])


# --------------------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------------------


def drift_tolerance(dtype: str) -> Tolerance:
    """The fallback tolerance when a file holds one kernel set (nothing measured): that of ``cuda.*``."""
    return FLOAT32_TOLERANCE if dtype == "float32" else FLOAT64_TOLERANCE


def _ulps(a: float, b: float, dtype: str) -> int | None:
    if not (math.isfinite(a) and math.isfinite(b)):
        return None
    np_dtype = np.float32 if dtype == "float32" else np.float64
    int_dtype = np.int32 if dtype == "float32" else np.int64
    ia, ib = (int(np.array(v, dtype=np_dtype).view(int_dtype)) for v in (a, b))
    ia = ia if ia >= 0 else -(ia & ((1 << (8 * np.dtype(np_dtype).itemsize - 1)) - 1)) - 1
    ib = ib if ib >= 0 else -(ib & ((1 << (8 * np.dtype(np_dtype).itemsize - 1)) - 1)) - 1
    return abs(ia - ib)


def _quantity(name: str, old: float | str, new: float | str, dtype: str) -> str:
    a, b = _float(old), _float(new)
    ulps = _ulps(a, b, dtype)
    rel = abs(b - a) / abs(a) if math.isfinite(a) and math.isfinite(b) and a != 0 else math.inf
    extra = f", {ulps} ULP, rel {rel:.2g}" if ulps is not None else ""
    return f"{name}: {a!r} -> {b!r}{extra}"


def _within(old: float | str, new: float | str, tolerance: Tolerance) -> bool:
    a, b = _float(old), _float(new)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(b - a) <= tolerance.atol + tolerance.rtol * abs(a)


def _iterations_per_record(trace: GoldenTrace) -> int:
    return int(trace.settings.get("max_iter", 1 if "method" in trace.settings else 20))


def decision_change(trace: GoldenTrace, iteration: int, old_evals: int, new_evals: int) -> str:
    """``line-search decision changed at iteration k (evaluations a -> b)``: what a changed evaluation count
    means (with a fixed step and ``max_iter=20``, the stop test inside the step decided otherwise)."""
    line_search = "method" in trace.settings or trace.settings.get("line_search_fn") is not None
    what = "line-search decision" if line_search else "stop decision inside the step"
    return f"{what} changed at iteration {iteration} (evaluations {old_evals} -> {new_evals})"


@dataclass
class RunComparison:
    """How a re-run compares with its record.

    Attributes:
        id: the run id.
        first_iteration: 1-based iteration of the first difference from ``compared_with`` (``None``: identical).
        quantity: the first differing quantity, readable (``f: 1.5 -> 1.5000000000000002, 1 ULP, ...``, or
            ``line-search decision changed at iteration k (evaluations a -> b)``).
        within_tolerance: every iteration up to the horizon within the tolerance (``True`` when identical).
        tolerance_break: where and how the tolerance is first exceeded (``""`` when within).
        compared_with: the kernel set the difference is counted from (the demanded one, else the nearest).
        matched: the recorded kernel set this run equals bitwise (``""``: none).
        decision: the changed branch decision where judging stopped (``""``: none within the horizon).
    """

    id: str
    first_iteration: int | None = None
    quantity: str = ""
    within_tolerance: bool = True
    tolerance_break: str = ""
    compared_with: str = ""
    matched: str = ""
    decision: str = ""

    @property
    def identical(self) -> bool:
        return self.first_iteration is None


def _first_quantity(trace: GoldenTrace, i: int, a: Iterate, b: Iterate, dtype: str) -> str:
    """The first differing quantity of two iterates: evaluations, then f, then coordinates, then the hash."""
    if a.evals != b.evals:
        return decision_change(trace, i, a.evals, b.evals)
    if repr(a.f) != repr(b.f):
        return _quantity("f", a.f, b.f, dtype)
    k = next((k for k, (u, v) in enumerate(zip(a.x or [], b.x or [], strict=False)) if repr(u) != repr(v)), None)
    if k is not None and a.x is not None and b.x is not None:
        return _quantity(f"x[{k}]", a.x[k], b.x[k], dtype)
    return f"iterate hash {a.hash} -> {b.hash} (beyond the first {COORDINATES} coordinates)"


def _tolerance_break(a: Iterate, b: Iterate, dtype: str, tolerance: Tolerance) -> str | None:
    """The first quantity of ``b`` outside ``tolerance`` around ``a``, or ``None``."""
    if not _within(a.f, b.f, tolerance):
        return _quantity("f", a.f, b.f, dtype)
    for k, (u, v) in enumerate(zip(a.x or [], b.x or [], strict=False)):
        if not _within(u, v, tolerance):
            return _quantity(f"x[{k}]", u, v, dtype)
    return None


def tolerance_horizon(trace: GoldenTrace) -> int:
    """Records judged with the tolerance: those covering the first :data:`TOLERANCE_HORIZON` iterations (one record
    per iteration for scipy and ``max_iter=1``; with torch's default ``max_iter=20``, the first ``step()``)."""
    return max(1, math.ceil(TOLERANCE_HORIZON / _iterations_per_record(trace)))


def _values(it: Iterate) -> list[float]:
    return [_float(it.f), *(_float(v) for v in it.x or [])]


_NAMES = ("f", *(f"x[{k}]" for k in range(COORDINATES)))


def _scales(traces: Sequence[GoldenTrace], horizon: int) -> list[float]:
    """Per quantity (f, then the coordinates): the largest finite magnitude any of ``traces`` reaches within
    ``horizon`` records: the scale differences are measured against (a coordinate passing near 0 is not judged
    relative to its own tiny value)."""
    scales = [0.0] * (1 + COORDINATES)
    for t in traces:
        for it in t.iterates[:horizon]:
            for q, v in enumerate(_values(it)):
                if math.isfinite(v):
                    scales[q] = max(scales[q], abs(v))
    return scales


BOUND_QUANTILE = 0.95
"""The bound at a record is this quantile over the runs whose kernel sets differ there (a run's own spread among the
sets is allowed besides): measured leaving one set out (benchmarks/portability_tolerance.py --golden), the maximum
lets a badly scaled problem set the bound of every run (float64: 0.66 of the scale by iteration 9), 0.95 keeps it
at 9e-12."""


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


@dataclass
class MeasuredTolerance:
    """The tolerance measured from a record file's kernel sets (see the module docstring).

    Attributes:
        sets: kernel sets in the file.
        bounds: per (dtype, iterations per record), per record index (from 0): the :data:`BOUND_QUANTILE` over
            the runs of the largest difference between two recorded kernel sets at that record or earlier, relative
            to the run's scale of the quantity (:func:`_scales`), before the sets part at a branch decision (the
            largest so far along the records).
        ulp_bounds: per record index, the median over the runs whose sets differ there of their largest distance
            in units in the last place (largest so far): the floor where a difference of a few ULP is larger than
            its share of the run's scale (the median, as a coordinate crossing 0 is ~2^60 ULP from its neighbour).
        decision_changes: runs in which the recorded sets part at a branch decision within the horizon.
        runs_differing: runs in which the recorded sets differ at all within the horizon.
    """

    sets: int
    bounds: dict[tuple[str, int], list[float]]
    ulp_bounds: dict[tuple[str, int], list[int]]
    decision_changes: int
    runs_differing: int

    @classmethod
    def measure(cls, record: RecordFile) -> MeasuredTolerance | None:
        """``None`` for a file with one kernel set (nothing to measure)."""
        if len(record.sections) < 2:
            return None
        raw: dict[tuple[str, int], list[list[float]]] = {}
        raw_ulps: dict[tuple[str, int], list[list[int]]] = {}
        decisions = differing = 0
        for j, base in enumerate(record.traces):
            traces = [s.traces[j] for s in record.sections]
            dtype, per, horizon = str(base.settings.get("dtype", "float64")), _iterations_per_record(base), \
                tolerance_horizon(base)
            column = raw.setdefault((dtype, per), [[] for _ in range(horizon)])
            running = 0.0
            ulps = raw_ulps.setdefault((dtype, per), [[] for _ in range(horizon)])
            scales = _scales(traces, horizon)
            differs = False
            for i in range(horizon):
                if any(len(t.iterates) <= i for t in traces):
                    break
                rows = [t.iterates[i] for t in traces]
                if len({r.evals for r in rows}) > 1:
                    decisions += 1
                    differs = True
                    break
                worst_ulps = 0
                for q, values in enumerate(zip(*(_values(r) for r in rows), strict=True)):
                    if all(math.isfinite(v) for v in values) and scales[q] > 0 and max(values) > min(values):
                        differs = True
                        running = max(running, (max(values) - min(values)) / scales[q])
                        worst_ulps = max(worst_ulps, _ulps(min(values), max(values), dtype) or 0)
                if worst_ulps:
                    ulps[i].append(worst_ulps)
                if running > 0:
                    column[i].append(running)
            differing += differs
        quantiles = {key: [_quantile(c, BOUND_QUANTILE) for c in column] for key, column in raw.items()}
        bounds = {key: [max(column[: i + 1]) for i in range(len(column))] for key, column in quantiles.items()}
        medians = {key: [int(statistics.median(c)) if c else 0 for c in column] for key, column in raw_ulps.items()}
        ulp_bounds = {key: [max(column[: i + 1]) for i in range(len(column))] for key, column in medians.items()}
        return cls(len(record.sections), bounds, ulp_bounds, decisions, differing)

    def bound(self, dtype: str, per_record: int, index: int) -> float:
        column = self.bounds.get((dtype, per_record), [])
        return column[min(index, len(column) - 1)] if column else 0.0

    def ulp_bound(self, dtype: str, per_record: int, index: int) -> int:
        column = self.ulp_bounds.get((dtype, per_record), [])
        return column[min(index, len(column) - 1)] if column else 0

    def describe(self) -> str:
        return (f"the tolerance measured from the {self.sets} recorded kernel sets' own differences "
                f"({self.runs_differing} runs differ among them within the horizon, {self.decision_changes} at a "
                "branch decision)")


def judge_run(sections: Sequence[tuple[str, GoldenTrace]], new: GoldenTrace, tolerance: MeasuredTolerance | None, *,
              demanded: str | None, versions_changed: bool) -> RunComparison:
    """Compare ``new`` with the traces of one run under every recorded kernel set (``demanded``: the set whose
    bits are demanded; ``tolerance``: ``None`` when the file has one set, then the ``cuda.*`` tolerance)."""
    dtype = str(sections[0][1].settings.get("dtype", "float64"))
    by_name = dict(sections)
    out = RunComparison(new.id)
    out.matched = next((name for name, t in sections if _same_trace(t, new)), "")
    nearest = demanded or out.matched or max(by_name, key=lambda n: _common_prefix(by_name[n], new))
    out.compared_with = nearest
    old = by_name[nearest]
    if not _same_trace(old, new):
        k = _common_prefix(old, new)
        out.first_iteration = k + 1
        if k < min(len(old.iterates), len(new.iterates)):
            out.quantity = _first_quantity(old, k + 1, old.iterates[k], new.iterates[k], dtype)
        else:
            out.quantity = f"iterations {len(old.iterates)} -> {len(new.iterates)}; stop '{old.stop}' -> '{new.stop}'"
    if out.matched:
        return out
    traces = [t for _, t in sections]
    per, horizon = _iterations_per_record(old), tolerance_horizon(old)
    scales = _scales(traces, horizon)
    own = [0.0] * (1 + COORDINATES)
    for i in range(horizon):
        have = [t.iterates[i] for t in traces if len(t.iterates) > i]
        if len(have) < len(traces):
            if have:
                break  # the recorded sets stop at different iterations: they part here
            if len(new.iterates) > i:
                out.within_tolerance = False
                out.tolerance_break = (f"iterations {len(old.iterates)} -> {len(new.iterates)} within the first "
                                       f"{horizon} (every recorded kernel set stops at {i})")
            break
        if len(new.iterates) <= i:
            out.within_tolerance = False
            out.tolerance_break = f"iterations {len(old.iterates)} -> {len(new.iterates)} within the first {horizon}"
            break
        if len({r.evals for r in have}) > 1:
            break  # the recorded sets part at a branch decision: no value is judged past it
        b = new.iterates[i]
        if b.evals != have[0].evals:
            out.decision = decision_change(old, i + 1, have[0].evals, b.evals)
            if versions_changed or tolerance is None or tolerance.decision_changes == 0:
                out.within_tolerance = False
                why = ("with other library versions" if versions_changed else
                       "and the recorded kernel sets never part at a decision")
                out.tolerance_break = f"{out.decision}, {why}"
            break
        if tolerance is None:
            broken = _tolerance_break(have[0], b, dtype, drift_tolerance(dtype))
            if broken is not None:
                out.within_tolerance = False
                out.tolerance_break = f"iteration {i + 1}: {broken} ({drift_tolerance(dtype)}, one kernel set recorded)"
                break
            continue
        bound, ulp_bound = tolerance.bound(dtype, per, i), tolerance.ulp_bound(dtype, per, i)
        unit = float(np.spacing(np.float32(1.0) if dtype == "float32" else 1.0))
        for q, (recorded, value) in enumerate(zip(zip(*(_values(r) for r in have), strict=True), _values(b),
                                                  strict=True)):
            lo, hi = min(recorded), max(recorded)
            if not all(math.isfinite(v) for v in (*recorded, value)):
                if any(repr(v) == repr(value) for v in recorded):
                    continue
                allowed = 0.0
            else:
                own[q] = max(own[q], hi - lo)
                allowed = max(bound * scales[q], ulp_bound * unit * max(abs(lo), abs(hi)), own[q])
                if lo - allowed <= value <= hi + allowed:
                    continue
            reference = _values(old.iterates[i])[q]
            out.within_tolerance = False
            out.tolerance_break = (f"iteration {i + 1}: {_quantity(_NAMES[q], reference, value, dtype)} outside the "
                                   f"recorded kernel sets' range [{lo!r}, {hi!r}] ± {allowed:.3g} ({bound:.2g} of "
                                   f"the run's scale {scales[q]:.3g})")
            break
        if not out.within_tolerance:
            break
    return out


@dataclass
class DriftReport:
    """The comparison of one record file with the installed libraries (or a target).

    ``environment_changes``: library versions, BLAS builds or threads that differ from the record (and
    ``optimizer A -> B`` for a target run against another optimizer's records); ``kernels_now``: this process's
    kernel set; ``demanded``: the recorded set whose bits are demanded (``None``: judged with the tolerance).
    """

    path: Path
    optimizer: str
    recorded: dict[str, Any]
    now: dict[str, Any]
    environment_changes: list[str]
    runs: list[RunComparison]
    sets: list[str] = field(default_factory=list)
    kernels_now: str = ""
    demanded: str | None = None
    tolerance: str = ""
    held_runs: int = 0
    expected_runs: int | None = None
    only: str | None = None
    selection_known: bool = True
    select: str | None = None

    @property
    def versions_changed(self) -> bool:
        return any(not c.startswith("optimizer ") for c in self.environment_changes)

    @property
    def target_changed(self) -> bool:
        return any(c.startswith("optimizer ") for c in self.environment_changes)

    @property
    def same_environment(self) -> bool:
        """Bits are demanded: same versions and BLAS builds, this CPU's kernel set recorded, same optimizer."""
        return self.demanded is not None and not self.environment_changes

    @property
    def changed(self) -> list[RunComparison]:
        return [r for r in self.runs if not r.identical]

    @property
    def complete(self) -> bool:
        """The file holds every run its selection covers (a file shrunk by a partial record is not complete)."""
        return self.expected_runs is None or self.held_runs == self.expected_runs

    @property
    def failures(self) -> list[RunComparison]:
        """Runs that differ from the demanded kernel set (bits demanded, whatever the optimizer), else runs beyond
        the tolerance."""
        if self.demanded is not None and not self.versions_changed:
            return self.changed
        return [r for r in self.runs if not r.within_tolerance]

    @property
    def ok(self) -> bool:
        """Complete, and bitwise equal to the demanded kernel set, or within the tolerance (another optimizer, an
        unrecorded kernel set, other versions)."""
        if not self.complete:
            return False
        if self.same_environment:
            return not self.changed
        return all(r.within_tolerance for r in self.runs)

    def _count_line(self) -> str:
        selection = (f"recorded with --only {self.only!r}" if self.only else "every run") if self.selection_known \
            else "format 1: its selection is not recorded"
        line = f"{self.path.name}: {self.optimizer}, {self.held_runs} recorded runs ({selection})"
        if self.expected_runs is not None:
            line += f" of the {self.expected_runs} its selection covers"
        line += f", {len(self.sets)} kernel set(s): {'; '.join(self.sets)}"
        if self.select:
            line += f"; compared: {len(self.runs)} (--only {self.select!r})"
        return line

    def lines(self, *, limit: int = 15) -> list[str]:
        """The plain report: the file, the mode, what changed, from which iteration, the first differing quantity."""
        head = [self._count_line()]
        if not self.complete:
            head.append(f"  INCOMPLETE: the file holds {self.held_runs} runs but its selection covers "
                        f"{self.expected_runs} in this version of lbfgs_verify (runs are missing: re-record with "
                        "`lbfgs-verify record --output ...`)")
        changes = ", ".join(self.environment_changes)
        if self.demanded is not None and not self.versions_changed:
            head.append(f"  this CPU's kernel set ({self.kernels_now}) is recorded as {self.demanded!r}: "
                        + ("bits demanded" if not self.target_changed else f"{changes}: judged with the tolerance"))
        else:
            where = "is recorded" if self.demanded is not None else "is not recorded"
            head.append(f"  this CPU's kernel set ({self.kernels_now}) {where}; "
                        + (f"environment: {changes}; " if changes else "")
                        + f"judged with {self.tolerance} over the first {TOLERANCE_HORIZON} iterations, up to the "
                          "first branch decision where the recorded sets part")
        changed = self.changed
        other_set = [r for r in self.runs if r.matched and r.matched != r.compared_with]
        if not changed:
            verdict = "bitwise identical" if self.same_environment else (
                "bitwise identical to a recorded kernel set" + (" despite the changes" if changes else ""))
            return [*head, f"  {verdict} on every run"]
        first = min(changed, key=lambda r: (r.first_iteration or 0))
        cause = changes if changes else ("nothing in the environment" if self.demanded is not None
                                         else "the kernel set")
        beyond = [r for r in changed if not r.within_tolerance]
        decisions = [r for r in changed if r.decision and r.within_tolerance]
        matched = [r for r in changed if r.matched]
        if self.same_environment:
            judged = "NOT bitwise although the environment is the same"
        else:
            judged = (f"{len(matched)} equal to another recorded kernel set, "
                      f"{len(changed) - len(beyond) - len(matched)} within tolerance over the first "
                      f"{TOLERANCE_HORIZON} iterations ({len(decisions)} of them up to a changed branch decision), "
                      f"{len(beyond)} beyond")
        head.append(f"  {cause} changed {self.optimizer} on {len(changed)} of {len(self.runs)} runs from iteration "
                    f"{first.first_iteration} (first differing quantity {first.quantity}; {first.id}); {judged}")
        if other_set and not self.same_environment:
            head.append(f"  {len(other_set)} runs equal the record of another kernel set")
        shown = sorted(changed, key=lambda r: (r.within_tolerance, r.first_iteration or 0))[:limit]
        for r in shown:
            if self.same_environment:
                mark = f"differs from the {r.compared_with!r} record"
            elif r.matched:
                mark = f"equal to the {r.matched!r} record"
            elif not r.within_tolerance:
                mark = f"BEYOND tolerance at {r.tolerance_break}"
            elif r.decision:
                mark = f"within tolerance up to: {r.decision}"
            else:
                mark = "within tolerance"
            head.append(f"    {r.id}: from iteration {r.first_iteration}: {r.quantity} [{mark}]")
        if len(changed) > limit:
            head.append(f"    ... and {len(changed) - limit} more")
        return head

    def to_json(self) -> dict[str, Any]:
        return {"file": str(self.path), "optimizer": self.optimizer, "environment_changes": self.environment_changes,
                "kernel_sets": self.sets, "kernels_now": self.kernels_now, "demanded": self.demanded,
                "tolerance": self.tolerance, "held_runs": self.held_runs, "expected_runs": self.expected_runs,
                "complete": self.complete, "ok": self.ok, "runs": [vars(r) for r in self.runs]}


def compare_file(path: Path, *, target: Any = None, select: str | None = None,
                 progress: Callable[[str], None] | None = None) -> DriftReport:
    """Re-run every trace of the record file at ``path`` (``target``: a ``module:attr`` or a loaded
    :class:`~lbfgs_verify.targets.load.Target` to run instead of the recorded optimizer, torch protocol only) and
    compare (``select``: substring of run ids)."""
    record = read_record_file(path)
    loaded = target if hasattr(target, "make") else None
    target = loaded.spec if loaded is not None else target
    threads = int(record.environment.get("threads", 1))
    if record.protocol == "scipy-iteration":
        if target is not None:
            raise GoldenTraceError(f"{path} records scipy's L-BFGS-B (one iterate per iteration); --target runs use "
                                   "the torch protocol: record your target with `lbfgs-verify record --target`")
        by_id = {s.id: s for s in scipy_specs()}
        optimizer = SCIPY_OPTIMIZER
    elif record.protocol == "torch-step":
        spec = target or record.optimizer
        if loaded is not None:
            factory: Callable[..., Any] = loaded.make
        elif spec == TORCH_OPTIMIZER:
            factory = torch.optim.LBFGS
        else:
            from lbfgs_verify.targets.load import TargetLoadError, load_target

            try:
                factory = load_target(spec).make
            except TargetLoadError as exc:
                raise GoldenTraceError(str(exc)) from exc
        by_id = {s.id: s for s in torch_like_specs(factory)}
        optimizer = spec
    else:
        raise GoldenTraceError(f"record file {path}: unknown protocol {record.protocol!r}")
    library = record.library
    now = current_environment(threads)
    changes = environment_differences(record.environment, now, library)
    key_now = kernel_key(now, library)
    demanded = next((s.name for s in record.sections if kernel_key(s.environment, library) == key_now), None)
    tolerance = MeasuredTolerance.measure(record)
    runs = []
    with comparison_environment(threads):
        for j, old in enumerate(record.traces):
            if select and select not in old.id:
                continue
            spec_for = by_id.get(old.id)
            if spec_for is None:
                raise GoldenTraceError(f"record file {path}: run {old.id!r} is not a run this version of lbfgs_verify "
                                       "knows (re-record with `lbfgs-verify record --output ...`)")
            if progress:
                progress(old.id)
            new = spec_for.run()
            if new.settings != old.settings:
                raise GoldenTraceError(f"record file {path}: run {old.id!r} was recorded with {old.settings}, this "
                                       f"version of lbfgs_verify runs it with {new.settings}: re-record the file")
            runs.append(judge_run([(s.name, s.traces[j]) for s in record.sections], new, tolerance,
                                  demanded=demanded if not changes else None, versions_changed=bool(changes)))
    if target is not None and target != record.optimizer:
        changes.insert(0, f"optimizer {record.optimizer} -> {target}")
    expected = (len([i for i in by_id if not record.only or record.only in i]) if record.selection_known else None)
    return DriftReport(Path(path), optimizer, record.environment, now, changes, runs,
                       sets=[f"{s.name} ({describe_key(kernel_key(s.environment, library))})" for s in record.sections],
                       kernels_now=describe_key(key_now), demanded=demanded,
                       tolerance=tolerance.describe() if tolerance else
                       "the cuda.* tolerance (one kernel set recorded: nothing measured)",
                       held_runs=len(record.traces), expected_runs=expected, only=record.only,
                       selection_known=record.selection_known, select=select)


__all__ = [
    "KERNEL_SETS",
    "TOLERANCE_HORIZON",
    "TORCH_HYPERPARAMETER_SETS",
    "DriftReport",
    "GoldenTrace",
    "GoldenTraceError",
    "Iterate",
    "KernelSection",
    "MeasuredTolerance",
    "RecordFile",
    "RunComparison",
    "compare_file",
    "current_environment",
    "decision_change",
    "environment_differences",
    "golden_problems",
    "golden_traces_dir",
    "judge_run",
    "kernel_key",
    "merge_records",
    "read_record_file",
    "record_scipy",
    "record_suite",
    "record_target",
    "record_torch_like",
]
