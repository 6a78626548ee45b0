#!/usr/bin/env bash
# Install test dependencies and run every check: ruff, mypy, the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[test,docs]'
python3 -m ruff check src tests
python3 -m ruff format --check src tests
python3 -m mypy
python3 -m mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
# Container tests need Podman's Docker-API service and locally built images, and the pull tests a
# private registry with basic auth (set up first: it needs no engine, and the engine reads its
# certificate's trust entry at every pull).
bash scripts/setup-registry.sh
bash scripts/setup-containers.sh
# Browser tests drive Debian's Chromium through Playwright (no browser download).
bash scripts/setup-browser.sh
# Two parts: most tests in two parallel processes (they mostly wait on services and child
# processes; each isolates its data), then the few that restart a shared service, alone.
# Pytest's exit code 5 (no tests collected) is a failure in either part.
run_pytest() {
  set +e
  python3 -m pytest "$@"
  local status=$?
  set -e
  if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: $*" >&2
    return 1
  fi
  return "$status"
}
parallel=0
# --durations: the slowest tests in every CI log, to keep the suite within its time budget.
run_pytest -n "${TREADLE_TEST_PROCESSES:-2}" --dist loadfile -m "not exclusive" --durations=25 "$@" \
  || parallel=$?
alone=0
if [ "$#" -eq 0 ]; then
  run_pytest -m exclusive || alone=$?
else
  # A narrowed selection may hold no exclusive test; that is not a failure.
  python3 -m pytest -m exclusive "$@" || { alone=$?; if [ "$alone" -eq 5 ]; then alone=0; fi; }
fi
if [ "$parallel" -ne 0 ] || [ "$alone" -ne 0 ]; then
  echo "tests failed (parallel part: exit $parallel, exclusive part: exit $alone)" >&2
  exit 1
fi
