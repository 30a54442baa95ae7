"""The Moré–Thuente line search (MINPACK-2 ``dcsrch``/``dcstep``) with the C semantics of scipy's L-BFGS-B.

Source of the rules: J. J. Moré and D. J. Thuente, "Line search algorithms with guaranteed sufficient
decrease", ACM TOMS 20(3):286–307, 1994; the constants and the floating-point expressions are those of the
MINPACK-2 routines as scipy 1.17 compiles them (``scipy/optimize/__lbfgsb.c``: ``dcsrch``, ``dcstep``).
This is our own implementation of those rules; it is not a copy of scipy's ``_dcsrch.py``.

With φ(α) = f(x + α d), φ'(α) its derivative, the search looks for a step α in [stpmin, stpmax] with

    sufficient decrease   φ(α) ≤ φ(0) + ftol · α · φ'(0)
    curvature             |φ'(α)| ≤ gtol · |φ'(0)|

It keeps an interval of uncertainty with end points ``stx`` (the best step so far) and ``sty``; each new
trial step comes from :func:`dcstep` (cubic / quadratic / secant interpolation, paper §4), safeguarded by
extrapolation bounds ``[stp + 1.1 (stp - stx), stp + 4 (stp - stx)]`` before a bracket is found and by a
bisection when the bracket does not shrink by the factor 0.66 (paper §5). In "stage 1" (no step has yet met
sufficient decrease with φ'(α) ≥ 0) it works on the modified function ψ(α) = φ(α) - φ(0) - ftol · α · φ'(0)
(paper §3).

C semantics kept on purpose (each changes results on some run):

- ``fmax``/``fmin`` ignore a NaN argument (:func:`c_fmax`, :func:`c_fmin`); Python's ``max``/``min`` do not.
- Division by zero gives ±inf or NaN (:func:`c_div`) and ``sqrt`` of a negative number NaN (:func:`c_sqrt`)
  instead of raising.
- In the first case of ``dcstep`` the cubic step is kept when ``|stpc - stx| < |stpq - stx|`` (strict: the C
  code; scipy's ``_dcsrch.py`` uses ``<=``).
- ``pow(x, 2.0)`` is ``x * x``: GCC folds it so, and scipy's ``_lbfgsb`` module imports no ``pow`` (libm's
  ``pow``, which Python's ``**`` and scipy's ``_dcsrch.py`` use, differs from ``x * x`` in the last bit in
  about 1 case in 10⁵).

The reverse-communication interface of MINPACK-2 (``task = 'START' | 'FG' | 'CONVERGENCE' | 'WARNING' |
'ERROR'``) is kept as :func:`dcsrch_start` / :func:`dcsrch_iterate` returning a :class:`SearchOutcome`; the
saved local variables of ``dcsrch`` are the explicit :class:`SearchState`. :func:`more_thuente_search`
drives both for a scalar function.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

EXTRAPOLATION_LOWER = 1.1
"""``xtrapl``: before bracketing, the next step is at least stp + 1.1 (stp - stx) (MINPACK-2 dcsrch)."""
EXTRAPOLATION_UPPER = 4.0
"""``xtrapu``: ... and at most stp + 4 (stp - stx); the first upper bound is 5 stp (MINPACK-2 dcsrch)."""
BISECTION_FACTOR = 0.66
"""A bracket that did not shrink to 0.66 of its size two trials ago is bisected (Moré–Thuente §5)."""


# --------------------------------------------------------------------------------------------------------
# C floating-point semantics on Python floats (IEEE double, round to nearest).
# --------------------------------------------------------------------------------------------------------


def c_fmax(a: float, b: float) -> float:
    """C99 ``fmax``: the larger argument; a NaN argument is ignored (NaN only if both are NaN).

    Ties (±0) return ``b``, as glibc's x86-64 ``fmax`` (``maxsd``) does.
    """
    if a != a:
        return b
    if b != b:
        return a
    return a if a > b else b


def c_fmin(a: float, b: float) -> float:
    """C99 ``fmin``: the smaller argument; a NaN argument is ignored (NaN only if both are NaN).

    Ties (±0) return ``b``, as glibc's x86-64 ``fmin`` (``minsd``) does.
    """
    if a != a:
        return b
    if b != b:
        return a
    return a if a < b else b


def c_div(a: float, b: float) -> float:
    """IEEE division ``a / b``: ±inf for a nonzero numerator over zero, NaN for 0/0 or NaN, never raises."""
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0.0:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def c_sqrt(a: float) -> float:
    """C ``sqrt``: NaN for a negative or NaN argument instead of Python's ``ValueError``."""
    if a >= 0.0:  # includes +inf and -0.0
        return math.sqrt(a)
    return math.nan


