"""Standalone reproductions of the failures of stepper and functional targets (issue 20): ``kinds.*``,
``stepper.*`` and ``functional.*`` properties of :mod:`lbfgs_verify.properties.kinds`.

Called by :func:`lbfgs_verify.engine.repro.reproduction_for_failure`, the one writer, for these property IDs. A
script imports the target's library (optax, jaxopt, scipy) or the user's adapter module, never lbfgs-verify for a
built-in adapter; it defines the problem inline (the residuals of Moré, Garbow & Hillstrom 1981 written against
an array namespace ``xp``, run in ``jax.numpy`` for a stepper and in numpy, with the analytic gradient, for a
functional minimizer; checked here against the harness's own evaluation before the script is written), drives the
target as the harness does (a stepper: jit per step, x64 on, float64, CPU; a functional minimizer: every
evaluation and callback recorded), and asserts the property. It exits 1 (AssertionError, or the target's
exception) while the defect is there and 0 once it is fixed.

Shapes of script, by property:

- ``stepper.resume_fresh_process``: the uninterrupted run against save at the split, restore in a fresh Python
  process (the script runs itself with ``--continue``) against a template made with the same hyperparameters,
  continue; bitwise. The ``manifest`` route is written as numpy leaves in tree order (``np.savez``, no pickle):
  what :mod:`lbfgs_verify.targets.serialize` stores; the ``own`` route calls the stepper's ``serialize`` and
  ``deserialize``.
- ``stepper.load_checked_against_template``: the stepper's own route loads a state saved under the defaults into
  a template made with the mismatched hyperparameters; it must refuse.
- ``functional.*``: maxiter prefix, callback stop, determinism; bitwise.
- ``kinds.*``: the accepted points of one run (library defaults) and the property's inequality at each step, with
  the adapter's declared conventions written into the script (Nocedal & Wright 2006, ch. 3.1 conditions 3.6/3.7,
  Algorithm 7.4 and eq. 7.20; Hager & Zhang 2005 eq. 23 for approximate Wolfe points).
"""

from __future__ import annotations

import inspect
import re
import textwrap
from typing import Any

import numpy as np

from lbfgs_verify.engine.repro import NoReproduction, _target_path, literal

KIND_PREFIXES = ("kinds.", "stepper.", "functional.")
"""Property ID prefixes whose failures this module writes."""

ACTIVE_GRADIENT = 1e-8
"""As :data:`lbfgs_verify.properties.kinds.ACTIVE_GRADIENT` (the engine may not import properties): the checks of
the accepted points stop at ‖g‖₂ ≤ ACTIVE_GRADIENT·max(1, ‖g₀‖₂)."""

DIRECTION_TOLERANCE = 1e-6
"""As :data:`lbfgs_verify.properties.kinds.DIRECTION_TOLERANCE`."""

CONVERGENCE_GRADIENT = 1e-5
"""As :data:`lbfgs_verify.properties.kinds.CONVERGENCE_GRADIENT` (scipy L-BFGS-B's default ``gtol``)."""

# --------------------------------------------------------------------------------------------------------------
# Problems, inline: value(xp, x) in any array namespace, gradient(x) in numpy
# --------------------------------------------------------------------------------------------------------------

_ROSENBROCK = '''
def value(xp, x):
    """MGH (1) Rosenbrock: r1 = 10(x2 - x1^2), r2 = 1 - x1; f = r.r (More, Garbow & Hillstrom 1981)."""
    r = xp.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]])
    return xp.sum(r * r)


def gradient(x):
    r1, r2 = 10 * (x[1] - x[0] ** 2), 1 - x[0]
    return np.array([-40 * x[0] * r1 - 2 * r2, 20 * r1])
'''

_BEALE = '''
def value(xp, x):
    """MGH (5) Beale: r_i = y_i - x1 (1 - x2^i), y = (1.5, 2.25, 2.625); f = r.r (More, Garbow & Hillstrom 1981)."""
    y = xp.asarray([1.5, 2.25, 2.625], dtype=x.dtype)
    i = xp.asarray([1.0, 2.0, 3.0], dtype=x.dtype)
    r = y - x[0] * (1 - x[1] ** i)
    return xp.sum(r * r)


def gradient(x):
    y, i = np.array([1.5, 2.25, 2.625]), np.array([1.0, 2.0, 3.0])
    r = y - x[0] * (1 - x[1] ** i)
    return np.array([2 * np.sum(r * -(1 - x[1] ** i)), 2 * np.sum(r * x[0] * i * x[1] ** (i - 1))])
'''

_EXTENDED_ROSENBROCK = '''
def value(xp, x):
    """MGH (21) extended Rosenbrock: r_{2i-1} = 10(x_{2i} - x_{2i-1}^2), r_{2i} = 1 - x_{2i-1}; f = r.r
    (More, Garbow & Hillstrom 1981)."""
    odd, even = x[0::2], x[1::2]
    r = xp.reshape(xp.stack([10 * (even - odd**2), 1 - odd], axis=1), (-1,))
    return xp.sum(r * r)


def gradient(x):
    odd, even = x[0::2], x[1::2]
    r1, r2 = 10 * (even - odd**2), 1 - odd
    g = np.empty_like(x)
    g[0::2], g[1::2] = -40 * odd * r1 - 2 * r2, 20 * r1
    return g
'''

