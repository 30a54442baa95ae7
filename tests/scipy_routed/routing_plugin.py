"""A pytest plugin that runs scipy's own L-BFGS-B tests with the solver replaced by ours, and counts.

Loaded with ``-p tests.scipy_routed.routing_plugin`` into a pytest run of scipy's installed test modules
(``--pyargs scipy.optimize.tests.test_x``). At configure time, before the test modules are imported, it replaces
scipy's L-BFGS-B entry points by :func:`lbfgs_verify.reference.minimize_lbfgsb` and
:func:`lbfgs_verify.reference.fmin_l_bfgs_b`:

- ``minimize`` in every loaded ``scipy.optimize`` module (the package, ``_minimize``, and the global optimizers
  that imported it by name) becomes a router: method "L-BFGS-B" (any case), or no method with bounds and no
  constraints (scipy's automatic choice), goes to ours; any other method to scipy's own ``minimize``;
- ``fmin_l_bfgs_b`` in ``scipy.optimize``, ``scipy.optimize._lbfgsb_py`` and ``scipy.optimize.lbfgsb``.

It keeps the tests that name L-BFGS-B (in the node id or the test's source; whole modules on request) and counts, per
test, the calls routed to ours and the calls that still reached scipy's own solver (``_minimize_lbfgsb``, which
ours never calls, and the compiled ``_lbfgsb.setulb``). At the end it writes the counts and outcomes as JSON to
the file named by the environment variable ``LBFGS_VERIFY_ROUTING_REPORT``.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import warnings
from collections import Counter
from typing import Any

import pytest

_ROUTED: Counter[str] = Counter()
_FALLBACK: Counter[str] = Counter()
_OUTCOMES: dict[str, str] = {}
_REASONS: dict[str, str] = {}
_CURRENT = {"test": "<collection>"}
KEYWORDS = ("l-bfgs-b", "lbfgsb", "fmin_l_bfgs_b", "l_bfgs_b")


def _is_lbfgsb(method: Any, bounds: Any, constraints: Any) -> bool:
    if method is None:
        return bounds is not None and not constraints
    return isinstance(method, str) and method.lower() == "l-bfgs-b"


def _install() -> None:
    import scipy.optimize
    import scipy.optimize._lbfgsb_py as lbfgsb_py
    import scipy.optimize._minimize as minimize_module

    from lbfgs_verify.reference import fmin_l_bfgs_b, minimize_lbfgsb

    original_minimize = minimize_module.minimize

    def routed_minimize(fun: Any, x0: Any, args: Any = (), method: Any = None, jac: Any = None, hess: Any = None,
                        hessp: Any = None, bounds: Any = None, constraints: Any = (), tol: Any = None,
                        callback: Any = None, options: Any = None) -> Any:
        if _is_lbfgsb(method, bounds, constraints):
            # minimize's warnings for arguments L-BFGS-B ignores, then ours.
            if hess is not None:
                warnings.warn(f"Method {method} does not use Hessian information (hess).", RuntimeWarning,
                              stacklevel=2)
            if hessp is not None:
                warnings.warn(f"Method {method} does not use Hessian-vector product information (hessp).",
                              RuntimeWarning, stacklevel=2)
            _ROUTED[_CURRENT["test"]] += 1
            return minimize_lbfgsb(fun, x0, args=args, jac=jac, bounds=bounds, tol=tol, callback=callback,
                                   options=options)
        return original_minimize(fun, x0, args=args, method=method, jac=jac, hess=hess, hessp=hessp,
                                 bounds=bounds, constraints=constraints, tol=tol, callback=callback, options=options)

    def routed_fmin(*args: Any, **kwargs: Any) -> Any:
        _ROUTED[_CURRENT["test"]] += 1
        return fmin_l_bfgs_b(*args, **kwargs)

    original_solver = lbfgsb_py._minimize_lbfgsb

    def counted_solver(*args: Any, **kwargs: Any) -> Any:
        _FALLBACK[_CURRENT["test"]] += 1
        return original_solver(*args, **kwargs)

    lbfgsb_py._minimize_lbfgsb = counted_solver
    minimize_module._minimize_lbfgsb = counted_solver
    compiled = lbfgsb_py._lbfgsb
    original_setulb = compiled.setulb

    def counted_setulb(*args: Any, **kwargs: Any) -> Any:
        _FALLBACK[_CURRENT["test"] + " [setulb]"] += 1
        return original_setulb(*args, **kwargs)

    compiled.setulb = counted_setulb
    for name, module in list(sys.modules.items()):
        if not name.startswith("scipy.optimize") or module is None:
            continue
        with warnings.catch_warnings():  # the deprecated namespaces warn on attribute access
            warnings.simplefilter("ignore", DeprecationWarning)
            if getattr(module, "minimize", None) is original_minimize:
                module.minimize = routed_minimize
            if (getattr(module, "fmin_l_bfgs_b", None) is lbfgsb_py.fmin_l_bfgs_b
                    and name != "scipy.optimize._lbfgsb_py"):
                module.fmin_l_bfgs_b = routed_fmin
    lbfgsb_py.fmin_l_bfgs_b = routed_fmin
    scipy.optimize.fmin_l_bfgs_b = routed_fmin


def pytest_configure(config: pytest.Config) -> None:
    _install()


def _mentions_lbfgsb(item: pytest.Item) -> bool:
    if any(k in item.nodeid.lower() for k in KEYWORDS):
        return True
    function = getattr(item, "function", None)
    try:
        source = inspect.getsource(function) if function is not None else ""
    except (OSError, TypeError):
        source = ""
    return any(k in source.lower() for k in KEYWORDS)


def _keep_all(item: pytest.Item) -> bool:
    """Modules named in ``LBFGS_VERIFY_ROUTING_KEEP_ALL`` (comma-separated) run whole: their solvers may call
    L-BFGS-B without the test naming it (dual_annealing's local search, for one)."""
    names = [n for n in os.environ.get("LBFGS_VERIFY_ROUTING_KEEP_ALL", "").split(",") if n]
    module = getattr(getattr(item, "module", None), "__name__", "")
    return any(module.endswith(name) for name in names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep = [item for item in items if _keep_all(item) or _mentions_lbfgsb(item)]
    dropped = [item for item in items if item not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    _CURRENT["test"] = item.nodeid
    yield
    _CURRENT["test"] = "<between tests>"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = report.outcome
        if hasattr(report, "wasxfail"):
            outcome = "xpassed" if report.passed else "xfail"
        _OUTCOMES[report.nodeid] = outcome
        if report.outcome == "skipped" and isinstance(report.longrepr, tuple):
            _REASONS[report.nodeid] = str(report.longrepr[2])
        elif hasattr(report, "wasxfail"):
            _REASONS[report.nodeid] = f"xfail: {report.wasxfail}"
        elif report.outcome == "failed":
            _REASONS[report.nodeid] = str(report.longrepr)[-2000:]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("LBFGS_VERIFY_ROUTING_REPORT")
    if not path:
        return
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"routed": dict(_ROUTED), "fallback": dict(_FALLBACK), "outcomes": _OUTCOMES, "reasons": _REASONS},
                  handle, indent=1)
