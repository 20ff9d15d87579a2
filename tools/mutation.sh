#!/usr/bin/env bash
# Mutation testing (mutmut 3) of the modules that protect users: archive extraction and the shared
# path rule, secret masking, the failure report, argv building. Not run in CI (minutes, not
# seconds): run it before a release and update docs/mutation.md with what it prints.
#
#   tools/mutation.sh            # mutate, test, print the score and the survivors
#   KEEP=1 tools/mutation.sh     # keep the scratch folder (mutmut show <name> there explains one)
#
# mutmut 3 runs the tests in its own pytest processes against a copy of the code (mutants/), so
# this works in a scratch copy that holds the package, the fast tests that cover those modules,
# and a pyproject.toml with the [tool.mutmut] section: the project's own files are not touched.
# Needs `pip install mutmut==3.8.1` in the venv (PYTHON); tried on Python 3.12.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
TARGETS=(toolkit/archive.py toolkit/checks.py toolkit/redact.py toolkit/report.py)
TESTS=(tests/test_archive.py tests/adversarial/test_archive_edges.py tests/adversarial/test_secrets.py tests/adversarial/test_rules.py
       tests/adversarial/test_failure_report.py tests/test_environment.py)

"$PY" -c "import mutmut" 2>/dev/null || { echo "mutmut is not installed: $PY -m pip install mutmut==3.8.1" >&2; exit 2; }
SCRATCH=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$SCRATCH"' EXIT
WORK=$SCRATCH/work
mkdir -p "$WORK/tests/adversarial"
cp -r toolkit "$WORK/toolkit"
cp tests/conftest.py tests/helpers.py tests/archives.py "$WORK/tests/"
cp tests/adversarial/conftest.py "$WORK/tests/adversarial/"
cp -r tests/data "$WORK/tests/" 2>/dev/null || true
for t in "${TESTS[@]}"; do cp "$t" "$WORK/$t"; done
{
  printf '[tool.pytest.ini_options]\ntestpaths = ["tests"]\naddopts = "-p no:cacheprovider"\n\n'
  printf '[tool.mutmut]\nsource_paths = ["toolkit"]\nonly_mutate = ['
  printf '"%s", ' "${TARGETS[@]}"
  printf ']\npytest_add_cli_args_test_selection = ['
  printf '"%s", ' "${TESTS[@]}"
  printf ']\n'
} > "$WORK/pyproject.toml"

cd "$WORK"
started=$(date +%s)
# the subprocess tests run `train` from this checkout (not the mutant), so they cannot kill a
# mutant: mutmut only runs, for each mutant, the tests that reached the mutated function in-process
"$PY" -m mutmut run --max-children "${JOBS:-2}" >/dev/null 2>&1 || true
"$PY" -m mutmut results > "$SCRATCH/results.txt" 2>&1 || true
# counts by mutmut's own status table, from the meta files it writes beside each mutated module
"$PY" - <<'PY'
import collections, json, pathlib
from mutmut.stats import status_by_exit_code
counts = collections.Counter()
survivors = []
for meta in sorted(pathlib.Path("mutants").rglob("*.meta")):
    for name, code in json.loads(meta.read_text()).get("exit_code_by_key", {}).items():
        status = status_by_exit_code[code]
        counts[status] += 1
        if status == "survived":
            survivors.append(name)
total = sum(counts.values())
judged = counts["killed"] + counts["survived"] + counts["timeout"]
score = 100 * (counts["killed"] + counts["timeout"]) / judged if judged else 0
print(f"mutants: {total}  " + "  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
print(f"score (killed+timeout / tested): {score:.1f}%")
print("survivors:")
for name in survivors:
    print("  " + name)
PY
echo "run time: $(( $(date +%s) - started )) s"
[ -z "${KEEP:-}" ] || echo "kept: $WORK (cd there; $PY -m mutmut show NAME)"
