#!/usr/bin/env bash
# run-tests.sh — the whole test run (what CI runs, through .ci/run).
#
#   1. tools/install-deps.sh
#   2. build/      : Release, every target; ctest (every Check suite + install_consumer)
#   3. build-asan/ : Debug with -fsanitize=address,undefined; ctest (all but install_consumer)
#
# Exits nonzero if anything fails; a test failure in stage 2 still lets stage 3 run, so one
# run reports both. Prints the time of every stage.
# Environment: JOBS (default: nproc), XCAT_SKIP_ASAN=1 to skip stage 3,
#              XCAT_CMAKE_ARGS (extra configure arguments for both trees).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs="${JOBS:-$(nproc)}"
read -r -a extra_cmake_args <<<"${XCAT_CMAKE_ARGS:-}"
failures=()
summary=()

# stage NAME CMD... : run CMD, print its time; returns CMD's status.
stage() {
    local name="$1"
    shift
    local start end rc=0
    echo
    echo "===== [$name] $*"
    start=$(date +%s.%N)
    "$@" || rc=$?
    end=$(date +%s.%N)
    local secs
    secs=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }')
    local verdict="ok"
    if [[ $rc -ne 0 ]]; then
        verdict="FAILED (exit $rc)"
    fi
    echo "===== [$name] $verdict in ${secs}s"
    summary+=("$(printf '%-24s %8ss  %s' "$name" "$secs" "$verdict")")
    return "$rc"
}

print_summary() {
    echo
    echo "===== summary"
    printf '  %s\n' "${summary[@]}"
}

# A failing step that makes the following ones pointless: summary, then exit.
must() {
    if ! stage "$@"; then
        failures+=("$1")
        print_summary
        echo "run-tests: FAILED: $1" >&2
        exit 1
    fi
}
# A failing step after which the others are still worth running.
may() {
    if ! stage "$@"; then
        failures+=("$1")
    fi
}

# Each Check suite's own summary line ("100%: Checks: N, Failures: 0, Errors: 0"), taken from
# the log ctest keeps of every test's output, so a passing run shows them too (after a retry,
# the first run's lines come first).
check_summaries() {
    local log="$1/Testing/Temporary/LastTest.log"
    [[ -f "$log" ]] || return 0
    if [[ -f "$1/Testing/Temporary/FirstTry.log" ]]; then
        cat "$1/Testing/Temporary/FirstTry.log" "$log" >"$1/Testing/Temporary/Both.log"
        log="$1/Testing/Temporary/Both.log"
    fi
    echo "----- Check summaries ($1)"
    awk '/^[0-9]+\/[0-9]+ Test: / { name = $3 }
         /^[0-9]+%: Checks: / { printf "  %-20s %s\n", name, $0 }' "$log"
}

# ctest under the sanitizers, with one narrow retry. LeakSanitizer's own tracer sometimes
# segfaults while it stops a test child's threads at exit, after the test body has passed
# ("Tracer caught signal 11 ... LeakSanitizer has encountered a fatal error": a sanitizer
# runtime bug, google/sanitizers#1353; seen here every time one api-suite child compiled the
# top-K program from a cold cache — that test now lives in the topk suite, where it does
# not). When that is the only thing wrong — no Check failure, no sanitizer report, every Check
# error the child's early exit — the failed tests run once more; any other failure stands.
asan_ctest() {
    local dir=build-asan tmp=build-asan/Testing/Temporary
    rm -f "$tmp/FirstTry.log"
    local out rc=0
    out=$(ctest --test-dir "$dir" --output-on-failure --no-tests=error -E install_consumer 2>&1) ||
        rc=$?
    printf '%s\n' "$out"
    [[ $rc -eq 0 ]] && return 0
    if grep -q "LeakSanitizer has encountered a fatal error" <<<"$out" &&
        ! grep -qE ":F:|ERROR: AddressSanitizer|runtime error:" <<<"$out" &&
        ! grep ":E:" <<<"$out" | grep -qv "Early exit with return value 1"; then
        echo "run-tests: LeakSanitizer's tracer crashed at a test's exit (a runtime bug, not a" \
             "test failure): the failed tests once more"
        cp "$tmp/LastTest.log" "$tmp/FirstTry.log"
        ctest --test-dir "$dir" --output-on-failure --no-tests=error -E install_consumer \
            --rerun-failed
        return $?
    fi
    return "$rc"
}

total_start=$(date +%s)

must install-deps tools/install-deps.sh

must configure cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DXCAT_BUILD_TESTS=ON \
    "${extra_cmake_args[@]}"
must build cmake --build build -j "$jobs"
may test ctest --test-dir build --output-on-failure --no-tests=error
check_summaries build

if [[ "${XCAT_SKIP_ASAN:-0}" != "1" ]]; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
    must configure-asan cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug \
        -DXCAT_SANITIZE=address,undefined -DXCAT_BUILD_TOOLS=OFF -DXCAT_BUILD_TESTS=ON \
        "${extra_cmake_args[@]}"
    must build-asan cmake --build build-asan -j "$jobs"
    may test-asan asan_ctest
    check_summaries build-asan
fi

print_summary
echo "  total: $(($(date +%s) - total_start))s"
if [[ ${#failures[@]} -gt 0 ]]; then
    echo "run-tests: FAILED: ${failures[*]}" >&2
    exit 1
fi
echo "run-tests: all passed"
