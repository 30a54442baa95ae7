"""Standalone reproductions: the one writer of the short scripts that show a failure with only torch and the target.

A :class:`Reproduction` says everything needed: the target (``module:attr``), the problem as source text
defining ``objective(params)``, the start values and dtype, the hyperparameters, how many steps before the
split and after it, and what is done at the split (a route of :data:`lbfgs_verify.engine.runs.ROUTES`, or
statements that damage the saved ``state_dict``, or any check code the caller writes). The script exits
with an ``AssertionError`` (or the target's exception) while the defect is there, and says so otherwise.

The script compares bytes (dtype, shape, raw memory of every parameter, and each returned loss), as
:mod:`lbfgs_verify.compare.bitwise` does, with ``torch.set_num_threads(1)``: bits depend on the thread count.

``lbfgs-verify check --repro`` builds one from a failure's evidence (:func:`reproduction_for_failure`), by its
shape: a run continued at a split (``resume.*``, ``state.*``, ``seed.*``), a quantity of an observed run that
breaks the property's inequality at step ``k`` (``behaviour.*``, ``mathematics.*``, the kind ``"observed"``), or
an exception the target raised at step ``k`` of a plain run. Any other failure gets :class:`NoReproduction`
with the reason.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lbfgs_verify.targets.load import TargetLoadError, import_directory, load_target, own_arguments

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
            ``saved``/``data``, delivered per ``delivery``: ``"dict"`` or ``"bytes"``), ``"custom"``
            (``body``: the caller's own statements, with the helpers of the script and the uninterrupted and
            source runs in scope) or ``"observed"`` (``body`` judges ``observe(n)``, plain runs from the start
            with every closure call recorded; no split).
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
'''

_RUN_HELPERS = '''

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
'''

_UNINTERRUPTED_RUN = '''
# The uninterrupted run: what every continuation must equal.
params = make_params()
optimizer = make_optimizer(params)
run(optimizer, params, SPLIT)
expected = run(optimizer, params, N_AFTER)
'''

_SPLIT_RUNS = '''
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

_OBSERVE_HELPERS = '''
Call = collections.namedtuple('Call', 'x loss g got_grad')
Step = collections.namedtuple('Step', 'calls x_after returned group')


def flat(tensors):
    return torch.cat([(torch.view_as_real(t.detach()) if t.is_complex() else t.detach()).reshape(-1).double()
                      for t in tensors])


def observe(n, before_step=None):
    """n calls of step(closure) of a fresh optimizer; per step: its closure calls (flat x, loss, flat g, which
    coordinates got a gradient), the flat parameters after it, the loss it returned, param_groups[0]. Stops at
    a non-finite value."""
    params = make_params()
    optimizer = make_optimizer(params)
    calls, steps = [], []

    def closure():
        for p in params:
            p.grad = None
        loss = objective(params)
        loss.backward()
        got = [torch.full((p.numel() * (2 if p.is_complex() else 1),), p.grad is not None) for p in params]
        calls.append(Call(flat(params), float(loss), flat([torch.zeros_like(p) if p.grad is None else p.grad
                                                            for p in params]), torch.cat(got)))
        return loss
    for k in range(n):
        if before_step is not None:
            before_step(k, optimizer)
        first = len(calls)
        returned = optimizer.step(closure)
        group = {k: v for k, v in optimizer.param_groups[0].items() if k != 'params'}  # in effect at this step
        steps.append(Step(calls[first:], flat(params), None if returned is None else float(returned), group))
        if not all(bool(torch.isfinite(c.x).all()) and math.isfinite(c.loss) for c in steps[-1].calls):
            break
    return steps


X0 = flat(make_params())
'''

_MOVES = '''
def moves(step):
    """Iterations counted from outside: distinct consecutive positions visited (evaluated, then left at)."""
    positions = [c.x for c in step.calls] + [step.x_after]
    return sum(not torch.equal(a, b) for a, b in zip(positions, positions[1:]))


def set_max_iter(k, optimizer):
    optimizer.param_groups[0]['max_iter'] = MAX_ITERS[k]


steps = observe(len(MAX_ITERS), set_max_iter if CHANGED else None)
g0 = float(steps[0].calls[0].g.abs().max())
for k, step in enumerate(steps):
    if not all(bool(torch.isfinite(c.g).all()) and float(c.g.abs().max()) > 1e-6 * g0 for c in step.calls):
        break  # near convergence a move can vanish in rounding: no claim from here on
    assert moves(step) == MAX_ITERS[k], (
        f'step {k}: {moves(step)} iterations (distinct moves; {len(step.calls)} closure calls) instead of max_iter = '
        f'{MAX_ITERS[k]}: without line search and with both tolerances 0 no stopping test can fire before max_iter')
'''

_OBSERVED_CHECKS: dict[str, str] = {
    "behaviour.converged_no_move": '''
for k, step in enumerate(observe(N_STEPS)):
    assert torch.equal(step.x_after, X0), (
        f'step {k} moved the parameters (max |dx| = {float((step.x_after - X0).abs().max()):.3g}) although max|g| = '
        f'{float(step.calls[0].g.abs().max()):.3g} <= tolerance_grad = {TOLERANCE_GRAD:.3g} at its start')
''',
    "behaviour.no_grad_params": '''
steps = observe(N_STEPS)
frozen = ~steps[0].calls[0].got_grad
for k, step in enumerate(steps):
    moved = step.x_after[frozen] != X0[frozen]
    assert not bool(moved.any()), f'step {k}: {int(moved.sum())} coordinate(s) of parameters without gradient moved'
''',
    "behaviour.max_eval": '''
# ALLOWED: max_eval, or max_eval + 1 where torch.optim.LBFGS makes that many with these settings (measured by
# lbfgs-verify's control runs); a final evaluation of the result (after max_iter moves, or at a point the step
# already evaluated) is not counted
for k, step in enumerate(observe(N_STEPS)):
    xs = [c.x for c in step.calls] + [step.x_after]
    moves = sum(1 for a, b in zip(xs, xs[1:]) if not torch.equal(a, b))
    final = 1 if len(step.calls) >= 2 and torch.equal(step.calls[-1].x, step.x_after) and (
        any(torch.equal(c.x, step.x_after) for c in step.calls[:-1]) or moves >= MAX_ITER) else 0
    assert len(step.calls) - final <= ALLOWED, (
        f'step {k} made {len(step.calls)} closure calls with max_eval = {MAX_EVAL}: at most {ALLOWED} are allowed'
        + (', plus a final evaluation of the result' if final else ''))
''',
    "behaviour.returns_first_loss": '''
for k, step in enumerate(observe(N_STEPS)):
    first = step.calls[0].loss
    assert step.returned == first or (step.returned is not None and math.isnan(step.returned) and math.isnan(first)), \\
        f'step {k} returned {step.returned!r}; its first closure call returned {first!r}'
''',
    "mathematics.first_direction": '''
step = observe(1)[0]
start, g0 = step.calls[0].x, step.calls[0].g
actual = step.x_after if WITHOUT_LINE_SEARCH else step.calls[1].x  # the first move, or the first trial point
move = actual - start
t0 = -float(move @ g0) / float(g0 @ g0)  # the best multiple of -g0
allowance = 4 * torch.finfo(DTYPE).eps * (start.abs() + actual.abs())  # rounding of stored parameters
excess = ((move + t0 * g0).abs() - allowance).clamp_min(0)
r = float(excess.max()) / float((t0 * g0).abs().max())
assert t0 > 0 and r <= TOLERANCE, (
    f'step 0: the first move is not a positive multiple of -g0 (an empty memory gives steepest descent): best '
    f't0 = {t0:.6g}, relative max-norm difference {r:.3g} > {TOLERANCE:g}')
''',
    "mathematics.strong_wolfe": '''
step = observe(STEP + 1)[STEP]
start, trial = step.calls[0], step.calls[1].x
gtp = float(start.g @ (trial - start.x))
budget = step.group.get('max_eval') or math.inf  # a search that used up max_eval may stay at x_k
gradient_test = float(start.g.abs().max()) <= step.group.get('tolerance_grad', 1e-7)
assert not (torch.equal(step.x_after, start.x) and gtp < 0 and len(step.calls) < budget and not gradient_test), (
    f'step {STEP}: the line search evaluated {len(step.calls) - 1} trial point(s) along a descent direction '
    f'(gtp = {gtp:.6g}) and returned to x_k without moving, with max|g| = {float(start.g.abs().max()):.3g}: a '
    'strong-Wolfe point exists along every descent direction of a smooth function bounded below (N&W Lemma 3.1)')
''',
    "behaviour.max_iter": _MOVES,
    "behaviour.change_max_iter": _MOVES,
    "behaviour.change_history_size": '''
def change_history_size(k, optimizer):
    if k == CHANGED_BEFORE_STEP:
        optimizer.param_groups[0]['history_size'] = H2


observe(N_STEPS, change_history_size)  # the target's exception here is the defect (directions are not checked here)
''',
}
"""Observed runs (:func:`lbfgs_verify.engine.observe.observe`): property ID -> statements judging ``observe(n)``, with
the constants of :func:`_observed_constants` in scope."""

HISTORY_CHANGES: dict[str, str] = {"behaviour.change_history_size": "behaviour.change_history_size",
                                   "behaviour.lowered_history_uses_newest": "behaviour.change_history_size"}
"""Properties that change ``history_size`` between steps -> the observed check whose script they share (an
exception in ``step()`` after the change is the reproducible part)."""

_RAISE_IN_PLAIN_RUN = '''
observe(N_STEPS)  # the target's exception at the last of these steps is the defect
'''

CHANGED_FROM_STEP: dict[str, int] = {"behaviour.change_lr": 1, "behaviour.change_max_iter": 1}
"""Properties that change a hyperparameter between steps, from step ``k`` on: until then their run is plain."""

PLAIN_RUN_PROPERTIES: tuple[str, ...] = (
    "behaviour.stop_reasons", "behaviour.max_iter", "behaviour.iterations", "behaviour.max_eval",
    "behaviour.func_evals", "behaviour.no_grad_params", "behaviour.converged_no_move", "behaviour.returns_first_loss",
    "behaviour.accepts_first_wolfe_point", "mathematics.first_direction", "mathematics.first_step",
    "mathematics.two_loop_direction", "mathematics.history_across_steps", "mathematics.descent_direction",
    "mathematics.strong_wolfe", "resume.torch_save", "resume.deepcopy_state_dict", "resume.pickle_state_dict",
    "resume.low_precision_tensor_lr", "resume.deepcopy_optimizer", "resume.pickle_optimizer",
    "state.load_validates_size", "state.load_independence", "state.snapshot", "state.round_trip_exact",
    "state.loaded_dict_untouched", "state.same_dict_loaded_twice", "seed.load_restores_hyperparameters",
)
"""Properties that run the scenario plainly from its start (no change between steps, no transformed
problem) before they judge: an exception the target raised at step ``k`` of that run reproduces with
``k + 1`` plain steps."""


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
    """The hyperparameters in the target's own names (:data:`lbfgs_verify.targets.load.ARGUMENTS_ATTRIBUTE`), so that
    the script calls the target directly; as they are when the target cannot be loaded here."""
    try:
        factory = load_target(spec).factory
    except TargetLoadError:
        return dict(hyperparameters)
    return own_arguments(factory, hyperparameters)


def _target_path(spec: str) -> str:
    """Lines that put the directory the target was imported from on ``sys.path`` (the script may be run from
    elsewhere), when that is not where the interpreter looks anyway
    (:func:`lbfgs_verify.targets.load.import_directory`)."""
    try:
        load_target(spec)
    except TargetLoadError:
        return ""
    directory = import_directory(spec)
    if directory is None:
        return ""
    module = spec.partition(":")[0]
    return (f"import sys\n\nTARGET_DIRECTORY = {directory!r}  # where lbfgs-verify imported {module} from\n"
            "if TARGET_DIRECTORY not in sys.path:\n    sys.path.insert(0, TARGET_DIRECTORY)\n")


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
    elif reproduction.kind in ("custom", "observed"):
        body = "\n".join(reproduction.body)
    else:
        raise ValueError(f"unknown reproduction kind {reproduction.kind!r}; choose valid, corrupt, custom or observed")
    start = ",\n    ".join(f"({literal(list(values))}, {tuple(shape)!r}, {is_complex!r})"
                           for values, shape, is_complex in reproduction.start)
    own = _own_arguments(reproduction.target, reproduction.hyperparameters)
    hyperparameters = "{" + ", ".join(f"{k!r}: {literal(v)}" for k, v in own.items()) + "}"
    split = f"SPLIT, N_AFTER = {reproduction.split}, {reproduction.n_after}\n"
    if reproduction.kind == "observed":
        split = ""
    header = f'''"""Reproduction written by lbfgs-verify: {summary}

