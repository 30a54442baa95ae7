"""Black-box observation of an L-BFGS target: what its closure sees, and what can be derived from that.

The mathematics, behaviour and convergence properties treat the optimizer as a black box. They use only its
constructor, ``step(closure)``, ``param_groups[0]`` (to change hyperparameters between steps, as users do),
what the closure observes (the point ``x`` and gradient ``g`` of every call, the number of calls) and the
parameters after each step. This module is the one place that records those observations and derives:

- flat vectors in ``torch.optim.LBFGS``'s layout (parameters in order, complex ones as their real view,
  a missing gradient as zeros: ``torch/optim/lbfgs.py`` ``_gather_flat_grad``), always in float64;
- the curvature pairs ``s_k = x_{k+1} - x_k``, ``y_k = g_{k+1} - g_k`` of a run made of one-iteration steps
  (``max_iter=1``, ``line_search_fn=None``: each ``step()`` evaluates once at ``x_k`` and moves by
  ``t_k d_k`` without evaluating again), and the search directions ``d_k = (x_{k+1} - x_k) / t_k``;
- the L-BFGS direction rebuilt from those pairs by the two-loop recursion (Nocedal & Wright, *Numerical
  Optimization*, 2nd ed., Algorithm 7.4) with H₀ = γI, γ = sᵀy/yᵀy of the newest pair (eq. 7.20), the
  ``history_size`` newest pairs and torch's curvature skip (a pair is kept only if yᵀs > 1e-10);
- rounding allowances: every derived quantity is compared with a slack proportional to the unit roundoff
  of the problem's dtype and to the magnitudes involved (never a bare ``==`` between two float paths).

The state format is opaque; :func:`state_counters` reads only torch's documented ``func_evals``/``n_iter``
keys and returns ``None`` when the target keeps its state in another format (properties then skip).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lbfgs_verify.compare.bitwise import same_values
from lbfgs_verify.compare.trace import CountingClosure, Evaluation
from lbfgs_verify.compare.trace import flat_grad as flat_grad  # re-exported for the observation helpers
from lbfgs_verify.engine.evidence import PropertyFailed
from lbfgs_verify.engine.runs import call_target
from lbfgs_verify.problems.base import Problem, flat

CURVATURE_THRESHOLD = 1e-10
RELATIVE_CURVATURE_EPS = 2.220446049250313e-16
"""The scale-invariant curvature skip of L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995; scipy's lbfgsb.c ``matupd``
is called only if ``sᵀy > epsmch·yᵀy``): a correct alternative to torch's absolute ``yᵀs > 1e-10``."""
CURVATURE_RULES = ("skip", "relative")
"""The curvature-skip rules a correct L-BFGS may use (``curvature=`` of :func:`rebuild_directions`): torch's
absolute one and L-BFGS-B's scale-invariant one. The two decide alike except for tiny positive yᵀs."""
"""torch keeps a pair only if ``y·s > 1e-10`` (absolute; ``torch/optim/lbfgs.py``, "if ys > 1e-10")."""

TORCH_DEFAULTS: dict[str, Any] = {
    "lr": 1,
    "max_iter": 20,
    "max_eval": 25,
    "tolerance_grad": 1e-7,
    "tolerance_change": 1e-9,
    "history_size": 100,
    "line_search_fn": None,
}
"""``torch.optim.LBFGS``'s defaults (``max_eval=None`` means ``max_iter * 5 // 4`` = 25)."""

WOLFE_C1 = 1e-4
WOLFE_C2 = 0.9
"""The constants of torch's strong-Wolfe search (``_strong_wolfe(..., c1=1e-4, c2=0.9)``)."""


# --------------------------------------------------------------------------------------------------------
# Flat vectors
# --------------------------------------------------------------------------------------------------------


def unit_roundoff(dtype: torch.dtype) -> float:
    """``eps`` of a floating dtype (complex: of its real part)."""
    if dtype.is_complex:
        dtype = torch.float64 if dtype == torch.complex128 else torch.float32
    return float(torch.finfo(dtype).eps)


