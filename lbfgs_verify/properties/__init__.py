"""The property suite. One module per category; every check registers itself in :data:`base.REGISTRY`.

See :mod:`lbfgs_verify.properties.base` for the registry, results and budgets.
"""

from lbfgs_verify.properties.base import (
    BUDGETS,
    LEVELS,
    MODES,
    REGISTRY,
    Budget,
    Cause,
    CheckContext,
    Property,
    PropertyFailed,
    PropertyResult,
    PropertySkipped,
    Status,
    levels_up_to,
    load_all,
    properties_for,
    register,
    run_property,
)

__all__ = [
    "BUDGETS",
    "LEVELS",
    "MODES",
    "REGISTRY",
    "Budget",
    "Cause",
    "CheckContext",
    "Property",
    "PropertyFailed",
    "PropertyResult",
    "PropertySkipped",
    "Status",
    "levels_up_to",
    "load_all",
    "properties_for",
    "register",
    "run_property",
]
