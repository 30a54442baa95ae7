"""Driving a stepper target: the harness owns the loop, the execution mode and the x64 flag.

The execution mode is fixed on both sides of a split (jit per step, or eager): jit and eager optax runs part
at iteration 7 by 8.8e-12 (measured, issue 20), so a resume check that mixed them would be meaningless. The
x64 flag is set with ``jax.enable_x64`` around every run and recorded; so are the dtype and ``XLA_FLAGS``.
A continuation in a fresh process runs ``python -m lbfgs_verify.targets.stepper`` (:func:`main`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lbfgs_verify.problems.frameworks import jax_objective, kind_problem
from lbfgs_verify.targets import serialize as default_serializer


@dataclass(frozen=True)
class Mode:
    """How a stepper runs: jit per step or eager, the x64 flag, the dtype of the parameters."""

    jit: bool = True
    x64: bool = True
    dtype: str = "float64"

    def describe(self) -> dict[str, Any]:
        import jax

        return {"execution": "jit per step" if self.jit else "eager", "jax_enable_x64": self.x64,
                "dtype": self.dtype, "jax": jax.__version__, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}


@contextmanager
def mode_context(mode: Mode) -> Iterator[None]:
    import jax

    with jax.enable_x64(mode.x64):
        yield


CACHE_OPTIONS = {"jax_compilation_cache_dir": "JAX_COMPILATION_CACHE_DIR",
                 "jax_persistent_cache_min_compile_time_secs": "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                 "jax_persistent_cache_min_entry_size_bytes": "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"}
"""JAX's persistent compilation cache options and the environment variables a fresh process reads them from."""


@contextmanager
def shared_compilation_cache() -> Iterator[None]:
    """JAX's persistent compilation cache, so that a fresh process loads the executables this one compiled
    instead of compiling them again (the same XLA executable, serialized: the bits of the run do not change; a
    tfp step takes 5-10 s to compile on this project's 2-core machine). A cache the user configured is used as
    it is; otherwise a temporary folder serves for the duration of the block and is removed after it, the
    options restored. Executables with host callbacks are not cached by JAX (they are compiled again)."""
    import shutil
    import tempfile

    import jax

    if jax.config.jax_compilation_cache_dir:
        yield
        return
    previous = {name: getattr(jax.config, name) for name in CACHE_OPTIONS}
    folder = tempfile.mkdtemp(prefix="lbfgs-verify-jax-cache-")
    try:
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        yield
    finally:
        for name, value in previous.items():
            jax.config.update(name, value)
        _reset_compilation_cache()
        shutil.rmtree(folder, ignore_errors=True)


def _reset_compilation_cache() -> None:
    """Forget the cache object bound to the removed folder (jax's own reset, private in jax 0.10)."""
    try:
        from jax._src import compilation_cache

        compilation_cache.reset_cache()
    except (ImportError, AttributeError):  # another jax: it rereads the options on its own
        pass


def compilation_cache_environment() -> dict[str, str]:
    """The environment variables that give a fresh process this process's compilation cache options."""
    import jax

    if not jax.config.jax_compilation_cache_dir:
        return {}
    return {variable: str(getattr(jax.config, name)) for name, variable in CACHE_OPTIONS.items()}


@dataclass
class StepperRun:
    """Iterates x₀..x_K (numpy copies), the infos, and the final (params, state)."""

    iterates: list[np.ndarray] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)
    params: Any = None
    state: Any = None


_COMPILED: dict[tuple[Any, ...], Any] = {}


def _step_function(adapter: Any, hyperparameters: Mapping[str, Any], problem: str, mode: Mode) -> tuple[Any, Any]:
    """(stepper, step(params, state)) with the objective bound; jitted once per configuration and process."""
    import jax

    key = (id(adapter), tuple(sorted((k, repr(v)) for k, v in hyperparameters.items())), problem, mode)
    if key not in _COMPILED:
        stepper = adapter.make(**hyperparameters)
        objective = jax_objective(problem)

        def step(params: Any, state: Any) -> Any:
            return stepper.step(params, state, objective)

        _COMPILED[key] = (stepper, jax.jit(step) if mode.jit else step)
    return _COMPILED[key]


def start_params(problem: str, mode: Mode) -> Any:
    import jax.numpy as jnp

    return jnp.asarray(kind_problem(problem).x0, dtype=mode.dtype)


