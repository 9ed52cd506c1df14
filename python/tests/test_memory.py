"""Zero-copy and no leaks, measured on this process's resident set."""
import gc

import numpy as np
import pytest

import qkv
from conftest import peak_rss_bytes, reset_peak_rss, rss_bytes

MiB = 1 << 20


def test_one_gib_input_is_not_copied():
    """Attention of a few queries over 1 GiB of keys (a strided view of [b, h, n, d] storage, k
    and v sharing it): the peak RSS grows by far less than a copy of the input would take."""
    n_kv, h, d = (1 << 30) // (4 * 2 * 64), 2, 64   # 2 heads x 64 floats x 4 bytes per key: 1 GiB
    store = np.empty((1, h, n_kv, d), dtype=np.float32)
    store[...] = 0.01   # touch every page: the input is resident before the call
    kv = store.transpose(0, 2, 1, 3)                 # [1, n_kv, h, d], not contiguous
    q = np.ones((1, 4, h, d), dtype=np.float32)
    out = np.empty((1, 4, h, d), dtype=np.float32)
    gc.collect()
    reset_peak_rss()
    base = peak_rss_bytes()
    qkv.attention(q, kv, kv, out=out, n_threads=2)
    grown = peak_rss_bytes() - base
    assert np.allclose(out, 0.01, atol=1e-6)
    assert grown < 64 * MiB, f"peak RSS grew by {grown / MiB:.0f} MiB for a 1024 MiB input"


def test_torch_input_is_not_copied():
    torch = pytest.importorskip("torch")  # installed in CI (Debian python3-torch)
    store = torch.full((1, 2, 1 << 20, 64), 0.02)   # 512 MiB, [b, h, n, d]
    kv = store.permute(0, 2, 1, 3)
    q = torch.ones(1, 2, 2, 64)
    gc.collect()
    reset_peak_rss()
    base = peak_rss_bytes()
    out = qkv.attention(q, kv, kv, n_threads=2)
    grown = peak_rss_bytes() - base
    assert torch.allclose(out, torch.full_like(out, 0.02), atol=1e-6)
    assert grown < 64 * MiB, f"peak RSS grew by {grown / MiB:.0f} MiB for a 512 MiB input"


def _steady(fn, n=1000):
    for _ in range(50):
        fn()
    gc.collect()
    before = rss_bytes()
    for _ in range(n):
        fn()
    gc.collect()
    return rss_bytes() - before


def test_kernel_calls_do_not_leak():
    rng = np.random.default_rng(0)
    q = rng.random((1, 64, 4, 32), dtype=np.float32)
    mask = rng.random((64, 64)) < 0.5

    def call():
        out, lse = qkv.attention(q, q, q, causal=True, mask=mask, kv_lengths=[60],
                                 return_lse=True, n_threads=1)
        qkv.attention_backward(q, q, q, out, lse, out, causal=True, mask=mask, kv_lengths=[60],
                               n_threads=1)
        qkv.attention_probs(q, q, lse, batch=0, head=1, rows=[3], causal=True, mask=mask,
                            kv_lengths=[60])

    # A leaked output (out and lse: 33 KiB a call) would be 32 MiB over 1000 calls; the bound
    # leaves room for the allocator's own growth on a loaded machine.
    grown = _steady(call)
    assert grown < 12 * MiB, f"RSS grew by {grown / MiB:.1f} MiB over 1000 calls"


def test_errors_do_not_leak():
    q = np.zeros((1, 4, 2, 8), np.float32)

    def call():
        try:
            qkv.attention(q, q[:, :, :1], q)
        except ValueError:
            pass

    assert _steady(call) < 8 * MiB


def test_model_calls_do_not_leak():
    m = qkv.Model()
    ids = m.tokenize("Once upon a time")

    def call():
        m.tokenize("Once upon a time there was a cat")
        m.detokenize(ids)
        m.eval(ids, n_threads=1)

    # A leaked logits array alone would be n_vocab x 5 floats a call, tens of MiB over 1000.
    grown = _steady(call, 1000)
    assert grown < 12 * MiB, f"RSS grew by {grown / MiB:.1f} MiB over 1000 calls"

    def gen():
        m.generate(ids, max_new_tokens=2, temperature=0, n_threads=1)
        for _ in m.stream(ids, max_new_tokens=2, temperature=0, n_threads=1):
            pass

    grown = _steady(gen, 200)
    assert grown < 8 * MiB, f"RSS grew by {grown / MiB:.1f} MiB over 200 generations"
