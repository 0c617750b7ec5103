#!/usr/bin/env python3
"""Peer for `xcat-bench sce` on an NVIDIA GPU: SCE (Mezentsev et al., RecSys 2024) forward+backward
as the reference PyTorch code computes it (AIRI-Institute/Scalable-SASRec, model.py sce_forward),
re-expressed here from its description, not copied:
  - directions Ω = d^(-1/4)·G (n_b × d), or with --mix Ω = d^(-1/4)·Rᵀ·H (R Gaussian N × n_b),
    drawn inside the timed step, no gradient;
  - the n_b × N row scores and the n_b × C item scores materialised, padding masked to -inf,
    torch.topk for the k_x rows and the k_y items of each bucket;
  - gathered rows and items, batched logits n_b × k_x × k_y, items equal to the row's positive
    masked, the positive's logit appended, cross_entropy per (bucket, row), the row loss the max
    over its buckets (scatter_reduce amax), mean over the rows that got one; backward.
Item 0 is the padding item (never selected, as in the reference); positives are drawn from 1..C-1.
Reports median ms and the peak extra device memory over the inputs; OOM is recorded, not fatal.
One JSON record per line.

usage: peer_torch_sce.py --shapes N,C,d,ky [...] [--nb NB] [--kx KX] [--mix] [--repeats 5]
       (n_b and k_x default to floor(2*sqrt(N)), the paper's choice)
"""
import argparse
import json
import math
import sys

import torch
import torch.nn.functional as F

from peer_util import measure


def sce_loss(h, e, y, nb, kx, ky, mix, pad=0):
    n, d = h.shape
    pos_logit = (h * e.index_select(0, y)).sum(1)
    with torch.no_grad():
        scale = d ** -0.25
        if mix:
            omega = (scale * torch.randn(n, nb, device=h.device)).T @ h
        else:
            omega = scale * torch.randn(nb, d, device=h.device)
        row_scores = omega @ h.T  # n_b × N, materialised
        row_scores[:, y == pad] = float("-inf")
        rows = row_scores.topk(kx, dim=1).indices  # n_b × k_x
        del row_scores
        item_scores = omega @ e.T  # n_b × C, materialised: what xcat avoids
        item_scores[:, pad] = float("-inf")
        items = item_scores.topk(ky, dim=1).indices  # n_b × k_y
        del item_scores
    hb = h.index_select(0, rows.reshape(-1)).view(nb, kx, d)
    eb = e.index_select(0, items.reshape(-1)).view(nb, ky, d)
    neg = torch.bmm(hb, eb.transpose(1, 2))  # n_b × k_x × k_y
    hit = y.index_select(0, rows.reshape(-1)).view(nb, kx, 1) == items.view(nb, 1, ky)
    neg = neg.masked_fill(hit, float("-inf"))
    pos = pos_logit.index_select(0, rows.reshape(-1)).view(nb, kx, 1)
    logits = torch.cat((neg, pos), 2).view(nb * kx, ky + 1)
    target = torch.full((nb * kx,), ky, dtype=torch.int64, device=h.device)
    per = F.cross_entropy(logits, target, reduction="none")
    row_loss = torch.zeros(n, device=h.device, dtype=h.dtype)
    row_loss = row_loss.scatter_reduce(0, rows.reshape(-1), per, reduce="amax", include_self=False)
    return row_loss[(row_loss != 0) & (y != pad)].mean()


def run(n, c, d, ky, nb, kx, mix, repeats):
    torch.manual_seed(0)
    h = torch.randn(n, d, device="cuda").requires_grad_()
    e = (torch.randn(c, d, device="cuda") * (2.0 / math.sqrt(d))).requires_grad_()
    y = torch.randint(1, c, (n,), device="cuda")

    def step():
        h.grad = e.grad = None
        sce_loss(h, e, y, nb, kx, ky, mix).backward()

    return measure(step, repeats)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="+", required=True, help="N,C,d,ky")
    ap.add_argument("--nb", type=int, default=0)
    ap.add_argument("--kx", type=int, default=0)
    ap.add_argument("--mix", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.cuda.get_device_name(0)
    for s in a.shapes:
        n, c, d, ky = (int(x) for x in s.split(","))
        two_root = int(math.floor(2.0 * math.sqrt(n)))
        nb, kx = a.nb or two_root, min(a.kx or two_root, n)
        rec = {"device": dev, "n": n, "c": c, "d": d, "ky": ky, "nb": nb, "kx": kx,
               "mix": int(a.mix), "torch": torch.__version__}
        try:
            ms, extra = run(n, c, d, ky, nb, kx, a.mix, a.repeats)
            rec["torch_sce_fp32_ms"] = ms
            rec["torch_sce_fp32_extra_gib"] = extra
        except torch.cuda.OutOfMemoryError:
            rec["torch_sce_fp32"] = "out of memory"
        except Exception as exc:  # recorded, not fatal
            rec["torch_sce_fp32"] = "failed: %s" % str(exc).splitlines()[0][:200]
        torch.cuda.empty_cache()
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    sys.exit(main())
