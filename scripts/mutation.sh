#!/usr/bin/env bash
# Mutation testing of lbfgs_verify/line_search/strong_wolfe.py and lbfgs_verify/reference/lbfgs.py with mutmut
# (see docs/mutation.md).
#
# Stage 1: every mutant against the kill set tests/mutation/ (properties mode and its semantics claims, budget
#          $LBFGS_VERIFY_MUTATION_BUDGET, default quick), run on lbfgs_verify.reference.LBFGS: for the search, the
#          properties that drive line_search_fn="strong_wolfe" (test_kill_strong_wolfe.py); for the reference,
#          every property of the properties and semantics levels (test_kill_reference.py). mutmut runs, for each
#          mutant, only the tests that call the mutated function.
# Stage 2: every stage-1 survivor against bitwise conformance with torch.optim.LBFGS (tests/mutation_conformance/),
#          to tell mutants that change only bits from truly equivalent ones.
#
# Usage: scripts/mutation.sh [all|search|reference] [MUTANT_NAME_GLOB ...]
#        (default all; needs mutmut: pip install -e ".[mutation]"; globs restrict the run to those mutants, e.g.
#        the survivors of an earlier run: 'lbfgs_verify.line_search.strong_wolfe.x_strong_wolfe__mutmut_213')
#        MUTATION_JOBS=2 LBFGS_VERIFY_MUTATION_BUDGET=ci scripts/mutation.sh search
# Writes mutation-run.log, mutation-results.txt and mutation-report.txt (all git-ignored), and mutants/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export LBFGS_VERIFY_MUTATION_BUDGET=${LBFGS_VERIFY_MUTATION_BUDGET:-quick}
case "${1:-all}" in
    all) names=() ;;
    search) names=("lbfgs_verify.line_search.strong_wolfe.*") ;;
    reference) names=("lbfgs_verify.reference.lbfgs.*") ;;
    *) echo "usage: $0 [all|search|reference] [MUTANT_NAME_GLOB ...]" >&2; exit 2 ;;
esac
shift $(( $# > 0 ? 1 : 0 ))
if (( $# > 0 )); then names=("$@"); fi
"$PY" -c "import mutmut" 2>/dev/null || { echo "mutmut is not installed: pip install -e '.[mutation]'" >&2; exit 2; }

rm -rf mutants
start=$(date +%s)
"$PY" -m mutmut run --max-children "${MUTATION_JOBS:-1}" "${names[@]}" > mutation-run.log 2>&1 || {
    tail -c 2000 mutation-run.log >&2; exit 1; }
echo "stage 1 took $(( $(date +%s) - start )) s" | tee -a mutation-run.log
"$PY" -m mutmut results --all true > mutation-results.txt
"$PY" scripts/mutation_report.py mutation-results.txt "${names[@]}" | tee mutation-report.txt
