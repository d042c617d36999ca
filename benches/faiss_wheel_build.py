#!/usr/bin/env python3
"""Reference build times from the faiss-cpu wheel (pip install faiss-cpu numpy),
for comparing with `ember bench` on the same TEXMEX data and thread count:

    OMP_NUM_THREADS=1 python3 benches/faiss_wheel_build.py DATA_DIR --m 32 --ef-construction 100
    OMP_NUM_THREADS=1 target/release/ember bench DATA_DIR --kinds hnsw

Prints the HNSW and IVF build times and HNSW recall@10 at a few efSearch values.
"""
import argparse
import os
import sys
import time

import faiss
import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = int(raw[0])
    body = raw.reshape(-1, d + 1)[:, 1:]
    return np.ascontiguousarray(body).view(dtype)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=100)
    args = ap.parse_args()
    base = read_vecs(os.path.join(args.data, "base.fvecs"), np.float32)
    query = read_vecs(os.path.join(args.data, "query.fvecs"), np.float32)
    gt = read_vecs(os.path.join(args.data, "groundtruth.ivecs"), np.int32)[:, :10]
    n, d = base.shape
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads, {n} x {d}")

    index = faiss.index_factory(d, f"HNSW{args.m},Flat", faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = args.ef_construction
    t = time.perf_counter()
    index.add(base)
    print(f"HNSW{args.m} efConstruction {args.ef_construction}: build {time.perf_counter() - t:.2f} s")
    for ef in (64, 96, 128):
        index.hnsw.efSearch = ef
        _, ids = index.search(query, 10)
        recall = np.mean([len(set(ids[i]) & set(gt[i])) / 10 for i in range(len(gt))])
        print(f"  efSearch {ef}: recall@10 {recall:.3f}")

    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
    ivf = faiss.index_factory(d, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    t = time.perf_counter()
    ivf.train(base)
    ivf.add(base)
    print(f"IVF{nlist}: build {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
