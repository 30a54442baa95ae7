"""One property's verdict on one optimizer class, as the quality tests ask for it."""

from __future__ import annotations

from lbfgs_verify.properties.base import BUDGETS, REGISTRY, CheckContext, PropertyResult, load_all, run_property
from lbfgs_verify.targets.load import Target

load_all()


def verdict(cls: type, property_id: str, budget: str = "ci", mode: str = "properties") -> PropertyResult:
    """``property_id`` run on ``cls`` (a target named after its module and class) at ``budget`` and level ``mode``."""
    target = Target(f"{cls.__module__}:{cls.__qualname__}", cls)
    return run_property(REGISTRY[property_id], CheckContext(target, mode=mode, budget=BUDGETS[budget]))
