"""qkv.attention_backward and the qkv.torch autograd Function against torch autograd in float64."""
import math

import numpy as np
import pytest
import torch

import qkv
import qkv.torch
from conftest import reference

# Gradients in fp32 against float64: relative to 1 + |ref|, a little looser than the forward (the
# backward sums n_q or n_kv products of recomputed probabilities).
TOL = 1e-4


def err(a, ref):
    a = torch.as_tensor(np.asarray(a.detach() if isinstance(a, torch.Tensor) else a)).double()
    return ((a - ref).abs() / (1 + ref.abs())).max().item()


def ref_grads(q, k, v, dout, **opts):
    q64, k64, v64 = (torch.tensor(np.asarray(x), dtype=torch.float64, requires_grad=True)
                     for x in (q, k, v))
    out, _ = reference(q64, k64, v64, **opts)
    out.backward(torch.as_tensor(np.asarray(dout)).double())
    return out.detach(), q64.grad, k64.grad, v64.grad


CASES = [(1, 6, 6, 2, 2, 8), (2, 13, 21, 4, 2, 16), (1, 40, 40, 6, 3, 32), (2, 9, 30, 4, 1, 64)]
KINDS = {
    "none": ({}, {}),
    "causal": ({"causal": True}, {"causal": True}),
    "window": ({"causal": True, "window": (5, -1)}, {"causal": True, "window": (5, -1)}),
    "softcap": ({"softcap": 3.0}, {"softcap": 3.0}),
    "alibi": ("alibi", "alibi"),
    "bool": ("bool", "bool"),
    "additive": ("additive", "additive"),
    "kv_lengths": ("kv_lengths", "kv_lengths"),
}


def options(kind, rng, b, nq, nkv, h):
    opts, _ = KINDS[kind]
    if kind == "alibi":
        return {"alibi_slopes": (2.0 ** -np.arange(1, h + 1)).astype(np.float32)}
    if kind == "bool":
        m = rng.random((nq, nkv)) < 0.7
        m[:, 0] = True
        return {"mask": m}
    if kind == "additive":
        return {"mask": rng.standard_normal((nq, nkv)).astype(np.float32)}
    if kind == "kv_lengths":
        return {"kv_lengths": rng.integers(1, nkv + 1, size=b).astype(np.int32)}
    return dict(opts)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_backward_against_autograd(case, kind):
    b, nq, nkv, h, hkv, d = case
    rng = np.random.default_rng(abs(hash((case, kind))) % 2**32)
    q = rng.standard_normal((b, nq, h, d)).astype(np.float32)
    k = rng.standard_normal((b, nkv, hkv, d)).astype(np.float32)
    v = rng.standard_normal((b, nkv, hkv, d)).astype(np.float32)
    dout = rng.standard_normal((b, nq, h, d)).astype(np.float32)
    opts = options(kind, rng, b, nq, nkv, h)
    _, rq, rk, rv = ref_grads(q, k, v, dout, **opts)
    out, lse = qkv.attention(q, k, v, return_lse=True, **opts)
    for backend in ("auto", "reference"):
        dq, dk, dv = qkv.attention_backward(q, k, v, out, lse, dout, backend=backend, **opts)
        assert err(dq, rq) < TOL and err(dk, rk) < TOL and err(dv, rv) < TOL, backend


@pytest.mark.parametrize("kind", list(KINDS))
def test_autograd_function_matches_torch(kind):
    b, nq, nkv, h, hkv, d = 2, 11, 11, 4, 2, 16
    rng = np.random.default_rng(100 + len(kind))
    opts = options(kind, rng, b, nq, nkv, h)
    g = torch.Generator().manual_seed(len(kind))
    # Strided leaves: [b, h, n, d] storage seen as [b, n, h, d].
    q = (torch.randn(b, h, nq, d, generator=g)).permute(0, 2, 1, 3).requires_grad_()
    k = torch.randn(b, nkv, hkv, d, generator=g, requires_grad=True)
    v = torch.randn(b, nkv, hkv, d, generator=g, requires_grad=True)
    w = torch.randn(b, nq, h, d, generator=g)
    out = qkv.torch.attention(q, k, v, **opts)
    (out * w).sum().backward()
    ref_out, rq, rk, rv = ref_grads(q.detach(), k.detach(), v.detach(), w, **opts)
    assert err(out, ref_out) < 3e-5
    assert err(q.grad, rq) < TOL and err(k.grad, rk) < TOL and err(v.grad, rv) < TOL


def test_autograd_in_a_module_with_gradcheck_style_loss():
    """A small PyTorch model using qkv.torch.attention trains: the loss decreases."""
    torch.manual_seed(0)
    proj = torch.nn.Linear(16, 3 * 16)
    x = torch.randn(2, 10, 16)
    target = torch.randn(2, 10, 4, 4)
    opt = torch.optim.SGD(proj.parameters(), lr=0.5)
    losses = []
    for _ in range(20):
        qkv_ = proj(x).view(2, 10, 3, 4, 4)
        out = qkv.torch.attention(qkv_[:, :, 0], qkv_[:, :, 1], qkv_[:, :, 2], causal=True)
        loss = ((out - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9


def test_torch_function_rejects_bad_input():
    with pytest.raises(TypeError, match="float64"):
        qkv.torch.attention(torch.zeros(1, 2, 1, 4, dtype=torch.float64), torch.zeros(1, 2, 1, 4),
                            torch.zeros(1, 2, 1, 4))
    with pytest.raises(TypeError, match="tensors"):
        qkv.torch.attention(np.zeros((1, 2, 1, 4), np.float32), torch.zeros(1, 2, 1, 4),
                            torch.zeros(1, 2, 1, 4))


def test_backward_shapes_are_checked():
    q = np.zeros((1, 3, 2, 4), np.float32)
    out, lse = qkv.attention(q, q, q, return_lse=True)
    with pytest.raises(ValueError):
        qkv.attention_backward(q, q, q, out, lse, np.zeros((1, 3, 2, 5), np.float32))
    with pytest.raises(TypeError, match="float16|float32"):
        qkv.attention_backward(q, q.astype(np.float16), q, out, lse, out)
    assert math.isfinite(float(np.sum(qkv.attention_backward(q, q, q, out, lse, out)[0])))
