#!/usr/bin/env bash
# ptx-report.sh — an indicative register / stack / shared-memory report of xcat's OpenCL kernels
# for NVIDIA GPUs, without a GPU: the program is compiled with clang 15 for nvptx64 (libclc
# supplies the OpenCL built-ins), lowered to PTX by llc, and assembled by ptxas -v for sm_90.
# NVIDIA's own OpenCL compiler is a different front end: treat the numbers as hints (a kernel
# that keeps an accumulator array in a stack frame here is worth a look there) and confirm on
# the device (tools/bench-device.sh, STAGES=ptxinfo, runs ptxas on NVIDIA's real PTX).
# Developer tool only; needs: apt-get install clang-15 llvm-15 libclc-15, and ptxas (on PATH,
# in $PTXAS, or: pip download nvidia-cuda-nvcc-cu12 --no-deps, unzip, …/bin/ptxas).
# usage: tools/ptx-report.sh "gemm.cl mma.cl topk.cl" ["NAME VALUE" ...]
#   the first argument lists the cl/ files in program order (rng.cl is added when named);
#   further arguments are #define lines of the prelude (defaults below: a 128×128 GPU tile,
#   tensor cores on, SEL_WG 256).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
files=${1:?usage: tools/ptx-report.sh "gemm.cl mma.cl topk.cl" ["NAME VALUE" ...]}
shift
ptxas=${PTXAS:-$(command -v ptxas || true)}
[[ -x $ptxas ]] || { echo "ptx-report: no ptxas (set PTXAS)" >&2; exit 1; }
bin=/usr/lib/llvm-15/bin
clc=/usr/lib/clc/nvptx64--nvidiacl.bc
[[ -x $bin/llc && -f $clc ]] || { echo "ptx-report: needs llvm-15 and libclc-15" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
    printf '#define %s\n' "BM 128" "BN 128" "BK 16" "TM 8" "TN 8" "GEMM_VEC_LOADS 1" "SEL_WG 256" \
        "SORT_LOCAL 2048" "TOPK_EARLY_EXIT 1" "GEMM_MMA 1" "ROW_WG 256" "RED_WG 256" "CS_X 16" \
        "CS_Y 16" "EW 1" "$@"
    for f in $files; do cat "cl/$f"; done
} >"$tmp/all.cl"
# C99 `inline` without a definition elsewhere: force inlining, as the vendor compilers do
clang-15 -x cl -cl-std=CL1.2 -Xclang -finclude-default-header --target=nvptx64-unknown-nvidiacl \
    -Dasm=__asm__ "-Dinline=__attribute__((always_inline)) static __inline__" -O3 \
    -Xclang -target-cpu -Xclang sm_80 -Wno-everything -emit-llvm -c -o "$tmp/a.bc" "$tmp/all.cl"
"$bin/llvm-link" "$tmp/a.bc" "$clc" -o "$tmp/l.bc"
"$bin/opt" -O3 "$tmp/l.bc" -o "$tmp/o.bc"
"$bin/llc" -mcpu=sm_80 -mattr=+ptx75 "$tmp/o.bc" -o "$tmp/all.ptx"
"$ptxas" -v -arch=sm_90 -o /dev/null "$tmp/all.ptx" 2>&1 |
    grep -E "Compiling entry|Used|spill" | sed 's/ptxas info *: //' | paste - - - |
    sed -E "s/Compiling entry function '([^']*)' for 'sm_90'/\1/; s/[[:space:]]+/ /g"