_QUADRATIC = '''
def value(xp, x):
    """SPD quadratic 1/2 x'Ax - b'x, A = Q diag(logspace(0, 3, 8)) Q' (lbfgs-verify's spd_quadratic, seed 0)."""
    A = xp.asarray(MATRIX, dtype=x.dtype)
    b = xp.asarray(VECTOR, dtype=x.dtype)
    return 0.5 * (x @ (A @ x)) - b @ x


def gradient(x):
    return np.asarray(MATRIX) @ x - np.asarray(VECTOR)
'''

_INLINE_PROBLEMS: dict[str, str] = {
    "mgh01_rosenbrock[n=2,x0*1,float64]": _ROSENBROCK,
    "mgh05_beale[n=2,x0*1,float64]": _BEALE,
    "mgh21_extended_rosenbrock[n=10,x0*1,float64]": _EXTENDED_ROSENBROCK,
    "spd_quadratic[n=8,kappa=1000,seed=0,float64]": _QUADRATIC,
}
"""The problems of the kinds' properties (lbfgs_verify.problems.frameworks.KIND_PROBLEMS), inline."""

AGREEMENT = 1e-12
"""Largest relative difference of an inline problem's value and gradient from the harness's evaluation (at the
start and at a nearby point) before its script is written: the same function, rounding apart."""


def problem_definitions(name: str) -> str:
    """``PROBLEM``, ``X0``, ``F_STAR`` (and the data) and the inline ``value``/``gradient`` of problem ``name``,
    checked against the harness's evaluation; :class:`NoReproduction` for a problem without an inline form."""
    from lbfgs_verify.problems.frameworks import kind_problem

    source = _INLINE_PROBLEMS.get(name)
    if source is None:
        raise NoReproduction(f"problem {name!r}: no inline definition for a standalone script (written for: "
                             f"{', '.join(_INLINE_PROBLEMS)})")
    kp = kind_problem(name)
    data = ""
    if name.startswith("spd_quadratic"):
        from lbfgs_verify.problems import get_problem

        objective = get_problem(name).objective
        data = (f"MATRIX = {literal(objective.matrix.double().tolist())}\n"
                f"VECTOR = {literal(objective.vector.double().tolist())}\n")
    text = (f"PROBLEM = {name!r}\nX0 = np.array({literal([float(v) for v in kp.x0])}, dtype=np.float64)\n"
            f"F_STAR = {literal(kp.f_star)}\n{data}\n{source}")
    namespace: dict[str, Any] = {"np": np}
    exec(compile(text, f"<inline problem {name}>", "exec"), namespace)
    harness = kp.fun_and_grad()
    for x in (kp.x0, kp.x0 + 0.125):
        f, g = harness(x.copy())
        f_inline, g_inline = float(namespace["value"](np, x.copy())), namespace["gradient"](x.copy())
        scale = max(1.0, abs(f), float(np.max(np.abs(g))))
        gap = max(abs(f_inline - f), float(np.max(np.abs(g_inline - g)))) / scale
        if not gap <= AGREEMENT:
            raise NoReproduction(f"problem {name!r}: the inline definition differs from the harness's by {gap:.3g}")
    return text


# --------------------------------------------------------------------------------------------------------------
# Drivers: the target, as the script calls it
# --------------------------------------------------------------------------------------------------------------

_SCIPY_SIGNATURE = {
    "scipy:L-BFGS-B": ("import scipy.optimize", "scipy.optimize.minimize", ', method="L-BFGS-B"'),
    "lbfgs_verify.reference:minimize_lbfgsb": ("from lbfgs_verify.reference import minimize_lbfgsb",
                                               "minimize_lbfgsb", ""),
}
"""Built-in functional adapters: (import, the function, extra arguments) of scipy's ``minimize`` signature."""


def _adapter(spec: str) -> Any:
    from lbfgs_verify.targets.load import TargetLoadError, load_target

    try:
        target = load_target(spec)
    except TargetLoadError as exc:
        raise NoReproduction(f"target {spec!r} cannot be loaded here to write its script: {exc}") from exc
    adapter = getattr(target, "adapter", None)
    if adapter is None:
        raise NoReproduction(f"target {spec!r} is not a stepper or functional target")
    return adapter


def _builtin_stepper_source(spec: str, adapter: Any) -> str | None:
    """The source of a built-in stepper adapter's stepper class (it imports only its library) and ``make``."""
    from lbfgs_verify.targets.kinds import BUILTINS

    if spec not in BUILTINS:
        return None
    cls = type(adapter.make())
    codes = [f.__code__ for f in vars(cls).values() if inspect.isfunction(f)]
    helpers = _module_helpers(inspect.getmodule(cls), codes)
    source = textwrap.dedent(inspect.getsource(cls)).rstrip()
    if helpers is None or any(f"{word} lbfgs_verify" in text for word in ("import", "from")
                              for text in (source, *helpers)):
        return None
    return "\n\n\n".join([*helpers, source, f"make = {cls.__name__}"]) + "\n"


