"""The solvers a report compares: the default five and every ``--target``.

Each :class:`Solver` is one configuration: an optimizer with torch.optim.LBFGS's interface and fixed
hyperparameters, scipy's own L-BFGS-B, or the scipy-compatible reference ``minimize_lbfgsb``. The convergence
settings are the numbers of scipy's defaults where torch has a counterpart (the reasoning is in
:mod:`lbfgs_verify.compare.solutions`, :data:`~lbfgs_verify.compare.solutions.TORCH_LBFGS_SETTINGS`), with the
iteration and evaluation limits of the budget, so that every solver stops on comparable tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lbfgs_verify.compare.solutions import TORCH_LBFGS_SETTINGS
from lbfgs_verify.engine.capabilities import declared_lacks, skip_reason
from lbfgs_verify.report.budget import ReportBudget
from lbfgs_verify.targets.load import Target, load_target

OPTIMIZER = "optimizer"
"""An optimizer with torch.optim.LBFGS's constructor, ``step(closure)``, ``state_dict()``, ``load_state_dict()``."""
SCIPY = "scipy"
"""``scipy.optimize.minimize(method="L-BFGS-B")`` itself."""
MINIMIZE_LBFGSB = "minimize_lbfgsb"
"""``lbfgs_verify.reference.minimize_lbfgsb`` (scipy's iteration on our code)."""

REFERENCE_SPEC = "lbfgs_verify.reference:LBFGS"
TORCH_SPEC = "torch.optim:LBFGS"
LBFGSB_SPEC = "lbfgs_verify.reference:LBFGSB"


@dataclass(frozen=True)
class Solver:
    """One solver configuration of the report.

    Attributes:
        id: short stable key used in ``report.json`` and file names.
        name: the label in tables and legends.
        kind: :data:`OPTIMIZER`, :data:`SCIPY` or :data:`MINIMIZE_LBFGSB`.
        spec: ``module:attr`` of the optimizer (``None`` for scipy) -- the same for both torch configurations.
        settings: hyperparameters (optimizers) or scipy options, as passed.
        is_target: given with ``--target``.
        lacks: features the target declares it lacks (:mod:`lbfgs_verify.engine.capabilities`).
        target: the loaded optimizer (``None`` for the scipy kinds).
    """

    id: str
    name: str
    kind: str
    spec: str | None
    settings: dict[str, Any]
    is_target: bool = False
    lacks: frozenset[str] = frozenset()
    target: Target | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "spec": self.spec, "settings": self.settings,
                "is_target": self.is_target, "lacks": sorted(self.lacks)}


def optimizer_settings(budget: ReportBudget, line_search_fn: str | None,
                       lacks: frozenset[str] = frozenset()) -> dict[str, Any]:
    """torch.optim.LBFGS keyword arguments for a convergence run (what a target lacks is left at its default)."""
    settings = {**TORCH_LBFGS_SETTINGS, "max_iter": budget.max_iter, "max_eval": budget.max_iter * 5 // 4,
                "line_search_fn": line_search_fn}
    for feature, key in (("max_eval", "max_eval"), ("tolerance_change", "tolerance_change"), ("lr", "lr")):
        if feature in lacks:
            settings.pop(key)
    return settings


def scipy_options(budget: ReportBudget) -> dict[str, Any]:
    """scipy L-BFGS-B options: scipy's defaults with the budget's iteration and evaluation limits."""
    return {"maxcor": 10, "maxiter": budget.max_iter, "maxfun": budget.max_iter * 5 // 4}


def target_solver(spec: str, budget: ReportBudget, lacks: frozenset[str] = frozenset()) -> Solver:
    """A ``--target``: a stepper or functional target (:mod:`lbfgs_verify.report.kinds`) at its library's
    defaults, or a torch-shaped optimizer with a strong Wolfe line search unless it declares it lacks it (then a
    fixed step)."""
    target = load_target(spec)
    if getattr(target, "kind", None) in ("stepper", "functional"):
        from lbfgs_verify.report.kinds import kind_solver

        return kind_solver(spec, target, budget, is_target=True)
    lacks = frozenset(lacks) | declared_lacks(target.factory)
    line_search = None if "strong_wolfe" in lacks else "strong_wolfe"
    name = f"{spec} ({line_search or 'no line search'})"
    return Solver(f"target:{spec}", name, OPTIMIZER, spec, optimizer_settings(budget, line_search, lacks),
                  is_target=True, lacks=lacks, target=target)


def default_solvers(budget: ReportBudget) -> list[Solver]:
    """The reference, torch.optim.LBFGS without and with strong Wolfe, scipy L-BFGS-B and ``minimize_lbfgsb``."""
    reference, torch_optim = load_target(REFERENCE_SPEC), load_target(TORCH_SPEC)
    return [
        Solver("reference", "lbfgs_verify.reference.LBFGS (strong_wolfe)", OPTIMIZER, REFERENCE_SPEC,
               optimizer_settings(budget, "strong_wolfe"), target=reference),
        Solver("torch", "torch.optim.LBFGS (no line search)", OPTIMIZER, TORCH_SPEC,
               optimizer_settings(budget, None), target=torch_optim),
        Solver("torch-strong_wolfe", "torch.optim.LBFGS (strong_wolfe)", OPTIMIZER, TORCH_SPEC,
               optimizer_settings(budget, "strong_wolfe"), target=torch_optim),
        Solver("scipy", "scipy L-BFGS-B", SCIPY, None, scipy_options(budget)),
        Solver("minimize_lbfgsb", "lbfgs_verify.reference.minimize_lbfgsb", MINIMIZE_LBFGSB, None,
               scipy_options(budget)),
    ]


def report_solvers(budget: ReportBudget, targets: Sequence[str] = (), lacks: frozenset[str] = frozenset(),
                   *, defaults: Sequence[str] | None = None, builtins: Sequence[Solver] | None = None) -> list[Solver]:
    """The default solvers (or those whose ids are in ``defaults``: the installed built-in adapters of
    :data:`lbfgs_verify.targets.kinds.BUILTINS` among them, by spec) followed by one solver per target.
    ``builtins``: the built-in solvers when the caller has them already (``report.kinds.builtin_solvers``)."""
    if builtins is None:
        from lbfgs_verify.report.kinds import builtin_solvers

        builtins = builtin_solvers(budget, present=targets)[0]
    solvers = [s for s in default_solvers(budget) if defaults is None or s.id in defaults]
    solvers += [s for s in builtins if defaults is None or s.id in defaults]
    seen = {s.id for s in solvers}
    for spec in targets:
        solver = target_solver(spec, budget, lacks)
        if solver.id not in seen:
            solvers.append(solver)
            seen.add(solver.id)
    return solvers


def checkable_targets(solvers: Sequence[Solver]) -> list[Solver]:
    """One solver per distinct optimizer spec (the verdict grid, the fuzzer: hyperparameters play no role)."""
    out: dict[str, Solver] = {}
    for solver in solvers:
        if solver.kind == OPTIMIZER and solver.spec not in out:
            out[solver.spec] = solver  # type: ignore[index]
    return list(out.values())


def lacks_skip_reason(solver: Solver, problem: Any) -> str | None:
    """Why ``solver`` does not run ``problem`` (a declared lack), or ``None``."""
    rules = (
        ("complex", "complex" in problem.tags),
        ("several_tensors", len(problem.start) > 1),
        ("no_grad_params", "unused_parameter" in problem.tags),
        (str(problem.dtype).removeprefix("torch."), True),
    )
    for feature, applies in rules:
        if applies and feature in solver.lacks:
            return skip_reason(feature)
    return None
