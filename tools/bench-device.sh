#!/usr/bin/env bash
# bench-device.sh — one call on the GPU machine of the device tool (H100 + 16-core Xeon, no
# Check installed): build with the Check .debs carried in .device/ (unpacked under /tmp, never
# into /), run the whole suite on every target there (CPU levels incl. AVX-512, the GPU through
# NVIDIA's OpenCL, PoCL on the Xeon), the CPU benchmarks of top-K and the sampled kinds on the
# Xeon, and xcat-train with the same seed on the CPU and on the GPU.
# usage: tools/bench-device.sh OUTDIR     (STAGES="tests topk gputopk gpuprofile ptxinfo sampled sce scecpu train vgtrain" to choose)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:?usage: tools/bench-device.sh OUTDIR}"
stages="${STAGES-tests topk sampled train}" # set but empty: build only
mkdir -p "$out"
has() { [[ " $stages " == *" $1 "* ]]; }
log() { printf '[bench-device %s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$out/summary.txt" >&2; }
[[ -d /opt/torch/bin ]] && export PATH="/opt/torch/bin:$PATH"

chk=/tmp/xcat-check
if ls .device/*.deb >/dev/null 2>&1; then
    mkdir -p "$chk"
    for f in .device/*.deb; do dpkg -x "$f" "$chk"; done
    export PKG_CONFIG_PATH="$chk/usr/lib/x86_64-linux-gnu/pkgconfig"
    export PKG_CONFIG_SYSROOT_DIR="$chk"
    export LD_LIBRARY_PATH="$chk/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
log "configure + build"
tests=ON
cmake -S . -B build-dev -DCMAKE_BUILD_TYPE=Release -DXCAT_BUILD_TESTS=ON >"$out/configure.log" 2>&1 ||
    { tests=OFF; cmake -S . -B build-dev -DCMAKE_BUILD_TYPE=Release -DXCAT_BUILD_TESTS=OFF \
          >>"$out/configure.log" 2>&1; }
cmake --build build-dev -j "$(nproc)" >"$out/build.log" 2>&1 || { log "build failed"; tail -30 "$out/build.log" >&2; exit 1; }
build-dev/tools/xcat-info >"$out/xcat-info.txt" 2>&1
log "tests built: $tests"

if [[ $stages == *tests* && $tests == ON ]]; then
    log "ctest (every target)"
    timeout "${TEST_TIMEOUT:-300}" ctest --test-dir build-dev -j 4 --output-on-failure \
        -E install_consumer ${TEST_REGEX:+-R "$TEST_REGEX"} >"$out/ctest.log" 2>&1
    grep -E "Checks:|tests passed|tests failed|Failed|Timeout" "$out/ctest.log" | tee -a "$out/summary.txt" >&2
fi
if has topk; then
    log "xcat-bench topk (Xeon, native CPU backend)"
    build-dev/tools/xcat-bench topk --backend cpu --m 4096 --c 1000000 --d 128 \
        --k 10,100,1000,10000 --excl 0,50 --repeats 3 --json "$out/topk_xeon.jsonl" \
        >"$out/topk_xeon.txt" 2>/dev/null
    cat "$out/topk_xeon.txt" >>"$out/summary.txt"
fi
if has gputopk; then
    log "xcat-bench topk (GPU through OpenCL) and the PyTorch peer, same call"
    build-dev/tools/xcat-bench topk --backend opencl --m 4096 --c 1000000 --d "${TOPK_D:-64,128}" \
        --k "${TOPK_K:-10,100,1000,10000,16384}" --excl 0,50 --repeats 5 --no-naive --check-exact \
        --json "$out/topk_gpu.jsonl" >"$out/topk_gpu.txt" 2>"$out/topk_gpu.err"
    cat "$out/topk_gpu.txt" >>"$out/summary.txt"; tail -3 "$out/topk_gpu.err" >>"$out/summary.txt"
    log "the same on the exact fp32 path (XCAT_CL_TOPK_APPROX=0), same call"
    XCAT_CL_TOPK_APPROX=0 build-dev/tools/xcat-bench topk --backend opencl --m 4096 --c 1000000 \
        --d "${TOPK_D:-64,128}" --k "${TOPK_EXACT_K:-10,1000}" --excl 0,50 --repeats 5 --no-naive \
        >"$out/topk_gpu_exact.txt" 2>/dev/null
    cat "$out/topk_gpu_exact.txt" >>"$out/summary.txt"
    python3 tools/peer_torch_topk.py --shapes 4096,1000000,128 --ks 10 100 1000 10000 \
        --excl 50 --repeats 5 >"$out/topk_torch.jsonl" 2>&1
    cat "$out/topk_torch.jsonl" >>"$out/summary.txt"
fi
if has gpuprofile; then
    log "top-K kernel profile on the GPU (XCAT_PROFILE=1: device time per kernel)"
    XCAT_PROFILE=1 build-dev/tools/xcat-bench topk --backend opencl --m 4096 --c 1000000 \
        --d "${TOPK_D:-128}" --k "${TOPK_K:-10,1000}" --excl "${TOPK_EXCL:-50}" --repeats 2 \
        --no-naive >"$out/topk_profile.txt" 2>/dev/null
    cat "$out/topk_profile.txt" >>"$out/summary.txt"
    XCAT_PROFILE=1 build-dev/tools/xcat-bench sce --backend opencl --n 409600 --c 1000000 \
        --d 64 --ky 256 --repeats 2 >"$out/sce_profile.txt" 2>/dev/null
    cat "$out/sce_profile.txt" >>"$out/summary.txt"
fi
if has ptxinfo; then
    # NVIDIA's OpenCL caches its programs as PTX (XCAT_CACHE_DIR): ptxas -v on them gives each
    # kernel's registers, spills and shared memory — the occupancy questions a timing can't
    # answer. PTX_VARIANTS: env assignments, one build each ("default" = none).
    log "ptxas -v on the top-K programs NVIDIA's OpenCL built"
    ptxas=${PTXAS:-$(command -v ptxas || ls /usr/local/cuda*/bin/ptxas 2>/dev/null | head -1)}
    for v in ${PTX_VARIANTS:-default}; do
        dir=/tmp/xcat-ptx-${v//[^A-Za-z0-9_]/_}
        rm -rf "$dir"; mkdir -p "$dir"
        [[ $v == default ]] && v="XCAT_PTX_VARIANT=default"
        env "$v" XCAT_CACHE_DIR="$dir" build-dev/tools/xcat-bench topk --backend opencl \
            --m 1024 --c 100000 --d 128 --k 10 --excl 0 --repeats 1 --no-naive >/dev/null 2>&1
        for f in "$dir"/*.clbin; do
            grep -q "^\.version" "$f" 2>/dev/null || continue
            echo "## $v $(basename "$f")"
            # the cached binary may carry a header or NULs around the PTX text: keep the text
            tr -d '\000' <"$f" | sed -n '/^\/\/\|^\.version/,$p' >"$dir/k.ptx"
            "$ptxas" -v -arch=sm_90 -o /dev/null "$dir/k.ptx" >"$dir/ptxas.log" 2>&1 ||
                { head -c 300 "$f" | od -c | head -5; head -5 "$dir/ptxas.log"; }
            grep -E "Compiling entry|Used|spill" "$dir/ptxas.log" | sed 's/ptxas info *: //'
        done
    done >>"$out/ptxinfo.txt"
    cat "$out/ptxinfo.txt" >>"$out/summary.txt"
fi
if has tilesweep; then
    log "top-K GEMM tile / chunk sweep on the GPU (K=100, no exclusions)"
    for cfg in ${SWEEP:-128x128x16x8x8:8192 128x128x8x8x8:8192 64x128x16x8x8:8192 128x64x16x8x8:8192 64x64x16x4x4:8192 128x128x16x8x8:16384 128x128x16x8x8:32768}; do
        echo "## tile ${cfg%%:*} chunk ${cfg##*:}" >>"$out/tilesweep.txt"
        XCAT_CL_GEMM_TILE=${cfg%%:*} XCAT_CL_TOPK_CHUNK=${cfg##*:} build-dev/tools/xcat-bench topk \
            --backend opencl --m 4096 --c 1000000 --d 64,128 --k 100 --excl 0 --repeats 3 \
            --no-naive 2>/dev/null | grep -v "^#" >>"$out/tilesweep.txt"
    done
    cat "$out/tilesweep.txt" >>"$out/summary.txt"
fi
if has gpusampled; then
    log "xcat-bench sampled (GPU through OpenCL) and the PyTorch / CCE⁻ peers, same call"
    build-dev/tools/xcat-bench sampled --backend opencl --n 32768 --c 1000000 \
        --k "${SAMPLED_K:-511,1511,4095}" --d 256 --repeats 3 --json "$out/sampled_gpu.jsonl" \
        >"$out/sampled_gpu.txt" 2>"$out/sampled_gpu.err"
    cat "$out/sampled_gpu.txt" >>"$out/summary.txt"; tail -3 "$out/sampled_gpu.err" >>"$out/summary.txt"
    cce=(); [[ -d .device/MemoryEfficientSRS ]] && cce=(--cce-path .device/MemoryEfficientSRS)
    python3 tools/peer_torch_sampled.py --shapes 32768,1511,1000000,256 --repeats 5 "${cce[@]}" \
        >"$out/sampled_torch.jsonl" 2>"$out/sampled_torch.err"
    cat "$out/sampled_torch.jsonl" >>"$out/summary.txt"
fi
if has cceshapes; then
    log "the CCE⁻ paper's shapes (N = 64·512 = 1024·32 = 32,768, d = 256): xcat and peers"
    for c in ${CCE_C:-20000 1000000}; do
        build-dev/tools/xcat-bench sampled --backend opencl --n 32768 --c "$c" --k 511,1511,4095 \
            --d 256 --repeats 3 --json "$out/cce_xcat_$c.jsonl" 2>/dev/null | grep -v "^#" \
            | sed "s/^/C=$c /" >>"$out/cce_shapes.txt"
    done
    shapes=(); for c in ${CCE_C:-20000 1000000}; do for k in 511 1511 4095; do shapes+=("32768,$k,$c,256"); done; done
    cce=(); [[ -d .device/MemoryEfficientSRS ]] && cce=(--cce-path .device/MemoryEfficientSRS)
    python3 tools/peer_torch_sampled.py --shapes "${shapes[@]}" --repeats 3 "${cce[@]}" \
        >"$out/cce_peers.jsonl" 2>"$out/cce_peers.err"
    cat "$out/cce_shapes.txt" "$out/cce_peers.jsonl" >>"$out/summary.txt"
fi
if has suite; then
    log "xcat-bench suite: small on every target, large on the GPU"
    build-dev/tools/xcat-bench suite --size small --repeats 3 --json "$out/suite_small.jsonl" \
        >"$out/suite_small.txt" 2>/dev/null
    build-dev/tools/xcat-bench suite --size large --repeats 3 --only "${SUITE_GPU:-opencl:1}" \
        --json "$out/suite_large.jsonl" >"$out/suite_large.txt" 2>/dev/null
    build-dev/tools/xcat-bench report "$out"/suite_*.jsonl >"$out/suite_report.md"
    cat "$out/suite_small.txt" "$out/suite_large.txt" >>"$out/summary.txt"
fi
if has slacksweep; then
    log "top-K selection slack sweep on the GPU (d=128, K=100/1000, excl 0/50)"
    for sl in ${SLACKS:-0 2048 4096 8192}; do
        echo "## slack $sl" >>"$out/slacksweep.txt"
        XCAT_CL_TOPK_SLACK=$sl build-dev/tools/xcat-bench topk --backend opencl --m 4096 \
            --c 1000000 --d 128 --k 100,1000 --excl 0,50 --repeats 5 --no-naive 2>/dev/null \
            | grep -v "^#" >>"$out/slacksweep.txt"
    done
    cat "$out/slacksweep.txt" >>"$out/summary.txt"
fi
if has gpushared; then
    log "xcat-bench sampled, shared and in-batch candidates (GPU): GEMMs vs gathers"
    for g in 0 1; do
        for args in "--sampler shared --k 1511" "--kind inbatch --n 8192" "--kind inbatch"; do
            echo "## XCAT_CL_SAMPLED_GATHER=$g $args" >>"$out/shared_gpu.txt"
            XCAT_CL_SAMPLED_GATHER=$g build-dev/tools/xcat-bench sampled --backend opencl --n 32768 \
                --c 1000000 --d 256 --repeats 3 $args 2>/dev/null | grep -v "^#" >>"$out/shared_gpu.txt"
        done
    done
    cat "$out/shared_gpu.txt" >>"$out/summary.txt"
fi
if has sce; then
    # SCE (issue 7): comparison shape (xcat SCE vs xcat full CE and sampled CE, K = k_y), then the
    # paper's largest batch (B·L = 2048·200) against the reference PyTorch SCE; device memory
    # of the xcat runs sampled by nvidia-smi (whole process: inputs, gradients, workspace).
    log "xcat-bench sce (GPU): vs xcat full CE and sampled CE, N=${SCE_CMP_N:-65536}"
    smi() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 >"$out/$1.smi" 2>/dev/null & echo $!; }
    pid=$(smi sce_cmp)
    build-dev/tools/xcat-bench sce --backend opencl --n "${SCE_CMP_N:-65536}" --c 1000000 \
        --d 64,256 --ky 256,1024,4096 --repeats 3 --compare --json "$out/sce_cmp.jsonl" \
        >"$out/sce_cmp.txt" 2>"$out/sce_cmp.err"
    kill "$pid" 2>/dev/null
    cat "$out/sce_cmp.txt" >>"$out/summary.txt"; tail -3 "$out/sce_cmp.err" >>"$out/summary.txt"
    for d in 64 256; do
        log "xcat-bench sce (GPU) N=409600 d=$d and the reference PyTorch SCE"
        pid=$(smi "sce_big_$d")
        build-dev/tools/xcat-bench sce --backend opencl --n 409600 --c 1000000 --d "$d" \
            --ky "${SCE_KY:-256,1024,4096}" --repeats 3 --json "$out/sce_big_$d.jsonl" \
            >"$out/sce_big_$d.txt" 2>"$out/sce_big_$d.err"
        kill "$pid" 2>/dev/null
        echo "# nvidia-smi peak MiB (whole GPU): $(sort -n "$out/sce_big_$d.smi" | tail -1)" >>"$out/sce_big_$d.txt"
        cat "$out/sce_big_$d.txt" >>"$out/summary.txt"; tail -3 "$out/sce_big_$d.err" >>"$out/summary.txt"
        shapes=(); for k in ${SCE_KY_LIST:-256 1024 4096}; do shapes+=("409600,1000000,$d,$k"); done
        python3 tools/peer_torch_sce.py --shapes "${shapes[@]}" --repeats 3 \
            >"$out/sce_torch_$d.jsonl" 2>"$out/sce_torch_$d.err"
        cat "$out/sce_torch_$d.jsonl" >>"$out/summary.txt"; tail -2 "$out/sce_torch_$d.err" >>"$out/summary.txt"
    done
fi
if has scecpu; then
    log "xcat-bench sce (Xeon, native CPU backend) vs full CE and sampled CE"
    build-dev/tools/xcat-bench sce --backend cpu --n 16384 --c 1000000 --d 64 \
        --ky 256,1024,4096 --repeats 2 --compare --json "$out/sce_xeon.jsonl" \
        >"$out/sce_xeon.txt" 2>/dev/null
    build-dev/tools/xcat-bench sce --backend cpu --n 16384 --c 1000000 --d 256 \
        --ky 256,1024,4096 --repeats 2 --json "$out/sce_xeon_256.jsonl" \
        >>"$out/sce_xeon.txt" 2>/dev/null
    cat "$out/sce_xeon.txt" >>"$out/summary.txt"
fi
if has sampled; then
    log "xcat-bench sampled (Xeon, native CPU backend)"
    build-dev/tools/xcat-bench sampled --backend cpu --n 16384 --c 1000000 --k 128,1024,4096 \
        --d 64,256 --repeats 2 --json "$out/sampled_xeon.jsonl" >"$out/sampled_xeon.txt" 2>/dev/null
    cat "$out/sampled_xeon.txt" >>"$out/summary.txt"
fi
if has train; then
    for b in cpu opencl; do
        log "xcat-train --backend $b (synthetic, seed 1)"
        build-dev/tools/xcat-train --backend "$b" --epochs 3 --seed 1 --quiet \
            --json "$out/train_$b.json" >>"$out/summary.txt" 2>&1
    done
fi
if has vgtrain; then
    # Amazon Video Games (../shared/data, copied by the caller into the ignored .device/data/ so
    # that it travels; never committed): the loss kinds on the GPU, then the same seed on the
    # Xeon's native backend for a CPU-vs-GPU comparison.
    vg=.device/data/video_games.txt
    if [[ -f $vg ]]; then
        while read -r tag args; do
            [[ -z $tag ]] && continue
            for b in ${VG_BACKENDS:-opencl}; do
                log "xcat-train Video Games $tag on $b"
                smi_pid=""
                if [[ $b == opencl ]]; then
                    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 \
                        >"$out/vg_${tag}_$b.smi" 2>/dev/null & smi_pid=$!
                fi
                timeout "${VG_TIMEOUT:-240}" build-dev/tools/xcat-train --data "$vg" --backend "$b" \
                    --epochs "${VG_EPOCHS:-6}" --seed 1 $args --json "$out/vg_${tag}_$b.json" \
                    >"$out/vg_${tag}_$b.txt" 2>&1
                [[ -n $smi_pid ]] && kill "$smi_pid" 2>/dev/null
                [[ -f "$out/vg_${tag}_$b.smi" ]] && echo "# nvidia-smi peak MiB (whole GPU): $(sort -n "$out/vg_${tag}_$b.smi" | tail -1)" >>"$out/vg_${tag}_$b.txt"
                { echo "## $tag $b"; grep -E "epoch|test|peak" "$out/vg_${tag}_$b.txt"; } >>"$out/summary.txt"
            done
        done <<<"${VG_RUNS:-ce --loss ce
sampled --loss sampled-ce --negatives 256
gbce --loss gbce --negatives 256
inbatch --loss inbatch --correction none
logq --loss inbatch --correction logq
logqc --loss inbatch --correction logq-corrected
sce256 --loss sce --sce-ky 256
sce1024 --loss sce --sce-ky 1024
scemix --loss sce --sce-ky 256 --sce-mix}"
    else
        log "vgtrain: $vg missing (copy ../shared/data/video_games.txt there first)"
    fi
fi
log "done"
