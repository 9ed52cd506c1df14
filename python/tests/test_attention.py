"""qkv.attention, attention_probs, attention_block and merge against torch in float64."""
import math

import numpy as np
import pytest
import torch

import qkv
from conftest import reference

# fp32 accumulation against an exact reference, relative to 1 + |ref| (as tests/kernels): the
# kernel's error is a few ulps of the row's scale; 3e-5 leaves room for n_kv up to a few hundred.
TOL = 3e-5


def err(a, ref):
    a = torch.as_tensor(np.asarray(a)).double()
    return ((a - ref).abs() / (1 + ref.abs())).max().item() if a.numel() else 0.0


def lse_err(a, ref):
    a = torch.as_tensor(np.asarray(a)).double()
    both_inf = torch.isinf(a) & torch.isinf(ref) & (a.sign() == ref.sign())
    d = torch.where(both_inf, torch.zeros_like(a), (a - ref).abs() / (1 + ref.abs()))
    return d.max().item() if d.numel() else 0.0


def rand(rng, *shape):
    return (rng.random(shape, dtype=np.float32) * 2 - 1)


CASES = [
    # b, nq, nkv, h, hkv, d, dv
    (1, 1, 1, 1, 1, 8, 8),
    (2, 7, 7, 4, 4, 16, 16),
    (1, 33, 65, 8, 2, 64, 64),
    (3, 5, 40, 6, 1, 32, 48),
    (1, 100, 100, 2, 2, 128, 128),
]
KINDS = ["none", "causal", "bool", "additive", "kv_lengths", "window", "alibi", "softcap",
         "q_offsets", "all"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_against_torch(case, kind):
    b, nq, nkv, h, hkv, d, dv = case
    rng = np.random.default_rng(hash((case, kind)) & 0xffff)
    q, k, v = rand(rng, b, nq, h, d), rand(rng, b, nkv, hkv, d), rand(rng, b, nkv, hkv, dv)
    opts = {}
    ref_opts = {}
    if kind in ("causal", "all"):
        opts["causal"] = ref_opts["causal"] = True
    if kind in ("bool", "all"):
        m = rng.random((nq, nkv)) < 0.7
        opts["mask"] = ref_opts["mask"] = m
    if kind == "additive":
        m = (rng.standard_normal((nq, nkv)) * 2).astype(np.float32)
        m[rng.random((nq, nkv)) < 0.2] = -np.inf
        opts["mask"] = ref_opts["mask"] = m
    if kind in ("kv_lengths", "all"):
        kl = rng.integers(0, nkv + 1, size=b).astype(np.int32)
        opts["kv_lengths"] = ref_opts["kv_lengths"] = kl
    if kind in ("window", "all"):
        opts["window"] = (3, 1)
        ref_opts["window"] = (3, 1)
    if kind in ("alibi", "all"):
        sl = (2.0 ** -np.arange(1, h + 1)).astype(np.float32)
        opts["alibi_slopes"] = ref_opts["alibi_slopes"] = sl
    if kind in ("softcap", "all"):
        opts["softcap"] = ref_opts["softcap"] = 2.5
    if kind == "q_offsets":
        off = rng.integers(0, nkv, size=b).astype(np.int32)
        opts["q_offsets"] = ref_opts["q_offsets"] = off
        opts["causal"] = ref_opts["causal"] = True
    out, lse = qkv.attention(q, k, v, return_lse=True, **opts)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (b, nq, h, dv)
    ref, ref_lse = reference(q, k, v, **ref_opts)
    assert err(out, ref) < TOL
    assert lse_err(lse, ref_lse) < TOL
    # The reference backend agrees too (the library's own oracle).
    out2 = qkv.attention(q, k, v, backend="reference", **opts)
    assert err(out2, ref) < TOL


def test_scale_and_threads():
    rng = np.random.default_rng(1)
    q, k, v = rand(rng, 2, 9, 4, 16), rand(rng, 2, 9, 4, 16), rand(rng, 2, 9, 4, 16)
    ref, _ = reference(q, k, v, scale=0.3)
    for threads in (1, 2, 0):
        assert err(qkv.attention(q, k, v, scale=0.3, n_threads=threads), ref) < TOL


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_kv_torch(dtype):
    g = torch.Generator().manual_seed(3)
    q = torch.rand(2, 17, 4, 32, generator=g) * 2 - 1
    k = (torch.rand(2, 30, 2, 32, generator=g) * 2 - 1).to(dtype)
    v = (torch.rand(2, 30, 2, 32, generator=g) * 2 - 1).to(dtype)
    out = qkv.attention(q, k, v, causal=True)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    ref, _ = reference(q, k.float(), v.float(), causal=True)
    assert err(out, ref) < TOL


def test_half_kv_numpy():
    rng = np.random.default_rng(4)
    q = rand(rng, 1, 12, 2, 16)
    k = rand(rng, 1, 12, 2, 16).astype(np.float16)
    v = rand(rng, 1, 12, 2, 16).astype(np.float16)
    ref, _ = reference(q, k.astype(np.float32), v.astype(np.float32))
    assert err(qkv.attention(q, k, v), ref) < TOL


def test_strided_views_without_copies():
    """[batch, heads, n, dim] storage (torch's usual layout) transposed, every-other-element
    views and a broadcast mask: read in place."""
    rng = np.random.default_rng(5)
    qs = rand(rng, 2, 4, 20, 32)               # [b, h, n, d]
    kvs = rand(rng, 2, 2, 2, 25, 32)           # [b, {k, v}, h, n, d]: k and v in one buffer
    q = qs.transpose(0, 2, 1, 3)               # [b, n, h, d], not contiguous
    k = kvs[:, 0].transpose(0, 2, 1, 3)[:, :, :, :]
    v = kvs[:, 1].transpose(0, 2, 1, 3)
    big = rand(rng, 2, 25, 4, 64)
    v2 = big[:, :, ::2, ::2]                   # inner stride 2
    assert not q.flags.c_contiguous and not v2.flags.c_contiguous
    row = rng.random(25) < 0.8
    row[0] = True
    mask = np.broadcast_to(row, (20, 25))      # stride 0 over queries
    out = qkv.attention(q, k, v, mask=mask)
    ref, _ = reference(np.ascontiguousarray(q), np.ascontiguousarray(k), np.ascontiguousarray(v),
                       mask=np.ascontiguousarray(mask))
    assert err(out, ref) < TOL
    out = qkv.attention(q, k, v2[:, :, :2])
    ref, _ = reference(np.ascontiguousarray(q), np.ascontiguousarray(k),
                       np.ascontiguousarray(v2[:, :, :2]))
    assert err(out, ref) < TOL
    # torch: a permuted view, and a negative-stride NumPy view (the one case that is copied).
    tq = torch.from_numpy(qs).permute(0, 2, 1, 3)
    out_t = qkv.attention(tq, torch.from_numpy(np.ascontiguousarray(k)),
                          torch.from_numpy(np.ascontiguousarray(v)))
    ref, _ = reference(np.ascontiguousarray(q), k, v)
    assert err(out_t, ref) < TOL
    flipped = q[:, ::-1]
    ref, _ = reference(np.ascontiguousarray(flipped), k, v)
    assert err(qkv.attention(flipped, k, v), ref) < TOL


def test_out_is_written_in_place():
    rng = np.random.default_rng(6)
    q, k, v = rand(rng, 1, 8, 2, 16), rand(rng, 1, 8, 2, 16), rand(rng, 1, 8, 2, 16)
    # A strided destination: every other head of a bigger buffer.
    buf = np.full((1, 8, 4, 16), 7.0, dtype=np.float32)
    dst = buf[:, :, ::2]
    res = qkv.attention(q, k, v, causal=True, out=dst)
    assert res is dst
    ref, _ = reference(q, k, v, causal=True)
    assert err(buf[:, :, ::2], ref) < TOL
    assert np.all(buf[:, :, 1::2] == 7.0)  # nothing written outside the view
    t = torch.zeros(1, 8, 2, 16)
    assert qkv.attention(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v),
                         causal=True, out=t) is t
    assert err(t, ref) < TOL


