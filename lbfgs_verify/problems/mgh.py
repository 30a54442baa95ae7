"""The 35 Moré–Garbow–Hillstrom test problems as residual functions, one definition for torch, numpy and JAX.

J. J. Moré, B. S. Garbow, K. E. Hillstrom, "Testing Unconstrained Optimization Software", ACM TOMS 7(1):17-41,
1981 (doi:10.1145/355934.355936), section 3, problems (1)-(35); Algorithm 566 (TOMS 7(1):136-140) for the 18 of
them it implements. Every objective is ``f(x) = sum_i r_i(x)^2`` with the residuals ``r`` written once, as vectorised
code against the Python array API standard (namespace ``xp``, :mod:`lbfgs_verify.problems.xp`): in torch (follows
the dtype and device of ``x``, gradients by autograd), numpy and JAX (traceable under ``jit``, ``jax.grad``).

Starting points, published optimal values and minimizers are *not* written here: they are read from the one
golden file ``mgh_optima.toml`` (package ``lbfgs_verify.golden``, repository folder ``reference/``).

Standard sizes (our choice where the paper leaves n free; the paper's f* tables decide where it gives them):

========  =======================================  ====================
problem   standard size                            ``sizes="several"``
========  =======================================  ====================
20        Watson n = 6                             n = 6, 9, 12
21        Extended Rosenbrock n = 10               n = 4, 10, 20
22        Extended Powell singular n = 12          n = 4, 12, 20
23, 24    Penalty I / II n = 4                     n = 4, 10
25-31     n = 10                                   n = 4, 10, 20
32-34     linear functions n = 10, m = 20          n = 4, 10, 20 with m = 2n
35        Chebyquad n = m = 8                      n = 6, 8, 9, 10 (m = n)
========  =======================================  ====================

The fixed-size problems use the paper's n and m (Jennrich–Sampson m = 10, Gulf m = 99 as in Alg. 566, Box m = 10,
Brown–Dennis m = 20, Biggs EXP6 m = 13).
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from lbfgs_verify.problems.base import Expectation, Problem
from lbfgs_verify.problems.xp import TORCH_XP, data_table, namespace

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

Array = Any
"""A torch tensor, numpy array or JAX array (the residuals are written against the array API standard)."""

__all__ = [
    "MGH_NUMBERS",
    "SEVERAL_SIZES",
    "STANDARD_SIZES",
    "TOMS566_NUMBERS",
    "MGHObjective",
    "PublishedPoint",
    "evaluate_formula",
    "mgh_citation",
    "mgh_data",
    "mgh_f_star",
    "mgh_minimizers",
    "mgh_name",
    "mgh_problem",
    "mgh_size",
    "mgh_start",
    "mgh_suite",
    "parse_mgh_name",
]

MGH_NUMBERS = range(1, 36)
"""The problem numbers of the paper, 1 to 35."""

GOLDEN_FILE = "mgh_optima.toml"

STANDARD_SIZES: dict[int, tuple[int, int | None]] = {
    20: (6, None),
    21: (10, None),
    22: (12, None),
    23: (4, None),
    24: (4, None),
    **{k: (10, None) for k in range(25, 32)},
    32: (10, 20),
    33: (10, 20),
    34: (10, 20),
    35: (8, None),
}
"""``number -> (n, m)`` for the variable-size problems (``m=None``: the m the problem's rule gives)."""

SEVERAL_SIZES: dict[int, tuple[tuple[int, int | None], ...]] = {
    20: ((6, None), (9, None), (12, None)),
    21: ((4, None), (10, None), (20, None)),
    22: ((4, None), (12, None), (20, None)),
    23: ((4, None), (10, None)),
    24: ((4, None), (10, None)),
    **{k: ((4, None), (10, None), (20, None)) for k in range(25, 32)},
    **{k: ((4, 8), (10, 20), (20, 40)) for k in (32, 33, 34)},
    35: ((6, None), (8, None), (9, None), (10, None)),
}
"""``number -> sizes`` used by ``mgh_suite(sizes="several")`` for the variable-size problems."""

TOMS566_NUMBERS = (7, 18, 9, 3, 12, 25, 20, 23, 24, 4, 16, 11, 26, 21, 22, 5, 14, 35)
"""The 18 problems of Algorithm 566's OBJFCN, in its order, as MGH numbers."""

# --- expectations ----------------------------------------------------------------------------------------------
# A gradient method from the standard start reaches the published f* except on these problems: several published
# values, or a correct method (scipy L-BFGS-B 1.17 or torch L-BFGS with strong Wolfe) stops elsewhere (team facts,
# re-checked here). Scaled starts 10*x0, 100*x0 are always STATIONARY_POINT.
_SEVERAL_PUBLISHED_VALUES = frozenset({2, 8, 15, 18, 27})
_STOPS_ELSEWHERE_ANY_N = frozenset({3, 6, 10, 14, 26})  # 6: scipy stops at f = 214.34 (checked here)
# Watson n = 9 (facts) and n = 12 (checked: scipy 1.4e-5, torch 1.6e-7 vs f* = 4.7e-10); Chebyquad n = 10: methods
# reach the local 6.50395e-3, f* is the lower 4.77271e-3.
_STOPS_ELSEWHERE_AT: frozenset[tuple[int, int]] = frozenset({(20, 9), (20, 12), (35, 10)})


# --- the golden file ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _golden() -> dict[str, Any]:
    text = (resources.files("lbfgs_verify.golden") / GOLDEN_FILE).read_text(encoding="utf-8")
    return tomllib.loads(text)


def mgh_data(number: int) -> Mapping[str, Any]:
    """The table of problem ``number`` in ``mgh_optima.toml`` (read-only view of the parsed TOML)."""
    _check_number(number)
    return _golden()["problems"][f"mgh{number:02d}"]


def mgh_citation() -> Mapping[str, Any]:
    """The ``[citation]`` block of ``mgh_optima.toml``."""
    return _golden()["citation"]


_BINARY_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}
_COMPARE_OPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def evaluate_formula(formula: str, **names: float) -> float:
    """Evaluate an arithmetic expression of the golden file (``+ - * / ** %``, comparisons, numbers, names).

    Only the given names are visible; anything else (calls, attributes) raises ValueError.
    """

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name) and node.id in names:
            return names[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = ev(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
            return _BINARY_OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE_OPS:
            return int(_COMPARE_OPS[type(node.ops[0])](ev(node.left), ev(node.comparators[0])))
        raise ValueError(f"unsupported expression {ast.dump(node)} in formula {formula!r}")

    return float(ev(ast.parse(formula, mode="eval")))


def _vector_from(entry: Mapping[str, Any], key: str, n: int, m: int) -> list[float]:
    if key in entry:
        values = [float(v) for v in entry[key]]
        if len(values) != n:
            raise ValueError(f"{key} has {len(values)} entries, expected n = {n}")
        return values
    formula = entry[f"{key}_formula"]
    return [evaluate_formula(formula, j=j, n=n, m=m) for j in range(1, n + 1)]


# --- sizes ---------------------------------------------------------------------------------------------------------
_FIXED_N = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 7: 3, 8: 3, 9: 3, 10: 3, 11: 3, 12: 3, 13: 4, 14: 4, 15: 4, 16: 4,
            17: 5, 18: 6, 19: 11}  # fmt: skip
# Problems whose m may be chosen (paper: "m >= n" or Alg. 566's range); others have m fixed or given by n.
_FREE_M = {6, 11, 12, 16, 18, 32, 33, 34, 35}


def _check_number(number: int) -> None:
    if isinstance(number, bool) or not isinstance(number, int) or number not in MGH_NUMBERS:
        raise ValueError(f"MGH problem number must be in 1..35, got {number!r}")


def _n_rule(number: int, n: int) -> str | None:
    """None when n is allowed for problem ``number``, else the description of the allowed sizes."""
    if number in _FIXED_N:
        return None if n == _FIXED_N[number] else f"n = {_FIXED_N[number]}"
    rules: dict[int, tuple[Callable[[int], bool], str]] = {
        20: (lambda k: 2 <= k <= 31, "2 <= n <= 31"),
        21: (lambda k: k >= 2 and k % 2 == 0, "n even, n >= 2"),
        22: (lambda k: k >= 4 and k % 4 == 0, "n a multiple of 4, n >= 4"),
        27: (lambda k: k >= 2, "n >= 2"),
        34: (lambda k: k >= 3, "n >= 3"),
    }
    ok, text = rules.get(number, (lambda k: k >= 1, "n >= 1"))
    return None if ok(n) else text


def _default_m(number: int, n: int) -> int:
    """m when not given: the paper's fixed m, the m its rule gives for n, 2n for the linear functions, n for
    Chebyquad (as in Alg. 566)."""
    fixed = mgh_data(number).get("m")
    if number in (32, 33, 34):
        return 2 * n
    if number == 35:
        return n
    derived = {21: n, 22: n, 23: n + 1, 24: 2 * n, 25: n + 2, 26: n, 27: n, 28: n, 29: n, 30: n, 31: n}
    if number in derived:
        return derived[number]
    assert isinstance(fixed, int)
    return fixed


def _m_rule(number: int, n: int, m: int) -> str | None:
    """None when m is allowed for problem ``number`` of size n, else the description of the allowed m."""
    if number not in _FREE_M:
        expected = _default_m(number, n)
        return None if m == expected else f"m = {expected}"
    if number == 11:
        return None if n <= m <= 100 else f"{n} <= m <= 100"
    return None if m >= n else f"m >= n = {n}"


def _resolve_size(number: int, n: int | None, m: int | None) -> tuple[int, int]:
    _check_number(number)
    if n is None:
        n = _FIXED_N.get(number) or STANDARD_SIZES[number][0]
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    rule = _n_rule(number, n)
    if rule is not None:
        raise ValueError(f"MGH problem {number} ({mgh_data(number)['name']}) is defined for {rule}, got n = {n}")
    if m is None:
        m = _default_m(number, n)
    if isinstance(m, bool) or not isinstance(m, int):
        raise TypeError(f"m must be an int, got {type(m).__name__}")
    rule = _m_rule(number, n, m)
    if rule is not None:
        raise ValueError(f"MGH problem {number} ({mgh_data(number)['name']}) with n = {n} needs {rule}, got m = {m}")
    return n, m


def mgh_size(number: int, *, n: int | None = None, m: int | None = None) -> tuple[int, int]:
    """The validated ``(n, m)`` of problem ``number`` (None: the standard size; ValueError names allowed sizes)."""
    return _resolve_size(number, n, m)


def _is_default_m(number: int, n: int, m: int) -> bool:
    return m == _default_m(number, n)


# --- published data ------------------------------------------------------------------------------------------------
def mgh_start(number: int, *, n: int | None = None, m: int | None = None, scale: float = 1.0) -> list[float]:
    """``scale`` times the standard start (Alg. 566 INITPT: where x0 = 0, the start is ``x_j = scale``)."""
    n, m = _resolve_size(number, n, m)
    x0 = _vector_from(mgh_data(number), "x0", n, m)
    if scale == 1.0:
        return x0
    if all(v == 0.0 for v in x0):
        return [float(scale)] * n
    return [scale * v for v in x0]


def mgh_f_star(number: int, *, n: int | None = None, m: int | None = None) -> float | None:
    """The published optimal value for this size, ``None`` when the paper gives none for it."""
    n, m = _resolve_size(number, n, m)
    data = mgh_data(number)
    if "f_star" in data:
        return float(data["f_star"])
    if "f_star_formula" in data:
        return evaluate_formula(data["f_star_formula"], n=n, m=m)
    if "f_star_by_n" in data:
        value = data["f_star_by_n"].get(str(n))
        if number == 35 and m != n:
            return None  # Chebyquad values are published for m = n only
        return None if value is None else float(value)
    if "f_star_by_m" in data:
        value = data["f_star_by_m"].get(str(m))
        return None if value is None else float(value)
    raise KeyError(f"mgh{number:02d} has no f_star entry in {GOLDEN_FILE}")


@dataclass(frozen=True)
class PublishedPoint:
    """A published minimizer (or a limit at infinity) of an MGH problem, evaluated for one size."""

    kind: str
    f: float
    x: tuple[float, ...] | None
    exact: bool


def mgh_minimizers(number: int, *, n: int | None = None, m: int | None = None) -> list[PublishedPoint]:
    """The published points of problem ``number`` that apply to this size (``x`` None when not printed)."""
    n, m = _resolve_size(number, n, m)
    points = []
    for entry in mgh_data(number).get("minimizers", []):
        if entry.get("m", m) != m or entry.get("n", n) != n:
            continue
        f = evaluate_formula(entry["f_formula"], n=n, m=m) if "f_formula" in entry else float(entry["f"])
        x = tuple(_vector_from(entry, "x", n, m)) if ("x" in entry or "x_formula" in entry) else None
        points.append(PublishedPoint(kind=entry["kind"], f=f, x=x, exact=bool(entry.get("exact", False))))
    return points


# --- residuals -----------------------------------------------------------------------------------------------------
_SQRT_1E_MINUS_5 = math.sqrt(1e-5)  # the penalty weight a = 1e-5 of problems 23 and 24, as a residual factor


_CONSTANTS: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}


