"""The run engine: scenario -> recorded trace -> comparison, and the transports (routes) between them.

One engine serves the property suite (:mod:`lbfgs_verify.properties`), the state_dict fuzzer and the
reports; none of them re-implements recording, resuming or the process hygiene of bitwise comparisons.

- :class:`Scenario`: a problem, the optimizer's keyword arguments and a number of ``step()`` calls.
- Recording and resuming: :func:`record_run` (uninterrupted, saving before each step), :func:`resume_run`
  (restore at a split in a disturbed process and continue), :func:`continue_run`, :func:`step_divergence`.
- :class:`Transport`: one way to carry an optimizer across a process boundary (``torch.save`` ->
  ``torch.load(weights_only=True)``, deepcopy, pickle of the state_dict or of the optimizer).
- Process hygiene is :mod:`lbfgs_verify.compare.environment` (fixed thread count, global RNGs restored, known
  harmless warnings silenced); :func:`disturb_global_rng` (a resumed process does not share the RNG state).
- Calling into the target: :func:`call_target` turns the target's exceptions into :class:`PropertyFailed`
  with what was being done and where it was raised (:func:`exception_origin`).

Sources: torch/optim/lbfgs.py and torch/optim/optimizer.py (torch 2.13); pytorch issues #35047 (resumed runs
diverge), #196083/#147288 (aliasing after load), mace #1653 (a resume that silently starts a fresh L-BFGS).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import pickle
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lbfgs_verify.compare.bitwise import Difference, clone_structure, first_difference
from lbfgs_verify.compare.environment import current_state_zero_sign, disturb_global_rng
from lbfgs_verify.compare.trace import Divergence, StepRecord, Trace, record_steps, trace_divergence
from lbfgs_verify.engine.evidence import PropertyFailed
from lbfgs_verify.problems.base import Problem
from lbfgs_verify.targets.load import own_arguments


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --------------------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------------------


def _fresh(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, Tensor) else value


def _describe_value(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"torch.tensor({value.item()!r}, dtype=torch.{_dtype_name(value.dtype)})"
    return repr(value)


@dataclass(frozen=True)
class Scenario:
    """A problem, the optimizer's keyword arguments, and how many ``step()`` calls to record.

    ``hyperparameters`` holds only the arguments given (others stay at the target's defaults); a tensor
    ``lr`` is cloned for each optimizer made (:meth:`optimizer_kwargs`).
    """

    problem: Problem
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    steps: int = 6

    def optimizer_kwargs(self) -> dict[str, Any]:
        """Fresh keyword arguments (tensors cloned, so optimizers never share a hyperparameter tensor)."""
        return {k: _fresh(v) for k, v in self.hyperparameters.items()}

    def make_optimizer(self, target: Any, params: Sequence[Tensor]) -> Any:
        """``target.make(params, **kwargs)``; ``target`` is a :class:`lbfgs_verify.targets.load.Target` or a class."""
        make = getattr(target, "make", None)
        if make is None:
            return target(list(params), **own_arguments(target, self.optimizer_kwargs()))
        return make(params, **self.optimizer_kwargs())

    def describe_hyperparameters(self) -> str:
        return ", ".join(f"{k}={_describe_value(v)}" for k, v in self.hyperparameters.items()) or "(defaults)"

    def describe(self) -> str:
        return f"problem={self.problem.name}, {self.describe_hyperparameters()}, steps={self.steps}"

    def evidence(self) -> dict[str, Any]:
        """JSON-able identification of the scenario, for :class:`PropertyFailed` evidence."""
        return {"problem": self.problem.name,
                "hyperparameters": {k: _describe_value(v) for k, v in self.hyperparameters.items()},
                "steps": self.steps}

    def __repr__(self) -> str:
        return f"Scenario({self.describe()})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """hypothesis' pretty printer (falsifying examples) shows the one-line description too."""
        printer.text(repr(self))


# --------------------------------------------------------------------------------------------------------
# Process-state hygiene
# --------------------------------------------------------------------------------------------------------


# Notes
# --------------------------------------------------------------------------------------------------------

_NOTES: ContextVar[list[str] | None] = ContextVar("lbfgs_verify_notes", default=None)
MAX_NOTES = 10
"""Notes kept per property (the first ones; the same note is kept once)."""


@contextlib.contextmanager
def collecting_notes() -> Iterator[list[str]]:
    """Collect :func:`add_note` calls made inside the block (the property runner keeps them on the result)."""
    notes: list[str] = []
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


def add_note(text: str) -> None:
    """Record an observation that is not a failure (e.g. a state entry that differs only in the sign of zero);
    ignored outside :func:`collecting_notes`, kept once, at most :data:`MAX_NOTES`."""
    notes = _NOTES.get()
    if notes is not None and text not in notes and len(notes) < MAX_NOTES:
        notes.append(text)


def state_difference(expected: Any, actual: Any, path: str = "state_dict") -> Difference | None:
    """:func:`lbfgs_verify.compare.bitwise.first_difference` for optimizer state in the mode in force
    (:func:`lbfgs_verify.compare.environment.state_zero_sign`); a difference only in the sign of zeros is a note
    (:func:`add_note`)."""
    notes: list[str] = []
    difference = first_difference(expected, actual, path, zero_sign=current_state_zero_sign(), notes=notes)
    for text in notes:
        add_note(text)
    return difference


# --------------------------------------------------------------------------------------------------------
# Seeds, failure reporting, recording and resuming
# --------------------------------------------------------------------------------------------------------


UNINTERRUPTED_SEED = 0
"""Global RNG seed of every uninterrupted run; resumed runs use other seeds (:func:`resume_seed`)."""


def resume_seed(split: int) -> int:
    """The global RNG seed a resumed run starts with: unrelated to :data:`UNINTERRUPTED_SEED`."""
    return 7919 * (split + 1) + 104729


# --------------------------------------------------------------------------------------------------------
# Failure reporting
# --------------------------------------------------------------------------------------------------------


def _json_number(value: float | None) -> float | str | None:
    if value is None:
        return None
    return str(value) if math.isinf(value) or math.isnan(value) else value


def difference_evidence(difference: Difference) -> dict[str, Any]:
    """The JSON-able fields of a :class:`Difference` (``inf`` ULPs as the string ``"inf"``)."""
    return {"path": difference.path, "kind": difference.kind, "difference": difference.detail,
            "ulps": _json_number(difference.ulps), "max_abs": _json_number(difference.max_abs),
            "ulps_text": difference.ulps_text}


_DIAGNOSIS_KEYS = ("diagnosis", "diagnosis_detail", "control")


def divergence_failure(
    what: str, scenario: Scenario, divergence: Divergence, *, split: int | None = None, **extra: Any
) -> PropertyFailed:
    """A :class:`PropertyFailed` naming the problem, hyperparameters, split, first differing step, key, ULPs."""
    where = f"; split after {split} step(s)" if split is not None else ""
    extras = "".join(f"; {k}={v}" for k, v in extra.items() if k not in _DIAGNOSIS_KEYS)
    diagnosis = (f"\n  diagnosis ({extra.get('control', 'control run')}): {extra['diagnosis_detail']}"
                 if extra.get("diagnosis_detail") else "")
    message = (f"{what}: first difference at step {divergence.step}: {divergence.difference}\n"
               f"  {scenario.describe()}{where}{extras}{diagnosis}")
    evidence = {**scenario.evidence(), "condition": what, "split": split, "first_differing_step": divergence.step,
                **difference_evidence(divergence.difference), **extra}
    return PropertyFailed(message, evidence)


def exception_origin(exc: BaseException) -> str:
    """``path.py:LINE in function`` of the innermost frame that raised ``exc`` (site-packages prefix cut), or ``""``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    return f"{short_path(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name}"


def raised_failure(action: str, exc: BaseException, scenario: Scenario | None, context: str = "",
                   **extra: Any) -> PropertyFailed:
    """A :class:`PropertyFailed` for an exception the target raised while ``action``; the scenario's description
    (or ``context``, where there is no scenario) goes on a line of its own."""
    origin = exception_origin(exc)
    where = f" (at {origin})" if origin else ""
    described = scenario.describe() if scenario is not None else context
    context = f"\n  {described}" if described else ""
    extras = "".join(f"; {k}={v}" for k, v in extra.items())
    message = f"{action} raised {type(exc).__name__}: {exc}{where}{context}{extras}"
    evidence = {**(scenario.evidence() if scenario is not None else {}), "action": action,
                "exception": type(exc).__name__, "message": str(exc), "origin": origin, **extra}
    return PropertyFailed(message, evidence)


def short_path(filename: str) -> str:
    """``torch/optim/lbfgs.py`` rather than the full site-packages path; a file under the working directory
    relative to it (``mypkg/optim.py``): reports and reproductions do not carry the machine's paths."""
    for marker in ("site-packages/", "dist-packages/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename
    return filename if relative.startswith("..") else relative


def call_target(action: str, fn: Callable[[], Any], scenario: Scenario | None = None, context: str = "",
                **extra: Any) -> Any:
    """Call into the target; an exception it raises becomes a :class:`PropertyFailed` saying what was done
    (and, on a line of its own, the scenario or ``context``)."""
    try:
        return fn()
    except PropertyFailed:
        raise
    except Exception as exc:
        if is_rejection(exc):  # a declared-lacking feature was refused (lbfgs_verify.engine.capabilities.Guarded)
            raise
        raise raised_failure(action, exc, scenario, context, **extra) from exc


def is_rejection(exc: BaseException) -> bool:
    """hypothesis' ``reject()``/``assume()`` signal (or a fixed scenario refused for a declared lack), which must
    pass through :func:`call_target` untouched."""
    from hypothesis.errors import UnsatisfiedAssumption

    from lbfgs_verify.engine.capabilities import LackedFeatureUsed

    return isinstance(exc, (UnsatisfiedAssumption, LackedFeatureUsed))


# --------------------------------------------------------------------------------------------------------
# Recording and resuming
# --------------------------------------------------------------------------------------------------------


Payload = Any
SaveFn = Callable[[Any, list[Tensor]], Payload]
"""``save(optimizer, params) -> payload``: called at a step boundary; the payload must be a snapshot."""
RestoreFn = Callable[[Payload, Scenario, Any, list[Tensor]], tuple[Any, list[Tensor]]]
"""``restore(payload, scenario, target, fresh_params) -> (optimizer, params it optimizes)``."""


@dataclass(frozen=True)
class Transport:
    """One way to carry an optimizer across a process boundary.

    Attributes:
        name: what is done, for messages (``torch.save -> torch.load(weights_only=True)``).
        save: takes the snapshot at the boundary.
        restore: makes a fresh optimizer from the snapshot (a new copy of it for every restore).
    """

    name: str
    save: SaveFn
    restore: RestoreFn


def torch_save_bytes(state: Any) -> bytes:
    """``torch.save`` into memory."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def torch_load_bytes(data: bytes) -> Any:
    """``torch.load(..., weights_only=True)`` from memory (always weights_only: the safe loader users must use)."""
    return torch.load(io.BytesIO(data), weights_only=True)


def state_dict_transport(name: str, dump: Callable[[Any], Payload], load: Callable[[Payload], Any]) -> Transport:
    """A transport of ``optimizer.state_dict()``: ``dump`` at the boundary, ``load`` + ``load_state_dict``
    into a new optimizer (same hyperparameters) on fresh parameter tensors."""

    def save(optimizer: Any, params: list[Tensor]) -> Payload:
        state = call_target("optimizer.state_dict()", optimizer.state_dict)
        return call_target(f"saving the state_dict ({name})", lambda: dump(state))

    def restore(payload: Payload, scenario: Scenario, target: Any, params: list[Tensor]) -> tuple[Any, list[Tensor]]:
        state = call_target(f"loading the saved state_dict ({name})", lambda: load(payload))
        optimizer = call_target("constructing the new optimizer", lambda: scenario.make_optimizer(target, params))
        call_target("new_optimizer.load_state_dict(saved)", lambda: optimizer.load_state_dict(state))
        return optimizer, params

    return Transport(name, save, restore)


def optimizer_transport(name: str, dump: Callable[[Any], Payload], load: Callable[[Payload], Any]) -> Transport:
    """A transport of the optimizer object itself together with its parameters (as a user pickles a model
    and its optimizer together); the restored optimizer optimizes the restored parameter copies."""

    def save(optimizer: Any, params: list[Tensor]) -> Payload:
        return call_target(f"{name} of (optimizer, params)", lambda: dump((optimizer, list(params))))

    def restore(payload: Payload, scenario: Scenario, target: Any, params: list[Tensor]) -> tuple[Any, list[Tensor]]:
        optimizer, restored = call_target(f"{name}: restoring (optimizer, params)", lambda: load(payload))
        return optimizer, list(restored)

    return Transport(name, save, restore)


TORCH_SAVE = state_dict_transport("torch.save -> torch.load(weights_only=True)", torch_save_bytes, torch_load_bytes)
DEEPCOPY_STATE_DICT = state_dict_transport("copy.deepcopy(state_dict)", copy.deepcopy, copy.deepcopy)
PICKLE_STATE_DICT = state_dict_transport("pickle of the state_dict", pickle.dumps, pickle.loads)
DEEPCOPY_OPTIMIZER = optimizer_transport("copy.deepcopy", copy.deepcopy, copy.deepcopy)
PICKLE_OPTIMIZER = optimizer_transport("pickle round trip", pickle.dumps, pickle.loads)


def _snapshot_state_dict(optimizer: Any, params: list[Tensor]) -> Payload:
    return clone_structure(call_target("optimizer.state_dict()", optimizer.state_dict))


def _load_same_object(payload: Payload, scenario: Scenario, target: Any,
                      params: list[Tensor]) -> tuple[Any, list[Tensor]]:
    optimizer = call_target("constructing the new optimizer", lambda: scenario.make_optimizer(target, params))
    call_target("new_optimizer.load_state_dict(saved) (the same in-memory dict each time)",
                lambda: optimizer.load_state_dict(payload))
    return optimizer, params


SAME_DICT = Transport("the same in-memory state_dict, loaded as is", _snapshot_state_dict, _load_same_object)
"""Save: a harness-made snapshot of ``state_dict()`` (:func:`lbfgs_verify.compare.bitwise.clone_structure`); restore:
``load_state_dict`` of that very object (each restore of one payload loads the same dict again)."""


@dataclass
class RecordedRun:
    """An uninterrupted run: its trace, the payloads saved before each step, the live optimizer and params."""

    trace: Trace
    payloads: list[Payload]
    optimizer: Any
    params: list[Tensor]


def record_run(
    target: Any,
    scenario: Scenario,
    *,
    save: SaveFn | None = None,
    device: str | torch.device = "cpu",
    seed: int = UNINTERRUPTED_SEED,
    steps: int | None = None,
    label: str = "uninterrupted",
) -> RecordedRun:
    """Run ``scenario`` uninterrupted, recording every step; ``save`` is called before each step."""
    problem = scenario.problem
    params = problem.make_params(device)
    optimizer = call_target("constructing the optimizer", lambda: scenario.make_optimizer(target, params), scenario)
    closure = problem.make_closure(params)
    disturb_global_rng(seed)
    trace = Trace(label, problem.name, scenario.hyperparameters, [p.detach().clone() for p in params])
    payloads: list[Payload] = []
    for k in range(scenario.steps if steps is None else steps):
        if save is not None:
            payloads.append(save(optimizer, params))
        call_target(f"step {k} of the {label} run", lambda: record_steps(optimizer, params, closure, 1, trace=trace),
                    scenario)
    return RecordedRun(trace, payloads, optimizer, params)


def params_at(trace: Trace, boundary: int) -> list[Tensor]:
    """The parameter values after ``boundary`` steps of ``trace`` (clones, safe to hand out)."""
    source = trace.initial_params if boundary == 0 else trace.steps[boundary - 1].params
    return [p.detach().clone() for p in source]


def fresh_params(
    values: Sequence[Tensor], like: Sequence[Tensor], device: str | torch.device | None = None
) -> list[Tensor]:
    """New leaf tensors holding ``values`` (on ``device``), ``requires_grad`` and memory layout (strides) as in
    ``like`` (:func:`lbfgs_verify.problems.base.leaf_like`: a resumed run gets the parameters' layout too)."""
    from lbfgs_verify.problems.base import leaf_like

    return [leaf_like(v, ref, device).requires_grad_(ref.requires_grad) for v, ref in zip(values, like, strict=True)]


def continue_run(
    optimizer: Any, params: list[Tensor], scenario: Scenario, first_index: int, n_steps: int, label: str,
    *, expected: Sequence[StepRecord] | None = None, stop: Callable[[StepRecord], bool] | None = None,
) -> list[StepRecord]:
    """``n_steps`` recorded steps of ``optimizer``, numbered from ``first_index`` (the uninterrupted numbering).

    With ``expected`` (the steps the run must reproduce, from ``first_index`` on), the run stops after the first
    step that differs from its expected step, and with ``stop`` after the first step for which it is true:
    what follows a failure is not looked at, so not computed."""
    closure = scenario.problem.make_closure(params)
    trace = Trace(label, scenario.problem.name, scenario.hyperparameters, [p.detach().clone() for p in params])
    for i in range(n_steps):
        call_target(f"step {first_index + i} of the {label} run",
                    lambda: record_steps(optimizer, params, closure, 1, trace=trace), scenario)
        trace.steps[-1].index += first_index
        if expected is not None and i < len(expected) and step_divergence(expected[i:i + 1], trace.steps[-1:]):
            break
        if stop is not None and stop(trace.steps[-1]):
            break
    return trace.steps


def resume_run(
    target: Any,
    scenario: Scenario,
    reference: RecordedRun,
    split: int,
    transport: Transport,
    n_steps: int,
    *,
    device: str | torch.device = "cpu",
    seed: int | None = None,
    expected: Sequence[StepRecord] | None = None,
    stop: Callable[[StepRecord], bool] | None = None,
) -> list[StepRecord]:
    """Restore the payload saved before step ``split`` in a disturbed process and record ``n_steps`` steps
    (with ``expected``, the steps to reproduce, or ``stop``: only up to the first step that fails)."""
    params = fresh_params(params_at(reference.trace, split), reference.params, device)
    disturb_global_rng(resume_seed(split) if seed is None else seed)
    try:
        optimizer, params = transport.restore(reference.payloads[split], scenario, target, params)
        return continue_run(optimizer, params, scenario, split, n_steps, "resumed", expected=expected, stop=stop)
    except PropertyFailed as exc:
        if "split" in exc.evidence:
            raise
        where = f"split after {split} step(s); transport={transport.name}"
        message = str(exc) if scenario.problem.name in str(exc) else f"{exc}\n  {scenario.describe()}"
        raise PropertyFailed(f"{message}; {where}", {**scenario.evidence(), **exc.evidence, "split": split,
                                                       "transport": transport.name}) from exc


def resume_chain(
    target: Any,
    scenario: Scenario,
    reference: RecordedRun,
    splits: Sequence[int],
    transport: Transport,
    *,
    device: str | torch.device = "cpu",
    expected: Sequence[StepRecord] | None = None,
) -> list[StepRecord]:
    """Continue to the end of the run from the payload saved before step ``min(splits)``; at each later split,
    save the resumed optimizer through ``transport`` and go on from a fresh restore of that payload (the
    checkpoints of a job preempted several times), each restore in a disturbed process. The steps are
    numbered as in the uninterrupted run; every drawn split is thus a load followed by a run to the end, for
    ``steps - min(splits)`` steps in all instead of one full continuation per split. With ``expected`` (the
    uninterrupted steps from ``min(splits)`` on), the chain stops after the first step that differs."""
    chain = sorted(set(splits))
    if not chain:
        return []
    first = chain[0]
    steps: list[StepRecord] = []
    start = first
    try:
        params = fresh_params(params_at(reference.trace, first), reference.params, device)
        disturb_global_rng(resume_seed(first))
        optimizer, params = transport.restore(reference.payloads[first], scenario, target, params)
        for end in [*chain[1:], scenario.steps]:
            segment = continue_run(optimizer, params, scenario, start, end - start, "resumed",
                                   expected=expected[start - first:end - first] if expected is not None else None)
            steps += segment
            if end == scenario.steps or len(segment) < end - start:
                break
            payload = transport.save(optimizer, params)
            start = end
            params = fresh_params(params, params, device)
            disturb_global_rng(resume_seed(end))
            optimizer, params = transport.restore(payload, scenario, target, params)
    except PropertyFailed as exc:
        if "split" in exc.evidence:
            raise
        where = (f"split after {first} step(s), the resumed run re-saved and re-loaded at "
                 f"{', '.join(map(str, [s for s in chain[1:] if s <= start])) or 'no later split yet'}; "
                 f"transport={transport.name}")
        message = str(exc) if scenario.problem.name in str(exc) else f"{exc}\n  {scenario.describe()}"
        raise PropertyFailed(f"{message}; {where}", {**scenario.evidence(), **exc.evidence, "split": first,
                                                       "chain": chain, "transport": transport.name}) from exc
    return steps


def state_after_load(
    loader: Any, scenario: Scenario, saved: RecordedRun, split: int, transport: Transport,
    device: str | torch.device = "cpu",
) -> dict[str, str]:
    """Diagnosis for a failed resume: does ``state_dict()`` right after the restore already differ from the state
    saved at the split? (``{"state_right_after_load": ...}``; empty when it cannot be told.)"""
    if split == 0 or saved.trace.steps[split - 1].state is None:
        return {}
    try:
        params = fresh_params(params_at(saved.trace, split), saved.params, device)
        optimizer, _ = transport.restore(saved.payloads[split], scenario, loader, params)
        difference = state_difference(saved.trace.steps[split - 1].state, optimizer.state_dict(), "state_dict")
    except Exception as exc:
        return {"state_right_after_load": f"could not be read: {type(exc).__name__}: {exc}"}
    if difference is None:
        return {"state_right_after_load": "equal to the saved state (the difference arises while stepping)"}
    return {"state_right_after_load": f"already differs from the saved state: {difference}"}


COLD_START = "cold start"
"""The ``diagnosis`` of a failed resume whose continuation equals a fresh optimizer started at the split."""

COLD_START_EXPLANATION = ("the resumed run equals a cold start from the split (a fresh optimizer at the split's "
                          "parameters, nothing loaded): the saved state is not used on load, or something the "
                          "optimizer relies on is not saved (a counter or the history kept outside state_dict())")


def cold_start_diagnosis(
    target: Any, scenario: Scenario, reference: RecordedRun, split: int, resumed: Sequence[StepRecord],
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Differential control for a resumed run that left the uninterrupted one: a *cold start* (a new optimizer on
    the split's parameters, nothing loaded) run for as many steps as ``resumed`` holds.

    When the resumed steps equal the cold start's (parameters, returned losses, closure calls and losses,
    bitwise; the state is not compared: counters may differ) while the cold start itself differs from the
    uninterrupted run, the load had no effect: ``{"diagnosis": "cold start", ...}``. Otherwise ``{}`` (the
    failure is something else, or the control could not run)."""
    if split <= 0 or not resumed:
        return {}
    expected = reference.trace.steps[split:split + len(resumed)]
    if len(expected) < len(resumed):
        return {}
    try:
        params = fresh_params(params_at(reference.trace, split), reference.params, device)
        disturb_global_rng(resume_seed(split))
        optimizer = scenario.make_optimizer(target, params)
        cold = continue_run(optimizer, params, scenario, split, len(resumed), "cold start")
    except Exception:
        return {}
    if step_divergence(cold, resumed, compare_state=False) is not None:
        return {}
    if step_divergence(expected, cold, compare_state=False) is None:
        return {}  # the cold start follows the uninterrupted run: nothing tells a lost state apart here
    return {"diagnosis": COLD_START, "diagnosis_detail": COLD_START_EXPLANATION,
            "control": f"cold start from step {split}, {len(resumed)} step(s)"}


def step_divergence(expected: Sequence[StepRecord], actual: Sequence[StepRecord], *,
                    compare_state: bool = True) -> Divergence | None:
    """First bitwise difference between two step sequences: params, returned loss, state, then closure calls.

    The state is compared in the zero-sign mode in force (:func:`lbfgs_verify.compare.environment.state_zero_sign`;
    bitwise by default)."""
    if compare_state and current_state_zero_sign() != "bitwise":
        divergence = _divergence_with_state_mode(expected, actual)
    else:
        divergence = trace_divergence(Trace("expected", "", {}, [], list(expected)),
                                      Trace("actual", "", {}, [], list(actual)), compare_state=compare_state)
    if divergence is not None:
        return divergence
    for e, a in zip(expected, actual, strict=False):
        if e.closure_calls != a.closure_calls:
            return Divergence(e.index, Difference("closure calls", "length",
                                                  f"{e.closure_calls} closure calls != {a.closure_calls}"))
        difference = first_difference([ev.loss for ev in e.evaluations], [ev.loss for ev in a.evaluations],
                                      "closure losses")
        if difference is not None:
            return Divergence(e.index, difference)
    return None


def _divergence_with_state_mode(expected: Sequence[StepRecord], actual: Sequence[StepRecord]) -> Divergence | None:
    """:func:`lbfgs_verify.compare.trace.trace_divergence` (params, returned loss, state per step, then the length) with
    the state compared by :func:`state_difference`."""
    for e, a in zip(expected, actual, strict=False):
        difference = first_difference(e.params, a.params, "params")
        if difference is None:
            difference = first_difference(e.returned, a.returned, "returned loss")
        if difference is None and e.state is not None and a.state is not None:
            difference = state_difference(e.state, a.state, "state_dict")
        if difference is not None:
            return Divergence(e.index, difference)
    if len(expected) != len(actual):
        return Divergence(min(len(expected), len(actual)),
                          Difference("steps", "length", f"{len(expected)} recorded steps != {len(actual)}"))
    return None


# --------------------------------------------------------------------------------------------------------
# Routes: the state_dict fuzzer's ways of carrying a state, built on the transports above
# --------------------------------------------------------------------------------------------------------


@dataclass
class RouteRun:
    """What one route did after the split: the continuations that must follow the expected run.

    Attributes:
        followers: ``(label, steps)`` for every optimizer that must continue exactly as ``expected``
            (the loaded optimizer, the source after the hand-over, ...), steps numbered from the split.
        expected: the steps they must equal; ``None`` means the uninterrupted run's steps after the split.
        broken: further violated contracts, one sentence each (e.g. the dict handed to ``load_state_dict``
            changed while the loaded optimizers stepped).
    """

    followers: list[tuple[str, list[StepRecord]]]
    expected: list[StepRecord] | None = None
    broken: list[str] = field(default_factory=list)


RouteFn = Callable[[Any, Scenario, int, int], RouteRun]
"""``run(target, scenario, split, n_after) -> RouteRun``: carry the state taken after ``split`` steps."""


@dataclass(frozen=True)
class Route:
    """One named way of carrying an optimizer state (the names are part of ``lbfgs-verify fuzz``'s interface).

    Attributes:
        name: interface name, e.g. ``save-load``.
        description: what is done, for messages and reproductions.
        run: carries the state and records the continuations (:data:`RouteFn`).
        needs_cuda: the route is skipped where ``torch.cuda.is_available()`` is false.
        widens_dtype: the route moves the parameters to a wider dtype (only narrower states are drawn).
    """

    name: str
    description: str
    run: RouteFn
    needs_cuda: bool = False
    widens_dtype: bool = False


def _source_run(target: Any, scenario: Scenario, split: int, device: str | torch.device = "cpu") -> RecordedRun:
    return record_run(target, scenario, steps=split, device=device, label="source")


def _split_params(source: RecordedRun, split: int, device: str | torch.device | None = None,
                  dtype_of: Callable[[torch.dtype], torch.dtype] | None = None) -> list[Tensor]:
    values = params_at(source.trace, split)
    if dtype_of is not None:
        values = [v.to(dtype_of(v.dtype)) for v in values]
    return fresh_params(values, source.params, device)


def _load_into_new(target: Any, scenario: Scenario, params: list[Tensor], state: Any, what: str) -> Any:
    optimizer = call_target("constructing the new optimizer", lambda: scenario.make_optimizer(target, params), scenario)
    call_target(f"new_optimizer.load_state_dict({what})", lambda: optimizer.load_state_dict(state), scenario)
    return optimizer


def transport_route(name: str, transport: Transport, description: str | None = None) -> Route:
    """A route over a :class:`Transport`: save after ``split`` steps, keep stepping the source, then restore
    the payload into a new optimizer (on the parameters of the split) and continue it."""

    def run(target: Any, scenario: Scenario, split: int, n_after: int) -> RouteRun:
        source = _source_run(target, scenario, split)
        payload = transport.save(source.optimizer, source.params)
        source_steps = continue_run(source.optimizer, source.params, scenario, split, n_after, "source after saving")
        params = _split_params(source, split)
        disturb_global_rng(resume_seed(split))
        optimizer, params = transport.restore(payload, scenario, target, params)
        loaded = continue_run(optimizer, params, scenario, split, n_after, "loaded")
        return RouteRun([("loaded", loaded), ("source after saving", source_steps)])

    return Route(name, description or transport.name, run)


class _TemporaryFile:
    """A payload living in a real file of a temporary directory (removed with the payload)."""

    def __init__(self, state: Any) -> None:
        import os
        import shutil
        import tempfile
        import weakref

        directory = tempfile.mkdtemp(prefix="lbfgs-verify-")
        weakref.finalize(self, shutil.rmtree, directory, True)
        self.path = os.path.join(directory, "optimizer.pt")
        torch.save(state, self.path)

    def load(self) -> Any:
        return torch.load(self.path, weights_only=True)


def _live_state_dict(optimizer: Any, params: list[Tensor]) -> Any:
    return call_target("optimizer.state_dict()", optimizer.state_dict)


def _load_live(payload: Any, scenario: Scenario, target: Any, params: list[Tensor]) -> tuple[Any, list[Tensor]]:
    return _load_into_new(target, scenario, params, payload, "the state_dict taken earlier"), params


SAVE_LOAD_FILE = state_dict_transport("torch.save(file) -> torch.load(file, weights_only=True)", _TemporaryFile,
                                      lambda payload: payload.load())
SNAPSHOT = Transport("state_dict() taken, the source keeps stepping, then loaded", _live_state_dict, _load_live)


def _in_memory(target: Any, scenario: Scenario, split: int, n_after: int) -> RouteRun:
    """``new.load_state_dict(source.state_dict())`` in memory, then step the new one, then the source."""
    source = _source_run(target, scenario, split)
    state = call_target("source.state_dict()", source.optimizer.state_dict, scenario)
    params = _split_params(source, split)
    optimizer = _load_into_new(target, scenario, params, state, "source.state_dict()")
    loaded = continue_run(optimizer, params, scenario, split, n_after, "loaded")
    source_steps = continue_run(source.optimizer, source.params, scenario, split, n_after, "source after the load")
    return RouteRun([("loaded", loaded), ("source after the load", source_steps)])


def _load_twice(target: Any, scenario: Scenario, split: int, n_after: int) -> RouteRun:
    """One in-memory dict loaded into two new optimizers in turn; both step; the dict must stay unchanged."""
    source = _source_run(target, scenario, split)
    state = call_target("source.state_dict()", source.optimizer.state_dict, scenario)
    handed = copy.deepcopy(state)
    first_params, second_params = _split_params(source, split), _split_params(source, split)
    first = _load_into_new(target, scenario, first_params, state, "state")
    second = _load_into_new(target, scenario, second_params, state, "state (the same dict again)")
    first_steps = continue_run(first, first_params, scenario, split, n_after, "first loaded")
    second_steps = continue_run(second, second_params, scenario, split, n_after, "second loaded")
    broken = []
    difference = first_difference(handed, state, "handed state_dict")
    if difference is not None:
        broken.append(f"the dict handed to load_state_dict changed while the loaded optimizers stepped: {difference}")
    return RouteRun([("first loaded", first_steps), ("second loaded", second_steps)], broken=broken)


def _optimizer_copy(target: Any, scenario: Scenario, split: int, n_after: int) -> RouteRun:
    """The optimizer object itself copied with its parameters (``copy.deepcopy`` and ``pickle``), both continued."""
    source = _source_run(target, scenario, split)
    followers = []
    for transport in (DEEPCOPY_OPTIMIZER, PICKLE_OPTIMIZER):
        payload = transport.save(source.optimizer, source.params)
        optimizer, params = transport.restore(payload, scenario, target, [])
        followers.append((f"{transport.name} copy", continue_run(optimizer, params, scenario, split, n_after,
                                                                  f"{transport.name} copy")))
    source_steps = continue_run(source.optimizer, source.params, scenario, split, n_after, "source after copying")
    return RouteRun([*followers, ("source after copying", source_steps)])


WIDER_DTYPE: dict[torch.dtype, torch.dtype] = {
    torch.float16: torch.float64, torch.bfloat16: torch.float64, torch.float32: torch.float64,
    torch.complex64: torch.complex128,
}
"""Where the ``dtype`` route moves the parameters (every value of the narrow dtype is exact in the wide one)."""


def _widen(dtype: torch.dtype) -> torch.dtype:
    return WIDER_DTYPE.get(dtype, dtype)


def _dtype_round_trip(target: Any, scenario: Scenario, split: int, n_after: int) -> RouteRun:
    """Load into parameters moved to a wider dtype, save that, load back into the original dtype, continue.

    ``torch.optim.Optimizer.load_state_dict`` casts floating state to the parameters' dtype; narrow -> wide ->
    narrow is lossless, so the continuation must be exact (torch/optim/optimizer.py).
    """
    source = _source_run(target, scenario, split)
    saved = call_target("torch.save(source.state_dict())", lambda: torch_save_bytes(source.optimizer.state_dict()),
                        scenario)
    wide_params = _split_params(source, split, dtype_of=_widen)
    wide = _load_into_new(target, scenario, wide_params, torch_load_bytes(saved), "state saved in the narrow dtype")
    back = call_target("torch.save(wide.state_dict())", lambda: torch_save_bytes(wide.state_dict()), scenario)
    params = _split_params(source, split)
    optimizer = _load_into_new(target, scenario, params, torch_load_bytes(back), "state saved in the wide dtype")
    loaded = continue_run(optimizer, params, scenario, split, n_after, "loaded back")
    return RouteRun([("loaded back", loaded)])


def _cuda_round_trip(target: Any, scenario: Scenario, split: int, n_after: int) -> RouteRun:
    """The whole scenario on the GPU: torch.save -> torch.load(weights_only=True) -> continue, against the
    uninterrupted GPU run (CPU and GPU bits differ: pytorch #111508)."""
    expected = record_run(target, scenario, steps=split + n_after, device="cuda").trace.steps[split:]
    source = _source_run(target, scenario, split, device="cuda")
    saved = call_target("torch.save(source.state_dict())", lambda: torch_save_bytes(source.optimizer.state_dict()),
                        scenario)
    params = _split_params(source, split, device="cuda")
    optimizer = _load_into_new(target, scenario, params, torch_load_bytes(saved), "the saved state_dict")
    loaded = continue_run(optimizer, params, scenario, split, n_after, "loaded on cuda")
    return RouteRun([("loaded on cuda", loaded)], expected=expected)


ROUTES: dict[str, Route] = {route.name: route for route in (
    transport_route("save-load", TORCH_SAVE, "torch.save -> torch.load(weights_only=True) through a buffer"),
    transport_route("save-load-file", SAVE_LOAD_FILE, "torch.save to a file -> torch.load(file, weights_only=True)"),
    transport_route("deepcopy", DEEPCOPY_STATE_DICT),
    transport_route("pickle", PICKLE_STATE_DICT),
    Route("optimizer-copy", "copy.deepcopy and a pickle round trip of (optimizer, params)", _optimizer_copy),
    Route("in-memory", "new.load_state_dict(source.state_dict()) in memory; both keep stepping", _in_memory),
    Route("load-twice", "one in-memory dict loaded into two new optimizers; both step", _load_twice),
    transport_route("snapshot", SNAPSHOT),
    Route("dtype", "parameters moved to a wider dtype before loading, then back", _dtype_round_trip,
          widens_dtype=True),
    Route("cuda", "the run on the GPU, torch.save -> torch.load(weights_only=True)", _cuda_round_trip,
          needs_cuda=True),
)}
"""Every route of ``lbfgs-verify fuzz``, by interface name."""