# --------------------------------------------------------------------------------------------------------
# Parameters, state and results.
# --------------------------------------------------------------------------------------------------------


class Task(enum.Enum):
    """The ``task`` of MINPACK-2's reverse communication."""

    FG = "FG"
    """Evaluate φ and φ' at the returned ``stp`` and call :func:`dcsrch_iterate`."""
    CONVERGENCE = "CONVERGENCE"
    """``stp`` satisfies sufficient decrease and the curvature condition."""
    WARNING = "WARNING"
    """The search cannot make progress (see :class:`SearchOutcome.message`); ``stp`` is the last trial."""
    ERROR = "ERROR"
    """Invalid input at the start (see the message)."""


@dataclass(frozen=True)
class SearchParameters:
    """The constants of one Moré–Thuente search.

    Attributes:
        ftol: sufficient-decrease constant (c₁ of the Armijo condition).
        gtol: curvature constant (c₂ of the strong Wolfe condition).
        xtol: relative width of the interval of uncertainty below which the search stops with a warning.
        stpmin: smallest step allowed.
        stpmax: largest step allowed.
    """

    ftol: float = 1e-3
    gtol: float = 0.9
    xtol: float = 0.1
    stpmin: float = 0.0
    stpmax: float = 1e10


LBFGSB_SEARCH_PARAMETERS = SearchParameters(ftol=1e-3, gtol=0.9, xtol=0.1, stpmin=0.0, stpmax=1e10)
"""What L-BFGS-B uses (scipy ``__lbfgsb.c::lnsrlb``): ftol 1e-3, gtol 0.9, xtol 0.1, steps in [0, 1e10]."""


@dataclass(frozen=True)
class SearchState:
    """The variables ``dcsrch`` keeps between calls (its ``isave``/``dsave``), named.

    Attributes:
        bracketed: a minimizer has been bracketed between ``stx`` and ``sty``.
        stage: 1 while working on the modified function ψ, 2 once a step had ψ(α) ≤ 0 and φ'(α) ≥ 0.
        f_init: φ(0).
        g_init: φ'(0) (negative).
        g_test: ftol · φ'(0), the slope of the sufficient-decrease line.
        stx, fx, gx: the best step so far, φ and φ' there.
        sty, fy, gy: the other end point of the interval of uncertainty, φ and φ' there.
        stmin, stmax: the interval in which the next trial step must lie.
        width: the width of the interval after the latest bracketing step.
        width_before: the width one bracketing step earlier (``width1``; starts at twice the allowed range).
    """

    bracketed: bool
    stage: int
    f_init: float
    g_init: float
    g_test: float
    stx: float
    fx: float
    gx: float
    sty: float
    fy: float
    gy: float
    stmin: float
    stmax: float
    width: float
    width_before: float


@dataclass(frozen=True)
class SearchOutcome:
    """One answer of the search: what to do next and at which step.

    Attributes:
        task: :class:`Task`.
        message: for WARNING/ERROR the MINPACK-2 text (e.g. ``"ROUNDING ERRORS PREVENT PROGRESS"``), else ``""``.
        stp: the step to evaluate next (FG) or the final step (CONVERGENCE/WARNING).
        state: the saved variables to pass back to :func:`dcsrch_iterate` (``None`` after an ERROR at start).
    """

    task: Task
    message: str
    stp: float
    state: SearchState | None


# --------------------------------------------------------------------------------------------------------
# dcstep: one safeguarded trial step (Moré–Thuente §4, the four cases).
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepBracket:
    """The interval of uncertainty handed to and returned by :func:`dcstep`.

    ``stx``/``fx``/``dx``: best step, its value and derivative; ``sty``/``fy``/``dy``: the other end point;
    ``bracketed``: whether the interval is known to contain a minimizer.
    """

    stx: float
    fx: float
    dx: float
    sty: float
    fy: float
    dy: float
    bracketed: bool


def _cubic_gamma(theta: float, s: float, d_a: float, d_b: float) -> float:
    """γ = s · sqrt((θ/s)² - (d_a/s)(d_b/s)): the square-root term of the cubic's minimizer (scaled by s)."""
    ratio = c_div(theta, s)
    return s * c_sqrt(ratio * ratio - c_div(d_a, s) * c_div(d_b, s))


