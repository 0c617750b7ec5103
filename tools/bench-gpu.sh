#!/usr/bin/env bash
# bench-gpu.sh — on a machine with an OpenCL GPU: build, run the test suite on every backend
# and device there (native CPU levels, each OpenCL device: GPU and PoCL), benchmark CE forward
# and forward+backward on the OpenCL GPU with xcat-bench, and run the PyTorch peer
# (tools/peer_torch_ce.py: cuBLAS fp32 GEMM ceiling + materialised CE) on the same shapes.
#
# usage: tools/bench-gpu.sh OUTDIR [N,C,d ...]
#   default shapes: the LLM-head shape of Apple's CCE and two recommender shapes.
#   SKIP_TESTS=1 skips ctest; REPEATS (default 5); XCAT_DEVICE picks the GPU (default: auto);
#   CE_VARIANTS="XCAT_CL_CE_MMA=2 XCAT_CL_CE_MMA=0" runs xcat-bench once per setting and shape,
#   in that order, in the same call (default: one run, the library's defaults).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:?usage: tools/bench-gpu.sh OUTDIR [N,C,d ...]}"
shift
shapes=("$@")
[[ ${#shapes[@]} -gt 0 ]] || shapes=("8192,256000,2304" "32768,1000000,64" "32768,1000000,256")
repeats="${REPEATS:-5}"
mkdir -p "$out"
log() { printf '[bench-gpu %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

log "configure + build"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DXCAT_BUILD_TESTS="${BUILD_TESTS:-ON}" \
    >"$out/configure.log" 2>&1
cmake --build build-gpu -j "$(nproc)" >"$out/build.log" 2>&1
build-gpu/tools/xcat-info >"$out/xcat-info.txt" 2>&1 || true
build-gpu/tools/xcat-info --json >"$out/xcat-info.json" 2>/dev/null || true

if [[ "${SKIP_TESTS:-0}" != "1" && -x build-gpu/tests/test_ce ]]; then
    log "test suite (every backend and device)"
    ctest --test-dir build-gpu --output-on-failure -V >"$out/ctest.log" 2>&1 || true
    grep -E "Checks:|tests passed|tests failed" "$out/ctest.log" >&2 || true
fi

for s in "${shapes[@]}"; do
    IFS=, read -r n c d <<<"$s"
    for v in ${CE_VARIANTS:-XCAT_BENCH_VARIANT=default}; do
        log "xcat-bench OpenCL N=$n C=$c d=$d ($v)"
        echo "## $v" >>"$out/xcat-bench.txt"
        env "$v" XCAT_BACKEND=opencl build-gpu/tools/xcat-bench --n "$n" --c "$c" --d "$d" \
            --repeats "$repeats" --no-naive --no-ceiling \
            --json "$out/xcat_${n}_${c}_${d}_${v//[^A-Za-z0-9]/_}.json" \
            >>"$out/xcat-bench.txt" 2>>"$out/xcat-bench.err" || log "xcat-bench failed on $s ($v)"
    done
done

if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    log "PyTorch peer"
    python3 tools/peer_torch_ce.py --shapes "${shapes[@]}" --repeats "$repeats" \
        >"$out/torch.jsonl" 2>"$out/torch.err" || log "peer failed"
fi
log "done: $out"