def grad_mask(params: Sequence[Tensor]) -> Tensor:
    """A boolean flat vector: True where the parameter received a gradient (``p.grad is not None``)."""
    parts = []
    for p in params:
        n = 2 * p.numel() if p.is_complex() else p.numel()
        parts.append(torch.full((n,), p.grad is not None, dtype=torch.bool))
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool)


def describe_value(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"torch.tensor({value.item()!r}, dtype={value.dtype})"
    return repr(value)


def describe_hyperparameters(hp: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={describe_value(v)}" for k, v in hp.items()) or "(defaults)"


def fresh_hyperparameters(hp: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments with tensors cloned, so that two optimizers never share a hyperparameter tensor."""
    return {k: v.detach().clone() if isinstance(v, Tensor) else v for k, v in hp.items()}


# --------------------------------------------------------------------------------------------------------
# Observations
# --------------------------------------------------------------------------------------------------------


@dataclass
class ObservedStep:
    """One ``step()`` call: its closure calls in order, the parameters after it, and what it returned."""

    index: int
    evaluations: list[Evaluation]
    x_after: Tensor
    returned: float | None
    hyperparameters: dict[str, Any]
    """``param_groups[0]``'s hyperparameters in effect during the step (as the harness set them)."""

    @property
    def calls(self) -> int:
        return len(self.evaluations)

    @property
    def start(self) -> Evaluation:
        if not self.evaluations:
            raise PropertyFailed(f"step {self.index} returned without calling the closure (step() must evaluate "
                                 "the loss at the current parameters first: torch/optim/lbfgs.py 'orig_loss = "
                                 "closure()')", {"step": self.index})
        return self.evaluations[0]

    @property
    def moved(self) -> bool:
        return not torch.equal(self.x_after, self.start.x)


@dataclass
class Observation:
    """A recorded run of the target on a problem: the start and one :class:`ObservedStep` per ``step()``."""

    problem: Problem
    hyperparameters: dict[str, Any]
    x0: Tensor
    steps: list[ObservedStep] = field(default_factory=list)
    optimizer: Any = None
    params: list[Tensor] = field(default_factory=list)
    grad_mask: Tensor | None = None

    @property
    def eps(self) -> float:
        return unit_roundoff(self.problem.dtype)

    def describe(self) -> str:
        return f"problem={self.problem.name}, {describe_hyperparameters(self.hyperparameters)}"

    def evidence(self, **extra: Any) -> dict[str, Any]:
        return {"problem": self.problem.name,
                "hyperparameters": {k: describe_value(v) for k, v in self.hyperparameters.items()}, **extra}

    def fail(self, message: str, **extra: Any) -> PropertyFailed:
        """A :class:`PropertyFailed` naming the problem and hyperparameters, with ``extra`` as evidence."""
        details = "".join(f"; {k}={_fmt(v)}" for k, v in extra.items())
        return PropertyFailed(f"{message}\n  {self.describe()}{details}", self.evidence(**extra))


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class RecordingClosure(CountingClosure):
    """The problem's closure, recording x, g (flat float64) and the loss of every call, and which
    parameters received a gradient (``mask``, from the first call)."""

    def __init__(self, problem: Problem, params: Sequence[Tensor]):
        super().__init__(problem.make_closure(params), params, keep_points=True)
        self.mask: Tensor | None = None

    def __call__(self) -> Tensor:
        loss = super().__call__()
        if self.mask is None:
            self.mask = grad_mask(self._params)
        return loss


def group_hyperparameters(optimizer: Any) -> dict[str, Any] | None:
    """``param_groups[0]`` without ``params``, if the target has torch-style parameter groups."""
    groups = getattr(optimizer, "param_groups", None)
    if not groups:
        return None
    return {k: v for k, v in groups[0].items() if k != "params"}


def set_hyperparameter(optimizer: Any, key: str, value: Any, context: str = "") -> None:
    """``optimizer.param_groups[0][key] = value`` (how users change lr between steps); a target without
    ``param_groups`` fails (torch's documented interface, ``torch.optim.Optimizer.param_groups``)."""
    groups = getattr(optimizer, "param_groups", None)
    if not groups or not isinstance(groups[0], dict):
        raise PropertyFailed(f"the optimizer has no param_groups[0] dict to change {key!r} in{context}",
                             {"key": key})
    groups[0][key] = value


def observe(
    target: Any,
    problem: Problem,
    hyperparameters: Mapping[str, Any],
    n_steps: int,
    *,
    before_step: Callable[[int, Any], None] | None = None,
    stop_when: Callable[[ObservedStep], bool] | None = None,
    device: str = "cpu",
) -> Observation:
    """Run ``n_steps`` calls of ``step(closure)`` of a fresh optimizer ``target.make(params, **hyperparameters)``.

    ``before_step(k, optimizer)`` runs before step ``k`` (to change hyperparameters); ``stop_when(step)``
    ends the run early (e.g. once converged). Exceptions raised by the target become :class:`PropertyFailed`.
    """
    hp = dict(hyperparameters)
    params = problem.make_params(device)
    context = f"problem={problem.name}, {describe_hyperparameters(hp)}"
    optimizer = call_target("constructing the optimizer", lambda: target.make(params, **fresh_hyperparameters(hp)),
                            context=context)
    obs = Observation(problem, hp, flat(params), optimizer=optimizer, params=params)
    closure = RecordingClosure(problem, params)
    for k in range(n_steps):
        if before_step is not None:
            before_step(k, optimizer)
        in_effect = group_hyperparameters(optimizer) or dict(hp)
        try:
            returned = call_target(f"step {k}", lambda: optimizer.step(closure), context=context)
        except PropertyFailed as exc:  # name the run, so that the failure can be reproduced (lbfgs_verify.engine.repro)
            exc.evidence = {**obs.evidence(), **exc.evidence}
            raise
        record = ObservedStep(k, closure.take(), flat(params), None if returned is None else float(returned),
                              in_effect)
        if not record.evaluations and obs.steps and same_values(record.x_after, obs.steps[-1].x_after):
            break  # a step that neither evaluated nor moved: the optimizer has finished (scipy-style ones do this)
        obs.steps.append(record)
        if obs.grad_mask is None:
            obs.grad_mask = closure.mask
        if not _accepted_point_finite(record):
            break
        if stop_when is not None and stop_when(record):
            break
    return obs


def _accepted_point_finite(step: ObservedStep) -> bool:
    """Whether the run can go on after ``step``: the parameters it left are finite, and so is the loss wherever
    the closure was evaluated there. A non-finite *trial* point inside a line search is normal (N&W §3.5: the
    search backtracks from it) and does not end the run; only a non-finite accepted point does."""
    if not bool(torch.isfinite(step.x_after).all()):
        return False
    return all(math.isfinite(e.loss) for e in step.evaluations if torch.equal(e.x, step.x_after))


def state_counters(optimizer: Any) -> dict[str, int] | None:
    """``{"func_evals": .., "n_iter": ..}`` from ``state_dict()["state"]`` in torch's layout, or ``None``.

    Only torch's documented keys are read (``state[0]["func_evals"]``, ``["n_iter"]``); a target whose state
    has another format gives ``None``.
    """
    state_dict = getattr(optimizer, "state_dict", None)
    if state_dict is None:
        return None
    try:
        sd = state_dict()
    except Exception:
        return None
    state = sd.get("state") if isinstance(sd, Mapping) else None
    if not isinstance(state, Mapping):
        return None
    for entry in state.values():
        if isinstance(entry, Mapping) and "func_evals" in entry:
            out = {}
            for key in ("func_evals", "n_iter"):
                if key in entry:
                    value = entry[key]
                    out[key] = int(value.item()) if isinstance(value, Tensor) else int(value)
            return out
    return None


# --------------------------------------------------------------------------------------------------------
# Steps, pairs, directions
# --------------------------------------------------------------------------------------------------------


def scalar(value: Any) -> float:
    """A Python float from an int/float/0-dim tensor hyperparameter."""
    return float(value.item()) if isinstance(value, Tensor) else float(value)


def first_step_length(g0: Tensor, lr: float) -> float:
    """torch's first trial step: ``t = min(1, 1/||g||_1) * lr`` (torch/optim/lbfgs.py, "reset initial guess")."""
    return min(1.0, 1.0 / float(g0.abs().sum())) * lr


def step_lengths(obs: Observation) -> list[float]:
    """The step length ``t_k`` of each one-iteration step without line search: torch's first-iteration rule for
    step 0, ``lr`` (as in effect during the step) after."""
    out = []
    for k, step in enumerate(obs.steps):
        lr = scalar(step.hyperparameters.get("lr", obs.hyperparameters.get("lr", 1)))
        out.append(first_step_length(step.start.g, lr) if k == 0 else lr)
    return out


@dataclass
class RebuiltDirection:
    """The direction the two-loop recursion gives at iterate ``k`` from the observed pairs.

    Attributes:
        d: the direction -H_k g_k (float64).
        pairs: how many (s, y) pairs were in the memory.
        gamma: the scale of H₀.
        ambiguous: a curvature decision so far was within rounding of the 1e-10 threshold (the target may
            legitimately have decided the other way); comparisons stop there.
        skipped: indices j of pairs (s_j, y_j) that the curvature test rejected so far.
    """

    d: Tensor
    pairs: int
    gamma: float
    ambiguous: bool
    skipped: list[int]


def two_loop(g: Tensor, pairs: Sequence[tuple[Tensor, Tensor]], gamma: float, *, rho_rule: str = "inverted",
             first_loop_sign: float = -1.0) -> Tensor:
    """``-H g`` by the two-loop recursion (Nocedal & Wright Alg. 7.4), pairs oldest first, H₀ = γI.

    ``rho_rule``/``first_loop_sign`` other than the defaults build wrong variants (diagnosis only).
    """
    def rho_of(s: Tensor, y: Tensor) -> float:
        ys = float(y @ s)
        if rho_rule == "not_inverted":
            return ys
        return 1.0 / ys if ys else math.inf

    q = -g.clone()
    alphas = []
    for s, y in reversed(pairs):
        a = rho_of(s, y) * float(s @ q)
        q = q + first_loop_sign * a * y
        alphas.append(a)
    r = gamma * q
    for (s, y), a in zip(pairs, reversed(alphas), strict=True):
        b = rho_of(s, y) * float(y @ r)
        r = r + (a - b) * s
    return r


def curvature_slack(s: Tensor, y: Tensor, x_prev: Tensor, x_next: Tensor, eps: float) -> float:
    """How far a target's yᵀs may lie from ours by rounding: its s is t·d (ours x_{k+1}-x_k, which differs by
    ~eps·|x|), and both dot products round (~n·eps·Σ|y_i s_i|)."""
    n = max(1, s.numel())
    return 8 * n * eps * float((y.abs() * s.abs()).sum()) + 8 * eps * float((y.abs() * (x_prev.abs()
                                                                                         + x_next.abs())).sum())


DIRECTION_VARIANTS: dict[str, dict[str, Any]] = {
    "γ = 1 (no initial scaling)": {"gamma_rule": "one"},
    "γ = yᵀy/sᵀy (inverted scaling)": {"gamma_rule": "inverse"},
    "γ from the oldest pair in memory": {"gamma_rule": "oldest"},
    "history_size - 1 pairs": {"history_offset": -1},
    "history_size + 1 pairs": {"history_offset": 1},
    "every pair kept (history never trimmed)": {"keep": "all"},
    "the oldest pairs kept (new pairs dropped when full)": {"keep": "oldest"},
    "no curvature skip (pairs with yᵀs <= 1e-10 kept)": {"curvature": "none"},
    "curvature test inverted (only yᵀs <= 1e-10 kept)": {"curvature": "inverted"},
    "ρ = yᵀs instead of 1/yᵀs": {"rho_rule": "not_inverted"},
    "first loop with the wrong sign (q += α y)": {"first_loop_sign": 1.0},
    "steepest descent (-γ g, no pairs used)": {"history_offset": -10**9},
}
"""Common mistakes, rebuilt the same way, to name the likely bug when the observed direction differs."""


def rebuild_directions(
    xs: Sequence[Tensor], gs: Sequence[Tensor], history_sizes: Sequence[int], eps: float,
    threshold: float = CURVATURE_THRESHOLD, *, gamma_rule: str = "newest", keep: str = "newest",
    history_offset: int = 0, curvature: str = "skip", rho_rule: str = "inverted", first_loop_sign: float = -1.0,
) -> list[RebuiltDirection]:
    """The L-BFGS directions at the iterates ``xs`` (gradients ``gs``), rebuilt from the observed pairs.

    Pair ``j`` is ``(x_{j+1} - x_j, g_{j+1} - g_j)``; it is kept if ``yᵀs > threshold``; the memory holds the
    ``history_sizes[k]`` newest kept pairs at iterate ``k`` (torch drops the oldest); γ is sᵀy/yᵀy of the
    newest kept pair, 1 before the first. Direction 0 is ``-g_0``. The keyword arguments other than
    ``threshold`` build the wrong variants of :data:`DIRECTION_VARIANTS` (for diagnosis only).
    """
    memory: list[tuple[Tensor, Tensor]] = []
    gamma = 1.0
    ambiguous = False
    skipped: list[int] = []
    out: list[RebuiltDirection] = []
    for k, g in enumerate(gs):
        h = max(0, history_sizes[k] + history_offset)
        if k > 0:
            s, y = xs[k] - xs[k - 1], g - gs[k - 1]
            ys = float(y @ s)
            if abs(ys - threshold) <= curvature_slack(s, y, xs[k - 1], xs[k], eps):
                ambiguous = True
            accept = {"skip": ys > threshold, "none": True, "inverted": ys <= threshold,
                      "relative": ys > RELATIVE_CURVATURE_EPS * float(y @ y)}[curvature]
            if accept and not (keep == "oldest" and len(memory) >= h):
                memory.append((s, y))
                yy = float(y @ y)
                gamma = {"newest": ys / yy if yy else math.inf, "one": 1.0,
                         "inverse": yy / ys if ys else math.inf}.get(gamma_rule, gamma)
            elif not accept:
                skipped.append(k - 1)
        if keep != "all" and len(memory) > h:
            memory = memory[len(memory) - h:] if h else []
        if gamma_rule == "oldest" and memory:
            s0, y0 = memory[0]
            gamma = float(y0 @ s0) / float(y0 @ y0)
        d = two_loop(g, memory, gamma, rho_rule=rho_rule, first_loop_sign=first_loop_sign)
        out.append(RebuiltDirection(d, len(memory), gamma, ambiguous, list(skipped)))
    return out


def explain_direction(
    xs: Sequence[Tensor], gs: Sequence[Tensor], history_sizes: Sequence[int], eps: float, k: int,
    observed: Tensor, tolerance: float,
) -> list[str]:
    """Names of the :data:`DIRECTION_VARIANTS` that reproduce the ``observed`` direction at iterate ``k``."""
    names = []
    for name, options in DIRECTION_VARIANTS.items():
        try:
            d = rebuild_directions(xs[:k + 1], gs[:k + 1], history_sizes[:k + 1], eps, **options)[k].d
        except (ZeroDivisionError, OverflowError):
            continue
        if bool(torch.isfinite(d).all()) and relative_difference(observed, d) <= tolerance:
            names.append(name)
    return names


def _pairs_at(xs: Sequence[Tensor], gs: Sequence[Tensor], history_sizes: Sequence[int], k: int,
              threshold: float = CURVATURE_THRESHOLD) -> list[tuple[Tensor, Tensor]]:
    """The memory the correct rule holds at iterate ``k``: the ``history_sizes[k]`` newest pairs with yᵀs above
    the threshold, oldest first (as :func:`rebuild_directions`)."""
    memory: list[tuple[Tensor, Tensor]] = []
    for j in range(1, k + 1):
        s, y = xs[j] - xs[j - 1], gs[j] - gs[j - 1]
        if float(y @ s) > threshold:
            memory.append((s, y))
        h = max(0, history_sizes[j])
        memory = memory[len(memory) - h:] if h else []
    return memory


def _gamma_formulas(pairs: Sequence[tuple[Tensor, Tensor]]) -> dict[str, float]:
    """Values of the initial scaling γ (H₀ = γI) that implementations compute, right (N&W eq. 7.20) or wrong."""
    out: dict[str, float] = {"γ = 1": 1.0}
    named = [("the newest pair", pairs[-1])]
    if len(pairs) > 1:
        named += [("the second-newest pair (one pair late)", pairs[-2]), ("the oldest pair", pairs[0])]
    for where, (s, y) in named:
        ss, sy, yy = float(s @ s), float(s @ y), float(y @ y)
        for formula, value in (("sᵀy/yᵀy", sy / yy if yy else math.inf), ("yᵀy/sᵀy", yy / sy if sy else math.inf),
                               ("sᵀs/sᵀy", ss / sy if sy else math.inf), ("sᵀy/sᵀs", sy / ss if ss else math.inf)):
            out.setdefault(f"γ = {formula} of {where}", value)
    return out


def explain_gamma(
    xs: Sequence[Tensor], gs: Sequence[Tensor], history_sizes: Sequence[int], k: int, observed: Tensor,
    tolerance: float,
) -> str | None:
    """Whether the observed direction at iterate ``k`` is the two-loop direction with the right pairs but another
    initial scaling γ. The two-loop output is affine in γ (Nocedal & Wright Alg. 7.4: r = γq, then the second
    loop is linear in r), so d(γ) = d₀ + γ·d₁; the γ that fits the observation is found by least squares and, if
    d(γ) then matches within ``tolerance``, named after the formula that gives it (or given as a number)."""
    pairs = _pairs_at(xs, gs, history_sizes, k)
    if not pairs:
        return None
    d0 = two_loop(gs[k], pairs, 0.0)
    d1 = two_loop(gs[k], pairs, 1.0) - d0
    denominator = float(d1 @ d1)
    if not denominator or not math.isfinite(denominator):
        return None
    fitted = float(d1 @ (observed.to(d1.dtype) - d0)) / denominator
    if not math.isfinite(fitted) or relative_difference(observed.to(d1.dtype), d0 + fitted * d1) > tolerance:
        return None
    formulas = _gamma_formulas(pairs)
    right = formulas["γ = sᵀy/yᵀy of the newest pair"]
    matches = [name for name, value in formulas.items()
               if math.isfinite(value) and abs(value - fitted) <= 1e3 * tolerance * max(abs(value), abs(fitted))]
    if any(name == "γ = sᵀy/yᵀy of the newest pair" for name in matches):
        return None  # the scaling is right; the difference is elsewhere
    named = f"{matches[0]}" if matches else "no usual formula"
    return (f"the initial scaling γ: the direction is the two-loop one from the right pairs with γ = {fitted:.6g} "
            f"({named}) instead of sᵀy/yᵀy of the newest pair = {right:.6g}")


def relative_difference(a: Tensor, b: Tensor) -> float:
    """``max|a - b| / max|b|`` over the finite entries (inf when ``b`` is zero and ``a`` is not).

    Non-finite entries agree when both sides hold the same one (NaN and NaN, or the same infinity): two runs
    that both went to NaN at the same place are not a difference, so a property about something else (the
    defaults, say) is not failed by NaN ≠ NaN. NaN or an infinity on one side only is a difference (inf).
    """
    if a.shape != b.shape:
        raise ValueError(f"relative_difference needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    finite_a, finite_b = torch.isfinite(a), torch.isfinite(b)
    same_non_finite = ~finite_a & ~finite_b & ((torch.isnan(a) & torch.isnan(b)) | (a == b))
    if bool((~(finite_a & finite_b) & ~same_non_finite).any()):
        return math.inf
    both = finite_a & finite_b
    a, b = a[both], b[both]
    scale = float(b.abs().max()) if b.numel() else 0.0
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    if scale == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / scale


def move_difference(actual: Tensor, expected: Tensor, x_from: Tensor, x_to: Tensor, eps: float) -> float:
    """Relative max-norm difference of an observed move ``actual`` (= x_to - x_from) from ``expected``, beyond a
    per-coordinate rounding allowance of 4·eps·(|x_from| + |x_to|): a move is a difference of stored parameters,
    so its absolute error is set by the size of the parameters, not of the move."""
    excess = ((actual - expected).abs() - 4 * eps * (x_from.abs() + x_to.abs())).clamp_min(0)
    return relative_difference(expected + excess, expected)


# --------------------------------------------------------------------------------------------------------
# Strong Wolfe conditions
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WolfeCheck:
    """The strong-Wolfe quantities of one accepted step p = x_{k+1} - x_k (N&W eq. 3.7a and 3.7b).

    Attributes:
        decrease: f_{k+1} - f_k - c1 g_kᵀp (≤ slack_f required).
        slack_f: rounding allowance for ``decrease``.
        curvature: |g_{k+1}ᵀp| - c2 |g_kᵀp| (≤ slack_g required).
        slack_g: rounding allowance for ``curvature``.
        gtp: g_kᵀp (negative for a descent step).
    """

    decrease: float
    slack_f: float
    curvature: float
    slack_g: float
    gtp: float

    @property
    def sufficient_decrease(self) -> bool:
        return self.decrease <= self.slack_f

    @property
    def curvature_condition(self) -> bool:
        return self.curvature <= self.slack_g


def wolfe_check(start: Evaluation, end: Evaluation, eps: float, c1: float = WOLFE_C1,
                c2: float = WOLFE_C2) -> WolfeCheck:
    """Strong-Wolfe quantities of the move ``start.x -> end.x`` with rounding allowances.

    Allowances: the losses are rounded in the problem's dtype (16·eps·(|f_k| + |f_{k+1}|)); the dot products
    are rounded (n·eps·Σ|g_i p_i|) and p = x_{k+1} - x_k differs from the target's t·d by ~eps·|x|
    (eps·Σ|g_i|(|x_k,i| + |x_{k+1},i|)); each term gets a factor 16.
    """
    p = end.x - start.x
    n = max(1, p.numel())
    gtp = float(start.g @ p)
    gtp_new = float(end.g @ p)
    x_err = start.x.abs() + end.x.abs()
    dot_slack0 = n * eps * float((start.g.abs() * p.abs()).sum()) + eps * float((start.g.abs() * x_err).sum())
    dot_slack1 = n * eps * float((end.g.abs() * p.abs()).sum()) + eps * float((end.g.abs() * x_err).sum())
    decrease = end.loss - start.loss - c1 * gtp
    slack_f = 16 * eps * (abs(start.loss) + abs(end.loss)) + 16 * c1 * dot_slack0
    curvature = abs(gtp_new) - c2 * abs(gtp)
    slack_g = 16 * (dot_slack1 + c2 * dot_slack0)
    return WolfeCheck(decrease, slack_f, curvature, slack_g, gtp)
