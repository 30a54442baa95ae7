"""Score of a mutmut run and the second (conformance) stage for its survivors; called by scripts/mutation.sh.

Reads ``mutmut results --all true`` (one ``name: status`` per line), keeps the mutants matching the patterns
given after the file (all when none), runs every survivor of stage 1 against ``tests/mutation_conformance/``
inside ``mutants/``, ``MUTATION_JOBS`` at a time (mutmut's trampolines pick the mutant from the
``MUTANT_UNDER_TEST`` environment variable), and prints the figures per mutated file and in total, and the
survivors of both stages; stage 3 runs the module's own unit tests (:data:`UNIT_STAGE`) on what survives both.

Usage: ``python scripts/mutation_report.py mutation-results.txt ['lbfgs_verify.reference.lbfgs.*' ...]``
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def read_results(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if ":" in line:
            name, status = line.strip().rsplit(":", 1)
            out[name.strip()] = status.strip()
    return out


CONFORMANCE_STAGE = {
    "lbfgs_verify.line_search.strong_wolfe": ["tests/mutation_conformance/test_conformance_kill.py"],
    "lbfgs_verify.reference.lbfgs": ["tests/mutation_conformance"],
}
"""The bitwise tests each mutated module's survivors face: the search's on the line problems; the reference's all."""


UNIT_STAGE = {
    "lbfgs_verify.reference.lbfgs": ["tests/fast/test_reference_lbfgs.py"],
}
"""The module's own unit tests (its input validation and messages, which no property judges): stage 3."""


def _fails(name: str, tests: list[str]) -> bool:
    """Run ``tests`` in ``mutants/`` with ``name`` active; a failure (exit 1) kills it."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:randomly", *tests],
        cwd="mutants", env={**os.environ, "MUTANT_UNDER_TEST": name}, capture_output=True, text=True, check=False,
        timeout=900)
    return done.returncode != 0


def killed_by_conformance(name: str) -> bool:
    """Run the conformance stage with ``name`` active; a failure (exit 1) kills it."""
    return _fails(name, CONFORMANCE_STAGE.get(module_of(name), ["tests/mutation_conformance"]))


def killed_by_unit_tests(name: str) -> bool:
    """Run the module's unit tests (stage 3) with ``name`` active."""
    return _fails(name, UNIT_STAGE[module_of(name)])


def module_of(name: str) -> str:
    """``lbfgs_verify.reference.lbfgs.x_step__mutmut_3`` -> ``lbfgs_verify.reference.lbfgs``."""
    return name.rsplit(".", 1)[0]


def main(results_file: str, patterns: list[str]) -> int:
    results = {name: status for name, status in read_results(Path(results_file)).items()
               if not patterns or any(fnmatch.fnmatch(name, p) for p in patterns)}
    budget = os.environ.get("LBFGS_VERIFY_MUTATION_BUDGET", "quick")
    killed_statuses = ("killed", "timeout")  # a mutant that hangs the search is caught too
    for module in sorted({module_of(n) for n in results}):
        counts = Counter(status for name, status in results.items() if module_of(name) == module)
        total = sum(counts.values())
        killed = sum(counts.get(s, 0) for s in killed_statuses)
        other = {s: c for s, c in counts.items() if s not in (*killed_statuses, "survived")}
        print(f"stage 1 (budget {budget}) {module}: {total} mutants, {killed} killed "
              f"({counts.get('timeout', 0)} by timeout), {counts.get('survived', 0)} survived, other {other}; "
              f"score {killed / total:.1%}", flush=True)
    survivors = sorted(name for name, status in results.items() if status == "survived")
    second: dict[str, bool] = {}
    start = time.perf_counter()
    jobs = max(1, int(os.environ.get("MUTATION_JOBS", "1")))
    with ThreadPoolExecutor(jobs) as pool:  # each survivor runs in its own pytest process
        verdicts = pool.map(killed_by_conformance, survivors)
        for i, (name, killed) in enumerate(zip(survivors, verdicts, strict=True), 1):  # progress as it goes
            second[name] = killed
            print(f"  [{i}/{len(survivors)}] {name}: {'killed' if killed else 'survived'} by conformance",
                  flush=True)
    print(f"stage 2 (bitwise conformance): {sum(second.values())} of {len(survivors)} survivors killed "
          f"in {time.perf_counter() - start:.0f} s")
    for module in sorted({module_of(n) for n in results}):
        total = sum(1 for n in results if module_of(n) == module)
        killed = sum(1 for n, s in results.items() if module_of(n) == module and s in killed_statuses)
        by_conformance = sum(1 for n, k in second.items() if module_of(n) == module and k)
        print(f"{module}: {total} mutants; stage 1 killed {killed}, stage 2 {by_conformance}; "
              f"{total - killed - by_conformance} survive both")
    third_candidates = sorted(n for n, k in second.items() if not k and module_of(n) in UNIT_STAGE)
    with ThreadPoolExecutor(jobs) as pool:
        third = dict(zip(third_candidates, pool.map(killed_by_unit_tests, third_candidates), strict=True))
    print(f"stage 3 (the module's unit tests: {', '.join(sorted({t for v in UNIT_STAGE.values() for t in v}))}): "
          f"{sum(third.values())} of {len(third)} survivors of stages 1 and 2 killed")
    for name in sorted(third):
        print(f"  {name}: {'killed' if third[name] else 'survived'} by the unit tests")
    print("survivors of stage 1 killed by conformance (bits change, no property of the first stage violated):")
    for name in sorted(n for n, k in second.items() if k):
        print(f"  {name}")
    print("survivors of both stages (equivalent, or not reached by any property):")
    for name in sorted(n for n, k in second.items() if not k):
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