_SCRIPT_NAMES = frozenset({"np", "jax", "jnp", "OwnResume", "Any", "Mapping"})
"""Module-level names of an adapter that the script defines itself (imports, :class:`OwnResume`, annotations)."""


def _module_helpers(module: Any, codes: list[Any]) -> list[str] | None:
    """The sources of the module-level functions of ``module`` that ``codes`` name, or ``None`` when they name
    any other module-level object (a class, a constant: the adapter is then imported, not written out)."""
    names: set[str] = set()
    for code in codes:
        names |= _global_names(code)
    helpers = []
    for name in sorted(names - _SCRIPT_NAMES):
        value = getattr(module, name, None)
        if value is None:
            continue  # an attribute name, a local import or a builtin
        if not inspect.isfunction(value) or value.__module__ != module.__name__:
            return None
        helpers.append(textwrap.dedent(inspect.getsource(value)).rstrip())
    return helpers


def _builtin_import(spec: str) -> str | None:
    """Lines that import a built-in adapter from lbfgs-verify, where its library calls cannot be written into the
    script on their own (the script then needs lbfgs-verify installed for the adapter, and the library)."""
    from lbfgs_verify.targets.kinds import BUILTINS

    if spec not in BUILTINS:
        return None
    module, attribute, _ = BUILTINS[spec]
    return f"from {module} import {attribute} as adapter  # lbfgs-verify's built-in adapter of {spec}\n"


def _user_import(spec: str) -> str:
    module, _, attr = spec.partition(":")
    root, *rest = attr.split(".")
    return (f"{_target_path(spec)}from {module} import {root} as _target_root\n\n"
            f"_target = _target_root{''.join('.' + part for part in rest)}\n"
            "adapter = _target() if isinstance(_target, type) else _target\n")


def _driver(spec: str, kind: str, adapter: Any) -> tuple[str, str]:
    """(what the script needs, the source that defines ``make`` (stepper) or ``minimize`` and ``STOP_BY``)."""
    library = getattr(adapter, "library", "") or ""
    if kind == "stepper":
        builtin = _builtin_stepper_source(spec, adapter)
        if builtin is not None:
            return f"jax and {library}", f"# The target: {spec} (the loop body lbfgs-verify drives).\n{builtin}"
        builtin_import = _builtin_import(spec)
        if builtin_import is not None:
            return f"jax, {library} and lbfgs-verify", (f"# The target: {spec}, through lbfgs-verify's adapter.\n"
                                                         f"{builtin_import}make = adapter.make\n")
        return "jax and the target", (f"# The target: {spec}, through its adapter.\n{_user_import(spec)}"
                                      "make = adapter.make\n")
    if spec in _SCIPY_SIGNATURE:
        imported, call, extra = _SCIPY_SIGNATURE[spec]
        return f"numpy and {library}", f'''# The target: {spec}.
{imported}

STOP_BY = "StopIteration"  # a callback stops the run by raising StopIteration (scipy >= 1.11)


def minimize(fun_and_grad, x0, *, maxiter, callback=None, memory=None, tolerance=None):
    """scipy's L-BFGS-B options: maxiter, maxcor = memory, ftol = gtol = tolerance (None: the defaults)."""
    options = {{"maxiter": maxiter}}
    if memory is not None:
        options["maxcor"] = memory
    if tolerance is not None:
        options["ftol"] = options["gtol"] = tolerance
    return {call}(fun_and_grad, np.asarray(x0, dtype=np.float64), jac=True, callback=callback,
    {" " * len(call)}options=options{extra}).x
'''
    builtin_import = _builtin_import(spec)
    if builtin_import is not None:
        return f"numpy, {library} and lbfgs-verify", (f"# The target: {spec}, through lbfgs-verify's adapter.\n"
                                                       f"{builtin_import}minimize = adapter.minimize\n"
                                                       "STOP_BY = adapter.stop_by\n")
    return "numpy and the target", (f"# The target: {spec}, through its adapter.\n{_user_import(spec)}"
                                    "minimize = adapter.minimize\nSTOP_BY = adapter.stop_by\n")


# --------------------------------------------------------------------------------------------------------------
# The library's own resume path (kinds.own_resume_path)
# --------------------------------------------------------------------------------------------------------------

_OWN_RESUME_RESULT = '''

@dataclass(frozen=True)
class OwnResume:
    """What the library's own resume path did: its call, both final iterates, counters, what it recomputed."""

    path: str
    uninterrupted: np.ndarray
    resumed: np.ndarray
    counters: dict = field(default_factory=dict)
    at_resume: dict = field(default_factory=dict)
'''


def _global_names(code: Any) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _global_names(const)
    return names


def _own_resume_source(spec: str, adapter: Any) -> str | None:
    """The built-in adapter's ``own_resume`` as a plain function, with the module-level functions it calls, when
    it needs nothing of lbfgs-verify but :class:`OwnResume` (written into the script); else ``None``."""
    from lbfgs_verify.targets.kinds import BUILTINS

    method = getattr(type(adapter), "own_resume", None)
    if spec not in BUILTINS or method is None:
        return None
    helpers = _module_helpers(inspect.getmodule(method), [method.__code__])
    if helpers is None:
        return None
    source = textwrap.dedent(inspect.getsource(method)).rstrip().replace("def own_resume(self, ", "def own_resume(", 1)
    if any(f"{word} lbfgs_verify" in text for word in ("import", "from") for text in (source, *helpers)):
        return None
    if re.search(r"\bself\b", source):
        return None
    return "\n\n\n".join([*helpers, source]) + "\n"


