#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what it needs,
# builds, checks formatting and runs every test.
#   scripts/test.sh              build/ (RelWithDebInfo)
#   scripts/test.sh --sanitize   build-asan/ with AddressSanitizer + UndefinedBehaviorSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [[ "${1:-}" == "--sanitize" ]]; then
  build=build-asan
  cmake_args=(-DCMAKE_BUILD_TYPE=Debug -DMLSTAGE_SANITIZE=ON)
fi

scripts/deps.sh --tests
if [[ -f tests/node/package-lock.json ]]; then
  echo "==> node test tools (tests/node)" >&2
  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error >/dev/null
fi

echo "==> clang-format" >&2
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find core plugins tests examples -name '*.[ch]')
clang-format --dry-run --Werror $files

echo "==> build ($build)" >&2
cmake -S . -B "$build" "${cmake_args[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"

echo "==> tests ($build)" >&2
cd "$build"
ctest --output-on-failure -j"$(nproc)"
