"""The property suite. One module per category; every check registers itself in :data:`base.REGISTRY`.

See :mod:`lbfgs_verify.properties.base` for the registry, results and budgets.
"""

from lbfgs_verify.properties.base import (
    BUDGETS,
    MODES,
    REGISTRY,
    Budget,
    CheckContext,
    Property,
    PropertyFailed,
    PropertyResult,
    PropertySkipped,
    Status,
    load_all,
    properties_for,
    register,
    run_property,
)

__all__ = [
    "BUDGETS",
    "MODES",
    "REGISTRY",
    "Budget",
    "CheckContext",
    "Property",
    "PropertyFailed",
    "PropertyResult",
    "PropertySkipped",
    "Status",
    "load_all",
    "properties_for",
    "register",
    "run_property",
]
