#!/usr/bin/env python3
"""Peer for `xcat-bench topk` on an NVIDIA GPU: PyTorch scoring + exclusion + top-K, the way
evaluation code does it (RecBole, RePlay): scores = U·Eᵀ (M×C materialised, fp32, TF32 off),
excluded items set to −inf with a scatter, torch.topk. Also the `mm` alone. Peak extra memory.
One JSON record per line; out-of-memory is recorded, not fatal.

usage: peer_torch_topk.py --shapes M,C,d [...] --ks 10 100 1000 10000 [--excl 50] [--repeats 5]
"""
import argparse
import json
import sys

import torch

from peer_util import timed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="+", required=True, help="M,C,d")
    ap.add_argument("--ks", nargs="+", type=int, default=[10, 100, 1000, 10000])
    ap.add_argument("--excl", type=int, default=50, help="excluded items per query (0: none)")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.cuda.get_device_name(0)
    for s in a.shapes:
        m, c, d = (int(x) for x in s.split(","))
        torch.manual_seed(0)
        u = torch.randn(m, d, device="cuda")
        e = torch.randn(c, d, device="cuda") * d ** -0.5
        hist = torch.randint(0, c, (m, a.excl), device="cuda") if a.excl else None
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        rec = {"device": dev, "m": m, "c": c, "d": d, "excl": a.excl, "torch": torch.__version__}
        try:
            rec["mm_ms"] = timed(lambda: u @ e.t(), a.repeats)
            for k in a.ks:
                def step():
                    scores = u @ e.t()
                    if hist is not None:
                        scores.scatter_(1, hist, float("-inf"))
                    return torch.topk(scores, k, dim=1)
                torch.cuda.reset_peak_memory_stats()
                rec["topk_ms_k%d" % k] = timed(step, a.repeats)
                rec["extra_gib_k%d" % k] = (torch.cuda.max_memory_allocated() - base) / 2 ** 30
        except torch.cuda.OutOfMemoryError:
            rec["error"] = "out of memory"
        torch.cuda.empty_cache()
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    sys.exit(main())
