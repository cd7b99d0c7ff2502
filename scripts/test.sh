#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds (Release + the unit tests again under
# ASan+UBSan, and the libFuzzer harnesses with clang) and runs everything with one ctest.
# Usage: bash scripts/test.sh [extra ctest args]
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
bash scripts/install-deps.sh fuzz dit  # dit: Fashion-MNIST, which the io tests read
jobs=$(nproc)
# The libFuzzer harnesses (fuzz/) need clang: a build dir of their own. Its smoke tests (each
# harness for 20 s, label fuzz) join the ctest run below through QTUNE_FUZZ_BUILD.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(cd .. && pwd)}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release -DQTUNE_FUZZ=ON \
  -DQTUNE_SANITIZE_TESTS=OFF -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
cmake --build build-fuzz -j"$jobs" --target qtune_fuzz
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DQTUNE_SANITIZE_TESTS=ON -DQTUNE_REQUIRE_SHARED=ON \
  -DQTUNE_SHARED_DIR="$shared" -DQTUNE_FUZZ_BUILD="$PWD/build-fuzz" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
cmake --build build -j"$jobs"
cd build
ctest -j"$jobs" --output-on-failure --timeout 900 "$@"
