"""Standalone reproductions: the one writer of the short scripts that show a failure with only torch and the target.

A :class:`Reproduction` says everything needed: the target (``module:attr``), the problem as source text
defining ``objective(params)``, the start values and dtype, the hyperparameters, how many steps before the
split and after it, and what is done at the split (a route of :data:`lbfgs_verify.engine.ROUTES`, or
statements that damage the saved ``state_dict``, or any check code the caller writes). The script exits
with an ``AssertionError`` (or the target's exception) while the defect is there, and says so otherwise.

The script compares bytes (dtype, shape, raw memory of every parameter, and each returned loss), as
:mod:`lbfgs_verify.bitwise` does, with ``torch.set_num_threads(1)``: bits depend on the thread count.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lbfgs_verify.targets import TargetLoadError, load_target, own_arguments

__all__ = ["ROUTE_SNIPPETS", "SUPPORTED_PROPERTIES", "NoReproduction", "Reproduction", "literal", "problem_from_name",
           "problem_source", "reproduction_for_failure", "reproduction_script"]


def literal(value: Any) -> str:
    """Python source that rebuilds ``value`` (tensors as ``torch.tensor(..., dtype=...)``, exact floats)."""
    if isinstance(value, Tensor):
        if value.dim() == 0:
            return f"torch.tensor({literal(value.item())}, dtype={value.dtype})"
        return f"torch.tensor({literal(value.tolist())}, dtype={value.dtype})"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, (list, tuple)):
        items = ", ".join(literal(v) for v in value)
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


@dataclass(frozen=True)
class Reproduction:
    """What a reproduction script needs.

    Attributes:
        target: ``module:attr`` of the optimizer class or factory.
        problem_source: source defining ``objective(params) -> 0-dim tensor`` (``torch`` in scope).
        start: per parameter ``(values, shape, is_complex)``, built in float64/complex128 then cast to ``dtype``.
        dtype: the real parameter dtype (complex parameters use the matching complex dtype).
        hyperparameters: the optimizer's keyword arguments.
        split: steps made before the state is taken; n_after: steps compared after it.
        kind: ``"valid"`` (``route`` continues a valid state), ``"corrupt"`` (``corruption_code`` damages
            ``saved``/``data``, delivered per ``delivery``: ``"dict"`` or ``"bytes"``), or ``"custom"``
            (``body``: the caller's own statements, with the helpers of the script in scope).
        assertion: the failure being reproduced (first line goes to the docstring and the assertion message).
        definitions: more source placed after the constants (e.g. a second problem a custom body uses).
    """

    target: str
    problem_source: str
    start: Sequence[tuple[Sequence[Any], Sequence[int], bool]]
    dtype: torch.dtype
    hyperparameters: dict[str, Any]
    split: int
    n_after: int
    kind: str = "valid"
    route: str | None = None
    corruption_code: Sequence[str] = field(default_factory=tuple)
    delivery: str = "dict"
    body: Sequence[str] = field(default_factory=tuple)
    assertion: str = ""
    definitions: str = ""


_HELPERS = '''
def make_params(start=None):
    complex_dtype = torch.complex128 if DTYPE == torch.float64 else torch.complex64
    return [torch.tensor(values, dtype=torch.complex128 if is_complex else torch.float64).reshape(shape)
            .to(complex_dtype if is_complex else DTYPE).requires_grad_(True)
            for values, shape, is_complex in (START if start is None else start)]


def copy_params(params, dtype=None):
    return [p.detach().clone().to(dtype or p.dtype).requires_grad_(True) for p in params]


def make_optimizer(params):
    kwargs = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in HYPERPARAMETERS.items()}
    return Optimizer(params, **kwargs)


def run(optimizer, params, n):
    """n calls of step(closure); the loss returned, copies of the parameters and of state_dict() after each."""
    def closure():
        for p in params:
            p.grad = None
        loss = objective(params)
        loss.backward()
        return loss
    out = []
    for _ in range(n):
        loss = optimizer.step(closure)
        out.append((None if loss is None else float(loss), [p.detach().clone() for p in params],
                    copy.deepcopy(optimizer.state_dict())))
    return out


def raw(t):
    t = t.detach().cpu().reshape(-1)
    return (torch.view_as_real(t).reshape(-1) if t.is_complex() else t).view(torch.uint8)


def same(a, b):
    """Bitwise equality of nested values (tensors by dtype, shape and bytes; floats by bits)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(raw(a), raw(b)))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return a == b