def test_fully_masked_rows():
    rng = np.random.default_rng(7)
    q, k, v = rand(rng, 2, 4, 2, 8), rand(rng, 2, 6, 2, 8), rand(rng, 2, 6, 2, 8)
    out, lse = qkv.attention(q, k, v, kv_lengths=[0, 6], return_lse=True)
    assert np.all(out[0] == 0) and np.all(np.isneginf(lse[0]))
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(lse[1]))


def test_probs_are_exact_rows():
    rng = np.random.default_rng(8)
    q, k, v = rand(rng, 2, 10, 4, 16), rand(rng, 2, 12, 2, 16), rand(rng, 2, 12, 2, 16)
    out, lse = qkv.attention(q, k, v, causal=True, window=(4, -1), return_lse=True)
    p = qkv.attention_probs(q, k, lse, causal=True, window=(4, -1))
    assert p.shape == (2, 4, 10, 12)
    qh = torch.from_numpy(q).double().permute(0, 2, 1, 3)
    kh = torch.from_numpy(k).double().permute(0, 2, 1, 3).repeat_interleave(2, dim=1)
    s = qh @ kh.transpose(-1, -2) / 4.0
    pos = torch.arange(10).view(10, 1) + 2
    j = torch.arange(12).view(1, 12)
    allowed = (j <= pos) & (j >= pos - 4)
    ref = torch.softmax(s.masked_fill(~allowed, float("-inf")), dim=-1)
    assert err(p, ref) < TOL
    rows = qkv.attention_probs(q, k, lse, batch=1, head=3, rows=[9, 0], causal=True,
                               window=(4, -1))
    assert err(rows, ref[1, 3, [9, 0]]) < TOL
    # Probabilities times v give the output back.
    vh = torch.from_numpy(v).double().permute(0, 2, 1, 3).repeat_interleave(2, dim=1)
    assert err(out, (torch.from_numpy(p).double() @ vh).permute(0, 2, 1, 3)) < TOL


