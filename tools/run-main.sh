#!/usr/bin/env bash
# run-main.sh — build xcat and run its main job on the default backend (the first OpenCL GPU,
# else the native CPU): build/tools/xcat-info, then build/tools/xcat-train — a small sequential
# recommender trained through xcat's loss and evaluated with xcat's top-K, on synthetic data
# unless --data is given. Extra arguments go to xcat-train, e.g.
#   tools/run-main.sh --data ../shared/data/video_games.txt --loss sampled-ce --negatives 256
# Environment: JOBS (default: nproc), XCAT_CMAKE_ARGS (extra configure arguments).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs="${JOBS:-$(nproc)}"
read -r -a extra_cmake_args <<<"${XCAT_CMAKE_ARGS:-}"

tools/install-deps.sh
# Same tree as tools/run-tests.sh (tests are left as configured there; only the tools and the
# library are built here).
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DXCAT_BUILD_TOOLS=ON "${extra_cmake_args[@]}"
cmake --build build -j "$jobs" --target xcat-info xcat-bench xcat-train

echo
echo "===== xcat-info"
build/tools/xcat-info
echo
echo "===== xcat-train --epochs 4${*:+ $*}"
exec build/tools/xcat-train --epochs 4 "$@"
