#!/usr/bin/env python3
"""The training path of qkv (src/train) against PyTorch autograd on a tiny GPT-2.

Usage: torch_gpt.py QKV_GPT_IO WORKDIR. Exits 77 (skipped) when torch is not installed.
Same weights and batch on both sides: the loss, every parameter's gradient (including the tied
head, layer norms, biases, position embeddings and ignored targets), and the parameters after two
clipped AdamW steps (torch.optim.AdamW, decay on matrices and embeddings only) must agree. qkv
computes in fp32, torch here in float64.
"""
import math
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    print("torch is not installed (Debian package python3-torch): skipping")
    sys.exit(77)

# fp32 against float64: gradients agree to ~1e-6 of their tensor's scale; 1e-4 leaves room for
# the longer sums of the larger tensors without hiding a wrong term (those are off by O(1)).
GRAD_TOL = 1e-4
LOSS_TOL = 1e-5
# AdamW moves each weight by about lr per step; fp32 differences in m/sqrt(v) stay far below 2%.
ADAM_TOL = 0.02


def run_case(io, workdir, n_vocab, n_ctx, n_embd, n_head, n_layer, B, T, seed):
    lr, wd, clip = 1e-2, 0.1, 0.5
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.txt"), "w") as f:
        f.write(f"{n_vocab} {n_ctx} {n_embd} {n_head} {n_layer} {B} {T} {lr} {wd} {clip}\n")
    subprocess.run([io, "layout", workdir], check=True)
    layout = []
    for line in open(os.path.join(workdir, "layout.txt")):
        parts = line.split()
        layout.append((parts[0], int(parts[1]), int(parts[2]), [int(x) for x in parts[3:]]))
    n_params = sum(t[2] for t in layout)

    g = torch.Generator().manual_seed(seed)
    flat = torch.empty(n_params, dtype=torch.float32)
    for name, off, size, shape in layout:
        if name.endswith("norm.weight"):
            flat[off:off + size] = 1 + 0.1 * torch.randn(size, generator=g)
        else:
            flat[off:off + size] = 0.2 * torch.randn(size, generator=g)
    tokens = torch.randint(0, n_vocab, (B, T), generator=g, dtype=torch.int32)
    targets = torch.randint(0, n_vocab, (B, T), generator=g, dtype=torch.int32)
    targets[0, 0] = -1  # ignored positions
    targets[-1, T // 2] = -1
    flat.numpy().tofile(os.path.join(workdir, "params.bin"))
    tokens.numpy().tofile(os.path.join(workdir, "tokens.bin"))
    targets.numpy().tofile(os.path.join(workdir, "targets.bin"))
    subprocess.run([io, "run", workdir], check=True)

    def params_from(flat64):
        P = {}
        for name, off, size, shape in layout:
            P[name] = flat64[off:off + size].clone().reshape(shape).requires_grad_(True)
        return P

    D = n_embd // n_head
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))

    def loss_of(P):
        x = P["token_embd.weight"][tokens.long()] + P["position_embd.weight"][:T]
        for l in range(n_layer):
            p = f"blk.{l}."
            h = F.layer_norm(x, (n_embd,), P[p + "attn_norm.weight"], P[p + "attn_norm.bias"], 1e-5)
            qkv = h @ P[p + "attn_qkv.weight"].T + P[p + "attn_qkv.bias"]
            q, k, v = qkv.split(n_embd, dim=-1)
            q, k, v = (t.reshape(B, T, n_head, D).transpose(1, 2) for t in (q, k, v))
            s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
            s = s.masked_fill(~mask, float("-inf"))
            a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, n_embd)
            x = x + a @ P[p + "attn_output.weight"].T + P[p + "attn_output.bias"]
            h = F.layer_norm(x, (n_embd,), P[p + "ffn_norm.weight"], P[p + "ffn_norm.bias"], 1e-5)
            u = F.gelu(h @ P[p + "ffn_up.weight"].T + P[p + "ffn_up.bias"], approximate="tanh")
            x = x + u @ P[p + "ffn_down.weight"].T + P[p + "ffn_down.bias"]
        x = F.layer_norm(x, (n_embd,), P["output_norm.weight"], P["output_norm.bias"], 1e-5)
        logits = x @ P["token_embd.weight"].T
        return F.cross_entropy(logits.reshape(B * T, n_vocab), targets.long().reshape(-1),
                               ignore_index=-1)

    P = params_from(flat.double())
    loss = loss_of(P)
    loss.backward()
    ours_loss = float(open(os.path.join(workdir, "loss.txt")).read())
    grads = np.fromfile(os.path.join(workdir, "grads.bin"), dtype="float32")
    failures = []
    if abs(ours_loss - loss.item()) > LOSS_TOL * max(1.0, abs(loss.item())):
        failures.append(f"loss {ours_loss} vs torch {loss.item()}")
    worst = 0.0
    for name, off, size, shape in layout:
        ref = P[name].grad.reshape(-1)
        ours = torch.from_numpy(grads[off:off + size]).double()
        scale = max(ref.abs().max().item(), 1e-12)
        err = (ours - ref).abs().max().item() / scale
        worst = max(worst, err)
        if err > GRAD_TOL:
            failures.append(f"grad {name}: max error {err:.3g} of its scale {scale:.3g}")

    # Two clipped AdamW steps.
    P2 = params_from(flat.double())
    decay = [P2[n] for n, _, _, s in layout if len(s) == 2]
    no_decay = [P2[n] for n, _, _, s in layout if len(s) != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95), eps=1e-8)
    for _ in range(2):
        opt.zero_grad()
        loss_of(P2).backward()
        torch.nn.utils.clip_grad_norm_(list(P2.values()), clip)
        opt.step()
    after = np.fromfile(os.path.join(workdir, "params2.bin"), dtype="float32")
    adam_worst = 0.0
    for name, off, size, shape in layout:
        ref = P2[name].detach().reshape(-1)
        ours = torch.from_numpy(after[off:off + size]).double()
        # Adam divides by sqrt(v): where the exact gradient is 0, fp32 rounding noise (1e-9)
        # still becomes a full step of lr. The key bias is such a place: adding a constant to
        # every key of a row leaves its softmax unchanged, so d loss / d b_k = 0 exactly.
        g = P[name].grad.reshape(-1).abs()
        live = g > 1e-6 * max(g.max().item(), 1e-30)
        if not live.any():
            continue
        err = (ours - ref)[live].abs().max().item() / lr
        adam_worst = max(adam_worst, err)
        if err > ADAM_TOL:
            failures.append(f"AdamW {name}: differs by {err:.3g} x lr")
    label = (f"V{n_vocab} ctx{n_ctx} C{n_embd} H{n_head} L{n_layer} B{B} T{T}")
    print(f"{label}: loss {ours_loss:.6f} vs {loss.item():.6f}, worst grad error {worst:.2e}, "
          f"worst AdamW difference {adam_worst:.2e} x lr")
    return failures


def main():
    io, workdir = sys.argv[1], sys.argv[2]
    failures = []
    failures += run_case(io, os.path.join(workdir, "a"), 37, 16, 24, 3, 2, 3, 11, seed=1)
    failures += run_case(io, os.path.join(workdir, "b"), 64, 12, 32, 4, 1, 2, 12, seed=2)
    failures += run_case(io, os.path.join(workdir, "c"), 50, 9, 16, 1, 3, 4, 7, seed=3)
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