def _own_resume_driver(spec: str, adapter: Any) -> tuple[str, str]:
    library = getattr(adapter, "library", "") or "the target"
    source = _own_resume_source(spec, adapter)
    if source is not None:
        return library, (f"# The target: {spec}'s own resume path, as lbfgs-verify calls it.\n"
                         f"from dataclasses import dataclass, field  # noqa: E402\n{_OWN_RESUME_RESULT}\n\n{source}")
    builtin_import = _builtin_import(spec)
    if builtin_import is not None:
        return f"{library} and lbfgs-verify", (f"# The target: {spec}'s own resume path, through lbfgs-verify's "
                                               f"adapter.\n{builtin_import}own_resume = adapter.own_resume\n")
    return library, (f"# The target: {spec}'s own resume path, through its adapter.\n{_user_import(spec)}"
                     "own_resume = adapter.own_resume\n")


_OWN_RESUME_BODY = '''

if KIND == "stepper":
    result = own_resume(objective, jnp.asarray(X0, dtype=DTYPE), split=SPLIT, steps=STEPS, jit=JIT)
else:
    result = own_resume(lambda x: (float(value(np, np.asarray(x))), gradient(np.asarray(x))), X0.copy(),
                        split=SPLIT, steps=STEPS, jit=False)
for name, (whole, resumed) in dict(result.counters).items():
    print(f"{name}: {whole} uninterrupted, {resumed} resumed")
for name, measured in dict(result.at_resume).items():
    print(f"at the resume point {name} = {measured:.3g}")
worst = float(np.max(np.abs(np.asarray(result.resumed) - np.asarray(result.uninterrupted))))
assert np.asarray(result.resumed).tobytes() == np.asarray(result.uninterrupted).tobytes(), (
    f"{PROBLEM}: {result.path}: split at {SPLIT} of {STEPS}: the final iterate differs from one uninterrupted call "
    f"by max|dx| = {worst:.3g}")
'''


_STEPPER_RUN = '''

_STEPS = {}


def stepper_and_step(hyperparameters):
    """make(**hyperparameters) and its step with the objective bound, jitted once when JIT (the harness's mode)."""
    key = repr(sorted(hyperparameters.items()))
    if key not in _STEPS:
        stepper = make(**hyperparameters)
        def step(params, state):
            return stepper.step(params, state, objective)

        _STEPS[key] = (stepper, jax.jit(step) if JIT else step)
    return _STEPS[key]


def run(n, params=None, state=None, hyperparameters=HYPERPARAMETERS):
    """n iterations from (params, state), by default from X0 and init(X0): the iterates x_0..x_n (numpy), whether
    each step reported a failed line search, and the last (params, state)."""
    stepper, step = stepper_and_step(hyperparameters)
    params = jnp.asarray(X0, dtype=DTYPE) if params is None else params
    state = stepper.init(params) if state is None else state
    iterates, failed = [np.array(params)], []
    for _ in range(n):
        params, state, info = step(params, state)
        iterates.append(np.array(params))
        failed.append(bool(np.asarray(dict(info).get("line_search_failed", False))))
    return iterates, failed, params, state


def first_difference(expected, actual):
    """(index of the first iterate whose bytes differ or None, max |dx| over all)."""
    first, worst = None, 0.0
    for i, (a, b) in enumerate(zip(expected, actual)):
        if a.tobytes() != b.tobytes():
            first = i if first is None else first
            worst = max(worst, float(np.max(np.abs(a - b))))
    return first, worst
'''

_FUNCTIONAL_RUN = '''

def fun_and_grad(x):
    x = np.asarray(x, dtype=np.float64)
    return float(value(np, x)), gradient(x)


def run(maxiter, stop_after=None, tolerance=0.0):
    """One minimize call from X0 (tolerance 0: only maxiter stops; None: the library's defaults), recorded: the
    accepted iterates x_0..x_k from the callback, every evaluation (x, f, g) and the returned x."""
    iterates, evaluations = [X0.copy()], []

    def recorded(x):
        f, g = fun_and_grad(x)
        evaluations.append((np.array(x, dtype=np.float64, copy=True), f, g.copy()))
        return f, g

    def callback(xk):
        iterates.append(np.array(getattr(xk, "x", xk), dtype=np.float64, copy=True))
        if stop_after is not None and len(iterates) - 1 >= stop_after:
            if STOP_BY == "StopIteration":
                raise StopIteration
            return True
        return None

    x = minimize(recorded, X0.copy(), maxiter=maxiter, callback=callback, tolerance=tolerance)
    return iterates, evaluations, np.array(x, dtype=np.float64, copy=True)


def same_iterates(what, expected, actual):
    assert len(actual) == len(expected), f"{what}: {len(actual) - 1} iterations instead of {len(expected) - 1}"
    for i, (a, b) in enumerate(zip(expected, actual)):
        assert a.tobytes() == b.tobytes(), f"{what}: iterate {i} differs (max|dx| = {float(np.max(np.abs(a - b))):.3g})"
'''

