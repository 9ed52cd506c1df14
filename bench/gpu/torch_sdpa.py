#!/usr/bin/env python3
"""Times PyTorch's scaled_dot_product_attention (flash and cuDNN backends) on the shapes that
qkv_cuda_bench measured, and prints one table with qkv's numbers and the ratios.

usage: torch_sdpa.py qkv_results.json [combined.json]

Inputs use qkv's memory layout, [batch, seq, head, dim] contiguous, passed to PyTorch as
transposed views [batch, head, seq, dim] (what its flash kernels read without a copy).
"""
import json
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def time_ms(fn, iters):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def run_shape(s, backend):
    torch.manual_seed(0)
    dev, dt = "cuda", torch.bfloat16
    q = torch.rand(s["batch"], s["n_q"], s["n_head"], s["head_dim"], device=dev, dtype=dt) * 2 - 1
    k = torch.rand(s["batch"], s["n_kv"], s["n_head_kv"], s["head_dim"], device=dev,
                   dtype=dt) * 2 - 1
    v = torch.rand_like(k) * 2 - 1
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    gqa = s["n_head"] != s["n_head_kv"]
    # Bottom-right causal alignment equals PyTorch's top-left only for square problems.
    causal = s["causal"]
    if causal and s["n_q"] != s["n_kv"]:
        return None

    def fn():
        with sdpa_kernel([backend]):
            return F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal, enable_gqa=gqa)

    try:
        fn()
    except RuntimeError as e:
        return "n/a: " + str(e).splitlines()[0][:60]
    return time_ms(fn, 50 if s["n_q"] == 1 else 20)


def main():
    ours = json.load(open(sys.argv[1]))
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    rows = []
    done = {}
    for s in ours:
        key = (s["batch"], s["n_q"], s["n_kv"], s["n_head"], s["n_head_kv"], s["head_dim"],
               s["causal"])
        if key not in done:
            done[key] = {"flash": run_shape(s, SDPBackend.FLASH_ATTENTION),
                         "cudnn": run_shape(s, SDPBackend.CUDNN_ATTENTION)}
        r = dict(s)
        for name, ms in done[key].items():
            r[name + "_ms"] = ms if isinstance(ms, float) else None
            r[name + "_note"] = ms if isinstance(ms, str) else ""
        rows.append(r)
    decode = lambda r: r["n_q"] == 1
    print()
    print(f"{'shape':34} {'qkv ms':>8} {'qkv':>9} {'flash':>9} {'cudnn':>9} "
          f"{'/flash':>7} {'/cudnn':>7}")
    for r in rows:
        unit = "TB/s" if decode(r) else "TF/s"
        work = r["tbs"] * r["ms"] if decode(r) else r["tflops"] * r["ms"]

        def rate(ms):
            return f"{work / ms:9.2f}" if ms else f"{'n/a':>9}"

        def ratio(ms):
            return f"{ms / r['ms']:7.2f}" if ms else f"{'n/a':>7}"

        print(f"{r['name']:34} {r['ms']:8.3f} {rate(r['ms'])} {rate(r['flash_ms'])} "
              f"{rate(r['cudnn_ms'])} {ratio(r['flash_ms'])} {ratio(r['cudnn_ms'])}  ({unit})")
    for r in rows:
        for n in ("flash", "cudnn"):
            if r[n + "_note"]:
                print(f"  {r['name']} {n}: {r[n + '_note']}")
    print("ratios are qkv speed / PyTorch speed (> 1: qkv faster)")
    if len(sys.argv) > 2:
        json.dump(rows, open(sys.argv[2], "w"), indent=1)


if __name__ == "__main__":
    main()