def save_bytes(value):
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def load_bytes(data):
    return torch.load(io.BytesIO(data), weights_only=True)


RAN = []


def mark_ran(value=None):
    """What the hostile payload calls when unpickled: a harmless stand-in for arbitrary code."""
    RAN.append(True)
    return value


class Payload:
    def __init__(self, value=None):
        self.value = value

    def __reduce__(self):
        return (mark_ran, (self.value,))


# The uninterrupted run: what every continuation must equal.
params = make_params()
optimizer = make_optimizer(params)
run(optimizer, params, SPLIT)
expected = run(optimizer, params, N_AFTER)

# The source: the same run up to the split.
source_params = make_params()
source = make_optimizer(source_params)
run(source, source_params, SPLIT)
split_params = copy_params(source_params)
'''

_CHECK = ("assert same(expected, got), "
          "'the continuation differs from the uninterrupted run (bitwise: losses, parameters, state_dict())'")

ROUTE_SNIPPETS: dict[str, str] = {
    "save-load": f'''
data = save_bytes(source.state_dict())
source_after = run(source, source_params, N_AFTER)
loaded = make_optimizer(split_params)
loaded.load_state_dict(load_bytes(data))
got = run(loaded, split_params, N_AFTER)
{_CHECK}
assert same(expected, source_after), 'the source changed after saving'
''',
    "save-load-file": f'''
import os
import tempfile

with tempfile.TemporaryDirectory() as directory:
    path = os.path.join(directory, 'optimizer.pt')
    torch.save(source.state_dict(), path)
    source_after = run(source, source_params, N_AFTER)
    loaded = make_optimizer(split_params)
    loaded.load_state_dict(torch.load(path, weights_only=True))
got = run(loaded, split_params, N_AFTER)
{_CHECK}
assert same(expected, source_after), 'the source changed after saving'
''',
    "deepcopy": f'''
saved = copy.deepcopy(source.state_dict())
source_after = run(source, source_params, N_AFTER)
loaded = make_optimizer(split_params)
loaded.load_state_dict(copy.deepcopy(saved))
got = run(loaded, split_params, N_AFTER)
{_CHECK}
assert same(expected, source_after), 'the source changed after saving'
''',
    "pickle": f'''
saved = pickle.dumps(source.state_dict())
source_after = run(source, source_params, N_AFTER)
loaded = make_optimizer(split_params)
loaded.load_state_dict(pickle.loads(saved))
got = run(loaded, split_params, N_AFTER)
{_CHECK}
assert same(expected, source_after), 'the source changed after saving'
''',
    "optimizer-copy": f'''
copied, copied_params = copy.deepcopy((source, source_params))
got = run(copied, copied_params, N_AFTER)
{_CHECK}
pickled, pickled_params = pickle.loads(pickle.dumps((source, source_params)))
got = run(pickled, pickled_params, N_AFTER)
{_CHECK}
''',
    "in-memory": f'''
loaded = make_optimizer(split_params)
loaded.load_state_dict(source.state_dict())
got = run(loaded, split_params, N_AFTER)
{_CHECK}
got = run(source, source_params, N_AFTER)
assert same(expected, got), 'the source differs from the uninterrupted run after the loaded copy stepped'
''',
    "load-twice": f'''
saved = source.state_dict()
handed = copy.deepcopy(saved)
first_params, second_params = copy_params(split_params), copy_params(split_params)
first, second = make_optimizer(first_params), make_optimizer(second_params)
first.load_state_dict(saved)
second.load_state_dict(saved)
got = run(first, first_params, N_AFTER)
{_CHECK}
got = run(second, second_params, N_AFTER)
assert same(expected, got), 'the second optimizer loaded from the same dict differs from the uninterrupted run'
assert same(handed, saved), 'the dict handed to load_state_dict changed while the loaded optimizers stepped'
''',
    "snapshot": f'''
saved = source.state_dict()
source_after = run(source, source_params, N_AFTER)
loaded = make_optimizer(split_params)
loaded.load_state_dict(saved)
got = run(loaded, split_params, N_AFTER)
{_CHECK}
''',
    "dtype": f'''
wide_dtype = torch.float64
wide_params = [p.detach().clone().to(torch.complex128 if p.is_complex() else wide_dtype).requires_grad_(True)
               for p in split_params]
wide = make_optimizer(wide_params)
wide.load_state_dict(load_bytes(save_bytes(source.state_dict())))
loaded = make_optimizer(split_params)
loaded.load_state_dict(load_bytes(save_bytes(wide.state_dict())))
got = run(loaded, split_params, N_AFTER)
{_CHECK}
''',
    "cuda": f'''
