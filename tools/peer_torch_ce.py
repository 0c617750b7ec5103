#!/usr/bin/env python3
"""PyTorch peer for xcat-bench on an NVIDIA GPU: the fp32 GEMM ceiling (cuBLAS, TF32 off) and
the materialised full-softmax CE forward+backward (logits = H·Eᵀ + b, cross_entropy, backward),
with peak extra device memory. Prints one JSON record per line; OOM is recorded, not fatal.

usage: peer_torch_ce.py --shapes N,C,d [N,C,d ...] [--repeats 5]
"""
import argparse
import json
import sys

import torch

from peer_util import timed


def gemm_ceiling(n, c, d, repeats):
    """fp32 GEMM rate on the logits shape (N×d)·(d×C), chunked over C to bound memory."""
    cc = min(c, max(1, (2 << 30) // (4 * n)))
    h = torch.randn(n, d, device="cuda")
    e = torch.randn(cc, d, device="cuda")
    out = torch.empty(n, cc, device="cuda")
    ms = timed(lambda: torch.mm(h, e.t(), out=out), repeats)
    return 2.0 * n * cc * d / (ms * 1e-3) / 1e12


def materialised_ce(n, c, d, repeats):
    torch.cuda.empty_cache()
    h = torch.randn(n, d, device="cuda", requires_grad=True)
    e = (torch.randn(c, d, device="cuda") * d ** -0.5).requires_grad_()
    b = torch.zeros(c, device="cuda", requires_grad=True)
    y = torch.randint(0, c, (n,), device="cuda")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()

    def step():
        h.grad = e.grad = b.grad = None
        loss = torch.nn.functional.cross_entropy(torch.addmm(b, h, e.t()), y)
        loss.backward()

    ms = timed(step, repeats)
    extra = torch.cuda.max_memory_allocated() - base
    return ms, extra


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="+", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.cuda.get_device_name(0)
    for s in a.shapes:
        n, c, d = (int(x) for x in s.split(","))
        rec = {"device": dev, "n": n, "c": c, "d": d, "torch": torch.__version__}
        rec["gemm_fp32_tflops"] = gemm_ceiling(n, c, d, a.repeats)
        try:
            ms, extra = materialised_ce(n, c, d, a.repeats)
            rec.update(torch_ce_ms=ms, torch_ce_tflops=8.0 * n * c * d / (ms * 1e-3) / 1e12,
                       torch_ce_extra_gib=extra / 2 ** 30)
        except torch.cuda.OutOfMemoryError:
            rec["torch_ce"] = "out of memory"
        torch.cuda.empty_cache()
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    sys.exit(main())
