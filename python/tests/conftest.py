"""Shared helpers of the qkv Python tests (run from CTest as `python3 -m pytest python/tests` with
PYTHONPATH at the build tree's python/ folder; QKV_CLI names the qkv binary, QKV_SHARED_DIR
../shared).

Tests that need ../shared skip with the reason when it is absent, and fail instead when
QKV_REQUIRE_SHARED is set (as CI does), like tests/common/shared_data.py.
"""
import math
import os
import pathlib

import numpy as np
import pytest
import torch

SHARED = pathlib.Path(os.environ.get("QKV_SHARED_DIR",
                                     pathlib.Path(__file__).resolve().parents[2] / ".." / "shared"))


def require_shared(path):
    """The path under ../shared, or a skip (a failure under QKV_REQUIRE_SHARED) naming it."""
    p = SHARED / path
    if not p.exists():
        if os.environ.get("QKV_REQUIRE_SHARED", "") not in ("", "0"):
            pytest.fail(f"{p} is absent and QKV_REQUIRE_SHARED is set")
        pytest.skip(f"{p} is absent (../shared is not checked out beside the project)")
    return p


def qkv_cli():
    cli = os.environ.get("QKV_CLI")
    if not cli or not os.path.exists(cli):
        pytest.fail("QKV_CLI does not name the qkv binary (CTest sets it; see python/CMakeLists.txt)")
    return cli


def reference(q, k, v, *, causal=False, scale=None, mask=None, kv_lengths=None, q_offsets=None,
              window=(-1, -1), alibi_slopes=None, softcap=None):
    """softmax(scale q k^T (+ rules)) v in float64 with torch, from the float32 / f16 / bf16 values
    qkv reads; the rules of include/qkv/attention.h. Returns (out [b, nq, h, dv], lse [b, h, nq])."""
    q, k, v = (torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor)
               else x for x in (q, k, v))
    q, k, v = q.double(), k.double(), v.double()
    b, nq, h, d = q.shape
    nkv, hkv = k.shape[1], k.shape[2]
    group = h // hkv
    qh = q.permute(0, 2, 1, 3)
    kh = k.permute(0, 2, 1, 3).repeat_interleave(group, dim=1)
    vh = v.permute(0, 2, 1, 3).repeat_interleave(group, dim=1)
    s = qh @ kh.transpose(-1, -2) * (scale if scale is not None else 1 / math.sqrt(d))
    if softcap is not None:
        s = softcap * torch.tanh(s / softcap)
    allowed = torch.ones(b, 1, nq, nkv, dtype=torch.bool)
    j = torch.arange(nkv).view(1, 1, 1, nkv)
    off = (torch.as_tensor(np.asarray(q_offsets), dtype=torch.int64) if q_offsets is not None
           else torch.full((b,), nkv - nq, dtype=torch.int64))
    pos = (off.view(b, 1, 1, 1) + torch.arange(nq).view(1, 1, nq, 1))
    if causal:
        allowed &= j <= pos
    if kv_lengths is not None:
        kl = torch.as_tensor(np.asarray(kv_lengths), dtype=torch.int64).view(b, 1, 1, 1)
        allowed &= j < kl
    left, right = window
    if left >= 0:
        allowed &= j >= pos - left
    if right >= 0:
        allowed &= j <= pos + right
    if alibi_slopes is not None:
        sl = torch.as_tensor(np.asarray(alibi_slopes), dtype=torch.float64).view(1, h, 1, 1)
        s = s - sl * (pos - j).abs()
    if mask is not None:
        m = torch.as_tensor(np.asarray(mask))
        if m.dtype == torch.bool:
            allowed = allowed & m.view(1, 1, nq, nkv)
        else:
            s = s + m.double().view(1, 1, nq, nkv)
    s = s.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse)).unsqueeze(-1))
    p = torch.where(torch.isfinite(lse).unsqueeze(-1), p, torch.zeros_like(p))
    out = (p @ vh).permute(0, 2, 1, 3)
    return out, lse


def rss_bytes():
    """The process's resident set size now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes():
    """The process's peak resident set size (VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
