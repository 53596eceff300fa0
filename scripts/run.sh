#!/usr/bin/env bash
# The main job, from a fresh machine: install what is missing, build release, fetch and prepare the default corpus,
# and train the default nGPT (about 10 minutes on 2 cores). Extra arguments go to ngpt-train (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release
.build/release/ngpt-train "$@"
