"""The attention kernels on NumPy arrays and CPU torch tensors (layouts as in include/qkv/attention.h).

Arrays are read in place whatever their strides (non-negative; a view with a negative stride is
copied once), outputs are written in place (`out=`), and the GIL is released while a kernel runs.
Outputs are NumPy arrays for NumPy inputs and torch tensors for torch inputs.
"""
import numpy as _np

from . import _qkv


def _is_torch(x):
    return hasattr(x, "data_ptr") and hasattr(x, "is_sparse")


def _shape(x, name, ndim):
    if x is None:
        raise TypeError(f"{name} is None; expected an array")
    shape = tuple(int(d) for d in getattr(x, "shape", _np.shape(x)))
    if len(shape) != ndim:
        raise _qkv.InvalidArgument(
            f"{name} has shape {list(shape)}; expected {ndim} dimensions")
    return shape


def _empty(shape, like):
    if _is_torch(like):
        import torch
        return torch.empty(shape, dtype=torch.float32)
    return _np.empty(shape, dtype=_np.float32)


def _zeros(shape, like):
    if _is_torch(like):
        import torch
        return torch.zeros(shape, dtype=torch.float32)
    return _np.zeros(shape, dtype=_np.float32)


def _window(window):
    """(left, right) with -1 for an unbounded side. An int w means (w, -1): w keys to the left."""
    if window is None:
        return -1, -1
    if isinstance(window, (int, _np.integer)):
        return int(window), -1
    try:
        left, right = window
    except (TypeError, ValueError):
        raise TypeError(f"window = {window!r}; expected None, an int or (left, right)") from None
    return (-1 if left is None else int(left)), (-1 if right is None else int(right))


def _options(causal, scale, mask, kv_lengths, q_offsets, window, alibi_slopes, softcap):
    left, right = _window(window)
    return dict(causal=bool(causal), scale=None if scale is None else float(scale), mask=mask,
                kv_lengths=kv_lengths, q_offsets=q_offsets, window_left=left,
                window_right=right, alibi_slopes=alibi_slopes,
                softcap=None if softcap is None else float(softcap))


def attention(q, k, v, *, causal=False, scale=None, mask=None, kv_lengths=None, q_offsets=None,
              window=None, alibi_slopes=None, softcap=None, return_lse=False, out=None,
              precision="f32", backend="auto", n_threads=0):
    """Exact scaled dot-product attention.

    q [batch, n_q, heads, dim] float32; k [batch, n_kv, kv_heads, dim] and v [batch, n_kv,
    kv_heads, dim_v] float32, float16 or bfloat16 (heads a multiple of kv_heads: GQA / MQA).
    Returns out [batch, n_q, heads, dim_v] float32, and lse [batch, heads, n_q] with return_lse.

    causal: key j is seen by query i only if j <= pos(i), pos(i) = n_kv - n_q + i (or
    q_offsets[b] + i). mask: [n_q, n_kv] bool (True = attend) or float32 (added to the scores).
    kv_lengths: [batch] valid keys per sequence. window: (left, right) keys around pos (-1 or None:
    unbounded); an int w is (w, None). alibi_slopes: [heads]. softcap: cap * tanh(s / cap).
    scale: default 1 / sqrt(dim). n_threads: 0 = every hardware thread.
    """
    b, nq, h, _ = _shape(q, "q", 4)
    dv = _shape(v, "v", 4)[3]
    if out is None:
        out = _empty((b, nq, h, dv), q)
    lse = _empty((b, h, nq), q) if return_lse else None
    _qkv._attention(q, k, v, out, lse, precision=precision, backend=backend,
                    n_threads=int(n_threads),
                    **_options(causal, scale, mask, kv_lengths, q_offsets, window,
                               alibi_slopes, softcap))
    return (out, lse) if return_lse else out


def attention_block(q, k_block, v_block, *, q_offset=None, causal=False, scale=None, mask=None,
                    kv_lengths=None, window=None, alibi_slopes=None, softcap=None, out=None,
                    n_threads=0):
    """(out, lse) of q against one block of keys: what ring / sequence-parallel attention combines
    with merge(). q_offset: the position of query 0 counted from the block's first key (an int or
    one per sequence), so that causal masks and windows line up across blocks; a query that sees
    no key of the block gets out = 0 and lse = -inf, which merge() ignores."""
    b, nq, h, _ = _shape(q, "q", 4)
    dv = _shape(v_block, "v_block", 4)[3]
    offsets = None
    if q_offset is not None and not isinstance(q_offset, (int, _np.integer)):
        offsets = q_offset
    elif q_offset is not None and q_offset >= 0:
        offsets = _np.full(b, int(q_offset), dtype=_np.int32)
    elif q_offset is not None:
        # A block of keys after query 0 (ring attention's later blocks): the kernel counts
        # positions from 0, so queries before the block's first key are split off. Without
        # causal masking positions do not matter; with it, those queries see none of the block.
        if window is not None or alibi_slopes is not None:
            raise _qkv.InvalidArgument(
                f"attention_block: q_offset = {q_offset} is negative, which windows and ALiBi "
                f"do not support (they need the queries' positions)")
        if not causal:
            offsets = None
        else:
            skip = min(-int(q_offset), nq)
            if out is None:
                out = _empty((b, nq, h, dv), q)
            lse = _empty((b, h, nq), q)
            out[:, :skip] = 0
            lse[:, :, :skip] = -_np.inf
            if skip < nq:
                sub = _np.s_[:, skip:]
                o, l = attention(q[sub], k_block, v_block, causal=True, scale=scale,
                                 mask=None if mask is None else mask[skip:],
                                 kv_lengths=kv_lengths,
                                 q_offsets=_np.zeros(b, dtype=_np.int32), softcap=softcap,
                                 return_lse=True, out=out[sub], n_threads=n_threads)
                lse[:, :, skip:] = l
            return out, lse
    return attention(q, k_block, v_block, causal=causal, scale=scale, mask=mask,
                     kv_lengths=kv_lengths, q_offsets=offsets, window=window,
                     alibi_slopes=alibi_slopes, softcap=softcap, return_lse=True, out=out,
                     n_threads=n_threads)