def _cubic_theta(f_a: float, f_b: float, st_a: float, st_b: float, d_a: float, d_b: float) -> float:
    """θ = 3 (f_a - f_b)/(st_b - st_a) + d_a + d_b, evaluated left to right as in MINPACK-2."""
    return c_div(3.0 * (f_a - f_b), st_b - st_a) + d_a + d_b


def _scale(theta: float, d_a: float, d_b: float) -> float:
    """s = max(|θ|, |d_a|, |d_b|), the scale that keeps γ from overflowing (C ``fmax``)."""
    return c_fmax(abs(theta), c_fmax(abs(d_a), abs(d_b)))


def dcstep(
    bracket: StepBracket, stp: float, fp: float, dp: float, stpmin: float, stpmax: float
) -> tuple[StepBracket, float]:
    """The next trial step and the updated interval (Moré–Thuente 1994 §4; MINPACK-2 ``dcstep``).

    ``stp``, ``fp``, ``dp``: the current trial step, φ and φ' there. ``stpmin``/``stpmax`` bound the new step
    when it is an extrapolation. Returns the new interval and the new trial step.

    Case 1, fp > fx (higher value): the minimizer is bracketed; take the cubic step if it is closer to stx
    than the quadratic step, else the mean of both.
    Case 2, derivatives of opposite sign: bracketed; take the cubic or the secant step, whichever is farther
    from stp.
    Case 3, same sign and |dp| decreases: the cubic step if the cubic tends to infinity in the step's direction
    or its minimum lies beyond stp, else the end of the range; safeguarded toward sty when bracketed.
    Case 4, same sign and |dp| does not decrease: the cubic step through (stp, sty) when bracketed, else the
    end of the allowed range.
    """
    stx, fx, dx = bracket.stx, bracket.fx, bracket.dx
    sty, fy, dy = bracket.sty, bracket.fy, bracket.dy
    bracketed = bracket.bracketed
    sign_product = dp * c_div(dx, abs(dx))

    if fp > fx:  # case 1
        theta = _cubic_theta(fx, fp, stx, stp, dx, dp)
        s = _scale(theta, dx, dp)
        gamma = _cubic_gamma(theta, s, dx, dp)
        if stp < stx:
            gamma = -gamma
        p = (gamma - dx) + theta
        q = ((gamma - dx) + gamma) + dp
        r = c_div(p, q)
        step_cubic = stx + r * (stp - stx)
        step_quadratic = stx + (c_div(c_div(dx, c_div(fx - fp, stp - stx) + dx), 2.0)) * (stp - stx)
        if abs(step_cubic - stx) < abs(step_quadratic - stx):
            new_step = step_cubic
        else:
            new_step = step_cubic + (step_quadratic - step_cubic) / 2.0
        bracketed = True
    elif sign_product < 0.0:  # case 2
        theta = _cubic_theta(fx, fp, stx, stp, dx, dp)
        s = _scale(theta, dx, dp)
        gamma = _cubic_gamma(theta, s, dx, dp)
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = ((gamma - dp) + gamma) + dx
        r = c_div(p, q)
        step_cubic = stp + r * (stx - stp)
        step_secant = stp + c_div(dp, dp - dx) * (stx - stp)
        new_step = step_cubic if abs(step_cubic - stp) > abs(step_secant - stp) else step_secant
        bracketed = True
    elif abs(dp) < abs(dx):  # case 3
        theta = _cubic_theta(fx, fp, stx, stp, dx, dp)
        s = _scale(theta, dx, dp)
        ratio = c_div(theta, s)
        # γ = 0 only when the cubic does not tend to infinity in the direction of the step.
        gamma = s * c_sqrt(c_fmax(0.0, ratio * ratio - c_div(dx, s) * c_div(dp, s)))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = (gamma + (dx - dp)) + gamma
        r = c_div(p, q)
        if r < 0.0 and gamma != 0.0:
            step_cubic = stp + r * (stx - stp)
        elif stp > stx:
            step_cubic = stpmax
        else:
            step_cubic = stpmin
        step_secant = stp + c_div(dp, dp - dx) * (stx - stp)
        if bracketed:
            # Closer of cubic and secant, but no farther than 0.66 of the way to sty.
            new_step = step_cubic if abs(step_cubic - stp) < abs(step_secant - stp) else step_secant
            limit = stp + BISECTION_FACTOR * (sty - stp)
            new_step = c_fmin(limit, new_step) if stp > stx else c_fmax(limit, new_step)
        else:
            # Farther of cubic and secant, inside [stpmin, stpmax].
            new_step = step_cubic if abs(step_cubic - stp) > abs(step_secant - stp) else step_secant
            new_step = c_fmin(stpmax, new_step)
            new_step = c_fmax(stpmin, new_step)
    else:  # case 4
        if bracketed:
            theta = _cubic_theta(fp, fy, stp, sty, dy, dp)
            s = _scale(theta, dy, dp)
            gamma = _cubic_gamma(theta, s, dy, dp)
            if stp > sty:
                gamma = -gamma
            p = (gamma - dp) + theta
            q = ((gamma - dp) + gamma) + dy
            r = c_div(p, q)
            new_step = stp + r * (sty - stp)
        elif stp > stx:
            new_step = stpmax
        else:
            new_step = stpmin

    # Update the interval: a higher value becomes the far end; otherwise stp becomes the best point, and the
    # old best point the far end if the derivatives changed sign.
    if fp > fx:
        sty, fy, dy = stp, fp, dp
    else:
        if sign_product < 0.0:
            sty, fy, dy = stx, fx, dx
        stx, fx, dx = stp, fp, dp
    return StepBracket(stx, fx, dx, sty, fy, dy, bracketed), new_step


