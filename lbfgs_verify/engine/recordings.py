"""Uninterrupted runs recorded once per check and shared between the properties that need them.

Several properties of one ``check`` draw the same scenarios (the derandomized ci profile seeds a property by
its test function, and :func:`lbfgs_verify.properties.resume.check_transport` is one function for every
transport) and each used to re-record the same uninterrupted trajectory. Inside :func:`shared_recordings`
(``check`` opens one per run), :func:`uninterrupted` records each (target, scenario, device, thread count)
once, saving at every ``step()`` boundary the payload of every transport of :data:`SHARED_TRANSPORTS`, and
hands each later request the recorded trace and the payloads of the transport it asks for. A request for
fewer steps than were recorded is served from the prefix (a recording is deterministic: the first ``k`` steps
of a longer run are the ``k``-step run).

What is shared is read-only: the trace, and payloads that every restore materialises anew (bytes, or objects
that the transport deep-copies). The one transport whose restore loads the payload object itself
(:data:`lbfgs_verify.engine.runs.SAME_DICT`) is handed a fresh clone per request, so that a target that writes
into a loaded dict cannot change what another property sees. The live optimizer of a shared recording is
not handed out (``RecordedRun.optimizer`` is ``None``); a property that steps the recorded optimizer further
records its own run with :func:`lbfgs_verify.engine.runs.record_run`.

Outside :func:`shared_recordings` (the pytest plugin's single properties, the fuzzer), :func:`uninterrupted`
is :func:`lbfgs_verify.engine.runs.record_run`.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lbfgs_verify.compare.bitwise import clone_structure
from lbfgs_verify.compare.environment import disturb_global_rng, isolated_global_rng
from lbfgs_verify.compare.trace import Trace, record_steps
from lbfgs_verify.engine.runs import (
    DEEPCOPY_OPTIMIZER,
    DEEPCOPY_STATE_DICT,
    PICKLE_OPTIMIZER,
    PICKLE_STATE_DICT,
    SAME_DICT,
    TORCH_SAVE,
    UNINTERRUPTED_SEED,
    RecordedRun,
    Scenario,
    Transport,
    call_target,
)

SHARED_TRANSPORTS: tuple[Transport, ...] = (TORCH_SAVE, DEEPCOPY_STATE_DICT, PICKLE_STATE_DICT, DEEPCOPY_OPTIMIZER,
                                            PICKLE_OPTIMIZER, SAME_DICT)
"""The transports whose payloads a shared recording saves at every boundary."""

_CLONED_ON_REQUEST = frozenset({SAME_DICT.name})
"""Transports whose restore loads the payload object itself: each request gets its own clone."""


def _shared_name(transport: Transport) -> str | None:
    """The shared transport that saves what ``transport`` saves (the same ``save``), or ``None``: a transport
    that only restores differently (``seed.load_restores_hyperparameters``) is served the same payloads."""
    return next((t.name for t in SHARED_TRANSPORTS if t.save is transport.save), None)

MAX_RECORDINGS = 512
"""Recordings kept per check (least recently used dropped first); scenarios are small problems."""


@dataclass
class _Recording:
    """An uninterrupted run that can be extended: the live optimizer stays here and is never handed out."""

    target: Any  # kept alive, so that the id() in the key cannot be reused by another object
    scenario: Scenario
    optimizer: Any
    params: list[Tensor]
    closure: Any
    trace: Trace
    payloads: dict[str, list[Any]]
    """Transport name -> payload (or the exception its save raised) at each boundary."""
    rng: tuple[Any, Any, Any]
    """The global RNG states where the run stopped (restored before it is extended: a recording made in
    pieces sees the RNG an uninterrupted run would see)."""
    failure: BaseException | None = None
    """What the step after the last recorded one raised; the recording ends there."""


@dataclass
class RecordingCache:
    """The recordings of one check, with counts of what was recorded and what was served from them."""

    entries: OrderedDict[tuple[Any, ...], _Recording] = field(default_factory=OrderedDict)
    results: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    """Other deterministic results of the target shared between properties (:func:`shared_result`)."""
    recorded_steps: int = 0
    served_steps: int = 0

    def clear(self) -> None:
        self.entries.clear()
        self.results.clear()


_ACTIVE: contextvars.ContextVar[RecordingCache | None] = contextvars.ContextVar("lbfgs_verify_recordings",
                                                                                 default=None)


@contextlib.contextmanager
def shared_recordings() -> Iterator[RecordingCache]:
    """Share uninterrupted recordings between everything run inside (nested calls reuse the outer cache)."""
    active = _ACTIVE.get()
    if active is not None:
        yield active
        return
    cache = RecordingCache()
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)
        cache.clear()


def _target_key(target: Any) -> tuple[Any, ...]:
    """Identity of the optimizer under test: a :class:`~lbfgs_verify.engine.capabilities.Guarded` wrapper is keyed by
    what it wraps and the lacks it enforces (each property makes its own wrapper)."""
    inner = getattr(target, "_target", None)
    lacks = getattr(target, "lacks", None)
    if inner is not None and isinstance(lacks, frozenset):
        return (*_target_key(inner), tuple(sorted(lacks)))
    spec = getattr(target, "spec", None)
    factory = getattr(target, "factory", target)
    return (spec, id(factory))


def _value_key(value: Any) -> Any:
    if isinstance(value, Tensor):
        return ("tensor", str(value.dtype), str(value.device), tuple(value.shape), repr(value.tolist()))
    if isinstance(value, float):
        return ("float", value.hex())
    return (type(value).__name__, repr(value))


def _scenario_key(scenario: Scenario) -> tuple[Any, ...]:
    """Problem names are unique and stable (:class:`lbfgs_verify.problems.base.Problem`); hyperparameters
    are keyed by type and exact value (a float by its hex form, a tensor by dtype, device and values)."""
    problem = scenario.problem
    hyperparameters = tuple(sorted((k, _value_key(v)) for k, v in scenario.hyperparameters.items()))
    return (problem.name, str(problem.dtype), problem.dimension, hyperparameters)


def _rng_states() -> tuple[Any, Any, Any]:
    return torch.get_rng_state(), random.getstate(), np.random.get_state()


def _set_rng_states(states: tuple[Any, Any, Any]) -> None:
    torch.set_rng_state(states[0])
    random.setstate(states[1])
    np.random.set_state(states[2])


def _start(target: Any, scenario: Scenario, device: str | torch.device) -> _Recording:
    """Construct the optimizer as :func:`lbfgs_verify.engine.runs.record_run` does; no step yet."""
    problem = scenario.problem
    params = problem.make_params(device)
    optimizer = call_target("constructing the optimizer", lambda: scenario.make_optimizer(target, params), scenario)
    closure = problem.make_closure(params)
    trace = Trace("uninterrupted", problem.name, scenario.hyperparameters, [p.detach().clone() for p in params])
    with isolated_global_rng():
        disturb_global_rng(UNINTERRUPTED_SEED)
        rng = _rng_states()
    return _Recording(target, scenario, optimizer, params, closure, trace, {t.name: [] for t in SHARED_TRANSPORTS},
                      rng)


def _extend(recording: _Recording, steps: int) -> int:
    """Record up to ``steps`` steps in all, saving every shared transport's payload before each step. A save
    that raises is kept as its payload; a step that raises ends the recording. Returns the steps made."""
    made = 0
    with isolated_global_rng():
        _set_rng_states(recording.rng)
        while len(recording.trace.steps) < steps and recording.failure is None:
            k = len(recording.trace.steps)
            for transport in SHARED_TRANSPORTS:
                if len(recording.payloads[transport.name]) == k:
                    try:
                        payload: Any = transport.save(recording.optimizer, recording.params)
                    except Exception as exc:
                        payload = exc
                    recording.payloads[transport.name].append(payload)
            made += 1
            try:
                call_target(f"step {k} of the uninterrupted run",
                            lambda: record_steps(recording.optimizer, recording.params, recording.closure, 1,
                                                 trace=recording.trace), recording.scenario)
            except Exception as exc:
                recording.failure = exc
        recording.rng = _rng_states()
    return made


def _view(recording: _Recording, transport: Transport | None, steps: int) -> RecordedRun:
    """The first ``steps`` steps and ``transport``'s payloads. Raised instead, as a run saving only that
    transport would have raised first: its save's exception, else the exception of the step that failed."""
    name = None if transport is None else _shared_name(transport)
    if name is not None:
        for payload in recording.payloads[name][:steps]:
            if isinstance(payload, Exception):
                raise payload
    if recording.failure is not None and len(recording.trace.steps) < steps:
        raise recording.failure
    trace = replace(recording.trace, steps=recording.trace.steps[:steps])
    payloads = [] if name is None else recording.payloads[name][:steps]
    if name in _CLONED_ON_REQUEST:
        payloads = [clone_structure(p) for p in payloads]
    return RecordedRun(trace, payloads, None, recording.params)