params = [p.cuda().detach().requires_grad_(True) for p in make_params()]
optimizer = make_optimizer(params)
run(optimizer, params, SPLIT)
expected = run(optimizer, params, N_AFTER)
source_params = [p.cuda().detach().requires_grad_(True) for p in make_params()]
source = make_optimizer(source_params)
run(source, source_params, SPLIT)
split_params = copy_params(source_params)
loaded = make_optimizer(split_params)
loaded.load_state_dict(load_bytes(save_bytes(source.state_dict())))
got = run(loaded, split_params, N_AFTER)
{_CHECK}
''',
}
"""The statements of each route, run after the common helpers (names are those of the engine's routes)."""


def _corruption_body(reproduction: Reproduction) -> str:
    lines = ["saved = copy.deepcopy(source.state_dict())"]
    if reproduction.delivery == "bytes":
        lines.append("data = save_bytes(saved)")
    lines += list(reproduction.corruption_code)
    load = "load_bytes(data)" if reproduction.delivery == "bytes" else "saved"
    lines.append(textwrap.dedent(f'''
        loaded = make_optimizer(split_params)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            try:
                loaded.load_state_dict({load})
            except Exception as exc:
                assert not RAN, 'the hostile payload ran while the state was loaded'
                raise SystemExit(f'rejected at load, as it should be: {{type(exc).__name__}}: {{exc}}')
        assert not RAN, 'the hostile payload ran while the state was loaded'
        if caught:
            raise SystemExit(f'warned at load: {{caught[0].message}}')
        got = run(loaded, split_params, N_AFTER)  # an exception here: the damage surfaced only at step()
        run_only = lambda records: [record[:2] for record in records]  # losses and parameters: the run itself
        assert same(run_only(expected), run_only(got)), \
            'the damaged state was loaded without error or warning and the run differs'
        '''))
    return "\n".join(lines)


def _own_arguments(spec: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters in the target's own names (:data:`lbfgs_verify.targets.ARGUMENTS_ATTRIBUTE`), so that
    the script calls the target directly; as they are when the target cannot be loaded here."""
    try:
        factory = load_target(spec).factory
    except TargetLoadError:
        return dict(hyperparameters)
    return own_arguments(factory, hyperparameters)


def reproduction_script(reproduction: Reproduction) -> str:
    """The standalone script (text) for ``reproduction``; it imports only torch, the standard library and
    the target."""
    module, _, attr = reproduction.target.partition(":")
    summary = (reproduction.assertion.splitlines() or ["a failure of lbfgs-verify"])[0]
    if reproduction.kind == "valid":
        if reproduction.route not in ROUTE_SNIPPETS:
            raise ValueError(f"unknown route {reproduction.route!r}; choose from {', '.join(ROUTE_SNIPPETS)}")
        body = ROUTE_SNIPPETS[reproduction.route]
    elif reproduction.kind == "corrupt":
        body = _corruption_body(reproduction)
    elif reproduction.kind == "custom":
        body = "\n".join(reproduction.body)
    else:
        raise ValueError(f"unknown reproduction kind {reproduction.kind!r}; choose valid, corrupt or custom")
    start = ",\n    ".join(f"({literal(list(values))}, {tuple(shape)!r}, {is_complex!r})"
                           for values, shape, is_complex in reproduction.start)
    own = _own_arguments(reproduction.target, reproduction.hyperparameters)
    hyperparameters = "{" + ", ".join(f"{k!r}: {literal(v)}" for k, v in own.items()) + "}"
    header = f'''"""Reproduction written by lbfgs-verify: {summary}

Needs only torch and the target ({reproduction.target}). It fails (AssertionError or the target's exception)
while the defect is there.
"""
import copy
import io
import pickle
import warnings

import torch
from {module} import {attr.split('.')[0]} as _target_root

Optimizer = _target_root{''.join('.' + part for part in attr.split('.')[1:])}
torch.set_num_threads(1)
torch.manual_seed(0)

{reproduction.problem_source.rstrip()}