_TRAJECTORY_STEPPER = '''

def trajectory(max_steps, gtol=0.0):
    """The accepted points x_0..x_K of one run from X0 (at most max_steps iterations, stopped at max|g| <= gtol),
    f and g there, and per step whether the library reported a failed line search."""
    stepper, step = stepper_and_step(HYPERPARAMETERS)
    value_and_grad = jax.jit(jax.value_and_grad(objective))
    params = jnp.asarray(X0, dtype=DTYPE)
    state = stepper.init(params)
    xs, fs, gs, failed = [], [], [], []
    for k in range(max_steps + 1):
        f, g = value_and_grad(params)
        xs.append(np.array(params, dtype=np.float64))
        fs.append(float(f))
        gs.append(np.array(g, dtype=np.float64))
        if k == max_steps or (gtol > 0 and float(np.max(np.abs(gs[-1]))) <= gtol):
            break
        params, state, info = step(params, state)
        failed.append(bool(np.asarray(dict(info).get("line_search_failed", False))))
    return xs, fs, gs, failed
'''

_TRAJECTORY_FUNCTIONAL = '''

def trajectory(max_steps, gtol=0.0):
    """The accepted points x_0..x_K of one run from X0 with the library's default stopping rules, f and g there
    (as the minimizer evaluated them at those exact bytes); no line-search failure is reported by this kind."""
    iterates, evaluations, _ = run(max_steps, tolerance=None)
    xs, fs, gs = [], [], []
    for x in iterates:
        at = [(f, g) for point, f, g in evaluations if point.tobytes() == x.tobytes()]
        f, g = at[-1] if at else fun_and_grad(x)
        xs.append(x)
        fs.append(float(f))
        gs.append(np.asarray(g, dtype=np.float64))
    return xs, fs, gs, [False] * (len(xs) - 1)
'''

_ACTIVE = '''

def active_steps(xs, gs, failed):
    """Steps k (x_k -> x_k+1) before |g_k| falls to ACTIVE_GRADIENT * max(1, |g_0|) (past it no line-search
    condition can be told from rounding), leaving out those that reported a failed line search."""
    limit = ACTIVE_GRADIENT * max(1.0, float(np.linalg.norm(gs[0])))
    out = []
    for k in range(len(xs) - 1):
        if float(np.linalg.norm(gs[k])) <= limit:
            break
        if not failed[k]:
            out.append(k)
    return out
'''

_CALLS = '''

# The property must hold in a first call and, for a functional minimizer, in a repeated one (lbfgs-verify's runs
# follow other runs of the target in the same process): a target that carries state from call to call fails it.
for call in range(CALLS):
    xs, fs, gs, failed = trajectory(MAX_STEPS, gtol=GTOL)
    where = f"{PROBLEM} ({'first call' if call == 0 else 'repeated call'})"
    print(f"{where}: {len(xs) - 1} iterations; reported failed line searches: {sum(failed)}")
    check(where, xs, fs, gs, failed)
'''

