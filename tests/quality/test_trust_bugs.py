"""Issue 19, point 5: each bug class that a fresh independent set of planted bugs slipped through is caught at
level ``properties``, at the quick and the ci budget, on the independent implementations and on torch-derived
optimizers (:mod:`tests.quality.trust_bugs`), by the property named for it.

Where the properties do not catch a class yet, the case is ``xfail(strict=True)`` naming the property change
it needs, so that the mark must go when the change lands. The ci cases are ``slow``.
"""

from __future__ import annotations

import pytest
import torch

from lbfgs_verify.properties.base import REGISTRY, Status
from tests.quality.trust_bugs import TRUST_BUGS
from tests.quality.verdict import verdict

PENDING: dict[tuple[type, str], str] = {}
"""(planted class, budget) -> the property change it waits for (none left: the strided draws of
``lbfgs_verify.engine.strategies`` catch the lost update, the 10-step resume runs the late counter, and
``line_search.sufficient_decrease`` the test without t)."""


def _cases() -> list[object]:
    cases = []
    for cls in TRUST_BUGS:
        for budget in ("quick", "ci"):
            marks = [pytest.mark.slow] if budget == "ci" else []
            reason = PENDING.get((cls, budget))
            if reason is not None:
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            cases.append(pytest.param(cls, budget, marks=marks, id=f"{cls.__name__}-{budget}"))
    return cases


@pytest.mark.parametrize(("cls", "budget"), _cases())
def test_planted_bug_fails_its_property(cls: type, budget: str) -> None:
    torch.set_num_threads(1)
    property_id = TRUST_BUGS[cls]
    assert property_id in REGISTRY, f"{property_id} is not a registered property"
    result = verdict(cls, property_id, budget=budget)
    assert result.status is Status.FAIL, (
        f"{cls.__name__} ({(cls.__doc__ or '').strip().splitlines()[0]}) was not reported by {property_id} at "
        f"{budget}: {result.status.value} {result.detail[:2000]}")


def test_every_class_is_planted_on_an_independent_and_a_torch_derived_optimizer() -> None:
    """Six classes (issue 19 point 5 and the external counter), each on an independent implementation and on a
    torch-derived one."""
    prefixes = {"Circular", "Compact", "Torch"}
    by_class: dict[str, set[str]] = {}
    for cls in TRUST_BUGS:
        prefix = next(p for p in prefixes if cls.__name__.startswith(p))
        by_class.setdefault(cls.__name__.removeprefix(prefix), set()).add(prefix)
    assert len(by_class) == 6, sorted(by_class)
    for name, where in by_class.items():
        assert "Torch" in where and where & {"Circular", "Compact"}, (name, where)