DTYPE = {reproduction.dtype}
START = [
    {start},
]
HYPERPARAMETERS = {hyperparameters}
SPLIT, N_AFTER = {reproduction.split}, {reproduction.n_after}
{reproduction.definitions}'''
    return header + _HELPERS + body.rstrip() + "\nprint('no defect: the check passed')\n"


# --------------------------------------------------------------------------------------------------------
# Reproductions of `lbfgs-verify check` failures, built from a failure's evidence
# --------------------------------------------------------------------------------------------------------

_PROPERTY_BODIES: dict[str, tuple[str, str]] = {
    "resume.low_precision_tensor_lr": ("route", "save-load"),
    # property ID -> ("route", name of ROUTE_SNIPPETS) or ("custom", statements run after the helpers)
    "state.load_independence": ("route", "in-memory"),
    "resume.deepcopy_optimizer": ("custom", f'''
copied, copied_params = copy.deepcopy((source, source_params))
got = run(copied, copied_params, N_AFTER)
{_CHECK}
'''),
    "resume.pickle_optimizer": ("custom", f'''
pickled, pickled_params = pickle.loads(pickle.dumps((source, source_params)))
got = run(pickled, pickled_params, N_AFTER)
{_CHECK}
'''),
    "state.round_trip_exact": ("custom", '''
saved = source.state_dict()
kept = copy.deepcopy(saved)
fresh = make_optimizer(copy_params(split_params))
fresh.load_state_dict(saved)
assert same(kept, fresh.state_dict()), 'state_dict() after load_state_dict(state_dict()) differs from the saved one'
'''),
    "state.snapshot": ("custom", '''
saved = source.state_dict()
kept = copy.deepcopy(saved)
run(source, source_params, N_AFTER)
assert same(kept, saved), 'the dict returned by state_dict() changed when the optimizer stepped afterwards'
'''),
    "state.load_validates_size": ("custom", '''
other_params = make_params(SAVED_FOR_START)
other = make_optimizer(other_params)
objective, main_objective = saved_for_objective, objective
run(other, other_params, SAVED_FOR_STEPS)
objective = main_objective
try:
    source.load_state_dict(other.state_dict())
except Exception as exc:
    print(f'rejected at load, as it should be: {type(exc).__name__}: {exc}')
    print('no defect: the check passed')
    raise SystemExit(0) from None
try:
    run(source, source_params, 1)
except Exception as exc:
    raise AssertionError('load_state_dict accepted a state saved for parameters of another size; the error comes '
                         f'only at step(): {type(exc).__name__}: {exc}') from exc
assert all(bool(torch.isfinite(p).all()) for p in source_params), \\
    'load_state_dict accepted a state saved for parameters of another size; step() then gives non-finite values'