_BODIES: dict[str, str] = {
    "kinds.failed_share": '''

def check(where, xs, fs, gs, failed):
    assert 2 * sum(failed) <= len(failed), (
        f"{where}: the library reported a failed line search at {sum(failed)} of {len(failed)} steps")
''' + _CALLS,
    "kinds.descent": _ACTIVE + '''

def check(where, xs, fs, gs, failed):
    for k in active_steps(xs, gs, failed):
        s = xs[k + 1] - xs[k]
        slope = float(gs[k] @ s)
        downhill = fs[k + 1] < fs[k] or (APPROXIMATE_WOLFE and fs[k + 1] <= fs[k] + APPROXIMATE_WOLFE * abs(fs[k]))
        assert slope < 0 and downhill, f"{where}: step {k + 1}: g_k's = {slope:.6g}, f went {fs[k]!r} -> {fs[k + 1]!r}"
''' + _CALLS,
    "kinds.wolfe": _ACTIVE + '''

EPS = float(np.finfo(np.float64).eps)


def check(where, xs, fs, gs, failed):
    for k in active_steps(xs, gs, failed):
        s = xs[k + 1] - xs[k]
        slope0, slope1, f0, f1 = float(gs[k] @ s), float(gs[k + 1] @ s), fs[k], fs[k + 1]
        f_slack = 8 * EPS * max(abs(f0), abs(f1))  # rounding of f and of the slopes, as lbfgs-verify allows
        g_slack = 8 * EPS * float(np.linalg.norm(gs[k + 1]) * np.linalg.norm(s) + np.linalg.norm(gs[k])
                                  * np.linalg.norm(s))
        armijo = f1 <= f0 + C1 * slope0 + f_slack  # N&W (3.6a)
        if APPROXIMATE_WOLFE is not None and not armijo:  # Hager & Zhang (2005) eq. 23
            armijo = f1 <= f0 + APPROXIMATE_WOLFE * abs(f0) + f_slack and slope1 <= (2 * C1 - 1) * slope0 + g_slack
        if LINE_SEARCH == "strong_wolfe":
            curvature = abs(slope1) <= C2 * abs(slope0) + g_slack  # N&W (3.7b)
        elif LINE_SEARCH == "weak_wolfe":
            curvature = slope1 >= C2 * slope0 - g_slack  # N&W (3.6b)
        else:
            curvature = True
        which = "sufficient decrease" if not armijo else "curvature"
        assert armijo and curvature, (f"{where}: step {k + 1}: the {which} condition fails ({LINE_SEARCH}, c1={C1}, "
                                      f"c2={C2}): f {f0!r} -> {f1!r}, slope {slope0:.6g} -> {slope1:.6g}")
''' + _CALLS,
    "kinds.two_loop_direction": _ACTIVE + '''

def two_loop(g, pairs):
    """-H g by the two-loop recursion (N&W Algorithm 7.4) over pairs (oldest first), H0 = gamma I (eq. 7.20)."""
    q, alphas = g.copy(), []
    for s, y in reversed(pairs):
        sy = float(s @ y)
        rho = 0.0 if sy == 0 else 1.0 / sy
        alpha = rho * float(s @ q)
        alphas.append((alpha, rho))
        q = q - alpha * y
    gamma = 1.0
    if pairs and H0_SCALING == "sty/yty":
        s, y = pairs[-1]
        yy = float(y @ y)
        gamma = float(s @ y) / yy if yy > 0 else 1.0
    r = gamma * q
    for (s, y), (alpha, rho) in zip(pairs, reversed(alphas)):
        r = r + (alpha - rho * float(y @ r)) * s
    return -r


def check(where, xs, fs, gs, failed):
    active = set(active_steps(xs, gs, failed))
    pairs = []
    for k in range(len(xs) - 1):
        if k not in active:
            break
        step = xs[k + 1] - xs[k]
        kept = pairs if KEEPS_NEGATIVE_PAIRS else [(s, y) for s, y in pairs if float(s @ y) > 0]
        d = two_loop(gs[k], kept[-MEMORY:])
        gap = float(np.linalg.norm(d / np.linalg.norm(d) - step / np.linalg.norm(step)))
        assert gap <= DIRECTION_TOLERANCE, (
            f"{where}: step {k + 1}: the step is not along the two-loop direction rebuilt from the accepted points "
            f"(memory {MEMORY}, H0 {H0_SCALING}): |unit(d) - unit(s)| = {gap:.3g} > {DIRECTION_TOLERANCE:g}")
        pairs.append((step, gs[k + 1] - gs[k]))
        if not KEEPS_NEGATIVE_PAIRS and float(pairs[-1][0] @ pairs[-1][1]) <= 0:
            pairs.pop()
''' + _CALLS,
    "kinds.convergence": '''

def check(where, xs, fs, gs, failed):
    best = min(range(len(fs)), key=lambda i: fs[i])
    gmax = float(np.max(np.abs(gs[best])))
    near = F_STAR is not None and fs[best] - F_STAR <= 1e-8 * max(1.0, abs(F_STAR))
    assert near or gmax <= CONVERGENCE_GRADIENT, (
        f"{where}: after {len(xs) - 1} iterations the best f = {fs[best]:.6g} (f* = {F_STAR}), max|g| = {gmax:.3g}")
''' + _CALLS,
    "functional.maxiter_prefix": '''
full, _, _ = run(LONGER)
short, _, x = run(MAXITER)
same_iterates(f"{PROBLEM}: maxiter={MAXITER} against maxiter={LONGER}", full[:MAXITER + 1], short)
assert x.tobytes() == full[MAXITER].tobytes(), f"{PROBLEM}: maxiter={MAXITER}: the returned x is not iterate {MAXITER}"
''',
    "functional.callback_stop": '''
by_maxiter, _, x_maxiter = run(MAXITER)
by_callback, _, x_callback = run(LONGER, stop_after=MAXITER)
same_iterates(f"{PROBLEM}: callback stop after {MAXITER} against maxiter={MAXITER}", by_maxiter, by_callback)
assert x_callback.tobytes() == x_maxiter.tobytes(), (
    f"{PROBLEM}: callback stop after {MAXITER}: the returned x differs from maxiter={MAXITER}'s")
''',
    "functional.deterministic": '''
first_iterates, first_evaluations, _ = run(LONGER)
second_iterates, second_evaluations, _ = run(LONGER)
same_iterates(f"{PROBLEM}: second run", first_iterates, second_iterates)
same_iterates(f"{PROBLEM}: second run's evaluations", [e[0] for e in first_evaluations],
              [e[0] for e in second_evaluations])
''',
    "stepper.resume_fresh_process": '''

def save(route, params, state, path):
    """Write (params, state) by the route: "manifest", numpy leaves in tree order (no pickle); "own", the
    stepper's serialize."""
    if route == "own":
        with open(path, "wb") as handle:
            handle.write(make(**HYPERPARAMETERS).serialize((params, state)))
    else:
        np.savez(path, *[np.array(leaf) for leaf in jax.tree_util.tree_leaves((params, state))])


def load(route, path):
    """Read (params, state) into a template made with the same hyperparameters, refusing a difference of
    structure, shape or dtype."""
    stepper = make(**HYPERPARAMETERS)
    params0 = jnp.asarray(X0, dtype=DTYPE)
    template = (params0, stepper.init(params0))
    if route == "own":
        with open(path, "rb") as handle:
            return stepper.deserialize(handle.read(), template)
    wanted = jax.tree_util.tree_leaves(template)
    with np.load(path, allow_pickle=False) as stored:
        leaves = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    assert len(leaves) == len(wanted), f"{len(leaves)} leaves saved, the template has {len(wanted)}"
    for i, (leaf, want) in enumerate(zip(leaves, wanted)):
        want = np.asarray(want)
        assert leaf.shape == want.shape and leaf.dtype == want.dtype, (
            f"leaf {i}: saved {leaf.dtype}{leaf.shape}, template {want.dtype}{want.shape}")
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), [jnp.asarray(v) for v in leaves])


if len(sys.argv) == 4 and sys.argv[1] == "--continue":  # the fresh process: restore, continue, write iterates
    params, state = load(ROUTE, sys.argv[2])
    iterates, _, _, _ = run(STEPS - SPLIT, params, state)
    np.save(sys.argv[3], np.stack(iterates[1:]), allow_pickle=False)
    sys.exit(0)

full, _, _, _ = run(STEPS)
_, _, params, state = run(SPLIT)
cold, _, _, _ = run(STEPS - SPLIT, params=params)
cold_first, _ = first_difference(full[SPLIT + 1:], cold[1:])
with tempfile.TemporaryDirectory() as folder:
    saved = os.path.join(folder, "state.bin" if ROUTE == "own" else "state.npz")
    out = os.path.join(folder, "iterates.npy")
    save(ROUTE, params, state, saved)
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    subprocess.run([sys.executable, os.path.abspath(__file__), "--continue", saved, out], check=True, env=env)
    resumed = list(np.load(out, allow_pickle=False))
print(f"cold restart (no state) differs from the uninterrupted run from iteration "
      f"{'-' if cold_first is None else SPLIT + 1 + cold_first}")
first, worst = first_difference(full[SPLIT + 1:], resumed)
same_as_cold = first_difference(cold[1:], resumed)[0] is None
assert first is None, (
    f"{PROBLEM}: split at {SPLIT}, route {ROUTE}: the continuation in a fresh process first differs at iteration "
    f"{SPLIT + 1 + first} (max|dx| = {worst:.3g})" + (" and equals a cold restart" if same_as_cold else ""))
''',
    "stepper.cold_control": '''
full, _, _, _ = run(STEPS)
_, _, params, _ = run(SPLIT)
cold, _, _, _ = run(STEPS - SPLIT, params=params)
assert first_difference(full[SPLIT + 1:], cold[1:])[0] is not None, (
    f"{PROBLEM}: split at {SPLIT}: a cold restart (init at the split's params) equals the uninterrupted run, so no "
    "check can tell a resumed state from none")
''',
    "stepper.load_checked_against_template": '''
_, _, params, state = run(SPLIT)
assert ROUTE == "own", "only the stepper's own serializer is the target's: lbfgs-verify's manifest route refuses"
blob = make(**HYPERPARAMETERS).serialize((params, state))
mismatched = make(**MISMATCH)
params0 = jnp.asarray(X0, dtype=DTYPE)
template = (params0, mismatched.init(params0))
try:
    mismatched.deserialize(blob, template)
except Exception as exc:  # refused: the property holds
    print(f"refused: {type(exc).__name__}: {exc}")
else:
    raise AssertionError(f"route own: a state saved under {HYPERPARAMETERS} loads into a template made with "
                         f"{MISMATCH} without error")
''',
}
_BODIES["kinds.own_resume_path"] = _OWN_RESUME_BODY
"""The check of each shape of script (the property's inequality over the run the script makes)."""