def _data(xp: ModuleType, x: Array, key: str, values: Any) -> Array:
    """The data table ``key`` in namespace ``xp``, in the dtype and device of ``x``: computed in float64 once
    (``values`` may be a zero-argument builder), rounded once to the dtype, then cached per (key, dtype, device);
    numpy and JAX tables come from :func:`~lbfgs_verify.problems.xp.data_table` (the same rounding)."""
    if xp is not TORCH_XP:
        return data_table(xp, x, f"mgh:{key}", values)
    cache_key = (key, x.dtype, x.device)
    table = _CONSTANTS.get(cache_key)
    if table is None:
        with torch.inference_mode(False), torch.no_grad():
            raw = values() if callable(values) else values
            table = torch.tensor(raw, dtype=torch.float64).to(dtype=x.dtype, device=x.device)
        _CONSTANTS[cache_key] = table
    return table


def _index(xp: ModuleType, x: Array, count: int, start: int = 1) -> Array:
    """``(start, start+1, ..., start+count-1)`` in the dtype of x."""
    return _data(xp, x, f"index{start}:{count}", lambda: [float(i) for i in range(start, start + count)])


def _zero(xp: ModuleType, x: Array) -> Array:
    """A one-entry zero vector like ``x`` (the padding of problems 28 and 30; no gradient flows into it)."""
    return xp.zeros_like(x[:1])


