"""Declared capabilities: what a target says it lacks, so that verdicts are given on the rest.

In the manner of array-api-tests' extension flags and skips files. A feature a target lacks is never drawn
by the strategies, the fuzzer or the report; properties that need it are reported ``skip`` with
"lacks X (declared)". Nothing is declared by default: an undeclared crash is still a failure.

Where a declaration comes from, merged: ``--lacks`` (CLI), ``--lbfgs-lacks`` / ini ``lbfgs_lacks`` (pytest),
and the optional attribute ``lbfgs_verify_lacks`` on the target class or factory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FEATURES: dict[str, str] = {
    "complex": "complex parameters (torch.complex64/complex128)",
    "float16": "float16 parameters",
    "bfloat16": "bfloat16 parameters",
    "float32": "float32 parameters",
    "float64": "float64 parameters",
    "strong_wolfe": "line_search_fn='strong_wolfe'",
    "no_line_search": "line_search_fn=None (a fixed step t = lr)",
    "lr": "an lr other than the default (int, float or 0-dim tensor)",
    "max_eval": "max_eval other than the default max_iter * 5 // 4",
    "tolerance_change": "tolerance_change other than the default",
    "history_size_change": "editing param_groups[0]['history_size'] between step() calls",
    "no_grad_params": "parameters that never receive a gradient (p.grad stays None)",
    "several_tensors": "more than one parameter tensor",
}
"""Every feature a target may declare it lacks, with what it means."""

LACKS_ATTRIBUTE = "lbfgs_verify_lacks"
"""The optional attribute on a target class or factory: an iterable of feature names (or a comma string)."""


class CapabilityError(ValueError):
    """A declaration names a feature that does not exist; the message lists the known ones."""


def parse_lacks(declared: str | Iterable[str] | None) -> frozenset[str]:
    """``"complex,strong_wolfe"`` or ``["complex", "strong_wolfe"]`` -> ``frozenset``; unknown names raise
    :class:`CapabilityError` naming them and listing :data:`FEATURES`."""
    if declared is None:
        return frozenset()
    items = declared.split(",") if isinstance(declared, str) else [
        part for item in declared for part in str(item).split(",")]
    names = frozenset(item.strip() for item in items if item.strip())
    unknown = sorted(names - set(FEATURES))
    if unknown:
        raise CapabilityError(f"unknown feature(s) {', '.join(unknown)} in the declared lacks; "
                              f"choose from {', '.join(FEATURES)}")
    return names


def declared_lacks(factory: Any) -> frozenset[str]:
    """The features the target's class or factory declares it lacks via :data:`LACKS_ATTRIBUTE`."""
    return parse_lacks(getattr(factory, LACKS_ATTRIBUTE, None))


def skip_reason(feature: str) -> str:
    """The reason shown for a property skipped because the target lacks ``feature``."""
    return f"lacks {feature} (declared)"