def _need(evidence: dict[str, Any], property_id: str, *keys: str) -> list[Any]:
    missing = [k for k in keys if k not in evidence]
    if missing:
        raise NoReproduction(f"{property_id}: the evidence lacks {', '.join(missing)}")
    return [evidence[k] for k in keys]


def _constants(property_id: str, evidence: dict[str, Any], adapter: Any, kind: str) -> tuple[str, str, str]:
    """(body key, problem name, the constants the body reads) from the failure's evidence and the adapter's
    declared conventions."""
    conv = adapter.conventions
    values: dict[str, Any] = {}
    (problem,) = _need(evidence, property_id, "problem")
    key = property_id
    if property_id in ("kinds.descent", "kinds.wolfe", "kinds.two_loop_direction"):
        (values["MAX_STEPS"],) = _need(evidence, property_id, "max_steps")
        if "failed_steps" in evidence:
            key = "kinds.failed_share"
        values.update(ACTIVE_GRADIENT=ACTIVE_GRADIENT, APPROXIMATE_WOLFE=conv.approximate_wolfe)
        if property_id == "kinds.wolfe":
            values.update(LINE_SEARCH=conv.line_search, C1=float(evidence.get("c1", conv.c1)),
                          C2=float(evidence.get("c2", conv.c2)))
        if property_id == "kinds.two_loop_direction":
            values.update(MEMORY=conv.memory_size, H0_SCALING=conv.h0_scaling,
                          KEEPS_NEGATIVE_PAIRS=conv.keeps_negative_pairs, DIRECTION_TOLERANCE=DIRECTION_TOLERANCE)
    elif property_id == "kinds.convergence":
        values["MAX_STEPS"], values["GTOL"] = _need(evidence, property_id, "max_steps", "gtol")
        values["CONVERGENCE_GRADIENT"] = CONVERGENCE_GRADIENT
    elif property_id in ("functional.maxiter_prefix", "functional.callback_stop"):
        values["MAXITER"], values["LONGER"] = _need(evidence, property_id, "maxiter", "longer")
    elif property_id == "functional.deterministic":
        (values["LONGER"],) = _need(evidence, property_id, "maxiter")
    elif property_id == "stepper.resume_fresh_process":
        values["STEPS"], values["SPLIT"] = _need(evidence, property_id, "steps", "split")
        if "route" in evidence:
            values["ROUTE"] = evidence["route"]
        else:
            key = "stepper.cold_control"
    elif property_id == "stepper.load_checked_against_template":
        values["SPLIT"], values["ROUTE"], values["MISMATCH"] = _need(evidence, property_id, "split", "route",
                                                                     "mismatch")
    elif property_id == "kinds.own_resume_path":
        values["STEPS"], values["SPLIT"] = _need(evidence, property_id, "steps", "split")
        values["KIND"] = kind
    else:
        raise NoReproduction(f"{property_id}: no standalone script is written for this property")
    if key.startswith("kinds.") and key != "kinds.own_resume_path":
        values["CALLS"] = 2 if kind == "functional" else 1  # a stepper's state is explicit: one run is the check
        values.setdefault("GTOL", 0.0)
    text = "".join(f"{name} = {literal(value)}\n" for name, value in values.items())
    return key, str(problem), text


