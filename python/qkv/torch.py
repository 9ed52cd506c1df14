"""qkv.torch: qkv's CPU attention as a torch.autograd.Function (PyTorch 1.13 and later).

    import qkv.torch
    out = qkv.torch.attention(q, k, v, causal=True)   # [batch, n, heads, dim], float32 CPU tensors
    out.sum().backward()                             # qkv's flash-style backward

The forward saves out and the log-sum-exp; the backward recomputes probabilities tile by tile
(qkv.attention_backward), so no [n, n] matrix is stored.
"""
import torch

from . import _kernels


class AttentionFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, options):
        out, lse = _kernels.attention(q.detach(), k.detach(), v.detach(), return_lse=True,
                                      **options)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.options = options
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _kernels.attention_backward(q.detach(), k.detach(), v.detach(), out, lse,
                                                 dout.detach(), **ctx.options)
        return dq, dk, dv, None


def attention(q, k, v, *, causal=False, scale=None, mask=None, kv_lengths=None, q_offsets=None,
              window=None, alibi_slopes=None, softcap=None, n_threads=0):
    """qkv.attention on float32 CPU tensors [batch, n, heads, dim], differentiable in q, k, v."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} is a {type(t).__name__}; qkv.torch.attention takes tensors")
        if t.dtype != torch.float32:
            raise TypeError(f"{name} has dtype {t.dtype}; qkv.torch.attention takes float32 "
                            f"(the backward keeps fp32)")
    options = dict(causal=causal, scale=scale, mask=mask, kv_lengths=kv_lengths,
                   q_offsets=q_offsets, window=window, alibi_slopes=alibi_slopes,
                   softcap=softcap, n_threads=n_threads)
    return AttentionFunction.apply(q, k, v, options)
