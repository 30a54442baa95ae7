"""One pytest test per registered property of the configured mode (the same checks as ``lbfgs-verify check``).

Run it with ``pytest --pyargs lbfgs_verify.suite --lbfgs-target mypkg:MyLBFGS``, or import it into your
own test files::

    # tests/test_lbfgs_properties.py
    from lbfgs_verify.suite.test_properties import *  # noqa: F403

    # pyproject.toml
    [tool.pytest.ini_options]
    lbfgs_target = "mypkg:MyLBFGS"
    lbfgs_budget = "quick"

The parametrization over property IDs and the ``lbfgs_check_context`` fixture come from the
:mod:`lbfgs_verify.plugin` (loaded automatically once lbfgs-verify is installed). A failing property fails
its test with the detail (shrunk example, first differing step, key, ULPs); a skipped one is skipped with
its reason.
"""

from __future__ import annotations

import pytest

from lbfgs_verify.compare.environment import comparison_environment
from lbfgs_verify.properties.base import REGISTRY, CheckContext, Status, run_property

__all__ = ["test_property"]


def test_property(lbfgs_property: str, lbfgs_check_context: CheckContext, lbfgs_results: list) -> None:
    """The property ``lbfgs_property`` holds for the configured target."""
    prop = REGISTRY[lbfgs_property]
    with comparison_environment(lbfgs_check_context.threads):
        result = run_property(prop, lbfgs_check_context)
    lbfgs_results.append(result)  # for the plugin's summary: baseline marks, grouped causes, reproductions
    if result.status is Status.SKIP:
        pytest.skip(f"{prop.id}: {result.detail}")
    if result.status is not Status.PASS:
        kind = "fails" if result.status is Status.FAIL else "errors"
        pytest.fail(f"{prop.id} {kind} for {lbfgs_check_context.target.spec}: {prop.title}\n"
                    f"catches: {prop.catches}\n\n{result.detail}", pytrace=False)
