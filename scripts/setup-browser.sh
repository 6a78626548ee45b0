#!/usr/bin/env bash
# Install what the browser tests (tests/ui/test_browser.py) need: Debian's Chromium from apt and
# Playwright for Python from pip. Playwright never downloads a browser of its own here: the
# tests launch /usr/bin/chromium.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
python3 -m pip install --quiet --disable-pip-version-check 'playwright>=1.40'
chromium --version
