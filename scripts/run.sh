#!/usr/bin/env bash
# The main job, from a fresh machine: install what is missing, build release, and run.
# Until the trainer lands this measures the kernels at config S shapes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release
.build/release/ngpt-bench kernels "$@"