# Data tables of the paper (section 3), indexed i = 1..m.
_BARD_Y = (0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39)
_GAUSSIAN_Y = (0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989,
               0.3521, 0.2420, 0.1295, 0.0540, 0.0175, 0.0044, 0.0009)  # fmt: skip
_MEYER_Y = (34780.0, 28610.0, 23650.0, 19630.0, 16370.0, 13720.0, 11540.0, 9744.0,
            8261.0, 7030.0, 6005.0, 5147.0, 4427.0, 3820.0, 3307.0, 2872.0)  # fmt: skip
_KOWALIK_OSBORNE_Y = (0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246)
_KOWALIK_OSBORNE_U = (4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625)
_OSBORNE1_Y = (0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751, 0.718, 0.685, 0.658,
               0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490, 0.478, 0.467, 0.457, 0.448, 0.438, 0.431,
               0.424, 0.420, 0.414, 0.411, 0.406)  # fmt: skip
_OSBORNE2_Y = (1.366, 1.191, 1.112, 1.013, 0.991, 0.885, 0.831, 0.847, 0.786, 0.725, 0.746, 0.679, 0.608, 0.655,
               0.616, 0.606, 0.602, 0.626, 0.651, 0.724, 0.649, 0.649, 0.694, 0.644, 0.624, 0.661, 0.612, 0.558,
               0.533, 0.495, 0.500, 0.423, 0.395, 0.375, 0.372, 0.391, 0.396, 0.405, 0.428, 0.429, 0.523, 0.562,
               0.607, 0.653, 0.672, 0.708, 0.633, 0.668, 0.645, 0.632, 0.591, 0.559, 0.597, 0.625, 0.739, 0.710,
               0.729, 0.720, 0.636, 0.581, 0.428, 0.292, 0.162, 0.098, 0.054)  # fmt: skip


