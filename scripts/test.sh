#!/usr/bin/env bash
# Install test dependencies and run every check: ruff, mypy, the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[test,docs]'
python3 -m ruff check src tests
python3 -m ruff format --check src tests
python3 -m mypy
python3 -m mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
# Container tests need Podman's Docker-API service and locally built images (no registry here).
bash scripts/setup-containers.sh
# Browser tests drive Debian's Chromium through Playwright (no browser download).
bash scripts/setup-browser.sh
set +e
python3 -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$status"
