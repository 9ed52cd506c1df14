#!/usr/bin/env python3
"""qkv attention_backward against PyTorch autograd (float64) on a few shapes.

Usage: torch_backward.py QKV_ATTENTION_BACKWARD_IO WORKDIR. Exits 77 (skipped) when torch is not
installed. For random q, k, v and dout, torch computes out = softmax(q kᵀ · scale + mask) v in
float64 and differentiates L = Σ dout · out; qkv runs its forward (fp32) and attention_backward,
with both the tiled CPU kernel and the reference backend.
"""
import math
import os
import subprocess
import sys

try:
    import numpy
    import torch
except ImportError:
    print("torch is not installed (Debian package python3-torch): skipping")
    sys.exit(77)

# fp32 forward and backward against exact float64 gradients: the same order as the C++
# fast-vs-reference tolerance (errors measured ~1e-6 relative to 1 + |g|).
TOL = 5e-5


def run_case(io, workdir, b, nq, nkv, h, hkv, d, dv, causal, window_left=-1, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(b, nq, h, d, generator=g, dtype=torch.float32) * 2 - 1
    k = torch.rand(b, nkv, hkv, d, generator=g, dtype=torch.float32) * 2 - 1
    v = torch.rand(b, nkv, hkv, dv, generator=g, dtype=torch.float32) * 2 - 1
    dout = torch.rand(b, nq, h, dv, generator=g, dtype=torch.float32) * 2 - 1
    os.makedirs(workdir, exist_ok=True)
    for name, t in (("q", q), ("k", k), ("v", v), ("dout", dout)):
        t.numpy().tofile(os.path.join(workdir, name + ".bin"))

    q64, k64, v64 = (t.double().requires_grad_() for t in (q, k, v))
    group = h // hkv
    qh = q64.permute(0, 2, 1, 3)                                   # [b, h, nq, d]
    kh = k64.permute(0, 2, 1, 3).repeat_interleave(group, dim=1)   # [b, h, nkv, d]
    vh = v64.permute(0, 2, 1, 3).repeat_interleave(group, dim=1)
    s = qh @ kh.transpose(-1, -2) / math.sqrt(d)
    pos = torch.arange(nq).unsqueeze(1) + (nkv - nq)
    j = torch.arange(nkv).unsqueeze(0)
    allowed = torch.ones(nq, nkv, dtype=torch.bool)
    if causal:
        allowed &= j <= pos
    if window_left >= 0:
        allowed &= j >= pos - window_left
    s = s.masked_fill(~allowed, float("-inf"))
    out = (torch.softmax(s, dim=-1) @ vh).permute(0, 2, 1, 3)
    (out * dout.double()).sum().backward()

    ok = True
    for backend in ("cpu", "reference"):
        args = [io, workdir, b, nq, nkv, h, hkv, d, dv, int(causal), window_left, backend]
        subprocess.run([str(a) for a in args], check=True)
        errs = []
        for name, ref in (("dq", q64.grad), ("dk", k64.grad), ("dv", v64.grad)):
            got = numpy.fromfile(os.path.join(workdir, name + ".bin"), dtype="float32")
            got = torch.from_numpy(got).double().reshape(ref.shape)
            errs.append(((got - ref).abs() / (1 + ref.abs())).max().item())
        case = (f"b{b} nq{nq} nkv{nkv} h{h}/{hkv} d{d}/{dv} causal={causal} "
                f"window={window_left} {backend}")
        good = max(errs) <= TOL
        ok = ok and good
        print(f"{'ok  ' if good else 'FAIL'} {case}: dq {errs[0]:.2e}, dk {errs[1]:.2e}, "
              f"dv {errs[2]:.2e}")
    return ok


def main():
    io, workdir = sys.argv[1], sys.argv[2]
    cases = [
        dict(b=1, nq=64, nkv=64, h=4, hkv=4, d=32, dv=32, causal=False),
        dict(b=2, nq=77, nkv=77, h=8, hkv=2, d=64, dv=64, causal=True),      # GQA
        dict(b=1, nq=33, nkv=200, h=4, hkv=1, d=40, dv=24, causal=True),     # MQA, bottom-right
        dict(b=2, nq=50, nkv=130, h=2, hkv=1, d=17, dv=8, causal=True, window_left=20),
        dict(b=3, nq=9, nkv=150, h=6, hkv=3, d=128, dv=128, causal=False, window_left=60),
    ]
    ok = all([run_case(io, workdir, seed=i, **c) for i, c in enumerate(cases)])
    print(f"{len(cases)} cases, {'all passed' if ok else 'FAILURES'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