def merge(out_a, lse_a, out_b, lse_b, *, out=None):
    """Combines the attention of the same queries over two disjoint key sets:
    (out [batch, n, heads, dim], lse [batch, heads, n]) of the union. Rows with lse = -inf on
    both sides stay out = 0, lse = -inf."""
    torch_in = _is_torch(out_a)

    def arr(x):
        return x.detach().numpy() if _is_torch(x) else _np.asarray(x, dtype=_np.float32)

    oa, ob, la, lb = arr(out_a), arr(out_b), arr(lse_a), arr(lse_b)
    if oa.shape != ob.shape or la.shape != lb.shape:
        raise _qkv.InvalidArgument(
            f"merge: out_a {list(oa.shape)} / out_b {list(ob.shape)} and lse_a {list(la.shape)} / "
            f"lse_b {list(lb.shape)} must agree")
    if oa.ndim != 4 or la.shape != (oa.shape[0], oa.shape[2], oa.shape[1]):
        raise _qkv.InvalidArgument(
            f"merge: out {list(oa.shape)} must be [batch, n, heads, dim] and lse {list(la.shape)} "
            f"[batch, heads, n]")
    m = _np.maximum(la, lb)
    m = _np.where(_np.isfinite(m), m, 0.0).astype(_np.float32)
    with _np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        wa = _np.exp(la - m)
        wb = _np.exp(lb - m)
        s = wa + wb
        lse = _np.where(s > 0, m + _np.log(_np.where(s > 0, s, 1)), -_np.inf).astype(_np.float32)
        inv = _np.where(s > 0, 1 / _np.where(s > 0, s, 1), 0)
    wa = (wa * inv).transpose(0, 2, 1)[..., None]
    wb = (wb * inv).transpose(0, 2, 1)[..., None]
    res = oa * wa + ob * wb
    if out is not None:
        target = out.detach().numpy() if _is_torch(out) else out
        target[...] = res
        return out, (_from_numpy(lse) if torch_in else lse)
    if torch_in:
        return _from_numpy(res.astype(_np.float32)), _from_numpy(lse)
    return res.astype(_np.float32), lse


def _from_numpy(a):
    import torch
    return torch.from_numpy(_np.ascontiguousarray(a))


def attention_probs(q, k, lse, *, batch=None, head=None, rows=None, causal=False, scale=None,
                    mask=None, kv_lengths=None, q_offsets=None, window=None, alibi_slopes=None,
                    softcap=None, precision="f32", n_threads=0):
    """Exact softmax rows recomputed from q, k and the lse that attention(return_lse=True) saved,
    materialising only the rows asked for. With batch and head: [len(rows), n_kv]; without:
    [batch, heads, len(rows), n_kv]. rows: query indices (default: all). The options must be
    those of the attention() call; masked keys get 0."""
    bq, nq, h, _ = _shape(q, "q", 4)
    nkv = _shape(k, "k", 4)[1]
    rows = list(range(nq)) if rows is None else [int(r) for r in rows]
    opts = _options(causal, scale, mask, kv_lengths, q_offsets, window, alibi_slopes, softcap)

    def one(bi, hi, dst):
        _qkv._attention_probs(q, k, lse, int(bi), int(hi), rows, dst, precision=precision,
                              backend="auto", n_threads=int(n_threads), **opts)

    if (batch is None) != (head is None):
        raise TypeError("attention_probs: give both batch and head, or neither")
    if batch is not None:
        p = _np.empty((len(rows), nkv), dtype=_np.float32)
        one(batch, head, p)
    else:
        p = _np.empty((bq, h, len(rows), nkv), dtype=_np.float32)
        for bi in range(bq):
            for hi in range(h):
                one(bi, hi, p[bi, hi])
    return _from_numpy(p) if _is_torch(q) else p


def attention_backward(q, k, v, out, lse, dout, *, causal=False, scale=None, mask=None,
                       kv_lengths=None, q_offsets=None, window=None, alibi_slopes=None,
                       softcap=None, dq=None, dk=None, dv=None, backend="auto", n_threads=0):
    """Gradients (dq, dk, dv) of attention() given dout = dLoss/dout, from the forward's out and
    lse (float32 q, k and v). The options must be those of the forward; dq, dk, dv are written in
    place when given (with GQA, dk and dv are sums over each group's query heads)."""
    shape_q = _shape(q, "q", 4)
    shape_k = _shape(k, "k", 4)
    shape_v = _shape(v, "v", 4)
    dq = _empty(shape_q, q) if dq is None else dq
    dk = _empty(shape_k, q) if dk is None else dk
    dv = _empty(shape_v, q) if dv is None else dv
    _qkv._attention_backward(q, k, v, out, lse, dout, dq, dk, dv, backend=backend,
                             n_threads=int(n_threads),
                             **_options(causal, scale, mask, kv_lengths, q_offsets, window,
                                        alibi_slopes, softcap))
    return dq, dk, dv
