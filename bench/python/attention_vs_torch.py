#!/usr/bin/env python3
"""qkv.attention from Python against `qkv bench attention` (the C++ benchmark) and PyTorch's CPU
attention on the same shape and threads, side by side (docs/PERFORMANCE.md, "Python").

usage: PYTHONPATH=build/release/python /usr/bin/python3 bench/python/attention_vs_torch.py \
           build/release/apps/qkv/qkv [--n 4096] [--heads 12] [--dim 64] [--threads 2] [--rounds 5]

Rounds alternate the three (C++, Python, torch) so that a shared machine's load hits them alike;
each reports its median. PyTorch 1.13 has no scaled_dot_product_attention: its CPU attention is the
math path of nn.MultiheadAttention / F.multi_head_attention_forward, softmax(QK^T / sqrt(d) + mask) V
with batched matrix products, timed here as torch.baddbmm + softmax + bmm in float32.
"""
import argparse
import json
import math
import statistics
import subprocess
import time

import numpy as np
import torch

import qkv


def median_time(fn, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qkv_binary")
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    n, h, d = a.n, a.heads, a.dim
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, n, h, d), dtype=np.float32) for _ in range(3))
    out = np.empty_like(q)
    tq, tk, tv = (torch.from_numpy(x).permute(0, 2, 1, 3).reshape(h, n, d).contiguous()
                  for x in (q, k, v))
    causal_mask = torch.triu(torch.full((n, n), float("-inf")), diagonal=1)
    scale = 1 / math.sqrt(d)

    def run_qkv():
        qkv.attention(q, k, v, causal=True, out=out, n_threads=a.threads)

    def run_torch():
        s = torch.baddbmm(causal_mask, tq, tk.transpose(1, 2), alpha=scale)
        return torch.bmm(torch.softmax(s, dim=-1), tv)

    # Same answer (the torch path in float32, so a loose bound).
    run_qkv()
    ref = run_torch().reshape(1, h, n, d).permute(0, 2, 1, 3).numpy()
    assert np.abs(out - ref).max() < 1e-4, np.abs(out - ref).max()

    flops = 4.0 * h * n * n * d / 2
    cpp, py, th = [], [], []
    for _ in range(a.rounds):
        r = subprocess.run([a.qkv_binary, "bench", "attention", "--n-q", str(n), "--heads", str(h),
                            "--head-dim", str(d), "--causal", "--threads", str(a.threads),
                            "--json", "--no-reference", "--reps", str(a.reps)],
                           capture_output=True, text=True, check=True)
        j = json.loads(r.stdout)
        cpp.append(j["ms"] * 1e-3)  # the kernel's median
        py.append(median_time(run_qkv, a.reps))
        th.append(median_time(run_torch, a.reps))
    c, p, t = statistics.median(cpp), statistics.median(py), statistics.median(th)
    print(f"shape: 1 x {n} x {h} heads x d {d}, causal, {a.threads} threads; medians of "
          f"{a.rounds} rounds x {a.reps} reps")
    print(f"qkv bench attention (C++): {c * 1e3:8.1f} ms  {flops / c / 1e9:6.1f} GFLOP/s")
    print(f"qkv.attention (Python):    {p * 1e3:8.1f} ms  {flops / p / 1e9:6.1f} GFLOP/s  "
          f"({(p / c - 1) * 100:+.1f}% vs C++)")
    print(f"torch {torch.__version__} math path:  {t * 1e3:8.1f} ms  {flops / t / 1e9:6.1f} GFLOP/s  "
          f"(qkv is {t / p:.2f}x faster)")


if __name__ == "__main__":
    main()
