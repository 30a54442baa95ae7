"""scipy 1.17's own L-BFGS-B tests, run with the solver replaced by ours (issue #12 acceptance).

A subprocess runs pytest on the test modules scipy installs (``--pyargs scipy.optimize.tests.<module>``) with the
plugin :mod:`tests.scipy_routed.routing_plugin`, which routes ``minimize(method="L-BFGS-B")`` (and scipy's
automatic choice of L-BFGS-B for bounded problems) to :func:`lbfgs_verify.reference.minimize_lbfgsb` and
``fmin_l_bfgs_b`` to ours, and counts per test the routed calls and any call that still reached scipy's solver.
The modules are the ones under ``scipy/optimize/tests/`` that call L-BFGS-B, run whole.

Measured here (scipy 1.17.1): docs/reference-optimizers.md (counts from :func:`test_summary`); the only calls of
scipy's solver are those of ``test_setulb_floatround``, which drives the compiled ``_lbfgsb.setulb`` directly (a
test of scipy's C code, nothing to route).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import scipy

pytestmark = pytest.mark.slow

MODULES = ("test_optimize", "test__basinhopping", "test__shgo", "test__dual_annealing", "test__differential_evolution",
           "test_minimize_constrained", "test_lbfgsb_hessinv", "test_lbfgsb_setulb")
WHOLE_MODULES = MODULES
"""Every module runs whole: L-BFGS-B is also called by tests that never name it (scipy's automatic choice for a
bounded ``minimize``, differential_evolution's polish, dual_annealing's local search); a test counts as exercising
L-BFGS-B when it made a routed call."""
CANNOT_ROUTE = {
    "scipy/optimize/tests/test_lbfgsb_setulb.py::test_setulb_floatround [setulb]":
        "calls scipy's compiled _lbfgsb.setulb directly (a test of scipy's C translation, not of the interface)",
}
"""Calls of scipy's own solver that are expected, with the reason."""
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("routed") / "report.json"
    site = Path(scipy.__file__).resolve().parents[1]
    # A serial pytest session of its own: pytest-xdist's worker variables (when this runs under -n) stay out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    env.update({"LBFGS_VERIFY_ROUTING_REPORT": str(out), "OMP_NUM_THREADS": "1",
                "LBFGS_VERIFY_ROUTING_KEEP_ALL": ",".join(WHOLE_MODULES)})
    command = [sys.executable, "-m", "pytest", "-p", "tests.scipy_routed.routing_plugin", "-c",
               str(ROOT / "tests" / "scipy_routed" / "pytest.ini"), f"--rootdir={site}", "-q", "-p", "no:cacheprovider",
               "--pyargs", *[f"scipy.optimize.tests.{m}" for m in MODULES]]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    assert out.exists(), f"the routed run wrote no report:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    data = json.loads(out.read_text())
    data["returncode"] = run.returncode
    data["tail"] = run.stdout[-3000:]
    return data


def test_no_routed_scipy_test_fails(report: dict) -> None:
    failed = {k: report["reasons"].get(k, "") for k, v in report["outcomes"].items() if v == "failed"}
    assert not failed and report["returncode"] == 0, f"failed with our solver: {json.dumps(failed, indent=1)}\n" \
                                                     f"{report['tail']}"


def test_nothing_falls_back_to_scipys_solver(report: dict) -> None:
    unexpected = {k: v for k, v in report["fallback"].items() if k not in CANNOT_ROUTE}
    assert not unexpected, f"calls that reached scipy's own L-BFGS-B: {unexpected}"


def test_every_test_that_names_lbfgsb_and_passes_was_routed(report: dict) -> None:
    """A passing test parametrized with L-BFGS-B must have called ours (else the routing missed a path)."""
    missed = [k for k, v in report["outcomes"].items()
              if v == "passed" and ("l-bfgs-b" in k.lower() or "lbfgsb" in k.lower())
              and report["routed"].get(k, 0) == 0 and f"{k} [setulb]" not in CANNOT_ROUTE]
    assert not missed, f"passed without a routed call: {missed}"
    routed_tests = [k for k, v in report["outcomes"].items() if v == "passed" and report["routed"].get(k, 0) > 0]
    assert len(routed_tests) >= 80, f"only {len(routed_tests)} passing tests called our L-BFGS-B"


def test_skips_are_scipys_own_conditions(report: dict) -> None:
    """Every skip comes from scipy's test code (methods that do not apply, optional dependencies), listed here."""
    reasons = sorted({report["reasons"].get(k, "?") for k, v in report["outcomes"].items() if v == "skipped"})
    ours = [r for r in reasons if "lbfgs_verify" in r]
    assert not ours, f"skips raised from our code: {ours}"


def test_summary(report: dict) -> None:
    """The counts the README quotes (printed; visible with ``-s``)."""
    outcomes = report["outcomes"]
    routed = [k for k, v in outcomes.items() if v == "passed" and report["routed"].get(k, 0) > 0]
    calls = sum(report["routed"].get(k, 0) for k in routed)
    tally = {v: list(outcomes.values()).count(v) for v in sorted(set(outcomes.values()))}
    print(f"\nrouted scipy tests: {tally}; {len(routed)} passing tests made {calls} routed calls; "
          f"scipy solver reached: {report['fallback']}")
    assert tally.get("passed", 0) >= len(routed) > 0