def _r01_rosenbrock(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (1): r1 = 10(x2 - x1^2), r2 = 1 - x1."""
    return xp.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]])


def _r02_freudenstein_roth(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (2): r1 = -13 + x1 + ((5 - x2) x2 - 2) x2, r2 = -29 + x1 + ((x2 + 1) x2 - 14) x2."""
    x1, x2 = x[0], x[1]
    return xp.stack([-13 + x1 + ((5 - x2) * x2 - 2) * x2, -29 + x1 + ((x2 + 1) * x2 - 14) * x2])


def _r03_powell_badly_scaled(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (3): r1 = 1e4 x1 x2 - 1, r2 = exp(-x1) + exp(-x2) - 1.0001."""
    return xp.stack([1e4 * x[0] * x[1] - 1, xp.exp(-x[0]) + xp.exp(-x[1]) - 1.0001])


def _r04_brown_badly_scaled(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (4): r1 = x1 - 1e6, r2 = x2 - 2e-6, r3 = x1 x2 - 2."""
    return xp.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2])


def _r05_beale(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (5): r_i = y_i - x1 (1 - x2^i), y = (1.5, 2.25, 2.625)."""
    y = _data(xp, x, "beale_y", (1.5, 2.25, 2.625))
    return y - x[0] * (1 - x[1] ** _index(xp, x, 3))


def _r06_jennrich_sampson(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (6): r_i = 2 + 2i - (exp(i x1) + exp(i x2)), i = 1..m."""
    i = _index(xp, x, m)
    return 2 + 2 * i - (xp.exp(i * x[0]) + xp.exp(i * x[1]))


def _r07_helical_valley(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (7): r1 = 10(x3 - 10 theta), r2 = 10(sqrt(x1^2 + x2^2) - 1), r3 = x3.

    ``2 pi theta = arctan(x2/x1)`` for x1 > 0 and ``arctan(x2/x1) + pi`` for x1 < 0, i.e. theta in [-1/4, 3/4);
    for x1 = 0 theta = sign(x2)/4 as in Alg. 566.
    """
    theta = xp.remainder(xp.atan2(x[1], x[0]) / (2 * math.pi) + 0.25, 1.0) - 0.25
    radius = xp.sqrt(x[0] ** 2 + x[1] ** 2)
    return xp.stack([10 * (x[2] - 10 * theta), 10 * (radius - 1), x[2]])


def _r08_bard(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (8): r_i = y_i - (x1 + u_i / (v_i x2 + w_i x3)), u_i = i, v_i = 16 - i, w_i = min(u_i, v_i)."""
    u = _index(xp, x, 15)
    v = 16 - u
    w = xp.minimum(u, v)
    return _data(xp, x, "bard_y", _BARD_Y) - (x[0] + u / (v * x[1] + w * x[2]))


def _r09_gaussian(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (9): r_i = x1 exp(-x2 (t_i - x3)^2 / 2) - y_i, t_i = (8 - i)/2."""
    t = (8 - _index(xp, x, 15)) / 2
    return x[0] * xp.exp(-x[1] * (t - x[2]) ** 2 / 2) - _data(xp, x, "gaussian_y", _GAUSSIAN_Y)


def _r10_meyer(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (10): r_i = x1 exp(x2 / (t_i + x3)) - y_i, t_i = 45 + 5i."""
    t = 45 + 5 * _index(xp, x, 16)
    return x[0] * xp.exp(x[1] / (t + x[2])) - _data(xp, x, "meyer_y", _MEYER_Y)


def _r11_gulf(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (11): r_i = exp(-|y_i - x2|^x3 / x1) - t_i, t_i = i/100, y_i = 25 + (-50 ln t_i)^(2/3)."""
    t = _data(xp, x, f"gulf_t{m}", lambda: [i / 100 for i in range(1, m + 1)])
    y = _data(xp, x, f"gulf_y{m}", lambda: [25 + (-50 * math.log(i / 100)) ** (2 / 3) for i in range(1, m + 1)])
    return xp.exp(-(xp.abs(y - x[1]) ** x[2]) / x[0]) - t


def _r12_box_3d(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (12): r_i = exp(-t_i x1) - exp(-t_i x2) - x3 (exp(-t_i) - exp(-10 t_i)), t_i = 0.1 i."""
    t = _data(xp, x, f"box_t{m}", lambda: [0.1 * i for i in range(1, m + 1)])
    c = _data(xp, x, f"box_c{m}", lambda: [math.exp(-0.1 * i) - math.exp(-float(i)) for i in range(1, m + 1)])
    return xp.exp(-t * x[0]) - xp.exp(-t * x[1]) - x[2] * c


def _powell_singular_blocks(xp: ModuleType, x: Array) -> Array:
    """MGH (13)/(22) on blocks of four: x_a + 10 x_b, sqrt5 (x_c - x_d), (x_b - 2 x_c)^2, sqrt10 (x_a - x_d)^2."""
    a, b, c, d = xp.unstack(xp.reshape(x, (-1, 4)), axis=1)
    blocks = xp.stack([a + 10 * b, math.sqrt(5) * (c - d), (b - 2 * c) ** 2, math.sqrt(10) * (a - d) ** 2], axis=1)
    return xp.reshape(blocks, (-1,))


def _r13_powell_singular(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (13): Powell singular function, n = m = 4."""
    return _powell_singular_blocks(xp, x)


def _r14_wood(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (14): 10(x2 - x1^2), 1 - x1, sqrt90 (x4 - x3^2), 1 - x3, sqrt10 (x2 + x4 - 2), (x2 - x4)/sqrt10."""
    x1, x2, x3, x4 = xp.unstack(x)
    return xp.stack([10 * (x2 - x1**2), 1 - x1, math.sqrt(90) * (x4 - x3**2), 1 - x3,
                     math.sqrt(10) * (x2 + x4 - 2), (x2 - x4) / math.sqrt(10)])  # fmt: skip


def _r15_kowalik_osborne(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (15): r_i = y_i - x1 (u_i^2 + u_i x2) / (u_i^2 + u_i x3 + x4)."""
    u = _data(xp, x, "kowalik_osborne_u", _KOWALIK_OSBORNE_U)
    y = _data(xp, x, "kowalik_osborne_y", _KOWALIK_OSBORNE_Y)
    return y - x[0] * (u**2 + u * x[1]) / (u**2 + u * x[2] + x[3])


def _r16_brown_dennis(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (16): r_i = (x1 + t_i x2 - exp t_i)^2 + (x3 + x4 sin t_i - cos t_i)^2, t_i = i/5."""
    t = _data(xp, x, f"brown_dennis_t{m}", lambda: [i / 5 for i in range(1, m + 1)])
    return (x[0] + t * x[1] - xp.exp(t)) ** 2 + (x[2] + x[3] * xp.sin(t) - xp.cos(t)) ** 2


def _r17_osborne1(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (17): r_i = y_i - (x1 + x2 exp(-t_i x4) + x3 exp(-t_i x5)), t_i = 10(i - 1)."""
    t = 10 * _index(xp, x, 33, start=0)
    model = x[0] + x[1] * xp.exp(-t * x[3]) + x[2] * xp.exp(-t * x[4])
    return _data(xp, x, "osborne1_y", _OSBORNE1_Y) - model


def _biggs_y(t: float) -> float:
    return math.exp(-t) - 5 * math.exp(-10 * t) + 3 * math.exp(-4 * t)


def _r18_biggs_exp6(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (18): r_i = x3 e^{-t_i x1} - x4 e^{-t_i x2} + x6 e^{-t_i x5} - y_i, t_i = i/10,
    y_i = e^{-t_i} - 5 e^{-10 t_i} + 3 e^{-4 t_i}."""
    t = _data(xp, x, f"biggs_t{m}", lambda: [0.1 * i for i in range(1, m + 1)])
    y = _data(xp, x, f"biggs_y{m}", lambda: [_biggs_y(0.1 * i) for i in range(1, m + 1)])
    return x[2] * xp.exp(-t * x[0]) - x[3] * xp.exp(-t * x[1]) + x[5] * xp.exp(-t * x[4]) - y


def _r19_osborne2(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (19): r_i = y_i - (x1 e^{-t_i x5} + x2 e^{-(t_i - x9)^2 x6} + x3 e^{-(t_i - x10)^2 x7}
    + x4 e^{-(t_i - x11)^2 x8}), t_i = (i - 1)/10."""
    t = _index(xp, x, 65, start=0) / 10
    model = (x[0] * xp.exp(-t * x[4]) + x[1] * xp.exp(-((t - x[8]) ** 2) * x[5])
             + x[2] * xp.exp(-((t - x[9]) ** 2) * x[6]) + x[3] * xp.exp(-((t - x[10]) ** 2) * x[7]))  # fmt: skip
    return _data(xp, x, "osborne2_y", _OSBORNE2_Y) - model


def _r20_watson(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (20): for i = 1..29, t_i = i/29: r_i = sum_{j>=2} (j-1) x_j t_i^{j-2} - (sum_j x_j t_i^{j-1})^2 - 1;
    r_30 = x1, r_31 = x2 - x1^2 - 1."""
    n = x.shape[0]
    powers = _data(xp, x, f"watson_powers{n}", lambda: [[(i / 29) ** k for k in range(n)] for i in range(1, 30)])
    weighted = _index(xp, x, n - 1) * x[1:]
    r = powers[:, : n - 1] @ weighted - (powers @ x) ** 2 - 1
    return xp.concat([r, xp.stack([x[0], x[1] - x[0] ** 2 - 1])])


def _r21_extended_rosenbrock(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (21): r_{2i-1} = 10(x_{2i} - x_{2i-1}^2), r_{2i} = 1 - x_{2i-1}."""
    odd, even = x[0::2], x[1::2]
    return xp.reshape(xp.stack([10 * (even - odd**2), 1 - odd], axis=1), (-1,))


def _r22_extended_powell_singular(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (22): Powell singular (13) on each block of four variables."""
    return _powell_singular_blocks(xp, x)


def _r23_penalty1(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (23): r_i = sqrt(1e-5)(x_i - 1), i <= n; r_{n+1} = sum_j x_j^2 - 1/4."""
    return xp.concat([_SQRT_1E_MINUS_5 * (x - 1), xp.reshape(xp.sum(x**2) - 0.25, (1,))])


def _r24_penalty2(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (24): r_1 = x1 - 0.2; r_i = sqrt a (e^{x_i/10} + e^{x_{i-1}/10} - y_i), 2 <= i <= n,
    y_i = e^{i/10} + e^{(i-1)/10}; r_i = sqrt a (e^{x_{i-n+1}/10} - e^{-1/10}), n < i < 2n;
    r_{2n} = sum_j (n - j + 1) x_j^2 - 1; a = 1e-5."""
    n = x.shape[0]
    e = xp.exp(x / 10)
    y = _data(xp, x, f"penalty2_y{n}", lambda: [math.exp(i / 10) + math.exp((i - 1) / 10) for i in range(2, n + 1)])
    weights = xp.flip(_index(xp, x, n), axis=0)
    return xp.concat([
        xp.reshape(x[0] - 0.2, (1,)),
        _SQRT_1E_MINUS_5 * (e[1:] + e[:-1] - y),
        _SQRT_1E_MINUS_5 * (e[1:] - math.exp(-0.1)),
        xp.reshape(xp.sum(weights * x**2) - 1, (1,)),
    ])  # fmt: skip


def _r25_variably_dimensioned(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (25): r_i = x_i - 1, i <= n; r_{n+1} = sum_j j (x_j - 1); r_{n+2} = (sum_j j (x_j - 1))^2."""
    s = xp.sum(_index(xp, x, x.shape[0]) * (x - 1))
    return xp.concat([x - 1, xp.stack([s, s**2])])


def _r26_trigonometric(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (26): r_i = n - sum_j cos x_j + i (1 - cos x_i) - sin x_i."""
    n = x.shape[0]
    cos = xp.cos(x)
    return n - xp.sum(cos) + _index(xp, x, n) * (1 - cos) - xp.sin(x)


def _r27_brown_almost_linear(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (27): r_i = x_i + sum_j x_j - (n + 1), i < n; r_n = prod_j x_j - 1."""
    n = x.shape[0]
    return xp.concat([x[:-1] + xp.sum(x) - (n + 1), xp.reshape(xp.prod(x) - 1, (1,))])


def _grid(xp: ModuleType, x: Array) -> tuple[Array, float]:
    """t_i = i h, h = 1/(n+1), for problems 28 and 29."""
    n = x.shape[0]
    h = 1 / (n + 1)
    return _data(xp, x, f"grid{n}", lambda: [i * h for i in range(1, n + 1)]), h


def _r28_discrete_boundary_value(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (28): r_i = 2x_i - x_{i-1} - x_{i+1} + h^2 (x_i + t_i + 1)^3 / 2, x_0 = x_{n+1} = 0."""
    t, h = _grid(xp, x)
    padded = xp.concat([_zero(xp, x), x, _zero(xp, x)])
    return 2 * x - padded[:-2] - padded[2:] + h**2 * (x + t + 1) ** 3 / 2


def _r29_discrete_integral_equation(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (29): r_i = x_i + h [(1 - t_i) sum_{j<=i} t_j (x_j + t_j + 1)^3
    + t_i sum_{j>i} (1 - t_j)(x_j + t_j + 1)^3] / 2."""
    t, h = _grid(xp, x)
    cube = (x + t + 1) ** 3
    lower = xp.cumulative_sum(t * cube, axis=0)
    upper_from_i = xp.flip(xp.cumulative_sum(xp.flip((1 - t) * cube, axis=0), axis=0), axis=0)  # sum_{j>=i}
    upper = xp.concat([upper_from_i[1:], _zero(xp, x)])  # sum_{j>i}
    return x + h * ((1 - t) * lower + t * upper) / 2


def _r30_broyden_tridiagonal(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (30): r_i = (3 - 2x_i) x_i - x_{i-1} - 2 x_{i+1} + 1, x_0 = x_{n+1} = 0."""
    padded = xp.concat([_zero(xp, x), x, _zero(xp, x)])
    return (3 - 2 * x) * x - padded[:-2] - 2 * padded[2:] + 1


def _r31_broyden_banded(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (31): r_i = x_i (2 + 5 x_i^2) + 1 - sum_{j in J_i} x_j (1 + x_j),
    J_i = {j != i : max(1, i - 5) <= j <= min(n, i + 1)}."""
    n = x.shape[0]
    band = _data(xp, x, f"broyden_band{n}", lambda: [[1.0 if (j != i and i - 5 <= j <= i + 1) else 0.0
                                                      for j in range(n)] for i in range(n)])  # fmt: skip
    return x * (2 + 5 * x**2) + 1 - band @ (x * (1 + x))


def _r32_linear_full_rank(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (32): r_i = x_i - (2/m) sum_j x_j - 1, i <= n; r_i = -(2/m) sum_j x_j - 1, n < i <= m."""
    n = x.shape[0]
    common = 2 / m * xp.sum(x) + 1
    return xp.concat([x - common, xp.broadcast_to(-common, (m - n,))])


def _r33_linear_rank1(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (33): r_i = i sum_j j x_j - 1, i = 1..m."""
    return _index(xp, x, m) * xp.sum(_index(xp, x, x.shape[0]) * x) - 1


def _r34_linear_rank1_zero_cols_rows(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (34): r_1 = r_m = -1; r_i = (i - 1) sum_{j=2}^{n-1} j x_j - 1, 2 <= i <= m - 1."""
    n = x.shape[0]
    s = xp.sum(_index(xp, x, n - 2, start=2) * x[1:-1])
    inner = _index(xp, x, m - 2) * s - 1
    minus_one = xp.reshape(s * 0 - 1, (1,))
    return xp.concat([minus_one, inner, minus_one])


def _chebyshev_integral(i: int) -> float:
    """integral_0^1 T_i(2s - 1) ds: 0 for odd i, -1/(i^2 - 1) for even i."""
    return 0.0 if i % 2 else -1 / (i * i - 1)


def _r35_chebyquad(xp: ModuleType, x: Array, m: int) -> Array:
    """MGH (35): r_i = (1/n) sum_j T_i(2 x_j - 1) - integral_0^1 T_i(2s - 1) ds, i = 1..m (T_i Chebyshev);
    the integral is 0 for odd i and -1/(i^2 - 1) for even i."""
    y = 2 * x - 1
    previous, current = xp.ones_like(y), y
    rows = [current]
    for _ in range(1, m):
        previous, current = current, 2 * y * current - previous
        rows.append(current)
    integrals = _data(xp, x, f"chebyquad_integrals{m}", lambda: [_chebyshev_integral(i) for i in range(1, m + 1)])
    return xp.mean(xp.stack(rows), axis=1) - integrals


_RESIDUALS: dict[int, Callable[[ModuleType, Array, int], Array]] = {
    int(name[2:4]): fn for name, fn in list(globals().items()) if name.startswith("_r") and name[2:4].isdigit()
}
assert sorted(_RESIDUALS) == list(MGH_NUMBERS)


@dataclass(frozen=True)
class MGHObjective:
    """``f(x) = sum_i r_i(x)^2`` for MGH problem ``number`` with ``n`` unknowns and ``m`` residuals.

    Called with the parameter list ``[x]`` (x of shape ``(n,)``); follows the dtype and device of x. The one
    definition is :meth:`xp_value` (any array API namespace: torch, numpy, JAX; see
    :mod:`lbfgs_verify.problems.xp`); calling the objective runs it in torch.
    """

    number: int
    n: int
    m: int

    def residuals(self, x: Array, xp: ModuleType | None = None) -> Array:
        """The residual vector r(x) of length m (``xp``: the namespace of x unless given)."""
        if tuple(x.shape) != (self.n,):
            raise ValueError(f"mgh{self.number:02d} expects x of shape ({self.n},), got {tuple(x.shape)}")
        r = _RESIDUALS[self.number](namespace(x) if xp is None else xp, x, self.m)
        assert tuple(r.shape) == (self.m,), (self.number, r.shape, self.m)
        return r

    def xp_value(self, xp: ModuleType, params: Sequence[Array]) -> Array:
        """``sum(r * r)`` in namespace ``xp`` for the parameter list ``[x]``."""
        (x,) = params
        r = self.residuals(x, xp)
        return xp.sum(r * r)

    def __call__(self, params: Any) -> Tensor:
        return self.xp_value(TORCH_XP, params)


# --- problems ------------------------------------------------------------------------------------------------------
def _dtype_short(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _expectation(number: int, n: int, scale: float, f_star: float | None) -> Expectation:
    if f_star is None or scale != 1.0:
        return Expectation.STATIONARY_POINT
    if number in _SEVERAL_PUBLISHED_VALUES or number in _STOPS_ELSEWHERE_ANY_N or (number, n) in _STOPS_ELSEWHERE_AT:
        return Expectation.STATIONARY_POINT
    return Expectation.REACHES_F_STAR


def mgh_name(number: int, n: int, m: int, scale: float, dtype: torch.dtype) -> str:
    """The problem name, e.g. ``mgh01_rosenbrock[n=2,x0*1,float64]`` (``,m=...`` only for a non-default m)."""
    slug = mgh_data(number)["slug"]
    m_part = "" if _is_default_m(number, n, m) else f",m={m}"
    return f"mgh{number:02d}_{slug}[n={n}{m_part},x0*{scale:g},{_dtype_short(dtype)}]"


def mgh_problem(
    number: int,
    *,
    n: int | None = None,
    m: int | None = None,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> Problem:
    """MGH problem ``number`` (1-35) with ``n`` unknowns and ``m`` residuals, started from ``scale * x0``.

    ``n``/``m`` default to the standard sizes (module docstring); a size the problem does not define raises
    ValueError naming the allowed sizes.
    """
    if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"dtype must be a real floating dtype, got {dtype}")
    n, m = _resolve_size(number, n, m)
    data = mgh_data(number)
    scale = float(scale)
    f_star = mgh_f_star(number, n=n, m=m)
    start = torch.tensor(mgh_start(number, n=n, m=m, scale=scale), dtype=torch.float64).to(dtype)
    tags = {"mgh", "least_squares", f"mgh{number:02d}"}
    if "toms566" in data:
        tags.add("toms566")
    if number not in _FIXED_N:
        tags.add("variable_dimension")
    if scale != 1.0:
        tags.add("scaled_start")
    citation = mgh_citation()
    source = f"{citation['short']}, problem ({number}) {data['name']}"
    if "toms566" in data:
        source += f"; Alg. 566 OBJFCN problem {data['toms566']}"
    return Problem(
        name=mgh_name(number, n, m, scale, dtype),
        dimension=n,
        dtype=dtype,
        start=(start,),
        objective=MGHObjective(number, n, m),
        f_star=f_star,
        expectation=_expectation(number, n, scale, f_star),
        source=source,
        notes=" ".join(str(data.get("notes", "")).split()),
        tags=frozenset(tags),
    )


def mgh_suite(
    *,
    dtype: torch.dtype = torch.float64,
    scales: Iterable[float] = (1.0,),
    sizes: str = "standard",
) -> list[Problem]:
    """All 35 MGH problems at their standard sizes (``sizes="standard"``), or with every variable-size problem at
    several sizes (``sizes="several"``, see :data:`SEVERAL_SIZES`), for each start multiple in ``scales``."""
    if sizes not in ("standard", "several"):
        raise ValueError(f"sizes must be 'standard' or 'several', got {sizes!r}")
    problems = []
    for scale in scales:
        for number in MGH_NUMBERS:
            if sizes == "several" and number in SEVERAL_SIZES:
                size_list: Iterable[tuple[int | None, int | None]] = SEVERAL_SIZES[number]
            else:
                size_list = [(None, None)]
            for n, m in size_list:
                problems.append(mgh_problem(number, n=n, m=m, scale=scale, dtype=dtype))
    return problems


_NAME_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                "float64": torch.float64}  # fmt: skip


def parse_mgh_name(name: str) -> dict[str, Any]:
    """Invert :func:`mgh_name`: ``{"number", "n", "m", "scale", "dtype"}``; KeyError when it is not one."""
    match = re.fullmatch(r"mgh(\d\d)_([a-z0-9_]+)\[n=(\d+)(?:,m=(\d+))?,x0\*([^,\]]+),([a-z0-9]+)\]", name)
    if match is None:
        raise KeyError(name)
    number = int(match.group(1))
    if number not in MGH_NUMBERS or match.group(2) != mgh_data(number)["slug"] or match.group(6) not in _NAME_DTYPES:
        raise KeyError(name)
    try:
        scale = float(match.group(5))
    except ValueError:
        raise KeyError(name) from None
    return {
        "number": number,
        "n": int(match.group(3)),
        "m": int(match.group(4)) if match.group(4) else None,
        "scale": scale,
        "dtype": _NAME_DTYPES[match.group(6)],
    }
