"""The project stands on its own: no tracked file names a path outside it.

A user of the package has neither the team's shared folder (``../shared``, ``shared/facts``, ``shared/seed``)
nor the machine it was written on, so no tracked file may point there or to an absolute home, work or
temporary directory. The facts a user needs are written in the project's own words (``docs/``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = re.compile(
    r"\.\./shared"
    r"|shared/facts|shared/seed"
    r"|(?<![\w.])/(?:work|home|root|Users|tmp|mnt|scratch)/[\w.-]"
)
"""Paths into the team's shared folder, and absolute paths of a machine (``/work/x``, ``/home/x``, ...)."""


def scan(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line naming a forbidden path."""
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if FORBIDDEN.search(line)]


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (the scan reads `git ls-files`)")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_no_tracked_file_names_a_path_outside_the_project() -> None:
    offenders = []
    for path in tracked_files():
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        offenders += [f"{path.relative_to(ROOT)}:{n}: {line}" for n, line in scan(text)]
    assert not offenders, "tracked files name paths outside the project:\n" + "\n".join(offenders)


@pytest.mark.parametrize("line", [
    "see ../shared/facts/torch-lbfgs.md",
    "the seed (shared/seed/*.txt)",
    "Facts: /work/shared/facts/x.md",
    "python /home/alice/project/run.py",
    "written to /tmp/out.json",
])
def test_scan_flags_outside_paths(line: str) -> None:
    assert scan(f"first line\n{line}\n") == [(2, line)]


@pytest.mark.parametrize("line", [
    "torch/optim/lbfgs.py l. 357",
    "docs/torch-2.13-lbfgs.md",
    "https://download.pytorch.org/whl/cpu",
    "tensors shared between optimizers",
    "python -m lbfgs_verify check --json /no/such/dir/report.json",
])
def test_scan_leaves_project_paths_alone(line: str) -> None:
    assert scan(line) == []
