#!/usr/bin/env python3
"""Peers for `xcat-bench sampled` on an NVIDIA GPU: sampled CE (CE⁻, K uniform negatives per row,
accidental hits masked) forward+backward, with peak extra device memory, by
  - PyTorch, materialised: gather E[negatives] (N×K×d), bmm, cross_entropy — fp32 and bf16;
  - the CCE⁻ Triton kernel of On-Point-RND/MemoryEfficientSRS (Zhelnin et al. 2025), when its
    checkout is given with --cce-path (it needs bf16/fp16 inputs: run in bf16 and fp16).
Negatives are drawn inside the timed step for every method (xcat draws them inside its kernels).
One JSON record per line; out-of-memory is recorded, not fatal.

usage: peer_torch_sampled.py --shapes N,K,C,d [...] [--repeats 5] [--cce-path DIR]
"""
import argparse
import json
import sys

import torch

from peer_util import measure


def inputs(n, c, d, dtype, pad_row=False):
    torch.manual_seed(0)
    h = torch.randn(n, d, device="cuda", dtype=dtype).requires_grad_()
    e = (torch.randn(c + (1 if pad_row else 0), d, device="cuda") * d ** -0.5).to(dtype)
    e.requires_grad_()
    y = torch.randint(0, c, (n,), device="cuda")
    return h, e, y


def torch_materialised(n, k, c, d, dtype, repeats):
    h, e, y = inputs(n, c, d, dtype)

    def step():
        h.grad = e.grad = None
        neg = torch.randint(0, c, (n, k), device="cuda")
        pos = (h * e[y]).sum(-1, keepdim=True)
        logit_neg = torch.bmm(e[neg], h.unsqueeze(-1)).squeeze(-1)
        logit_neg = logit_neg.masked_fill(neg == y.unsqueeze(1), float("-inf"))
        logits = torch.cat([pos, logit_neg], 1).float()
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros_like(y))
        loss.backward()

    return measure(step, repeats)


def cce_minus(n, k, c, d, dtype, repeats, cce_path):
    sys.path.insert(0, cce_path + "/kernels")
    from cut_cross_entropy.cce import CCEParams, LinearCrossEntropyFunction
    from cut_cross_entropy.utils import _build_flat_valids

    h, e, y = inputs(n, c, d, dtype, pad_row=True)  # row c: where rejected negatives point
    valids = _build_flat_valids(y, -100, 0)

    def step():
        h.grad = e.grad = None
        neg = torch.randint(0, c, (n, k), device="cuda")
        neg[y.view(-1, 1) == neg] = c  # the kernel's own collision handling (lightning.py)
        item_inds = torch.hstack([y.view(-1, 1), neg])
        params = CCEParams(y, valids, None, "mean", None, 0, y.size(), False, item_inds)
        loss = LinearCrossEntropyFunction.apply(h, e, None, params)
        loss.backward()

    return measure(step, repeats)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="+", required=True, help="N,K,C,d")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cce-path", default=None)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.cuda.get_device_name(0)
    for s in a.shapes:
        n, k, c, d = (int(x) for x in s.split(","))
        rec = {"device": dev, "n": n, "k": k, "c": c, "d": d, "torch": torch.__version__}
        runs = [("torch_fp32", lambda: torch_materialised(n, k, c, d, torch.float32, a.repeats)),
                ("torch_bf16", lambda: torch_materialised(n, k, c, d, torch.bfloat16, a.repeats))]
        if a.cce_path:
            runs += [("cce_minus_bf16",
                      lambda: cce_minus(n, k, c, d, torch.bfloat16, a.repeats, a.cce_path)),
                     ("cce_minus_fp16",
                      lambda: cce_minus(n, k, c, d, torch.float16, a.repeats, a.cce_path))]
        for name, fn in runs:
            try:
                ms, extra = fn()
                rec[name + "_ms"] = ms
                rec[name + "_extra_gib"] = extra
            except torch.cuda.OutOfMemoryError:
                rec[name] = "out of memory"
            except Exception as exc:  # a peer that cannot run is recorded, not fatal
                rec[name] = "failed: %s" % str(exc).splitlines()[0][:200]
            torch.cuda.empty_cache()
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    sys.exit(main())
