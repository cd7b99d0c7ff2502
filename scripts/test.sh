#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds (Release + the unit tests again under
# ASan+UBSan) and runs everything with ctest. Usage: bash scripts/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DQTUNE_SANITIZE_TESTS=ON >/dev/null
cmake --build build -j"$jobs"
cd build
ctest -j"$jobs" --output-on-failure --timeout 900 "$@"
