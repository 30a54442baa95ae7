"""Running the reproduction scripts that ``lbfgs-verify check --repro`` writes for stepper and functional targets
(lbfgs_verify/engine/repro_kinds.py): in a fresh interpreter, from another folder, without PYTHONPATH, so that a
script passes or fails on what it imports and defines itself."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from lbfgs_verify.properties.base import Status
from lbfgs_verify.properties.runner import RunReport, run_check, write_reproductions
from lbfgs_verify.targets.load import load_target


def check(spec: str, only: list[str]) -> RunReport:
    """``lbfgs-verify check spec --level properties --budget quick --only ...`` (in process)."""
    return run_check(load_target(spec), "properties", "quick", only=only)


def statuses(report: RunReport) -> dict[str, Status]:
    return {r.property: r.status for r in report.results}


def scripts_of(report: RunReport, folder: Path) -> dict[str, Path]:
    """The scripts ``--repro folder`` writes for ``report``'s failures, by file name."""
    write_reproductions(report, folder, io.StringIO())
    return {p.name: p for p in sorted(folder.glob("*.py"))}


def run_script(path: Path, cwd: Path, replace: tuple[str, str] | None = None,
               timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
    """Run the script at ``path`` (after replacing ``replace[0]`` by ``replace[1]`` in its text: the fixed target)
    with plain ``python`` in ``cwd``."""
    if replace is not None:
        text = path.read_text(encoding="utf-8")
        assert replace[0] in text, f"{path.name} does not name {replace[0]}"
        path = cwd / f"fixed-{path.name}"
        path.write_text(text.replace(replace[0], replace[1]), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(path)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)
