"""Run PyTorch's own LBFGS optimizer tests on ``torch.optim.LBFGS`` and on ``lbfgs_verify.reference.LBFGS``.

PyTorch's generic optimizer tests (``test/test_optim.py``, class ``TestOptimRenewed``, driven by the
``optim_db`` of ``torch.testing._internal.common_optimizers``) are run on the CPU twice: once as they are, once
with ``torch.optim.LBFGS`` and the LBFGS entry of ``optim_db`` swapped for the reference. The script fetches
nothing and copies nothing into this project: give it the ``test_optim.py`` of a PyTorch checkout that matches
the installed torch (``git checkout v<torch version>``). It works in a temporary folder: the file, small stand-ins
for the ``optim.*`` modules it imports (their tests are not LBFGS's), and a ``conftest.py`` doing the swap.

    python scripts/pytorch_optim_tests.py path/to/pytorch/test/test_optim.py

Prints ``N/M pass on torch, K/M on the reference`` (M: LBFGS tests run, skips excluded) and every test that
passes on torch but not on the reference; exits 1 if there is one. Needs ``expecttest`` (``pip install -e
'.[dev]'``), which ``torch.testing._internal`` imports.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

STAND_INS = {
    "test_lrscheduler.py": "class TestLRScheduler:\n    pass\n",
    "test_optim.py": "class TestDifferentiableOptimizer:\n    pass\n",
    "test_swa_utils.py": "class TestSWAUtils:\n    pass\n",
}
"""test_optim.py imports these test classes from PyTorch's test/optim/ (LR schedulers, differentiable
optimizers, SWA); they test no LBFGS behaviour, so empty stand-ins keep the run to the LBFGS tests."""

CONFTEST = '''\
import os

import torch

if os.environ.get("LBFGS_UNDER_TEST") == "reference":
    from torch.testing._internal import common_optimizers

    from lbfgs_verify.reference import LBFGS as ReferenceLBFGS

    for info in common_optimizers.optim_db:
        if info.optim_cls is torch.optim.LBFGS:
            info.optim_cls = ReferenceLBFGS
    torch.optim.LBFGS = ReferenceLBFGS
'''


def prepare(test_file: Path, folder: Path) -> None:
    shutil.copyfile(test_file, folder / "test_optim.py")
    (folder / "optim").mkdir()
    (folder / "optim" / "__init__.py").write_text("")
    for name, text in STAND_INS.items():
        (folder / "optim" / name).write_text(text)
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "pytest.ini").write_text("[pytest]\n")


def run(folder: Path, target: str, keyword: str) -> dict[str, tuple[str, str]]:
    """{test id: (outcome, first line of the message)} for one target."""
    report = folder / f"report-{target}.xml"
    env = {**os.environ, "LBFGS_UNDER_TEST": target,
           "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "pytest", "test_optim.py", "-k", keyword, "-q", "-p", "no:cacheprovider",
               "-p", "no:lbfgs_verify", f"--junitxml={report}"]
    subprocess.run(command, cwd=folder, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not report.exists():
        raise SystemExit(f"pytest wrote no report for {target}; run it by hand in {folder} to see why")
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                message = (child.get("message") or "").splitlines()[0] if child.get("message") else ""
        outcomes[name] = outcome, message
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("test_file", type=Path, help="PyTorch's test/test_optim.py (matching the installed torch)")
    parser.add_argument("-k", default="LBFGS and cpu", help="pytest -k expression (default: %(default)r)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args(argv)
    if not args.test_file.is_file():
        parser.error(f"{args.test_file} is not a file")
    folder = Path(tempfile.mkdtemp(prefix="pytorch-optim-tests-"))
    try:
        prepare(args.test_file, folder)
        results = {target: run(folder, target, args.k) for target in ("torch", "reference")}
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    import torch

    ran = sorted(name for name, (outcome, _) in results["torch"].items() if outcome != "skipped")
    passed = {t: sum(results[t].get(n, ("missing", ""))[0] == "passed" for n in ran) for t in results}
    skipped = sum(outcome == "skipped" for outcome, _ in results["torch"].values())
    print(f"torch {torch.__version__}, {args.test_file}: {len(ran)} LBFGS tests run ({skipped} skipped)")
    print(f"{passed['torch']}/{len(ran)} pass on torch, {passed['reference']}/{len(ran)} on the reference")
    regressions = [n for n in ran if results["torch"][n][0] == "passed" and
                   results["reference"].get(n, ("missing", ""))[0] != "passed"]
    for name in regressions:
        outcome, message = results["reference"].get(name, ("missing", ""))
        print(f"  passes on torch, {outcome} on the reference: {name}: {message}")
    for name in ran:
        if results["torch"][name][0] != "passed":
            print(f"  fails on torch too: {name}: {results['torch'][name][1]}")
    return 1 if regressions else 0


if __name__ == "__main__":
    raise SystemExit(main())
