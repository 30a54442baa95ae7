"""The state_dict fuzzer in the kill set of ``reference/lbfgs.py`` (``scripts/mutation.sh reference``): every
round-trip route and every corruption class of ``lbfgs-verify fuzz`` on ``lbfgs_verify.reference.LBFGS`` must end
without a finding (a load that accepts a damaged state and then runs wrong, a route that changes the run). The
property suite judges runs; this judges what ``load_state_dict`` lets in. Examples per class: 4 at the ``quick``
mutation budget, 10 at ``ci``."""

from __future__ import annotations

import os
import warnings

from lbfgs_verify.fuzz import run_fuzz
from lbfgs_verify.targets.load import load_target

EXAMPLES = {"quick": 4, "ci": 10}[os.environ.get("LBFGS_VERIFY_MUTATION_BUDGET", "quick")]


def test_reference_has_no_fuzz_finding() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-finite values load with a RuntimeWarning: an outcome, not a finding
        report = run_fuzz(load_target("lbfgs_verify.reference:LBFGS"), examples=EXAMPLES, shrink=False)
    assert report.exit_code == 0, [(f.kind, f.name, f.outcome, f.message[:300]) for f in report.findings]
