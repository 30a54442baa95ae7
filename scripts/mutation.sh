#!/usr/bin/env bash
# Mutation testing of lbfgs_verify/line_search/strong_wolfe.py with mutmut (see docs/mutation.md).
#
# Stage 1: every mutant against the kill set tests/mutation/ (a fast subset of the property suite, properties
#          mode, budget $LBFGS_VERIFY_MUTATION_BUDGET, default quick) run on lbfgs_verify.reference.LBFGS,
#          the optimizer that calls the mutated search.
# Stage 2: every stage-1 survivor against bitwise conformance with torch.optim.LBFGS
#          (tests/mutation_conformance/), to tell mutants that change only bits from truly equivalent ones.
#
# Usage: scripts/mutation.sh            (needs mutmut: pip install -e ".[mutation]")
#        MUTATION_JOBS=2 LBFGS_VERIFY_MUTATION_BUDGET=ci scripts/mutation.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export LBFGS_VERIFY_MUTATION_BUDGET=${LBFGS_VERIFY_MUTATION_BUDGET:-quick}
"$PY" -c "import mutmut" 2>/dev/null || { echo "mutmut is not installed: pip install -e '.[mutation]'" >&2; exit 2; }

rm -rf mutants
"$PY" -m mutmut run --max-children "${MUTATION_JOBS:-1}" > mutation-run.log 2>&1 || {
    tail -c 2000 mutation-run.log >&2; exit 1; }
"$PY" -m mutmut results --all true > mutation-results.txt
"$PY" scripts/mutation_report.py mutation-results.txt
