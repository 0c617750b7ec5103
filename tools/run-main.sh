#!/usr/bin/env bash
# run-main.sh — build xcat and run its main job on the default backend:
#   build/tools/xcat-info, then build/tools/xcat-bench --quick [extra arguments...]
# Extra arguments go to xcat-bench (e.g. tools/run-main.sh --backend cpu).
# Environment: JOBS (default: nproc), XCAT_CMAKE_ARGS (extra configure arguments).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs="${JOBS:-$(nproc)}"
read -r -a extra_cmake_args <<<"${XCAT_CMAKE_ARGS:-}"

tools/install-deps.sh
# Same tree as tools/run-tests.sh (tests are left as configured there; only the tools and the
# library are built here).
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DXCAT_BUILD_TOOLS=ON "${extra_cmake_args[@]}"
cmake --build build -j "$jobs" --target xcat-info xcat-bench

echo
echo "===== xcat-info"
build/tools/xcat-info
echo
echo "===== xcat-bench --quick${*:+ $*}"
exec build/tools/xcat-bench --quick "$@"