# --------------------------------------------------------------------------------------------------------
# dcsrch: the driver (tests, stage switch, safeguards).
# --------------------------------------------------------------------------------------------------------


def _start_errors(g: float, stp: float, params: SearchParameters) -> str:
    """The MINPACK-2 input checks in their order; the last failing check names the error ("" if none)."""
    message = ""
    if stp < params.stpmin:
        message = "STP < STPMIN"
    if stp > params.stpmax:
        message = "STP > STPMAX"
    if g >= 0.0:
        message = "INITIAL G >= 0"
    if params.ftol < 0.0:
        message = "FTOL < 0"
    if params.gtol < 0.0:
        message = "GTOL < 0"
    if params.xtol < 0.0:
        message = "XTOL < 0"
    if params.stpmin < 0.0:
        message = "STPMIN < 0"
    if params.stpmax < params.stpmin:
        message = "STPMAX < STPMIN"
    return message


def dcsrch_start(f: float, g: float, stp: float, params: SearchParameters = LBFGSB_SEARCH_PARAMETERS) -> SearchOutcome:
    """Begin a search from φ(0) = ``f``, φ'(0) = ``g`` with first trial step ``stp`` (``task = 'START'``).

    Returns FG with ``stp`` unchanged, or ERROR on invalid input (φ'(0) ≥ 0, stp outside [stpmin, stpmax], ...).
    """
    error = _start_errors(g, stp, params)
    if error:
        return SearchOutcome(Task.ERROR, error, stp, None)
    width = params.stpmax - params.stpmin
    state = SearchState(
        bracketed=False,
        stage=1,
        f_init=f,
        g_init=g,
        g_test=params.ftol * g,
        stx=0.0,
        fx=f,
        gx=g,
        sty=0.0,
        fy=f,
        gy=g,
        stmin=0.0,
        stmax=stp + EXTRAPOLATION_UPPER * stp,
        width=width,
        width_before=width / 0.5,
    )
    return SearchOutcome(Task.FG, "", stp, state)


def _termination(f: float, g: float, stp: float, ftest: float, st: SearchState, params: SearchParameters) -> tuple[
        Task | None, str]:
    """The tests of ``dcsrch`` in its order; a later test overrides the task of an earlier one."""
    task: Task | None = None
    message = ""
    if st.bracketed and (stp <= st.stmin or stp >= st.stmax):
        task, message = Task.WARNING, "ROUNDING ERRORS PREVENT PROGRESS"
    if st.bracketed and st.stmax - st.stmin <= params.xtol * st.stmax:
        task, message = Task.WARNING, "XTOL TEST SATISFIED"
    if stp == params.stpmax and f <= ftest and g <= st.g_test:
        task, message = Task.WARNING, "STP = STPMAX"
    if stp == params.stpmin and (f > ftest or g >= st.g_test):
        task, message = Task.WARNING, "STP = STPMIN"
    if f <= ftest and abs(g) <= params.gtol * (-st.g_init):
        task = Task.CONVERGENCE  # MINPACK-2 leaves the message of an earlier warning in place
    return task, message


