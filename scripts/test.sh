#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install what is missing, then run every test in release mode
# (the numeric tests are 10–600× slower in debug builds).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift test -c release "$@"
