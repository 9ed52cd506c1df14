#!/usr/bin/env python3
"""A Mistral folder whose config.json states a sliding window, against a PyTorch forward pass.

llama.cpp reads Mistral files as the llama architecture and ignores their window, so it cannot be
the oracle here; this test's own float64 PyTorch forward of the Mistral block (RMSNorm,
rotate-half RoPE, grouped-query attention where query i sees keys i - W + 1 .. i, SiLU-gated MLP,
as transformers' MistralForCausalLM computes it) is. tests/data/families-hf/mistral-window has
W = 8 on every layer; `qkv eval` on the folder, and on the GGUF `qkv convert` writes of it, must
match it (RMS <= 1e-4 x std, same top-1), and the window must matter: the same forward without it
differs by far more than the tolerance from position 8 on.

Skips (77) without python3-torch.

usage: mistral_window_torch_test.py QKV_BINARY
"""
import json
import pathlib
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError:
    print("SKIP: python3-torch and numpy are needed")
    sys.exit(77)

HERE = pathlib.Path(__file__).resolve().parent
FOLDER = HERE.parent / "data" / "families-hf" / "mistral-window"
IDS = [int(x) for x in (HERE.parent / "data" / "families" / "ids.txt").read_text().split(",")]
REL_TOL = 1e-4


def load_safetensors(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32"
        a, b = t["data_offsets"]
        out[name] = torch.from_numpy(
            np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(t["shape"]).copy()
        ).double()
    return out


def forward(w, c, ids, window):
    """Logits [T, n_vocab] in float64; window 0: every earlier key."""
    d, h, hkv, hd = (c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"],
                     c["head_dim"])
    eps = c["rms_norm_eps"]
    T = len(ids)

    def rms(x, g):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * g

    inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]  # [T, hd/2]
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)

    def rope(x):  # [T, heads, hd], rotate-half pairs (i, i + hd/2)
        x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
        return x * cos[:, None, :] + torch.cat([-x2, x1], -1) * sin[:, None, :]

    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    visible = j <= i
    if window:
        visible &= i - j < window
    x = w["model.embed_tokens.weight"][ids]
    for layer in range(c["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        a = rms(x, w[p + "input_layernorm.weight"])
        q = rope((a @ w[p + "self_attn.q_proj.weight"].T).view(T, h, hd))
        k = rope((a @ w[p + "self_attn.k_proj.weight"].T).view(T, hkv, hd))
        v = (a @ w[p + "self_attn.v_proj.weight"].T).view(T, hkv, hd)
        k = k.repeat_interleave(h // hkv, dim=1)
        v = v.repeat_interleave(h // hkv, dim=1)
        s = torch.einsum("ihd,jhd->hij", q, k) / hd ** 0.5
        s = s.masked_fill(~visible[None], float("-inf"))
        o = torch.einsum("hij,jhd->ihd", torch.softmax(s, -1), v).reshape(T, h * hd)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        m = rms(x, w[p + "post_attention_layernorm.weight"])
        g = m @ w[p + "mlp.gate_proj.weight"].T
        u = m @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ w[p + "mlp.down_proj.weight"].T
    return rms(x, w["model.norm.weight"]) @ w["lm_head.weight"].T


def read_npy(path):
    a = np.load(path)
    return torch.from_numpy(a.astype(np.float64))


def main():
    qkv = sys.argv[1]
    c = json.loads((FOLDER / "config.json").read_text())
    w = load_safetensors(FOLDER / "model.safetensors")
    want = forward(w, c, IDS, c["sliding_window"])
    sd = want.std().item()
    no_window = forward(w, c, IDS, 0)
    failures = []
    moved = ((no_window - want) ** 2).mean().sqrt().item() / sd
    early = (no_window[:c["sliding_window"]] - want[:c["sliding_window"]]).abs().max().item()
    print(f"reference without the window: RMS {moved:.2e} x std away (first "
          f"{c['sliding_window']} positions: max {early:.1e})")
    if moved < 100 * REL_TOL or early > 1e-9:
        failures.append("the window does not bind where it should in this fixture")
    ids = ",".join(map(str, IDS))
    with tempfile.TemporaryDirectory() as tmp:
        gguf = pathlib.Path(tmp) / "mistral.gguf"
        p = subprocess.run([qkv, "convert", "-m", str(FOLDER), "-o", str(gguf)],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            failures.append(f"convert rc {p.returncode}: {p.stderr.strip()}")
        for name, model in (("HF folder", FOLDER), ("converted GGUF", gguf)):
            out = pathlib.Path(tmp) / "logits.npy"
            p = subprocess.run([qkv, "eval", "-m", str(model), "--ids", ids, "--logits", str(out),
                                "--threads", "1"], capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                failures.append(f"{name}: eval rc {p.returncode}: {p.stderr.strip()}")
                continue
            got = read_npy(out)
            err = ((got - want) ** 2).mean().sqrt().item() / sd
            agree = (got.argmax(-1) == want.argmax(-1)).double().mean().item()
            print(f"{name}: RMS {err:.2e} x std, top-1 {agree:.3f}")
            if err > REL_TOL or agree < 1.0:
                failures.append(f"{name}: RMS {err:.2e} x std (max {REL_TOL}), top-1 {agree:.3f}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
