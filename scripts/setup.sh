#!/usr/bin/env bash
# Installs what ngpt needs on a Debian/Ubuntu machine, skipping whatever is already there, then builds release.
# Idempotent: safe to run before every build or test.
set -euo pipefail
cd "$(dirname "$0")/.."

# zlib: gzip corpora; librsvg2-bin: rsvg-convert renders the plots to PNG; Open MPI: data-parallel training;
# clang-format: the C sources' house style, checked by scripts/test.sh.
APT_PACKAGES=(libopenblas-dev libsentencepiece-dev zlib1g-dev librsvg2-bin libopenmpi-dev openmpi-bin clang-format)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "setup: the Swift toolchain (6.0 or later) is not on PATH; see https://swift.org/install" >&2; exit 1; }
