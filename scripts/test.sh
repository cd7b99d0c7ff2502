#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds (Release + the unit tests again under
# ASan+UBSan) and runs everything with ctest. Usage: bash scripts/test.sh [extra ctest args]
# The golden checks need the shared folder (models, data): ../shared, or $QTUNE_SHARED_DIR.
# Without it this fails at once, and the build requires it (QTUNE_REQUIRE_SHARED), so a test
# whose shared file is missing fails rather than skips.
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${QTUNE_SHARED_DIR:-$(cd .. && pwd)/shared}"
if [ ! -d "$shared" ]; then
  echo "error: shared folder $shared (models and data of the golden tests) is missing; set QTUNE_SHARED_DIR" >&2
  exit 1
fi
bash scripts/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DQTUNE_SANITIZE_TESTS=ON -DQTUNE_REQUIRE_SHARED=ON \
  -DQTUNE_SHARED_DIR="$shared" >/dev/null
cmake --build build -j"$jobs"
cd build
ctest -j"$jobs" --output-on-failure --timeout 900 "$@"
