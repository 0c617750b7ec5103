#!/usr/bin/env bash
# valgrind-pocl.sh — memcheck of a CE plan lifecycle on the OpenCL backend (PoCL on this CPU).
# ASan/LSan in the test command suppress the OpenCL driver's own allocations, so they cannot see
# a leaked cl_mem or cl_program; valgrind sees every allocation. Fails when a definitely-lost
# block or an invalid access has an xcat frame in its stack. Slow (minutes): not part of CI.
# usage: tools/valgrind-pocl.sh [BUILD_DIR=build]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build="${1:-build}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cc -O1 -g tests/valgrind/valgrind_smoke.c -Iinclude -L"$build" -lxcat -Wl,-rpath,"$PWD/$build" \
   -o "$work/smoke"
# First run fills the program caches, so the checked run measures xcat, not the compiler. It runs
# under valgrind too: PoCL sees valgrind's CPU as another device and would compile its work-group
# functions again in the checked run (LLVM's own leaks then appear under xcat's clBuildProgram).
XCAT_CACHE_DIR="$work/cache" valgrind --leak-check=no -q "$work/smoke" >/dev/null 2>&1 || true
XCAT_CACHE_DIR="$work/cache" valgrind --leak-check=full --show-leak-kinds=definite \
    --num-callers=40 "$work/smoke" >"$work/out" 2>"$work/log" || true
grep -E "definitely lost:|ERROR SUMMARY" "$work/log"
python3 - "$work/log" <<'PY'
import re, sys
blocks = open(sys.argv[1]).read().split("\n==")
bad = [b for b in re.split(r"==\d+== \n", open(sys.argv[1]).read())
       if ("definitely lost in loss record" in b or "Invalid " in b) and "libxcat" in b
       and "clGetPlatformIDs" not in b]
for b in bad: print(b)
sys.exit(1 if bad else 0)
PY
echo "valgrind-pocl: no xcat frame in any definite leak or invalid access"
