#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install what is missing, then run every test in release mode
# (the numeric tests are 10–600× slower in debug builds).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Python packages the interop tests use: SentencePiece ids and safetensors files must agree with the reference
# implementations, and exported models must compute in transformers what they compute here (torch is PyPI's
# large CUDA build, a few GB: installed only when missing; protobuf lets transformers read tokenizer.model), and
# the official openai client must get from ngpt-serve what ngpt-sample gives; Playwright drives Chromium on the
# server's playground page.
PY_TEST_PACKAGES=(sentencepiece safetensors numpy google.protobuf:protobuf torch transformers openai playwright)
for entry in "${PY_TEST_PACKAGES[@]}"; do
  module=${entry%%:*} package=${entry#*:}
  python3 -c "import $module" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check "$package"
done
# Debian's Chromium, for the playground test (test-only, so not in setup.sh).
if ! command -v chromium >/dev/null; then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# House style: the checked-in .swift-format (4-space indent, 120 columns), enforced.
swift format lint --strict --recursive Sources Tests
# The C and C++ sources: the checked-in .clang-format.
clang-format --dry-run --Werror Sources/C*/*.c Sources/C*/*.cpp Sources/C*/*.h Sources/C*/include/*.h
# swift-format cannot break a long string literal, and does not report one: no line may pass 120 characters.
if long=$(LC_ALL=C.UTF-8 grep -rnP --include='*.swift' '^.{121,}' Sources Tests); then
  echo "lines over 120 characters (the house style's limit):" >&2
  echo "$long" >&2
  exit 1
fi
# The tests' temporary files (a few thousand directories per run) go to one directory, removed afterwards.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ngpt-tests.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
TMPDIR="$scratch" swift test -c release "$@"