def uninterrupted(
    target: Any,
    scenario: Scenario,
    transport: Transport | None = None,
    *,
    device: str | torch.device = "cpu",
    steps: int | None = None,
) -> RecordedRun:
    """The first ``steps`` (default ``scenario.steps``) steps of the uninterrupted run of ``scenario``, with
    ``transport``'s payload saved before each step: shared inside :func:`shared_recordings` (then
    ``optimizer`` is ``None``; asking for more steps later extends the same run), else
    :func:`lbfgs_verify.engine.runs.record_run`."""
    from lbfgs_verify.engine.runs import record_run

    n = scenario.steps if steps is None else steps
    cache = _ACTIVE.get()
    if cache is None or (transport is not None and _shared_name(transport) is None):
        return record_run(target, scenario, save=None if transport is None else transport.save, device=device,
                          steps=n)
    key = (*_target_key(target), _scenario_key(scenario), str(device), torch.get_num_threads())
    recording = cache.entries.get(key)
    if recording is None:
        recording = _start(target, scenario, device)
        cache.entries[key] = recording
        while len(cache.entries) > MAX_RECORDINGS:
            cache.entries.popitem(last=False)
    cache.entries.move_to_end(key)
    made = _extend(recording, n)
    cache.recorded_steps += made
    cache.served_steps += n - made
    return _view(recording, transport, n)


def shared_result(kind: str, target: Any, key: tuple[Any, ...], compute: Any) -> Any:
    """``compute()``, once per (``kind``, target, ``key``) inside :func:`shared_recordings` (every time
    outside). For deterministic results that several properties need and only read, e.g. the convergence
    runs that ``convergence.reaches_f_star`` and ``conformance.agrees_with_torch`` both judge. An exception
    is not kept: the next request computes again."""
    cache = _ACTIVE.get()
    if cache is None:
        return compute()
    full_key = (kind, *_target_key(target), key, torch.get_num_threads())
    if full_key not in cache.results:
        cache.results[full_key] = compute()
    return cache.results[full_key]


__all__ = ["MAX_RECORDINGS", "SHARED_TRANSPORTS", "RecordingCache", "shared_recordings", "shared_result",
           "uninterrupted"]