def dcsrch_iterate(
    f: float, g: float, stp: float, state: SearchState, params: SearchParameters = LBFGSB_SEARCH_PARAMETERS
) -> SearchOutcome:
    """Continue the search with φ(stp) = ``f``, φ'(stp) = ``g`` (``task = 'FG'`` on entry).

    Returns CONVERGENCE or WARNING with ``stp`` unchanged, or FG with the next trial step and the new state.
    """
    ftest = state.f_init + stp * state.g_test
    stage = state.stage
    if stage == 1 and f <= ftest and g >= 0.0:
        stage = 2
    st = replace(state, stage=stage)

    task, message = _termination(f, g, stp, ftest, st, params)
    if task is not None:
        return SearchOutcome(task, message, stp, st)

    bracket = StepBracket(st.stx, st.fx, st.gx, st.sty, st.fy, st.gy, st.bracketed)
    if stage == 1 and f <= st.fx and f > ftest:
        # Stage 1 with a lower value that fails sufficient decrease: step on ψ (values shifted by g_test·α).
        gtest = st.g_test
        shifted = StepBracket(
            bracket.stx, bracket.fx - bracket.stx * gtest, bracket.dx - gtest,
            bracket.sty, bracket.fy - bracket.sty * gtest, bracket.dy - gtest, bracket.bracketed,
        )
        moved, stp = dcstep(shifted, stp, f - stp * gtest, g - gtest, st.stmin, st.stmax)
        bracket = StepBracket(
            moved.stx, moved.fx + moved.stx * gtest, moved.dx + gtest,
            moved.sty, moved.fy + moved.sty * gtest, moved.dy + gtest, moved.bracketed,
        )
    else:
        bracket, stp = dcstep(bracket, stp, f, g, st.stmin, st.stmax)

    width, width_before = st.width, st.width_before
    if bracket.bracketed:
        # Bisect when the interval did not shrink enough over the last two bracketing steps (paper §5).
        if abs(bracket.sty - bracket.stx) >= BISECTION_FACTOR * width_before:
            stp = bracket.stx + 0.5 * (bracket.sty - bracket.stx)
        width_before = width
        width = abs(bracket.sty - bracket.stx)

    if bracket.bracketed:
        stmin = c_fmin(bracket.stx, bracket.sty)
        stmax = c_fmax(bracket.stx, bracket.sty)
    else:
        stmin = stp + EXTRAPOLATION_LOWER * (stp - bracket.stx)
        stmax = stp + EXTRAPOLATION_UPPER * (stp - bracket.stx)

    stp = c_fmax(stp, params.stpmin)
    stp = c_fmin(stp, params.stpmax)
    # No further progress possible: fall back to the best step so far.
    if (bracket.bracketed and (stp <= stmin or stp >= stmax)) or (
        bracket.bracketed and stmax - stmin <= params.xtol * stmax
    ):
        stp = bracket.stx

    new_state = SearchState(
        bracketed=bracket.bracketed,
        stage=stage,
        f_init=st.f_init,
        g_init=st.g_init,
        g_test=st.g_test,
        stx=bracket.stx,
        fx=bracket.fx,
        gx=bracket.dx,
        sty=bracket.sty,
        fy=bracket.fy,
        gy=bracket.dy,
        stmin=stmin,
        stmax=stmax,
        width=width,
        width_before=width_before,
    )
    return SearchOutcome(Task.FG, "", stp, new_state)


@dataclass(frozen=True)
class SearchResult:
    """The end of :func:`more_thuente_search`.

    Attributes:
        stp: the last step (accepted on CONVERGENCE/WARNING).
        f, g: φ and φ' at ``stp`` (φ(0), φ'(0) if nothing was evaluated).
        task: the final :class:`Task` (FG when the evaluation budget ran out).
        message: the warning or error text.
        evaluations: calls of ``phi``.
    """

    stp: float
    f: float
    g: float
    task: Task
    message: str
    evaluations: int


def more_thuente_search(
    phi: Callable[[float], tuple[float, float]],
    stp: float,
    f0: float,
    g0: float,
    params: SearchParameters = LBFGSB_SEARCH_PARAMETERS,
    max_evaluations: int = 20,
) -> SearchResult:
    """Run a whole search on ``phi(α) -> (φ(α), φ'(α))`` from φ(0) = ``f0``, φ'(0) = ``g0``, first trial ``stp``.

    Stops on CONVERGENCE, WARNING, ERROR or after ``max_evaluations`` calls of ``phi``.
    """
    outcome = dcsrch_start(f0, g0, stp, params)
    f, g, evaluations = f0, g0, 0
    while outcome.task is Task.FG and evaluations < max_evaluations:
        assert outcome.state is not None
        f, g = phi(outcome.stp)
        evaluations += 1
        outcome = dcsrch_iterate(f, g, outcome.stp, outcome.state, params)
    return SearchResult(outcome.stp, f, g, outcome.task, outcome.message, evaluations)
