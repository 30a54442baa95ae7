"""``lbfgs-verify check --repro`` beyond torch's quick failures: torch.optim.LBFGS at ``--mode conformance`` and
third-party L-BFGS (examples/peers/). Every script runs under plain python with lbfgs_verify and hypothesis refused
at import, fails as the check did, and passes against lbfgs_verify.reference.LBFGS."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import torch

from tests.repro_scripts import (
    ROOT,
    assert_passes_on_the_reference,
    assert_reproduces,
    causes_by_script,
    run_check,
)

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]  # the peers' own import-time warnings


def test_conformance_failures_of_torch(tmp_path: Path) -> None:
    """At --mode conformance torch 2.13 adds behaviour.change_history_size (IndexError after history_size grows:
    docs/torch-2.13-lbfgs.md defect 4) to its properties-level failures; every one gets a script."""
    scripts, report, text = run_check(tmp_path, "torch.optim:LBFGS", "--budget", "quick", "--mode", "conformance",
                                      "--no-baseline")
    failed = {r["property"] for r in report["results"] if r["status"] == "fail"}
    if torch.__version__.startswith("2.13"):
        assert "behaviour.change_history_size" in failed and "state.same_dict_loaded_twice" in failed
    assert {p.stem for p in scripts.glob("*.py")} == failed and "no script (" not in text
    causes = causes_by_script(report)
    for script in sorted(scripts.glob("*.py")):
        assert_reproduces(script, causes[script.stem])
        assert_passes_on_the_reference(script, tmp_path)
    history = scripts / "behaviour.change_history_size.py"
    assert "optimizer.param_groups[0]['history_size'] = H2" in history.read_text()


PEERS = {
    "torchmin": ("examples.peers.torchmin_lbfgs:TorchminLBFGS", "torchmin",
                 {"behaviour.converged_no_move", "resume.deepcopy_optimizer", "resume.pickle_optimizer"}),
    "qqn": ("examples.peers.qqn_lbfgs:QQNLBFGS", "qqn_torch",
            {"mathematics.strong_wolfe", "resume.deepcopy_optimizer", "resume.pickle_optimizer",
             "seed.load_restores_hyperparameters", "state.load_independence", "state.load_validates_size",
             "state.loaded_dict_untouched", "state.same_dict_loaded_twice", "state.snapshot"}),
}
"""Peer -> (target, package, the failures at --budget quick that get a script; docs/peers.md). qqn's
convergence.reaches_f_star is reported without one (suite problems solved for many steps)."""


@pytest.mark.parametrize("name", list(PEERS))
def test_peer_failures(name: str, tmp_path: Path) -> None:
    spec, package, scripted = PEERS[name]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed: pip install 'lbfgs-verify[peers]'")
    if not torch.__version__.startswith("2.13"):
        pytest.skip(f"verdicts were measured on torch 2.13, this is {torch.__version__}")
    scripts, report, text = run_check(tmp_path, spec, "--budget", "quick", "--no-baseline")
    written = {p.stem for p in scripts.glob("*.py")}
    assert written == scripted
    for result in report["results"]:
        if result["status"] == "fail" and result["property"] not in written:
            assert f"  - {result['property']}: no script ({result['property']}: " in text
    # The target module alone on the path, as its maintainer has it: the package, not the harness.
    module = spec.partition(":")[0]
    target_root = tmp_path / "target"
    (target_root / "examples" / "peers").mkdir(parents=True)
    for part in ("examples/peers/__init__.py", module.replace(".", "/") + ".py"):
        shutil.copy(ROOT / part, target_root / part)
    causes = causes_by_script(report)
    for script in sorted(scripts.glob("*.py")):
        assert_reproduces(script, causes[script.stem], pythonpath=target_root)
        assert_passes_on_the_reference(script, tmp_path)
