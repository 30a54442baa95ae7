"""The reproductions of torch.optim.LBFGS's defects (``examples/torch_defects/``, described in
``docs/torch-2.13-lbfgs.md``) still reproduce on the installed torch.

Each script needs only torch and exits 1 printing "REPRODUCED" while the defect is there, 0 printing
"NOT REPRODUCED" once torch has fixed it. On torch 2.13 every one must reproduce (the documentation says so);
on a newer torch a script that no longer reproduces is reported as a skip saying that this torch fixed it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = sorted((Path(__file__).resolve().parents[2] / "examples" / "torch_defects").glob("defect_*.py"))
DOCUMENTED_ON = (2, 13)


def _torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def test_every_documented_defect_has_a_reproduction() -> None:
    documented = (SCRIPTS[0].parents[2] / "docs" / "torch-2.13-lbfgs.md").read_text(encoding="utf-8")
    assert sorted(int(p.name.split("_")[1]) for p in SCRIPTS) == list(range(1, 10))
    for script in SCRIPTS:
        assert f"`{script.name}`" in documented, f"{script.name} is not described in docs/torch-2.13-lbfgs.md"


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_defect_still_reproduces(script: Path) -> None:
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=script.parent)
    output = done.stdout + done.stderr
    if done.returncode == 0 and "NOT REPRODUCED" in done.stdout:
        message = f"torch {torch.__version__} has fixed {script.stem}: {done.stdout.strip()}"
        if _torch_version() > DOCUMENTED_ON:
            pytest.skip(message)
        pytest.fail(f"documented as a defect of torch 2.13, but {message}")
    assert done.returncode == 1, f"{script.name} ended with status {done.returncode}:\n{output}"
    assert done.stdout.startswith("REPRODUCED") or "\nREPRODUCED" in done.stdout, output
