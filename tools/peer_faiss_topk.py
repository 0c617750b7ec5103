#!/usr/bin/env python3
"""CPU peer for `xcat-bench topk`: FAISS exact inner-product search (IndexFlatIP), the usual
exact-top-K tool outside the deep-learning frameworks. Same shapes and value scales as
xcat-bench topk (uniform values, queries sd 1, items sd 1/sqrt(d)).

Per-query exclusions: FAISS has no per-query filter (an IDSelector applies to the whole search,
and takes it off the BLAS path), so the standard recipe is used: search K + n_excluded
candidates and drop each query's excluded ids afterwards (numpy), then keep K.

Threads: FAISS's OpenMP threads (all cores, or OMP_NUM_THREADS). One JSON record per line.

usage: peer_faiss_topk.py --m 4096 --c 1000000 --d 64 128 --k 10 100 1000 10000 --excl 0 50
       [--repeats 3]        (pip install faiss-cpu; not a dependency of xcat)
"""
import argparse
import json
import statistics
import sys
import time

import faiss
import numpy as np


def uniform(rows, cols, sd, seed):
    rng = np.random.default_rng(seed)
    half = sd * np.sqrt(3.0)  # uniform on [-half, half] has standard deviation sd
    return rng.uniform(-half, half, size=(rows, cols)).astype(np.float32)


def search(index, q, k, hist):
    if hist is None:
        return index.search(q, k)
    extra = hist.shape[1]
    scores, ids = index.search(q, k + extra)
    for r0 in range(0, ids.shape[0], 256):  # blocks of queries: the mask is 256 × (k+extra) × extra
        blk = slice(r0, r0 + 256)
        drop = (ids[blk, :, None] == hist[blk, None, :]).any(-1)
        scores[blk] = np.where(drop, -np.inf, scores[blk])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, default=4096)
    ap.add_argument("--c", type=int, default=1000000)
    ap.add_argument("--d", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--k", type=int, nargs="+", default=[10, 100, 1000, 10000])
    ap.add_argument("--excl", type=int, nargs="+", default=[0, 50])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    for d in a.d:
        q = uniform(a.m, d, 1.0, 1)
        e = uniform(a.c, d, 1.0 / np.sqrt(d), 2)
        index = faiss.IndexFlatIP(d)
        index.add(e)
        for excl in a.excl:
            rng = np.random.default_rng(3)
            hist = rng.integers(0, a.c, size=(a.m, excl)) if excl else None
            for k in a.k:
                times = []
                search(index, q, k, hist)  # warm-up
                for _ in range(a.repeats):
                    t0 = time.perf_counter()
                    search(index, q, k, hist)
                    times.append((time.perf_counter() - t0) * 1e3)
                rec = {"peer": "faiss-cpu IndexFlatIP", "faiss": faiss.__version__,
                       "threads": faiss.omp_get_max_threads(), "m": a.m, "c": a.c, "d": d,
                       "k": k, "excl": excl, "ms": statistics.median(times)}
                print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    sys.exit(main())
