"""Running ``lbfgs-verify check --repro`` scripts as their reader would: plain ``python``, nothing of the harness.

Shared by tests/fast/test_check_repro.py and tests/slow/test_check_repro_more.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from lbfgs_verify.cli import main

ROOT = Path(__file__).resolve().parents[1]

BLOCKED_IMPORTS = ("lbfgs_verify", "hypothesis")
"""What a reproduction must not need: the harness and the property-testing library (both are installed here, so
the script runs under an import hook that refuses them)."""

_WITHOUT_HARNESS = f"""
import importlib.machinery, runpy, sys
class Refuse:
    # found (torch probes for hypothesis with find_spec), but an import of it fails
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED_IMPORTS!r}:
            return importlib.machinery.ModuleSpec(name, self)
    def create_module(self, spec):
        raise ImportError(f'{{spec.name}} is not available to a reproduction')
    def exec_module(self, module):
        pass
sys.meta_path.insert(0, Refuse())
script = sys.argv.pop(1)
sys.argv[0] = script
runpy.run_path(script, run_name='__main__')
"""


def run_check(directory: Path, *arguments: str) -> tuple[Path, dict, str]:
    """``lbfgs-verify check ARGUMENTS --repro DIR/scripts --json DIR/report.json``: scripts, JSON, terminal."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["check", *arguments, "--repro", str(directory / "scripts"), "--json",
                     str(directory / "report.json")])
    assert code == 1, out.getvalue()
    return directory / "scripts", json.loads((directory / "report.json").read_text()), out.getvalue()


def run_script(script: Path, *, pythonpath: Path | None = None,
               harness: bool = False) -> subprocess.CompletedProcess[str]:
    """Plain python on ``script``: no PYTHONPATH but ``pythonpath`` (where a target module lies), and, unless
    ``harness``, lbfgs_verify and hypothesis refused at import."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    command = [sys.executable, "-W", "ignore", str(script)] if harness else \
        [sys.executable, "-W", "ignore", "-c", _WITHOUT_HARNESS, str(script)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=script.parent, env=env)


def retarget(script: Path, destination: Path, target: str = "lbfgs_verify.reference:LBFGS") -> Path:
    """A copy of ``script`` that imports ``target`` instead of the target it was written for."""
    module, _, attr = target.partition(":")
    source, count = re.subn(r"from \S+ import \w+ as _target_root\n\nOptimizer = _target_root.*\n",
                            f"from {module} import {attr} as _target_root\n\nOptimizer = _target_root\n",
                            script.read_text())
    assert count == 1, f"{script.name}: the target import was not found"
    destination.write_text(source)
    return destination


def causes_by_script(report: dict) -> dict[str, dict]:
    """Script name (``PROPERTY.py``, ``PROPERTY-2.py``...) -> the evidence of the cause it reproduces."""
    return {result["property"] + ("" if index == 1 else f"-{index}"): cause["evidence"]
            for result in report["results"] if result["status"] == "fail"
            for index, cause in enumerate(result["causes"], 1)}


def assert_reproduces(script: Path, evidence: dict, fragment: str = "", *, pythonpath: Path | None = None) -> None:
    """The script needs only torch and the target, and exits with the failure's exception (AssertionError unless
    the target raised) whose message holds ``fragment``."""
    source = script.read_text()
    assert "lbfgs_verify" not in source.split('"""', 2)[2] and "hypothesis" not in source, script.name
    assert "torch.set_num_threads(1)" in source
    assert len(source.splitlines()) < 180, f"{script.name} is too long to paste into a bug report"
    done = run_script(script, pythonpath=pythonpath)
    assert done.returncode != 0, f"{script.name} passed: {done.stdout}"
    assert "is not available to a reproduction" not in done.stderr, f"{script.name}: {done.stderr[-800:]}"
    exception = evidence.get("exception", "AssertionError")
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{exception}: "), f"{script.name}: {last}"
    assert fragment in last, f"{script.name}: {last!r} does not say {fragment!r}"


def assert_passes_on_the_reference(script: Path, directory: Path) -> None:
    """The same script against lbfgs_verify.reference.LBFGS (which has none of the defects) prints that the check
    passed."""
    done = run_script(retarget(script, directory / script.name), pythonpath=ROOT, harness=True)
    assert done.returncode == 0, f"{script.name} fails on the reference: {done.stderr[-800:]}"
    assert done.stdout.strip().endswith("no defect: the check passed")