def kind_reproduction(spec: str, property_id: str, evidence: dict[str, Any], message: str) -> str:
    """The standalone script of one failure of a ``kinds.*``, ``stepper.*`` or ``functional.*`` property of the
    stepper or functional target ``spec``, from its evidence; :class:`NoReproduction` saying why when none can be
    written."""
    adapter = _adapter(spec)
    kind = getattr(adapter, "kind", None) or getattr(adapter, "lbfgs_verify_kind", None)
    if kind not in ("stepper", "functional"):
        raise NoReproduction(f"target {spec!r}: kind {kind!r} is neither stepper nor functional")
    key, problem, constants = _constants(property_id, evidence, adapter, kind)
    hyperparameters = evidence.get("hyperparameters", {})
    if not isinstance(hyperparameters, dict) or any(isinstance(v, str) for v in hyperparameters.values()):
        raise NoReproduction(f"{property_id}: hyperparameters {hyperparameters!r} are not plain values")
    needs, driver = _driver(spec, kind, adapter)
    if key == "kinds.own_resume_path":
        needs, driver = _own_resume_driver(spec, adapter)
        needs = f"jax and {needs}" if kind == "stepper" else f"numpy and {needs}"
    summary = (f"{property_id}: {message}".splitlines() or ["a failure of lbfgs-verify"])[0]
    jit = evidence.get("execution", "jit per step") == "jit per step"
    x64, dtype = bool(evidence.get("jax_enable_x64", True)), str(evidence.get("dtype", "float64"))
    if kind == "stepper":
        imports = ('os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the bits compared are the CPU\'s\n\n'
                   "import jax  # noqa: E402\nimport jax.numpy as jnp  # noqa: E402\n\n"
                   f'jax.config.update("jax_enable_x64", {x64!r})  # the execution mode of the failure, fixed on '
                   f'both sides of a split\nJIT, DTYPE = {jit!r}, {dtype!r}  # jit per step or eager; the '
                   'parameters\' dtype\n')
        objective = "\n\ndef objective(x):\n    return value(jnp, x)\n"
        runs = _STEPPER_RUN + (_TRAJECTORY_STEPPER if key.startswith("kinds.") else "")
        if key == "kinds.own_resume_path":
            runs = ""
    else:
        if key.startswith("stepper."):
            raise NoReproduction(f"{property_id}: a functional target has no state API")
        imports = ""
        objective = ""
        runs = _FUNCTIONAL_RUN + (_TRAJECTORY_FUNCTIONAL if key.startswith("kinds.") else "")
        if key == "kinds.own_resume_path":
            runs = ""
    conventions = "\n".join(f"#   {line}" for line in adapter.conventions.lines())
    return f'''"""Reproduction written by lbfgs-verify: {summary}

Needs only {needs} ({spec}). Exits 1 (AssertionError or the target's exception) while the defect is
there, 0 when it is fixed.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np

{imports}
# The problem, inline.
{problem_definitions(problem).rstrip()}
{objective}

{driver.rstrip()}

# The declared conventions of the target (what lbfgs-verify holds it to):
{conventions}
HYPERPARAMETERS = {literal(hyperparameters)}
{constants}{runs}{_BODIES[key]}
print("no defect: the check passed")
'''
