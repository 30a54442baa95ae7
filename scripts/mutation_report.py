"""Score of a mutmut run and the second (conformance) stage for its survivors; called by scripts/mutation.sh.

Reads ``mutmut results --all true`` (one ``name: status`` per line), runs every survivor of stage 1 against
``tests/mutation_conformance/`` inside ``mutants/`` (mutmut's trampolines pick the mutant from the
``MUTANT_UNDER_TEST`` environment variable), and prints the figures and the survivors of both stages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path


def read_results(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if ":" in line:
            name, status = line.strip().rsplit(":", 1)
            out[name.strip()] = status.strip()
    return out


def killed_by_conformance(name: str) -> bool:
    """Run the conformance stage with ``name`` active; a failure (exit 1) kills it."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/mutation_conformance"],
        cwd="mutants", env={**os.environ, "MUTANT_UNDER_TEST": name}, capture_output=True, text=True, check=False,
        timeout=900)
    return done.returncode != 0


def main(results_file: str) -> int:
    results = read_results(Path(results_file))
    counts = Counter(results.values())
    total = len(results)
    killed = counts.get("killed", 0) + counts.get("timeout", 0)  # a mutant that hangs the search is caught too
    survivors = sorted(name for name, status in results.items() if status == "survived")
    other = {s: c for s, c in counts.items() if s not in ("killed", "survived", "timeout")}
    print(f"stage 1 (properties mode, budget {os.environ.get('LBFGS_VERIFY_MUTATION_BUDGET', 'quick')}): "
          f"{total} mutants, {killed} killed ({counts.get('timeout', 0)} by timeout), {len(survivors)} survived, "
          f"other {other}; "
          f"score {killed / total:.1%}" if total else "no mutants", flush=True)
    second = {}
    for i, name in enumerate(survivors, 1):  # progress as it goes: a partial run still gives figures
        second[name] = killed_by_conformance(name)
        print(f"  [{i}/{len(survivors)}] {name.rsplit('.', 1)[-1]}: "
              f"{'killed' if second[name] else 'survived'} by conformance", flush=True)
    conformance_killed = sorted(n for n, k in second.items() if k)
    both = sorted(n for n, k in second.items() if not k)
    print(f"stage 2 (bitwise conformance): {len(conformance_killed)} of {len(survivors)} survivors killed")
    print("survivors of stage 1 killed by conformance (bits change, no property violated):")
    for name in conformance_killed:
        print(f"  {name}")
    print("survivors of both stages (candidates for equivalence):")
    for name in both:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