@pytest.mark.parametrize("causal", [False, True])
def test_blocks_and_merge_make_full_attention(causal):
    """Ring attention's building blocks: attention over key blocks, merged, is attention over
    all the keys (including blocks a causal query does not see at all)."""
    rng = np.random.default_rng(9)
    n, blocks = 24, 3
    q, k, v = rand(rng, 2, n, 4, 16), rand(rng, 2, n, 2, 16), rand(rng, 2, n, 2, 16)
    step = n // blocks
    out, lse = None, None
    for bi in range(blocks):
        ks, vs = k[:, bi * step:(bi + 1) * step], v[:, bi * step:(bi + 1) * step]
        o, l = qkv.attention_block(q, ks, vs, q_offset=-bi * step, causal=causal)
        out, lse = (o, l) if out is None else qkv.merge(out, lse, o, l)
    ref, ref_lse = reference(q, k, v, causal=causal)
    assert err(out, ref) < TOL
    assert lse_err(lse, ref_lse) < TOL
    tout, tlse = qkv.merge(*(torch.from_numpy(x) for x in (out, lse, out, lse)))
    assert isinstance(tout, torch.Tensor)
    assert err(tout, ref) < TOL and lse_err(tlse, ref_lse + math.log(2)) < TOL


def test_gil_is_released():
    """Two threads calling the kernel overlap (the GIL is released while it runs)."""
    import threading
    import time
    rng = np.random.default_rng(10)
    q = rand(rng, 1, 2048, 4, 64)  # about 0.1 s on one thread
    qkv.attention(q, q, q, n_threads=1)
    t0 = time.perf_counter()
    qkv.attention(q, q, q, n_threads=1)
    one = time.perf_counter() - t0
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    th = threading.Thread(target=spin)
    th.start()
    try:
        time.sleep(0.01)
        before = counter[0]
        qkv.attention(q, q, q, n_threads=1)
        during = counter[0] - before
    finally:
        stop.set()
        th.join()
    # The spinning thread makes progress while the kernel runs: with the GIL held by the call it
    # could make none between reading `before` and the call's return (this thread holds the GIL
    # at both ends).
    assert during > 0, (during, one)


def test_bad_inputs_raise_documented_exceptions():
    rng = np.random.default_rng(11)
    q, k, v = rand(rng, 1, 4, 2, 8), rand(rng, 1, 5, 2, 8), rand(rng, 1, 5, 2, 8)
    with pytest.raises(ValueError, match=r"\[1, 5, 2, 4\]|4|8"):
        qkv.attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="3 dimensions|4 dimensions"):
        qkv.attention(q[0], k, v)
    with pytest.raises(ValueError):
        qkv.attention(q, rand(rng, 1, 5, 3, 8), rand(rng, 1, 5, 3, 8))  # 2 heads, 3 kv heads
    with pytest.raises(TypeError, match="float64"):
        qkv.attention(q.astype(np.float64), k, v)
    with pytest.raises(TypeError, match="int32|float32"):
        qkv.attention(q, k.astype(np.int32), v)
    with pytest.raises(ValueError, match="kv_lengths"):
        qkv.attention(q, k, v, kv_lengths=[1, 2])
    with pytest.raises(ValueError, match="alibi_slopes"):
        qkv.attention(q, k, v, alibi_slopes=[1.0])
    with pytest.raises(ValueError, match="mask"):
        qkv.attention(q, k, v, mask=np.ones((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="out"):
        qkv.attention(q, k, v, out=np.zeros((1, 4, 2, 8), dtype=np.float32)[:, :, :, :4])
    with pytest.raises(ValueError, match="read-only"):
        ro = np.zeros((1, 4, 2, 8), dtype=np.float32)
        ro.flags.writeable = False
        qkv.attention(q, k, v, out=ro)
    with pytest.raises(ValueError, match="backend"):
        qkv.attention(q, k, v, backend="gpu")
    with pytest.raises(ValueError, match="scale"):
        qkv.attention(q, k, v, scale=-1)
    with pytest.raises(TypeError, match="not an array|None"):
        qkv.attention(q, None, v)
    with pytest.raises(ValueError):
        qkv.attention(q, k, v, window=(-5, 0))
    with pytest.raises(qkv.Error):  # InvalidArgument is both a qkv.Error and a ValueError
        qkv.attention(q, k[:, :, :1], v)
    _, lse = qkv.attention(q, k, v, return_lse=True)
    with pytest.raises(ValueError, match="lse"):
        qkv.attention_probs(q, k, lse[:, :1])
    with pytest.raises(ValueError, match="row"):
        qkv.attention_probs(q, k, lse, batch=0, head=0, rows=[4])
