#!/usr/bin/env python3
"""qkv attention against PyTorch (float64 math) on a few shapes.

Usage: torch_parity.py QKV_ATTENTION_IO WORKDIR. Exits 77 (skipped) when torch is not installed.
The reference is softmax(q k^T * scale + mask) v computed by torch in float64 from the same
(f16/bf16-rounded, where asked) k and v that qkv reads.
"""
import math
import os
import subprocess
import sys

try:
    import torch
except ImportError:
    print("torch is not installed (Debian package python3-torch): skipping")
    sys.exit(77)

TOL = 3e-5  # same as the C++ parity tests: fp32 accumulation against an exact reference


def run_case(io, workdir, b, nq, nkv, h, hkv, d, dv, causal, dtype, window_left=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(b, nq, h, d, generator=g, dtype=torch.float32) * 2 - 1
    k = torch.rand(b, nkv, hkv, d, generator=g, dtype=torch.float32) * 2 - 1
    v = torch.rand(b, nkv, hkv, dv, generator=g, dtype=torch.float32) * 2 - 1
    os.makedirs(workdir, exist_ok=True)
    for name, t in (("q", q), ("k", k), ("v", v)):
        t.numpy().tofile(os.path.join(workdir, name + ".bin"))
    args = [io, workdir, b, nq, nkv, h, hkv, d, dv, int(causal), dtype]
    if window_left is not None:
        args.append(window_left)
    subprocess.run([str(a) for a in args], check=True)
    out = torch.from_numpy(__import__("numpy").fromfile(os.path.join(workdir, "out.bin"), dtype="float32"))
    lse = torch.from_numpy(__import__("numpy").fromfile(os.path.join(workdir, "lse.bin"), dtype="float32"))
    out = out.reshape(b, nq, h, dv).double()
    lse = lse.reshape(b, h, nq).double()

    # What qkv reads: k and v rounded to the storage dtype.
    cast = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    k64 = k.to(cast).double()
    v64 = v.to(cast).double()
    group = h // hkv
    qh = q.double().permute(0, 2, 1, 3)                                    # [b, h, nq, d]
    kh = k64.permute(0, 2, 1, 3).repeat_interleave(group, dim=1)           # [b, h, nkv, d]
    vh = v64.permute(0, 2, 1, 3).repeat_interleave(group, dim=1)
    s = qh @ kh.transpose(-1, -2) / math.sqrt(d)
    pos = torch.arange(nq).unsqueeze(1) + (nkv - nq)
    j = torch.arange(nkv).unsqueeze(0)
    allowed = torch.ones(nq, nkv, dtype=torch.bool)
    if causal:
        allowed &= j <= pos
    if window_left is not None:
        allowed &= j >= pos - window_left
    s = s.masked_fill(~allowed, float("-inf"))
    ref_lse = torch.logsumexp(s, dim=-1)
    ref = (torch.softmax(s, dim=-1) @ vh).permute(0, 2, 1, 3)
    err = ((out - ref).abs() / (1 + ref.abs())).max().item()
    lse_err = ((lse - ref_lse).abs() / (1 + ref_lse.abs())).max().item()
    name = f"b{b} nq{nq} nkv{nkv} h{h}/{hkv} d{d}/{dv} causal={causal} {dtype} window={window_left}"
    ok = err <= TOL and lse_err <= TOL
    print(f"{'ok  ' if ok else 'FAIL'} {name}: out err {err:.2e}, lse err {lse_err:.2e}")
    return ok


def main():
    io, workdir = sys.argv[1], sys.argv[2]
    cases = [
        dict(b=1, nq=128, nkv=128, h=4, hkv=4, d=64, dv=64, causal=False, dtype="f32"),
        dict(b=2, nq=77, nkv=77, h=8, hkv=2, d=128, dv=128, causal=True, dtype="f16"),
        dict(b=1, nq=1, nkv=3000, h=8, hkv=1, d=64, dv=64, causal=True, dtype="bf16"),
        dict(b=1, nq=33, nkv=200, h=2, hkv=1, d=40, dv=24, causal=True, dtype="f32", window_left=50),
        dict(b=3, nq=5, nkv=300, h=6, hkv=3, d=256, dv=256, causal=False, dtype="f16"),
    ]
    ok = all([run_case(io, workdir, seed=i, **c) for i, c in enumerate(cases)])
    print(f"{sum(1 for _ in cases)} cases, {'all passed' if ok else 'FAILURES'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