Needs only torch and the target ({reproduction.target}). It fails (AssertionError or the target's exception)
while the defect is there.
"""
import collections
import copy
import io
import math
import pickle
import warnings

import torch
{_target_path(reproduction.target)}from {module} import {attr.split('.')[0]} as _target_root

Optimizer = _target_root{''.join('.' + part for part in attr.split('.')[1:])}
torch.set_num_threads(1)
torch.manual_seed(0)

{reproduction.problem_source.rstrip()}


DTYPE = {reproduction.dtype}
START = [
    {start},
]
HYPERPARAMETERS = {hyperparameters}
{split}{reproduction.definitions}'''
    runs = _OBSERVE_HELPERS if reproduction.kind == "observed" else _RUN_HELPERS + _SPLIT_RUNS
    if reproduction.kind != "observed" and "expected" in body:  # only what the checks compare with is run
        runs = _RUN_HELPERS + _UNINTERRUPTED_RUN + _SPLIT_RUNS
    return header + _HELPERS + runs + body.rstrip() + "\nprint('no defect: the check passed')\n"


# --------------------------------------------------------------------------------------------------------
# Reproductions of `lbfgs-verify check` failures, built from a failure's evidence
# --------------------------------------------------------------------------------------------------------

_PROPERTY_BODIES: dict[str, tuple[str, str]] = {
    # property ID -> ("route", name of ROUTE_SNIPPETS) or ("custom", statements run after the helpers)
    "resume.torch_save": ("route", "save-load"),
    "resume.deepcopy_state_dict": ("route", "deepcopy"),
    "resume.pickle_state_dict": ("route", "pickle"),
    "resume.low_precision_tensor_lr": ("route", "save-load"),
    "seed.load_restores_hyperparameters": ("custom", f'''
data = save_bytes(source.state_dict())
loaded = Optimizer(split_params, **OTHER_HYPERPARAMETERS)  # load_state_dict must bring back the saved ones
loaded.load_state_dict(load_bytes(data))
got = run(loaded, split_params, N_AFTER)
{_CHECK}
'''),
    "state.loaded_dict_untouched": ("custom", '''
saved = copy.deepcopy(source.state_dict())  # a dict kept in memory (a rollback point), taken at the split
kept = copy.deepcopy(saved)
loaded = make_optimizer(split_params)
loaded.load_state_dict(saved)
run(loaded, split_params, N_AFTER)
assert same(kept, saved), 'the dict handed to load_state_dict changed while the loaded optimizer stepped'
'''),
    "state.same_dict_loaded_twice": ("custom", '''
saved = copy.deepcopy(source.state_dict())  # one dict in memory, loaded twice (a rollback, two workers)
for attempt in ('first', 'second'):
    loaded_params = copy_params(split_params)
    loaded = make_optimizer(loaded_params)
    loaded.load_state_dict(saved)
    got = run(loaded, loaded_params, N_AFTER)
    assert same(expected, got), \\
        f'the {attempt} optimizer loaded from the same in-memory state_dict differs from the uninterrupted run'
'''),
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

SUPPORTED_PROPERTIES: tuple[str, ...] = (*_PROPERTY_BODIES, *_OBSERVED_CHECKS)
"""Property IDs whose failures ``lbfgs-verify check --repro`` turns into standalone scripts."""


class NoReproduction(ValueError):
    """No standalone script can be written for this failure; the message says why."""


def problem_from_name(name: str) -> Any:
    """The :class:`lbfgs_verify.problems.base.Problem` named ``name`` in a failure's evidence: a catalogue
    problem ``rosenbrock[float32]`` or a generated one ``generated[seed=11,sizes=(3, 2),float64]``."""
    import re

    from lbfgs_verify.engine import strategies

    if name.endswith("@x*"):  # behaviour.converged_no_move's start at the exact minimiser
        from lbfgs_verify.problems.extra import at_minimum

        started_at_minimum = at_minimum(problem_from_name(name[:-3]))
        if started_at_minimum.name == name:
            return started_at_minimum
    harness = re.fullmatch(r"(double_well|wavy)\[n=(\d+),seed=(\d+),(float64|float32)\]", name)
    if harness:  # mathematics.*'s own problems
        from lbfgs_verify.problems.extra import double_well_problem, wavy_problem

        build = double_well_problem if harness.group(1) == "double_well" else wavy_problem
        return build(int(harness.group(3)), int(harness.group(2)), getattr(torch, harness.group(4)))
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
    ``torch.tensor(0.5, dtype=torch.float32)``: :meth:`lbfgs_verify.engine.runs.Scenario.evidence`)."""
    return eval(text, {"__builtins__": {}, "torch": torch})  # text written by Scenario.evidence


def _scenario_parts(property_id: str, evidence: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    """The problem, its source and the hyperparameters named by a failure's evidence."""
    missing = [k for k in ("problem", "hyperparameters") if k not in evidence]
    if missing:
        raise NoReproduction(f"{property_id}: the evidence lacks {', '.join(missing)}")
    problem = problem_from_name(str(evidence["problem"]))
    return problem, problem_source(problem), {k: _evaluate(v) for k, v in evidence["hyperparameters"].items()}


def _raised_at_step(evidence: dict[str, Any], property_id: str = "") -> int | None:
    """``k`` when the evidence is an exception the target raised at step ``k`` of a plain run from the start
    (for a property of :data:`CHANGED_FROM_STEP`: before its first change)."""
    import re

    match = re.fullmatch(r"step (\d+)(?: of the uninterrupted run)?", str(evidence.get("action", "")))
    if not match or "exception" not in evidence:
        return None
    step = int(match.group(1))
    return step if step < CHANGED_FROM_STEP.get(property_id, step + 1) else None


def _observed_constants(property_id: str, evidence: dict[str, Any], hyperparameters: dict[str, Any]) -> str:
    """The constants an observed check reads (``N_STEPS`` and what its assertion compares with)."""
    step = evidence.get("step")
    raised = _raised_at_step(evidence, property_id)
    last = raised if raised is not None else step
    if last is None and property_id not in HISTORY_CHANGES:
        raise NoReproduction(f"{property_id}: the evidence lacks the failing step")
    values: dict[str, Any] = {"N_STEPS": int(last) + 1 if last is not None else 0}
    if raised is not None and property_id not in HISTORY_CHANGES:
        pass  # the plain run to the step that raised needs nothing else
    elif property_id == "behaviour.converged_no_move":
        values["TOLERANCE_GRAD"] = float(evidence["tolerance_grad"])
    elif property_id == "mathematics.first_direction":
        values["WITHOUT_LINE_SEARCH"] = hyperparameters.get("line_search_fn") is None
        values["TOLERANCE"] = 1e-6 if str(evidence["problem"]).endswith("float64]") else 1e-4
    elif property_id == "mathematics.strong_wolfe":
        if "decrease" in evidence or "gtp" not in evidence:
            raise NoReproduction(f"{property_id}: only a search that returns to x_k along a descent direction has a "
                                 "standalone script; the Wolfe tests of an accepted point need lbfgs-verify's "
                                 "rounding allowances")
        values["STEP"] = int(evidence["step"])
    elif property_id == "behaviour.max_eval":
        values["MAX_EVAL"] = int(hyperparameters["max_eval"])
        values["MAX_ITER"] = int(hyperparameters["max_iter"])
        values["ALLOWED"] = int(evidence.get("allowed", values["MAX_EVAL"]))
    elif property_id in ("behaviour.max_iter", "behaviour.change_max_iter"):
        schedule = evidence.get("schedule", [int(hyperparameters["max_iter"])] * (int(last) + 1))
        values["MAX_ITERS"] = [int(m) for m in schedule][:int(last) + 1]
        values["CHANGED"] = property_id == "behaviour.change_max_iter"
    elif property_id in HISTORY_CHANGES:
        if evidence.get("round_trip"):
            raise NoReproduction(f"{property_id}: the change went through a state_dict round trip; only a plain "
                                 "change of param_groups[0]['history_size'] has a standalone script")
        if raised is None:
            raise NoReproduction(f"{property_id}: the directions after the change differ from the two-loop rebuild "
                                 "of the observed pairs; that rebuild is lbfgs-verify's own, so only a failure that "
                                 "raises in step() has a standalone script")
        values.update(CHANGED_BEFORE_STEP=int(evidence["changed_before_step"]), H2=int(evidence["h2"]))
    return "".join(f"{name} = {literal(value)}\n" for name, value in values.items())


_WHY_NOT_STANDALONE: dict[str, str] = {
    "mathematics.": "the check compares the run with lbfgs-verify's own analysis (two-loop rebuild of the "
                    "directions, Wolfe tests with rounding allowances, affine maps of the problem)",
    "behaviour.": "the check compares runs with lbfgs-verify's own rebuild of the stopping rules or with a second "
                  "run under other hyperparameters",
    "conformance.": "the check compares the target with torch.optim.LBFGS on lbfgs-verify's own API scenarios",
    "convergence.": "the check solves a set of suite problems for many steps and compares final values with "
                    "published optima (the evidence lists the problems, not one run)",
    "stopping.": "the check builds its tolerances from a first observed run",
    "line_search.": "the check drives the line search with one-dimensional functions built by lbfgs-verify",
    "portability.": "the check compares within a tolerance across thread counts or with stored golden traces",
    "cuda.": "the check needs a CUDA device and the harness's device moves",
    "resume.uses_saved_state": "the check compares a resumed run with a cold-started one on fixed scenarios",
}
"""Why a property's failures get no standalone script (by property ID or category prefix)."""


def reproduction_for_failure(target: str, property_id: str, evidence: dict[str, Any], message: str) -> str:
    """The standalone script of one cause of a failed property, from its evidence (problem, hyperparameters,
    steps, split); :class:`NoReproduction`, saying why, when the property or its evidence does not allow one.

    Three shapes of evidence: a split scenario (uninterrupted vs continued through a route, or a contract of
    ``state_dict``/``load_state_dict`` at the split: :data:`_PROPERTY_BODIES`); an observed run whose step ``k``
    violates the property's inequality (:data:`_OBSERVED_CHECKS`); an exception the target raised at step ``k``
    of a plain run from the start (:data:`PLAIN_RUN_PROPERTIES`). The failures of stepper and functional targets
    (``kinds.*``, ``stepper.*``, ``functional.*``) are written by :mod:`lbfgs_verify.engine.repro_kinds`."""
    if property_id.startswith(("kinds.", "stepper.", "functional.")):
        from lbfgs_verify.engine.repro_kinds import kind_reproduction

        return kind_reproduction(target, property_id, evidence, message)
    assertion = f"{property_id}: {message}"
    raised = _raised_at_step(evidence, property_id) is not None
    if property_id in _PROPERTY_BODIES and not raised:
        return _split_reproduction(target, property_id, evidence, assertion)
    plain = property_id in PLAIN_RUN_PROPERTIES or property_id in CHANGED_FROM_STEP
    if (property_id in _OBSERVED_CHECKS and "exception" not in evidence) or (plain and raised) \
            or property_id in HISTORY_CHANGES:
        problem, source, hyperparameters = _scenario_parts(property_id, evidence)
        body = _OBSERVED_CHECKS.get(HISTORY_CHANGES.get(property_id, property_id), _RAISE_IN_PLAIN_RUN)
        if raised and property_id not in HISTORY_CHANGES:
            body = _RAISE_IN_PLAIN_RUN
        return reproduction_script(Reproduction(
            target=target, problem_source=source, start=_start_values(problem), dtype=problem.dtype,
            hyperparameters=hyperparameters, split=0, n_after=0, kind="observed", body=(body,), assertion=assertion,
            definitions=_observed_constants(property_id, evidence, hyperparameters)))
    reason = next((why for key, why in _WHY_NOT_STANDALONE.items() if property_id.startswith(key)),
                  "no writer knows this property's evidence")
    if "exception" in evidence:
        reason = (f"the target raised {evidence['exception']} during {evidence.get('action', 'the check')}, not in "
                  "a plain run from the start that the evidence describes")
    raise NoReproduction(f"{property_id}: no standalone script is written for this property ({reason}; written for: "
                         f"{', '.join(SUPPORTED_PROPERTIES)}, and any exception at step k of a plain run)")


def _split_reproduction(target: str, property_id: str, evidence: dict[str, Any], assertion: str) -> str:
    """A reproduction of the uninterrupted run against a continuation (or a contract) at the split."""
    missing = [k for k in ("problem", "hyperparameters", "steps") if k not in evidence]
    split = evidence.get("split", evidence.get("boundary"))
    if missing or split is None:
        raise NoReproduction(f"{property_id}: the evidence lacks {', '.join(missing) or 'the split'}")
    problem, source, hyperparameters = _scenario_parts(property_id, evidence)
    kind, text = _PROPERTY_BODIES[property_id]
    n_after = int(evidence.get("later_steps", int(evidence["steps"]) - int(split)))
    definitions = ""
    if property_id == "state.load_validates_size":
        definitions = _other_problem(evidence)
    elif property_id == "seed.load_restores_hyperparameters":
        from lbfgs_verify.engine.strategies import other_hyperparameters

        other = _own_arguments(target, other_hyperparameters(hyperparameters))
        definitions = "OTHER_HYPERPARAMETERS = {" + ", ".join(f"{k!r}: {literal(v)}" for k, v in other.items()) + "}\n"
    return reproduction_script(Reproduction(
        target=target, problem_source=source, start=_start_values(problem), dtype=problem.dtype,
        hyperparameters=hyperparameters, split=int(split), n_after=max(n_after, 1),
        kind="valid" if kind == "route" else "custom", route=text if kind == "route" else None,
        body=(text,) if kind == "custom" else (), assertion=assertion, definitions=definitions))
