"""Golden traces: recorded trajectories of torch.optim.LBFGS and scipy's L-BFGS-B, and drift against them.

A *golden trace* is what an optimizer did on a fixed problem with fixed hyperparameters: for every accepted
iterate, a hash of its bytes, its first coordinates, f there and the evaluations it cost; and the reason the
run stopped. A *record file* (``reference/traces/*.json``, shipped as ``lbfgs_verify.golden/traces``) holds
many traces and the environment that made them (python, torch, numpy, scipy, BLAS, CPU kind, thread count).

:func:`record_suite` makes the files (``lbfgs-verify record``); :func:`compare_file` re-runs every trace with
the installed libraries and says where they first differ (``lbfgs-verify drift``):

- **same environment** (same library versions, BLAS, CPU kind and thread count): every hash, f and evaluation
  count must be equal, bit for bit; anything else is a change.
- **other environment**: reductions may be ordered differently, so the runs are judged with the tolerance of
  :mod:`lbfgs_verify.properties.cuda` (:func:`drift_tolerance`) on f and the recorded coordinates over the
  first :data:`TOLERANCE_HORIZON` iterations (:func:`tolerance_horizon`), with equal evaluation counts there.
  Past the horizon rounding differences are amplified (measured: within one 20-iteration step of torch 2.4.1 vs
  2.13.0, 1 ULP in f grew to 3e-10 relative on a κ = 1e4 quadratic), so only the first difference is reported.

Protocols (what an "accepted iterate" is):

- torch-like optimizers (``torch.optim.LBFGS``, ``--target``): one record per ``step()`` call. With
  ``max_iter=1`` that is every iteration; the ``max_iter=20`` sets record ``step()`` boundaries, so the
  inner stop tests of torch/optim/lbfgs.py are covered too. Evaluations = closure calls during the step.
- scipy: one record per iteration from ``callback(intermediate_result)`` (scipy/optimize/_lbfgsb_py.py),
  evaluations as scipy counts them (:mod:`lbfgs_verify.scipy_trace`).

Iterations are numbered from 1 (iteration 1 is the first accepted iterate after the start).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import math
import platform
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lbfgs_verify.engine import comparison_environment
from lbfgs_verify.problems import mgh_suite, spd_quadratic
from lbfgs_verify.problems.base import Problem

FORMAT_VERSION = 1
HASH_CHARS = 16
"""Hex characters of the SHA-256 of an iterate's bytes kept per iteration (64 bits: collisions are irrelevant)."""
COORDINATES = 2
"""Leading coordinates of every iterate kept in clear (for a readable 'first differing quantity')."""
TOLERANCE_HORIZON = 10
"""Iterations judged with the tolerance when the environment differs (see the module docstring)."""
TORCH_STEPS = 30
"""``step()`` calls per torch run with ``max_iter=1``."""
TORCH_STEPS_MAX_ITER = 8
"""``step()`` calls per torch run with the default ``max_iter=20``."""
SCIPY_OPTIONS: dict[str, Any] = {"maxiter": 200}
"""scipy options of the recorded L-BFGS-B runs (others at scipy's defaults)."""
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "amx_tile", "asimd", "sve")
"""CPU flags that select different kernels in torch/numpy/BLAS: equal flags = the same kind of CPU here."""

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
# Environment
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


