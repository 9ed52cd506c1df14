#!/usr/bin/env python3
"""PyTorch (CPU) training speed on the built-in model's shape, the peer for `qkv train`.

usage: torch_train_bench.py [--threads 2] [--steps 20] [--layers 4 --heads 4 --embd 128 --ctx 128
                             --vocab 768 --batch 16]
GPT-2 blocks written with torch.nn (pre-LN, fused QKV, tanh-GELU, tied head), AdamW, gradient
clipping: the same work per step as qkv train. Prints the median step time and tokens/s.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.up, self.down = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(C // self.H)
        s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(a)
        return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self, V, T, C, H, L):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, H) for _ in range(L))
        self.lnf = nn.LayerNorm(C)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.blocks:
            x = b(x)
        logits = self.lnf(x) @ self.wte.weight.T
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def main():
    p = argparse.ArgumentParser()
    for name, default in (("threads", 2), ("steps", 20), ("layers", 4), ("heads", 4),
                          ("embd", 128), ("ctx", 128), ("vocab", 768), ("batch", 16)):
        p.add_argument("--" + name, type=int, default=default)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    m = Gpt(a.vocab, a.ctx, a.embd, a.heads, a.layers)
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.1)
    times = []
    for step in range(a.steps + 3):
        idx = torch.randint(0, a.vocab, (a.batch, a.ctx))
        tgt = torch.randint(0, a.vocab, (a.batch, a.ctx))
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        m(idx, tgt).backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        if step >= 3:  # warm-up steps left out
            times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    n = sum(x.numel() for x in m.parameters())
    print(f"torch {torch.__version__}, {a.threads} threads, {n} parameters: median step "
          f"{t * 1e3:.1f} ms, {a.batch * a.ctx / t:.0f} tokens/s")


if __name__ == "__main__":
    main()