'''),
}
"""What each property's reproduction does at the split: the state_dict/load_state_dict contracts of
torch/optim/optimizer.py that the resume.* and state.* properties check, written with the script's helpers."""

SUPPORTED_PROPERTIES: tuple[str, ...] = tuple(_PROPERTY_BODIES)
"""Property IDs whose failures ``lbfgs-verify check --repro`` turns into standalone scripts."""


class NoReproduction(ValueError):
    """No standalone script can be written for this failure; the message says why."""


def problem_from_name(name: str) -> Any:
    """The :class:`lbfgs_verify.problems.base.Problem` named ``name`` in a failure's evidence: a catalogue
    problem ``rosenbrock[float32]`` or a generated one ``generated[seed=11,sizes=(3, 2),float64]``."""
    import re

    from lbfgs_verify import strategies

    match = re.fullmatch(r"(\w+)\[(?:(.*),)?(float64|float32|float16|bfloat16)\]", name)
    if match is None:
        raise NoReproduction(f"problem {name!r}: not a name of the problem catalogue")
    base, inner, dtype_name = match.groups()
    inner = inner or ""
    dtype = getattr(torch, dtype_name)
    problem = None
    if base in strategies.problem_names():
        problem = strategies.make_problem(base, dtype)
    generated = re.fullmatch(r"seed=(\d+),sizes=\(([\d, ]*)\)(\+complex)?(\+unused)?", inner)
    if base == "generated" and generated:
        seed, sizes, with_complex, with_unused = generated.groups()
        problem = strategies.generated_problem(int(seed), [int(s) for s in sizes.split(",") if s.strip()], dtype,
                                               with_complex=bool(with_complex), with_unused=bool(with_unused))
    if problem is not None and problem.name == name:
        return problem
    raise NoReproduction(f"problem {name!r}: not a name of the problem catalogue")


def _start_values(problem: Any) -> list[tuple[list[Any], tuple[int, ...], bool]]:
    """The start as ``(values, shape, is_complex)`` per tensor, values widened exactly to float64/complex128."""
    return [(t.detach().to(torch.complex128 if t.is_complex() else torch.float64).reshape(-1).tolist(),
             tuple(t.shape), t.is_complex()) for t in problem.start]


def _other_problem(evidence: dict[str, Any]) -> str:
    """Definitions of the problem the state was saved for (``state.load_validates_size``): ``SAVED_FOR_START``,
    ``SAVED_FOR_STEPS`` and ``saved_for_objective``, its data kept apart from the main objective's."""
    problem = problem_from_name(str(evidence["saved_for"]))
    inner = textwrap.indent(problem_source(problem), "    ")
    return (f"SAVED_FOR_START = {literal(_start_values(problem))}\nSAVED_FOR_STEPS = {int(evidence['saved_after'])}"
            f"\n\n\ndef _saved_for():\n{inner}    return objective\n\n\nsaved_for_objective = _saved_for()\n")


def problem_source(problem: Any) -> str:
    """Source defining ``objective(params)`` for ``problem`` with its data written literally: the function's
    own code (annotations dropped) after its free variables (tensors and numbers) as literals. Checked: the
    emitted objective gives the same loss bits at the start; otherwise :class:`NoReproduction`."""
    import ast
    import inspect

    function = problem.objective
    code = getattr(function, "__code__", None)
    if code is None:
        raise NoReproduction(f"problem {problem.name}: its objective is not a plain function")
    unknown = [n for n in code.co_names if n in function.__globals__ and n != "torch"]
    if unknown:
        raise NoReproduction(f"problem {problem.name}: its objective uses module names {unknown}")
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    definition = tree.body[0]
    if not isinstance(definition, ast.FunctionDef):
        raise NoReproduction(f"problem {problem.name}: its objective is not defined by a def statement")
    definition.name, definition.returns = "objective", None
    for argument in definition.args.args:
        argument.annotation = None
    cells = dict(zip(code.co_freevars, (c.cell_contents for c in function.__closure__ or ()), strict=True))
    lines = [f"{name} = {literal(value)}" for name, value in cells.items()]
    source = "\n".join([*lines, "", "", ast.unparse(definition)]).strip() + "\n"
    namespace: dict[str, Any] = {"torch": torch}
    exec(compile(source, f"<reproduction of {problem.name}>", "exec"), namespace)
    params = problem.make_params()
    emitted, original = namespace["objective"](params).detach(), problem.objective(params).detach()
    if not (emitted.dtype == original.dtype and torch.equal(emitted, original)):
        raise NoReproduction(f"problem {problem.name}: the emitted objective differs from the original")
    return source


def _evaluate(text: str) -> Any:
    """A hyperparameter as the evidence writes it (``1``, ``None``, ``'strong_wolfe'``,
    ``torch.tensor(0.5, dtype=torch.float32)``: :meth:`lbfgs_verify.engine.Scenario.evidence`)."""
    return eval(text, {"__builtins__": {}, "torch": torch})  # text written by Scenario.evidence


def reproduction_for_failure(target: str, property_id: str, evidence: dict[str, Any], message: str) -> str:
    """The standalone script of one cause of a failed property, from its evidence (problem, hyperparameters,
    steps, split); :class:`NoReproduction` when the property or its evidence does not allow one."""
    if property_id not in _PROPERTY_BODIES:
        raise NoReproduction(f"{property_id}: no standalone script is written for this property yet "
                             f"(written for: {', '.join(SUPPORTED_PROPERTIES)})")
    missing = [k for k in ("problem", "hyperparameters", "steps") if k not in evidence]
    split = evidence.get("split", evidence.get("boundary"))
    if missing or split is None:
        raise NoReproduction(f"{property_id}: the evidence lacks {', '.join(missing) or 'the split'}")
    problem = problem_from_name(str(evidence["problem"]))
    kind, text = _PROPERTY_BODIES[property_id]
    start = _start_values(problem)
    n_after = int(evidence.get("later_steps", int(evidence["steps"]) - int(split)))
    return reproduction_script(Reproduction(
        target=target, problem_source=problem_source(problem), start=start, dtype=problem.dtype,
        hyperparameters={k: _evaluate(v) for k, v in evidence["hyperparameters"].items()},
        split=int(split), n_after=max(n_after, 1), kind="valid" if kind == "route" else "custom",
        route=text if kind == "route" else None, body=(text,) if kind == "custom" else (),
        assertion=f"{property_id}: {message}",
        definitions=_other_problem(evidence) if property_id == "state.load_validates_size" else ""))