def run_stepper(adapter: Any, hyperparameters: Mapping[str, Any], problem: str, steps: int, mode: Mode,
                params: Any = None, state: Any = None) -> StepperRun:
    """``steps`` iterations from (params, state), by default from the problem's start and ``init``."""
    with mode_context(mode):
        stepper, step = _step_function(adapter, hyperparameters, problem, mode)
        if params is None:
            params = start_params(problem, mode)
        if state is None:
            state = stepper.init(params)
        run = StepperRun(iterates=[np.array(params, copy=True)])
        for _ in range(steps):
            params, state, info = step(params, state)
            run.iterates.append(np.array(params, copy=True))
            run.infos.append({k: np.asarray(v).item() for k, v in dict(info).items()})
        run.params, run.state = params, state
    return run


def routes(adapter: Any, hyperparameters: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Serializer routes: ``manifest`` (numpy leaves + manifest, :mod:`lbfgs_verify.targets.serialize`) and the
    stepper's own ``serialize``/``deserialize`` when it has them: name -> (save(tree), load(blob, template))."""
    out: dict[str, tuple[Any, Any]] = {
        "manifest": (lambda tree: default_serializer.serialize(tree, hyperparameters),
                     lambda blob, template: default_serializer.deserialize(blob, template, hyperparameters)),
    }
    stepper = adapter.make(**hyperparameters)
    if callable(getattr(stepper, "serialize", None)) and callable(getattr(stepper, "deserialize", None)):
        out["own"] = (stepper.serialize, stepper.deserialize)
    return out


def continue_in_fresh_process(spec: str, hyperparameters: Mapping[str, Any], problem: str, mode: Mode,
                              blobs: Mapping[str, bytes], steps: int, timeout: float = 240.0
                              ) -> dict[str, list[np.ndarray]]:
    """Restore each checkpoint ``(params, state)`` of ``blobs`` (route name -> bytes written by that route) in one
    new Python process, check it against a template made with the same hyperparameters, run ``steps`` more
    iterations there from each; route -> their iterates."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lbfgs-verify-resume-") as folder:
        paths = {}
        for route, blob in blobs.items():
            paths[route] = os.path.join(folder, f"{route}.bin")
            with open(paths[route], "wb") as handle:
                handle.write(blob)
        request = {"spec": spec, "hyperparameters": {k: repr(v) for k, v in hyperparameters.items()},
                   "problem": problem, "jit": mode.jit, "x64": mode.x64, "dtype": mode.dtype, "checkpoints": paths,
                   "steps": steps, "cwd": os.getcwd()}
        env = {**os.environ, **compilation_cache_environment()}
        env.setdefault("JAX_PLATFORMS", "cpu")
        done = subprocess.run([sys.executable, "-m", "lbfgs_verify.targets.stepper"], input=json.dumps(request),
                              capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the fresh process exited {done.returncode}: {done.stderr.strip()[-1500:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return {route: [np.frombuffer(bytes.fromhex(h), dtype=np.dtype(answer["dtype"])).copy() for h in iterates]
            for route, iterates in answer["iterates"].items()}


def main() -> int:
    """The fresh process: read the request (JSON on stdin), restore, continue, print the iterates' bytes."""
    import ast

    request = json.loads(sys.stdin.read())
    os.chdir(request["cwd"])
    from lbfgs_verify.targets.load import load_target

    target = load_target(request["spec"])
    adapter = target.adapter  # type: ignore[attr-defined]
    hyperparameters = {k: ast.literal_eval(v) for k, v in request["hyperparameters"].items()}
    mode = Mode(jit=request["jit"], x64=request["x64"], dtype=request["dtype"])
    out: dict[str, Any] = {"dtype": "", "iterates": {}}
    for route, path in request["checkpoints"].items():
        with open(path, "rb") as handle:
            blob = handle.read()
        with mode_context(mode):
            stepper = adapter.make(**hyperparameters)
            params0 = start_params(request["problem"], mode)
            template = (params0, stepper.init(params0))
            _, load = routes(adapter, hyperparameters)[route]
            params, state = load(blob, template)
        run = run_stepper(adapter, hyperparameters, request["problem"], request["steps"], mode, params, state)
        out["dtype"] = run.iterates[-1].dtype.str
        out["iterates"][route] = [x.tobytes().hex() for x in run.iterates[1:]]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