def _cpu() -> dict[str, Any]:
    model, flags = platform.processor() or "unknown", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("unknown", platform.processor()):
                model = value.strip()
            if key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    return {"model": model, "machine": platform.machine(), "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "simd_flags": sorted(flags & set(SIMD_FLAGS))}


def current_environment(threads: int) -> dict[str, Any]:
    """What makes bits: versions, BLAS builds, CPU kind and the torch thread count."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": _version("scipy"),
        "lbfgs_verify": _version("lbfgs_verify"),
        "blas": {"torch": _torch_blas(), "numpy": _numpy_like_blas("numpy"), "scipy": _numpy_like_blas("scipy")},
        "cpu": _cpu(),
        "threads": threads,
        "platform": platform.system(),
    }


def environment_differences(recorded: dict[str, Any], now: dict[str, Any], library: str) -> list[str]:
    """``"torch 2.13.0 -> 2.12.0"`` for every bit-relevant field that differs (``library``: ``torch`` or
    ``scipy``; scipy's runs also depend on numpy and scipy, both on torch, which evaluates the problems)."""
    keys = ["torch"] + (["numpy", "scipy"] if library == "scipy" else [])
    out = [f"{k} {recorded.get(k)} -> {now.get(k)}" for k in keys if recorded.get(k) != now.get(k)]
    blas_keys = ["torch"] + (["numpy", "scipy"] if library == "scipy" else [])
    rb, nb = recorded.get("blas", {}), now.get("blas", {})
    out += [f"{k} BLAS {rb.get(k)} -> {nb.get(k)}" for k in blas_keys if rb.get(k) != nb.get(k)]
    rc, nc = recorded.get("cpu", {}), now.get("cpu", {})
    for key in ("machine", "torch_capability", "simd_flags"):
        if rc.get(key) != nc.get(key):
            out.append(f"CPU {key} {rc.get(key)} -> {nc.get(key)}")
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
    """One accepted iterate: hash of its bytes, leading coordinates, f, evaluations it cost."""

    hash: str
    x: list[float | str]
    f: float | str
    evals: int

    def to_json(self) -> list[Any]:
        return [self.hash, self.x, self.f, self.evals]

    @classmethod
    def from_json(cls, row: Sequence[Any]) -> Iterate:
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
    """scipy's L-BFGS-B on ``problem`` (float64), one iterate per iteration (:mod:`lbfgs_verify.scipy_trace`)."""
    from lbfgs_verify.scipy_trace import record_scipy_lbfgsb

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
class RecordFile:
    """A record file: what was run (``optimizer``), its protocol, the environment, the traces."""

    optimizer: str
    protocol: str
    environment: dict[str, Any]
    traces: list[GoldenTrace]

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "optimizer": self.optimizer, "protocol": self.protocol,
                "environment": self.environment, "tolerance_horizon": TOLERANCE_HORIZON,
                "traces": [t.to_json() for t in self.traces]}

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({k: v for k, v in self.to_json().items() if k != "traces"}, sort_keys=True)[:-1]
                 + ', "traces": [']
        rows = [json.dumps(t.to_json(), separators=(",", ":")) for t in self.traces]
        lines.append(",\n".join(rows))
        lines.append("]}")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_record_file(path: Path) -> RecordFile:
    """A record file, or :class:`GoldenTraceError` naming the file and what is wrong with it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GoldenTraceError(f"record file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GoldenTraceError(f"record file {path} cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
        raise GoldenTraceError(f"record file {path}: format {data.get('format') if isinstance(data, dict) else None!r}"
                               f" is not {FORMAT_VERSION} (re-record it with `lbfgs-verify record`)")
    try:
        return RecordFile(str(data["optimizer"]), str(data["protocol"]), dict(data["environment"]),
                          [GoldenTrace.from_json(t) for t in data["traces"]])
    except (KeyError, TypeError, ValueError) as exc:
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


def record_suite(directory: Path, *, threads: int = 1, select: str | None = None,
                 progress: Callable[[str], None] | None = None) -> list[Path]:
    """Record torch.optim.LBFGS and scipy L-BFGS-B into ``directory`` (``select``: substring of run ids)."""
    out = []
    for name, optimizer, protocol, specs in (
        (TORCH_FILE, TORCH_OPTIMIZER, "torch-step", torch_like_specs(torch.optim.LBFGS)),
        (SCIPY_FILE, SCIPY_OPTIMIZER, "scipy-iteration", scipy_specs()),
    ):
        path = Path(directory) / name
        record_specs(specs, optimizer, protocol, threads, select, progress).write(path)
        out.append(path)
    return out


def record_target(spec: str, path: Path, *, threads: int = 1, select: str | None = None,
                  progress: Callable[[str], None] | None = None) -> Path:
    """Record the torch protocol for a target ``module:attr`` into ``path``."""
    from lbfgs_verify.targets import load_target

    target = load_target(spec)
    record_specs(torch_like_specs(target.make), spec, "torch-step", threads, select, progress).write(Path(path))
    return Path(path)


def record_specs(specs: Sequence[RunSpec], optimizer: str, protocol: str, threads: int, select: str | None,
                 progress: Callable[[str], None] | None = None) -> RecordFile:
    traces = []
    with comparison_environment(threads):
        for spec in specs:
            if select and select not in spec.id:
                continue
            if progress:
                progress(spec.id)
            traces.append(spec.run())
    return RecordFile(optimizer, protocol, current_environment(threads), traces)


# --------------------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------------------


def drift_tolerance(dtype: str) -> Any:
    """The tolerance across environments: that of ``cuda.*`` (float64 rtol 1e-9, float32 rtol 1e-4)."""
    from lbfgs_verify.properties.cuda import FLOAT32_TOLERANCE, FLOAT64_TOLERANCE

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


def _within(old: float | str, new: float | str, tolerance: Any) -> bool:
    a, b = _float(old), _float(new)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(b - a) <= tolerance.atol + tolerance.rtol * abs(a)


@dataclass
class RunComparison:
    """How a re-run compares with its record.

    Attributes:
        id: the run id.
        first_iteration: 1-based iteration of the first difference (``None``: identical).
        quantity: the first differing quantity, readable (``f: 1.5 -> 1.5000000000000002, 1 ULP, ...``).
        within_tolerance: every iteration up to :data:`TOLERANCE_HORIZON` (and the counts there) within the
            tolerance (``True`` when identical).
        tolerance_break: where and how the tolerance is first exceeded (``""`` when within).
    """

    id: str
    first_iteration: int | None = None
    quantity: str = ""
    within_tolerance: bool = True
    tolerance_break: str = ""

    @property
    def identical(self) -> bool:
        return self.first_iteration is None


def _first_quantity(a: Iterate, b: Iterate, dtype: str) -> str:
    """The first differing quantity of two iterates: evaluations, then f, then coordinates, then the hash."""
    if a.evals != b.evals:
        return f"evaluations: {a.evals} -> {b.evals}"
    if repr(a.f) != repr(b.f):
        return _quantity("f", a.f, b.f, dtype)
    k = next((k for k, (u, v) in enumerate(zip(a.x, b.x, strict=False)) if repr(u) != repr(v)), None)
    if k is not None:
        return _quantity(f"x[{k}]", a.x[k], b.x[k], dtype)
    return f"iterate hash {a.hash} -> {b.hash} (beyond the first {COORDINATES} coordinates)"


def _tolerance_break(a: Iterate, b: Iterate, dtype: str, tolerance: Any) -> str | None:
    """The first quantity of ``b`` outside ``tolerance`` around ``a`` (evaluations must be equal), or ``None``."""
    if a.evals != b.evals:
        return f"evaluations: {a.evals} -> {b.evals}"
    if not _within(a.f, b.f, tolerance):
        return _quantity("f", a.f, b.f, dtype)
    for k, (u, v) in enumerate(zip(a.x, b.x, strict=True)):
        if not _within(u, v, tolerance):
            return _quantity(f"x[{k}]", u, v, dtype)
    return None


def tolerance_horizon(trace: GoldenTrace) -> int:
    """Records judged with the tolerance: those covering the first :data:`TOLERANCE_HORIZON` iterations (one record
    per iteration for scipy and ``max_iter=1``; with torch's default ``max_iter=20``, the first ``step()``)."""
    per_record = int(trace.settings.get("max_iter", 1 if "method" in trace.settings else 20))
    return max(1, math.ceil(TOLERANCE_HORIZON / per_record))


def compare_trace(old: GoldenTrace, new: GoldenTrace) -> RunComparison:
    """First differing iteration and quantity (evaluations, then f, then coordinates, then the hash), and whether
    the records within :func:`tolerance_horizon` stay within :func:`drift_tolerance` with equal counts."""
    dtype = str(old.settings.get("dtype", "float64"))
    tolerance = drift_tolerance(dtype)
    horizon = tolerance_horizon(old)
    out = RunComparison(old.id)
    for i, (a, b) in enumerate(zip(old.iterates, new.iterates, strict=False), start=1):
        if out.first_iteration is None and a.to_json() != b.to_json():
            out.first_iteration = i
            out.quantity = _first_quantity(a, b, dtype)
        broken = _tolerance_break(a, b, dtype, tolerance) if i <= horizon and out.within_tolerance else None
        if broken is not None:
            out.within_tolerance = False
            out.tolerance_break = f"iteration {i}: {broken} (tolerance {tolerance})"
    n_old, n_new = len(old.iterates), len(new.iterates)
    if out.first_iteration is None and (n_old != n_new or old.stop != new.stop):
        out.first_iteration = min(n_old, n_new) + 1
        out.quantity = f"iterations {n_old} -> {n_new}; stop '{old.stop}' -> '{new.stop}'"
    if out.within_tolerance and min(n_old, n_new) < horizon and n_old != n_new:
        out.within_tolerance = False
        out.tolerance_break = f"iterations {n_old} -> {n_new} within the first {horizon}"
    return out


@dataclass
class DriftReport:
    """The comparison of one record file with the installed libraries (or a target)."""

    path: Path
    optimizer: str
    recorded: dict[str, Any]
    now: dict[str, Any]
    environment_changes: list[str]
    runs: list[RunComparison]

    @property
    def same_environment(self) -> bool:
        return not self.environment_changes

    @property
    def changed(self) -> list[RunComparison]:
        return [r for r in self.runs if not r.identical]

    @property
    def ok(self) -> bool:
        """Bitwise identical in the same environment; within tolerance over the horizon otherwise."""
        if self.same_environment:
            return not self.changed
        return all(r.within_tolerance for r in self.runs)

    def lines(self, *, limit: int = 15) -> list[str]:
        """The plain report: what changed, from which iteration, the first differing quantity."""
        changes = ", ".join(self.environment_changes) or "same versions, BLAS, CPU kind and threads"
        head = [f"{self.path.name}: {self.optimizer}, {len(self.runs)} recorded runs; environment: {changes}"]
        changed = self.changed
        if not changed:
            verdict = "bitwise identical" if self.same_environment else "bitwise identical despite the changes"
            return [*head, f"  {verdict} on every run"]
        first = min(changed, key=lambda r: (r.first_iteration or 0))
        cause = ", ".join(self.environment_changes) if self.environment_changes else "nothing in the environment"
        beyond = [r for r in changed if not r.within_tolerance]
        judged = ("NOT bitwise although the environment is the same" if self.same_environment else
                  f"{len(changed) - len(beyond)} within tolerance over the first {TOLERANCE_HORIZON} iterations, "
                  f"{len(beyond)} beyond")
        head.append(f"  {cause} changed {self.optimizer} on {len(changed)} of {len(self.runs)} runs from iteration "
                    f"{first.first_iteration} (first differing quantity {first.quantity}; {first.id}); {judged}")
        shown = sorted(changed, key=lambda r: (r.within_tolerance, r.first_iteration or 0))[:limit]
        for r in shown:
            mark = "within tolerance" if r.within_tolerance else f"BEYOND tolerance at {r.tolerance_break}"
            head.append(f"    {r.id}: from iteration {r.first_iteration}: {r.quantity} [{mark}]")
        if len(changed) > limit:
            head.append(f"    ... and {len(changed) - limit} more")
        return head

    def to_json(self) -> dict[str, Any]:
        return {"file": str(self.path), "optimizer": self.optimizer, "environment_changes": self.environment_changes,
                "ok": self.ok, "runs": [vars(r) for r in self.runs]}


def compare_file(path: Path, *, target: Any = None, select: str | None = None,
                 progress: Callable[[str], None] | None = None) -> DriftReport:
    """Re-run every trace of the record file at ``path`` (``target``: a ``module:attr`` or a loaded
    :class:`~lbfgs_verify.targets.Target` to run instead of the recorded optimizer, torch protocol only) and
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
        library, optimizer = "scipy", SCIPY_OPTIMIZER
    elif record.protocol == "torch-step":
        spec = target or record.optimizer
        if loaded is not None:
            factory: Callable[..., Any] = loaded.make
        elif spec == TORCH_OPTIMIZER:
            factory = torch.optim.LBFGS
        else:
            from lbfgs_verify.targets import TargetLoadError, load_target

            try:
                factory = load_target(spec).make
            except TargetLoadError as exc:
                raise GoldenTraceError(str(exc)) from exc
        by_id = {s.id: s for s in torch_like_specs(factory)}
        library, optimizer = "torch", spec
    else:
        raise GoldenTraceError(f"record file {path}: unknown protocol {record.protocol!r}")
    runs = []
    with comparison_environment(threads):
        for old in record.traces:
            if select and select not in old.id:
                continue
            spec_for = by_id.get(old.id)
            if spec_for is None:
                raise GoldenTraceError(f"record file {path}: run {old.id!r} is not a run this version of lbfgs_verify "
                                       "knows (re-record with `lbfgs-verify record`)")
            if progress:
                progress(old.id)
            new = spec_for.run()
            if new.settings != old.settings:
                raise GoldenTraceError(f"record file {path}: run {old.id!r} was recorded with {old.settings}, this "
                                       f"version of lbfgs_verify runs it with {new.settings}: re-record the file")
            runs.append(compare_trace(old, new))
    now = current_environment(threads)
    changes = environment_differences(record.environment, now, library)
    if target is not None and target != record.optimizer:
        changes.insert(0, f"optimizer {record.optimizer} -> {target}")
    return DriftReport(Path(path), optimizer, record.environment, now, changes, runs)


__all__ = [
    "TOLERANCE_HORIZON",
    "TORCH_HYPERPARAMETER_SETS",
    "DriftReport",
    "GoldenTrace",
    "GoldenTraceError",
    "Iterate",
    "RecordFile",
    "RunComparison",
    "compare_file",
    "compare_trace",
    "current_environment",
    "environment_differences",
    "golden_problems",
    "golden_traces_dir",
    "read_record_file",
    "record_scipy",
    "record_suite",
    "record_target",
    "record_torch_like",
]
