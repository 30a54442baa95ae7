"""Planted state_dict faults: each route and each corruption class catches its planted fault; correct variants
with other state formats come out clean (see tests/quality/fuzz_planted.py)."""

from __future__ import annotations

import pytest

from lbfgs_verify.engine.runs import ROUTES
from lbfgs_verify.fuzz import FINDINGS, run_fuzz
from lbfgs_verify.targets.load import Target
from tests.quality import fuzz_planted

EXAMPLES = 12


def _target(cls: type) -> Target:
    return Target(f"tests.quality.fuzz_planted:{cls.__name__}", cls)


@pytest.mark.parametrize("route", sorted(fuzz_planted.ROUTE_FAULTS))
def test_route_catches_its_planted_fault(route: str) -> None:
    report = run_fuzz(_target(fuzz_planted.ROUTE_FAULTS[route]), examples=EXAMPLES, routes=[route], classes=[])
    counts = report.matrix()["routes"][route]
    assert set(counts) & FINDINGS, f"{route}: planted {fuzz_planted.ROUTE_FAULTS[route].__name__} not caught: {counts}"
    finding = next(r for r in report.findings if r.name == route)
    assert finding.reproduction and "from tests.quality.fuzz_planted import" in finding.reproduction


@pytest.mark.parametrize("name", sorted(fuzz_planted.CORRUPTION_FAULTS))
def test_corruption_class_catches_its_planted_fault(name: str) -> None:
    planted = fuzz_planted.CORRUPTION_FAULTS[name]
    report = run_fuzz(_target(planted), examples=EXAMPLES, routes=[], classes=[name])
    counts = report.matrix()["classes"][name]
    assert set(counts) & FINDINGS, f"{name}: planted {planted.__name__} not caught: {counts}"


@pytest.mark.parametrize("variant", sorted(fuzz_planted.CORRECT_VARIANTS))
def test_correct_variants_are_clean(variant: str) -> None:
    cls = fuzz_planted.CORRECT_VARIANTS[variant]
    classes = ["wrong-type", "wrong-size", "non-finite", "bad-counter", "truncated-file", "hostile-pickle"]
    routes = [name for name, route in ROUTES.items() if not route.needs_cuda]
    report = run_fuzz(_target(cls), examples=EXAMPLES, routes=routes, classes=classes)
    assert report.findings == [], [f"{r.name}: {r.outcome}: {r.message}" for r in report.findings]
    for route in routes:
        assert report.matrix()["routes"][route] == {"exact": EXAMPLES}
